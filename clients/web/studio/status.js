// @ts-check
/**
 * The studio's phase (loading, asking for the camera, ready, live, coming back…) and the show's state as
 * the server last told it: the status line and the show's state in words.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/**
 * @typedef {'loading' | 'no-link' | 'invalid' | 'asking' | 'no-camera' | 'ready' | 'starting'
 *   | 'publishing' | 'failed' | 'reconnecting' | 'ended'} Phase
 */

/**
 * @typedef {object} Status
 * @property {Phase} phase
 * @property {string} showState the show's state as the server last told it
 * @property {string} errorCode why going live failed (for the status line)
 * @property {boolean} open the show can be worked on from here (not ended, the link is right)
 * @property {(text: string) => void} say put this on the status line until the next render
 * @property {() => void} render
 */

/** @returns {Status} */
export function initStatus() {
  const el = {
    status: byId('perform-status'),
    state: byId('show-state'),
  };
  const now = {
    /** @type {Phase} */ phase: 'loading',
    showState: 'scheduled',
    errorCode: '',
  };

  /** @returns {string} the status line for the current phase */
  function statusText() {
    switch (now.phase) {
      case 'loading': return '';
      case 'no-link': return t('perform_link_missing');
      case 'invalid': return t('perform_link_invalid');
      case 'asking': return t('perform_camera_asking');
      case 'no-camera': return t('perform_no_camera');
      case 'ready': return now.showState === 'paused' ? t('perform_paused') : t('perform_ready');
      case 'starting': return t('perform_starting');
      case 'publishing': return now.showState === 'live' ? t('perform_live') : t('perform_starting');
      case 'failed': return t('perform_failed', { code: now.errorCode });
      case 'reconnecting': return t('perform_reconnecting');
      case 'ended': return t('perform_ended');
    }
  }

  return {
    get phase() { return now.phase; },
    set phase(phase) { now.phase = phase; },
    get showState() { return now.showState; },
    set showState(state) { now.showState = state; },
    get errorCode() { return now.errorCode; },
    set errorCode(code) { now.errorCode = code; },
    get open() { return !['loading', 'no-link', 'invalid', 'ended'].includes(now.phase); },
    say(text) {
      el.status.textContent = text;
    },
    render() {
      const { phase } = now;
      el.status.textContent = statusText();
      el.status.dataset.phase = phase === 'publishing' && now.showState === 'live' ? 'live' : phase;
      el.state.textContent = t('state_' + now.showState);
    },
  };
}
