// @ts-check
/**
 * Live captions on the Watch page: the newest line a helper typed, shown over the picture unless the
 * viewer turned captions off (remembered on this device).
 */
import { byId } from '../dom.js';
import { keep } from './settings.js';

const CAPTIONS_KEY = 'lampio.captions';

/**
 * @typedef {object} Captions
 * @property {(text: string) => void} show the caption line now ('' clears it)
 * @property {() => void} render
 */

/** @returns {Captions} */
export function initCaptions() {
  const el = {
    caption: byId('caption'),
    captions: /** @type {HTMLButtonElement} */ (byId('captions-button')),
  };
  const shown = {
    on: localStorage.getItem(CAPTIONS_KEY) !== 'off',
    /** The newest caption line ('' = none). */ line: '',
  };

  function render() {
    el.caption.textContent = shown.line;
    el.caption.hidden = !shown.on || !shown.line;
    el.captions.setAttribute('aria-pressed', String(shown.on));
  }

  el.captions.addEventListener('click', () => {
    shown.on = !shown.on;
    keep(CAPTIONS_KEY, shown.on ? 'on' : 'off');
    render();
  });

  return {
    show(text) {
      shown.line = text;
      render();
    },
    render,
  };
}
