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
 * (`voice.stage`). The show's code, QR code and links are there to copy.
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs` and the host
 * connection (`host`); it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import {
  Connection, ProtocolError, iceGatheringComplete, openWithRetry, retryDelay, sleep,
} from './protocol.js';
import { KINDS, RecentCounts, clock, markEmoji } from './foyer.js';

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
  audienceHelp: /** @type {HTMLElement} */ (document.getElementById('audience-help')),
  devices: /** @type {HTMLElement} */ (document.getElementById('devices')),
  camera: /** @type {HTMLSelectElement} */ (document.getElementById('camera')),
  microphone: /** @type {HTMLSelectElement} */ (document.getElementById('microphone')),
  pause: /** @type {HTMLButtonElement} */ (document.getElementById('pause-button')),
  hall: /** @type {HTMLButtonElement} */ (document.getElementById('hall-button')),
  hallHelp: /** @type {HTMLElement} */ (document.getElementById('hall-help')),
  hallAudio: /** @type {HTMLAudioElement} */ (document.getElementById('hall-audio')),
  end: /** @type {HTMLButtonElement} */ (document.getElementById('end-button')),
  endConfirm: /** @type {HTMLElement} */ (document.getElementById('end-confirm')),
  endYes: /** @type {HTMLButtonElement} */ (document.getElementById('end-yes')),
  endNo: /** @type {HTMLButtonElement} */ (document.getElementById('end-no')),
  captionForm: /** @type {HTMLFormElement} */ (document.getElementById('caption-form')),
  captionInput: /** @type {HTMLInputElement} */ (document.getElementById('caption-input')),
  captionClear: /** @type {HTMLButtonElement} */ (document.getElementById('caption-clear')),
  captionStatus: /** @type {HTMLElement} */ (document.getElementById('caption-status')),
  intermission: /** @type {HTMLButtonElement} */ (document.getElementById('intermission-button')),
  voiceStatus: /** @type {HTMLElement} */ (document.getElementById('voice-status')),
  lobbyList: /** @type {HTMLUListElement} */ (document.getElementById('lobby-list')),
  lobbiesEmpty: /** @type {HTMLElement} */ (document.getElementById('lobbies-empty')),
  viewerUrl: /** @type {HTMLElement} */ (document.getElementById('viewer-url')),
  qr: /** @type {HTMLImageElement} */ (document.getElementById('qr')),
  copyStatus: /** @type {HTMLElement} */ (document.getElementById('copy-status')),
  feed: /** @type {HTMLOListElement} */ (document.getElementById('feed')),
  feedEmpty: /** @type {HTMLElement} */ (document.getElementById('feed-empty')),
  feedStatus: /** @type {HTMLElement} */ (document.getElementById('feed-status')),
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
  /** @type {Connection | null} the host connection: audience, all chat, moderation */ host: null,
  /** The performer hears the audience sound (applause, laughter made from the reactions). */
  hallOn: true,
  /** The lobbies' voice as the server last told it. */ intermission: false,
  /** @type {string | null} the lobby on stage */ stage: null,
  title: '',
};

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Record<string, string> | null}} */
const exposed = {
  get pc() { return page.pc; },
  get connection() { return page.connection; },
  get codecs() { return page.codecs; },
  get host() { return page.host; },
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
  // one big button at a time: start (or go on after a pause), or pause while sending
  const key = page.showState === 'paused' ? 'resume_live' : 'go_live';
  el.button.dataset.t = key;
  el.button.textContent = t(key);
  el.button.hidden = !['ready', 'starting', 'failed', 'lost'].includes(phase);
  el.button.disabled = phase === 'starting';
  el.pause.hidden = phase !== 'publishing';
  el.hall.hidden = el.hallHelp.hidden = phase !== 'publishing';
  el.hall.setAttribute('aria-pressed', String(page.hallOn));
  const open = !['loading', 'no-link', 'invalid', 'ended'].includes(phase);
  el.end.hidden = !open || !el.endConfirm.hidden;
  if (!open) el.endConfirm.hidden = true;
  el.audience.hidden = el.audienceHelp.hidden = page.viewers === null || !open;
  el.audience.textContent = t('viewers', { count: String(page.viewers ?? 0) });
  el.state.textContent = t('state_' + page.showState);
  el.intermission.disabled = page.host === null || !open;
  el.intermission.dataset.t = page.intermission ? 'intermission_close' : 'intermission_open';
  el.intermission.textContent = t(el.intermission.dataset.t);
  el.voiceStatus.textContent = voiceText();
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
  el.hallAudio.srcObject = null;
  pc?.close();
  connection?.close();  // the host connection goes on counting the audience
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

    const pc = new RTCPeerConnection({
      iceServers: connection.iceServers, bundlePolicy: 'max-bundle',
    });
    page.pc = pc;
    for (const track of page.stream.getTracks()) {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [page.stream] });
    }
    // one more audio section, receive-only: the audience sound made from the reactions
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (event) => {
      el.hallAudio.srcObject = new MediaStream([event.track]);
      el.hallAudio.muted = !page.hallOn;
      el.hallAudio.play().catch(() => { /* the go-live press unlocked sound; if not, silence */ });
    });
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
    if (!page.hallOn) setHall(false);
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
  if (page.phase !== 'publishing' && page.phase !== 'starting') goLive();
});
el.pause.addEventListener('click', async () => {
  await stop();
  el.button.focus();
});

// -- ending the show, after asking --------------------------------------------------------------------

el.end.addEventListener('click', () => {
  el.endConfirm.hidden = false;
  render();
  el.endNo.focus();
});
el.endNo.addEventListener('click', () => {
  el.endConfirm.hidden = true;
  render();
  el.end.focus();
});
el.endYes.addEventListener('click', async () => {
  const connection = page.host ?? page.connection;
  el.endYes.disabled = true;
  try {
    if (!connection) throw new Error('offline');
    await connection.request('perform.end', { show: showId, token });
    hangUp();
    page.showState = 'ended';
    setPhase('ended');
    stopCamera();
  } catch {
    el.status.textContent = t('error');
  } finally {
    el.endYes.disabled = false;
    el.endConfirm.hidden = true;
    render();
  }
});

// -- the audience sound -----------------------------------------------------------------------------

/**
 * Let the audience sound come (or not), on the server and in this page.
 * @param {boolean} on
 */
async function setHall(on) {
  page.hallOn = on;
  el.hallAudio.muted = !on;
  render();
  try {
    await page.connection?.request('hall.mute', { muted: !on });
  } catch { /* no audience sound yet: the page's own mute is enough until it comes */ }
}

el.hall.addEventListener('click', () => setHall(!page.hallOn));

// -- camera and microphone ------------------------------------------------------------------------------

/** The constraints of the chosen devices (music: the sound as played, no gain riding). */
function mediaConstraints() {
  const camera = el.camera.value;
  const microphone = el.microphone.value;
  return {
    video: {
      width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 },
      ...(camera ? { deviceId: { exact: camera } } : {}),
    },
    audio: {
      echoCancellation: true, noiseSuppression: false, autoGainControl: false,
      ...(microphone ? { deviceId: { exact: microphone } } : {}),
    },
  };
}

/** Fill the camera and microphone choices, the ones in use chosen. */
async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const inUse = new Set(page.stream?.getTracks().map((track) => track.getSettings().deviceId));
  for (const [select, kind, key] of /** @type {const} */ ([
    [el.camera, 'videoinput', 'camera_n'], [el.microphone, 'audioinput', 'microphone_n'],
  ])) {
    const options = devices.filter((device) => device.kind === kind).map((device, n) => {
      const option = document.createElement('option');
      option.value = device.deviceId;
      option.textContent = device.label || t(key, { n: String(n + 1) });  // device names as text
      option.selected = inUse.has(device.deviceId);
      return option;
    });
    select.replaceChildren(...options);
  }
  el.devices.hidden = false;
}

function stopCamera() {
  for (const track of page.stream?.getTracks() ?? []) track.stop();
}

/** Another camera or microphone: the preview and, while live, what the audience gets. */
async function switchDevices() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(mediaConstraints());
  } catch (error) {
    console.error('could not switch devices', error);
    el.status.textContent = t('perform_no_camera');
    return;
  }
  const old = page.stream;
  page.stream = stream;
  el.preview.srcObject = stream;
  for (const sender of page.pc?.getSenders() ?? []) {
    const kind = sender.track?.kind;
    const track = stream.getTracks().find((candidate) => candidate.kind === kind);
    if (track) await sender.replaceTrack(track);
  }
  for (const track of old?.getTracks() ?? []) track.stop();
}

el.camera.addEventListener('change', switchDevices);
el.microphone.addEventListener('change', switchDevices);

/**
 * The encoder settings: WHIP and RTMP addresses and the stream key (always as text).
 * @param {{stream_key: string, whip_url: string, rtmp_url: string | null, viewer_url?: string}} show
 */
function showLinks(show) {
  if (show.viewer_url) el.viewerUrl.textContent = show.viewer_url;
  el.key.textContent = show.stream_key;
  el.whip.textContent = show.whip_url;
  el.rtmp.textContent = show.rtmp_url ?? '–';
  const rtmpCopy = /** @type {HTMLElement | null} */ (document.querySelector('[data-copy="rtmp-url"]'));
  if (rtmpCopy) rtmpCopy.hidden = !show.rtmp_url;
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
 * or from OBS: the audience count, the show's state, warnings about what the encoder sends, the
 * chat of every lobby and the reactions. Comes back by itself after a lost connection.
 */
async function followAsHost() {
  let attempt = 0;
  while (page.phase !== 'ended') {
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
        if (event.state === 'live' && !page.connection) el.warning.hidden = true;
        page.showState = event.state;
        if (event.state === 'ended' && page.phase !== 'ended') {
          hangUp();
          setPhase('ended');
        } else {
          render();
        }
      });
      host.on('caption', onCaptionEcho);
      host.on('voice.state', (event) => {
        page.intermission = Boolean(event.intermission);
        page.stage = event.stage ?? null;
        render();
        renderLobbies();
      });
      host.on('audience', (event) => {
        page.viewers = event.viewers;
        render();
        listLobbies();
      });
      host.on('chat.message', onFeedMessage);
      host.on('chat.deleted', onFeedDeleted);
      host.on('reactions', onReactions);
      const closed = new Promise((resolve) => host?.on('closed', resolve));
      await host.request('perform.host', { show: showId, token });
      attempt = 0; // it worked: a later cut starts again from a short pause
      page.host = host;
      render();
      listLobbies();
      listenToStage(host);
      await closed;
    } catch (error) {
      console.error('could not follow the show', error);
      host?.close();
      failure = error;
      const code = error instanceof ProtocolError ? error.code : '';
      if (code === 'forbidden' || code === 'show_not_found') return;
    }
    page.host = null;
    render();
    attempt += 1;
    await sleep(retryDelay(attempt, failure));
  }
}

// -- the chat of every lobby, with moderation ----------------------------------------------------

const FEED_MAX = 200;

const feed = {
  /** @type {Map<string, HTMLLIElement>} shown messages by id */ items: new Map(),
  /** @type {Map<string, number>} a number per lobby, for messages that carry no lobby code */
  lobbies: new Map(),
  /** @type {Map<string, string>} lobby codes by lobby id, as messages tell them */ codes: new Map(),
  /** @type {Set<string>} members whose chat is paused */ muted: new Set(),
  /** @type {Set<string>} members removed from the show */ removed: new Set(),
  count: 0,
};

/**
 * A button that says what it does, with the message it acts on as its description.
 * @param {string} key the text's key
 * @param {string} describedBy
 * @param {() => void} action
 */
function feedButton(key, describedBy, action) {
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.t = key;
  button.textContent = t(key);
  button.setAttribute('aria-describedby', describedBy);
  button.addEventListener('click', action);
  return button;
}

/** @param {import('./protocol.js').ServerEvent} event */
function onFeedMessage(event) {
  if (feed.items.has(event.id)) return;
  const n = ++feed.count;
  const li = document.createElement('li');
  li.className = 'msg';
  Object.assign(li.dataset, {
    id: event.id, lobby: event.lobby, member: event.member, name: event.name ?? '',
    lobbyCode: event.lobby_code ?? '',
  });
  if (!event.lobby_code && !feed.lobbies.has(event.lobby)) {
    feed.lobbies.set(event.lobby, feed.lobbies.size + 1);
  }
  if (event.lobby_code) feed.codes.set(event.lobby, event.lobby_code);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.className = 'who';
  who.id = `feed-${n}-who`;
  who.textContent = event.name || t('chat_someone');  // always text, never HTML
  const where = document.createElement('span');
  where.className = 'where';
  const when = document.createElement('span');
  when.className = 'when';
  when.textContent = clock(event.at);
  const tag = document.createElement('span');
  tag.className = 'tag';
  meta.append(who, ' ', where, ' ', when, ' ', tag);
  const text = document.createElement('p');
  text.className = 'text';
  text.id = `feed-${n}-text`;
  text.textContent = event.text;

  const about = `${who.id} ${text.id}`;
  const actions = document.createElement('div');
  actions.className = 'actions';
  const confirm = document.createElement('div');
  confirm.className = 'confirm';
  confirm.hidden = true;
  const question = document.createElement('p');
  question.className = 'question';
  const yes = feedButton('feed_remove_yes', about, () => removeViewer(li));
  yes.classList.add('danger');
  const no = feedButton('feed_remove_no', about, () => {
    confirm.hidden = true;
    actions.hidden = false;
    remove.focus();
  });
  confirm.append(question, yes, no);
  const mute = feedButton('feed_mute', about, () => muteViewer(li));
  mute.classList.add('mute');
  const remove = feedButton('feed_remove', about, () => {
    question.textContent = t('feed_remove_confirm', { name: li.dataset.name || t('chat_someone') });
    actions.hidden = true;
    confirm.hidden = false;
    no.focus();
  });
  remove.classList.add('remove');
  actions.append(feedButton('feed_delete', about, () => deleteMessage(li)), mute, remove);
  li.append(meta, text, actions, confirm);

  el.feed.prepend(li);  // newest first: the performer glances, never scrolls
  feed.items.set(event.id, li);
  while (feed.items.size > FEED_MAX) {
    const oldest = /** @type {HTMLLIElement | null} */ (el.feed.lastElementChild);
    if (!oldest) break;
    feed.items.delete(oldest.dataset.id ?? '');
    oldest.remove();
  }
  renderFeedItem(li);
  el.feedEmpty.hidden = true;
}

/** @param {import('./protocol.js').ServerEvent} event */
function onFeedDeleted(event) {
  feed.items.get(event.id)?.remove();
  feed.items.delete(event.id);
  el.feedEmpty.hidden = feed.items.size > 0;
}

/** A message's lobby, its members' state and its buttons, in the page's language. */
function renderFeedItem(/** @type {HTMLLIElement} */ li) {
  const { member = '', lobby = '', lobbyCode = '' } = li.dataset;
  const where = /** @type {HTMLElement} */ (li.querySelector('.where'));
  where.textContent = lobbyCode
    ? t('feed_lobby', { code: lobbyCode })
    : t('feed_lobby_n', { n: String(feed.lobbies.get(lobby) ?? '') });
  const removed = feed.removed.has(member);
  const muted = feed.muted.has(member);
  const tag = /** @type {HTMLElement} */ (li.querySelector('.tag'));
  tag.textContent = removed ? t('feed_removed_tag') : muted ? t('feed_muted_tag') : '';
  const mute = /** @type {HTMLButtonElement} */ (li.querySelector('button.mute'));
  mute.dataset.t = muted ? 'feed_unmute' : 'feed_mute';
  mute.textContent = t(mute.dataset.t);
  mute.hidden = removed;
  /** @type {HTMLButtonElement} */ (li.querySelector('button.remove')).hidden = removed;
  if (removed) {
    /** @type {HTMLElement} */ (li.querySelector('.confirm')).hidden = true;
    /** @type {HTMLElement} */ (li.querySelector('.actions')).hidden = false;
  }
}

function renderFeedLabels() {
  for (const li of feed.items.values()) renderFeedItem(li);
}

/** @param {string} member */
function renderMember(member) {
  for (const li of feed.items.values()) {
    if (li.dataset.member === member) renderFeedItem(li);
  }
}

/**
 * Send a moderation command on the host connection; say in words how it went.
 * @param {string} type
 * @param {Record<string, unknown>} fields
 * @returns {Promise<any>} the result, or null if it did not work (already said)
 */
async function moderate(type, fields) {
  const host = page.host;
  if (!host) {
    el.feedStatus.textContent = t('feed_offline');
    return null;
  }
  try {
    return await host.request(type, fields);
  } catch (error) {
    const code = error instanceof ProtocolError ? error.code : '';
    el.feedStatus.textContent = code === 'lobby_not_found' ? t('feed_gone') : t('error');
    return null;
  }
}

/** @param {HTMLLIElement} li */
async function deleteMessage(li) {
  const done = await moderate('chat.delete', { lobby: li.dataset.lobby, message: li.dataset.id });
  if (done) {
    onFeedDeleted({ type: 'chat.deleted', id: li.dataset.id });
    el.feedStatus.textContent = t('feed_deleted');
  }
}

/** @param {HTMLLIElement} li */
async function muteViewer(li) {
  const member = li.dataset.member ?? '';
  const name = li.dataset.name || t('chat_someone');
  const done = await moderate('chat.mute', { member, muted: !feed.muted.has(member) });
  if (!done) return;
  if (done.muted) feed.muted.add(member);
  else feed.muted.delete(member);
  renderMember(member);
  el.feedStatus.textContent = t(done.muted ? 'feed_muted' : 'feed_unmuted', { name });
}

/** @param {HTMLLIElement} li */
async function removeViewer(li) {
  const member = li.dataset.member ?? '';
  const name = li.dataset.name || t('chat_someone');
  const done = await moderate('viewer.remove', { lobby: li.dataset.lobby, member });
  if (!done) return;
  feed.removed.add(member);
  feed.muted.add(member);  // the server pauses a removed viewer's chat too
  renderMember(member);
  el.feedStatus.textContent = t('feed_removed', { name });
}


// -- live captions --------------------------------------------------------------------------------

/**
 * Send a caption line to every viewer ('' clears it); say in words how it went.
 * @param {string} text
 */
async function sendCaption(text) {
  const host = page.host;
  if (!host) {
    el.captionStatus.textContent = t('feed_offline');
    return false;
  }
  try {
    await host.request('caption.send', { text });
    return true;
  } catch (error) {
    const code = error instanceof ProtocolError ? error.code : '';
    el.captionStatus.textContent = code === 'rate_limited' ? t('caption_wait')
      : code === 'caption_too_long' ? t('caption_too_long') : t('error');
    return false;
  }
}

el.captionForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = el.captionInput.value.trim();
  if (!text) return;
  if (await sendCaption(text)) el.captionInput.value = '';
});
el.captionClear.addEventListener('click', () => sendCaption(''));

/** What viewers see now, as the server passed it on. @param {import('./protocol.js').ServerEvent} event */
function onCaptionEcho(event) {
  el.captionStatus.textContent = event.text
    ? t('caption_shown', { text: event.text }) : t('caption_cleared');
}

// -- the lobbies' voice: intermission and one lobby on stage --------------------------------------

function voiceText() {
  const parts = [t(page.intermission ? 'intermission_on' : 'intermission_off')];
  if (page.stage) parts.push(t('stage_now', { lobby: lobbyName(page.stage) }));
  return parts.join(' ');
}

/** @param {string} lobby a lobby id */
function lobbyName(lobby) {
  const code = feed.codes.get(lobby);
  return code ? t('feed_lobby', { code }) : t('feed_lobby_n', { n: String(feed.lobbies.get(lobby) ?? '') });
}

/**
 * A voice command on the host connection; say in words if it did not work.
 * @param {string} type
 * @param {Record<string, unknown>} fields
 */
async function voiceCommand(type, fields) {
  try {
    if (!page.host) throw new Error('offline');
    const state = await page.host.request(type, fields);
    page.intermission = Boolean(state.intermission);
    page.stage = state.stage ?? null;
    render();
    renderLobbies();
  } catch (error) {
    console.warn(type, error);
    el.voiceStatus.textContent = t('voice_unavailable');
  }
}

el.intermission.addEventListener('click', async () => {
  await voiceCommand('voice.intermission', { open: !page.intermission });
  el.intermission.focus();
});

/** @typedef {{id: string, code: string, members: Array<{name: string, head_count: number}>}} ListedLobby */

/** @type {{lobbies: ListedLobby[], asked: number, again: number | undefined,
 *           voice: {close(): void} | null}} */
const lobbies = { lobbies: [], asked: -Infinity, again: undefined, voice: null };

/**
 * Ask the server which lobbies the show has and who is in them: at most every few seconds, and
 * once more after a burst of comings and goings, so the list ends up right.
 */
async function listLobbies() {
  const host = page.host;
  if (!host) return;
  const wait = lobbies.asked + 3000 - performance.now();
  if (wait > 0) {
    lobbies.again ??= setTimeout(() => {
      lobbies.again = undefined;
      listLobbies();
    }, wait);
    return;
  }
  lobbies.asked = performance.now();
  try {
    lobbies.lobbies = (await host.request('lobby.list')).lobbies ?? [];
  } catch (error) {
    console.warn('no lobby list', error);
  }
  renderLobbies();
}

/**
 * Hear the lobby on stage from this page (listening only; no microphone is asked for).
 * @param {Connection} host
 */
async function listenToStage(host) {
  lobbies.voice?.close();
  lobbies.voice = null;
  try {
    const { LobbyVoice } = await import('./voice.js');
    const voice = new LobbyVoice(host, { listenOnly: true });
    lobbies.voice = voice;
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
  const names = lobby.members.map((member) => {
    const name = member.name || t('chat_someone');
    return member.head_count > 1
      ? `${name} (${t('members_heads', { count: String(member.head_count) })})` : name;
  });
  return `${t('feed_lobby', { code: lobby.code })}: ${names.join(', ')}`;
}

/** Every lobby of the show, each with its "on stage" button. */
function renderLobbies() {
  const focused = /** @type {HTMLElement | null} */ (document.activeElement)?.dataset?.lobby;
  const items = lobbies.lobbies.filter((lobby) => lobby.members.length > 0).map((lobby) => {
    feed.codes.set(lobby.id, lobby.code);
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'lobby-name';
    name.textContent = lobbyLine(lobby);  // names as text, never HTML
    const onStage = page.stage === lobby.id;
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

// -- the show's code, QR code and links to copy --------------------------------------------------------

for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (
  document.querySelectorAll('button[data-copy]')
)) {
  button.addEventListener('click', async () => {
    const source = document.getElementById(button.dataset.copy ?? '');
    try {
      await navigator.clipboard.writeText(source?.textContent ?? '');
      el.copyStatus.textContent = t('copied');
    } catch {
      el.copyStatus.textContent = t('copy_failed');
    }
  });
}

/** The copy buttons say what they copy (four "Copy" buttons would sound alike). */
function renderCopyLabels() {
  for (const button of document.querySelectorAll('button[data-copy]')) {
    const label = button.closest('dd')?.previousElementSibling?.textContent ?? '';
    button.setAttribute('aria-label', `${t('copy')}: ${label}`);
  }
  el.qr.alt = t('qr_alt', { title: page.title });
}

// -- reaction meters -----------------------------------------------------------------------------

const meters = new RecentCounts();
/** @type {number | undefined} */
let meterTimer;

/** @param {import('./protocol.js').ServerEvent} event one node's totals of the last 100 ms */
function onReactions(event) {
  meters.add(event.counts);
  renderMeters();
  if (meterTimer === undefined) {
    meterTimer = setInterval(() => {
      renderMeters();
      if (!meters.busy) {
        clearInterval(meterTimer);
        meterTimer = undefined;
      }
    }, 250);
  }
}

function renderMeters() {
  const totals = meters.totals();
  const scale = Math.max(10, ...Object.values(totals));
  for (const kind of KINDS) {
    const row = document.querySelector(`.meters [data-kind="${kind}"]`);
    if (!row) continue;
    const n = totals[kind] ?? 0;
    /** @type {HTMLElement} */ (row.querySelector('.fill')).style.width = `${(100 * n) / scale}%`;
    /** @type {HTMLElement} */ (row.querySelector('output')).textContent = String(n);
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
  page.title = show.title;
  document.title = `${show.title} – ${t('studio_name')} – Lämpiö Live`;
  el.qr.src = `/api/shows/${encodeURIComponent(showId)}/qr.svg`;
  renderCopyLabels();
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
    page.stream = await navigator.mediaDevices.getUserMedia(mediaConstraints());
  } catch (error) {
    console.error('camera or microphone refused', error);
    setPhase('no-camera');
    return;
  }
  el.preview.srcObject = page.stream;
  el.stage.hidden = false;
  setPhase('ready');
  listDevices().catch((error) => console.warn('no device list', error));
}

window.addEventListener('pagehide', () => {
  lobbies.voice?.close();
  hangUp();
  page.host?.close();
});
setupLangButtons(() => {
  render();
  renderFeedLabels();
  renderCopyLabels();
  renderLobbies();
});
applyLang();
markEmoji();
render();
load();
