// @ts-check
/**
 * The performer's page: reads "#<show id>.<performer token>" (a fragment, so it never reaches
 * server logs), shows the camera, and publishes it to the show with `perform.start`.
 *
 * `?codec=H264` (or `VP8`) makes the browser offer only that video codec; tests use it, and it can
 * help a performer whose machine encodes one of them in hardware.
 *
 * While the page is open it also follows the show as its host (`perform.host`): the audience, the
 * chat of every lobby with moderation (delete a message, mute a viewer, remove a viewer), and the
 * reactions as meters of the last few seconds.
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs` and the host
 * connection (`host`); it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { Connection, ProtocolError, iceGatheringComplete, openWithRetry } from './protocol.js';
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
 * or from OBS: the audience count, the show's state, warnings about what the encoder sends, the
 * chat of every lobby and the reactions. Comes back by itself after a lost connection.
 */
async function followAsHost() {
  while (page.phase !== 'ended') {
    let host = null;
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
      });
      host.on('audience', (event) => {
        page.viewers = event.viewers;
        render();
      });
      host.on('chat.message', onFeedMessage);
      host.on('chat.deleted', onFeedDeleted);
      host.on('reactions', onReactions);
      const closed = new Promise((resolve) => host?.on('closed', resolve));
      await host.request('perform.host', { show: showId, token });
      page.host = host;
      await closed;
    } catch (error) {
      console.error('could not follow the show', error);
      host?.close();
      const code = error instanceof ProtocolError ? error.code : '';
      if (code === 'forbidden' || code === 'show_not_found') return;
    }
    page.host = null;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// -- the chat of every lobby, with moderation ----------------------------------------------------

const FEED_MAX = 200;

const feed = {
  /** @type {Map<string, HTMLLIElement>} shown messages by id */ items: new Map(),
  /** @type {Map<string, number>} a number per lobby, for messages that carry no lobby code */
  lobbies: new Map(),
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

window.addEventListener('pagehide', () => {
  hangUp();
  page.host?.close();
});
setupLangButtons(() => {
  render();
  renderFeedLabels();
});
applyLang();
markEmoji();
render();
load();
