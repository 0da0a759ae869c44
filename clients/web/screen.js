// @ts-check
/**
 * The care-home screen (`/screen`): a TV or kiosk that nobody touches. Until staff pair it, it shows
 * a pairing code; from then on it remembers itself (its token in localStorage), joins the show
 * staff chose (or the programme's next one) as a viewer counting the room's residents, plays it
 * full screen with large captions, keeps the display awake and comes back by itself, forever,
 * after network cuts and server restarts. Staff steer it from their phone (`/screen/pair`); their
 * choices arrive as `screen.control` / `screen.react` events (docs/protocol.md, "Screens").
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), `phase` and `sound`.
 */
import { setupLangButtons, t } from './i18n.js';
import { ProtocolError, iceGatheringComplete, openWithRetry } from './protocol.js';
import { initRoomCamera } from './screencamera.js';

/**
 * @typedef {'connecting' | 'reconnecting' | 'pairing' | 'waiting' | 'scheduled' | 'live' |
 *           'paused' | 'ended'} Phase
 * @typedef {{id: string, name: string, show: string | null, head_count: number, volume: number,
 *            ticket?: string | null, camera?: string}} ScreenSettings
 * @typedef {{id: string, title: string, code: string, state: string, starts_at: string | null,
 *            access?: string}} Show
 * @typedef {import('./protocol.js').Connection} Connection
 * @typedef {import('./protocol.js').ServerEvent} ServerEvent
 */

const TOKEN_KEY = 'lampio.screen.token';
const SEAT_KEY = 'lampio.screen.seat';
const LOBBY_KEY = 'lampio.screen.lobby';  // {show, lobby}: the lobby it sits in, for coming back
const STATUS_EVERY = 10;  // seconds between reports to the staff's phones
const CAPTION_FOR = 12;  // seconds a caption stays without a new one
const NOTE_FOR = 6;
const QUICK = 5;  // a connection that ends within this many seconds counts as a failed attempt

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const el = {
  title: byId('tv-title'),
  status: byId('tv-status'),
  heads: byId('tv-heads'),
  pairing: byId('pairing'),
  pairUrl: byId('pair-url'),
  pairCode: byId('pair-code'),
  pairQr: /** @type {HTMLImageElement} */ (byId('pair-qr')),
  pairQrFigure: byId('pair-qr-figure'),
  message: byId('tv-message'),
  stage: byId('tv-stage'),
  video: /** @type {HTMLVideoElement} */ (byId('tv-video')),
  caption: byId('tv-caption'),
  sound: /** @type {HTMLButtonElement} */ (byId('tv-sound')),
  note: byId('tv-note'),
  camera: byId('tv-camera'),
};

const roomCamera = initRoomCamera({ line: el.camera, onChange: () => {} });

const tv = {
  /** @type {Phase} */ phase: 'connecting',
  /** @type {Connection | null} */ connection: null,
  /** @type {{code: string, code_display: string} | null} */ pairing: null,
  /** @type {ScreenSettings | null} */ screen: null,
  /** @type {Show | null} the show this screen shows or waits for */ show: null,
  /** The id of the show it means to watch ('' none). */ target: '',
  /** The id of the show `watch.join` seated it in, and with how many heads. */ joined: '',
  joinedHeads: 0,
  /** @type {{show: string, lobby: string}} the lobby it sits in (kept across reconnects) */
  seat: readSeat(),
  /** The target went live while joining. */ liveSeen: false,
  /** The node sends a smaller picture for a weak link (`watch.picture`). */ smaller: false,
  /** @type {RTCPeerConnection | null} */ pc: null,
  /** @type {{video?: string, audio?: string} | null} */ codecs: null,
  /** @type {Promise<void> | null} */ starting: null,
  again: false,
  /** @type {'on' | 'blocked' | 'off'} */ sound: 'off',
  /** Actions run one after another: a control event never races a join. */
  /** @type {Promise<unknown>} */ busy: Promise.resolve(),
  pairTimer: 0,
  statusTimer: 0,
  captionTimer: 0,
  noteTimer: 0,
};

Object.defineProperty(window, 'lampio', {
  value: {
    get pc() { return tv.pc; },
    get connection() { return tv.connection; },
    get phase() { return tv.phase; },
    get sound() { return tv.sound; },
  },
});

/** @returns {{show: string, lobby: string}} */
function readSeat() {
  try {
    const seat = JSON.parse(localStorage.getItem(LOBBY_KEY) ?? '');
    if (typeof seat?.show === 'string' && typeof seat?.lobby === 'string') return seat;
  } catch { /* none yet */ }
  return { show: '', lobby: '' };
}

/** @param {string} show @param {string} lobby */
function keepSeat(show, lobby) {
  tv.seat = { show, lobby };
  if (lobby) localStorage.setItem(LOBBY_KEY, JSON.stringify(tv.seat));
  else localStorage.removeItem(LOBBY_KEY);
}

/**
 * Run `fn` after the actions before it; its failure is logged and does not stop the next.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
function act(fn) {
  const next = tv.busy.then(fn);
  tv.busy = next.catch((error) => console.warn('screen:', error));
  return next;
}

const sleep = (/** @type {number} */ seconds) =>
  new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/**
 * Something the screen cannot go on without failed (a hello, a report): close the connection, so
 * that the run loop starts over (with its growing pauses) instead of leaving the screen stuck.
 * @param {Connection} connection
 * @param {unknown} error
 */
function startOver(connection, error) {
  if (connection !== tv.connection) return;
  console.warn('screen: starting over', error);
  connection.close();
}

/**
 * Say hello again (after pairing, unpairing, or when the code expires); if that fails, start over.
 * @param {Connection} connection
 */
function helloAgain(connection) {
  act(() => hello(connection)).catch((error) => startOver(connection, error));
}

// -- what the screen shows -----------------------------------------------------------------------

function render() {
  const { phase } = tv;
  document.title = t('screen_doc_title');
  // a smaller picture on a weak link is said, calmly, never left a mystery
  el.status.textContent = t(`screen_${phase}`)
    + (phase === 'live' && tv.smaller ? ` ${t('picture_smaller')}` : '');
  el.status.dataset.state = phase;
  document.body.dataset.phase = phase;
  el.title.textContent = tv.show && phase !== 'pairing' ? tv.show.title : 'Lämpiö Live';
  el.heads.textContent = tv.screen && phase !== 'pairing'
    ? t('screen_heads', { count: String(tv.screen.head_count) }) : '';
  el.pairing.hidden = phase !== 'pairing';
  el.pairUrl.textContent = `${location.origin}/screen/pair`;
  el.pairCode.textContent = tv.pairing?.code_display ?? '';
  el.pairQr.alt = t('screen_pair_qr_alt', { url: `${location.origin}/screen/pair` });
  const picture = phase === 'live' || phase === 'paused';
  el.stage.hidden = !picture;
  el.message.hidden = picture || phase === 'pairing';
  let message = t(`screen_${phase}`);
  if (phase === 'scheduled' && tv.show?.starts_at) {
    const time = new Date(tv.show.starts_at).toLocaleString(document.documentElement.lang, {
      weekday: 'long', day: 'numeric', month: 'numeric', hour: 'numeric', minute: '2-digit',
    });
    message += ' ' + t('screen_starts', { time });
  }
  el.message.textContent = message;
}

/**
 * The QR code of the phone's pairing page with this code filled in (docs/screens.md); asked by
 * POST, so that the code is not in a logged URL. Without it the code and the address still show.
 * @param {string} code
 */
async function showPairQr(code) {
  el.pairQrFigure.hidden = true;
  try {
    const response = await fetch('/api/screens/pair-qr', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }),
    });
    if (!response.ok || tv.pairing?.code !== code) return;
    el.pairQr.src = `data:image/svg+xml;base64,${btoa(await response.text())}`;
    el.pairQrFigure.hidden = false;
  } catch (error) {
    console.warn('screen: no QR code', error);
  }
}

/** @param {Phase} phase */
function setPhase(phase) {
  const changed = phase !== tv.phase;
  tv.phase = phase;
  render();
  if (changed && tv.screen && tv.connection) report(tv.connection);
}

/** @param {string} text */
function note(text) {
  el.note.textContent = text;
  clearTimeout(tv.noteTimer);
  tv.noteTimer = window.setTimeout(() => { el.note.textContent = ''; }, NOTE_FOR * 1000);
}

/** @param {unknown} text */
function showCaption(text) {
  const words = typeof text === 'string' ? text.trim() : '';
  el.caption.textContent = words;
  el.caption.hidden = !words;
  clearTimeout(tv.captionTimer);
  if (words) {
    tv.captionTimer = window.setTimeout(() => { el.caption.hidden = true; }, CAPTION_FOR * 1000);
  }
}

function applyVolume() {
  if (tv.screen) el.video.volume = Math.min(1, Math.max(0, tv.screen.volume / 100));
}

// -- staying connected, forever ------------------------------------------------------------------

async function run() {
  let failures = 0;
  for (;;) {
    const connection = await openWithRetry({
      onRetry: () => setPhase(tv.screen || tv.pairing ? 'reconnecting' : 'connecting'),
    });
    const opened = performance.now();
    const closed = new Promise((resolve) => connection.on('closed', resolve));
    tv.connection = connection;
    connection.on('*', (event) => onEvent(connection, event));
    try {
      await act(() => hello(connection));
    } catch (error) {
      console.warn('screen: could not start', error);
      connection.close();
    }
    await closed;
    tv.connection = null;
    clearInterval(tv.statusTimer);
    clearTimeout(tv.pairTimer);
    closeMedia();
    tv.joined = '';  // tv.seat stays: the same member comes back to the same lobby
    setPhase('reconnecting');
    // a node that accepts and then drops us at once: wait longer each time (at most 15 s)
    failures = (performance.now() - opened) / 1000 < QUICK ? failures + 1 : 0;
    if (failures) await sleep(Math.min(15, 2 ** (failures - 1)));
  }
}

/**
 * Say who we are: a paired screen gets its settings and show, any other a pairing code.
 * @param {Connection} connection
 */
async function hello(connection) {
  if (connection !== tv.connection) return;
  const token = localStorage.getItem(TOKEN_KEY);
  const reply = await connection.request('screen.hello', token ? { token } : {});
  if (connection !== tv.connection) return;
  clearTimeout(tv.pairTimer);
  if (reply.state === 'pairing') {
    localStorage.setItem(TOKEN_KEY, reply.token);
    await leaveShow(connection);
    tv.screen = null;
    tv.show = null;
    tv.target = '';
    tv.pairing = reply;
    setPhase('pairing');
    showPairQr(reply.code);
    // when the code expires, ask again: the server hands out a new one, shown by itself
    tv.pairTimer = window.setTimeout(() => helloAgain(connection), (reply.expires_in + 1) * 1000);
    return;
  }
  tv.pairing = null;
  tv.screen = reply.screen;
  applyVolume();
  await goTo(connection, reply.show);
  clearInterval(tv.statusTimer);
  tv.statusTimer = window.setInterval(() => report(connection), STATUS_EVERY * 1000);
  report(connection);
}

/**
 * Tell the staff's phones what this screen is doing; the answer says what it should show now.
 * @param {Connection} connection
 */
function report(connection) {
  act(async () => {
    if (connection !== tv.connection || !tv.screen) return;
    const state = tv.phase === 'reconnecting' ? 'lost' : tv.phase;
    if (state === 'pairing') return;
    let reply;
    try {
      reply = await connection.request('screen.status', {
        state, sound: tv.sound, show: tv.target || null,
      });
    } catch (error) {
      if (!(error instanceof ProtocolError && error.code === 'screen_not_found')) throw error;
      // forgotten while no `screen.unpaired` could reach us: drop the token, show a new code
      localStorage.removeItem(TOKEN_KEY);
      await hello(connection);
      return;
    }
    if (connection !== tv.connection) return;
    tv.screen = reply.screen;
    applyVolume();
    render();
    await goTo(connection, reply.show);
  }).catch((error) => startOver(connection, error));
}

/**
 * @param {Connection} connection
 * @param {ServerEvent} event
 */
function onEvent(connection, event) {
  if (connection !== tv.connection) return;
  switch (event.type) {
    case 'screen.paired':
      helloAgain(connection);
      break;
    case 'screen.unpaired':
      localStorage.removeItem(TOKEN_KEY);
      helloAgain(connection);
      break;
    case 'screen.control':
      tv.screen = event.screen;
      applyVolume();
      render();
      // staff turned the room's camera on or off (it follows only while the TV is seated)
      if (tv.joined) roomCamera.follow(connection, tv.screen?.camera ?? 'off');
      report(connection);  // the answer carries the show to go to, now
      break;
    case 'screen.react':
      react(connection, event.kind);
      break;
    case 'show.state':
      onShowState(connection, event);
      break;
    case 'show.updated':
      // the organiser changed the show (its title, its time): the room sees it as it is now
      if (tv.show && event.show === tv.show.id) {
        tv.show = { ...tv.show, ...event.public };
        render();
        report(connection);
      }
      break;
    case 'watch.picture':
      tv.smaller = String(event.picture ?? 'original') !== 'original';
      render();
      break;
    case 'caption':
      if (!event.show || event.show === tv.target) showCaption(event.text);
      break;
  }
}

/**
 * @param {Connection} connection
 * @param {string} kind
 */
function react(connection, kind) {
  if (!tv.joined) return;
  connection.request('react', { kind }).then(
    () => note(t('screen_reacted', { kind: t(`screen_kind_${kind}`) })),
    () => { /* too many at once: the room's next one goes through */ },
  );
}

// -- the show ------------------------------------------------------------------------------------

/**
 * Watch `show` (null: nothing on the programme) with the room's head count; a change of head
 * count keeps the picture playing.
 * @param {Connection} connection
 * @param {Show | null} show
 */
async function goTo(connection, show) {
  if (connection !== tv.connection || !tv.screen) return;
  if (!show) {
    await leaveShow(connection);
    tv.show = null;
    tv.target = '';
    setPhase('waiting');
    return;
  }
  const heads = tv.screen.head_count;
  if (tv.joined === show.id && tv.joinedHeads === heads) return;
  const same = tv.joined === show.id;
  if (same) {
    // the room changed size: the seat counts the new head count, the picture plays on
    try {
      await connection.request('watch.heads');
      if (connection === tv.connection) tv.joinedHeads = heads;
      render();
      return;
    } catch (error) {
      console.warn('the head count did not change in place; taking the seat again', error);
    }
  }
  const lobby = tv.seat.show === show.id ? tv.seat.lobby : '';  // ours, before a reconnect too
  if (!same) {
    await leaveShow(connection);
    tv.liveSeen = false;
  }
  tv.show = show;
  tv.target = show.id;
  /** @type {Record<string, unknown>} */
  // a ticketed show's screen takes part with the ticket staff gave it
  const fields = {
    code: show.access === 'ticket' && tv.screen.ticket ? tv.screen.ticket : show.code,
    head_count: heads,
    screen: true,
  };
  if (tv.screen.name) fields.name = tv.screen.name;
  // the same member (session) of the same lobby as before, also after a reconnect or a reload
  const session = localStorage.getItem(SEAT_KEY);
  if (session) fields.session = session;
  if (lobby) fields.lobby = lobby;
  let joined;
  try {
    try {
      joined = await connection.request('watch.join', fields);
    } catch (error) {
      if (!(error instanceof ProtocolError) || !fields.lobby) throw error;
      delete fields.lobby;  // our lobby filled up or closed meanwhile: any seat will do
      joined = await connection.request('watch.join', fields);
    }
  } catch (error) {
    if (error instanceof ProtocolError && ['show_not_found', 'show_cancelled'].includes(error.code)) {
      tv.target = '';  // it ended meanwhile: the next report finds the next one
      tv.show = null;
      setPhase('waiting');
      return;
    }
    throw error;
  }
  if (connection !== tv.connection) return;
  tv.joined = show.id;
  tv.joinedHeads = heads;
  keepSeat(show.id, joined.lobby?.code ?? '');
  localStorage.setItem(SEAT_KEY, joined.session);
  tv.show = joined.show;
  render();
  roomCamera.follow(connection, tv.screen?.camera ?? 'off');
  if (same) return;
  if (joined.live || tv.liveSeen) startMedia(connection);
  else setPhase(joined.show.state === 'paused' ? 'paused' : 'scheduled');
}

/** @param {Connection} connection */
async function leaveShow(connection) {
  closeMedia();
  roomCamera.close();
  keepSeat('', '');
  if (!tv.joined) return;
  tv.joined = '';
  await connection.request('watch.leave').catch(() => {});
}

/**
 * @param {Connection} connection
 * @param {ServerEvent} event
 */
function onShowState(connection, event) {
  if (event.show !== tv.target) return;
  if (tv.joined !== tv.target) {
    tv.liveSeen = event.state === 'live';  // joining right now: act once seated
    return;
  }
  if (event.state === 'live') {
    const codecs = event.codecs;
    const changed = !tv.codecs || !codecs
      || codecs.video !== tv.codecs.video || codecs.audio !== tv.codecs.audio;
    if (!tv.pc || changed) startMedia(connection);
    else setPhase('live');
  } else if (event.state === 'ended') {
    closeMedia();
    tv.joined = '';
    setPhase('ended');  // the next report moves on to the programme's next show
  } else if (event.state === 'paused' || event.state === 'scheduled') {
    setPhase(event.state);  // the peer connection stays: frames continue later
  }
}

/** @param {Connection} connection */
function startMedia(connection) {
  if (tv.starting) {
    tv.again = true;
    return;
  }
  tv.starting = (async () => {
    try {
      do {
        tv.again = false;
        await negotiate(connection);
      } while (tv.again && connection === tv.connection);
    } catch (error) {
      if (connection !== tv.connection) return;
      if (error instanceof ProtocolError && error.code === 'not_live') {
        setPhase('paused');  // `live` comes again as an event
      } else if (!(error instanceof ProtocolError && error.code === 'closed')) {
        console.error('screen: watching failed', error);
        connection.close();  // the run loop starts over
      }
    } finally {
      tv.starting = null;
    }
  })();
}

/** @param {Connection} connection */
async function negotiate(connection) {
  const offer = await connection.request('watch.start');
  if (connection !== tv.connection) return;
  closeMedia();
  const pc = new RTCPeerConnection({ iceServers: connection.iceServers });
  tv.pc = pc;
  tv.codecs = offer.codecs;
  setPhase('live');
  pc.addEventListener('connectionstatechange', () => {
    if (pc === tv.pc && pc.connectionState === 'failed') connection.close();
  });
  await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
  el.video.srcObject = new MediaStream(pc.getReceivers().map((receiver) => receiver.track));
  play();
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGatheringComplete(pc);
  if (pc !== tv.pc) return;
  await connection.request('watch.answer', { sdp: pc.localDescription?.sdp ?? '' });
}

function closeMedia() {
  tv.smaller = false;
  const pc = tv.pc;
  tv.pc = null;
  tv.codecs = null;
  pc?.close();
  el.video.srcObject = null;
}

// -- sound, full screen and staying awake --------------------------------------------------------

/** @param {'on' | 'blocked' | 'off'} sound */
function setSound(sound) {
  if (sound === tv.sound) return;
  tv.sound = sound;
  el.sound.hidden = sound !== 'blocked';
  if (tv.connection) report(tv.connection);
}

/** Play with sound if the browser allows (kiosk flags do); else silently, with one big button. */
function play() {
  applyVolume();
  el.video.muted = false;
  el.video.play().then(() => setSound('on'), () => {
    el.video.muted = true;
    setSound('blocked');
    el.video.play().catch(() => { /* the next frame or the sound button plays it */ });
  });
}

el.sound.addEventListener('click', () => {
  el.video.muted = false;
  el.video.play().then(() => setSound('on'), () => { el.video.muted = true; });
  // the same tap may fill the screen (kiosk browsers already do)
  if (!document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
});

/** @type {{release: () => Promise<void>} | null} */
let wakeLock = null;

async function keepAwake() {
  const lock = /** @type {any} */ (navigator).wakeLock;
  if (!lock || document.visibilityState !== 'visible') return;
  try {
    wakeLock = await lock.request('screen');
  } catch {
    wakeLock = null;  // not allowed here (plain http elsewhere than localhost): see docs/screens.md
  }
}
// the browser drops the lock whenever the page is hidden; take it again when it shows
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && !wakeLock) keepAwake();
  if (document.visibilityState === 'hidden') wakeLock = null;
});

setupLangButtons(render);
render();
keepAwake();
run();
