// @ts-check
/**
 * The show's title and, before it starts, when it starts, at the top of the Watch page; kept up to
 * date when its organiser edits it (`show.updated`), with a calm note when it moved to another
 * time. Coming back after a lost connection brings the show as it is now, and a time that changed
 * meanwhile is told the same way.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { whenInWords } from '../showwords.js';

/** @typedef {{title: string, state: string, starts_at?: string | null}} ShownShow */

/**
 * @typedef {object} ShowInfo
 * @property {(show: ShownShow) => void} show a new show: its title and time, no note
 * @property {(show: ShownShow) => void} update the same show as it is now
 * @property {(state: string) => void} setState the time shows only while the show has not started
 * @property {() => void} render in the page's language
 */

/** @returns {ShowInfo} */
export function initShowInfo() {
  const el = {
    title: byId('watch-title'),
    when: byId('watch-when'),
    news: byId('watch-news'),
  };
  const shown = {
    /** @type {ShownShow | null} */ show: null,
    state: 'opening',
    /** The show moved while watched: say where to. */ moved: false,
  };

  /** @param {string | null | undefined} iso */
  const instant = (iso) => (iso ? new Date(iso).getTime() : null);

  function render() {
    const show = shown.show;
    if (!show) return;
    el.title.textContent = show.title;  // always text, never HTML
    document.title = `${show.title} – Lämpiö Live`;
    const words = show.starts_at ? whenInWords(show.starts_at) : '';
    el.when.textContent = words ? t('watch_starts', { when: words }) : '';
    el.when.hidden = !words || shown.state !== 'scheduled';
    el.news.textContent = shown.moved && shown.state === 'scheduled'
      ? t('watch_moved', { when: words || t('when_unknown') }) : '';
  }

  return {
    show(show) {
      shown.show = show;
      shown.moved = false;
      shown.state = show.state;
      render();
    },
    update(show) {
      if (shown.show && instant(shown.show.starts_at) !== instant(show.starts_at)) shown.moved = true;
      shown.show = { ...shown.show, ...show };
      render();
    },
    setState(state) {
      shown.state = state;
      render();
    },
    render,
  };
}
