// @ts-check
/** UI text of the organise pages, in Finnish, Swedish and English (merged into i18n.js TEXT). */

/** @type {Record<'fi' | 'sv' | 'en', Record<string, string>>} */
export default {
  fi: {},
  sv: {},
  en: {},
};
