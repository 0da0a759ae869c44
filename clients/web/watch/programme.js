// @ts-check
/**
 * The programme on the front page: "Live now", then what is coming "today", "this week" and
 * "later", each show as a large card with its title, when in words, its town and kind, one big
 * button that chooses it and a link that adds it to a calendar. Above them, large toggle buttons
 * choose a town (those in the programme) and a kind of show (`/api/categories`); the programme is
 * then asked for again with the API's `city` and `category` filters. The cards change in place
 * below the buttons, so the button just tapped stays where it was.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { capitalised, categoryName, dayGroup, whenInWords } from '../showwords.js';

/** @typedef {{id: string, title: string, description?: string, performer?: string,
 *             state: string, starts_at: string | null, code: string, city?: string,
 *             category?: string, language?: string, image_url?: string | null}} ProgrammeShow */
/** @typedef {'city' | 'category'} Facet */

/**
 * @typedef {object} Programme
 * @property {() => Promise<void>} load fetch the programme again and show it
 * @property {() => void} render show the programme as last fetched (in the page's language)
 */

const GROUPS = /** @type {const} */ (['today', 'week', 'later']);

/**
 * @param {{onChoose: (code: string, title: string) => void}} options what a card's button does
 * @returns {Programme}
 */
export function initProgramme({ onChoose }) {
  const el = {
    filters: byId('filters'),
    status: byId('filter-status'),
    liveList: /** @type {HTMLUListElement} */ (byId('live-list')),
    liveEmpty: byId('live-empty'),
    comingEmpty: byId('coming-empty'),
    /** @type {Record<Facet, {group: HTMLElement, buttons: HTMLElement}>} */
    facets: {
      city: { group: byId('city-filter'), buttons: byId('city-buttons') },
      category: { group: byId('category-filter'), buttons: byId('category-buttons') },
    },
    groups: GROUPS.map((name) => {
      const section = byId(`group-${name}`);
      return { name, section, list: /** @type {HTMLUListElement} */ (section.querySelector('ul')) };
    }),
  };

  const state = {
    /** @type {ProgrammeShow[]} the shows the filters chose */ shows: [],
    /** @type {string[]} towns in the whole programme (and the one chosen, if it left it) */ cities: [],
    /** @type {string[]} */ categories: [],
    /** How many shows the whole programme has. */ total: 0,
    /** @type {Record<Facet, string>} '' is "all" */ chosen: { city: '', category: '' },
    /** Answers to older requests are dropped. */ asked: 0,
    /** Say how many shows the choice found (after a tap, not on every load). */ announce: false,
  };

  /**
   * One show as a large card: its title, when, where and what, and one big button.
   * @param {ProgrammeShow} show
   * @param {number} level the heading level of its title
   */
  function showCard(show, level) {
    const li = document.createElement('li');
    li.className = `show-card state-${show.state}`;
    if (show.image_url) {
      const picture = document.createElement('img');
      picture.className = 'show-picture';
      picture.src = show.image_url;
      picture.alt = '';  // the title beside it says what the show is
      picture.loading = 'lazy';
      li.append(picture);
    }
    const title = document.createElement(`h${level}`);
    title.textContent = show.title;  // always text, never HTML
    if (show.language) title.lang = show.language;
    const badge = document.createElement('p');
    badge.className = 'badge';
    badge.textContent = t('state_' + show.state);
    li.append(title, badge);
    if (show.starts_at) {
      const when = document.createElement('p');
      when.className = 'when';
      when.textContent = capitalised(whenInWords(show.starts_at));
      li.append(when);
    }
    const where = [show.city, show.category && categoryName(show.category)].filter(Boolean);
    if (where.length) {
      const about = document.createElement('p');
      about.className = 'where';
      about.textContent = where.join(', ');  // a comma reads well aloud too
      li.append(about);
    }
    if (show.performer) {
      const performer = document.createElement('p');
      performer.className = 'performer';
      performer.textContent = show.performer;
      li.append(performer);
    }
    if (show.description) {
      const about = document.createElement('p');
      about.className = 'about';
      about.textContent = show.description;
      if (show.language) about.lang = show.language;
      li.append(about);
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'primary big';
    button.textContent = t('programme_watch');
    button.setAttribute('aria-label', `${t('programme_watch')}: ${show.title}`);
    button.addEventListener('click', () => onChoose(show.code, show.title));
    li.append(button);
    if (show.state === 'scheduled' && show.starts_at) {
      const calendar = document.createElement('a');
      calendar.className = 'calendar';
      calendar.href = `/api/shows/${encodeURIComponent(show.id)}.ics`;
      calendar.download = 'lampio.ics';
      calendar.textContent = t('programme_calendar');
      calendar.setAttribute('aria-label', `${t('programme_calendar')}: ${show.title}`);
      li.append(calendar);
    }
    return li;
  }

  /**
   * The toggle buttons of one facet: "All" and each value; exactly one is pressed. The buttons are
   * made again only when the values change, so the one with the focus keeps it.
   * @param {Facet} facet
   * @param {string[]} values
   * @param {(value: string) => string} name
   */
  function renderFacet(facet, values, name) {
    const { group, buttons } = el.facets[facet];
    group.hidden = values.length < 2 && !state.chosen[facet];
    const wanted = ['', ...values];
    const current = [...buttons.children].map((b) => /** @type {HTMLElement} */ (b).dataset.value);
    if (current.join('\n') !== wanted.join('\n')) {
      buttons.replaceChildren(...wanted.map((value) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'filter';
        button.dataset.value = value;
        button.addEventListener('click', () => choose(facet, value));
        return button;
      }));
    }
    for (const child of buttons.children) {
      const button = /** @type {HTMLButtonElement} */ (child);
      const value = button.dataset.value ?? '';
      // the tick is for the eye (aria-pressed tells the rest); its room is kept when it is not
      // shown, so no button moves when another is chosen
      const tick = document.createElement('span');
      tick.className = 'tick';
      tick.setAttribute('aria-hidden', 'true');
      tick.textContent = '✓ ';
      button.replaceChildren(tick, value ? name(value) : t('filter_all'));
      button.setAttribute('aria-pressed', String(value === state.chosen[facet]));
    }
  }

  function render() {
    renderFacet('city', state.cities, (city) => city);
    renderFacet('category', state.categories, categoryName);
    const chosen = Boolean(state.chosen.city || state.chosen.category);
    el.filters.hidden = (state.total === 0 && !chosen)
      || (el.facets.city.group.hidden && el.facets.category.group.hidden);
    const live = state.shows.filter((show) => show.state === 'live' || show.state === 'paused');
    const coming = state.shows.filter((show) => show.state === 'scheduled');
    el.liveList.replaceChildren(...live.map((show) => showCard(show, 3)));
    const now = new Date();
    for (const group of el.groups) {
      const shows = coming.filter((show) => dayGroup(show.starts_at, now) === group.name);
      group.list.replaceChildren(...shows.map((show) => showCard(show, 4)));
      group.section.hidden = shows.length === 0;
    }
    el.liveEmpty.hidden = live.length > 0;
    el.comingEmpty.hidden = coming.length > 0;
    if (state.announce) {
      const count = live.length + coming.length;
      el.status.textContent = count === 0 ? t('filter_none')
        : count === 1 ? t('filter_shown_one') : t('filter_shown', { count: String(count) });
    }
  }

  /**
   * @param {Facet} facet
   * @param {string} value '' for all
   */
  function choose(facet, value) {
    state.chosen[facet] = state.chosen[facet] === value ? '' : value;
    state.announce = true;
    renderFacet(facet, facet === 'city' ? state.cities : state.categories,
      facet === 'city' ? (city) => city : categoryName);
    load();
  }

  /** @param {string} path @returns {Promise<any>} the answer's JSON, or null */
  async function get(path) {
    try {
      const response = await fetch(path);
      return response.ok ? await response.json() : null;
    } catch {
      return null;  // the programme stays as it was; the code entry still works
    }
  }

  async function load() {
    const asked = ++state.asked;
    const query = new URLSearchParams();
    if (state.chosen.city) query.set('city', state.chosen.city);
    if (state.chosen.category) query.set('category', state.chosen.category);
    const filtered = query.toString() !== '';
    const [all, chosen, categories] = await Promise.all([
      get('/api/shows'),
      filtered ? get(`/api/shows?${query}`) : null,
      state.categories.length ? null : get('/api/categories'),
    ]);
    if (asked !== state.asked) return;
    if (categories) state.categories = categories.categories;
    if (all) {
      state.total = all.shows.length;
      const towns = new Set(all.shows.map((/** @type {ProgrammeShow} */ show) => show.city ?? ''));
      if (state.chosen.city) towns.add(state.chosen.city);
      towns.delete('');
      state.cities = [...towns].sort((a, b) => a.localeCompare(b, document.documentElement.lang));
    }
    const shown = filtered ? chosen : all;
    if (shown) state.shows = shown.shows;
    render();
  }

  return { load, render };
}
