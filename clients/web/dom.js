// @ts-check
/** Small helpers the pages share for finding their elements. */

/**
 * The element with this id (the pages' markup always has it).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}
