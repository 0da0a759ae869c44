// @ts-check
/**
 * The performer studio (`/studio`, formerly `/perform`): reads "#<show id>.<performer token>" (a
 * fragment, so it never reaches server logs), shows the chosen camera and microphone, and publishes
 * them to the show with `perform.start`; pauses (`perform.stop`) and ends it (`perform.end`), with the
 * audience sound coming back (`hall.mute` silences it).
 *
 * `?codec=H264` (or `VP8`) makes the browser offer only that video codec; tests use it, and it can
 * help a performer whose machine encodes one of them in hardware.
 *
 * While the page is open it also follows the show as its host (`perform.host`): the audience, the
 * chat of every lobby with moderation (delete a message, mute a viewer, remove a viewer), the
 * reactions as meters of the last few seconds, live captions a helper types (`caption.send`), and
 * the lobbies' voice: an intermission for everyone (`voice.intermission`) or one lobby on stage
 * (`voice.stage`), and the audience wall: the cameras of the viewers who chose to show themselves to
 * the performer (off until the performer opens it). The show's code, QR code and links are there
 * to copy.
 *
 * This module wires the page's parts (in `studio/`): the status line, the preview (camera and
 * microphone), publishing, the audience (count and reaction meters), moderation (the chat feed),
 * captions, the lobbies' voice, the audience wall, the show's links, and the host connection.
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs` and the host
 * connection (`host`) and the audience `wall` (../cameras.js's Wall); it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { byId } from './dom.js';
import { markEmoji } from './foyer.js';
import { initAudience } from './studio/audience.js';
import { initCaptions } from './studio/captions.js';
import { initHost } from './studio/host.js';
import { initLinks } from './studio/links.js';
import { initLobbies } from './studio/lobbies.js';
import { LobbyNames } from './studio/lobbynames.js';
import { initModeration } from './studio/moderation.js';
import { initPreview } from './studio/preview.js';
import { initPublish } from './studio/publish.js';
import { initStatus } from './studio/status.js';
import { initWall } from './studio/wall.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./studio/status.js').Phase} Phase */

const [showId, token] = location.hash.slice(1).split('.');
const wantedCodec = new URLSearchParams(location.search).get('codec');
const link = { showId, token };

const el = { title: byId('show-title') };

const names = new LobbyNames();
const status = initStatus();
const audience = initAudience();
const preview = initPreview({
  senders: () => publish.pc?.getSenders() ?? [],
  say: (text) => status.say(text),
});
const publish = initPublish({
  link, wantedCodec, status, preview, onViewers: (viewers) => audience.setViewers(viewers),
  host: () => host.connection, setPhase, renderPage: render,
});
const moderation = initModeration({ host: () => host.connection, names });
const captions = initCaptions({ host: () => host.connection });
const lobbies = initLobbies({ host: () => host.connection, names, renderPage: render });
const wall = initWall({ host: () => host.connection, names });
const links = initLinks(link);
const host = initHost({
  link, status, publish, audience, moderation, captions, lobbies, wall, setPhase,
  renderPage: render,
});

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Record<string, string> | null, readonly host: Connection | null,
 *          readonly wall: import('./cameras.js').Wall | null}} */
const exposed = {
  get pc() { return publish.pc; },
  get connection() { return publish.connection; },
  get codecs() { return publish.codecs; },
  get host() { return host.connection; },
  get wall() { return wall.wall(); },
};
Object.defineProperty(window, 'lampio', { value: exposed });

function render() {
  status.render();
  publish.render();
  audience.render(status.open);
  lobbies.render(status.open);
  wall.render();
}

/** @param {Phase} phase */
function setPhase(phase) {
  status.phase = phase;
  render();
}

async function load() {
  if (!showId || !token) {
    setPhase('no-link');
    return;
  }
  let response;
  try {
    response = await fetch(`/api/shows/${encodeURIComponent(showId)}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
  } catch {
    status.say(t('error'));
    return;
  }
  if (!response.ok) {
    setPhase('invalid');
    return;
  }
  const show = await response.json();
  el.title.textContent = show.title;  // always text, never HTML
  byId('recorded-note').hidden = !show.record;  // said before going live: the performer agrees
  document.title = `${show.title} – ${t('studio_name')} – Lämpiö Live`;
  links.fill(show);
  host.follow();
  status.showState = show.state;
  if (show.state === 'ended') {
    setPhase('ended');
    return;
  }
  setPhase('asking');
  try {
    await preview.open();
  } catch (error) {
    console.error('camera or microphone refused', error);
    setPhase('no-camera');
    return;
  }
  setPhase('ready');
  preview.listDevices().catch((error) => console.warn('no device list', error));
}

window.addEventListener('pagehide', () => {
  lobbies.close();
  wall.close();
  publish.hangUp();
  host.connection?.close();
});
setupLangButtons(() => {
  render();
  moderation.render();
  links.renderLabels();
  lobbies.renderList();
});
applyLang();
markEmoji();
render();
load();
