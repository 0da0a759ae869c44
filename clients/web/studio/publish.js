// @ts-check
/**
 * Going live from the studio page: the camera and microphone published to the show with
 * `perform.start` (one peer connection, with a receive-only section for the audience sound made from
 * the reactions), paused with `perform.stop`, the audience sound on or off (`hall.mute`), and the
 * show ended with `perform.end` after asking. The big buttons: one at a time. A lost connection
 * does not stop the show: the page publishes again by itself (a performer on stage cannot press
 * a button), and moves to another node when its node drains; only pause and end stop it.
 *
 * `?codec=H264` (or `VP8`) makes the browser offer only that video codec.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import {
  Connection, iceGatheringComplete, openWithRetry, retryDelay, sleep,
} from '../protocol.js';

/** @typedef {import('./status.js').Status} Status */
/** @typedef {import('./status.js').Phase} Phase */
/** @typedef {import('./preview.js').Preview} Preview */
/** @typedef {{showId: string, token: string}} ShowLink the show and its performer token */

/**
 * @typedef {object} Publish
 * @property {Connection | null} connection the connection that sends (none when not live)
 * @property {RTCPeerConnection | null} pc
 * @property {Record<string, string> | null} codecs the codecs the server took
 * @property {() => void} hangUp stop sending: close the peer connection and the socket (the server
 *   pauses the show) and do not come back by itself
 * @property {() => void} render the big buttons for the current phase
 */

/** Seconds a moved publication may take to connect before the old one goes anyway. */
const MOVE_WAIT = 5;
/** Seconds past a draining node's window before the page closes the old connection itself. */
const LINGER_MARGIN = 2;

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

/**
 * @param {{link: ShowLink, wantedCodec: string | null, status: Status, preview: Preview,
 *          onViewers: (viewers: number) => void, host: () => Connection | null,
 *          setPhase: (phase: Phase) => void, renderPage: () => void}} options
 *   onViewers: the audience count came on this connection; host: the host connection (ending the
 *   show works on either); setPhase and renderPage: the whole page's
 * @returns {Publish}
 */
export function initPublish({
  link, wantedCodec, status, preview, onViewers, host, setPhase, renderPage,
}) {
  const el = {
    button: /** @type {HTMLButtonElement} */ (byId('live-button')),
    pause: /** @type {HTMLButtonElement} */ (byId('pause-button')),
    hall: /** @type {HTMLButtonElement} */ (byId('hall-button')),
    hallHelp: byId('hall-help'),
    hallAudio: /** @type {HTMLAudioElement} */ (byId('hall-audio')),
    end: /** @type {HTMLButtonElement} */ (byId('end-button')),
    endConfirm: byId('end-confirm'),
    endYes: /** @type {HTMLButtonElement} */ (byId('end-yes')),
    endNo: /** @type {HTMLButtonElement} */ (byId('end-no')),
  };

  const live = {
    /** @type {Connection | null} */ connection: null,
    /** @type {RTCPeerConnection | null} */ pc: null,
    /** @type {Record<string, string> | null} */ codecs: null,
    /** The performer hears the audience sound (applause, laughter made from the reactions). */
    hallOn: true,
    /** @type {AbortController | null} set while publishing is wanted: cleared by pause and end */
    wanted: null,
    /** A move to another node is under way (the node drains). */ moving: false,
    /** @type {Set<() => void>} how to let go of old connections still sending after a move */
    lingering: new Set(),
  };

  function render() {
    const { phase } = status;
    // one big button at a time: start (or go on after a pause), or pause while sending
    const key = status.showState === 'paused' ? 'resume_live' : 'go_live';
    el.button.dataset.t = key;
    el.button.textContent = t(key);
    el.button.hidden = !['ready', 'starting', 'failed'].includes(phase);
    el.button.disabled = phase === 'starting';
    // while coming back by itself the performer can still pause (and so stop trying)
    el.pause.hidden = phase !== 'publishing' && phase !== 'reconnecting';
    el.hall.hidden = el.hallHelp.hidden = phase !== 'publishing';
    el.hall.setAttribute('aria-pressed', String(live.hallOn));
    const { open } = status;
    el.end.hidden = !open || !el.endConfirm.hidden;
    if (!open) el.endConfirm.hidden = true;
  }

  /** Close the peer connection and the socket (the server then pauses the show). */
  function letGo() {
    const { connection, pc } = live;
    live.connection = null;
    live.pc = null;
    live.codecs = null;
    el.hallAudio.srcObject = null;
    pc?.close();
    connection?.close();  // the host connection goes on counting the audience
  }

  /** Stop publishing for good (pause, end, leaving the page): no coming back by itself. */
  function hangUp() {
    live.wanted?.abort();
    live.wanted = null;
    for (const letGoOfIt of [...live.lingering]) letGoOfIt();
    letGo();
  }

  async function goLive() {
    if (!preview.stream) return;
    setPhase('starting');
    live.wanted?.abort();
    live.wanted = new AbortController();
    try {
      await publishVia(await Connection.open());
      if (status.phase === 'starting') setPhase('publishing');
    } catch (error) {
      console.error('going live failed', error);
      hangUp();
      status.errorCode = /** @type {{code?: string}} */ (error).code ?? 'error';
      setPhase(status.errorCode === 'show_not_found' ? 'ended' : 'failed');
    }
  }

  /**
   * Publish the camera and microphone chosen now on `connection` and make it the one that sends.
   * With `keep`, the connection sending until now goes on until the new one has connected (a move
   * to another node), else it is let go at once.
   * @param {Connection} connection
   * @param {boolean} [keep]
   * @param {number} [within] seconds the draining node gave (when moving)
   */
  async function publishVia(connection, keep = false, within = 0) {
    const wanted = live.wanted;
    connection.on('show.state', (event) => {
      if (live.connection !== connection) return;
      status.showState = event.state;
      if (event.state === 'ended') {
        hangUp();
        setPhase('ended');
      } else {
        renderPage();
      }
    });
    connection.on('audience', (event) => {
      if (live.connection !== connection) return;
      onViewers(event.viewers);
      renderPage();
    });
    connection.on('node.draining', (event) => move(connection, Number(event.within) || 0));
    connection.on('closed', () => {
      // hung up ourselves, replaced, or being replaced (a move that fails comes back itself)
      if (live.connection !== connection || live.moving) return;
      comeBack();
    });
    if (!keep) letGo();
    try {
      const pc = new RTCPeerConnection({
        iceServers: connection.iceServers, bundlePolicy: 'max-bundle',
      });
      if (!keep) {
        live.connection = connection;
        live.pc = pc;
      }
      const stream = /** @type {MediaStream} */ (preview.stream);  // the devices chosen now
      for (const track of stream.getTracks()) {
        pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      }
      // one more audio section, receive-only: the audience sound made from the reactions
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addEventListener('track', (event) => {
        el.hallAudio.srcObject = new MediaStream([event.track]);
        el.hallAudio.muted = !live.hallOn;
        el.hallAudio.play().catch(() => { /* the go-live press unlocked sound; if not, silence */ });
      });
      if (wantedCodec) preferVideoCodec(pc, wantedCodec);
      const connected = new Promise((resolve) => {
        pc.addEventListener('connectionstatechange', () => {
          if (pc.connectionState === 'connected') resolve(undefined);
          if (live.pc === pc && pc.connectionState === 'failed') comeBack();
        });
      });
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      const answer = await connection.request('perform.start', {
        show: link.showId,
        token: link.token,
        sdp: pc.localDescription?.sdp ?? '',
      });
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      if (keep) {
        await Promise.race([connected, sleep(MOVE_WAIT * 1000)]);
        if (wanted !== live.wanted || !wanted) {
          pc.close();
          connection.close();
          return;
        }
        lingerOn(live.connection, live.pc, within);  // the new one sends now
        live.connection = connection;
        live.pc = pc;
      }
      live.codecs = answer.codecs;
      if (!live.hallOn) setHall(false);
    } catch (error) {
      if (keep) connection.close();
      throw error;
    }
  }

  /**
   * After a move: the old connection and its peer go on sending until the draining node closes
   * them (or a little after it said it would), so that the nodes pulling the show from it follow
   * it to the new node while it still sends, and their viewers' picture never stops.
   * @param {Connection | null} connection
   * @param {RTCPeerConnection | null} pc
   * @param {number} within
   */
  function lingerOn(connection, pc, within) {
    const done = () => {
      clearTimeout(timer);
      live.lingering.delete(done);
      pc?.close();
      connection?.close();
    };
    const timer = setTimeout(done, (within + LINGER_MARGIN) * 1000);
    live.lingering.add(done);
    if (!connection || connection.closed) done();
    else connection.on('closed', done);
  }

  /**
   * The connection was lost while sending: say so calmly and publish again by itself, on a new
   * connection to the same address, with the same camera and microphone, until it works or the
   * performer pauses or ends the show.
   */
  async function comeBack() {
    const wanted = live.wanted;
    if (!wanted || wanted.signal.aborted) return;
    letGo();
    if (status.showState === 'live') status.showState = 'paused';
    setPhase('reconnecting');
    for (let attempt = 1; !wanted.signal.aborted; attempt++) {
      try {
        const connection = await openWithRetry({ signal: wanted.signal, maxDelay: 5 });
        if (wanted.signal.aborted) {
          connection.close();
          return;
        }
        await publishVia(connection);
        if (live.wanted === wanted) setPhase('publishing');
        return;
      } catch (error) {
        if (wanted.signal.aborted) return;
        const code = /** @type {{code?: string}} */ (error).code ?? '';
        if (code === 'show_not_found' || code === 'forbidden') {
          hangUp();
          status.errorCode = code;
          setPhase(code === 'show_not_found' ? 'ended' : 'failed');
          return;
        }
        console.warn('publishing again failed', error);
        letGo();
        await sleep(retryDelay(attempt, error, 5));
      }
    }
  }

  /**
   * The node is shutting down (`node.draining`): publish through a new connection to the same
   * address (the load balancer sends it to another node), and let go of this one only once the
   * new one sends. If that cannot be done before this one closes, coming back takes over.
   * @param {Connection} connection
   * @param {number} within the seconds the node gave
   */
  async function move(connection, within) {
    if (connection !== live.connection || live.moving || !live.wanted) return;
    live.moving = true;
    try {
      for (let attempt = 1; attempt <= 3 && !connection.closed && live.wanted; attempt++) {
        try {
          await publishVia(await Connection.open(), true, within);
          return;
        } catch (error) {
          console.warn('moving to another node failed', error);
          await sleep(retryDelay(attempt, error, 1));
        }
      }
    } finally {
      live.moving = false;
      if (live.connection === connection && connection.closed) comeBack();
    }
  }

  async function stop() {
    live.wanted?.abort();  // first: the peer closing below must not bring it back
    live.wanted = null;
    const connection = live.connection;
    if (connection) {
      try {
        await connection.request('perform.stop', {}, { timeout: 5 });
      } catch { /* closing the socket below pauses the show as well */ }
    }
    hangUp();
    if (status.showState === 'live') status.showState = 'paused';
    setPhase('ready');
  }

  el.button.addEventListener('click', () => {
    if (status.phase !== 'publishing' && status.phase !== 'starting') goLive();
  });
  el.pause.addEventListener('click', async () => {
    await stop();
    el.button.focus();
  });

  // -- ending the show, after asking ------------------------------------------------------------

  el.end.addEventListener('click', () => {
    el.endConfirm.hidden = false;
    renderPage();
    el.endNo.focus();
  });
  el.endNo.addEventListener('click', () => {
    el.endConfirm.hidden = true;
    renderPage();
    el.end.focus();
  });
  el.endYes.addEventListener('click', async () => {
    const connection = host() ?? live.connection;
    el.endYes.disabled = true;
    const wanted = live.wanted;
    live.wanted = null;  // the publication ending must not be taken for a lost connection
    try {
      if (!connection) throw new Error('offline');
      await connection.request('perform.end', { show: link.showId, token: link.token });
      hangUp();
      status.showState = 'ended';
      setPhase('ended');
      preview.stop();
    } catch {
      if (wanted && !wanted.signal.aborted && live.pc) live.wanted = wanted;  // still on air
      status.say(t('error'));
    } finally {
      el.endYes.disabled = false;
      el.endConfirm.hidden = true;
      renderPage();
    }
  });

  // -- the audience sound -----------------------------------------------------------------------

  /**
   * Let the audience sound come (or not), on the server and in this page.
   * @param {boolean} on
   */
  async function setHall(on) {
    live.hallOn = on;
    el.hallAudio.muted = !on;
    renderPage();
    try {
      await live.connection?.request('hall.mute', { muted: !on });
    } catch { /* no audience sound yet: the page's own mute is enough until it comes */ }
  }

  el.hall.addEventListener('click', () => setHall(!live.hallOn));

  return {
    get connection() { return live.connection; },
    get pc() { return live.pc; },
    get codecs() { return live.codecs; },
    hangUp,
    render,
  };
}
