// @ts-check
/** UI text in Finnish, Swedish and English. Plain, warm words: "Katso", "Osallistu". */

/** @typedef {'fi' | 'sv' | 'en'} Lang */

/** @type {Record<Lang, Record<string, string>>} */
export const TEXT = {
  fi: {
    code_title: 'Osallistu esitykseen',
    code_label: 'Kirjoita esityksen koodi',
    code_help: 'Koodissa on kuusi numeroa.',
    code_submit: 'Katso',
    code_wrong: 'Tällä koodilla ei löytynyt esitystä. Tarkista numerot.',
    code_short: 'Koodissa on kuusi numeroa. Tarkista numerot.',
    code_wait: 'Liian monta yritystä. Odota hetki ja kokeile uudelleen.',
    code_found: 'Löytyi: {title}.',
    programme_title: 'Ohjelmassa',
    programme_empty: 'Ei esityksiä juuri nyt.',
    state_scheduled: 'Tulossa', state_live: 'Nyt suorana', state_paused: 'Tauolla',
    state_ended: 'Päättynyt',
    error: 'Jokin meni vikaan. Yritä hetken päästä uudelleen.',
  },
  sv: {
    code_title: 'Delta i föreställningen',
    code_label: 'Skriv föreställningens kod',
    code_help: 'Koden har sex siffror.',
    code_submit: 'Titta',
    code_wrong: 'Ingen föreställning hittades med den koden. Kontrollera siffrorna.',
    code_short: 'Koden har sex siffror. Kontrollera siffrorna.',
    code_wait: 'För många försök. Vänta en stund och försök igen.',
    code_found: 'Hittades: {title}.',
    programme_title: 'På programmet',
    programme_empty: 'Inga föreställningar just nu.',
    state_scheduled: 'Kommande', state_live: 'Direkt nu', state_paused: 'Paus',
    state_ended: 'Avslutad',
    error: 'Något gick fel. Försök igen om en stund.',
  },
  en: {
    code_title: 'Take part in a show',
    code_label: "Type the show's code",
    code_help: 'The code has six digits.',
    code_submit: 'Watch',
    code_wrong: 'No show has this code. Please check the digits.',
    code_short: 'The code has six digits. Please check the digits.',
    code_wait: 'Too many tries. Please wait a moment and try again.',
    code_found: 'Found: {title}.',
    programme_title: 'On the programme',
    programme_empty: 'No shows right now.',
    state_scheduled: 'Coming up', state_live: 'Live now', state_paused: 'On a break',
    state_ended: 'Ended',
    error: 'Something went wrong. Please try again in a moment.',
  },
};

/** @returns {Lang} */
export function currentLang() {
  const saved = localStorage.getItem('lampio.lang');
  if (saved === 'fi' || saved === 'sv' || saved === 'en') return saved;
  const nav = (navigator.language || 'fi').slice(0, 2);
  return nav === 'sv' || nav === 'en' ? nav : 'fi';
}

/**
 * @param {string} key
 * @param {Record<string, string>} [vars]
 */
export function t(key, vars = {}) {
  const text = TEXT[currentLang()][key] ?? TEXT.fi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? '');
}

/** Fill every [data-t] element and mark the chosen language button. */
export function applyLang() {
  const lang = currentLang();
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) {
    const key = el.getAttribute('data-t');
    if (key) el.textContent = t(key);
  }
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.getAttribute('data-lang') === lang));
  }
}

/** Wire the language buttons. @param {() => void} onChange */
export function setupLangButtons(onChange) {
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.addEventListener('click', () => {
      localStorage.setItem('lampio.lang', button.getAttribute('data-lang') || 'fi');
      applyLang();
      onChange();
    });
  }
  applyLang();
}
