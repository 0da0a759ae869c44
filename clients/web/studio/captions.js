// @ts-check
/**
 * Live captions from the studio: a helper types a line and every viewer sees it (`caption.send`;
 * '' clears it), and the page says what viewers see now, as the server passed it on.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError } from '../protocol.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */

/**
 * @typedef {object} StudioCaptions
 * @property {(event: ServerEvent) => void} onEcho a `caption` event: what viewers see now
 */

/**
 * @param {{host: () => Connection | null}} options the host connection now
 * @returns {StudioCaptions}
 */
export function initCaptions({ host }) {
  const el = {
    captionForm: /** @type {HTMLFormElement} */ (byId('caption-form')),
    captionInput: /** @type {HTMLInputElement} */ (byId('caption-input')),
    captionClear: /** @type {HTMLButtonElement} */ (byId('caption-clear')),
    captionStatus: byId('caption-status'),
  };

  /**
   * Send a caption line to every viewer ('' clears it); say in words how it went.
   * @param {string} text
   */
  async function sendCaption(text) {
    const connection = host();
    if (!connection) {
      el.captionStatus.textContent = t('feed_offline');
      return false;
    }
    try {
      await connection.request('caption.send', { text });
      return true;
    } catch (error) {
      const code = error instanceof ProtocolError ? error.code : '';
      el.captionStatus.textContent = code === 'rate_limited' ? t('caption_wait')
        : code === 'caption_too_long' ? t('caption_too_long') : t('error');
      return false;
    }
  }

  el.captionForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = el.captionInput.value.trim();
    if (!text) return;
    if (await sendCaption(text)) el.captionInput.value = '';
  });
  el.captionClear.addEventListener('click', () => sendCaption(''));

  return {
    onEcho(event) {
      el.captionStatus.textContent = event.text
        ? t('caption_shown', { text: event.text }) : t('caption_cleared');
    },
  };
}
