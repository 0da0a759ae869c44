// @ts-check
/**
 * The show's code on the front page: typed, or tapped on the big keypad, shown as the posters print
 * it (`123 456`), or a ticket's sixteen digits as the ticket prints them (`1234 5678 9012 3456`),
 * then looked up (`/api/shows/by-code/…`). Also the optional friend's lobby code.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

const CODE_DIGITS = 6; // a show's code
const TICKET_DIGITS = 16; // a ticket's

/**
 * @typedef {object} Keypad
 * @property {() => string} digits the digits typed so far (at most sixteen: a ticket's)
 * @property {(digits: string) => void} show show these digits in the field
 * @property {(text: string) => void} problem say what is wrong with the code, and go back to it
 * @property {(text: string) => void} say the code's status line ('' clears it)
 * @property {() => void} accepted the code worked: no problem is shown any more
 * @property {() => string} friendCode a friend's lobby code as typed (spaces and case forgiven)
 * @property {() => void} focus
 */

/**
 * @param {{onFound: (code: string, title: string) => void}} options what a code that exists does
 * @returns {Keypad}
 */
export function initKeypad({ onFound }) {
  const el = {
    form: /** @type {HTMLFormElement} */ (byId('code-form')),
    input: /** @type {HTMLInputElement} */ (byId('code')),
    erase: /** @type {HTMLButtonElement} */ (byId('key-erase')),
    digits: /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('[data-digit]')),
    friendInput: /** @type {HTMLInputElement} */ (byId('friend-code-input')),
    codeStatus: byId('code-status'),
  };

  /** @param {string} text */
  function problem(text) {
    el.codeStatus.textContent = text;
    el.input.setAttribute('aria-invalid', 'true');
    el.input.focus();
  }

  /** The digits typed so far (at most sixteen: a ticket's). */
  function digits() {
    return el.input.value.replace(/\D/g, '').slice(0, TICKET_DIGITS);
  }

  /**
   * Show the digits as they are printed: a show's code `123 456`, a ticket's in fours.
   * @param {string} typed
   */
  function show(typed) {
    el.input.value = typed.length <= CODE_DIGITS
      ? (typed.length > 3 ? `${typed.slice(0, 3)} ${typed.slice(3)}` : typed)
      : (typed.match(/.{1,4}/g) ?? []).join(' ');
    el.input.removeAttribute('aria-invalid');
    if (el.codeStatus.textContent && typed.length < CODE_DIGITS) el.codeStatus.textContent = '';
  }

  el.input.addEventListener('input', () => show(digits()));
  for (const key of el.digits) {
    key.addEventListener('click', () => show((digits() + key.dataset.digit).slice(0, TICKET_DIGITS)));
  }
  el.erase.addEventListener('click', () => show(digits().slice(0, -1)));

  el.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const code = digits();
    if (code.length !== CODE_DIGITS && code.length !== TICKET_DIGITS) {
      problem(t('code_short'));
      return;
    }
    el.codeStatus.textContent = t('code_checking');
    try {
      const response = await fetch(`/api/shows/by-code/${code}`);
      if (response.status === 404) problem(t('code_wrong'));
      else if (response.status === 410) problem(t('code_cancelled'));
      else if (response.status === 429) problem(t('code_wait'));
      else if (!response.ok) el.codeStatus.textContent = t('error');
      else {
        const found = await response.json();
        if (found.access === 'ticket' && code.length === CODE_DIGITS) problem(t('code_needs_ticket'));
        else onFound(code, found.title);
      }
    } catch {
      el.codeStatus.textContent = t('error');
    }
  });

  return {
    digits,
    show,
    problem,
    say(text) {
      el.codeStatus.textContent = text;
    },
    accepted() {
      el.input.removeAttribute('aria-invalid');
      el.codeStatus.textContent = '';
    },
    friendCode() {
      return el.friendInput.value.replace(/\s/g, '').toUpperCase();
    },
    focus() {
      el.input.focus();
    },
  };
}
