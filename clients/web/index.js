// @ts-check
/**
 * The front door and the viewer: the programme and the code entry (`/`), then the show itself.
 * `/watch?code=NNNNNN` (the link organisers hand out) opens the show straight away.
 *
 * Watching follows docs/protocol.md: `watch.join` → wait for `live` → `watch.start` (the server's
 * offer) → answer, gathered without trickle → `watch.answer`. A pause keeps the peer connection;
 * a lost connection comes back by itself.
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs` and the shown
 * `state`; it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { Connection, ProtocolError, iceGatheringComplete, openWithRetry } from './protocol.js';

/** @typedef {'opening' | 'scheduled' | 'live' | 'paused' | 'ended' | 'lost'} WatchState */
/** @typedef {{video?: string, audio?: string}} Codecs */

const el = {
  front: /** @type {HTMLElement} */ (document.getElementById('front')),
  form: /** @type {HTMLFormElement} */ (document.getElementById('code-form')),
  input: /** @type {HTMLInputElement} */ (document.getElementById('code')),
  codeStatus: /** @type {HTMLElement} */ (document.getElementById('code-status')),
  list: /** @type {HTMLUListElement} */ (document.getElementById('programme')),
  empty: /** @type {HTMLElement} */ (document.getElementById('programme-empty')),
  watch: /** @type {HTMLElement} */ (document.getElementById('watch')),
  title: /** @type {HTMLElement} */ (document.getElementById('watch-title')),
  status: /** @type {HTMLElement} */ (document.getElementById('watch-status')),
  video: /** @type {HTMLVideoElement} */ (document.getElementById('video')),
  sound: /** @type {HTMLButtonElement} */ (document.getElementById('sound-button')),
  back: /** @type {HTMLButtonElement} */ (document.getElementById('back-button')),
};

// -- the programme and the code entry ------------------------------------------------------------

/** @type {Array<{title: string, state: string, starts_at: string | null, code: string}>} */
let shows = [];

function renderProgramme() {
  el.list.replaceChildren();
  for (const show of shows) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    const title = document.createElement('strong');
    title.textContent = show.title;  // always text, never HTML
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = ` – ${t('state_' + show.state)}`;
    name.append(title, state);
    li.append(name);
    if (show.starts_at) {
      const when = document.createElement('div');
      when.textContent = new Date(show.starts_at).toLocaleString(document.documentElement.lang);
      li.append(when);
    }
    const watchButton = document.createElement('button');
    watchButton.type = 'button';
    watchButton.textContent = t('programme_watch');
    watchButton.setAttribute('aria-label', `${t('programme_watch')}: ${show.title}`);
    watchButton.addEventListener('click', () => openShow(show.code, true));
    li.append(watchButton);
    el.list.append(li);
  }
  el.empty.hidden = shows.length > 0;
}

async function loadProgramme() {
  try {
    const response = await fetch('/api/shows');
    if (response.ok) shows = (await response.json()).shows;
  } catch { /* the programme stays as it was; the code entry still works */ }
  renderProgramme();
}

/** @param {string} text */
function codeProblem(text) {
  el.codeStatus.textContent = text;
  el.input.setAttribute('aria-invalid', 'true');
  el.input.focus();
}

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const digits = el.input.value.replace(/[\s.-]/g, '');
  if (!/^\d{6}$/.test(digits)) {
    codeProblem(t('code_short'));
    return;
  }
  openShow(digits, true);
});

// -- watching ------------------------------------------------------------------------------------

const watch = {
  code: '',
  /** @type {WatchState} */ state: 'opening',
  /** @type {Connection | null} */ connection: null,
  /** @type {RTCPeerConnection | null} */ pc: null,
  /** @type {Codecs | null} the codecs of the current peer connection */ codecs: null,
  /** A video frame has been shown on the current peer connection. */ picture: false,
  /** @type {Promise<void> | null} */ starting: null,
  /** Start media again once the current start is done (codecs changed meanwhile). */ again: false,
  /** @type {AbortController | null} aborts reconnecting when the viewer leaves */ leaving: null,
};

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Codecs | null, readonly state: WatchState}} */
const exposed = {
  get pc() { return watch.pc; },
  get connection() { return watch.connection; },
  get codecs() { return watch.codecs; },
  get state() { return watch.state; },
};
Object.defineProperty(window, 'lampio', { value: exposed });

function renderWatch() {
  const { state } = watch;
  const key = state === 'live' && !watch.picture ? 'watch_waiting_picture' : `watch_${state}`;
  el.status.textContent = t(key);
  el.status.dataset.state = state;
  el.watch.dataset.state = state;
}

/** @param {WatchState} state */
function setState(state) {
  watch.state = state;
  renderWatch();
}

/**
 * Join the show with this code and start watching (from the form, the programme or a link).
 * @param {string} code six digits
 * @param {boolean} byHand the viewer asked for it on the page (not a link opening)
 */
async function openShow(code, byHand) {
  el.codeStatus.textContent = t('watch_opening');
  let connection = null;
  let joined;
  try {
    connection = await Connection.open();
    joined = await join(connection, code);
  } catch (error) {
    connection?.close();
    const problem = /** @type {{code?: string}} */ (error).code;
    if (problem === 'show_not_found' || problem === 'invalid_input') codeProblem(t('code_wrong'));
    else if (problem === 'rate_limited') codeProblem(t('code_wait'));
    else el.codeStatus.textContent = t('error');
    return;
  }
  el.input.removeAttribute('aria-invalid');
  el.codeStatus.textContent = '';
  watch.code = code;
  watch.leaving = new AbortController();
  if (byHand) history.pushState({ watch: code }, '', `/watch?code=${code}`);
  el.title.textContent = joined.show.title;  // always text, never HTML
  document.title = `${joined.show.title} – Lämpiö Live`;
  el.front.hidden = true;
  el.watch.hidden = false;
  el.title.focus();
  follow(connection, joined);
}

/**
 * `watch.join`, with the show's events already subscribed so none is missed.
 * @param {Connection} connection
 * @param {string} code
 * @returns {Promise<{show: {title: string, state: string}, live: boolean, codecs: Codecs | null,
 *                    early: import('./protocol.js').ServerEvent[]}>}
 */
async function join(connection, code) {
  /** @type {import('./protocol.js').ServerEvent[]} */
  const early = [];
  const off = connection.on('show.state', (event) => early.push(event));
  try {
    const joined = await connection.request('watch.join', { code });
    return { ...joined, early };
  } finally {
    off();
  }
}

/**
 * Make `connection` the current one and act on the show's state now and from now on.
 * @param {Connection} connection
 * @param {Awaited<ReturnType<typeof join>>} joined
 */
function follow(connection, joined) {
  watch.connection = connection;
  connection.on('show.state', (event) => onShowState(connection, event.state, event.codecs));
  connection.on('closed', () => onLost(connection));
  if (joined.live) onShowState(connection, 'live', joined.codecs);
  else onShowState(connection, joined.show.state === 'live' ? 'scheduled' : joined.show.state);
  for (const event of joined.early) onShowState(connection, event.state, event.codecs);
}

/**
 * @param {Connection} connection the connection the news came on (stale ones are ignored)
 * @param {string} state
 * @param {Codecs | null} [codecs]
 */
function onShowState(connection, state, codecs) {
  if (connection !== watch.connection) return;
  if (state === 'live') {
    const changed = !watch.codecs || !codecs
      || codecs.video !== watch.codecs.video || codecs.audio !== watch.codecs.audio;
    if (!watch.pc || changed) startMedia(connection);
    else setState('live');
  } else if (state === 'ended') {
    closeMedia();
    setState('ended');
  } else if (state === 'paused' || state === 'scheduled') {
    setState(state);  // a paused show keeps its peer connection: frames simply continue later
  }
}

/**
 * Ask for the server's offer, answer it and let media flow (again, if codecs changed).
 * @param {Connection} connection
 */
function startMedia(connection) {
  if (watch.starting) {
    watch.again = true;
    return;
  }
  watch.starting = (async () => {
    try {
      do {
        watch.again = false;
        await negotiate(connection);
      } while (watch.again && connection === watch.connection);
    } catch (error) {
      if (connection !== watch.connection) return;
      if (error instanceof ProtocolError && error.code === 'not_live') {
        setState('paused');  // the performer left meanwhile; `live` will come as an event
      } else if (!(error instanceof ProtocolError && error.code === 'closed')) {
        console.error('watching failed', error);
        closeMedia();
        setState('lost');
        connection.close();  // onLost reconnects and starts over
      }
    } finally {
      watch.starting = null;
    }
  })();
}

/** @param {Connection} connection */
async function negotiate(connection) {
  const offer = await connection.request('watch.start');
  if (connection !== watch.connection) return;
  closeMedia();
  const pc = new RTCPeerConnection({ iceServers: connection.iceServers });
  watch.pc = pc;
  watch.codecs = offer.codecs;
  watch.picture = false;
  setState('live');
  pc.addEventListener('connectionstatechange', () => {
    if (pc === watch.pc && pc.connectionState === 'failed') {
      closeMedia();
      setState('lost');
      connection.close();
    }
  });
  await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
  el.video.srcObject = new MediaStream(pc.getReceivers().map((receiver) => receiver.track));
  play();
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGatheringComplete(pc);
  if (pc !== watch.pc) return;
  await connection.request('watch.answer', { sdp: pc.localDescription?.sdp ?? '' });
}

/** Play with sound if the browser allows it; otherwise silently, with a big "sound on" button. */
function play() {
  el.video.muted = false;
  el.video.play().catch(() => {
    el.video.muted = true;
    el.sound.hidden = false;
    el.video.play().catch(() => { /* shown again by the next frame or the sound button */ });
  });
}

el.sound.addEventListener('click', () => {
  el.video.muted = false;
  el.video.play().then(() => {
    el.sound.hidden = true;
  }, () => {
    el.video.muted = true;
  });
});

el.video.addEventListener('resize', () => {
  if (el.video.videoWidth > 0 && !watch.picture) {
    watch.picture = true;
    renderWatch();
  }
});

function closeMedia() {
  const pc = watch.pc;
  watch.pc = null;
  watch.codecs = null;
  watch.picture = false;
  pc?.close();
  el.video.srcObject = null;
}

/**
 * The socket closed under us: come back by ourselves, join again and carry on.
 * @param {Connection} connection
 */
async function onLost(connection) {
  if (connection !== watch.connection || !watch.leaving) return;
  const signal = watch.leaving.signal;
  watch.connection = null;
  closeMedia();
  if (watch.state !== 'ended') setState('lost');
  else return;
  try {
    while (!signal.aborted) {
      const next = await openWithRetry({ signal });
      try {
        const joined = await join(next, watch.code);
        if (signal.aborted) {
          next.close();
          return;
        }
        follow(next, joined);
        return;
      } catch (error) {
        next.close();
        if (error instanceof ProtocolError && error.code === 'show_not_found') {
          setState('ended');
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  } catch { /* aborted: the viewer left */ }
}

/** Stop watching and go back to the programme. */
function leave() {
  if (!watch.leaving) return;
  watch.leaving.abort();
  watch.leaving = null;
  const connection = watch.connection;
  watch.connection = null;
  closeMedia();
  if (connection) {
    connection.request('watch.leave', {}, { timeout: 2 }).catch(() => {}).finally(
      () => connection.close(),
    );
  }
  el.sound.hidden = true;
  el.watch.hidden = true;
  el.front.hidden = false;
  document.title = 'Lämpiö Live';
  el.input.focus();
  loadProgramme();
}

el.back.addEventListener('click', () => {
  leave();
  if (location.pathname !== '/') history.replaceState(null, '', '/');
});
window.addEventListener('popstate', () => {
  const code = history.state?.watch;
  if (!code) leave();
  else if (!watch.leaving) openShow(code, false);
});

// -- start ---------------------------------------------------------------------------------------

setupLangButtons(() => {
  renderProgramme();
  renderWatch();
});
applyLang();
loadProgramme();
const preset = new URLSearchParams(location.search).get('code');
if (preset) {
  el.input.value = preset;
  const digits = preset.replace(/[\s.-]/g, '');
  if (/^\d{6}$/.test(digits)) openShow(digits, false);
}
