// @ts-check
/**
 * The show's facts in the studio: its code, QR code and the viewers' link, the encoder settings
 * (WHIP and RTMP addresses, the stream key, which can be replaced when it has leaked), each with a
 * copy button that says what it copies.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {{stream_key: string, whip_url: string, rtmp_url: string | null, viewer_url?: string}} Links */
/** @typedef {Links & {title: string, code_display: string}} ShowFacts */

/**
 * @typedef {object} ShowLinks
 * @property {(show: ShowFacts) => void} fill show the show's facts (as the API gives them)
 * @property {() => void} renderLabels the copy buttons' and the QR code's words
 */

/**
 * @param {{showId: string, token: string}} link the show and its performer token
 * @returns {ShowLinks}
 */
export function initLinks({ showId, token }) {
  const el = {
    facts: byId('show-facts'),
    code: byId('show-code'),
    key: byId('stream-key'),
    whip: byId('whip-url'),
    rtmp: byId('rtmp-url'),
    rotate: /** @type {HTMLButtonElement} */ (byId('rotate-key')),
    keyStatus: byId('key-status'),
    viewerUrl: byId('viewer-url'),
    qr: /** @type {HTMLImageElement} */ (byId('qr')),
    copyStatus: byId('copy-status'),
  };
  const shown = { title: '' };

  /**
   * The encoder settings: WHIP and RTMP addresses and the stream key (always as text).
   * @param {Links} show
   */
  function showLinks(show) {
    if (show.viewer_url) el.viewerUrl.textContent = show.viewer_url;
    el.key.textContent = show.stream_key;
    el.whip.textContent = show.whip_url;
    el.rtmp.textContent = show.rtmp_url ?? '–';
    const rtmpCopy = /** @type {HTMLElement | null} */ (document.querySelector('[data-copy="rtmp-url"]'));
    if (rtmpCopy) rtmpCopy.hidden = !show.rtmp_url;
  }

  /** A new stream key: the old one stops working (for when it has leaked). */
  async function rotateKey() {
    el.rotate.disabled = true;
    try {
      const response = await fetch(`/api/shows/${encodeURIComponent(showId)}/stream-key`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!response.ok) throw new Error(String(response.status));
      showLinks(await response.json());
      el.keyStatus.textContent = t('key_rotated');
    } catch {
      el.keyStatus.textContent = t('error');
    } finally {
      el.rotate.disabled = false;
    }
  }

  el.rotate.addEventListener('click', rotateKey);

  for (const button of /** @type {NodeListOf<HTMLButtonElement>} */ (
    document.querySelectorAll('button[data-copy]')
  )) {
    button.addEventListener('click', async () => {
      const source = document.getElementById(button.dataset.copy ?? '');
      try {
        await navigator.clipboard.writeText(source?.textContent ?? '');
        el.copyStatus.textContent = t('copied');
      } catch {
        el.copyStatus.textContent = t('copy_failed');
      }
    });
  }

  /** The copy buttons say what they copy (four "Copy" buttons would sound alike). */
  function renderLabels() {
    for (const button of document.querySelectorAll('button[data-copy]')) {
      const label = button.closest('dd')?.previousElementSibling?.textContent ?? '';
      button.setAttribute('aria-label', `${t('copy')}: ${label}`);
    }
    el.qr.alt = t('qr_alt', { title: shown.title });
  }

  return {
    fill(show) {
      shown.title = show.title;
      el.qr.src = `/api/shows/${encodeURIComponent(showId)}/qr.svg`;
      renderLabels();
      el.code.textContent = show.code_display;
      showLinks(show);
      el.facts.hidden = false;
    },
    renderLabels,
  };
}
