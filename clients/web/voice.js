// @ts-check
/**
 * Lobby voice in the browser: the members of a lobby talk to each other (docs/protocol.md, "Lobby
 * voice"). One peer connection of its own: a microphone section (its track added only when the
 * member turns the microphone on, so nobody is asked for the microphone before they want it) and
 * fixed receive-only voice slots, each played by its own audio element. The performer joins with
 * `listenOnly` to hear a lobby invited on stage.
 *
 * The page reads `state` (or gets it through `onChange`): `open` (this lobby may talk now), `mic`
 * (this member's microphone is on), `talking` (ids of other members whose microphone is on),
 * `stage` (the lobby id everyone hears, or null), `intermission`, and `duck` (lower the show's
 * sound: someone in the foyer, or on stage, is talking).
 */

import { ProtocolError, iceGatheringComplete, retryDelay, sleep } from './protocol.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {{open: boolean, mic: boolean, talking: string[], stage: string | null,
 *   intermission: boolean, duck: boolean, joined: boolean}} VoiceState */

export const SLOTS = 12; // voices heard at once (the server's limit)
const QUIET_SHOW_STATES = ['live', 'paused'];

export class LobbyVoice {
  /**
   * @param {Connection} conn the page's protocol connection, already in a lobby (or performing)
   * @param {{onChange?: (state: VoiceState) => void, listenOnly?: boolean,
   *   lobby?: string | null, member?: string | null, showState?: string}} [options]
   */
  constructor(conn, { onChange = () => {}, listenOnly = false, lobby = null, member = null,
    showState = 'scheduled' } = {}) {
    this.conn = conn;
    this.onChange = onChange;
    this.listenOnly = listenOnly;
    this.lobby = lobby;
    this.member = member;
    this.showState = showState;
    this.intermission = false;
    /** @type {string | null} */ this.stage = null;
    this.mic = false;
    /** @type {Set<string>} */ this.talking = new Set();
    /** @type {RTCPeerConnection | null} */ this.pc = null;
    /** @type {RTCRtpSender | null} */ this.micSender = null;
    /** @type {MediaStreamTrack | null} */ this.micTrack = null;
    /** @type {HTMLAudioElement[]} */ this.players = [];
    this.volume = 1;
    this.joined = false;
    this.closed = false; // the page closed the voice: no more joining again
    this.restarting = false;
    /** @type {(() => void)[]} */ this.unsubscribe = [];
  }

  /** @returns {VoiceState} */
  get state() {
    const open = this.stage !== null
      ? this.stage === this.lobby
      : this.intermission || !QUIET_SHOW_STATES.includes(this.showState);
    const talking = [...this.talking].filter((id) => id !== this.member);
    return {
      open: open && !this.listenOnly,
      mic: this.mic,
      talking,
      stage: this.stage,
      intermission: this.intermission,
      duck: this.stage !== null || (open && talking.length > 0),
      joined: this.joined,
    };
  }

  /** Join the lobby's voice (listening); the microphone stays off. */
  async start() {
    const pc = (this.pc = new RTCPeerConnection({
      iceServers: this.conn.iceServers,
      bundlePolicy: 'max-bundle',
    }));
    if (!this.listenOnly) {
      this.micSender = pc.addTransceiver('audio', { direction: 'sendonly' }).sender;
    }
    const slots = [];
    for (let n = 0; n < SLOTS; n++) slots.push(pc.addTransceiver('audio', { direction: 'recvonly' }));
    pc.addEventListener('track', (event) => {
      const player = new Audio();
      player.srcObject = new MediaStream([event.track]);
      player.volume = this.volume;
      player.dataset.voiceSlot = String(slots.indexOf(event.transceiver));
      this.players.push(player);
      player.play().catch(() => {}); // the page's "Turn on sound" unlocks it with the show
    });
    this.unsubscribe.push(
      this.conn.on('voice.state', (event) => {
        this.intermission = Boolean(event.intermission);
        this.stage = /** @type {string | null} */ (event.stage ?? null);
        this.changed();
      }),
      this.conn.on('show.state', (event) => {
        this.showState = String(event.state);
        this.changed();
      }),
      // The server let this voice connection go: join again now, not when the browser notices.
      this.conn.on('voice.lost', () => {
        if (this.pc === pc) this.lost();
      }),
      this.conn.on('voice.mic', (event) => {
        const id = String(event.member);
        if (event.on) this.talking.add(id);
        else this.talking.delete(id);
        if (id === this.member && !event.on && this.mic) this.micOff();
        this.changed();
      }),
    );
    pc.addEventListener('connectionstatechange', () => {
      if (this.pc === pc && ['failed', 'closed'].includes(pc.connectionState)) this.lost();
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    const joined = await this.conn.request('voice.join', { sdp: pc.localDescription?.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp: joined.sdp });
    this.intermission = Boolean(joined.intermission);
    this.stage = joined.stage ?? null;
    this.talking = new Set(joined.talking ?? []);
    this.joined = true;
    this.changed();
  }

  /**
   * Turn the microphone on (asking the browser for it the first time) or off. Rejects with the
   * server's {@link ProtocolError} (`voice_closed`, `voice_full`) or the browser's error.
   * @param {boolean} on
   */
  async setMic(on) {
    if (!on) {
      this.micOff();
      this.changed();
      await this.conn.request('voice.mic', { on: false }).catch(() => {});
      return;
    }
    if (!this.micSender) throw new ProtocolError('invalid_input', 'listening only');
    if (!this.micTrack || this.micTrack.readyState === 'ended') {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      this.micTrack = stream.getAudioTracks()[0];
      await this.micSender.replaceTrack(this.micTrack);
    }
    this.micTrack.enabled = true;
    try {
      await this.conn.request('voice.mic', { on: true });
    } catch (error) {
      this.micOff();
      this.changed();
      throw error;
    }
    this.mic = true;
    this.changed();
  }

  /** @private */
  micOff() {
    this.mic = false;
    // Release the microphone itself, so the browser's "microphone in use" sign goes off too.
    this.micTrack?.stop();
    this.micTrack = null;
    this.micSender?.replaceTrack(null).catch(() => {});
  }

  /**
   * The voice connection failed or the server let it go: join again, after a growing pause,
   * until it works or the page closes the voice. The microphone starts off again.
   * @private
   */
  async lost() {
    if (this.restarting || this.closed) return;
    this.restarting = true;
    this.teardown();
    this.changed();
    for (let attempt = 1; !this.closed; attempt++) {
      await sleep(retryDelay(attempt));
      if (this.closed) break;
      try {
        await this.start();
        break;
      } catch (error) {
        console.warn('the lobby voice could not join again', error);
        this.teardown();
      }
    }
    this.restarting = false;
  }

  /** @private */
  teardown() {
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
    this.joined = false;
    this.micOff();
    this.micSender = null;
    const pc = this.pc;
    this.pc = null;
    pc?.close();
    for (const player of this.players) player.srcObject = null;
    this.players = [];
  }

  /** The volume of the voices, 0–1. @param {number} volume */
  setVolume(volume) {
    this.volume = volume;
    for (const player of this.players) player.volume = volume;
  }

  /** Try to start the voices' sound again (after the page's "Turn on sound"). */
  resume() {
    for (const player of this.players) player.play().catch(() => {});
  }

  /** Leave the voice and release the microphone. */
  close() {
    this.closed = true;
    if (this.joined) this.conn.request('voice.leave').catch(() => {});
    this.teardown();
  }

  /** @private */
  changed() {
    this.onChange(this.state);
  }
}
