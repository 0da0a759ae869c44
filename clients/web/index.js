// @ts-check
/** The front door: the programme and the code entry. */
import { applyLang, setupLangButtons, t } from './i18n.js';

const form = /** @type {HTMLFormElement} */ (document.getElementById('code-form'));
const input = /** @type {HTMLInputElement} */ (document.getElementById('code'));
const status = /** @type {HTMLElement} */ (document.getElementById('code-status'));
const list = /** @type {HTMLUListElement} */ (document.getElementById('programme'));
const empty = /** @type {HTMLElement} */ (document.getElementById('programme-empty'));

/** @type {Array<{title: string, state: string, starts_at: string | null, code_display: string}>} */
let shows = [];

function renderProgramme() {
  list.replaceChildren();
  for (const show of shows) {
    const li = document.createElement('li');
    const title = document.createElement('strong');
    title.textContent = show.title;  // always text, never HTML
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = ` – ${t('state_' + show.state)}`;
    li.append(title, state);
    if (show.starts_at) {
      const when = document.createElement('div');
      when.textContent = new Date(show.starts_at).toLocaleString(document.documentElement.lang);
      li.append(when);
    }
    list.append(li);
  }
  empty.hidden = shows.length > 0;
}

async function loadProgramme() {
  try {
    const response = await fetch('/api/shows');
    if (response.ok) shows = (await response.json()).shows;
  } catch { /* the programme stays as it was; the code entry still works */ }
  renderProgramme();
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const digits = input.value.replace(/[\s.-]/g, '');
  if (!/^\d{6}$/.test(digits)) {
    status.textContent = t('code_short');
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  try {
    const response = await fetch(`/api/shows/by-code/${digits}`);
    if (response.ok) {
      const show = await response.json();
      input.removeAttribute('aria-invalid');
      status.textContent = t('code_found', { title: show.title }) + ' ' + t('state_' + show.state);
    } else if (response.status === 429) {
      status.textContent = t('code_wait');
    } else {
      input.setAttribute('aria-invalid', 'true');
      status.textContent = t('code_wrong');
    }
  } catch {
    status.textContent = t('error');
  }
});

const preset = new URLSearchParams(location.search).get('code');
if (preset) input.value = preset;
setupLangButtons(renderProgramme);
applyLang();
loadProgramme();
