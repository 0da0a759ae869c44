// @ts-check
/**
 * The programme on the front page: "Live now" and "Coming up", each show as a large card with its
 * title, when, and one big button that chooses it.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {{title: string, description?: string, state: string, starts_at: string | null,
 *             code: string}} ProgrammeShow */

/**
 * @typedef {object} Programme
 * @property {() => Promise<void>} load fetch the programme again and show it
 * @property {() => void} render show the programme as last fetched (in the page's language)
 */

/**
 * @param {{onChoose: (code: string, title: string) => void}} options what a card's button does
 * @returns {Programme}
 */
export function initProgramme({ onChoose }) {
  const el = {
    liveList: /** @type {HTMLUListElement} */ (byId('live-list')),
    liveEmpty: byId('live-empty'),
    comingList: /** @type {HTMLUListElement} */ (byId('coming-list')),
    comingEmpty: byId('coming-empty'),
  };

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
    button.addEventListener('click', () => onChoose(show.code, show.title));
    li.append(button);
    return li;
  }

  function render() {
    const live = shows.filter((show) => show.state === 'live' || show.state === 'paused');
    const coming = shows.filter((show) => show.state === 'scheduled');
    el.liveList.replaceChildren(...live.map(showCard));
    el.comingList.replaceChildren(...coming.map(showCard));
    el.liveEmpty.hidden = live.length > 0;
    el.comingEmpty.hidden = coming.length > 0;
  }

  async function load() {
    try {
      const response = await fetch('/api/shows');
      if (response.ok) shows = (await response.json()).shows;
    } catch { /* the programme stays as it was; the code entry still works */ }
    render();
  }

  return { load, render };
}
