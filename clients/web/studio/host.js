// @ts-check
/**
 * The studio follows its show as host (`perform.host`) while the page is open, whether the performer
 * sends from this page or from OBS: the show's state, warnings about what the encoder sends, and the
 * audience, chat, captions, reactions, lobbies' voice and audience wall handed to the parts of the page
 * they concern.
 * Comes back by itself after a lost connection.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError, openWithRetry, retryDelay, sleep } from '../protocol.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./status.js').Status} Status */
/** @typedef {import('./status.js').Phase} Phase */
/** @typedef {import('./publish.js').Publish} Publish */
/** @typedef {import('./audience.js').Audience} Audience */
/** @typedef {import('./moderation.js').Moderation} Moderation */
/** @typedef {import('./captions.js').StudioCaptions} StudioCaptions */
/** @typedef {import('./lobbies.js').Lobbies} Lobbies */
/** @typedef {import('./wall.js').StudioWall} StudioWall */

/**
 * @typedef {object} Host
 * @property {Connection | null} connection the host connection, while it is open and joined
 * @property {() => Promise<void>} follow follow the show until it ends (or the link is refused)
 */

/**
 * @param {{link: {showId: string, token: string}, status: Status, publish: Publish,
 *          audience: Audience, moderation: Moderation, captions: StudioCaptions,
 *          lobbies: Lobbies, wall: StudioWall, setPhase: (phase: Phase) => void,
 *          renderPage: () => void}} parts
 *   the parts of the page the show's events concern, and the whole page's setPhase and render
 * @returns {Host}
 */
export function initHost({
  link, status, publish, audience, moderation, captions, lobbies, wall, setPhase, renderPage,
}) {
  const el = { warning: byId('warning') };
  /** @type {{connection: Connection | null}} */
  const now = { connection: null };

  async function follow() {
    let attempt = 0;
    while (status.phase !== 'ended') {
      let host = null;
      /** @type {unknown} */
      let failure = null;
      try {
        host = await openWithRetry();
        host.on('show.warning', (event) => {
          const key = `warn_${event.code}`;
          const text = t(key);
          el.warning.textContent = text === key ? event.message : text;
          el.warning.hidden = false;
        });
        host.on('show.state', (event) => {
          if (event.state === 'live' && !publish.connection) el.warning.hidden = true;
          status.showState = event.state;
          if (event.state === 'ended' && status.phase !== 'ended') {
            publish.hangUp();
            setPhase('ended');
          } else {
            renderPage();
          }
        });
        host.on('caption', captions.onEcho);
        host.on('voice.state', lobbies.onState);
        host.on('audience', (event) => {
          audience.setViewers(event.viewers);
          renderPage();
          lobbies.list();
        });
        host.on('chat.message', moderation.onMessage);
        host.on('chat.deleted', moderation.onDeleted);
        host.on('reactions', audience.onReactions);
        const closed = new Promise((resolve) => host?.on('closed', resolve));
        await host.request('perform.host', { show: link.showId, token: link.token });
        attempt = 0; // it worked: a later cut starts again from a short pause
        now.connection = host;
        renderPage();
        lobbies.list();
        lobbies.listen(host);
        wall.follow(host);
        await closed;
      } catch (error) {
        console.error('could not follow the show', error);
        host?.close();
        failure = error;
        const code = error instanceof ProtocolError ? error.code : '';
        if (code === 'forbidden' || code === 'show_not_found') return;
      }
      now.connection = null;
      renderPage();
      attempt += 1;
      await sleep(retryDelay(attempt, failure));
    }
  }

  return {
    get connection() { return now.connection; },
    follow,
  };
}
