// @ts-check
/**
 * The performer's audience wall in the studio (../cameras.js's Wall, loaded only when asked for):
 * the cameras of the viewers who chose "show me to the performer too", each tile with the
 * viewer's name and lobby. Off until the performer opens it; closing it releases its connection on
 * the server. Open, it comes back by itself on a new host connection.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { Tiles } from '../tiles.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./lobbynames.js').LobbyNames} LobbyNames */
/** @typedef {import('../cameras.js').Wall} Wall */

/**
 * @typedef {object} StudioWall
 * @property {(host: Connection) => void} follow the host connection came (back): open the wall
 *   on it if the performer had it open
 * @property {() => void} close release the wall (the page goes)
 * @property {() => Wall | null} wall the wall now (for tests and debugging)
 * @property {() => void} render
 */

/**
 * @param {{host: () => Connection | null, names: LobbyNames}} options host: the host connection
 *   now; names: what to call the lobbies (shared with the chat feed)
 * @returns {StudioWall}
 */
export function initWall({ host, names }) {
  const el = {
    button: /** @type {HTMLButtonElement} */ (byId('wall-button')),
    status: byId('wall-status'),
    tiles: byId('wall-tiles'),
    help: byId('wall-help'),
  };

  /** @type {{open: boolean, wall: Wall | null, failed: boolean}} */
  const now = { open: false, wall: null, failed: false };

  const tiles = new Tiles(el.tiles, { className: 'wall-tile', idPrefix: 'wall-name-', data: 'slot' });

  /** @param {Connection} connection */
  async function start(connection) {
    now.wall?.close();
    now.failed = false;
    /** @type {Wall | null} */
    let wall = null;
    try {
      const { Wall } = await import('../cameras.js');
      if (!now.open || host() !== connection) return;
      wall = now.wall = new Wall(connection, { onChange: render });
      await wall.start();
    } catch (error) {
      console.warn('no audience wall', error);
      wall?.close();
      if (now.wall === wall) {
        now.wall = null;
        now.failed = true;
      }
    }
    render();
  }

  function close() {
    now.wall?.close();
    now.wall = null;
  }

  /** @param {string} lobby a lobby id */
  function lobbyName(lobby) {
    const code = names.code(lobby);
    if (code) return t('feed_lobby', { code });
    const number = names.number(lobby);
    return number ? t('feed_lobby_n', { n: number }) : '';
  }

  function render() {
    const wall = now.wall;
    const cameras = now.open && wall ? wall.state.cameras : [];
    el.button.setAttribute('aria-pressed', String(now.open));
    el.help.hidden = now.open;  // said before opening; the pictures speak for themselves then
    el.button.disabled = host() === null && !now.open;
    const items = cameras.map((camera) => {
      const lobby = camera.lobby ? lobbyName(camera.lobby) : '';
      const name = camera.name || t('chat_someone');
      const words = lobby ? `${name} · ${lobby}` : name;
      return tiles.tile(String(camera.slot), wall?.stream(camera.slot) ?? null, words);
    });
    tiles.show(items);
    let words = '';
    if (now.open && now.failed) words = t('wall_failed');
    else if (now.open && wall?.state.joined) {
      words = items.length ? t('wall_count', { count: String(items.length) }) : t('wall_empty');
    }
    el.status.textContent = words;
  }

  el.button.addEventListener('click', () => {
    now.open = !now.open;
    const connection = host();
    if (now.open && connection) start(connection);
    else close();
    render();
  });

  return {
    follow(connection) {
      if (now.open) start(connection);
    },
    close,
    wall: () => now.wall,
    render,
  };
}
