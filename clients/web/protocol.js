// @ts-check
/**
 * The WebSocket protocol of docs/protocol.md, for any page: one connection to `/ws` on the page's
 * own origin, requests matched to their replies by `id`, server events delivered by `type`.
 *
 * Standalone on purpose (no imports): a page, a test or a kiosk screen can use it alone.
 *
 * @example
 *   const conn = await Connection.open();
 *   conn.on('show.state', (event) => console.log(event.state));
 *   const joined = await conn.request('watch.join', { code: '123456' });
 */

export const PROTOCOL_VERSION = 1;

/** Seconds a request may wait for its reply before it fails with code `timeout`. */
const REQUEST_TIMEOUT = 15;

/**
 * Seconds without a word from the server before the connection asks it (`ping`), and seconds it
 * has to answer; else the connection counts as lost (`closed` with code 1006) and the page comes
 * back elsewhere. A host that vanished silently (power, network) closes nothing: without this,
 * nothing would notice for minutes.
 */
export const SILENCE = 3;
export const PING_TIMEOUT = 3;

/**
 * @typedef {{type: 'hello', protocol: number, server: string, ice_servers: RTCIceServer[]}} Hello
 * @typedef {{type: string, [field: string]: any}} ServerEvent
 *   A message the server sends on its own (no `id`): `show.state`, `audience`, …; the connection
 *   itself emits `{type: 'closed', code, reason}` once, when the socket closes.
 * @typedef {{code: string, message?: string, retry_after?: number, [field: string]: any}} ErrorBody
 */

/** A request the server answered with an error (or that never got an answer). */
export class ProtocolError extends Error {
  /**
   * @param {string} code the stable machine-readable code (`show_not_found`, `not_live`, …);
   *   `closed` and `timeout` are this module's own, for replies that never came
   * @param {string} message
   * @param {ErrorBody} [details] the whole error object (e.g. `retry_after`)
   */
  constructor(code, message, details) {
    super(message || code);
    this.name = 'ProtocolError';
    /** @type {string} */
    this.code = code;
    /** @type {ErrorBody} */
    this.details = details ?? { code };
  }
}

/** The WebSocket URL of `/ws` on the page's own origin (ws: for http:, wss: for https:). */
export function socketUrl(base = location.href) {
  const url = new URL('/ws', base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** One WebSocket to a node. Open it with {@link Connection.open}. */
export class Connection {
  /**
   * @param {WebSocket} socket an open socket
   * @param {Hello} hello the server's first message
   */
  constructor(socket, hello) {
    /** @type {WebSocket} */
    this.socket = socket;
    /** @type {Hello} */
    this.hello = hello;
    /** @type {boolean} */
    this.closed = false;
    /** @private */
    this.nextId = 1;
    /** @private @type {Map<number, {resolve: (r: any) => void, reject: (e: Error) => void, timer: number}>} */
    this.pending = new Map();
    /** @private @type {Map<string, Set<(event: ServerEvent) => void>>} */
    this.handlers = new Map();
    /** @private the server's last word (ms, `performance.now()`) */
    this.heardAt = performance.now();
    /** @private */
    this.asking = false;
    /** @private */
    this.heartbeat = setInterval(() => this.listenForSilence(), 500);
    socket.addEventListener('message', (message) => this.receive(message.data));
    socket.addEventListener('close', (close) => this.closedBy(close.code, close.reason));
  }

  /** @private Ask a silent server whether it is there; no answer: the connection is lost. */
  listenForSilence() {
    if (this.closed || this.asking || performance.now() - this.heardAt < SILENCE * 1000) return;
    this.asking = true;
    this.request('ping', {}, { timeout: PING_TIMEOUT }).then(
      () => { this.asking = false; },
      (/** @type {unknown} */ error) => {
        this.asking = false;
        if (error instanceof ProtocolError && error.code === 'timeout') {
          this.socket.close(); // its close event may come much later, or never: lost now
          this.closedBy(1006, 'the server stopped answering');
        }
      },
    );
  }

  /**
   * Connect and wait for the server's `hello`.
   * @param {{url?: string, timeout?: number}} [options] `timeout` in seconds (default 10)
   * @returns {Promise<Connection>}
   */
  static open({ url = socketUrl(), timeout = 10 } = {}) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      const settle = () => {
        clearTimeout(timer);
        socket.removeEventListener('error', onFailure);
        socket.removeEventListener('close', onFailure);
        socket.removeEventListener('message', onHello);
      };
      const fail = (/** @type {string} */ why) => {
        settle();
        socket.close();
        reject(new ProtocolError('closed', why));
      };
      const onFailure = () => fail('could not connect');
      const onHello = (/** @type {MessageEvent} */ message) => {
        let hello = null;
        try {
          hello = JSON.parse(message.data);
        } catch { /* not JSON: refused below */ }
        if (!hello || hello.type !== 'hello') {
          fail('the server did not say hello');
          return;
        }
        settle();
        if (hello.protocol !== PROTOCOL_VERSION) {
          console.warn('the server speaks protocol', hello.protocol, 'this page', PROTOCOL_VERSION);
        }
        resolve(new Connection(socket, hello));
      };
      const timer = setTimeout(() => fail('the server did not answer'), timeout * 1000);
      socket.addEventListener('error', onFailure);
      socket.addEventListener('close', onFailure);
      socket.addEventListener('message', onHello);
    });
  }

  /** The STUN/TURN servers the server offered (empty unless configured). @returns {RTCIceServer[]} */
  get iceServers() {
    return this.hello.ice_servers ?? [];
  }

  /**
   * Send a command; resolves with its `result`, rejects with a {@link ProtocolError}.
   * @param {string} type e.g. `watch.join`
   * @param {Record<string, unknown>} [fields] the command's fields
   * @param {{timeout?: number}} [options] seconds to wait for the reply
   * @returns {Promise<any>}
   */
  request(type, fields = {}, { timeout = REQUEST_TIMEOUT } = {}) {
    if (this.closed || this.socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ProtocolError('closed', 'the connection is closed'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ProtocolError('timeout', `no reply to ${type}`));
      }, timeout * 1000);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ ...fields, id, type }));
    });
  }

  /**
   * Call `handler` for every server event of this type (`*` for all); returns an unsubscribe.
   * @param {string} type
   * @param {(event: ServerEvent) => void} handler
   * @returns {() => void}
   */
  on(type, handler) {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Close the socket (pending requests fail with code `closed`). */
  close() {
    this.socket.close(1000);
    this.closedBy(1000, 'closed by the page');
  }

  /** @private @param {string} data */
  receive(data) {
    this.heardAt = performance.now();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // the server only sends JSON; ignore anything else rather than break the page
    }
    if (message === null || typeof message !== 'object') return;
    if (message.type === 'result') {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.success) {
        waiting.resolve(message.result ?? {});
      } else {
        const error = message.error ?? { code: 'internal_error' };
        waiting.reject(new ProtocolError(error.code, error.message, error));
      }
      return;
    }
    this.emit(message);
  }

  /** @private @param {ServerEvent} event */
  emit(event) {
    for (const type of [event.type, '*']) {
      for (const handler of this.handlers.get(type) ?? []) {
        try {
          handler(event);
        } catch (error) {
          console.error('event handler failed', event.type, error);
        }
      }
    }
  }

  /** @private @param {number} code @param {string} reason */
  closedBy(code, reason) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new ProtocolError('closed', 'the connection closed'));
    }
    this.pending.clear();
    this.emit({ type: 'closed', code, reason });
  }
}

/**
 * Open a connection, retrying with growing pauses (1 s, 2 s, 4 s … at most `maxDelay`) until it
 * works or `signal` aborts. For pages that must come back by themselves after a network cut.
 * @param {{url?: string, maxDelay?: number, signal?: AbortSignal,
 *          onRetry?: (attempt: number, error: unknown) => void}} [options]
 * @returns {Promise<Connection>}
 */
export async function openWithRetry({ url, maxDelay = 15, signal, onRetry } = {}) {
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await Connection.open({ url });
    } catch (error) {
      onRetry?.(attempt, error);
      await sleep(retryDelay(attempt, error, maxDelay));
    }
  }
}

/**
 * Milliseconds to wait before attempt `attempt + 1`: what the server asked for (`retry_after` of a
 * refused request), else doubling from 1 s up to `maxDelay` seconds, spread a little so that a room
 * of screens cut off together does not come back in one wave.
 * @param {number} attempt 1 after the first failure
 * @param {unknown} [error] the failure, perhaps a {@link ProtocolError} with `retry_after`
 * @param {number} [maxDelay] seconds
 * @returns {number}
 */
export function retryDelay(attempt, error, maxDelay = 15) {
  const asked = error instanceof ProtocolError ? Number(error.details.retry_after) : NaN;
  if (asked > 0) return Math.min(asked, 15 * 60) * 1000;
  const seconds = Math.min(maxDelay, 2 ** Math.min(Math.max(attempt, 1) - 1, 8));
  return seconds * (0.8 + 0.4 * Math.random()) * 1000;
}

/** @param {number} ms @returns {Promise<void>} */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolve when the peer connection has gathered all its ICE candidates, so the description holds
 * them all (the protocol does not trickle). Resolves anyway after `timeout` seconds: what was
 * gathered by then is sent.
 * @param {RTCPeerConnection} pc
 * @param {number} [timeout]
 * @returns {Promise<void>}
 */
export function iceGatheringComplete(pc, timeout = 5) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, timeout * 1000);
    pc.addEventListener('icegatheringstatechange', check);
  });
}
