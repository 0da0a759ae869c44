// @ts-check
/**
 * Reactions on the Watch page: the buttons (applause, laughter, heart, bravo), pictures that float
 * up over the picture, and the counts of the last seconds for this lobby and the whole audience.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError } from '../protocol.js';
import { ICONS, KINDS, RecentCounts, calm, emojiWorks } from '../foyer.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */

/**
 * @typedef {object} Reactions
 * @property {(event: ServerEvent) => void} onReactions a `reactions` event
 * @property {() => void} reset forget the counts and pictures of the last show
 * @property {() => void} render the counts in the page's language
 */

/**
 * @param {{current: () => Connection | null, lobbyId: () => string | null}} options
 *   current: the page's connection now; lobbyId: the lobby the viewer sits in
 * @returns {Reactions}
 */
export function initReactions({ current, lobbyId }) {
  const el = {
    buttons: /** @type {NodeListOf<HTMLButtonElement>} */ (
      document.querySelectorAll('button.react')
    ),
    float: byId('react-float'),
    lobby: byId('react-lobby'),
    all: byId('react-all'),
    status: byId('react-status'),
  };

  const recent = { lobby: new RecentCounts(), all: new RecentCounts() };
  /** @type {{render: number | undefined, note: number | undefined}} */
  const timers = { render: undefined, note: undefined };

  for (const button of el.buttons) {
    button.addEventListener('click', async () => {
      const connection = current();
      if (!connection || lobbyId() === null) return;
      try {
        await connection.request('react', { kind: button.dataset.kind });
      } catch (error) {
        const code = error instanceof ProtocolError ? error.code : '';
        if (code === 'rate_limited') {
          el.status.textContent = t('react_wait');
          clearTimeout(timers.note);
          timers.note = setTimeout(() => { el.status.textContent = ''; }, 5000);
        }
      }
    });
  }

  /**
   * Everyone's reactions of the last 100 ms on one node: our lobby's own and the whole audience's.
   * @param {ServerEvent} event
   */
  function onReactions(event) {
    const lobby = lobbyId();
    const ours = lobby !== null ? event.lobbies?.[lobby] : undefined;
    recent.lobby.add(ours);
    recent.all.add(event.counts);
    if (!calm() && emojiWorks()) rise(ours ?? {}, event.counts ?? {});
    render();
    if (timers.render === undefined) {
      timers.render = setInterval(() => {
        render();
        if (!recent.lobby.busy && !recent.all.busy) {
          clearInterval(timers.render);
          timers.render = undefined;
        }
      }, 500);
    }
  }

  /**
   * Pictures that float gently up: our lobby's large, the rest of the audience's small and faint.
   * @param {Record<string, number>} ours
   * @param {Record<string, number>} all
   */
  function rise(ours, all) {
    for (const kind of KINDS) {
      const near = Math.min(ours[kind] ?? 0, 3);
      const far = Math.min(Math.max((all[kind] ?? 0) - (ours[kind] ?? 0), 0), 2);
      for (let n = 0; n < near + far; n++) {
        if (el.float.childElementCount >= 24) return;
        const bubble = document.createElement('span');
        bubble.className = n < near ? 'bubble' : 'bubble far';
        bubble.textContent = ICONS[kind];
        bubble.style.left = `${5 + Math.random() * 85}%`;
        bubble.style.animationDelay = `${Math.random() * 0.4}s`;
        bubble.addEventListener('animationend', () => bubble.remove());
        setTimeout(() => bubble.remove(), 5000);  // in case the animation never ran
        el.float.append(bubble);
      }
    }
  }

  /**
   * The counts of the last seconds as words and pictures ("👏 Taputuksia 3").
   * @param {HTMLElement} target
   * @param {Record<string, number>} totals
   */
  function renderCounts(target, totals) {
    const parts = [];
    for (const kind of KINDS) {
      if (!totals[kind]) continue;
      const part = document.createElement('span');
      part.className = 'count';
      const word = document.createElement('span');
      word.textContent = t(`meter_${kind}`);
      if (emojiWorks()) {
        const icon = document.createElement('span');
        icon.setAttribute('aria-hidden', 'true');
        icon.textContent = ICONS[kind];
        word.className = 'sr-only';
        part.append(icon, ' ');
      }
      part.append(word, ` ${totals[kind]}`);
      parts.push(part);
    }
    if (parts.length === 0) target.textContent = t('react_quiet');
    else target.replaceChildren(...parts);
  }

  function render() {
    renderCounts(el.lobby, recent.lobby.totals());
    renderCounts(el.all, recent.all.totals());
  }

  return {
    onReactions,
    reset() {
      recent.lobby = new RecentCounts();
      recent.all = new RecentCounts();
      el.float.replaceChildren();
      render();
    },
    render,
  };
}
