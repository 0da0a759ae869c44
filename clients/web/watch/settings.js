// @ts-check
/**
 * The viewer's own choices remembered on this device (volume, captions, the chat shown or not):
 * read with a fallback, kept where the browser allows it (private mode: for this visit only).
 */

/**
 * A number the viewer chose earlier, or the default.
 * @param {string} key
 * @param {number} fallback
 * @returns {number}
 */
export function readNumber(key, fallback) {
  const value = Number(localStorage.getItem(key));
  return localStorage.getItem(key) !== null && Number.isFinite(value) ? value : fallback;
}

/**
 * Remember a setting on this device (private mode: for this visit only).
 * @param {string} key
 * @param {string} value
 */
export function keep(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch { /* not remembered */ }
}
