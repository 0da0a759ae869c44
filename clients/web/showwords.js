// @ts-check
/**
 * A show's time, city and category in words, in the page's language: "tänään klo 14",
 * "huomenna klo 10", "torstai 10. joulukuuta klo 14". Times are Helsinki's (Europe/Helsinki), as
 * the posters print them, whatever the device's own clock says.
 */
import { TEXT, currentLang, t } from './i18n.js';

export const TIME_ZONE = 'Europe/Helsinki';

/** The locale each page language formats dates in (24-hour clock, day before month). */
const LOCALES = { fi: 'fi-FI', sv: 'sv-FI', en: 'en-GB' };

/** @typedef {'today' | 'week' | 'later'} DayGroup */

/** @param {Date} date @returns {{year: number, month: number, day: number, weekday: number}} */
function helsinkiDay(date) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: TIME_ZONE, year: 'numeric', month: 'numeric', day: 'numeric', weekday: 'short',
  }).formatToParts(date);
  /** @param {string} type */
  const part = (type) => parts.find((p) => p.type === type)?.value ?? '';
  const weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(part('weekday')) + 1;
  return { year: Number(part('year')), month: Number(part('month')), day: Number(part('day')), weekday };
}

/** Whole days from `now`'s date to `date`'s date in Helsinki (0: the same day, 1: tomorrow). */
function daysFrom(/** @type {Date} */ now, /** @type {Date} */ date) {
  const a = helsinkiDay(now);
  const b = helsinkiDay(date);
  return Math.round((Date.UTC(b.year, b.month - 1, b.day) - Date.UTC(a.year, a.month - 1, a.day))
    / 86_400_000);
}

/**
 * Which part of the programme a show belongs to: today (or overdue), the rest of this week
 * (Monday to Sunday), or later (also a show with no time yet).
 * @param {string | null} startsAt ISO 8601
 * @param {Date} [now]
 * @returns {DayGroup}
 */
export function dayGroup(startsAt, now = new Date()) {
  if (!startsAt) return 'later';
  const days = daysFrom(now, new Date(startsAt));
  if (days <= 0) return 'today';
  return days <= 7 - helsinkiDay(now).weekday ? 'week' : 'later';
}

/** The clock time: "14" or "14.30" (fi, sv), "14:00" (en). @param {Date} date */
function clock(date) {
  const lang = currentLang();
  const whole = date.getUTCMinutes() === 0;  // Helsinki is a whole number of hours from UTC
  const options = /** @type {Intl.DateTimeFormatOptions} */ (
    whole && lang !== 'en' ? { hour: 'numeric' } : { hour: '2-digit', minute: '2-digit' }
  );
  return new Intl.DateTimeFormat(LOCALES[lang], { timeZone: TIME_ZONE, hourCycle: 'h23', ...options })
    .format(date);
}

/**
 * When a show starts, in words: "tänään klo 14", "huomenna klo 10", else the weekday and date
 * (and the year, if not this one). '' when it has no time.
 * @param {string | null} startsAt ISO 8601
 * @param {Date} [now]
 */
export function whenInWords(startsAt, now = new Date()) {
  if (!startsAt) return '';
  const date = new Date(startsAt);
  const days = daysFrom(now, date);
  const time = clock(date);
  if (days === 0) return t('when_today', { time });
  if (days === 1) return t('when_tomorrow', { time });
  /** @type {Intl.DateTimeFormatOptions} */
  const options = { timeZone: TIME_ZONE, weekday: 'long', day: 'numeric', month: 'long' };
  if (helsinkiDay(date).year !== helsinkiDay(now).year) options.year = 'numeric';
  const day = new Intl.DateTimeFormat(LOCALES[currentLang()], options).format(date);
  return t('when_day', { day, time });
}

/** The same words starting with a capital, for the start of a line. @param {string} words */
export function capitalised(words) {
  return words.charAt(0).toLocaleUpperCase(currentLang()) + words.slice(1);
}

/**
 * A category's name in the page's language; a category the deployment added (no text for it)
 * by its own name.
 * @param {string} category
 */
export function categoryName(category) {
  const key = `category_${category.replace(/-/g, '_')}`;
  return key in TEXT.fi ? t(key) : category;
}
