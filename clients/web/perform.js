// @ts-check
/**
 * The performer's page: reads "#<show id>.<performer token>" (a fragment, so it never reaches
 * server logs), shows the camera, and publishes it to the show with `perform.start`.
 *
 * `?codec=H264` (or `VP8`) makes the browser offer only that video codec; tests use it, and it can
 * help a performer whose machine encodes one of them in hardware.
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`) and negotiated `codecs`; it gives a
 * page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { Connection, iceGatheringComplete } from './protocol.js';

/**
 * @typedef {'loading' | 'no-link' | 'invalid' | 'asking' | 'no-camera' | 'ready' | 'starting'
 *   | 'publishing' | 'failed' | 'lost' | 'ended'} Phase
 */

const [showId, token] = location.hash.slice(1).split('.');
const wantedCodec = new URLSearchParams(location.search).get('codec');

const el = {
  title: /** @type {HTMLElement} */ (document.getElementById('show-title')),
  status: /** @type {HTMLElement} */ (document.getElementById('perform-status')),
  audience: /** @type {HTMLElement} */ (document.getElementById('audience')),
  stage: /** @type {HTMLElement} */ (document.getElementById('stage')),
  preview: /** @type {HTMLVideoElement} */ (document.getElementById('preview')),
  button: /** @type {HTMLButtonElement} */ (document.getElementById('live-button')),
  facts: /** @type {HTMLElement} */ (document.getElementById('show-facts')),
  code: /** @type {HTMLElement} */ (document.getElementById('show-code')),
  state: /** @type {HTMLElement} */ (document.getElementById('show-state')),
  key: /** @type {HTMLElement} */ (document.getElementById('stream-key')),
  whip: /** @type {HTMLElement} */ (document.getElementById('whip-url')),
  rtmp: /** @type {HTMLElement} */ (document.getElementById('rtmp-url')),
  rotate: /** @type {HTMLButtonElement} */ (document.getElementById('rotate-key')),
  keyStatus: /** @type {HTMLElement} */ (document.getElementById('key-status')),
  warning: /** @type {HTMLElement} */ (document.getElementById('warning')),
};

const page = {
  /** @type {Phase} */ phase: 'loading',
  /** The show's state as the server last told it. */ showState: 'scheduled',
  /** @type {number | null} */ viewers: null,
  errorCode: '',
  /** @type {MediaStream | null} */ stream: null,
  /** @type {Connection | null} */ connection: null,
  /** @type {RTCPeerConnection | null} */ pc: null,
  /** @type {Record<string, string> | null} */ codecs: null,
};

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Record<string, string> | null}} */
const exposed = {
  get pc() { return page.pc; },
  get connection() { return page.connection; },
  get codecs() { return page.codecs; },
};
Object.defineProperty(window, 'lampio', { value: exposed });

/** @returns {string} the status line for the current phase */
function statusText() {
  switch (page.phase) {
    case 'loading': return '';
    case 'no-link': return t('perform_link_missing');
    case 'invalid': return t('perform_link_invalid');
    case 'asking': return t('perform_camera_asking');
    case 'no-camera': return t('perform_no_camera');
    case 'ready': return page.showState === 'paused' ? t('perform_paused') : t('perform_ready');
    case 'starting': return t('perform_starting');
    case 'publishing': return page.showState === 'live' ? t('perform_live') : t('perform_starting');
    case 'failed': return t('perform_failed', { code: page.errorCode });
    case 'lost': return t('perform_lost');
    case 'ended': return t('perform_ended');
  }
}

function render() {
  const { phase } = page;
  el.status.textContent = statusText();
  el.status.dataset.phase = phase === 'publishing' && page.showState === 'live' ? 'live' : phase;
  const sending = phase === 'starting' || phase === 'publishing';
  const key = sending ? 'stop_live' : 'go_live';
  el.button.dataset.t = key;
  el.button.textContent = t(key);
  el.button.classList.toggle('stop', sending);
  el.button.hidden = !['ready', 'starting', 'publishing', 'failed', 'lost'].includes(phase);
  el.button.disabled = phase === 'starting';
  el.audience.hidden = phase !== 'publishing' || page.viewers === null;
  el.audience.textContent = t('viewers', { count: String(page.viewers ?? 0) });
  el.state.textContent = t('state_' + page.showState);
}

/** @param {Phase} phase */
function setPhase(phase) {
  page.phase = phase;
  render();
}

/**
 * Offer only this video codec (`VP8`, `H264`), with RTX for resending lost packets.
 * Must run before createOffer.
 * @param {RTCPeerConnection} pc
 * @param {string} name
 */
function preferVideoCodec(pc, name) {
  const mime = ('video/' + name.replace(/^video\//i, '')).toLowerCase();
  const codecs = RTCRtpSender.getCapabilities('video')?.codecs ?? [];
  const wanted = codecs.filter((codec) => codec.mimeType.toLowerCase() === mime);
  if (wanted.length === 0) {
    console.warn('this browser cannot send', mime);
    return;
  }
  const rtx = codecs.filter((codec) => codec.mimeType.toLowerCase() === 'video/rtx');
  for (const transceiver of pc.getTransceivers()) {
    if (transceiver.sender.track?.kind === 'video') {
      transceiver.setCodecPreferences([...wanted, ...rtx]);
    }
  }
}

/** Close the peer connection and the socket (the server then pauses the show). */
function hangUp() {
  const { connection, pc } = page;
  page.connection = null;
  page.pc = null;
  page.codecs = null;
  page.viewers = null;
  pc?.close();
  connection?.close();
}

async function goLive() {
  if (!page.stream) return;
  setPhase('starting');
  try {
    const connection = await Connection.open();
    page.connection = connection;
    connection.on('show.state', (event) => {
      page.showState = event.state;
      if (event.state === 'ended') {
        hangUp();
        setPhase('ended');
      } else {
        render();
      }
    });
    connection.on('audience', (event) => {
      page.viewers = event.viewers;
      render();
    });
    connection.on('closed', () => {
      if (page.connection !== connection) return; // we hung up ourselves
      hangUp();
      if (page.showState === 'live') page.showState = 'paused';
      setPhase('lost');
    });

    const pc = new RTCPeerConnection({ iceServers: connection.iceServers });
    page.pc = pc;
    for (const track of page.stream.getTracks()) {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [page.stream] });
    }
    if (wantedCodec) preferVideoCodec(pc, wantedCodec);
    pc.addEventListener('connectionstatechange', () => {
      if (page.pc === pc && pc.connectionState === 'failed') {
        hangUp();
        setPhase('lost');
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const answer = await connection.request('perform.start', {
      show: showId,
      token,
      sdp: pc.localDescription?.sdp ?? '',
    });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    page.codecs = answer.codecs;
    if (page.phase === 'starting') setPhase('publishing');
  } catch (error) {
    console.error('going live failed', error);
    hangUp();
    page.errorCode = /** @type {{code?: string}} */ (error).code ?? 'error';
    setPhase(page.errorCode === 'show_not_found' ? 'ended' : 'failed');
  }
}

async function stop() {
  const connection = page.connection;
  if (connection) {
    try {
      await connection.request('perform.stop', {}, { timeout: 5 });
    } catch { /* closing the socket below pauses the show as well */ }
  }
  hangUp();
  if (page.showState === 'live') page.showState = 'paused';
  setPhase('ready');
}

el.button.addEventListener('click', () => {
  if (page.phase === 'publishing' || page.phase === 'starting') stop();
  else goLive();
});

/**
 * The encoder settings: WHIP and RTMP addresses and the stream key (always as text).
 * @param {{stream_key: string, whip_url: string, rtmp_url: string | null}} show
 */
function showLinks(show) {
  el.key.textContent = show.stream_key;
  el.whip.textContent = show.whip_url;
  el.rtmp.textContent = show.rtmp_url ?? '–';
}

/** A new stream key: the old one stops working (for when it has leaked). */
async function rotateKey() {
  el.rotate.disabled = true;
  try {
    const response = await fetch(`/api/shows/${encodeURIComponent(showId)}/stream-key`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(String(response.status));
    showLinks(await response.json());
    el.keyStatus.textContent = t('key_rotated');
  } catch {
    el.keyStatus.textContent = t('error');
  } finally {
    el.rotate.disabled = false;
  }
}

el.rotate.addEventListener('click', rotateKey);

/**
 * Follow the show as its host while the page is open, whether the performer sends from this page
 * or from OBS: the audience count, the show's state, and warnings about what the encoder sends.
 */
async function followAsHost() {
  try {
    const host = await Connection.open();
    host.on('show.warning', (event) => {
      const key = `warn_${event.code}`;
      const text = t(key);
      el.warning.textContent = text === key ? event.message : text;
      el.warning.hidden = false;
    });
    host.on('show.state', (event) => {
      if (event.state === 'live' && !page.connection) el.warning.hidden = true;
    });
    host.on('audience', (event) => {
      page.viewers = event.viewers;
      render();
    });
    await host.request('perform.host', { show: showId, token });
  } catch (error) {
    console.error('could not follow the show', error);
  }
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
    el.status.textContent = t('error');
    return;
  }
  if (!response.ok) {
    setPhase('invalid');
    return;
  }
  const show = await response.json();
  el.title.textContent = show.title;  // always text, never HTML
  document.title = `${show.title} – Lämpiö Live`;
  el.code.textContent = show.code_display;
  showLinks(show);
  el.facts.hidden = false;
  followAsHost();
  page.showState = show.state;
  if (show.state === 'ended') {
    setPhase('ended');
    return;
  }
  setPhase('asking');
  try {
    // Music: keep the sound as played (no noise suppression or gain riding).
    page.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 } },
      audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    console.error('camera or microphone refused', error);
    setPhase('no-camera');
    return;
  }
  el.preview.srcObject = page.stream;
  el.stage.hidden = false;
  setPhase('ready');
}

window.addEventListener('pagehide', hangUp);
setupLangButtons(render);
applyLang();
render();
load();
