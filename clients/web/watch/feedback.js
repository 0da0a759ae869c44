// @ts-check
/**
 * "Miltä esitys tuntui?": the one question after a show, asked of a viewer on the Watch page
 * (`feedback.send`) and of care-home staff on their phone for the room (`remote.feedback`; see
 * pair.js). Five large smileys named in words, an optional comment of at most 300 characters
 * counted down, "Lähetä" and "Ohita". Asked once per show on this device (localStorage), and
 * anonymous: the server keeps the score and the words, never who sent them (docs/protocol.md).
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {import('../protocol.js').Connection} Connection */

export const COMMENT_MAX = 300;
const SMILEYS = ['😞', '🙁', '😐', '🙂', '😄'];
const ASKED = 'lampio.feedback.';

/**
 * Whether this device has answered or skipped the question about ``what`` (a show's id, or a
 * screen's and a show's for the staff's phone).
 * @param {string} what
 */
export function asked(what) {
  try {
    return localStorage.getItem(ASKED + what) !== null;
  } catch {
    return false;
  }
}

/**
 * Never ask about ``what`` again on this device.
 * @param {string} what
 * @param {'sent' | 'skipped'} how
 */
export function remember(what, how) {
  try {
    localStorage.setItem(ASKED + what, how);
  } catch { /* private mode: asked again at worst */ }
}

/**
 * @typedef {object} FeedbackForm
 * @property {HTMLElement} root the form, to put on the page
 * @property {() => void} render its words in the page's language
 * @property {() => void} focus to the question
 * @property {(text: string) => void} say its status line
 */

/**
 * The question's form. Its words come from `words()` (keys of i18n.js), so one form serves the
 * viewer and the staff.
 * @param {{prefix: string, words: () => {question: string, send: string, skip: string},
 *          onSend: (score: number, comment: string) => void, onSkip: () => void,
 *          extra?: HTMLElement[], level?: string}} options prefix: for the ids of its parts;
 *   extra: more buttons after "Ohita"; level: the question's heading (`h2`)
 * @returns {FeedbackForm}
 */
export function feedbackForm({ prefix, words, onSend, onSkip, extra = [], level = 'h2' }) {
  const form = document.createElement('form');
  form.className = 'feedback-form';
  form.noValidate = true;
  const question = document.createElement(level);
  question.id = `${prefix}-question`;
  question.className = 'feedback-question';
  question.tabIndex = -1;
  form.setAttribute('aria-labelledby', question.id);
  const scores = document.createElement('div');
  scores.className = 'smileys';
  scores.setAttribute('role', 'group');
  scores.setAttribute('aria-labelledby', question.id);
  let chosen = 0;
  const buttons = SMILEYS.map((smiley, n) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'smiley';
    button.dataset.score = String(n + 1);
    button.setAttribute('aria-pressed', 'false');
    const icon = document.createElement('span');
    icon.className = 'icon';
    icon.setAttribute('aria-hidden', 'true');
    icon.textContent = smiley;
    const name = document.createElement('span');
    name.className = 'smiley-name';
    button.append(icon, name);
    button.addEventListener('click', () => {
      chosen = n + 1;
      for (const other of buttons) {
        other.setAttribute('aria-pressed', String(other === button));
      }
      status.textContent = '';
    });
    return button;
  });
  scores.append(...buttons);
  const label = document.createElement('label');
  label.htmlFor = `${prefix}-comment`;
  const comment = document.createElement('textarea');
  comment.id = `${prefix}-comment`;
  comment.className = 'text feedback-comment';
  comment.rows = 2;
  comment.maxLength = COMMENT_MAX;
  const left = document.createElement('p');
  left.id = `${prefix}-left`;
  left.className = 'help';
  comment.setAttribute('aria-describedby', left.id);
  comment.addEventListener('input', () => countDown());
  const send = document.createElement('button');
  send.type = 'submit';
  send.className = 'primary big feedback-send';
  const skip = document.createElement('button');
  skip.type = 'button';
  skip.className = 'big feedback-skip';
  skip.addEventListener('click', () => onSkip());
  const status = document.createElement('p');
  status.className = 'note';
  status.setAttribute('role', 'status');
  status.setAttribute('aria-live', 'polite');
  const actions = document.createElement('div');
  actions.className = 'feedback-actions';
  actions.append(send, skip, ...extra);
  form.append(question, scores, label, comment, left, actions, status);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!chosen) {
      status.textContent = t('fb_choose');
      buttons[0].focus();
      return;
    }
    onSend(chosen, comment.value.trim());
  });

  function countDown() {
    left.textContent = t('fb_left', { count: String(COMMENT_MAX - comment.value.length) });
  }

  function render() {
    const now = words();
    question.textContent = now.question;
    send.textContent = now.send;
    skip.textContent = now.skip;
    label.textContent = t('fb_comment');
    buttons.forEach((button, n) => {
      /** @type {HTMLElement} */ (button.querySelector('.smiley-name')).textContent = t(`fb_score_${n + 1}`);
    });
    countDown();
  }
  render();
  return {
    root: form,
    render,
    focus: () => question.focus(),
    say: (text) => { status.textContent = text; },
  };
}

/**
 * @typedef {object} Feedback
 * @property {(reason: 'ended' | 'leaving') => boolean} ask put the question, if not asked yet
 *   for this show (false: nothing to ask, leave at once)
 * @property {() => boolean} wouldAsk whether leaving now would ask (the show was seen live and
 *   not asked about yet)
 * @property {() => void} seen the viewer saw the show live or paused (leaving early asks)
 * @property {(showId: string) => void} start a new show is watched
 * @property {() => void} close take the question away (an open one counts as skipped)
 * @property {() => void} render its words in the page's language
 */

/**
 * The Watch page's question: when the show ends (`show.state` `ended`) it appears above the
 * foyer; when the viewer leaves before the end it is asked first, and "Ohita" leaves at once.
 * @param {{current: () => Connection | null, onLeave: (thanked: boolean) => void,
 *          title: () => string}} options current: the connection seated in the show; onLeave:
 *   go on leaving, after the question (thanked: an answer was sent); title: the show's title
 * @returns {Feedback}
 */
export function initFeedback({ current, onLeave, title }) {
  const el = {
    card: byId('feedback'),
    watch: byId('watch'),
    thanks: byId('feedback-thanks'),
  };
  const state = {
    show: '',
    /** @type {'' | 'ended' | 'leaving'} */ asking: '',
    live: false,
    sending: false,
  };
  const stay = document.createElement('button');
  stay.type = 'button';
  stay.className = 'big feedback-stay';
  stay.addEventListener('click', () => {
    hide();
    byId('back-button').focus();
  });
  const form = feedbackForm({
    prefix: 'fb',
    words: () => ({
      question: t('fb_question', { title: title() }),
      send: t(state.asking === 'leaving' ? 'fb_send_leave' : 'fb_send'),
      skip: t(state.asking === 'leaving' ? 'fb_skip_leave' : 'fb_skip'),
    }),
    onSend: send,
    onSkip: () => {
      const leaving = state.asking === 'leaving';
      remember(state.show, 'skipped');
      hide();
      if (leaving) onLeave(false);
      else byId('watch-title').focus();  // the focus was on the form just hidden
    },
    extra: [stay],
  });
  el.card.prepend(form.root);

  /** @param {number} score @param {string} comment */
  async function send(score, comment) {
    const connection = current();
    if (state.sending) return;
    if (!connection) {
      form.say(t('fb_failed'));
      return;
    }
    state.sending = true;
    form.say(t('fb_sending'));
    try {
      /** @type {Record<string, unknown>} */
      const fields = { score };
      if (comment) fields.comment = comment;
      await connection.request('feedback.send', fields);
    } catch (error) {
      console.warn('feedback: not sent', error);
      form.say(t('fb_failed'));
      return;
    } finally {
      state.sending = false;
    }
    remember(state.show, 'sent');
    form.say('');
    const leaving = state.asking === 'leaving';
    state.asking = '';
    delete el.watch.dataset.asking;
    form.root.hidden = true;
    if (leaving) {
      el.card.hidden = true;
      onLeave(true);
      return;
    }
    el.thanks.hidden = false;
    el.thanks.focus();
  }

  function hide() {
    state.asking = '';
    delete el.watch.dataset.asking;
    el.card.hidden = true;
  }

  function render() {
    el.thanks.textContent = t('fb_thanks');
    stay.textContent = t('fb_stay');
    stay.hidden = state.asking !== 'leaving';
    form.render();
  }

  return {
    ask(reason) {
      if (!state.show || asked(state.show) || state.asking === reason) return state.asking !== '';
      state.asking = reason;
      if (reason === 'leaving') el.watch.dataset.asking = 'leave';
      else delete el.watch.dataset.asking;
      form.root.hidden = false;
      el.thanks.hidden = true;
      el.card.hidden = false;
      render();
      // the viewer's own tap moves to the question; a show that ends does not take the focus
      // from someone typing in the chat (the status line says it ended)
      const typing = document.activeElement?.matches('input, textarea') ?? false;
      if (reason === 'leaving' || !typing) form.focus();
      return true;
    },
    wouldAsk: () => state.live && !!state.show && !asked(state.show),
    seen() { state.live = true; },
    start(showId) {
      state.show = showId;
      state.live = false;
      hide();
    },
    close() {
      if (state.asking && state.show) remember(state.show, 'skipped');
      hide();
      el.thanks.hidden = true;
    },
    render,
  };
}
