// @ts-check
/**
 * The show itself on the Watch page: the picture and its sound (the server's offer answered, media
 * started again when the codecs change), the status line, the "sound on" button, the volume (lowered
 * while people in the lobby talk) and full screen.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError, iceGatheringComplete } from '../protocol.js';
import { keep, readNumber } from './settings.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {'opening' | 'scheduled' | 'live' | 'paused' | 'ended' | 'cancelled' | 'lost' | 'removed' | 'elsewhere'} WatchState */
/** @typedef {{video?: string, audio?: string}} Codecs */

const VOLUME_KEY = 'lampio.volume';
/** How much the show's sound is lowered while people in the lobby talk. */
const DUCKED = 0.3;
/** Seconds a moved picture may take to show on the new connection before the old one goes anyway. */
const MOVE_WAIT = 5;

/**
 * @typedef {object} ShowView
 * @property {WatchState} state what the status line says now
 * @property {RTCPeerConnection | null} pc the current peer connection
 * @property {Codecs | null} codecs the codecs of the current peer connection
 * @property {(state: WatchState) => void} setState
 * @property {(connection: Connection, codecs?: Codecs | null) => void} showLive the show is live:
 *   start media, or again if the codecs changed
 * @property {(connection: Connection) => Promise<void>} move start media on another connection
 *   (the node drains), the current picture shown until the new one has a frame
 * @property {() => void} close close the peer connection and empty the picture
 * @property {() => void} hideSound hide the "sound on" button
 * @property {() => void} render the status line in the page's language
 * @property {() => void} renderVolume
 */

/**
 * @param {{current: () => Connection | null, onSoundOn: () => void, ducked: () => boolean,
 *          onState?: (state: WatchState) => void,
 *          quality?: () => {video?: boolean, picture?: string}}} options
 *   current: the page's connection now (work for another one is dropped); onSoundOn: the viewer
 *   turned the sound on (a tap the browser counts for playing other sound too); ducked: whether
 *   people in the lobby are talking; onState: what the status line says changed; quality: what
 *   `watch.start` asks for (`video: false`: the sound alone; `picture: 'best'`: the sharpest
 *   picture always; the viewer's choices on a weak link)
 * @returns {ShowView}
 */
export function initShowView({ current, onSoundOn, ducked, onState, quality = () => ({}) }) {
  const el = {
    watch: byId('watch'),
    status: byId('watch-status'),
    video: /** @type {HTMLVideoElement} */ (byId('video')),
    sound: /** @type {HTMLButtonElement} */ (byId('sound-button')),
    volumeDown: /** @type {HTMLButtonElement} */ (byId('volume-down')),
    volumeUp: /** @type {HTMLButtonElement} */ (byId('volume-up')),
    volumeValue: byId('volume-value'),
    fullscreen: /** @type {HTMLButtonElement} */ (byId('fullscreen-button')),
  };

  const media = {
    /** @type {WatchState} */ state: 'opening',
    /** @type {RTCPeerConnection | null} */ pc: null,
    /** @type {Codecs | null} the codecs of the current peer connection */ codecs: null,
    /** A video frame has been shown on the current peer connection. */ picture: false,
    /** @type {Promise<void> | null} */ starting: null,
    /** Start media again once the current start is done (codecs changed meanwhile). */ again: false,
    volume: readNumber(VOLUME_KEY, 0.8),
  };

  function render() {
    const { state } = media;
    const key = state === 'live' && !media.picture ? 'watch_waiting_picture' : `watch_${state}`;
    el.status.textContent = t(key);
    el.status.dataset.state = state;
    el.watch.dataset.state = state;
  }

  /** @param {WatchState} state */
  function setState(state) {
    media.state = state;
    render();
    onState?.(state);
  }

  /**
   * Ask for the server's offer, answer it and let media flow (again, if codecs changed).
   * @param {Connection} connection
   * @param {boolean} [keep] keep showing the current picture until the new one has a frame
   * @returns {Promise<void>} done starting
   */
  function start(connection, keep = false) {
    if (media.starting) {
      media.again = true;
      return media.starting;
    }
    media.starting = (async () => {
      try {
        do {
          media.again = false;
          await negotiate(connection, keep);
          keep = false;
        } while (media.again && connection === current());
      } catch (error) {
        if (connection !== current()) return;
        if (error instanceof ProtocolError && error.code === 'not_live') {
          setState('paused');  // the performer left meanwhile; `live` will come as an event
        } else if (!(error instanceof ProtocolError && error.code === 'closed')) {
          console.error('watching failed', error);
          close();
          setState('lost');
          connection.close();  // the page reconnects and starts over
        }
      } finally {
        media.starting = null;
      }
    })();
    return media.starting;
  }

  /**
   * @param {Connection} connection
   * @param {boolean} keep the current peer connection goes on until the new one has a frame
   */
  async function negotiate(connection, keep) {
    const offer = await connection.request('watch.start', quality());
    if (connection !== current()) return;
    const old = keep ? media.pc : null;
    if (!old) close();
    const pc = new RTCPeerConnection({ iceServers: connection.iceServers });
    if (!old) {
      media.pc = pc;
      media.codecs = offer.codecs;
      media.picture = false;
      setState('live');
    }
    pc.addEventListener('connectionstatechange', () => {
      if (pc === media.pc && pc.connectionState === 'failed') {
        close();
        setState('lost');
        connection.close();
      }
    });
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    const stream = new MediaStream(pc.getReceivers().map((receiver) => receiver.track));
    if (!old) {
      el.video.srcObject = stream;
      play();
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    if (!old && pc !== media.pc) return;
    await connection.request('watch.answer', { sdp: pc.localDescription?.sdp ?? '' });
    if (!old) return;
    await decoded(pc, MOVE_WAIT);
    if (connection !== current() || media.pc !== old) {
      pc.close();  // left, or lost meanwhile: that path starts over
      return;
    }
    media.pc = pc;  // the new picture has a frame: show it, let go of the old one
    media.codecs = offer.codecs;
    const muted = el.video.muted;
    el.video.srcObject = stream;
    el.video.muted = muted;
    el.video.play().catch(() => { /* shown again by the next frame or the sound button */ });
    old.close();
  }

  /**
   * Resolve once `pc` has decoded a video frame, or after `timeout` seconds.
   * @param {RTCPeerConnection} pc
   * @param {number} timeout
   */
  async function decoded(pc, timeout) {
    const until = Date.now() + timeout * 1000;
    while (Date.now() < until && pc.connectionState !== 'closed') {
      const stats = await pc.getStats();
      let frames = 0;
      stats.forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded ?? 0;
      });
      if (frames > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
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
    onSoundOn();
    el.video.muted = false;
    el.video.play().then(() => {
      el.sound.hidden = true;
    }, () => {
      el.video.muted = true;
    });
  });

  el.video.addEventListener('resize', () => {
    if (el.video.videoWidth > 0 && !media.picture) {
      media.picture = true;
      render();
    }
  });

  function close() {
    const pc = media.pc;
    media.pc = null;
    media.codecs = null;
    media.picture = false;
    pc?.close();
    el.video.srcObject = null;
  }

  function renderVolume() {
    const lower = ducked();
    el.video.volume = Math.max(0, Math.min(1, media.volume * (lower ? DUCKED : 1)));
    el.volumeValue.textContent = t(lower ? 'volume_value_ducked' : 'volume_value', {
      percent: String(Math.round(media.volume * 100)),
    });
    el.volumeDown.disabled = media.volume <= 0;
    el.volumeUp.disabled = media.volume >= 1;
  }

  /** @param {number} step */
  function changeVolume(step) {
    media.volume = Math.round(Math.max(0, Math.min(1, media.volume + step)) * 10) / 10;
    keep(VOLUME_KEY, String(media.volume));
    renderVolume();
  }

  el.volumeDown.addEventListener('click', () => changeVolume(-0.2));
  el.volumeUp.addEventListener('click', () => changeVolume(0.2));

  // The whole page full screen (the browser's bars and the device's own go away), controls and all;
  // Esc or the same button brings them back. Hidden where the browser cannot do it (iPhone Safari).
  el.fullscreen.hidden = !document.fullscreenEnabled;
  el.fullscreen.addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  document.addEventListener('fullscreenchange', () => {
    el.fullscreen.setAttribute('aria-pressed', String(Boolean(document.fullscreenElement)));
  });

  return {
    get state() { return media.state; },
    get pc() { return media.pc; },
    get codecs() { return media.codecs; },
    setState,
    showLive(connection, codecs) {
      const changed = !media.codecs || !codecs
        || codecs.video !== media.codecs.video || codecs.audio !== media.codecs.audio;
      if (!media.pc || changed) start(connection);
      else setState('live');
    },
    move(connection) {
      return start(connection, Boolean(media.pc));
    },
    close,
    hideSound() {
      el.sound.hidden = true;
    },
    render,
    renderVolume,
  };
}
