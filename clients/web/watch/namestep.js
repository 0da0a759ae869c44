// @ts-check
/**
 * The second step on the Watch page: the show is found; a name for the others in the lobby
 * (optional, remembered on this device), then the show opens.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

const NAME_KEY = 'lampio.name';

/**
 * The name the viewer chose to show others ('' is fine: nobody has to give one).
 * @returns {string}
 */
export function displayName() {
  return (localStorage.getItem(NAME_KEY) ?? '').split(/\s+/).filter(Boolean).join(' ').slice(0, 40);
}

/**
 * @typedef {object} NameStep
 * @property {(code: string, title: string) => void} ask show the step for this show
 * @property {() => boolean} shown whether the step is on screen now
 * @property {(text: string) => void} say the step's status line ('' clears it)
 * @property {() => void} render the step's title in the page's language
 */

/**
 * @param {{show: () => void, onSubmit: (code: string) => void, onBack: () => void}} options
 *   show: make the step the one shown; onSubmit: open the chosen show (the name is kept by then);
 *   onBack: go back to the front page
 * @returns {NameStep}
 */
export function initNameStep({ show, onSubmit, onBack }) {
  const el = {
    nameStep: byId('name-step'),
    nameTitle: byId('name-title'),
    nameForm: /** @type {HTMLFormElement} */ (byId('name-form')),
    name: /** @type {HTMLInputElement} */ (byId('name')),
    nameStatus: byId('name-status'),
    nameBack: /** @type {HTMLButtonElement} */ (byId('name-back')),
  };

  /** The show chosen on the front page, waiting for the viewer's name. */
  const chosen = { code: '', title: '' };

  el.nameForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = el.name.value.split(/\s+/).filter(Boolean).join(' ').slice(0, 40);
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch { /* private mode: the name is simply not remembered */ }
    onSubmit(chosen.code);
  });

  el.nameBack.addEventListener('click', onBack);

  return {
    ask(code, title) {
      chosen.code = code;
      chosen.title = title;
      el.nameStatus.textContent = '';
      el.nameTitle.textContent = t('name_title', { title });
      el.name.value = localStorage.getItem(NAME_KEY) ?? '';
      show();
      el.name.focus();
    },
    shown() {
      return !el.nameStep.hidden;
    },
    say(text) {
      el.nameStatus.textContent = text;
    },
    render() {
      if (!el.nameStep.hidden) el.nameTitle.textContent = t('name_title', { title: chosen.title });
    },
  };
}
