// @ts-check
/**
 * The organiser's page (`/organise`): sign in with the organiser key (kept in this tab's
 * sessionStorage only), create and schedule shows, see their codes, links and QR codes, and issue
 * or revoke the staff keys care homes pair their screens with (docs/api.md).
 */
import { setupLangButtons, t } from './i18n.js';

/**
 * @typedef {{id: string, title: string, description: string, performer?: string,
 *            starts_at: string | null, state: string, code_display: string,
 *            viewer_url: string, performer_url: string}} OrganisedShow
 * @typedef {{id: string, label: string, created_at: string, screens: number}} StaffKeyEntry
 */

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
  createStatus: byId('create-status'),
  shows: /** @type {HTMLUListElement} */ (byId('org-shows')),
  showsEmpty: byId('shows-empty'),
  keysHelp: byId('keys-help'),
  keyForm: /** @type {HTMLFormElement} */ (byId('key-form')),
  label: /** @type {HTMLInputElement} */ (byId('key-label')),
  keyStatus: byId('key-status'),
  newKey: byId('new-key'),
  newKeyValue: byId('new-key-value'),
  copyKey: /** @type {HTMLButtonElement} */ (byId('copy-key')),
  keys: /** @type {HTMLUListElement} */ (byId('org-keys')),
  keysEmpty: byId('keys-empty'),
};

const desk = {
  key: sessionStorage.getItem(KEY) ?? '',
  /** @type {OrganisedShow[]} */ shows: [],
  /** @type {StaffKeyEntry[]} */ keys: [],
  /** the key being asked about before revoking it */ confirming: '',
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
  renderKeys();
  await loadShows();
  el.title.focus();
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
  // empty the hidden desk too: its show links carry the performers' secret tokens
  renderShows();
  renderKeys();
  el.newKey.hidden = true;
  el.newKeyValue.textContent = '';
  for (const note of [el.status, el.createStatus, el.keyStatus]) note.textContent = '';
  el.createForm.reset();
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
    li.append(title, facts, qr);
    if (show.description) {
      const description = document.createElement('p');
      description.className = 'org-desc';
      description.textContent = show.description;
      li.append(description);
    }
    return li;
  }));
  el.showsEmpty.hidden = desk.shows.length > 0;
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
  /** @type {Record<string, string>} */
  const body = { title };
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

// -- words ---------------------------------------------------------------------------------------

function render() {
  document.title = t('org_doc_title');
  el.keyHelp.textContent = t('org_key_help');
  el.keysHelp.textContent = t('org_keys_help', { url: `${location.origin}/screen/pair` });
  renderShows();
  renderKeys();
}

setupLangButtons(render);
render();
if (desk.key) signIn();
else showDesk(false);
