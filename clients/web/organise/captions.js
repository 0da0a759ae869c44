// @ts-check
/**
 * Recordings that still lack captions, on the organiser's page: a recording left online must be
 * captioned within 14 days of the show (`GET /api/recordings` with the key: `captions_due`,
 * `captions_days_left`). Each with its deadline and a form for WebVTT, a file or pasted text, sent
 * as `PUT /api/shows/{id}/captions` (`text/vtt`); a captioned recording leaves the list.
 */
import { t } from '../i18n.js';

/**
 * @typedef {{id: string, title: string, language?: string,
 *            recording: {captioned: boolean, cues: number, captions_due: string,
 *                        captions_days_left: number, duration_s: number}}} OrganisedRecording
 * @typedef {object} CaptionsDue
 * @property {() => Promise<void>} load fetch the list again
 * @property {() => void} render the list in the page's language
 * @property {() => void} clear forget the list (signed out)
 */

/**
 * @param {{list: HTMLElement, empty: HTMLElement, status: HTMLElement,
 *          get: (path: string) => Promise<any>,
 *          put: (path: string, vtt: string) => Promise<any>,
 *          words: (error: unknown) => string}} options
 * @returns {CaptionsDue}
 */
export function initCaptionsDue({ list, empty, status, get, put, words }) {
  /** @type {OrganisedRecording[]} */
  let due = [];

  async function load() {
    try {
      const found = /** @type {OrganisedRecording[]} */ ((await get('/api/recordings')).recordings);
      due = found.filter((r) => !r.recording.captioned)
        .sort((a, b) => a.recording.captions_days_left - b.recording.captions_days_left);
    } catch (error) {
      status.textContent = words(error);
    }
    render();
  }

  /** @param {OrganisedRecording} entry */
  function item(entry) {
    const li = document.createElement('li');
    li.className = 'org-key captions-due';
    li.dataset.show = entry.id;
    const title = document.createElement('h3');
    title.textContent = entry.title;
    if (entry.language) title.lang = entry.language;
    const when = document.createElement('p');
    when.className = 'captions-left';
    const deadline = new Date(entry.recording.captions_due).toLocaleDateString(
      document.documentElement.lang, { dateStyle: 'long' },
    );
    const left = entry.recording.captions_days_left;
    when.textContent = left > 0
      ? t('org_captions_left', { count: String(left), date: deadline })
      : t('org_captions_late', { date: deadline });
    if (left <= 3) when.classList.add('urgent');
    const form = document.createElement('form');
    form.className = 'org-form captions-form';
    form.noValidate = true;
    const fileId = `vtt-file-${entry.id}`;
    const textId = `vtt-text-${entry.id}`;
    const fileLabel = document.createElement('label');
    fileLabel.htmlFor = fileId;
    fileLabel.textContent = t('org_captions_file');
    const file = document.createElement('input');
    file.type = 'file';
    file.id = fileId;
    file.accept = '.vtt,text/vtt';
    file.className = 'text wide';
    const textLabel = document.createElement('label');
    textLabel.htmlFor = textId;
    textLabel.className = 'second';
    textLabel.textContent = t('org_captions_paste');
    const text = document.createElement('textarea');
    text.id = textId;
    text.rows = 4;
    text.className = 'text wide';
    text.placeholder = 'WEBVTT\n\n00:00.000 --> 00:04.000\n…';
    const save = document.createElement('button');
    save.type = 'submit';
    save.className = 'primary big';
    save.textContent = t('org_captions_save');
    form.append(fileLabel, file, textLabel, text, save);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const chosen = file.files?.[0];
      const vtt = chosen ? await chosen.text() : text.value;
      if (!vtt.trim()) {
        status.textContent = t('org_captions_missing');
        text.focus();
        return;
      }
      status.textContent = t('org_saving');
      try {
        await put(`/api/shows/${encodeURIComponent(entry.id)}/captions`, vtt);
        status.textContent = t('org_captions_saved', { title: entry.title });
        await load();
      } catch (error) {
        const code = /** @type {{code?: string}} */ (error).code;
        status.textContent = code === 'invalid_captions' ? t('org_captions_invalid') : words(error);
      }
    });
    li.append(title, when, form);
    return li;
  }

  function render() {
    list.replaceChildren(...due.map(item));
    empty.hidden = due.length > 0;
  }

  return {
    load,
    render,
    clear() {
      due = [];
      status.textContent = '';
      render();
    },
  };
}
