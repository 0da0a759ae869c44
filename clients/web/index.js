// @ts-check
/**
 * The front door and the viewer (`/`): the programme ("Live now", then today, this week and later,
 * with large buttons that choose a town and a kind of show) and a big keypad for
 * the show's code, then a name for the others (optional, remembered), then the show itself: the
 * picture with captions, reactions, the lobby's chat and who is there, volume, the lobby microphone
 * during an intermission, the lobby's cameras (before the show and in an intermission), and leave. One step at a time, one obvious action on each.
 * `/watch?code=NNNNNN` (the link organisers hand out) opens the show straight away;
 * `/watch?code=NNNNNN&lobby=ABCDE` (a friend's link) seats the viewer in the friend's lobby.
 *
 * This module wires the page's parts (in `watch/`): the programme, the keypad, the name step, the
 * show's title and time (kept up to date when its organiser edits it), the show view (picture,
 * sound, volume, full screen), captions, reactions, the foyer and its chat, the
 * lobby's voice and cameras, and watching itself (joining, the show's events, coming back after a lost
 * connection; docs/protocol.md).
 *
 * For tests and debugging, `window.lampio` exposes read-only getters for the current
 * RTCPeerConnection (`pc`), protocol connection (`connection`), negotiated `codecs`, the shown
 * `state`, the `lobby` and its `cameras` (../cameras.js's LobbyCameras); it gives a page script nothing it could not already reach.
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { byId } from './dom.js';
import { markEmoji } from './foyer.js';
import { initCaptions } from './watch/captions.js';
import { initFeedback } from './watch/feedback.js';
import { initFoyerCameras } from './watch/foyercameras.js';
import { initFoyerChat } from './watch/foyerchat.js';
import { initKeypad } from './watch/keypad.js';
import { initLobbyVoice } from './watch/lobbyvoice.js';
import { displayName, initNameStep } from './watch/namestep.js';
import { initProgramme } from './watch/programme.js';
import { initReactions } from './watch/reactions.js';
import { initReplays } from './watch/replays.js';
import { initShowInfo } from './watch/showinfo.js';
import { initPicture } from './watch/picture.js';
import { initShowView } from './watch/showview.js';
import { initWatching } from './watch/watching.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./watch/showview.js').Codecs} Codecs */
/** @typedef {import('./watch/showview.js').WatchState} WatchState */
/** @typedef {import('./watch/foyerchat.js').Lobby} Lobby */

const el = {
  front: byId('front'),
  nameStep: byId('name-step'),
  watch: byId('watch'),
  title: byId('watch-title'),  // its words: watch/showinfo.js
  back: /** @type {HTMLButtonElement} */ (byId('back-button')),
};

/** @param {'front' | 'name' | 'watch'} step the one part of the page shown now */
function showStep(step) {
  el.front.hidden = step !== 'front';
  el.nameStep.hidden = step !== 'name';
  el.watch.hidden = step !== 'watch';
  document.body.dataset.step = step;
}

const programme = initProgramme({ onChoose: askName });
const replays = initReplays({ front: el.front });
const keypad = initKeypad({ onFound: askName });
const nameStep = initNameStep({
  show: () => showStep('name'),
  onSubmit: (code) => openShow(code, true, keypad.friendCode()),
  onBack: () => {
    showStep('front');
    keypad.focus();
  },
});
const info = initShowInfo();
/** @type {ReturnType<typeof initPicture> | undefined} */
let picture;  // made once the show view is (it looks at the view's frames)
const view = initShowView({
  current: () => watching.connection,
  onSoundOn: () => voice.resume(),
  ducked: () => voice.state().duck,
  onState: (state) => {
    info.setState(state);
    picture?.render();
    if (state === 'live' || state === 'paused') feedback.seen();
    // only while seated: an end learnt from a failed return has no connection to answer on
    else if (state === 'ended' && watching.connection) feedback.ask('ended');
  },
  quality: () => picture?.quality() ?? {},
});
picture = initPicture({ view, current: () => watching.connection });
const foyer = initFoyerChat({ current: () => watching.connection, showCode: () => watching.code });
const reactions = initReactions({
  current: () => watching.connection, lobbyId: () => foyer.lobby?.id ?? null,
});
const captions = initCaptions();
const voice = initLobbyVoice({ foyer, onRender: () => view.renderVolume() });
const cameras = initFoyerCameras({ foyer });
const watching = initWatching({ view, info, foyer, captions, reactions, voice, cameras });
const feedback = initFeedback({
  current: () => watching.connection,
  title: () => watching.title,
  onLeave: (thanked) => {
    leave();
    if (location.pathname !== '/') history.replaceState(null, '', '/');
    if (thanked) keypad.say(t('fb_thanks'));
  },
});

/** @type {{readonly pc: RTCPeerConnection | null, readonly connection: Connection | null,
 *          readonly codecs: Codecs | null, readonly state: WatchState,
 *          readonly lobby: Lobby | null,
 *          readonly cameras: import('./cameras.js').LobbyCameras | null}} */
const exposed = {
  get pc() { return view.pc; },
  get connection() { return watching.connection; },
  get codecs() { return view.codecs; },
  get state() { return view.state; },
  get lobby() { return foyer.lobby; },
  get cameras() { return cameras.cameras(); },
};
Object.defineProperty(window, 'lampio', { value: exposed });

/**
 * The second step: the show is found; a name for the others (optional, remembered).
 * @param {string} code
 * @param {string} title
 */
function askName(code, title) {
  keypad.say('');
  nameStep.ask(code, title);
}

/** Forget the last show's lobby, chat, unsent messages and reactions. */
function resetFoyer() {
  foyer.reset();
  reactions.reset();
}

/**
 * Join the show with this code and start watching (from the form, the programme or a link).
 * @param {string} code six digits
 * @param {boolean} byHand the viewer asked for it on the page (not a link opening)
 * @param {string} [friend] a friend's lobby code
 * @param {string} [session] from an earlier visit of this tab (a reload): the same member again
 */
async function openShow(code, byHand, friend = '', session = '') {
  const status = nameStep.shown() ? nameStep : keypad;
  status.say(t('watch_opening'));
  let opened;
  try {
    opened = await watching.open(code, { name: displayName(), lobby: friend, session });
  } catch (error) {
    const problem = /** @type {{code?: string}} */ (error).code;
    if (problem === 'name_taken' && nameStep.shown()) {
      nameStep.say(t('name_taken'));  // the performer's name, say: another one, on the same step
      return;
    }
    status.say('');
    showStep('front');
    if (problem === 'show_not_found' || problem === 'invalid_input') keypad.problem(t('code_wrong'));
    else if (problem === 'show_cancelled') keypad.problem(t('code_cancelled'));
    else if (problem === 'ticket_required') keypad.problem(t('code_needs_ticket'));
    else if (problem === 'rate_limited') keypad.problem(t('code_wait'));
    else keypad.say(t('error'));
    return;
  }
  const { connection, joined, problem } = opened;
  keypad.accepted();
  nameStep.say('');
  resetFoyer();
  if (byHand) history.pushState({ watch: code }, '', `/watch?code=${code}`);
  showStep('watch');
  el.title.focus();
  feedback.start(joined.show.id);
  watching.begin(code, connection, joined);
  // a friend's lobby that is full or gone: the viewer watches anyway, in another lobby (after a
  // reload, our own lobby may have closed meanwhile: nothing to tell then)
  if (session) return;
  if (problem === 'lobby_full') foyer.note(t('friend_full'));
  else if (problem === 'lobby_not_found') foyer.note(t('friend_missing'));
}

/** Stop watching and go back to the programme. */
function leave() {
  feedback.close();
  if (!watching.leave()) return;
  resetFoyer();
  voice.stop();
  cameras.stop();
  captions.show('');
  view.hideSound();
  showStep('front');
  document.title = 'Lämpiö Live';
  keypad.show('');
  keypad.focus();
  programme.load();
  replays.load();
}

el.back.addEventListener('click', () => {
  // before the end, the one question first ("Ohita" still leaves in one tap)
  if (feedback.wouldAsk() && feedback.ask('leaving')) return;
  leave();
  if (location.pathname !== '/') history.replaceState(null, '', '/');
});
window.addEventListener('popstate', () => {
  const code = history.state?.watch;
  if (!code) leave();
  else if (!watching.watching) openShow(code, false);
});

setupLangButtons(() => {
  programme.render();
  replays.render();
  info.render();
  view.render();
  picture?.render();
  foyer.renderMembers();
  reactions.render();
  voice.render();
  cameras.render();
  nameStep.render();
  feedback.render();
});
applyLang();
markEmoji();
reactions.render();
captions.render();
foyer.renderShown();
voice.render();
programme.load();
replays.load();
const params = new URLSearchParams(location.search);
const preset = params.get('code');
if (preset) {
  keypad.show(preset.replace(/\D/g, '').slice(0, 6));
  const digits = preset.replace(/[\s.-]/g, '');
  if (/^\d{6}$/.test(digits)) {
    const friend = (params.get('lobby') ?? '').replace(/\s/g, '').toUpperCase();
    const seat = watching.savedSeat(digits, friend);
    openShow(digits, false, seat.friend, seat.session);
  }
}
