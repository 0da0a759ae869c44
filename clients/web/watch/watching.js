// @ts-check
/**
 * Watching one show (docs/protocol.md): `watch.join` in the wanted lobby (or any, if it is full or
 * gone), the show's and the lobby's events handed to the parts of the page they concern, coming back
 * by itself after a lost connection as the same member of the same lobby (`session`, kept for a
 * reload of the tab), moving to another node before this one lets go when it drains
 * (`node.draining`), and `watch.leave`.
 */
import { Connection, ProtocolError, openWithRetry, retryDelay, sleep } from '../protocol.js';
import { displayName } from './namestep.js';

/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */
/** @typedef {import('./showview.js').Codecs} Codecs */
/** @typedef {import('./showview.js').ShowView} ShowView */
/** @typedef {import('./foyerchat.js').FoyerChat} FoyerChat */
/** @typedef {import('./foyerchat.js').Member} Member */
/** @typedef {import('./foyerchat.js').Lobby} Lobby */
/** @typedef {import('./captions.js').Captions} Captions */
/** @typedef {import('./reactions.js').Reactions} Reactions */
/** @typedef {import('./lobbyvoice.js').LobbyVoiceControls} LobbyVoiceControls */
/** @typedef {import('./foyercameras.js').FoyerCameras} FoyerCameras */
/** @typedef {import('./showinfo.js').ShowInfo} ShowInfo */
/**
 * @typedef {{show: {id: string, title: string, state: string, starts_at?: string | null}, live: boolean, codecs: Codecs | null,
 *            lobby: Lobby, me: Member, session: string, members: Member[], chat: ServerEvent[],
 *            early: ServerEvent[]}} Joined
 */
/** @typedef {{name?: string, lobby?: string, session?: string}} Wanted */

const SEAT_KEY = 'lampio.seat';

/**
 * @typedef {object} Watching
 * @property {Connection | null} connection the current connection
 * @property {string} code the code of the show watched
 * @property {string} title the title of the show watched
 * @property {boolean} watching a show is open (not left)
 * @property {(code: string, wanted: Wanted) => Promise<{connection: Connection, joined: Joined,
 *   problem: string}>} open a connection and a seat (the connection is closed if it fails)
 * @property {(code: string, connection: Connection, joined: Joined) => void} begin watch from that seat
 * @property {() => boolean} leave stop watching (false if nothing was open)
 * @property {(code: string, friend: string) => {friend: string, session: string}} savedSeat
 *   the seat this tab had in the show before a reload, if it fits the friend's lobby asked for
 */

/**
 * @param {{view: ShowView, info: ShowInfo, foyer: FoyerChat, captions: Captions,
 *          reactions: Reactions, voice: LobbyVoiceControls, cameras: FoyerCameras}} parts the
 *   parts of the page the events concern
 * @returns {Watching}
 */
export function initWatching({ view, info, foyer, captions, reactions, voice, cameras }) {
  const watch = {
    code: '',
    title: '',
    /** @type {Connection | null} */ connection: null,
    /** @type {AbortController | null} aborts reconnecting when the viewer leaves */ leaving: null,
    /** A move to another node is under way. */ moving: false,
  };

  /**
   * `watch.join`, with every event already collected so none is missed before {@link follow}.
   * @param {Connection} connection
   * @param {string} code
   * @param {Wanted} [wanted]
   * @returns {Promise<Joined>}
   */
  async function join(connection, code, { name = '', lobby = '', session = '' } = {}) {
    /** @type {ServerEvent[]} */
    const early = [];
    const off = connection.on('*', (event) => early.push(event));
    try {
      /** @type {Record<string, string>} */
      const fields = { code };
      if (name) fields.name = name;
      if (lobby) fields.lobby = lobby;
      if (session) fields.session = session;
      const joined = await connection.request('watch.join', fields);
      return { ...joined, early };
    } finally {
      off();
    }
  }

  /**
   * {@link join}, in the wanted lobby if it has a seat, otherwise in any (`problem` says why not).
   * @param {Connection} connection
   * @param {string} code
   * @param {Wanted} wanted
   * @returns {Promise<{joined: Joined, problem: string}>}
   */
  async function joinSeat(connection, code, wanted) {
    try {
      return { joined: await join(connection, code, wanted), problem: '' };
    } catch (error) {
      const problem = error instanceof ProtocolError ? error.code : '';
      if (!wanted.lobby || (problem !== 'lobby_full' && problem !== 'lobby_not_found')) throw error;
      return { joined: await join(connection, code, { ...wanted, lobby: '' }), problem };
    }
  }

  /**
   * Make `connection` the current one and act on the show's and the lobby's events from now on.
   * @param {Connection} connection
   * @param {Joined} joined
   * @param {boolean} [moving] from another connection that still shows the picture
   * @returns {Promise<void>} media started, when moving
   */
  function follow(connection, joined, moving = false) {
    const showState = joined.live ? 'live' : joined.show.state;
    watch.connection = connection;
    info.update(joined.show);  // after coming back: the show as it is now
    watch.title = joined.show.title;
    connection.on('*', (event) => onEvent(connection, event));
    let started = Promise.resolve();
    if (moving && !joined.live) view.close();  // the old node's picture would never come back
    if (joined.live && moving) started = view.move(connection);
    else if (joined.live) onShowState(connection, 'live', joined.codecs);
    else onShowState(connection, joined.show.state === 'live' ? 'scheduled' : joined.show.state);
    foyer.enter(connection, joined);
    keepSeat();
    for (const event of joined.early) onEvent(connection, event);
    voice.start(connection, showState);
    cameras.start(connection);
    return started;
  }

  /**
   * @param {Connection} connection the connection the event came on (stale ones are ignored)
   * @param {ServerEvent} event
   */
  function onEvent(connection, event) {
    if (connection !== watch.connection) return;
    switch (event.type) {
      case 'show.state':
        onShowState(connection, event.cancelled ? 'cancelled' : event.state, event.codecs);
        break;
      case 'show.updated':
        if (event.public) info.update(event.public);
        if (event.public?.title) watch.title = event.public.title;
        break;
      case 'closed':
        onLost(connection, event.code);
        break;
      case 'node.draining':
        move(connection);
        break;
      case 'chat.message':
      case 'chat.deleted':
      case 'lobby.members':
      case 'member.removed':
        foyer.onEvent(event);
        break;
      case 'reactions':
        reactions.onReactions(event);
        break;
      case 'caption':
        captions.show(event.text ?? '');
        break;
    }
  }

  /**
   * @param {Connection} connection the connection the news came on (stale ones are ignored)
   * @param {string} state
   * @param {Codecs | null} [codecs]
   */
  function onShowState(connection, state, codecs) {
    if (connection !== watch.connection) return;
    if (state === 'live') {
      view.showLive(connection, codecs);
    } else if (state === 'ended' || state === 'cancelled') {
      view.close();
      captions.show('');
      view.setState(state);
    } else if (state === 'paused' || state === 'scheduled') {
      view.setState(state);  // a paused show keeps its peer connection: frames simply continue later
    }
  }

  /**
   * The socket closed under us: come back by ourselves, as the same member of the same lobby, and
   * carry on (unless the performer removed this viewer: 4003).
   * @param {Connection} connection
   * @param {number} [code] the WebSocket close code
   */
  async function onLost(connection, code) {
    if (connection !== watch.connection || !watch.leaving) return;
    const signal = watch.leaving.signal;
    watch.connection = null;
    view.close();
    if (foyer.removed || code === 4003 || code === 4009) {
      watch.leaving.abort();
      forgetSeat();
      view.setState(foyer.removed === 'ticket' || code === 4009 ? 'elsewhere' : 'removed');
      return;
    }
    if (view.state === 'ended' || view.state === 'cancelled') return;
    view.setState('lost');
    try {
      for (let attempt = 1; !signal.aborted; attempt++) {
        const next = await openWithRetry({ signal });
        try {
          const { joined } = await joinSeat(next, watch.code, {
            name: foyer.me?.name ?? displayName(),
            lobby: foyer.lobby?.code ?? '',
            session: foyer.session,
          });
          if (signal.aborted) {
            next.close();
            return;
          }
          follow(next, joined);
          return;
        } catch (error) {
          next.close();
          if (error instanceof ProtocolError && error.code === 'show_cancelled') {
            view.setState('cancelled');
            return;
          }
          if (error instanceof ProtocolError && error.code === 'show_not_found') {
            view.setState('ended');
            return;
          }
          await sleep(retryDelay(attempt, error)); // and as long as the server asks, if it does
        }
      }
    } catch { /* aborted: the viewer left */ }
  }

  /**
   * The node is shutting down (`node.draining`): take the same seat through a new connection to the
   * same address (the load balancer sends it to another node), start the picture there while this
   * one still shows it, and only then let go of the old connection. If the new one cannot be had
   * before the old one closes, coming back after a lost connection takes over.
   * @param {Connection} connection
   */
  async function move(connection) {
    if (connection !== watch.connection || !watch.leaving || watch.moving) return;
    const signal = watch.leaving.signal;
    watch.moving = true;
    try {
      for (let attempt = 1; attempt <= 3 && !connection.closed && !signal.aborted; attempt++) {
        /** @type {Connection | null} */
        let next = null;
        try {
          next = await Connection.open();
          const { joined } = await joinSeat(next, watch.code, {
            name: foyer.me?.name ?? displayName(),
            lobby: foyer.lobby?.code ?? '',
            session: foyer.session,
          });
          if (signal.aborted || connection !== watch.connection) {
            next.close();
            return;
          }
          await follow(next, joined, true);
          connection.close();
          return;
        } catch (error) {
          if (next && next === watch.connection) return;  // moved; its own troubles are its own
          next?.close();
          await sleep(retryDelay(attempt, error, 1));
        }
      }
    } finally {
      watch.moving = false;
    }
  }

  /** Remember this tab's seat, so a reload comes back to the same lobby as the same member. */
  function keepSeat() {
    if (!foyer.lobby) return;
    const seat = { code: watch.code, lobby: foyer.lobby.code, session: foyer.session };
    try {
      sessionStorage.setItem(SEAT_KEY, JSON.stringify(seat));
    } catch { /* private mode: a reload simply joins afresh */ }
  }

  function forgetSeat() {
    try {
      sessionStorage.removeItem(SEAT_KEY);
    } catch { /* nothing kept */ }
  }

  return {
    get connection() { return watch.connection; },
    get code() { return watch.code; },
    get title() { return watch.title; },
    get watching() { return watch.leaving !== null; },
    async open(code, wanted) {
      let connection = null;
      try {
        connection = await Connection.open();
        return { connection, ...(await joinSeat(connection, code, wanted)) };
      } catch (error) {
        connection?.close();
        throw error;
      }
    },
    begin(code, connection, joined) {
      watch.code = code;
      watch.leaving = new AbortController();
      info.show(joined.show);
      follow(connection, joined);
    },
    leave() {
      if (!watch.leaving) return false;
      watch.leaving.abort();
      watch.leaving = null;
      const connection = watch.connection;
      watch.connection = null;
      view.close();
      if (connection) {
        connection.request('watch.leave', {}, { timeout: 2 }).catch(() => {}).finally(
          () => connection.close(),
        );
      }
      forgetSeat();
      return true;
    },
    savedSeat(code, friend) {
      try {
        // a reload of this tab: back to the same lobby as the same member
        const seat = JSON.parse(sessionStorage.getItem(SEAT_KEY) ?? 'null');
        if (seat && seat.code === code && (!friend || friend === seat.lobby)) {
          return { friend: seat.lobby, session: seat.session };
        }
      } catch { /* nothing kept */ }
      return { friend, session: '' };
    },
  };
}
