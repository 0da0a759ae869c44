// @ts-check
/**
 * The lobbies' voice from the studio: an intermission for everyone (`voice.intermission`) or one
 * lobby on stage (`voice.stage`), the list of lobbies and who sits in them (`lobby.list`), and the
 * lobby on stage heard from this page (listening only, through ../voice.js).
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */
/** @typedef {import('./lobbynames.js').LobbyNames} LobbyNames */
/** @typedef {{id: string, code: string, members: Array<{name: string, head_count: number}>}} ListedLobby */

/**
 * @typedef {object} Lobbies
 * @property {(event: ServerEvent) => void} onState a `voice.state` event
 * @property {() => Promise<void>} list ask for the lobbies again (at most every few seconds)
 * @property {(host: Connection) => Promise<void>} listen hear the lobby on stage on this connection
 * @property {() => void} close stop listening
 * @property {(open: boolean) => void} render the intermission button and the voice's status
 * @property {() => void} renderList every lobby with its "on stage" button
 */

/**
 * @param {{host: () => Connection | null, names: LobbyNames, renderPage: () => void}} options
 *   host: the host connection now; names: what to call the lobbies (shared with the chat feed);
 *   renderPage: the whole page's render
 * @returns {Lobbies}
 */
export function initLobbies({ host, names, renderPage }) {
  const el = {
    intermission: /** @type {HTMLButtonElement} */ (byId('intermission-button')),
    voiceStatus: byId('voice-status'),
    lobbyList: /** @type {HTMLUListElement} */ (byId('lobby-list')),
    lobbiesEmpty: byId('lobbies-empty'),
  };

  /** @type {{intermission: boolean, stage: string | null, lobbies: ListedLobby[], asked: number,
   *           again: number | undefined, voice: {close(): void} | null}} */
  const now = {
    /** The lobbies' voice as the server last told it. */ intermission: false,
    /** the lobby on stage */ stage: null,
    lobbies: [], asked: -Infinity, again: undefined, voice: null,
  };

  function voiceText() {
    const parts = [t(now.intermission ? 'intermission_on' : 'intermission_off')];
    if (now.stage) parts.push(t('stage_now', { lobby: lobbyName(now.stage) }));
    return parts.join(' ');
  }

  /** @param {string} lobby a lobby id */
  function lobbyName(lobby) {
    const code = names.code(lobby);
    return code ? t('feed_lobby', { code }) : t('feed_lobby_n', { n: names.number(lobby) });
  }

  /** @param {{intermission?: boolean, stage?: string | null}} state as the server tells it */
  function take(state) {
    now.intermission = Boolean(state.intermission);
    now.stage = state.stage ?? null;
    renderPage();
    renderList();
  }

  /**
   * A voice command on the host connection; say in words if it did not work.
   * @param {string} type
   * @param {Record<string, unknown>} fields
   */
  async function voiceCommand(type, fields) {
    try {
      const connection = host();
      if (!connection) throw new Error('offline');
      take(await connection.request(type, fields));
    } catch (error) {
      console.warn(type, error);
      el.voiceStatus.textContent = t('voice_unavailable');
    }
  }

  el.intermission.addEventListener('click', async () => {
    await voiceCommand('voice.intermission', { open: !now.intermission });
    el.intermission.focus();
  });

  /**
   * Ask the server which lobbies the show has and who is in them: at most every few seconds, and
   * once more after a burst of comings and goings, so the list ends up right.
   */
  async function list() {
    const connection = host();
    if (!connection) return;
    const wait = now.asked + 3000 - performance.now();
    if (wait > 0) {
      now.again ??= setTimeout(() => {
        now.again = undefined;
        list();
      }, wait);
      return;
    }
    now.asked = performance.now();
    try {
      now.lobbies = (await connection.request('lobby.list')).lobbies ?? [];
    } catch (error) {
      console.warn('no lobby list', error);
    }
    renderList();
  }

  /**
   * Hear the lobby on stage from this page (listening only; no microphone is asked for).
   * @param {Connection} connection the host connection
   */
  async function listen(connection) {
    now.voice?.close();
    now.voice = null;
    try {
      const { LobbyVoice } = await import('../voice.js');
      const voice = new LobbyVoice(connection, { listenOnly: true });
      now.voice = voice;
      await voice.start();
    } catch (error) {
      console.warn('the stage cannot be heard here', error);
    }
  }

  /**
   * A lobby as the performer reads it: its code and who sits there.
   * @param {ListedLobby} lobby
   */
  function lobbyLine(lobby) {
    const who = lobby.members.map((member) => {
      const name = member.name || t('chat_someone');
      return member.head_count > 1
        ? `${name} (${t('members_heads', { count: String(member.head_count) })})` : name;
    });
    return `${t('feed_lobby', { code: lobby.code })}: ${who.join(', ')}`;
  }

  /** Every lobby of the show, each with its "on stage" button. */
  function renderList() {
    const focused = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.lobby;
    const items = now.lobbies.filter((lobby) => lobby.members.length > 0).map((lobby) => {
      names.setCode(lobby.id, lobby.code);
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'lobby-name';
      name.textContent = lobbyLine(lobby);  // names as text, never HTML
      const onStage = now.stage === lobby.id;
      const button = document.createElement('button');
      button.type = 'button';
      button.dataset.lobby = lobby.id;
      button.textContent = t(onStage ? 'stage_end' : 'stage_invite');
      button.setAttribute('aria-label', `${button.textContent}: ${t('feed_lobby', { code: lobby.code })}`);
      if (onStage) button.classList.add('on-stage');
      button.addEventListener('click', async () => {
        await voiceCommand('voice.stage', { lobby: onStage ? null : lobby.id });
      });
      li.append(name, ' ', button);
      return li;
    });
    el.lobbyList.replaceChildren(...items);
    el.lobbiesEmpty.hidden = items.length > 0;
    // the list is drawn anew as people come and go: keep a keyboard user's place in it
    if (focused) {
      /** @type {HTMLElement | null} */ (
        el.lobbyList.querySelector(`button[data-lobby="${CSS.escape(focused)}"]`)
      )?.focus();
    }
  }

  return {
    onState: take,
    list,
    listen,
    close() {
      now.voice?.close();
    },
    render(open) {
      el.intermission.disabled = host() === null || !open;
      el.intermission.dataset.t = now.intermission ? 'intermission_close' : 'intermission_open';
      el.intermission.textContent = t(el.intermission.dataset.t);
      el.voiceStatus.textContent = voiceText();
    },
    renderList,
  };
}
