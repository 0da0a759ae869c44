// @ts-check
/**
 * The audience as the performer sees it in the studio: how many watch now, and the reactions as
 * meters of the last few seconds (applause, laughter, heart, bravo).
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { KINDS, RecentCounts } from '../foyer.js';

/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */

/**
 * @typedef {object} Audience
 * @property {(viewers: number) => void} setViewers the count the server told (shown at next render)
 * @property {(event: ServerEvent) => void} onReactions one node's totals of the last 100 ms
 * @property {(open: boolean) => void} render the count (shown only while the show is open)
 */

/** @returns {Audience} */
export function initAudience() {
  const el = {
    audience: byId('audience'),
    audienceHelp: byId('audience-help'),
  };

  /** @type {{viewers: number | null, timer: number | undefined}} */
  const now = { viewers: null, timer: undefined };
  const meters = new RecentCounts();

  /** @param {ServerEvent} event one node's totals of the last 100 ms */
  function onReactions(event) {
    meters.add(event.counts);
    renderMeters();
    if (now.timer === undefined) {
      now.timer = setInterval(() => {
        renderMeters();
        if (!meters.busy) {
          clearInterval(now.timer);
          now.timer = undefined;
        }
      }, 250);
    }
  }

  function renderMeters() {
    const totals = meters.totals();
    const scale = Math.max(10, ...Object.values(totals));
    for (const kind of KINDS) {
      const row = document.querySelector(`.meters [data-kind="${kind}"]`);
      if (!row) continue;
      const n = totals[kind] ?? 0;
      /** @type {HTMLElement} */ (row.querySelector('.fill')).style.width = `${(100 * n) / scale}%`;
      /** @type {HTMLElement} */ (row.querySelector('output')).textContent = String(n);
    }
  }

  return {
    setViewers(viewers) {
      now.viewers = viewers;
    },
    onReactions,
    render(open) {
      el.audience.hidden = el.audienceHelp.hidden = now.viewers === null || !open;
      el.audience.textContent = t('viewers', { count: String(now.viewers ?? 0) });
    },
  };
}
