// @ts-check
/**
 * The organiser's page (`/organise`): sign in with the organiser key (kept in this tab's
 * sessionStorage only), create and schedule shows, see their codes, links and QR codes, edit a
 * show (viewers who joined see the change at once) or cancel it after a second question, and
 * issue or revoke the staff keys care homes pair their screens with; see a show's audience
 * ("Yleisö": charts with tables, the feedback, the CSV) while it is on and for 30 days after, and
 * caption the recordings that still lack captions before the law's 14 days are up. With the admin key, also
 * the organisers: add one (its key shown once) or revoke its key (docs/api.md).
 */
import { setupLangButtons, t } from './i18n.js';
import { initCaptionsDue } from './organise/captions.js';
import { insightView } from './organise/insight.js';
import { capitalised, categoryName } from './showwords.js';

/**
 * @typedef {{id: string, title: string, description: string, performer?: string,
 *            starts_at: string | null, state: string, code_display: string,
 *            viewer_url: string, performer_url: string, organiser?: string, city?: string,
 *            category?: string, language?: string, listed?: boolean, access?: string,
 *            image_url?: string | null}} OrganisedShow
 * @typedef {{id: string, label: string, created_at: string, screens: number}} StaffKeyEntry
 * @typedef {{id: string, name: string, city: string, created_at: string}} OrganiserEntry
 */

/** The show languages offered in the edit form (a show in another keeps its own too). */
const LANGUAGES = ['fi', 'sv', 'en'];
/** The node's own organiser (`--organiser-key`): its key is a setting, not revoked here. */
const OWN_ORGANISER = 'default';

const KEY = 'lampio.organiser.key';

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const el = {
  status: byId('org-status'),
  signin: byId('signin'),
  signinForm: /** @type {HTMLFormElement} */ (byId('signin-form')),
  keyInput: /** @type {HTMLInputElement} */ (byId('org-key')),
  keyHelp: byId('org-key-help'),
  signinStatus: byId('signin-status'),
  desk: byId('desk'),
  signout: /** @type {HTMLButtonElement} */ (byId('signout')),
  createForm: /** @type {HTMLFormElement} */ (byId('create-form')),
  title: /** @type {HTMLInputElement} */ (byId('show-title')),
  performer: /** @type {HTMLInputElement} */ (byId('show-performer')),
  time: /** @type {HTMLInputElement} */ (byId('show-time')),
  desc: /** @type {HTMLTextAreaElement} */ (byId('show-desc')),
  category: /** @type {HTMLSelectElement} */ (byId('show-category')),
  listed: /** @type {HTMLInputElement} */ (byId('show-listed')),
  createStatus: byId('create-status'),
  shows: /** @type {HTMLUListElement} */ (byId('org-shows')),
  showsTitle: byId('shows-title'),
  showsStatus: byId('shows-status'),
  showsEmpty: byId('shows-empty'),
  organisers: byId('organisers'),
  organiserForm: /** @type {HTMLFormElement} */ (byId('organiser-form')),
  organiserName: /** @type {HTMLInputElement} */ (byId('organiser-name')),
  organiserCity: /** @type {HTMLInputElement} */ (byId('organiser-city')),
  organiserStatus: byId('organiser-status'),
  newOrganiserKey: byId('new-organiser-key'),
  newOrganiserKeyValue: byId('new-organiser-key-value'),
  copyOrganiserKey: /** @type {HTMLButtonElement} */ (byId('copy-organiser-key')),
  organiserList: /** @type {HTMLUListElement} */ (byId('org-organisers')),
  keysHelp: byId('keys-help'),
  keyForm: /** @type {HTMLFormElement} */ (byId('key-form')),
  label: /** @type {HTMLInputElement} */ (byId('key-label')),
  keyStatus: byId('key-status'),
  newKey: byId('new-key'),
  newKeyValue: byId('new-key-value'),
  copyKey: /** @type {HTMLButtonElement} */ (byId('copy-key')),
  keys: /** @type {HTMLUListElement} */ (byId('org-keys')),
  keysEmpty: byId('keys-empty'),
  ended: /** @type {HTMLUListElement} */ (byId('org-ended')),
  endedEmpty: byId('ended-empty'),
};

const desk = {
  key: sessionStorage.getItem(KEY) ?? '',
  /** @type {OrganisedShow[]} */ shows: [],
  /** @type {StaffKeyEntry[]} */ keys: [],
  /** the key being asked about before revoking it */ confirming: '',
  /** the admin key: organisers may be managed */ admin: false,
  /** @type {OrganiserEntry[]} */ organisers: [],
  /** @type {string[]} */ categories: [],
  /** the show being edited */ editing: '',
  /** the show being asked about before cancelling it */ cancelling: '',
  /** the show whose tickets are being made */ ticketing: '',
  /** the organiser being asked about before revoking its key */ revoking: '',
  /** @type {OrganisedShow[]} the organiser's ended shows (kept 30 days) */ ended: [],
  /** the show whose audience is open */ insight: '',
  /** @type {import('./organise/insight.js').Report | null} */ report: null,
  /** its CSV, fetched with the key, as an object URL */ csv: '',
};

/** An API answer that was not a success: its status and error code. */
class Failure extends Error {
  /** @param {number} status @param {string} code */
  constructor(status, code) {
    super(code);
    this.status = status;
    this.code = code;
  }
}

/**
 * Call the API with the organiser key.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${desk.key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Failure(0, 'offline');
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Failure(response.status, data.error?.code ?? 'error');
  return data;
}

/** @param {unknown} error */
function words(error) {
  const code = error instanceof Failure ? error.code : 'error';
  return code === 'offline' ? t('org_offline') : t('org_error', { code });
}

// -- signing in ----------------------------------------------------------------------------------

async function signIn() {
  el.signinStatus.textContent = t('org_signing_in');
  try {
    desk.keys = (await api('GET', '/api/staff-keys')).staff_keys;
    desk.categories = (await api('GET', '/api/categories')).categories;
    /** @type {OrganiserEntry[] | null} */
    const organisers = await api('GET', '/api/organisers').then(
      (answer) => answer.organisers,
      (error) => {
        if (error instanceof Failure && error.status === 403) return null;  // not the admin
        throw error;
      },
    );
    desk.admin = organisers !== null;
    desk.organisers = organisers ?? [];
  } catch (error) {
    const wrong = error instanceof Failure && (error.status === 401 || error.status === 403);
    el.signinStatus.textContent = wrong ? t('org_key_wrong') : words(error);
    el.keyInput.setAttribute('aria-invalid', String(wrong));
    sessionStorage.removeItem(KEY);
    showDesk(false);
    return;
  }
  sessionStorage.setItem(KEY, desk.key);
  el.keyInput.value = '';
  el.keyInput.removeAttribute('aria-invalid');
  el.signinStatus.textContent = '';
  showDesk(true);
  renderCategories();
  renderKeys();
  renderOrganisers();
  await loadShows();
  el.title.focus();
  loadEnded();
  captionsDue.load();
}

/** @param {boolean} signedIn */
function showDesk(signedIn) {
  el.signin.hidden = signedIn;
  el.desk.hidden = !signedIn;
}

el.signinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = el.keyInput.value.trim();
  if (!key) {
    el.signinStatus.textContent = t('org_key_missing');
    el.keyInput.setAttribute('aria-invalid', 'true');
    el.keyInput.focus();
    return;
  }
  desk.key = key;
  signIn();
});

el.signout.addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  desk.key = '';
  desk.shows = [];
  desk.keys = [];
  desk.confirming = '';
  desk.admin = false;
  desk.organisers = [];
  desk.editing = desk.cancelling = desk.revoking = desk.ticketing = '';
  desk.ended = [];
  closeInsight();
  captionsDue.clear();
  // empty the hidden desk too: its show links carry the performers' secret tokens
  renderShows();
  renderEnded();
  renderKeys();
  renderOrganisers();
  el.newKey.hidden = true;
  el.newKeyValue.textContent = '';
  el.newOrganiserKey.hidden = true;
  el.newOrganiserKeyValue.textContent = '';
  for (const note of [el.status, el.createStatus, el.keyStatus, el.showsStatus, el.organiserStatus]) {
    note.textContent = '';
  }
  el.createForm.reset();
  el.organiserForm.reset();
  el.label.value = '';
  showDesk(false);
  el.keyInput.focus();
});

// -- shows ---------------------------------------------------------------------------------------

async function loadShows() {
  const key = desk.key;
  try {
    const shows = (await api('GET', '/api/shows')).shows;
    if (desk.key !== key) return;  // signed out meanwhile: show nothing
    desk.shows = shows;
  } catch (error) {
    if (desk.key !== key) return;
    el.status.textContent = words(error);
  }
  renderShows();
}

/**
 * A term and its value in a description list.
 * @param {HTMLDListElement} list
 * @param {string} term
 * @param {Node | string} value
 */
function fact(list, term, value) {
  const dt = document.createElement('dt');
  dt.textContent = term;
  const dd = document.createElement('dd');
  dd.append(value);
  list.append(dt, dd);
  return dd;
}

/** @param {string} href */
function link(href) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = href;
  return a;
}

function renderShows() {
  el.shows.replaceChildren(...desk.shows.map((show) => {
    const li = document.createElement('li');
    li.className = 'org-show';
    const title = document.createElement('h3');
    title.textContent = show.title;  // always text, never HTML
    if (show.language) title.lang = show.language;
    const facts = document.createElement('dl');
    facts.className = 'facts';
    fact(facts, t('org_code'), show.code_display).classList.add('org-code');
    fact(facts, t('org_state'), t(`org_state_${show.state}`));
    if (show.starts_at) {
      fact(facts, t('org_when'), new Date(show.starts_at).toLocaleString(
        document.documentElement.lang, { dateStyle: 'full', timeStyle: 'short' },
      ));
    }
    if (show.performer) fact(facts, t('org_by'), show.performer);
    if (show.city) fact(facts, t('org_city'), show.city);
    if (show.category) fact(facts, t('org_category'), categoryName(show.category));
    if (show.language) fact(facts, t('org_language'), languageName(show.language));
    const organiser = desk.admin && desk.organisers.find((o) => o.id === show.organiser);
    if (organiser) fact(facts, t('org_organiser'), organiser.name);
    fact(facts, t('org_viewer_link'), link(show.viewer_url));
    const secret = fact(facts, t('org_performer_link'), link(show.performer_url));
    const help = document.createElement('span');
    help.className = 'help org-secret';
    help.textContent = t('org_performer_link_help');
    secret.append(help);
    const qr = document.createElement('img');
    qr.className = 'org-qr';
    qr.src = `/api/shows/${encodeURIComponent(show.id)}/qr.svg`;
    qr.alt = t('org_qr', { title: show.title });
    qr.width = qr.height = 160;
    li.append(title);
    if (show.listed === false) {
      const badge = document.createElement('p');
      badge.className = 'badge unlisted';
      badge.textContent = t('org_unlisted');
      li.append(badge);
    }
    li.append(facts, qr);
    if (show.description) {
      const description = document.createElement('p');
      description.className = 'org-desc';
      description.textContent = show.description;
      if (show.language) description.lang = show.language;
      li.append(description);
    }
    if (show.access === 'ticket') {
      const badge = document.createElement('p');
      badge.className = 'badge ticketed';
      badge.textContent = t('org_ticketed');
      li.append(badge);
    }
    li.append(desk.editing === show.id ? editForm(show)
      : desk.ticketing === show.id ? ticketsPanel(show) : showActions(show));
    if (desk.insight === show.id) li.append(insightPart(show));
    return li;
  }));
  el.showsEmpty.hidden = desk.shows.length > 0;
}

/** A language tag in the page's language ("suomi", "Swedish"). @param {string} tag */
function languageName(tag) {
  try {
    const names = new Intl.DisplayNames([document.documentElement.lang], { type: 'language' });
    return capitalised(names.of(tag) ?? tag);
  } catch {
    return tag;
  }
}

/**
 * What can be done to a show: edit it, or cancel it after a second question.
 * @param {OrganisedShow} show
 */
function showActions(show) {
  const actions = document.createElement('div');
  if (desk.cancelling === show.id) {
    const question = document.createElement('p');
    question.className = 'question';
    question.textContent = t('org_cancel_confirm', { title: show.title });
    const yes = button(t('org_cancel_yes'), () => cancelShow(show), 'danger');
    const no = button(t('org_cancel_no'), () => {
      desk.cancelling = '';
      renderShows();
      focusAction('cancel', show.id);
    });
    actions.className = 'confirm';
    actions.append(question, yes, no);
    queueMicrotask(() => no.focus());
    return actions;
  }
  actions.className = 'actions';
  const edit = button(t('org_edit'), () => {
    desk.editing = show.id;
    desk.cancelling = '';
    renderShows();
    byId('edit-title').focus();
  });
  edit.dataset.edit = show.id;
  const cancel = button(t('org_cancel'), () => {
    desk.cancelling = show.id;
    desk.editing = '';
    renderShows();
  }, 'danger-outline');
  cancel.dataset.cancel = show.id;
  actions.append(edit);
  if (show.state === 'live' || show.state === 'paused') actions.append(insightButton(show));
  if (show.access === 'ticket') {
    const tickets = button(t('org_tickets'), () => {
      desk.ticketing = show.id;
      desk.editing = desk.cancelling = '';
      renderShows();
      byId('tickets-count').focus();
    });
    tickets.dataset.tickets = show.id;
    actions.append(tickets);
  }
  actions.append(cancel);
  return actions;
}

/** @param {'edit' | 'cancel' | 'tickets' | 'insight'} action @param {string} showId */
function focusAction(action, showId) {
  /** @type {HTMLElement | null} */ (
    el.desk.querySelector(`[data-${action}="${CSS.escape(showId)}"]`)
  )?.focus();
}

/** An ISO time as a datetime-local field's value, on this device's clock. @param {string | null} iso */
function localValue(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}`
    + `T${two(date.getHours())}:${two(date.getMinutes())}`;
}

/**
 * A labelled field of the edit form.
 * @param {HTMLElement} form
 * @param {string} id
 * @param {string} label
 * @param {HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement} input
 * @param {string} [help]
 */
function field(form, id, label, input, help) {
  const labelEl = document.createElement('label');
  labelEl.htmlFor = id;
  labelEl.textContent = label;
  labelEl.className = 'second';
  input.id = id;
  form.append(labelEl, input);
  if (help) {
    const helpEl = document.createElement('p');
    helpEl.className = 'help';
    helpEl.id = `${id}-help`;
    helpEl.textContent = help;
    input.setAttribute('aria-describedby', helpEl.id);
    form.append(helpEl);
  }
}

/**
 * The show's details to change: title, description, time, performer, kind, language, listing.
 * @param {OrganisedShow} show
 */
function editForm(show) {
  const form = document.createElement('form');
  form.className = 'org-form org-edit';
  form.noValidate = true;
  form.setAttribute('aria-labelledby', 'edit-heading');
  const heading = document.createElement('h4');
  heading.id = 'edit-heading';
  heading.textContent = t('org_edit_title', { title: show.title });
  form.append(heading);

  const title = document.createElement('input');
  title.className = 'text wide';
  title.maxLength = 200;
  title.autocomplete = 'off';
  title.value = show.title;
  field(form, 'edit-title', t('org_title_label'), title);
  const performer = document.createElement('input');
  performer.className = 'text wide';
  performer.maxLength = 200;
  performer.autocomplete = 'off';
  performer.value = show.performer ?? '';
  field(form, 'edit-performer', t('org_performer_label'), performer, t('org_optional'));
  const time = document.createElement('input');
  time.type = 'datetime-local';
  time.className = 'text';
  time.value = localValue(show.starts_at);
  field(form, 'edit-time', t('org_time_label'), time, t('org_time_help'));
  const description = document.createElement('textarea');
  description.className = 'text wide';
  description.rows = 4;
  description.maxLength = 2000;
  description.value = show.description;
  field(form, 'edit-desc', t('org_desc_label'), description, t('org_optional'));

  const category = document.createElement('select');
  const categories = desk.categories.includes(show.category ?? '')
    ? desk.categories : [...desk.categories, show.category ?? 'other'];
  category.append(...categories.map((name) => new Option(categoryName(name), name)));
  category.value = show.category ?? 'other';
  field(form, 'edit-category', t('org_category'), category);
  const language = document.createElement('select');
  const languages = LANGUAGES.includes(show.language ?? 'fi')
    ? LANGUAGES : [...LANGUAGES, show.language ?? 'fi'];
  language.append(...languages.map((tag) => new Option(languageName(tag), tag)));
  language.value = show.language ?? 'fi';
  field(form, 'edit-language', t('org_language'), language);

  const listedRow = document.createElement('div');
  listedRow.className = 'check-row';
  const listed = document.createElement('input');
  listed.type = 'checkbox';
  listed.id = 'edit-listed';
  listed.checked = show.listed !== false;
  listed.setAttribute('aria-describedby', 'edit-listed-help');
  const listedLabel = document.createElement('label');
  listedLabel.htmlFor = 'edit-listed';
  listedLabel.textContent = t('org_listed_label');
  const listedHelp = document.createElement('p');
  listedHelp.className = 'help';
  listedHelp.id = 'edit-listed-help';
  listedHelp.textContent = t('org_listed_help');
  listedRow.append(listed, listedLabel);
  form.append(listedRow, listedHelp);

  const ticketRow = document.createElement('div');
  ticketRow.className = 'check-row';
  const ticketed = document.createElement('input');
  ticketed.type = 'checkbox';
  ticketed.id = 'edit-ticketed';
  ticketed.checked = show.access === 'ticket';
  ticketed.setAttribute('aria-describedby', 'edit-ticketed-help');
  const ticketedLabel = document.createElement('label');
  ticketedLabel.htmlFor = 'edit-ticketed';
  ticketedLabel.textContent = t('org_ticketed_label');
  const ticketedHelp = document.createElement('p');
  ticketedHelp.className = 'help';
  ticketedHelp.id = 'edit-ticketed-help';
  ticketedHelp.textContent = t('org_ticketed_help');
  ticketRow.append(ticketed, ticketedLabel);
  form.append(ticketRow, ticketedHelp);

  const image = document.createElement('input');
  image.type = 'file';
  image.accept = 'image/jpeg,image/png,image/webp';
  image.className = 'text wide';
  field(form, 'edit-image', t('org_image_label'), image, t('org_image_help'));

  const save = document.createElement('button');
  save.type = 'submit';
  save.className = 'primary big';
  save.textContent = t('org_save');
  const back = button(t('org_save_no'), () => {
    desk.editing = '';
    renderShows();
    focusAction('edit', show.id);
  });
  form.append(save, back);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!title.value.trim()) {
      el.showsStatus.textContent = t('org_title_missing');
      title.setAttribute('aria-invalid', 'true');
      title.focus();
      return;
    }
    /** @type {Record<string, unknown>} */
    const changes = {};
    if (title.value.trim() !== show.title) changes.title = title.value.trim();
    if (performer.value.trim() !== (show.performer ?? '')) changes.performer = performer.value.trim();
    if (description.value.trim() !== show.description) changes.description = description.value.trim();
    const startsAt = time.value ? new Date(time.value).toISOString() : null;
    const before = show.starts_at ? new Date(show.starts_at).getTime() : null;
    if ((startsAt ? new Date(startsAt).getTime() : null) !== before) changes.starts_at = startsAt;
    if (category.value !== (show.category ?? 'other')) changes.category = category.value;
    if (language.value !== (show.language ?? 'fi')) changes.language = language.value;
    if (listed.checked !== (show.listed !== false)) changes.listed = listed.checked;
    const access = ticketed.checked ? 'ticket' : 'open';
    if (access !== (show.access ?? 'open')) changes.access = access;
    saveShow(show, changes, image.files?.[0] ?? null);
  });
  return form;
}

/**
 * @param {OrganisedShow} show
 * @param {Record<string, unknown>} changes only the fields that changed
 * @param {File | null} [picture] a new picture for the programme
 */
async function saveShow(show, changes, picture = null) {
  if (Object.keys(changes).length === 0 && !picture) {
    el.showsStatus.textContent = t('org_unchanged');
    return;
  }
  el.showsStatus.textContent = t('org_saving');
  try {
    let saved = show;
    if (picture) saved = await putPicture(show, picture);
    if (Object.keys(changes).length) {
      saved = await api('PATCH', `/api/shows/${encodeURIComponent(show.id)}`, changes);
    }
    desk.editing = '';
    el.showsStatus.textContent = t('org_saved', { title: saved.title });
    await loadShows();
    focusAction('edit', show.id);
  } catch (error) {
    el.showsStatus.textContent = showWords(error);
  }
}

/**
 * Send the show's picture (the server makes it small and drops its metadata).
 * @param {OrganisedShow} show
 * @param {File} picture
 * @returns {Promise<OrganisedShow>}
 */
async function putPicture(show, picture) {
  let response;
  try {
    response = await fetch(`/api/shows/${encodeURIComponent(show.id)}/image`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${desk.key}`, 'Content-Type': picture.type || 'image/jpeg' },
      body: picture,
    });
  } catch {
    throw new Failure(0, 'offline');
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Failure(response.status, data.error?.code ?? 'error');
  return data;
}

// -- the audience ("Yleisö") -----------------------------------------------------------------------

/** The button that opens or closes a show's audience. @param {OrganisedShow} show */
function insightButton(show) {
  const open = desk.insight === show.id;
  const b = button(t('org_insight', { title: show.title }), () => {
    if (desk.insight === show.id) {
      closeInsight();
      rerender();
      focusAction('insight', show.id);
    } else {
      openInsight(show);
    }
  });
  b.dataset.insight = show.id;
  b.setAttribute('aria-expanded', String(open));
  return b;
}

function rerender() {
  renderShows();
  renderEnded();
}

function closeInsight() {
  if (desk.csv) URL.revokeObjectURL(desk.csv);
  desk.insight = desk.csv = '';
  desk.report = null;
}

/** Fetch a show's figures and its CSV, and show them. @param {OrganisedShow} show */
async function openInsight(show) {
  closeInsight();
  desk.insight = show.id;
  const key = desk.key;
  const path = `/api/shows/${encodeURIComponent(show.id)}/insight`;
  el.showsStatus.textContent = t('org_insight_loading');
  try {
    const report = await api('GET', path);
    const response = await fetch(`${path}.csv`, { headers: { Authorization: `Bearer ${key}` } });
    if (desk.key !== key || desk.insight !== show.id) return;
    desk.report = report;
    if (response.ok) desk.csv = URL.createObjectURL(await response.blob());
    el.showsStatus.textContent = '';
  } catch (error) {
    if (desk.insight === show.id) desk.insight = '';
    el.showsStatus.textContent = showWords(error);
    return;
  }
  rerender();
  /** @type {HTMLElement | null} */ (document.getElementById(`insight-${show.id}`))?.focus();
}

/** The open audience part of a show, with a button to fetch it again. @param {OrganisedShow} show */
function insightPart(show) {
  const part = document.createElement('div');
  part.className = 'org-insight-part';
  if (!desk.report) return part;
  const view = insightView(desk.report, show.title, desk.csv);
  const again = button(t('org_insight_again'), () => openInsight(show));
  view.append(again);
  part.append(view);
  return part;
}

async function loadEnded() {
  const key = desk.key;
  try {
    const shows = (await api('GET', '/api/shows?ended=true')).shows;
    if (desk.key !== key) return;
    desk.ended = /** @type {OrganisedShow[]} */ (shows).sort(
      (a, b) => (b.starts_at ?? '').localeCompare(a.starts_at ?? ''),
    );
  } catch (error) {
    if (desk.key !== key) return;
    el.status.textContent = words(error);
  }
  renderEnded();
}

/** The ended shows, each with its audience. */
function renderEnded() {
  el.ended.replaceChildren(...desk.ended.map((show) => {
    const li = document.createElement('li');
    li.className = 'org-key org-ended';
    const title = document.createElement('h3');
    title.textContent = show.title;
    if (show.language) title.lang = show.language;
    li.append(title);
    const about = document.createElement('p');
    about.className = 'help';
    about.textContent = [
      show.cancelled ? t('org_ended_cancelled') : t('org_state_ended'),
      show.starts_at ? new Date(show.starts_at).toLocaleString(
        document.documentElement.lang, { dateStyle: 'long', timeStyle: 'short' },
      ) : '',
    ].filter(Boolean).join(' – ');
    const actions = document.createElement('div');
    actions.className = 'actions';
    actions.append(insightButton(show));
    li.append(about, actions);
    if (desk.insight === show.id) li.append(insightPart(show));
    return li;
  }));
  el.endedEmpty.hidden = desk.ended.length > 0;
}

// -- captions due ----------------------------------------------------------------------------------

const captionsDue = initCaptionsDue({
  list: byId('captions-list'),
  empty: byId('captions-empty'),
  status: byId('captions-status'),
  get: (path) => api('GET', path),
  put: async (path, vtt) => {
    let response;
    try {
      response = await fetch(path, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${desk.key}`, 'Content-Type': 'text/vtt' },
        body: vtt,
      });
    } catch {
      throw new Failure(0, 'offline');
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Failure(response.status, data.error?.code ?? 'error');
    return data;
  },
  words,
});

// -- tickets -------------------------------------------------------------------------------------

/**
 * The tickets panel of a ticketed show: how many, for whom, and the codes once made (shown this
 * once: print them, or save them as a file).
 * @param {OrganisedShow} show
 */
function ticketsPanel(show) {
  const form = document.createElement('form');
  form.className = 'org-form org-tickets';
  form.noValidate = true;
  form.setAttribute('aria-labelledby', 'tickets-heading');
  const heading = document.createElement('h4');
  heading.id = 'tickets-heading';
  heading.textContent = t('org_tickets_title', { title: show.title });
  form.append(heading);
  const count = document.createElement('input');
  count.type = 'number';
  count.min = '1';
  count.max = '500';
  count.value = '10';
  count.className = 'text';
  field(form, 'tickets-count', t('org_tickets_count'), count);
  const label = document.createElement('input');
  label.className = 'text wide';
  label.maxLength = 100;
  label.autocomplete = 'off';
  field(form, 'tickets-label', t('org_tickets_label'), label, t('org_tickets_label_help'));
  const heads = document.createElement('input');
  heads.type = 'number';
  heads.min = '1';
  heads.max = '200';
  heads.value = '1';
  heads.className = 'text';
  field(form, 'tickets-heads', t('org_tickets_heads'), heads, t('org_tickets_heads_help'));
  const make = document.createElement('button');
  make.type = 'submit';
  make.className = 'primary big';
  make.textContent = t('org_tickets_make');
  const back = button(t('org_tickets_close'), () => {
    desk.ticketing = '';
    renderShows();
    focusAction('tickets', show.id);
  });
  form.append(make, back);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    el.showsStatus.textContent = t('org_saving');
    try {
      const body = { count: Number(count.value), head_count: Number(heads.value) || 1 };
      if (label.value.trim()) Object.assign(body, { label: label.value.trim() });
      const made = await api('POST', `/api/shows/${encodeURIComponent(show.id)}/tickets`, body);
      el.showsStatus.textContent = t('org_tickets_made', { count: String(made.tickets.length) });
      form.replaceWith(ticketSheet(show, made.tickets));
    } catch (error) {
      el.showsStatus.textContent = showWords(error);
    }
  });
  return form;
}

/**
 * The codes just made, as a sheet to print (one ticket a row) or save as CSV.
 * @param {OrganisedShow} show
 * @param {{code_display: string, label: string, head_count: number}[]} tickets
 */
function ticketSheet(show, tickets) {
  const sheet = document.createElement('section');
  sheet.className = 'ticket-sheet';
  sheet.setAttribute('aria-labelledby', 'sheet-heading');
  const heading = document.createElement('h4');
  heading.id = 'sheet-heading';
  heading.tabIndex = -1;
  heading.textContent = t('org_tickets_sheet', { title: show.title });
  const help = document.createElement('p');
  help.className = 'help';
  help.textContent = t('org_tickets_once');
  const list = document.createElement('ol');
  list.className = 'ticket-codes';
  list.append(...tickets.map((ticket) => {
    const item = document.createElement('li');
    const code = document.createElement('strong');
    code.textContent = ticket.code_display;
    item.append(code);
    const extra = [ticket.label, ticket.head_count > 1
      ? t('org_tickets_for', { count: String(ticket.head_count) }) : ''].filter(Boolean);
    if (extra.length) item.append(` — ${extra.join(', ')}`);
    return item;
  }));
  const print = button(t('org_tickets_print'), () => {
    document.body.classList.add('printing-tickets');
    sheet.classList.add('printing');
    window.print();
    document.body.classList.remove('printing-tickets');
    sheet.classList.remove('printing');
  });
  const rows = [['code', 'show', 'label', 'head_count'],
    ...tickets.map((ticket) => [ticket.code_display, show.title, ticket.label, String(ticket.head_count)])];
  const csv = rows.map((row) => row.map((cell) => `"${cell.replaceAll('"', '""')}"`).join(',')).join('\r\n');
  const save = document.createElement('a');
  save.className = 'button';
  save.href = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
  save.download = 'liput.csv';
  save.textContent = t('org_tickets_save');
  const done = button(t('org_tickets_close'), () => {
    desk.ticketing = '';
    renderShows();
    focusAction('tickets', show.id);
  });
  sheet.append(heading, help, list, print, save, done);
  queueMicrotask(() => heading.focus());
  return sheet;
}

/** @param {OrganisedShow} show */
async function cancelShow(show) {
  desk.cancelling = '';
  el.showsStatus.textContent = t('org_cancelling');
  try {
    await api('POST', `/api/shows/${encodeURIComponent(show.id)}/cancel`);
    el.showsStatus.textContent = t('org_cancelled', { title: show.title });
  } catch (error) {
    el.showsStatus.textContent = showWords(error);
  }
  await loadShows();
  if (desk.shows.some((s) => s.id === show.id)) focusAction('cancel', show.id);
  else el.showsTitle.focus();
}

/** What went wrong with a show, in words: on air, or gone. @param {unknown} error */
function showWords(error) {
  if (error instanceof Failure && error.code === 'show_live') return t('org_cancel_live');
  if (error instanceof Failure && error.code === 'show_not_found') return t('org_show_gone');
  return words(error);
}

el.createForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const title = el.title.value.trim();
  if (!title) {
    el.createStatus.textContent = t('org_title_missing');
    el.title.setAttribute('aria-invalid', 'true');
    el.title.focus();
    return;
  }
  el.title.removeAttribute('aria-invalid');
  /** @type {Record<string, string | boolean>} */
  const body = { title };
  if (el.category.value && el.category.value !== 'other') body.category = el.category.value;
  if (!el.listed.checked) body.listed = false;
  if (el.desc.value.trim()) body.description = el.desc.value.trim();
  if (el.performer.value.trim()) body.performer = el.performer.value.trim();
  if (el.time.value) body.starts_at = new Date(el.time.value).toISOString();
  el.createStatus.textContent = t('org_creating');
  try {
    const show = await api('POST', '/api/shows', body);
    el.createForm.reset();
    el.createStatus.textContent = t('org_created', { title: show.title });
    await loadShows();
  } catch (error) {
    el.createStatus.textContent = words(error);
  }
});

// -- staff keys ----------------------------------------------------------------------------------

async function loadKeys() {
  const key = desk.key;
  try {
    const keys = (await api('GET', '/api/staff-keys')).staff_keys;
    if (desk.key !== key) return;  // signed out meanwhile: show nothing
    desk.keys = keys;
  } catch (error) {
    if (desk.key !== key) return;
    el.status.textContent = words(error);
  }
  renderKeys();
}

function renderKeys() {
  el.keys.replaceChildren(...desk.keys.map((entry) => {
    const li = document.createElement('li');
    li.className = 'org-key';
    const name = document.createElement('strong');
    name.textContent = entry.label;
    const about = document.createElement('span');
    about.className = 'help';
    about.textContent = ` – ${new Date(entry.created_at).toLocaleDateString(
      document.documentElement.lang,
    )} – ${t('org_key_screens', { count: String(entry.screens) })}`;
    li.append(name, about);
    const actions = document.createElement('div');
    actions.className = 'actions';
    if (desk.confirming === entry.id) {
      const question = document.createElement('p');
      question.className = 'question';
      question.textContent = t('org_revoke_confirm', { label: entry.label });
      const yes = button(t('org_revoke_yes'), () => revoke(entry), 'danger');
      const no = button(t('org_revoke_no'), () => {
        desk.confirming = '';
        renderKeys();
        /** @type {HTMLElement | null} */ (
          el.keys.querySelector(`[data-key="${CSS.escape(entry.id)}"]`)
        )?.focus();
      });
      actions.className = 'confirm';
      actions.append(question, yes, no);
      queueMicrotask(() => no.focus());
    } else {
      const revokeButton = button(t('org_revoke'), () => {
        desk.confirming = entry.id;
        renderKeys();
      });
      revokeButton.dataset.key = entry.id;
      actions.append(revokeButton);
    }
    li.append(actions);
    return li;
  }));
  el.keysEmpty.hidden = desk.keys.length > 0;
}

/**
 * @param {string} text
 * @param {() => void} onClick
 * @param {string} [className]
 */
function button(text, onClick, className = '') {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

/** @param {StaffKeyEntry} entry */
async function revoke(entry) {
  desk.confirming = '';
  try {
    await api('DELETE', `/api/staff-keys/${encodeURIComponent(entry.id)}`);
    el.keyStatus.textContent = t('org_revoked', { label: entry.label });
  } catch (error) {
    el.keyStatus.textContent = words(error);
  }
  await loadKeys();
  el.label.focus();
}

el.keyForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const label = el.label.value.trim();
  if (!label) {
    el.keyStatus.textContent = t('org_label_missing');
    el.label.setAttribute('aria-invalid', 'true');
    el.label.focus();
    return;
  }
  el.label.removeAttribute('aria-invalid');
  const key = desk.key;
  try {
    const issued = await api('POST', '/api/staff-keys', { label });
    if (desk.key !== key) return;  // signed out meanwhile: the new key is not shown on this page
    el.label.value = '';
    el.newKeyValue.textContent = issued.key;
    el.newKey.hidden = false;
    el.keyStatus.textContent = t('org_issued', { label: issued.label });
    await loadKeys();
  } catch (error) {
    el.keyStatus.textContent = words(error);
  }
});

el.copyKey.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(el.newKeyValue.textContent ?? '');
    el.keyStatus.textContent = t('org_copied');
  } catch {
    el.keyStatus.textContent = t('org_copy_failed');
  }
});

// -- organisers (the admin) ---------------------------------------------------------------------

async function loadOrganisers() {
  const key = desk.key;
  try {
    const organisers = (await api('GET', '/api/organisers')).organisers;
    if (desk.key !== key) return;
    desk.organisers = organisers;
  } catch (error) {
    if (desk.key !== key) return;
    el.organiserStatus.textContent = words(error);
  }
  renderOrganisers();
}

function renderOrganisers() {
  el.organisers.hidden = !desk.admin;
  el.organiserList.replaceChildren(...desk.organisers.map((entry) => {
    const li = document.createElement('li');
    li.className = 'org-key';
    const name = document.createElement('strong');
    name.textContent = entry.name;
    const about = document.createElement('span');
    about.className = 'help';
    const own = entry.id === OWN_ORGANISER ? ` – ${t('org_organiser_own')}` : '';
    about.textContent = ` – ${entry.city}${own}`;
    li.append(name, about);
    if (entry.id === OWN_ORGANISER) return li;
    const actions = document.createElement('div');
    actions.className = 'actions';
    if (desk.revoking === entry.id) {
      const question = document.createElement('p');
      question.className = 'question';
      question.textContent = t('org_organiser_revoke_confirm', { name: entry.name });
      const yes = button(t('org_organiser_revoke_yes'), () => revokeOrganiser(entry), 'danger');
      const no = button(t('org_revoke_no'), () => {
        desk.revoking = '';
        renderOrganisers();
        /** @type {HTMLElement | null} */ (
          el.organiserList.querySelector(`[data-organiser="${CSS.escape(entry.id)}"]`)
        )?.focus();
      });
      actions.className = 'confirm';
      actions.append(question, yes, no);
      queueMicrotask(() => no.focus());
    } else {
      const revokeButton = button(t('org_organiser_revoke'), () => {
        desk.revoking = entry.id;
        renderOrganisers();
      });
      revokeButton.dataset.organiser = entry.id;
      actions.append(revokeButton);
    }
    li.append(actions);
    return li;
  }));
}

/** @param {OrganiserEntry} entry */
async function revokeOrganiser(entry) {
  desk.revoking = '';
  try {
    await api('DELETE', `/api/organisers/${encodeURIComponent(entry.id)}`);
    el.organiserStatus.textContent = t('org_organiser_revoked', { name: entry.name });
  } catch (error) {
    el.organiserStatus.textContent = words(error);
  }
  await loadOrganisers();
  el.organiserName.focus();
}

el.organiserForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = el.organiserName.value.trim();
  const city = el.organiserCity.value.trim();
  for (const [input, value] of [[el.organiserName, name], [el.organiserCity, city]]) {
    const missing = !value;
    if (missing) /** @type {HTMLInputElement} */ (input).setAttribute('aria-invalid', 'true');
    else /** @type {HTMLInputElement} */ (input).removeAttribute('aria-invalid');
  }
  if (!name || !city) {
    el.organiserStatus.textContent = t('org_organiser_missing');
    (name ? el.organiserCity : el.organiserName).focus();
    return;
  }
  const key = desk.key;
  try {
    const created = await api('POST', '/api/organisers', { name, city });
    if (desk.key !== key) return;  // signed out meanwhile: the new key is not shown on this page
    el.organiserForm.reset();
    el.newOrganiserKeyValue.textContent = created.key;
    el.newOrganiserKey.hidden = false;
    el.organiserStatus.textContent = t('org_organiser_created', { name: created.name });
    await loadOrganisers();
  } catch (error) {
    el.organiserStatus.textContent = words(error);
  }
});

el.copyOrganiserKey.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(el.newOrganiserKeyValue.textContent ?? '');
    el.organiserStatus.textContent = t('org_copied');
  } catch {
    el.organiserStatus.textContent = t('org_copy_failed');
  }
});

// -- words ---------------------------------------------------------------------------------------

function render() {
  document.title = t('org_doc_title');
  el.keyHelp.textContent = t('org_key_help');
  el.keysHelp.textContent = t('org_keys_help', { url: `${location.origin}/screen/pair` });
  renderCategories();
  renderShows();
  renderEnded();
  captionsDue.render();
  renderKeys();
  renderOrganisers();
}

/** The create form's kinds of show, in the page's language ("other" first: the default). */
function renderCategories() {
  const chosen = el.category.value || 'other';
  const names = ['other', ...desk.categories.filter((name) => name !== 'other')];
  el.category.replaceChildren(...names.map((name) => new Option(categoryName(name), name)));
  el.category.value = chosen;
}

setupLangButtons(render);
render();
if (desk.key) signIn();
else showDesk(false);
