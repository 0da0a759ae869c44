// @ts-check
/**
 * Lobby video in the browser (docs/protocol.md, "Lobby cameras"): the members of a lobby see each
 * other, and the performer sees the members who chose to show themselves (the audience wall).
 *
 * Like the lobby voice (./voice.js), a peer connection of its own, apart from the show's. A seated
 * viewer offers one send-only camera section (its track added only when the member turns the
 * camera on: the camera is never asked for before) and {@link TILES} receive-only tile slots; the
 * performer offers {@link WALL_SLOTS} receive-only slots and no camera. Slot n is the n-th
 * receive-only section; the server says which member is on which slot (`camera.state`,
 * `wall.state`), so nobody renegotiates when a camera goes on or off.
 *
 * {@link LobbyCameras} (the viewer) tells the page through `onChange`: `open` (the lobby may show
 * cameras now), `on` (this member's camera is on), `performer` (shown to the performer too),
 * `waiting` (six cameras are on: this one waits its turn), `cameras` (the other members' tiles),
 * `off` (why the server switched this camera off, until it is turned on again). {@link Wall}
 * (the performer) tells `cameras`, each with its member's name and lobby.
 */

import { ProtocolError, iceGatheringComplete, retryDelay, sleep } from './protocol.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {{slot: number, member: string, name: string, lobby?: string}} Tile */
/**
 * @typedef {{open: boolean, on: boolean, performer: boolean, waiting: boolean,
 *   slot: number | null, cameras: Tile[], off: string | null, joined: boolean}} CameraState
 * @typedef {{cameras: Tile[], joined: boolean}} WallState
 */

export const TILES = 6; // cameras a lobby shows at once (the server's limit)
export const WALL_SLOTS = 12; // cameras on the performer's wall at once

/** What a member's camera sends: small and calm, enough for a face on a tile. */
export const CAMERA = {
  video: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15, max: 15 } },
  audio: false,
};
const MAX_BITRATE = 250_000;
const MAX_FRAMERATE = 15;

/**
 * Offer VP8 alone (with its retransmissions) on this transceiver: every browser has it, the server
 * forwards only VP8 tiles, and a browser's full list of codecs in seven or thirteen video sections
 * would make an offer larger than the server takes (32 kB).
 * @param {RTCRtpTransceiver} transceiver
 */
function preferVp8(transceiver) {
  try {
    const codecs = RTCRtpReceiver.getCapabilities('video')?.codecs ?? [];
    const wanted = codecs.filter((codec) => ['video/vp8', 'video/rtx'].includes(
      codec.mimeType.toLowerCase(),
    ));
    if (wanted.some((codec) => codec.mimeType.toLowerCase() === 'video/vp8')) {
      transceiver.setCodecPreferences(wanted);
    }
  } catch (error) {
    console.warn('the browser keeps its own codecs', error);
  }
}

/**
 * A peer connection of receive-only video slots, each slot's track in a stream of its own.
 * Shared by the viewer's {@link LobbyCameras} and the performer's {@link Wall}.
 */
class Slots {
  /**
   * @param {Connection} conn
   * @param {{camera: boolean, slots: number, onLost: () => void}} options
   */
  constructor(conn, { camera, slots, onLost }) {
    this.pc = new RTCPeerConnection({ iceServers: conn.iceServers, bundlePolicy: 'max-bundle' });
    /** @type {RTCRtpSender | null} */
    this.sender = null;
    if (camera) {
      const transceiver = this.pc.addTransceiver('video', { direction: 'sendonly' });
      preferVp8(transceiver);
      this.sender = transceiver.sender;
    }
    /** @type {RTCRtpTransceiver[]} */
    this.slots = [];
    for (let n = 0; n < slots; n++) {
      const transceiver = this.pc.addTransceiver('video', { direction: 'recvonly' });
      preferVp8(transceiver);
      this.slots.push(transceiver);
    }
    /** @type {Map<number, MediaStream>} */
    this.streams = new Map();
    this.pc.addEventListener('connectionstatechange', () => {
      if (['failed', 'closed'].includes(this.pc.connectionState)) onLost();
    });
  }

  /** @returns {Promise<string>} the offer, with every candidate gathered */
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringComplete(this.pc);
    return this.pc.localDescription?.sdp ?? '';
  }

  /** @param {string} sdp the server's answer */
  async answer(sdp) {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /**
   * The picture on this slot: its receiver's track, there from the start (its frames come when the
   * server forwards a camera on it).
   * @param {number} slot
   * @returns {MediaStream | null}
   */
  stream(slot) {
    const receiver = this.slots[slot]?.receiver;
    if (!receiver) return null;
    let stream = this.streams.get(slot);
    if (!stream) this.streams.set(slot, (stream = new MediaStream([receiver.track])));
    return stream;
  }

  close() {
    this.pc.close();
    this.streams.clear();
  }
}

/**
 * Join again after a growing pause, until it works or the owner closes (voice.js does the same).
 * @param {{closed: boolean, start(): Promise<void>, teardown(): void}} owner
 */
async function rejoin(owner) {
  for (let attempt = 1; !owner.closed; attempt++) {
    await sleep(retryDelay(attempt));
    if (owner.closed) return;
    try {
      await owner.start();
      return;
    } catch (error) {
      console.warn('the cameras could not join again', error);
      owner.teardown();
    }
  }
}

/** A seated viewer's cameras: its own camera and the tiles of the others in its lobby. */
export class LobbyCameras {
  /**
   * @param {Connection} conn the page's protocol connection, already in a lobby
   * @param {{onChange?: (state: CameraState) => void, member?: string | null}} [options]
   *   member: this member's id (its own camera is not one of its tiles)
   */
  constructor(conn, { onChange = () => {}, member = null } = {}) {
    this.conn = conn;
    this.onChange = onChange;
    this.member = member;
    this.open = false;
    this.on = false;
    this.performer = false;
    this.waiting = false;
    /** @type {number | null} */ this.slot = null;
    /** @type {Tile[]} */ this.cameras = [];
    /** @type {string | null} why the server switched the camera off */ this.off = null;
    /** @type {Slots | null} */ this.peer = null;
    /** @type {MediaStreamTrack | null} the camera itself, while it is on */ this.track = null;
    this.joined = false;
    this.closed = false;
    this.restarting = false;
    /** @type {(() => void)[]} */ this.unsubscribe = [];
  }

  /** The peer connection (null between joins). */
  get pc() {
    return this.peer?.pc ?? null;
  }

  /** @returns {CameraState} */
  get state() {
    return {
      open: this.open,
      on: this.on,
      performer: this.performer,
      waiting: this.waiting,
      slot: this.slot,
      cameras: this.cameras.filter((tile) => tile.member !== this.member),
      off: this.off,
      joined: this.joined,
    };
  }

  /**
   * The picture of the camera on this slot.
   * @param {number} slot
   */
  stream(slot) {
    return this.peer?.stream(slot) ?? null;
  }

  /** This member's own picture while the camera is on (for a small self-view). */
  get self() {
    return this.track ? new MediaStream([this.track]) : null;
  }

  /** Join the lobby's cameras (seeing the others); this member's camera stays off. */
  async start() {
    const peer = (this.peer = new Slots(this.conn, {
      camera: true, slots: TILES, onLost: () => { if (this.peer === peer) this.lost(); },
    }));
    this.unsubscribe.push(
      this.conn.on('camera.state', (event) => {
        this.take(event);
        this.changed();
      }),
      this.conn.on('camera.off', (event) => {
        // `lost`: the server let this camera connection go: join again now, not when the browser
        // notices; else (`closed`) the lobby may not show cameras now
        if (event.reason === 'lost') {
          if (this.peer === peer) this.lost();
          return;
        }
        this.off = String(event.reason ?? 'closed');
        this.cameraOff();
        this.changed();
      }),
      // the page's connection is gone (the page comes back on a new one): the camera goes off now
      this.conn.on('closed', () => {
        this.closed = true;
        this.teardown();
        this.changed();
      }),
    );
    const joined = await this.conn.request('camera.join', { sdp: await peer.offer() });
    await peer.answer(joined.sdp);
    this.take(joined);
    this.joined = true;
    this.changed();
  }

  /**
   * The lobby's cameras as the server tells them (`camera.join`'s reply, `camera.state`).
   * @private
   * @param {{open?: boolean, cameras?: Tile[], waiting?: string[]}} told
   */
  take(told) {
    this.open = Boolean(told.open);
    this.cameras = told.cameras ?? [];
    if (this.on && this.member !== null) {
      this.slot = this.cameras.find((tile) => tile.member === this.member)?.slot ?? null;
      this.waiting = (told.waiting ?? []).includes(this.member);
    }
  }

  /**
   * Turn the camera on (asking the browser for it the first time) or off; `performer` shows it on
   * the performer's wall too (during the show, only there). Rejects with the server's
   * {@link ProtocolError} (`camera_closed`) or the browser's error; the camera is off then.
   * @param {boolean} on
   * @param {{performer?: boolean}} [options]
   */
  async setCamera(on, { performer = this.performer } = {}) {
    if (!on) {
      this.cameraOff();
      this.changed();
      await this.conn.request('camera.set', { on: false }).catch(() => {});
      return;
    }
    const sender = this.peer?.sender;
    if (!sender) throw new ProtocolError('invalid_input', 'the cameras are not joined');
    if (!this.open && !performer) throw new ProtocolError('camera_closed', 'not now');
    if (!this.track || this.track.readyState === 'ended') {
      const stream = await navigator.mediaDevices.getUserMedia(CAMERA);
      this.track = stream.getVideoTracks()[0];
      await sender.replaceTrack(this.track);
      await limit(sender, this.track);
    }
    try {
      const reply = await this.conn.request('camera.set', { on: true, performer });
      this.on = Boolean(reply.on);
      this.performer = Boolean(reply.performer);
      this.waiting = Boolean(reply.waiting);
      this.slot = reply.slot ?? null;
      this.off = null;
      if (!this.on) this.cameraOff();
    } catch (error) {
      this.cameraOff();
      this.changed();
      throw error;
    }
    this.changed();
  }

  /**
   * Release the camera itself, so the browser's "camera in use" light goes out too.
   * @private
   */
  cameraOff() {
    this.on = false;
    this.waiting = false;
    this.slot = null;
    this.track?.stop();
    this.track = null;
    this.peer?.sender?.replaceTrack(null).catch(() => {});
  }

  /**
   * The camera connection failed or the server let it go: join again (the camera starts off).
   * @private
   */
  async lost() {
    if (this.restarting || this.closed) return;
    this.restarting = true;
    this.teardown();
    this.changed();
    await rejoin(this);
    this.restarting = false;
  }

  /** @private */
  teardown() {
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
    this.joined = false;
    this.cameraOff();
    this.cameras = [];
    const peer = this.peer;
    this.peer = null;
    peer?.close();
  }

  /** Leave the cameras and release the camera. */
  close() {
    this.closed = true;
    if (this.joined) this.conn.request('camera.leave').catch(() => {});
    this.teardown();
  }

  /** @private */
  changed() {
    this.onChange(this.state);
  }
}

/**
 * A camera sender's limits: a tile needs no more than this, and a weak link shares them.
 * @param {RTCRtpSender} sender
 * @param {MediaStreamTrack} track the camera's
 */
async function limit(sender, track) {
  try {
    const parameters = sender.getParameters();
    if (!parameters.encodings?.length) return;
    // A camera that cannot give 320×240 (`ideal` is a wish) is scaled down by the encoder to fit
    // a tile: the server drops larger pictures.
    const { width = 0, height = 0 } = track.getSettings();
    const scale = Math.max(1, width / 320, height / 240);
    for (const encoding of parameters.encodings) {
      encoding.maxBitrate = MAX_BITRATE;
      encoding.maxFramerate = MAX_FRAMERATE;
      if (scale > 1) encoding.scaleResolutionDownBy = scale;
    }
    await sender.setParameters(parameters);
  } catch (error) {
    console.warn('the camera keeps the browser\'s own rate', error);
  }
}

/** The performer's audience wall: the cameras of the members who chose to show themselves. */
export class Wall {
  /**
   * @param {Connection} conn the studio's host connection
   * @param {{onChange?: (state: WallState) => void}} [options]
   */
  constructor(conn, { onChange = () => {} } = {}) {
    this.conn = conn;
    this.onChange = onChange;
    /** @type {Tile[]} */ this.cameras = [];
    /** @type {Slots | null} */ this.peer = null;
    this.joined = false;
    this.closed = false;
    this.restarting = false;
    /** @type {(() => void)[]} */ this.unsubscribe = [];
  }

  get pc() {
    return this.peer?.pc ?? null;
  }

  /** @returns {WallState} */
  get state() {
    return { cameras: this.cameras, joined: this.joined };
  }

  /** @param {number} slot */
  stream(slot) {
    return this.peer?.stream(slot) ?? null;
  }

  /** Open the wall (receive only: the performer sends no camera here). */
  async start() {
    const peer = (this.peer = new Slots(this.conn, {
      camera: false, slots: WALL_SLOTS, onLost: () => { if (this.peer === peer) this.lost(); },
    }));
    this.unsubscribe.push(
      this.conn.on('wall.state', (event) => {
        this.cameras = event.cameras ?? [];
        this.changed();
      }),
      this.conn.on('camera.off', (event) => {
        if (event.reason === 'lost' && this.peer === peer) this.lost();
      }),
      this.conn.on('closed', () => {
        this.closed = true;
        this.teardown();
        this.changed();
      }),
    );
    const joined = await this.conn.request('camera.join', { sdp: await peer.offer() });
    await peer.answer(joined.sdp);
    this.cameras = joined.cameras ?? [];
    this.joined = true;
    this.changed();
  }

  /** @private */
  async lost() {
    if (this.restarting || this.closed) return;
    this.restarting = true;
    this.teardown();
    this.changed();
    await rejoin(this);
    this.restarting = false;
  }

  /** @private */
  teardown() {
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
    this.joined = false;
    this.cameras = [];
    const peer = this.peer;
    this.peer = null;
    peer?.close();
  }

  /** Close the wall and release its connection on the server. */
  close() {
    this.closed = true;
    if (this.joined) this.conn.request('camera.leave').catch(() => {});
    this.teardown();
    this.changed();
  }

  /** @private */
  changed() {
    this.onChange(this.state);
  }
}
