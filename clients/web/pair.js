// @ts-check
/**
 * The staff's phone (`/screen/pair`): once the staff key is typed (the phone remembers it), this is
 * the remote of the care home's screens: pair a new screen by the code it shows, and for each
 * screen choose the show, the head count, the volume, react on behalf of the room, and see what
 * the screen is doing; when the screen's show ends, the one question about it for the room
 * (`remote.feedback`, once per screen and show). Commands and events: docs/protocol.md, "Screens".
 */
import { applyLang, setupLangButtons, t } from './i18n.js';
import { ProtocolError, openWithRetry } from './protocol.js';
import { asked, feedbackForm, remember } from './watch/feedback.js';

/**
 * @typedef {import('./protocol.js').Connection} Connection
 * @typedef {import('./protocol.js').ServerEvent} ServerEvent
 * @typedef {{id: string, name: string, show: string | null, head_count: number, volume: number,
 *            camera?: string,
 *            ticket?: string | null}} ScreenSettings
 * @typedef {{state: string, sound: string, show: string | null, title: string | null}} Status
 * @typedef {{id: string, title: string}} Show
 * @typedef {{settings: ScreenSettings, status: Status | null, at: number, root: HTMLElement,
 *            name: HTMLElement, state: HTMLElement, sound: HTMLElement, select: HTMLSelectElement,
 *            heads: HTMLInputElement, volume: HTMLOutputElement, note: HTMLElement,
 *            confirm: HTMLElement, question: HTMLElement, headsTimer: number,
 *            feedback: HTMLElement, asking: {show: string, title: string,
 *            form: import('./watch/feedback.js').FeedbackForm} | null}} Card
 */

const KEY = 'lampio.staff.key';
const AWAY_AFTER = 30;  // seconds without news from a screen before it counts as away
const HEADS_MAX = 200;
const QUICK = 5;  // a connection that ends within this many seconds counts as a failed attempt
const WAIT_MAX = 60;  // seconds at most between tries while this address may not open the remote

const sleep = (/** @type {number} */ seconds) =>
  new Promise((resolve) => setTimeout(resolve, seconds * 1000));

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const el = {
  conn: byId('remote-conn'),
  keyView: byId('key-view'),
  keyForm: /** @type {HTMLFormElement} */ (byId('key-form')),
  keyInput: /** @type {HTMLInputElement} */ (byId('staff-key')),
  keyHelp: byId('key-help'),
  keyStatus: byId('key-status'),
  remoteView: byId('remote-view'),
  signedIn: byId('signed-in'),
  screens: byId('screens'),
  screensEmpty: byId('screens-empty'),
  screensNote: byId('screens-note'),
  newHelp: byId('new-help'),
  pairForm: /** @type {HTMLFormElement} */ (byId('pair-form')),
  codeInput: /** @type {HTMLInputElement} */ (byId('pair-code-input')),
  nameInput: /** @type {HTMLInputElement} */ (byId('screen-name')),
  pairStatus: byId('pair-status'),
  pairSubmit: /** @type {HTMLButtonElement} */ (byId('pair-submit')),
  signOut: /** @type {HTMLButtonElement} */ (byId('sign-out')),
  template: /** @type {HTMLTemplateElement} */ (byId('remote-template')),
};

const remote = {
  /** @type {Connection | null} */ connection: null,
  /** @type {'connecting' | 'online' | 'lost'} */ conn: 'connecting',
  key: localStorage.getItem(KEY) ?? '',
  label: '',
  /** @type {'key' | 'remote' | 'none'} */ view: 'none',
  /** Counts the tries to open the remote: a newer one ends an older one's waiting. */ tries: 0,
  /** @type {Map<string, Card>} */ cards: new Map(),
  /** @type {Show[]} */ shows: [],
  /** The pairing code the TV's QR code brought (until it is filled in on the remote). */
  linked: readLinkedCode(),
};

/**
 * The code in a link from the TV's QR code, `/screen/pair#code=123456`: in the fragment, which is
 * never sent to the server (nor kept in its logs); taken out of the address at once, so that a
 * reload or a shared address does not carry it.
 * @returns {string}
 */
function readLinkedCode() {
  const code = new URLSearchParams(location.hash.slice(1)).get('code') ?? '';
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return /^\d{6}$/.test(code) ? code : '';
}

/** The remote is open: the code from the QR code is filled in, staff only confirm. */
function fillLinkedCode() {
  if (!remote.linked) return;
  el.codeInput.value = `${remote.linked.slice(0, 3)} ${remote.linked.slice(3)}`;
  remote.linked = '';
  el.pairStatus.textContent = t('pair_code_linked');
  el.pairSubmit.focus();
}

// -- connection ----------------------------------------------------------------------------------

function renderConn() {
  el.conn.textContent = t(`pair_conn_${remote.conn}`);
  el.conn.dataset.state = remote.conn === 'online' ? 'live' : remote.conn === 'lost' ? 'lost' : '';
}

/** @param {'connecting' | 'online' | 'lost'} conn */
function setConn(conn) {
  remote.conn = conn;
  renderConn();
}

async function run() {
  let failures = 0;
  for (;;) {
    const connection = await openWithRetry({ onRetry: () => setConn('lost') });
    const opened = performance.now();
    const closed = new Promise((resolve) => connection.on('closed', resolve));
    remote.connection = connection;
    connection.on('*', (event) => onEvent(connection, event));
    setConn('online');
    if (remote.key) {
      await openRemote(connection);
    } else {
      show('key');
    }
    await closed;
    remote.connection = null;
    setConn('lost');
    // a node that accepts and then drops or fails us at once: wait longer each time (at most 15 s)
    failures = (performance.now() - opened) / 1000 < QUICK ? failures + 1 : 0;
    await sleep(failures ? Math.min(15, 2 ** (failures - 1)) : 1);
  }
}

/**
 * Open the remote, and never leave the page blank: a wrong or revoked key is forgotten; while this
 * address has tried too many wrong keys, the key is kept and tried again by itself; any other
 * failure shows the key view with a note and starts over on a new connection (the run loop's
 * growing pauses).
 * @param {Connection} connection
 */
async function openRemote(connection) {
  const attempt = ++remote.tries;
  for (;;) {
    try {
      await open(connection);
      return;
    } catch (error) {
      if (attempt !== remote.tries || connection !== remote.connection) return;
      if (error instanceof ProtocolError && error.code === 'rate_limited') {
        keyNote(t('pair_key_wait'));
        const asked = Number(error.details.retry_after);
        await sleep(Math.min(WAIT_MAX, asked > 0 ? asked : WAIT_MAX));
        if (attempt !== remote.tries || connection !== remote.connection || !remote.key) return;
        continue;
      }
      console.warn('remote: could not open', error);
      keyNote(t('pair_open_failed'));
      connection.close();
      return;
    }
  }
}

/**
 * Open the remote with the staff key: the care home's screens and their news from now on.
 * @param {Connection} connection
 */
async function open(connection) {
  try {
    const opened = await connection.request('remote.open', { key: remote.key });
    localStorage.setItem(KEY, remote.key);
    remote.label = opened.staff.label;
    el.keyInput.value = '';
    el.keyInput.removeAttribute('aria-invalid');
    el.keyStatus.textContent = '';
    await loadShows();
    for (const card of remote.cards.values()) card.root.remove();
    remote.cards.clear();
    for (const screen of opened.screens) addCard(screen, screen.status);
    show('remote');
  } catch (error) {
    // only a wrong or revoked key is forgotten; anything else keeps it for the next try
    if (error instanceof ProtocolError && error.code === 'forbidden') forgetKey(t('pair_key_wrong'));
    else throw error;
  }
}

/** @param {string} why */
function forgetKey(why) {
  localStorage.removeItem(KEY);
  remote.key = '';
  show('key');
  el.keyStatus.textContent = why;
  el.keyInput.setAttribute('aria-invalid', 'true');
}

/**
 * The remote could not open, through no fault of the key: say so on the key view (the key stays).
 * @param {string} why
 */
function keyNote(why) {
  show('key');
  el.keyStatus.textContent = why;
  el.keyInput.removeAttribute('aria-invalid');
}

/** @param {'key' | 'remote'} view */
function show(view) {
  const changed = view !== remote.view;
  remote.view = view;
  el.keyView.hidden = view !== 'key';
  el.remoteView.hidden = view !== 'remote';
  render();
  if (changed && view === 'key') el.keyInput.focus();
  if (view === 'remote') fillLinkedCode();
}

async function loadShows() {
  try {
    const response = await fetch('/api/shows');
    if (response.ok) remote.shows = (await response.json()).shows;
  } catch { /* the list stays as it was */ }
  for (const card of remote.cards.values()) fillShows(card);
}

/**
 * @param {Connection} connection
 * @param {ServerEvent} event
 */
function onEvent(connection, event) {
  if (connection !== remote.connection) return;
  switch (event.type) {
    case 'screen.status': {
      const card = remote.cards.get(event.screen.id) ?? addCard(event.screen, null);
      card.settings = event.screen;
      card.status = event.status;
      card.at = performance.now();
      if (event.status.show && !remote.shows.some((s) => s.id === event.status.show)) loadShows();
      if (event.status.state === 'ended' && event.status.show) {
        askRoom(card, event.status.show, event.status.title ?? '');
      }
      renderCard(card);
      break;
    }
    case 'screen.paired':
      if (!remote.cards.has(event.screen.id)) addCard(event.screen, null);
      break;
    case 'screen.forgotten':
      removeCard(event.screen);
      break;
    case 'staff.revoked':
      forgetKey(t('pair_revoked'));
      break;
  }
}

// -- the screens ---------------------------------------------------------------------------------

/**
 * @param {ScreenSettings} settings
 * @param {Status | null} status
 * @returns {Card}
 */
function addCard(settings, status) {
  const root = /** @type {HTMLElement} */ (
    /** @type {DocumentFragment} */ (el.template.content.cloneNode(true)).firstElementChild
  );
  const find = (/** @type {string} */ selector) => /** @type {HTMLElement} */ (
    root.querySelector(selector)
  );
  const id = settings.id;
  /** @type {Card} */
  const card = {
    settings, status, at: performance.now(), root, headsTimer: 0,
    name: find('.remote-name'),
    state: find('.remote-status'),
    sound: find('.remote-sound'),
    select: /** @type {HTMLSelectElement} */ (find('.remote-show')),
    heads: /** @type {HTMLInputElement} */ (find('.heads')),
    volume: /** @type {HTMLOutputElement} */ (find('.volume')),
    note: find('.remote-note'),
    confirm: find('.confirm'),
    question: find('.question'),
    feedback: find('.remote-feedback'),
    asking: null,
  };
  for (const node of root.querySelectorAll('[data-t]')) {
    node.textContent = t(node.getAttribute('data-t') ?? '');
  }
  // ids of this card's own, so labels and legends name their controls
  root.setAttribute('aria-labelledby', `name-${id}`);
  card.name.id = `name-${id}`;
  card.select.id = `show-${id}`;
  /** @type {HTMLLabelElement} */ (find('.remote-show-label')).htmlFor = card.select.id;
  const legends = root.querySelectorAll('legend');
  legends.forEach((legend, n) => { legend.id = `legend-${n}-${id}`; });
  card.heads.setAttribute('aria-labelledby', legends[0].id);
  card.volume.setAttribute('aria-labelledby', legends[1].id);
  const ticket = /** @type {HTMLInputElement} */ (find('.ticket'));
  ticket.id = `ticket-${id}`;
  /** @type {HTMLLabelElement} */ (find('.ticket-label')).htmlFor = ticket.id;
  ticket.value = settings.ticket ? (settings.ticket.match(/.{1,4}/g) ?? []).join(' ') : '';
  find('.ticket-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const digits = ticket.value.replace(/\D/g, '');
    if (digits.length !== 16 && digits.length !== 0) {
      card.note.textContent = t('pair_ticket_short');
      return;
    }
    control(card, { ticket: digits || null });
  });

  card.select.addEventListener('change', () => {
    control(card, { show: card.select.value || null });
  });
  const setHeads = (/** @type {number} */ n) => {
    const heads = Math.min(HEADS_MAX, Math.max(1, Math.round(n) || 1));
    card.heads.value = String(heads);
    clearTimeout(card.headsTimer);
    // taps in a row become one change
    card.headsTimer = window.setTimeout(() => control(card, { head_count: heads }), 600);
  };
  find('.heads-less').addEventListener('click', () => setHeads(Number(card.heads.value) - 1));
  find('.heads-more').addEventListener('click', () => setHeads(Number(card.heads.value) + 1));
  card.heads.addEventListener('change', () => setHeads(Number(card.heads.value)));
  const setVolume = (/** @type {number} */ step) => {
    const volume = Math.min(100, Math.max(0, card.settings.volume + step));
    control(card, { volume });
  };
  find('.volume-down').addEventListener('click', () => setVolume(-10));
  find('.volume-up').addEventListener('click', () => setVolume(10));
  // the room's camera: one choice per screen (its own radio group)
  for (const radio of root.querySelectorAll('.remote-camera input[type="radio"]')) {
    const input = /** @type {HTMLInputElement} */ (radio);
    input.name = `camera-${id}`;
    input.addEventListener('change', () => {
      if (input.checked) control(card, { camera: input.value });
    });
  }
  for (const button of root.querySelectorAll('button.react')) {
    button.addEventListener('click', () => react(card, button.getAttribute('data-kind') ?? ''));
  }
  const forget = /** @type {HTMLButtonElement} */ (find('.forget'));
  forget.addEventListener('click', () => {
    card.confirm.hidden = false;
    forget.hidden = true;
    /** @type {HTMLButtonElement} */ (find('.forget-no')).focus();
  });
  find('.forget-no').addEventListener('click', () => {
    card.confirm.hidden = true;
    forget.hidden = false;
    forget.focus();
  });
  find('.forget-yes').addEventListener('click', () => forgetScreen(card));

  remote.cards.set(id, card);
  el.screens.append(root);
  fillShows(card);
  renderCard(card);
  render();
  if (status?.state === 'ended' && status.show) askRoom(card, status.show, status.title ?? '');
  return card;
}

/** @param {Card} card @param {string} show */
const askedKey = (card, show) => `screen.${card.settings.id}.${show}`;

/**
 * The screen's show ended: ask the staff how it was for the room, once per screen and show (the
 * question stays until answered or skipped, while the screen moves on).
 * @param {Card} card
 * @param {string} show
 * @param {string} title
 */
function askRoom(card, show, title) {
  if (card.asking?.show === show || asked(askedKey(card, show))) return;
  const form = feedbackForm({
    prefix: `fb-${card.settings.id}`,
    level: 'h4',
    words: () => ({
      question: t('pair_fb_question', { title, name: card.settings.name }),
      send: t('fb_send'),
      skip: t('fb_skip'),
    }),
    onSend: async (score, comment) => {
      const connection = remote.connection;
      if (!connection) {
        form.say(t('fb_failed'));
        return;
      }
      form.say(t('fb_sending'));
      try {
        /** @type {Record<string, unknown>} */
        const fields = { screen: card.settings.id, show, score };
        if (comment) fields.comment = comment;
        await connection.request('remote.feedback', fields);
      } catch (error) {
        console.warn('remote: feedback not sent', error);
        form.say(t('fb_failed'));
        return;
      }
      remember(askedKey(card, show), 'sent');
      card.asking = null;
      card.feedback.hidden = true;
      card.feedback.replaceChildren();
      card.note.textContent = t('pair_fb_thanks');
    },
    onSkip: () => {
      remember(askedKey(card, show), 'skipped');
      card.asking = null;
      card.feedback.hidden = true;
      card.feedback.replaceChildren();
    },
  });
  card.asking = { show, title, form };
  card.feedback.replaceChildren(form.root);
  card.feedback.hidden = false;
}

/** @param {string} id */
function removeCard(id) {
  const card = remote.cards.get(id);
  if (!card) return;
  card.root.remove();
  remote.cards.delete(id);
  render();
}

/** @param {Card} card */
function fillShows(card) {
  const options = [{ id: '', title: t('pair_show_auto') }, ...remote.shows];
  const chosen = card.settings.show;
  if (chosen && !remote.shows.some((s) => s.id === chosen)) {
    options.push({ id: chosen, title: card.status?.title ?? chosen });
  }
  card.select.replaceChildren(...options.map((s) => {
    const option = document.createElement('option');
    option.value = s.id;
    option.textContent = s.title;  // always text, never HTML
    return option;
  }));
  card.select.value = chosen ?? '';
}

/** @param {Card} card */
function renderCard(card) {
  const { settings, status } = card;
  const news = status && (performance.now() - card.at) / 1000 <= AWAY_AFTER ? status : null;
  card.name.textContent = settings.name;
  const state = news ? t(`pair_status_${news.state}`, { title: news.title ?? '' })
    : t('pair_status_away');
  // a live region: change it only when the words change, so it is not read out every 10 s
  if (card.state.textContent !== state) card.state.textContent = state;
  card.state.dataset.state = news ? news.state : 'lost';
  card.sound.textContent = news ? t(`pair_sound_${news.sound}`) : '';
  if (document.activeElement !== card.heads && !card.headsTimer) {
    card.heads.value = String(settings.head_count);
  }
  card.volume.textContent = `${settings.volume} %`;
  const camera = settings.camera ?? 'off';
  for (const radio of card.root.querySelectorAll('.remote-camera input[type="radio"]')) {
    const input = /** @type {HTMLInputElement} */ (radio);
    input.checked = input.value === camera;
  }
  if (document.activeElement !== card.select) card.select.value = settings.show ?? '';
  card.question.textContent = t('pair_forget_confirm', { name: settings.name });
  for (const [selector, key] of [
    ['.heads-less', 'pair_heads_less'], ['.heads-more', 'pair_heads_more'],
    ['.volume-down', 'pair_volume_down'], ['.volume-up', 'pair_volume_up'],
  ]) card.root.querySelector(selector)?.setAttribute('aria-label', t(key));
}

/**
 * @param {Card} card
 * @param {Record<string, unknown>} fields
 */
async function control(card, fields) {
  card.headsTimer = 0;
  const connection = remote.connection;
  if (!connection) return;
  try {
    const reply = await connection.request('remote.control', { screen: card.settings.id, ...fields });
    card.settings = reply.screen;
    renderCard(card);
    card.note.textContent = t('pair_saved');
  } catch (error) {
    const code = /** @type {{code?: string}} */ (error).code;
    card.note.textContent = t(code === 'show_not_found' && 'ticket' in fields
      ? 'pair_ticket_wrong' : 'pair_error');
    console.warn('remote: control failed', error);
  }
}

/**
 * @param {Card} card
 * @param {string} kind
 */
async function react(card, kind) {
  const connection = remote.connection;
  if (!connection) return;
  try {
    await connection.request('remote.react', { screen: card.settings.id, kind });
    card.note.textContent = t('pair_reacted', { kind: t(`screen_kind_${kind}`) });
  } catch {
    card.note.textContent = t('pair_error');
  }
}

/** @param {Card} card */
async function forgetScreen(card) {
  const connection = remote.connection;
  if (!connection) return;
  try {
    await connection.request('remote.forget', { screen: card.settings.id });
    removeCard(card.settings.id);
    el.screensNote.textContent = t('pair_forgotten', { name: card.settings.name });
    el.codeInput.focus();
  } catch {
    card.note.textContent = t('pair_error');
  }
}

// -- forms ---------------------------------------------------------------------------------------

el.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = el.keyInput.value.trim();
  if (!key) {
    el.keyStatus.textContent = t('pair_key_missing');
    el.keyInput.setAttribute('aria-invalid', 'true');
    el.keyInput.focus();
    return;
  }
  el.keyInput.removeAttribute('aria-invalid');
  remote.key = key;
  // without a connection now, the run loop opens the remote with this key once it has one
  if (remote.connection) openRemote(remote.connection);
});

el.pairForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const problem = (/** @type {string} */ text) => {
    el.pairStatus.textContent = text;
    el.codeInput.setAttribute('aria-invalid', 'true');
    el.codeInput.focus();
  };
  const code = el.codeInput.value.replace(/[\s.-]/g, '');
  if (!/^\d{6}$/.test(code)) {
    problem(t('pair_code_short'));
    return;
  }
  const connection = remote.connection;
  if (!connection) return;
  el.pairStatus.textContent = t('pair_pairing');
  /** @type {Record<string, string>} */
  const fields = { code };
  const name = el.nameInput.value.trim();
  if (name) fields.name = name;
  try {
    const paired = await connection.request('screen.pair', fields);
    el.codeInput.removeAttribute('aria-invalid');
    el.codeInput.value = '';
    el.nameInput.value = '';
    const card = remote.cards.get(paired.screen.id) ?? addCard(paired.screen, paired.screen.status);
    el.pairStatus.textContent = t('pair_done', { name: card.settings.name });
  } catch (error) {
    const failure = error instanceof ProtocolError ? error.code : '';
    const words = {
      pairing_not_found: 'pair_code_wrong', pairing_expired: 'pair_code_expired',
      rate_limited: 'pair_wait', invalid_input: 'pair_code_short',
    }[failure];
    problem(t(words ?? 'pair_error'));
  }
});

el.signOut.addEventListener('click', () => {
  localStorage.removeItem(KEY);
  remote.key = '';
  remote.label = '';
  remote.tries++;  // a try waiting to open the remote again stops
  for (const card of remote.cards.values()) card.root.remove();
  remote.cards.clear();
  remote.connection?.close();  // a fresh connection listens to no care home
  show('key');
});

// -- words ---------------------------------------------------------------------------------------

function render() {
  document.title = t('pair_doc_title');
  renderConn();
  el.keyHelp.textContent = t('pair_key_help');
  el.signedIn.textContent = remote.label ? t('pair_signed_in', { label: remote.label }) : '';
  el.newHelp.textContent = t('pair_new_help', { url: `${location.origin}/screen` });
  el.screensEmpty.hidden = remote.cards.size > 0;
}

function renderAll() {
  applyLang();  // template clones are outside the document until added: fill them too
  render();
  for (const card of remote.cards.values()) {
    for (const node of card.root.querySelectorAll('[data-t]')) {
      node.textContent = t(node.getAttribute('data-t') ?? '');
    }
    fillShows(card);
    renderCard(card);
    card.asking?.form.render();
  }
}

// a screen that goes quiet is shown as away
setInterval(() => {
  for (const card of remote.cards.values()) renderCard(card);
}, 5000);
setInterval(loadShows, 60_000);

setupLangButtons(renderAll);
renderAll();
if (!remote.key) show('key');  // no need to wait for the connection to ask for the key
run();
