// @ts-check
/**
 * What the viewer's and the performer's pages share about the foyer: the reaction kinds, counting
 * reactions over the last few seconds, ordering chat message ids, and client ids for messages.
 */

/** The reaction kinds of docs/protocol.md, in the order the buttons and meters show them. */
export const KINDS = /** @type {const} */ (['applause', 'laughter', 'heart', 'bravo']);

/** @typedef {typeof KINDS[number]} Kind */

/** A picture for each kind (decoration only: the word is always beside it). */
export const ICONS = { applause: '👏', laughter: '😄', heart: '❤️', bravo: '💐' };

/** Seconds of reactions a meter adds up. */
export const WINDOW = 5;

/**
 * Reactions per kind over the last {@link WINDOW} seconds: a sliding sum, so the number reads as
 * "this many in the last moments" and falls back to zero when the clapping stops.
 */
export class RecentCounts {
  constructor(seconds = WINDOW) {
    this.seconds = seconds;
    /** @private @type {Array<{at: number, kind: string, n: number}>} */
    this.entries = [];
  }

  /**
   * Add one `reactions` event's counts ({kind: n}).
   * @param {Record<string, number> | undefined} counts
   * @param {number} [now] milliseconds (performance.now())
   */
  add(counts, now = performance.now()) {
    for (const [kind, n] of Object.entries(counts ?? {})) {
      if (Number.isFinite(n) && n > 0) this.entries.push({ at: now, kind, n });
    }
  }

  /**
   * The sums per kind now (every kind present, zero if quiet).
   * @param {number} [now]
   * @returns {Record<string, number>}
   */
  totals(now = performance.now()) {
    const since = now - this.seconds * 1000;
    this.entries = this.entries.filter((entry) => entry.at >= since);
    /** @type {Record<string, number>} */
    const out = Object.fromEntries(KINDS.map((kind) => [kind, 0]));
    for (const entry of this.entries) out[entry.kind] = (out[entry.kind] ?? 0) + entry.n;
    return out;
  }

  /** Whether anything is still being counted. */
  get busy() {
    return this.entries.length > 0;
  }
}

/**
 * Compare two chat message ids (bus stream ids, "milliseconds-sequence"); '' is before all.
 * @param {string} a
 * @param {string} b
 * @returns {number} negative, zero or positive
 */
export function compareIds(a, b) {
  const [am, as] = (a || '0-0').split('-').map(Number);
  const [bm, bs] = (b || '0-0').split('-').map(Number);
  return am - bm || (as || 0) - (bs || 0);
}

/**
 * How far back (ms) chat history resumes before the newest message seen: two messages said at
 * once may arrive in either order, and a node that dies between them takes the older one with
 * it. Repeats are dropped by id.
 */
export const HISTORY_OVERLAP_MS = 10000;

/**
 * Where `chat.history` resumes after a lost connection.
 * @param {string} newestSeen a chat id ("milliseconds-sequence")
 * @returns {string}
 */
export function historyStart(newestSeen) {
  const ms = Number((newestSeen || '0-0').split('-')[0]) || 0;
  return `${Math.max(0, ms - HISTORY_OVERLAP_MS)}-0`;
}

/** A new id for a chat message, kept for resending it after a lost connection. */
export function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // crypto.randomUUID exists only on https (or localhost); plain-http test setups get this
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The time of a message, as the viewer's clock reads it ("19.02").
 * @param {number | undefined} at seconds since 1970
 */
export function clock(at) {
  const when = at ? new Date(at * 1000) : new Date();
  return when.toLocaleTimeString(document.documentElement.lang, {
    hour: '2-digit', minute: '2-digit',
  });
}

/** Whether the viewer asked for less motion (no floating pictures then). */
export function calm() {
  return matchMedia('(prefers-reduced-motion: reduce)').matches;
}

/** @type {boolean | undefined} */
let emojiSeen;

/**
 * Whether this device draws the reaction pictures (some TVs and kiosks have no emoji font and
 * would show empty boxes; the pages then show the words alone).
 */
export function emojiWorks() {
  if (emojiSeen !== undefined) return emojiSeen;
  try {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 32;
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) throw new Error('no canvas');
    const draw = (/** @type {string} */ text) => {
      context.clearRect(0, 0, 32, 32);
      context.font = '24px sans-serif';
      context.textBaseline = 'top';
      context.fillText(text, 0, 0);
      return context.getImageData(0, 0, 32, 32).data.join();
    };
    const missing = draw('\u{10FFFD}');  // a character no font has: the "missing" box
    emojiSeen = Object.values(ICONS).every((icon) => draw(icon) !== missing);
  } catch {
    emojiSeen = false;
  }
  return emojiSeen;
}

/** Mark the page when the pictures cannot be drawn (CSS then hides them). */
export function markEmoji() {
  document.documentElement.classList.toggle('no-emoji', !emojiWorks());
}
