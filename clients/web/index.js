// @ts-check
/**
 * The front door and the viewer (`/`): the programme ("Live now", "Coming up") and a big keypad for
 * the show's code, then a name for the others (optional, remembered), then the show itself: the
 * picture with captions, reactions, the lobby's chat and who is there, volume, the lobby microphone
 * during an intermission, and leave. One step at a time, one obvious action on each.
 * `/watch?code=NNNNNN` (the link organisers hand out) opens the show straight away;
 * `/watch?code=NNNNNN&lobby=ABCDE` (a friend's link) seats the viewer in the friend's lobby.
 *
 * Watching follows docs/protocol.md: `watch.join` → wait for `live` → `watch.start` (the server's
 * offer) → answer, gathered without trickle → `watch.answer`. A pause keeps the peer connection;
 * a lost connection comes back by itself, as the same member of the same lobby (`session`), with
 * the chat said meanwhile (`chat.history`) and the messages that had not gone out sent again (with
 * their own `client_id`, so none is posted twice).
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs`, the shown
 * `state` and the `lobby`; it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import {
  Connection, ProtocolError, iceGatheringComplete, openWithRetry, retryDelay, sleep,
} from './protocol.js';
import {
  ICONS, KINDS, RecentCounts, calm, clock, compareIds, emojiWorks, markEmoji, newClientId,
} from './foyer.js';

/** @typedef {'opening' | 'scheduled' | 'live' | 'paused' | 'ended' | 'lost' | 'removed'} WatchState */
/** @typedef {{video?: string, audio?: string}} Codecs */
/** @typedef {import('./protocol.js').ServerEvent} ServerEvent */
/** @typedef {{id: string, name: string, head_count: number, role: string}} Member */
/** @typedef {{id: string, show: string, code: string, capacity: number}} Lobby */
/**
 * @typedef {{show: {title: string, state: string}, live: boolean, codecs: Codecs | null,
 *            lobby: Lobby, me: Member, session: string, members: Member[], chat: ServerEvent[],
 *            early: ServerEvent[]}} Joined
 */
/**
 * A message of ours the server has not acknowledged yet (sent again after a lost connection).
 * @typedef {{clientId: string, text: string, li: HTMLLIElement, when: HTMLElement,
 *            note: HTMLElement, sending: Connection | null}} Unsent
 */
/**
 * What clients/web/voice.js's LobbyVoice tells (the lobby's voice during an intermission).
 * @typedef {{open: boolean, mic: boolean, talking: string[], stage: string | null,
 *            intermission: boolean, duck: boolean, joined?: boolean}} VoiceState
 * @typedef {{start(): Promise<void>, setMic(on: boolean): Promise<void>, close(): void,
 *            resume?(): void, readonly state: VoiceState}} Voice
 */

const NAME_KEY = 'lampio.name';
const SEAT_KEY = 'lampio.seat';
const VOLUME_KEY = 'lampio.volume';
const CAPTIONS_KEY = 'lampio.captions';
const CHAT_KEY = 'lampio.chat';
/** How much the show's sound is lowered while people in the lobby talk. */
const DUCKED = 0.3;

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const el = {
  front: byId('front'),
  form: /** @type {HTMLFormElement} */ (byId('code-form')),
  input: /** @type {HTMLInputElement} */ (byId('code')),
  erase: /** @type {HTMLButtonElement} */ (byId('key-erase')),
  digits: /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('[data-digit]')),
  friendInput: /** @type {HTMLInputElement} */ (byId('friend-code-input')),
  codeStatus: byId('code-status'),
  liveList: /** @type {HTMLUListElement} */ (byId('live-list')),
  liveEmpty: byId('live-empty'),
  comingList: /** @type {HTMLUListElement} */ (byId('coming-list')),
  comingEmpty: byId('coming-empty'),
  nameStep: byId('name-step'),
  nameTitle: byId('name-title'),
  nameForm: /** @type {HTMLFormElement} */ (byId('name-form')),
  name: /** @type {HTMLInputElement} */ (byId('name')),
  nameStatus: byId('name-status'),
  nameBack: /** @type {HTMLButtonElement} */ (byId('name-back')),
  watch: byId('watch'),
  title: byId('watch-title'),
  status: byId('watch-status'),
  video: /** @type {HTMLVideoElement} */ (byId('video')),
  sound: /** @type {HTMLButtonElement} */ (byId('sound-button')),
  caption: byId('caption'),
  voiceNote: byId('voice-note'),
  volumeDown: /** @type {HTMLButtonElement} */ (byId('volume-down')),
  volumeUp: /** @type {HTMLButtonElement} */ (byId('volume-up')),
  volumeValue: byId('volume-value'),
  mic: /** @type {HTMLButtonElement} */ (byId('mic-button')),
  captions: /** @type {HTMLButtonElement} */ (byId('captions-button')),
  chatToggle: /** @type {HTMLButtonElement} */ (byId('chat-button')),
  fullscreen: /** @type {HTMLButtonElement} */ (byId('fullscreen-button')),
  back: /** @type {HTMLButtonElement} */ (byId('back-button')),
  foyer: byId('foyer'),
  foyerNote: byId('foyer-note'),
  members: byId('members'),
  friendCode: byId('friend-code'),
  friendLink: /** @type {HTMLAnchorElement} */ (byId('friend-link')),
  copy: /** @type {HTMLButtonElement} */ (byId('copy-link')),
  copyStatus: byId('copy-status'),
  chat: /** @type {HTMLOListElement} */ (byId('chat')),
  chatEmpty: byId('chat-empty'),
  chatForm: /** @type {HTMLFormElement} */ (byId('chat-form')),
  chatInput: /** @type {HTMLInputElement} */ (byId('chat-input')),
  chatStatus: byId('chat-status'),
  reactions: byId('reactions'),
  reactButtons: /** @type {NodeListOf<HTMLButtonElement>} */ (
    document.querySelectorAll('button.react')
  ),
  reactFloat: byId('react-float'),
  reactLobby: byId('react-lobby'),
  reactAll: byId('react-all'),
  reactStatus: byId('react-status'),
};

/** @param {'front' | 'name' | 'watch'} step the one part of the page shown now */
function showStep(step) {
  el.front.hidden = step !== 'front';
  el.nameStep.hidden = step !== 'name';
  el.watch.hidden = step !== 'watch';
  document.body.dataset.step = step;
}

// -- the programme -------------------------------------------------------------------------------

/** @typedef {{title: string, description?: string, state: string, starts_at: string | null,
 *             code: string}} ProgrammeShow */

/** @type {ProgrammeShow[]} */
let shows = [];

/**
 * One show as a large card: its title, when, and one big button.
 * @param {ProgrammeShow} show
 */
function showCard(show) {
  const li = document.createElement('li');
  li.className = `show-card state-${show.state}`;
  const title = document.createElement('h3');
  title.textContent = show.title;  // always text, never HTML
  const state = document.createElement('p');
  state.className = 'badge';
  state.textContent = t('state_' + show.state);
  li.append(title, state);
  if (show.starts_at) {
    const when = document.createElement('p');
    when.className = 'when';
    when.textContent = new Date(show.starts_at).toLocaleString(document.documentElement.lang, {
      weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit',
    });
    li.append(when);
  }
  if (show.description) {
    const about = document.createElement('p');
    about.className = 'about';
    about.textContent = show.description;
    li.append(about);
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'primary big';
  button.textContent = t('programme_watch');
  button.setAttribute('aria-label', `${t('programme_watch')}: ${show.title}`);
  button.addEventListener('click', () => askName(show.code, show.title));
  li.append(button);
  return li;
}

function renderProgramme() {
  const live = shows.filter((show) => show.state === 'live' || show.state === 'paused');
  const coming = shows.filter((show) => show.state === 'scheduled');
  el.liveList.replaceChildren(...live.map(showCard));
  el.comingList.replaceChildren(...coming.map(showCard));
  el.liveEmpty.hidden = live.length > 0;
  el.comingEmpty.hidden = coming.length > 0;
}

async function loadProgramme() {
  try {
    const response = await fetch('/api/shows');
    if (response.ok) shows = (await response.json()).shows;
  } catch { /* the programme stays as it was; the code entry still works */ }
  renderProgramme();
}

// -- the code: typed or tapped on the keypad ------------------------------------------------------

/** @param {string} text */
function codeProblem(text) {
  el.codeStatus.textContent = text;
  el.input.setAttribute('aria-invalid', 'true');
  el.input.focus();
}

/** The digits typed so far (at most six). */
function codeDigits() {
  return el.input.value.replace(/\D/g, '').slice(0, 6);
}

/** Show the digits as the posters print them: `123 456`. @param {string} digits */
function showDigits(digits) {
  el.input.value = digits.length > 3 ? `${digits.slice(0, 3)} ${digits.slice(3)}` : digits;
  el.input.removeAttribute('aria-invalid');
  if (el.codeStatus.textContent && digits.length < 6) el.codeStatus.textContent = '';
}

el.input.addEventListener('input', () => showDigits(codeDigits()));
for (const key of el.digits) {
  key.addEventListener('click', () => showDigits((codeDigits() + key.dataset.digit).slice(0, 6)));
}
el.erase.addEventListener('click', () => showDigits(codeDigits().slice(0, -1)));

/** A friend's lobby code as typed (spaces and case forgiven), or ''. */
function friendCodeTyped() {
  return el.friendInput.value.replace(/\s/g, '').toUpperCase();
}

el.form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const digits = codeDigits();
  if (digits.length !== 6) {
    codeProblem(t('code_short'));
    return;
  }
  el.codeStatus.textContent = t('code_checking');
  try {
    const response = await fetch(`/api/shows/by-code/${digits}`);
    if (response.status === 404) codeProblem(t('code_wrong'));
    else if (response.status === 429) codeProblem(t('code_wait'));
    else if (!response.ok) el.codeStatus.textContent = t('error');
    else askName(digits, (await response.json()).title);
  } catch {
    el.codeStatus.textContent = t('error');
  }
});

// -- the name the others see ----------------------------------------------------------------------

/** The show chosen on the front page, waiting for the viewer's name. */
const chosen = { code: '', title: '' };

/**
 * The second step: the show is found; a name for the others (optional, remembered).
 * @param {string} code
 * @param {string} title
 */
function askName(code, title) {
  chosen.code = code;
  chosen.title = title;
  el.codeStatus.textContent = '';
  el.nameStatus.textContent = '';
  el.nameTitle.textContent = t('name_title', { title });
  el.name.value = localStorage.getItem(NAME_KEY) ?? '';
  showStep('name');
  el.name.focus();
}

/** The name the viewer chose to show others ('' is fine: nobody has to give one). */
function displayName() {
  return (localStorage.getItem(NAME_KEY) ?? '').split(/\s+/).filter(Boolean).join(' ').slice(0, 40);
}

el.nameForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = el.name.value.split(/\s+/).filter(Boolean).join(' ').slice(0, 40);
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch { /* private mode: the name is simply not remembered */ }
  openShow(chosen.code, true, friendCodeTyped());
});

el.nameBack.addEventListener('click', () => {
  showStep('front');
  el.input.focus();
});

// -- watching ------------------------------------------------------------------------------------

const watch = {
  code: '',
  /** @type {WatchState} */ state: 'opening',
  /** @type {Connection | null} */ connection: null,
  /** @type {RTCPeerConnection | null} */ pc: null,
  /** @type {Codecs | null} the codecs of the current peer connection */ codecs: null,
  /** A video frame has been shown on the current peer connection. */ picture: false,
  /** @type {Promise<void> | null} */ starting: null,
  /** Start media again once the current start is done (codecs changed meanwhile). */ again: false,
  /** @type {AbortController | null} aborts reconnecting when the viewer leaves */ leaving: null,
};

/** The lobby the viewer sits in, who is there, and what was said. */
const foyer = {
  /** @type {Lobby | null} */ lobby: null,
  /** @type {Member | null} */ me: null,
  session: '',
  /** @type {Member[]} */ members: [],
  /** @type {Map<string, HTMLLIElement>} shown messages by id */ messages: new Map(),
  /** @type {Set<string>} */ deleted: new Set(),
  /** @type {Map<string, Unsent>} by client id */ unsent: new Map(),
  /** The newest chat id this page has seen: where `chat.history` resumes. */ lastSeen: '',
  /** The performer removed this viewer: do not come back by ourselves. */ removed: false,
};

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Codecs | null, readonly state: WatchState,
 *          readonly lobby: Lobby | null}} */
const exposed = {
  get pc() { return watch.pc; },
  get connection() { return watch.connection; },
  get codecs() { return watch.codecs; },
  get state() { return watch.state; },
  get lobby() { return foyer.lobby; },
};
Object.defineProperty(window, 'lampio', { value: exposed });

function renderWatch() {
  const { state } = watch;
  const key = state === 'live' && !watch.picture ? 'watch_waiting_picture' : `watch_${state}`;
  el.status.textContent = t(key);
  el.status.dataset.state = state;
  el.watch.dataset.state = state;
}

/** @param {WatchState} state */
function setState(state) {
  watch.state = state;
  renderWatch();
}

/**
 * Join the show with this code and start watching (from the form, the programme or a link).
 * @param {string} code six digits
 * @param {boolean} byHand the viewer asked for it on the page (not a link opening)
 * @param {string} [friend] a friend's lobby code
 * @param {string} [session] from an earlier visit of this tab (a reload): the same member again
 */
async function openShow(code, byHand, friend = '', session = '') {
  const status = el.nameStep.hidden ? el.codeStatus : el.nameStatus;
  status.textContent = t('watch_opening');
  let connection = null;
  let seat;
  try {
    connection = await Connection.open();
    seat = await joinSeat(connection, code, { name: displayName(), lobby: friend, session });
  } catch (error) {
    connection?.close();
    status.textContent = '';
    showStep('front');
    const problem = /** @type {{code?: string}} */ (error).code;
    if (problem === 'show_not_found' || problem === 'invalid_input') codeProblem(t('code_wrong'));
    else if (problem === 'rate_limited') codeProblem(t('code_wait'));
    else el.codeStatus.textContent = t('error');
    return;
  }
  const { joined, problem } = seat;
  el.input.removeAttribute('aria-invalid');
  el.codeStatus.textContent = '';
  el.nameStatus.textContent = '';
  watch.code = code;
  watch.leaving = new AbortController();
  resetFoyer();
  if (byHand) history.pushState({ watch: code }, '', `/watch?code=${code}`);
  el.title.textContent = joined.show.title;  // always text, never HTML
  document.title = `${joined.show.title} – Lämpiö Live`;
  showStep('watch');
  el.title.focus();
  follow(connection, joined);
  // a friend's lobby that is full or gone: the viewer watches anyway, in another lobby (after a
  // reload, our own lobby may have closed meanwhile: nothing to tell then)
  if (session) return;
  if (problem === 'lobby_full') el.foyerNote.textContent = t('friend_full');
  else if (problem === 'lobby_not_found') el.foyerNote.textContent = t('friend_missing');
}

/**
 * `watch.join`, with every event already collected so none is missed before {@link follow}.
 * @param {Connection} connection
 * @param {string} code
 * @param {{name?: string, lobby?: string, session?: string}} [wanted]
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
 * @param {{name?: string, lobby?: string, session?: string}} wanted
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
 */
function follow(connection, joined) {
  const showState = joined.live ? 'live' : joined.show.state;
  watch.connection = connection;
  connection.on('*', (event) => onEvent(connection, event));
  if (joined.live) onShowState(connection, 'live', joined.codecs);
  else onShowState(connection, joined.show.state === 'live' ? 'scheduled' : joined.show.state);
  enterFoyer(connection, joined);
  for (const event of joined.early) onEvent(connection, event);
  startVoice(connection, showState);
}

/**
 * @param {Connection} connection the connection the event came on (stale ones are ignored)
 * @param {ServerEvent} event
 */
function onEvent(connection, event) {
  if (connection !== watch.connection) return;
  switch (event.type) {
    case 'show.state':
      onShowState(connection, event.state, event.codecs);
      break;
    case 'closed':
      onLost(connection, event.code);
      break;
    case 'chat.message':
    case 'chat.deleted':
      onChat(event);
      break;
    case 'lobby.members':
      if (event.lobby === foyer.lobby?.id) {
        foyer.members = event.members ?? [];
        renderMembers();
      }
      break;
    case 'member.removed':
      if (event.member === foyer.me?.id) foyer.removed = true;
      break;
    case 'reactions':
      onReactions(event);
      break;
    case 'caption':
      showCaption(event.text ?? '');
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
    const changed = !watch.codecs || !codecs
      || codecs.video !== watch.codecs.video || codecs.audio !== watch.codecs.audio;
    if (!watch.pc || changed) startMedia(connection);
    else setState('live');
  } else if (state === 'ended') {
    closeMedia();
    showCaption('');
    setState('ended');
  } else if (state === 'paused' || state === 'scheduled') {
    setState(state);  // a paused show keeps its peer connection: frames simply continue later
  }
}

/**
 * Ask for the server's offer, answer it and let media flow (again, if codecs changed).
 * @param {Connection} connection
 */
function startMedia(connection) {
  if (watch.starting) {
    watch.again = true;
    return;
  }
  watch.starting = (async () => {
    try {
      do {
        watch.again = false;
        await negotiate(connection);
      } while (watch.again && connection === watch.connection);
    } catch (error) {
      if (connection !== watch.connection) return;
      if (error instanceof ProtocolError && error.code === 'not_live') {
        setState('paused');  // the performer left meanwhile; `live` will come as an event
      } else if (!(error instanceof ProtocolError && error.code === 'closed')) {
        console.error('watching failed', error);
        closeMedia();
        setState('lost');
        connection.close();  // onLost reconnects and starts over
      }
    } finally {
      watch.starting = null;
    }
  })();
}

/** @param {Connection} connection */
async function negotiate(connection) {
  const offer = await connection.request('watch.start');
  if (connection !== watch.connection) return;
  closeMedia();
  const pc = new RTCPeerConnection({ iceServers: connection.iceServers });
  watch.pc = pc;
  watch.codecs = offer.codecs;
  watch.picture = false;
  setState('live');
  pc.addEventListener('connectionstatechange', () => {
    if (pc === watch.pc && pc.connectionState === 'failed') {
      closeMedia();
      setState('lost');
      connection.close();
    }
  });
  await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
  el.video.srcObject = new MediaStream(pc.getReceivers().map((receiver) => receiver.track));
  play();
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGatheringComplete(pc);
  if (pc !== watch.pc) return;
  await connection.request('watch.answer', { sdp: pc.localDescription?.sdp ?? '' });
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
  talk.voice?.resume?.();
  el.video.muted = false;
  el.video.play().then(() => {
    el.sound.hidden = true;
  }, () => {
    el.video.muted = true;
  });
});

el.video.addEventListener('resize', () => {
  if (el.video.videoWidth > 0 && !watch.picture) {
    watch.picture = true;
    renderWatch();
  }
});

function closeMedia() {
  const pc = watch.pc;
  watch.pc = null;
  watch.codecs = null;
  watch.picture = false;
  pc?.close();
  el.video.srcObject = null;
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
  closeMedia();
  if (foyer.removed || code === 4003) {
    watch.leaving.abort();
    forgetSeat();
    setState('removed');
    return;
  }
  if (watch.state !== 'ended') setState('lost');
  else return;
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
        if (error instanceof ProtocolError && error.code === 'show_not_found') {
          setState('ended');
          return;
        }
        await sleep(retryDelay(attempt, error)); // and as long as the server asks, if it does
      }
    }
  } catch { /* aborted: the viewer left */ }
}

/** Stop watching and go back to the programme. */
function leave() {
  if (!watch.leaving) return;
  watch.leaving.abort();
  watch.leaving = null;
  const connection = watch.connection;
  watch.connection = null;
  closeMedia();
  if (connection) {
    connection.request('watch.leave', {}, { timeout: 2 }).catch(() => {}).finally(
      () => connection.close(),
    );
  }
  forgetSeat();
  resetFoyer();
  stopVoice();
  showCaption('');
  el.sound.hidden = true;
  showStep('front');
  document.title = 'Lämpiö Live';
  showDigits('');
  el.input.focus();
  loadProgramme();
}

el.back.addEventListener('click', () => {
  leave();
  if (location.pathname !== '/') history.replaceState(null, '', '/');
});
window.addEventListener('popstate', () => {
  const code = history.state?.watch;
  if (!code) leave();
  else if (!watch.leaving) openShow(code, false);
});

// -- the foyer: who is here, the friend's link, the chat -----------------------------------------

/** Forget the last show's lobby, chat and unsent messages. */
function resetFoyer() {
  foyer.lobby = null;
  foyer.me = null;
  foyer.session = '';
  foyer.members = [];
  foyer.unsent.clear();
  foyer.removed = false;
  clearChat();
  el.foyerNote.textContent = '';
  el.chatStatus.textContent = '';
  el.copyStatus.textContent = '';
  recent.lobby = new RecentCounts();
  recent.all = new RecentCounts();
  el.reactFloat.replaceChildren();
  renderReactions();
}

function clearChat() {
  foyer.messages.clear();
  foyer.deleted.clear();
  foyer.lastSeen = '';
  el.chat.replaceChildren(...Array.from(foyer.unsent.values(), (unsent) => unsent.li));
  renderChatEmpty();
}

/**
 * Take a seat from `watch.join`: a first join shows the lobby's chat; coming back to the same
 * lobby adds what was said meanwhile. Either way, what had not gone out is sent (again).
 * @param {Connection} connection
 * @param {Joined} joined
 */
function enterFoyer(connection, joined) {
  const sameLobby = foyer.lobby !== null && foyer.lobby.id === joined.lobby.id;
  foyer.lobby = joined.lobby;
  foyer.me = joined.me;
  foyer.session = joined.session;
  foyer.members = joined.members ?? [];
  keepSeat();
  renderMembers();
  renderFriend();
  if (sameLobby) {
    const after = foyer.lastSeen ? { after: foyer.lastSeen } : {};
    connection.request('chat.history', after).then((reply) => {
      if (connection !== watch.connection) return;
      for (const event of reply.messages ?? []) onChat(event);
    }, (error) => console.warn('no chat history', error));
  } else {
    clearChat();
    for (const event of joined.chat ?? []) onChat(event);
  }
  for (const unsent of foyer.unsent.values()) send(unsent);
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

function renderMembers() {
  if (!foyer.lobby) {
    el.members.textContent = '';
    return;
  }
  const names = [];
  let unnamed = 0;
  const me = foyer.members.filter((member) => member.id === foyer.me?.id);
  const others = foyer.members.filter((member) => member.id !== foyer.me?.id);
  for (const member of me) {
    names.push(member.name ? `${member.name} (${t('members_you')})` : t('members_you'));
  }
  for (const member of others) {
    if (!member.name) {
      unnamed += 1;
      continue;
    }
    const heads = member.head_count > 1 ? ` (${t('members_heads', { count: String(member.head_count) })})` : '';
    names.push(member.name + heads);
  }
  if (unnamed === 1) names.push(t('members_unnamed_one'));
  else if (unnamed > 1) names.push(t('members_unnamed', { count: String(unnamed) }));
  el.members.textContent = t('members_now', { names: names.join(', ') });
}

/** The link that seats a friend in this lobby. */
function friendUrl() {
  const url = new URL('/watch', location.href);
  url.searchParams.set('code', watch.code);
  url.searchParams.set('lobby', foyer.lobby?.code ?? '');
  return url.href;
}

function renderFriend() {
  if (!foyer.lobby) return;
  el.friendCode.textContent = foyer.lobby.code;
  el.friendLink.href = friendUrl();
  el.friendLink.textContent = friendUrl();
}

el.copy.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(friendUrl());
    el.copyStatus.textContent = t('friend_copied');
  } catch {
    el.copyStatus.textContent = t('friend_copy_failed');
  }
});

/** @param {string | undefined} id a chat id this page has now seen */
function seen(id) {
  if (id && compareIds(id, foyer.lastSeen) > 0) foyer.lastSeen = id;
}

/**
 * A chat event of our lobby: a message, or one taken away by the performer.
 * @param {ServerEvent} event
 */
function onChat(event) {
  if (!foyer.lobby || event.lobby !== foyer.lobby.id) return;
  if (event.type === 'chat.deleted') {
    seen(event.at_id);
    foyer.deleted.add(event.id);
    foyer.messages.get(event.id)?.remove();
    foyer.messages.delete(event.id);
    renderChatEmpty();
    return;
  }
  seen(event.id);
  if (foyer.messages.has(event.id) || foyer.deleted.has(event.id)) return;
  const unsent = foyer.unsent.get(event.client_id);
  if (unsent && event.member === foyer.me?.id) {
    delivered(unsent, event.id, event.at);
    return;
  }
  const mine = event.member === foyer.me?.id;
  const { li } = messageItem(event.name, event.text, event.at, mine);
  place(li, event.id);
  foyer.messages.set(event.id, li);
  renderChatEmpty();
}

/**
 * One message as the list shows it: who, when, and the text (always text, never HTML).
 * @param {string} name
 * @param {string} text
 * @param {number | undefined} at
 * @param {boolean} mine
 */
function messageItem(name, text, at, mine) {
  const li = document.createElement('li');
  li.className = mine ? 'msg mine' : 'msg';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.className = 'who';
  who.textContent = mine ? t('chat_you') : name || t('chat_someone');
  const when = document.createElement('span');
  when.className = 'when';
  when.textContent = clock(at);
  meta.append(who, ' ', when);
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  li.append(meta, body);
  return { li, meta, when };
}

/**
 * Put a message in its place: the list runs oldest to newest, our unsent ones last.
 * @param {HTMLLIElement} li
 * @param {string} id
 */
function place(li, id) {
  const following = nearEnd();
  li.dataset.id = id;
  let before = null;
  for (let other = el.chat.lastElementChild; other; other = other.previousElementSibling) {
    const otherId = /** @type {HTMLElement} */ (other).dataset.id;
    if (!otherId || compareIds(otherId, id) > 0) before = other;
    else break;
  }
  el.chat.insertBefore(li, before);
  if (following) el.chat.scrollTop = el.chat.scrollHeight;
}

/** Whether the chat is scrolled to its end (new messages then keep it there). */
function nearEnd() {
  return el.chat.scrollHeight - el.chat.scrollTop - el.chat.clientHeight < 80;
}

function renderChatEmpty() {
  el.chatEmpty.hidden = el.chat.childElementCount > 0;
}

el.chatForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = el.chatInput.value.trim();
  if (!text || !foyer.lobby) return;
  if (text.length > 500) {
    el.chatStatus.textContent = t('chat_too_long');
    return;
  }
  el.chatInput.value = '';
  el.chatStatus.textContent = '';
  const { li, meta, when } = messageItem(foyer.me?.name ?? '', text, undefined, true);
  li.classList.add('pending');
  const note = document.createElement('span');
  note.className = 'sending';
  note.textContent = t('chat_sending');
  meta.append(' ', note);
  el.chat.append(li);
  el.chat.scrollTop = el.chat.scrollHeight;
  renderChatEmpty();
  /** @type {Unsent} */
  const unsent = { clientId: newClientId(), text, li, when, note, sending: null };
  foyer.unsent.set(unsent.clientId, unsent);
  send(unsent);
});

/**
 * Send a message (again); it stays unsent, and is sent again, until the server has stored it.
 * @param {Unsent} unsent
 */
async function send(unsent) {
  const connection = watch.connection;
  if (!connection || unsent.sending === connection) return;
  unsent.sending = connection;
  try {
    const ack = await connection.request('chat.send', {
      text: unsent.text,
      client_id: unsent.clientId,
    });
    delivered(unsent, ack.id);
  } catch (error) {
    const code = error instanceof ProtocolError ? error.code : 'error';
    if (code === 'closed') return;  // sent again once the page is back (enterFoyer)
    if (code === 'timeout' || code === 'bus_unavailable' || code === 'internal_error') {
      setTimeout(() => {
        unsent.sending = null;
        if (foyer.unsent.get(unsent.clientId) === unsent) send(unsent);
      }, 2000);
      return;
    }
    refused(unsent, code);
  }
}

/**
 * The server stored our message: it becomes an ordinary one, in its place.
 * @param {Unsent} unsent
 * @param {string} id
 * @param {number} [at]
 */
function delivered(unsent, id, at) {
  if (foyer.unsent.get(unsent.clientId) !== unsent) return;
  foyer.unsent.delete(unsent.clientId);
  unsent.note.remove();
  unsent.li.classList.remove('pending');
  unsent.li.remove();
  if (foyer.messages.has(id) || foyer.deleted.has(id)) {
    renderChatEmpty();
    return;
  }
  if (at) unsent.when.textContent = clock(at);
  place(unsent.li, id);
  foyer.messages.set(id, unsent.li);
}

/**
 * The server refused the message: say why in words and give the text back to edit.
 * @param {Unsent} unsent
 * @param {string} code
 */
function refused(unsent, code) {
  foyer.unsent.delete(unsent.clientId);
  unsent.li.remove();
  renderChatEmpty();
  if (!el.chatInput.value) el.chatInput.value = unsent.text;
  const known = ['chat_too_long', 'rate_limited', 'chat_muted'];
  el.chatStatus.textContent = known.includes(code) ? t(`chat_${code.replace(/^chat_/, '')}`) : t('error');
}

// -- reactions ---------------------------------------------------------------------------------------

const recent = { lobby: new RecentCounts(), all: new RecentCounts() };
/** @type {number | undefined} */
let reactTimer;
/** @type {number | undefined} */
let reactNoteTimer;

for (const button of el.reactButtons) {
  button.addEventListener('click', async () => {
    const connection = watch.connection;
    if (!connection || !foyer.lobby) return;
    try {
      await connection.request('react', { kind: button.dataset.kind });
    } catch (error) {
      const code = error instanceof ProtocolError ? error.code : '';
      if (code === 'rate_limited') {
        el.reactStatus.textContent = t('react_wait');
        clearTimeout(reactNoteTimer);
        reactNoteTimer = setTimeout(() => { el.reactStatus.textContent = ''; }, 5000);
      }
    }
  });
}

/**
 * Everyone's reactions of the last 100 ms on one node: our lobby's own and the whole audience's.
 * @param {ServerEvent} event
 */
function onReactions(event) {
  const ours = foyer.lobby ? event.lobbies?.[foyer.lobby.id] : undefined;
  recent.lobby.add(ours);
  recent.all.add(event.counts);
  if (!calm() && emojiWorks()) rise(ours ?? {}, event.counts ?? {});
  renderReactions();
  if (reactTimer === undefined) {
    reactTimer = setInterval(() => {
      renderReactions();
      if (!recent.lobby.busy && !recent.all.busy) {
        clearInterval(reactTimer);
        reactTimer = undefined;
      }
    }, 500);
  }
}

/**
 * Pictures that float gently up: our lobby's large, the rest of the audience's small and faint.
 * @param {Record<string, number>} ours
 * @param {Record<string, number>} all
 */
function rise(ours, all) {
  for (const kind of KINDS) {
    const near = Math.min(ours[kind] ?? 0, 3);
    const far = Math.min(Math.max((all[kind] ?? 0) - (ours[kind] ?? 0), 0), 2);
    for (let n = 0; n < near + far; n++) {
      if (el.reactFloat.childElementCount >= 24) return;
      const bubble = document.createElement('span');
      bubble.className = n < near ? 'bubble' : 'bubble far';
      bubble.textContent = ICONS[kind];
      bubble.style.left = `${5 + Math.random() * 85}%`;
      bubble.style.animationDelay = `${Math.random() * 0.4}s`;
      bubble.addEventListener('animationend', () => bubble.remove());
      setTimeout(() => bubble.remove(), 5000);  // in case the animation never ran
      el.reactFloat.append(bubble);
    }
  }
}

/**
 * The counts of the last seconds as words and pictures ("👏 Taputuksia 3").
 * @param {HTMLElement} target
 * @param {Record<string, number>} totals
 */
function renderCounts(target, totals) {
  const parts = [];
  for (const kind of KINDS) {
    if (!totals[kind]) continue;
    const part = document.createElement('span');
    part.className = 'count';
    const word = document.createElement('span');
    word.textContent = t(`meter_${kind}`);
    if (emojiWorks()) {
      const icon = document.createElement('span');
      icon.setAttribute('aria-hidden', 'true');
      icon.textContent = ICONS[kind];
      word.className = 'sr-only';
      part.append(icon, ' ');
    }
    part.append(word, ` ${totals[kind]}`);
    parts.push(part);
  }
  if (parts.length === 0) target.textContent = t('react_quiet');
  else target.replaceChildren(...parts);
}

function renderReactions() {
  renderCounts(el.reactLobby, recent.lobby.totals());
  renderCounts(el.reactAll, recent.all.totals());
}

// -- the viewer's own settings: volume, captions, the chat shown or not ------------------------------

const settings = {
  volume: readNumber(VOLUME_KEY, 0.8),
  captions: localStorage.getItem(CAPTIONS_KEY) !== 'off',
  chat: localStorage.getItem(CHAT_KEY) !== 'off',
  /** The newest caption line ('' = none). */ caption: '',
};

/**
 * A number the viewer chose earlier, or the default.
 * @param {string} key
 * @param {number} fallback
 */
function readNumber(key, fallback) {
  const value = Number(localStorage.getItem(key));
  return localStorage.getItem(key) !== null && Number.isFinite(value) ? value : fallback;
}

/**
 * Remember a setting on this device (private mode: for this visit only).
 * @param {string} key
 * @param {string} value
 */
function keep(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch { /* not remembered */ }
}

function renderVolume() {
  const ducked = voiceState().duck;
  el.video.volume = Math.max(0, Math.min(1, settings.volume * (ducked ? DUCKED : 1)));
  el.volumeValue.textContent = t(ducked ? 'volume_value_ducked' : 'volume_value', {
    percent: String(Math.round(settings.volume * 100)),
  });
  el.volumeDown.disabled = settings.volume <= 0;
  el.volumeUp.disabled = settings.volume >= 1;
}

/** @param {number} step */
function changeVolume(step) {
  settings.volume = Math.round(Math.max(0, Math.min(1, settings.volume + step)) * 10) / 10;
  keep(VOLUME_KEY, String(settings.volume));
  renderVolume();
}

el.volumeDown.addEventListener('click', () => changeVolume(-0.2));
el.volumeUp.addEventListener('click', () => changeVolume(0.2));

/** @param {string} text the caption line now ('' clears it) */
function showCaption(text) {
  settings.caption = text;
  renderCaption();
}

function renderCaption() {
  el.caption.textContent = settings.caption;
  el.caption.hidden = !settings.captions || !settings.caption;
  el.captions.setAttribute('aria-pressed', String(settings.captions));
}

el.captions.addEventListener('click', () => {
  settings.captions = !settings.captions;
  keep(CAPTIONS_KEY, settings.captions ? 'on' : 'off');
  renderCaption();
});

function renderChatShown() {
  el.foyer.hidden = !settings.chat;
  el.chatToggle.setAttribute('aria-pressed', String(settings.chat));
  el.watch.classList.toggle('no-chat', !settings.chat);
}

el.chatToggle.addEventListener('click', () => {
  settings.chat = !settings.chat;
  keep(CHAT_KEY, settings.chat ? 'on' : 'off');
  renderChatShown();
});

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

// -- the lobby's voice: talk together during an intermission (clients/web/voice.js) ---------------

/** @type {{voice: Voice | null, connection: Connection | null}} */
const talk = { voice: null, connection: null };

/** @returns {VoiceState} */
function voiceState() {
  return talk.voice?.state ?? {
    open: false, mic: false, talking: [], stage: null, intermission: false, duck: false,
  };
}

/**
 * Follow the lobby's voice on this connection. voice.js is loaded only when needed, and a page
 * without it (or a browser without a microphone) simply watches: the voice is an extra.
 * @param {Connection} connection
 * @param {string} showState the show's state when joined
 */
async function startVoice(connection, showState) {
  stopVoice();
  talk.connection = connection;
  /** @type {Voice | null} */
  let voice = null;
  try {
    const { LobbyVoice } = await import('./voice.js');
    if (talk.connection !== connection) return;
    voice = talk.voice = new LobbyVoice(connection, {
      onChange: renderVoice, lobby: foyer.lobby?.id ?? null, member: foyer.me?.id ?? null,
      showState,
    });
    await voice.start();
  } catch (error) {
    console.warn('no lobby voice', error);
    voice?.close();
    if (talk.voice === voice) talk.voice = null;
  }
  renderVoice();
}

function stopVoice() {
  talk.voice?.close();
  talk.voice = null;
  talk.connection = null;
  renderVoice();
}

function renderVoice() {
  const state = voiceState();
  el.mic.hidden = !state.open || state.joined === false;
  el.mic.setAttribute('aria-pressed', String(state.mic));
  const notes = [];
  if (state.stage && state.stage === foyer.lobby?.id) notes.push(t('voice_stage'));
  else if (state.intermission) notes.push(t('voice_intermission'));
  if (!el.mic.hidden) notes.push(t(state.mic ? 'voice_mic_on' : 'voice_mic_off'));
  const talking = state.talking.map(
    (id) => foyer.members.find((member) => member.id === id)?.name || t('chat_someone'),
  );
  if (talking.length) notes.push(t('voice_talking', { names: talking.join(', ') }));
  el.voiceNote.textContent = notes.join(' ');
  renderVolume();
}

el.mic.addEventListener('click', async () => {
  const voice = talk.voice;
  if (!voice) return;
  try {
    await voice.setMic(!voice.state.mic);
  } catch (error) {
    console.warn('microphone', error);
    el.voiceNote.textContent = t('voice_failed');
    return;
  }
  renderVoice();
});

// -- start ---------------------------------------------------------------------------------------

setupLangButtons(() => {
  renderProgramme();
  renderWatch();
  renderMembers();
  renderReactions();
  renderVoice();
  if (!el.nameStep.hidden) el.nameTitle.textContent = t('name_title', { title: chosen.title });
});
applyLang();
markEmoji();
renderReactions();
renderCaption();
renderChatShown();
renderVoice();
loadProgramme();
const params = new URLSearchParams(location.search);
const preset = params.get('code');
if (preset) {
  showDigits(preset.replace(/\D/g, '').slice(0, 6));
  const digits = preset.replace(/[\s.-]/g, '');
  if (/^\d{6}$/.test(digits)) {
    let friend = (params.get('lobby') ?? '').replace(/\s/g, '').toUpperCase();
    let session = '';
    try {
      // a reload of this tab: back to the same lobby as the same member
      const seat = JSON.parse(sessionStorage.getItem(SEAT_KEY) ?? 'null');
      if (seat && seat.code === digits && (!friend || friend === seat.lobby)) {
        friend = seat.lobby;
        session = seat.session;
      }
    } catch { /* nothing kept */ }
    openShow(digits, false, friend, session);
  }
}
