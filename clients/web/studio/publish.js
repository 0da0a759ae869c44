// @ts-check
/**
 * Going live from the studio page: the camera and microphone published to the show with
 * `perform.start` (one peer connection, with a receive-only section for the audience sound made from
 * the reactions), paused with `perform.stop`, the audience sound on or off (`hall.mute`), and the
 * show ended with `perform.end` after asking. The big buttons: one at a time.
 *
 * `?codec=H264` (or `VP8`) makes the browser offer only that video codec.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { Connection, iceGatheringComplete } from '../protocol.js';

/** @typedef {import('./status.js').Status} Status */
/** @typedef {import('./status.js').Phase} Phase */
/** @typedef {import('./preview.js').Preview} Preview */
/** @typedef {{showId: string, token: string}} ShowLink the show and its performer token */

/**
 * @typedef {object} Publish
 * @property {Connection | null} connection the connection that sends (none when not live)
 * @property {RTCPeerConnection | null} pc
 * @property {Record<string, string> | null} codecs the codecs the server took
 * @property {() => void} hangUp close the peer connection and the socket (the server pauses the show)
 * @property {() => void} render the big buttons for the current phase
 */

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
  };

  function render() {
    const { phase } = status;
    // one big button at a time: start (or go on after a pause), or pause while sending
    const key = status.showState === 'paused' ? 'resume_live' : 'go_live';
    el.button.dataset.t = key;
    el.button.textContent = t(key);
    el.button.hidden = !['ready', 'starting', 'failed', 'lost'].includes(phase);
    el.button.disabled = phase === 'starting';
    el.pause.hidden = phase !== 'publishing';
    el.hall.hidden = el.hallHelp.hidden = phase !== 'publishing';
    el.hall.setAttribute('aria-pressed', String(live.hallOn));
    const { open } = status;
    el.end.hidden = !open || !el.endConfirm.hidden;
    if (!open) el.endConfirm.hidden = true;
  }

  /** Close the peer connection and the socket (the server then pauses the show). */
  function hangUp() {
    const { connection, pc } = live;
    live.connection = null;
    live.pc = null;
    live.codecs = null;
    el.hallAudio.srcObject = null;
    pc?.close();
    connection?.close();  // the host connection goes on counting the audience
  }

  async function goLive() {
    if (!preview.stream) return;
    setPhase('starting');
    try {
      const connection = await Connection.open();
      live.connection = connection;
      connection.on('show.state', (event) => {
        status.showState = event.state;
        if (event.state === 'ended') {
          hangUp();
          setPhase('ended');
        } else {
          renderPage();
        }
      });
      connection.on('audience', (event) => {
        onViewers(event.viewers);
        renderPage();
      });
      connection.on('closed', () => {
        if (live.connection !== connection) return; // we hung up ourselves
        hangUp();
        if (status.showState === 'live') status.showState = 'paused';
        setPhase('lost');
      });

      const pc = new RTCPeerConnection({
        iceServers: connection.iceServers, bundlePolicy: 'max-bundle',
      });
      live.pc = pc;
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
      pc.addEventListener('connectionstatechange', () => {
        if (live.pc === pc && pc.connectionState === 'failed') {
          hangUp();
          setPhase('lost');
        }
      });
      await pc.setLocalDescription(await pc.createOffer());
      await iceGatheringComplete(pc);
      const answer = await connection.request('perform.start', {
        show: link.showId,
        token: link.token,
        sdp: pc.localDescription?.sdp ?? '',
      });
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      live.codecs = answer.codecs;
      if (status.phase === 'starting') setPhase('publishing');
      if (!live.hallOn) setHall(false);
    } catch (error) {
      console.error('going live failed', error);
      hangUp();
      status.errorCode = /** @type {{code?: string}} */ (error).code ?? 'error';
      setPhase(status.errorCode === 'show_not_found' ? 'ended' : 'failed');
    }
  }

  async function stop() {
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
    try {
      if (!connection) throw new Error('offline');
      await connection.request('perform.end', { show: link.showId, token: link.token });
      hangUp();
      status.showState = 'ended';
      setPhase('ended');
      preview.stop();
    } catch {
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
