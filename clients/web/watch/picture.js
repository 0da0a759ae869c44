// @ts-check
/**
 * The picture on a weak link (docs/protocol.md, `watch.quality`, `watch.picture`, `watch.sound`):
 * the page watches its own decoded frames, and a viewer whose picture keeps stopping is offered
 * the sound alone in plain words; a viewer whose picture the node made smaller may ask for the
 * sharpest picture instead ("best picture"), and back; both choices are kept on this device. The
 * state of the picture is never a mystery: a calm line says when the picture is off or smaller
 * because the connection is weak, and when even the sound comes lighter.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { keep } from './settings.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./showview.js').ShowView} ShowView */

const CHOICE_KEY = 'lampio.picture';
/** `best`: the sharpest picture always (`watch.quality {picture: 'best'}`); absent: the node's. */
const SHARPEST_KEY = 'lampio.picture.size';
/** Seconds between looks at the decoded frames. */
const LOOK = 1;
/** A picture that shows no new frame for this many seconds has stopped. */
const STALL_S = 2;
/** Stops within this many seconds that make the page offer the sound alone. */
const STALL_WINDOW_S = 60;
const STALLS_TO_OFFER = 2;
/** One stop this long is enough to offer it. */
const LONG_STALL_S = 6;

/**
 * @param {{view: ShowView, current: () => Connection | null}} options
 * @returns {{quality: () => {video?: boolean, picture?: string}, render: () => void}} quality:
 *   what the next `watch.start` asks for
 */
export function initPicture({ view, current }) {
  const box = document.createElement('div');
  box.id = 'picture-note';
  box.className = 'picture-note';
  box.hidden = true;
  const line = document.createElement('p');
  line.id = 'picture-line';
  line.setAttribute('role', 'status');
  line.setAttribute('aria-live', 'polite');
  const soundOnly = document.createElement('button');
  soundOnly.type = 'button';
  soundOnly.id = 'sound-only-button';
  soundOnly.className = 'primary';
  const bestPicture = document.createElement('button');
  bestPicture.type = 'button';
  bestPicture.id = 'best-picture-button';
  const sharpest = document.createElement('button');
  sharpest.type = 'button';
  sharpest.id = 'sharpest-picture-button';
  const fitted = document.createElement('button');
  fitted.type = 'button';
  fitted.id = 'fitted-picture-button';
  box.append(line, soundOnly, bestPicture, sharpest, fitted);
  byId('watch-news').after(box);  // its own row of the show view (app.css: pic)

  // The same choices at any time, folded away beside "watch with a friend": three large radios.
  const settings = document.createElement('details');
  settings.id = 'picture-settings';
  settings.className = 'friend picture-settings';
  const summary = document.createElement('summary');
  const group = document.createElement('fieldset');
  const legend = document.createElement('legend');
  legend.className = 'sr-only';
  group.append(legend);
  /** @type {Record<'auto' | 'best' | 'sound', {input: HTMLInputElement, text: HTMLSpanElement}>} */
  const radios = /** @type {any} */ ({});
  for (const value of /** @type {const} */ (['auto', 'best', 'sound'])) {
    const label = document.createElement('label');
    label.className = 'choice';
    const input = document.createElement('input');
    input.type = 'radio';
    input.name = 'picture-choice';
    input.value = value;
    input.id = `picture-choice-${value}`;
    const text = document.createElement('span');
    label.append(input, text);
    group.append(label);
    radios[value] = { input, text };
    input.addEventListener('change', () => {
      if (!input.checked) return;
      if (value === 'sound') choose(false, input);
      else setChoice({ soundOnly: false, sharpest: value === 'best' }, input);
    });
  }
  settings.append(summary, group);
  document.querySelector('#foyer .friend')?.after(settings);

  const state = {
    /** The viewer chose the sound alone (kept on this device). */
    soundOnly: localStorage.getItem(CHOICE_KEY) === 'sound',
    /** The offer of the sound alone is shown (the picture kept stopping). */
    offered: false,
    /** The viewer said to keep the picture: not offered again during this visit. */
    declined: false,
    /** @type {string} the smaller picture the node sends for a weak link ("original": none) */
    rendition: 'original',
    /** The viewer asked for the sharpest picture always (kept on this device). */
    sharpest: localStorage.getItem(SHARPEST_KEY) === 'best',
    /** The node sends the sound alone lighter: the link cannot carry even the original sound. */
    lighterSound: false,
    /** @type {number[]} when the picture stopped (ms) */ stalls: [],
    frames: 0,
    /** @type {number} the last time frames were seen growing (ms) */ moving: 0,
    stalled: false,
    /** @type {Connection | null} */ followed: null,
    /** @type {(() => void) | null} */ unfollow: null,
  };

  function render() {
    const live = view.state === 'live';
    let words = '';
    if (state.soundOnly) {
      words = t('picture_sound_only');
      if (state.lighterSound) words += ` ${t('picture_sound_lighter')}`;
    } else if (state.offered) words = t('picture_offer');
    else if (state.sharpest) words = t('picture_sharpest');
    else if (state.rendition !== 'original') words = t('picture_smaller');
    box.hidden = !live || !words;
    line.textContent = words;
    soundOnly.textContent = t('picture_choose_sound');
    bestPicture.textContent = t('picture_choose_best');
    sharpest.textContent = t('picture_choose_sharpest');
    fitted.textContent = t('picture_choose_fitted');
    soundOnly.hidden = state.soundOnly || !state.offered;
    bestPicture.hidden = !state.soundOnly && !state.offered;
    const pictureShown = !state.soundOnly && !state.offered;
    sharpest.hidden = !pictureShown || state.sharpest || state.rendition === 'original';
    fitted.hidden = !pictureShown || !state.sharpest;
    summary.textContent = t('picture_settings');
    legend.textContent = t('picture_settings');
    radios.auto.text.textContent = t('picture_setting_auto');
    radios.best.text.textContent = t('picture_setting_best');
    radios.sound.text.textContent = t('picture_setting_sound');
    const chosen = state.soundOnly ? 'sound' : state.sharpest ? 'best' : 'auto';
    radios[chosen].input.checked = true;
  }

  /**
   * The viewer's choice: the sound alone, and (with the picture) the sharpest picture always or
   * the one the connection carries; kept on this device and told to the node at once.
   * @param {{soundOnly: boolean, sharpest: boolean}} choice
   * @param {HTMLElement} next what takes the focus afterwards (if it is still shown)
   */
  async function setChoice({ soundOnly: alone, sharpest: best }, next) {
    const fields = {};
    if (alone !== state.soundOnly) {
      state.soundOnly = alone;
      state.offered = false;
      if (!alone) state.declined = true;
      state.stalls = [];
      keep(CHOICE_KEY, alone ? 'sound' : 'best');
      Object.assign(fields, { video: !alone });
    }
    if (best !== state.sharpest) {
      state.sharpest = best;
      if (best) keep(SHARPEST_KEY, 'best');
      else {
        try { localStorage.removeItem(SHARPEST_KEY); } catch { /* not remembered */ }
      }
      Object.assign(fields, { picture: best ? 'best' : 'auto' });
    }
    render();
    const connection = current();
    if (connection && view.pc && Object.keys(fields).length) {
      await connection.request('watch.quality', fields).catch((error) => {
        console.warn('the picture choice did not reach the server', error);
      });
    }
    focusAfter(next);
  }

  /** @param {boolean} best the sharpest picture always, or the one the connection carries */
  function chooseSize(best) {
    return setChoice({ soundOnly: false, sharpest: best }, best ? fitted : sharpest);
  }

  /**
   * Focus what follows a choice; where the note went away with it, the first reaction button
   * (the show's main action), so the focus is never lost on the page.
   * @param {HTMLElement} next
   */
  function focusAfter(next) {
    const shown = !next.hidden && (settings.contains(next) ? settings.open : !box.hidden);
    if (shown) next.focus();
    else /** @type {HTMLElement | null} */ (document.querySelector('#reactions .react'))?.focus();
  }

  /**
   * @param {boolean} video
   * @param {HTMLElement} [next]
   */
  async function choose(video, next) {
    const after = next ?? (video ? soundOnly : bestPicture);
    await setChoice({ soundOnly: !video, sharpest: state.sharpest }, after);
  }

  soundOnly.addEventListener('click', () => { choose(false); });
  bestPicture.addEventListener('click', () => { choose(true); });
  sharpest.addEventListener('click', () => { chooseSize(true); });
  fitted.addEventListener('click', () => { chooseSize(false); });

  /** Follow the server's word on which picture this viewer gets. */
  function follow() {
    const connection = current();
    if (connection === state.followed) return;
    state.unfollow?.();
    state.followed = connection;
    state.rendition = 'original';
    state.lighterSound = false;
    if (!connection) {
      state.unfollow = null;
      return;
    }
    const offs = [
      connection.on('watch.picture', (event) => {
        // a smaller picture the viewer did not choose: the link is weak, and the page says so
        const smaller = String(event.picture ?? 'original') !== 'original';
        state.rendition = smaller && event.reason !== 'chosen' ? String(event.picture) : 'original';
        render();
      }),
      connection.on('watch.sound', (event) => {
        state.lighterSound = String(event.sound ?? 'original') !== 'original';
        render();
      }),
    ];
    state.unfollow = () => { offs.forEach((off) => off()); };
  }

  async function look() {
    follow();
    const pc = view.pc;
    if (view.state !== 'live' || !pc || state.soundOnly || pc.connectionState !== 'connected') {
      state.moving = Date.now();
      state.stalled = false;
      render();
      return;
    }
    let frames = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') frames += report.framesDecoded ?? 0;
    });
    const now = Date.now();
    if (frames !== state.frames || frames === 0) {
      state.frames = frames;
      state.moving = now;
      state.stalled = false;
      return;
    }
    const still = (now - state.moving) / 1000;
    if (!state.stalled && still >= STALL_S) {
      state.stalled = true;
      state.stalls.push(now);
    }
    state.stalls = state.stalls.filter((at) => now - at <= STALL_WINDOW_S * 1000);
    if (!state.declined && !state.offered
        && (state.stalls.length >= STALLS_TO_OFFER || still >= LONG_STALL_S)) {
      state.offered = true;
      render();
    }
  }

  setInterval(() => { look().catch(() => { /* closed meanwhile */ }); }, LOOK * 1000);

  return {
    quality: () => ({
      ...(state.soundOnly ? { video: false } : {}),
      ...(state.sharpest ? { picture: 'best' } : {}),
    }),
    render,
  };
}
