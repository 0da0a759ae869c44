// @ts-check
/**
 * A show's audience on the organiser's page ("Yleisö", `GET /api/shows/{id}/insight`): the
 * figures, then charts of the viewers, the reactions, the chat (and the lobbies' microphones, if
 * anyone talked) minute by minute and of the feedback's scores, each an inline SVG (`role="img"`,
 * named by a sentence that sums it up) with the same numbers as a real table beside it, the
 * comments, and the CSV to download. Drawn through the DOM: the CSP allows no inline script or
 * style, so sizes are SVG attributes and colours come from app.css.
 */
import { t } from '../i18n.js';

const SVG = 'http://www.w3.org/2000/svg';
const KINDS = ['applause', 'laughter', 'heart', 'bravo'];
const WIDTH = 640;
const HEIGHT = 200;
const PAD = { left: 40, right: 8, top: 12, bottom: 28 };

/**
 * @typedef {{minute: number, viewers: number, reactions: Record<string, number>,
 *            chat_messages: number, voice: number}} Minute
 * @typedef {{show: string, peak_viewers: number, average_viewers: number, joins: number,
 *            screens: number, screen_heads: number, lobbies: number,
 *            median_minutes_watched: number, timeline: Minute[],
 *            feedback: Record<string, number>, comments: string[]}} Report
 */

/**
 * @param {string} name
 * @param {Record<string, string | number>} [attributes]
 */
function svg(name, attributes = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

/**
 * A bar chart as an image with a name, and its numbers as a table in a `<details>`.
 * @param {{id: string, title: string, summary: string, labels: string[], values: number[],
 *          head: string[], rows: (string | number)[][]}} chart head and rows: the table's
 * @returns {HTMLElement}
 */
function barChart({ id, title, summary, labels, values, head, rows }) {
  const figure = document.createElement('figure');
  figure.className = 'chart';
  figure.dataset.chart = id;
  const caption = document.createElement('figcaption');
  caption.className = 'chart-title';
  caption.textContent = title;
  const image = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', class: 'chart-svg', focusable: 'false',
  });
  const name = svg('title');
  name.textContent = `${title}: ${summary}`;
  image.setAttribute('aria-label', `${title}: ${summary}`);
  image.append(name);
  const most = Math.max(1, ...values);
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  image.append(svg('line', {
    x1: PAD.left, y1: PAD.top + inner.h, x2: WIDTH - PAD.right, y2: PAD.top + inner.h,
    class: 'chart-axis',
  }));
  const top = svg('text', { x: PAD.left - 6, y: PAD.top + 10, class: 'chart-label end' });
  top.textContent = String(most);
  const zero = svg('text', { x: PAD.left - 6, y: PAD.top + inner.h, class: 'chart-label end' });
  zero.textContent = '0';
  image.append(top, zero);
  const slot = inner.w / Math.max(1, values.length);
  const every = Math.max(1, Math.ceil(values.length / 12));  // at most a dozen labels below
  values.forEach((value, n) => {
    const height = (value / most) * inner.h;
    const bar = Math.max(1, Math.min(slot * 0.7, 48));  // a few minutes: bars, not walls
    const middle = PAD.left + n * slot + slot / 2;
    image.append(svg('rect', {
      x: (middle - bar / 2).toFixed(1), y: (PAD.top + inner.h - height).toFixed(1),
      width: bar.toFixed(1), height: height.toFixed(1), class: 'chart-bar',
    }));
    if (n % every === 0) {
      const label = svg('text', {
        x: middle.toFixed(1), y: HEIGHT - 8, class: 'chart-label middle',
      });
      label.textContent = labels[n];
      image.append(label);
    }
  });
  const details = document.createElement('details');
  details.className = 'chart-table';
  const open = document.createElement('summary');
  open.textContent = t('org_chart_table', { title });
  const table = document.createElement('table');
  table.dataset.table = id;
  const tableCaption = document.createElement('caption');
  tableCaption.className = 'sr-only';
  tableCaption.textContent = title;
  const thead = document.createElement('thead');
  const headRow = document.createElement('tr');
  headRow.append(...head.map((text) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = text;
    return th;
  }));
  thead.append(headRow);
  const tbody = document.createElement('tbody');
  tbody.append(...rows.map((row) => {
    const tr = document.createElement('tr');
    tr.append(...row.map((cell, n) => {
      const td = document.createElement(n === 0 ? 'th' : 'td');
      if (n === 0) /** @type {HTMLTableCellElement} */ (td).scope = 'row';
      td.textContent = String(cell);
      return td;
    }));
    return tr;
  }));
  table.append(tableCaption, thead, tbody);
  // a narrow screen scrolls a wide table within its own box (WCAG 1.4.10 lets data tables keep
  // their two dimensions); the box takes the focus, so the keyboard scrolls it too
  const scroller = document.createElement('div');
  scroller.className = 'table-scroll';
  scroller.tabIndex = 0;
  scroller.setAttribute('role', 'region');
  scroller.setAttribute('aria-label', title);
  scroller.append(table);
  details.append(open, scroller);
  figure.append(caption, image, details);
  return figure;
}

/**
 * The busiest minute of a series, in words.
 * @param {number[]} values
 * @param {number[]} minutes
 * @param {string} none the words when everything is 0
 */
function busiest(values, minutes, none) {
  const most = Math.max(0, ...values);
  if (!most) return none;
  const at = minutes[values.indexOf(most)];
  return t('org_chart_peak', { count: String(most), minute: String(at), minutes: String(values.length) });
}

/**
 * The audience section of one show, from its report.
 * @param {Report} report
 * @param {string} titleText the show's title
 * @param {string} csvUrl the CSV, fetched with the key, as an object URL ('' while loading)
 * @returns {HTMLElement}
 */
export function insightView(report, titleText, csvUrl) {
  const section = document.createElement('section');
  section.className = 'org-insight';
  section.setAttribute('aria-labelledby', `insight-${report.show}`);
  const heading = document.createElement('h4');
  heading.id = `insight-${report.show}`;
  heading.tabIndex = -1;
  heading.textContent = t('org_insight_title', { title: titleText });
  section.append(heading);

  const facts = document.createElement('dl');
  facts.className = 'facts insight-facts';
  for (const [key, value] of /** @type {[string, number][]} */ ([
    ['org_insight_peak', report.peak_viewers],
    ['org_insight_average', report.average_viewers],
    ['org_insight_joins', report.joins],
    ['org_insight_screens', report.screens],
    ['org_insight_screen_heads', report.screen_heads],
    ['org_insight_lobbies', report.lobbies],
    ['org_insight_median', report.median_minutes_watched],
  ])) {
    const dt = document.createElement('dt');
    dt.textContent = t(key);
    const dd = document.createElement('dd');
    dd.textContent = String(value);
    facts.append(dt, dd);
  }
  section.append(facts);

  const timeline = report.timeline;
  const minutes = timeline.map((m) => m.minute);
  const labels = minutes.map(String);
  const minuteHead = t('org_chart_minute');
  if (!timeline.length) {
    const empty = document.createElement('p');
    empty.className = 'help';
    empty.textContent = t('org_insight_nothing');
    section.append(empty);
  } else {
    const viewers = timeline.map((m) => m.viewers);
    section.append(barChart({
      id: 'viewers',
      title: t('org_chart_viewers'),
      summary: busiest(viewers, minutes, t('org_chart_none')),
      labels, values: viewers,
      head: [minuteHead, t('org_chart_viewers_col')],
      rows: timeline.map((m) => [m.minute, m.viewers]),
    }));
    const reacted = timeline.map((m) => KINDS.reduce((sum, k) => sum + (m.reactions[k] ?? 0), 0));
    section.append(barChart({
      id: 'reactions',
      title: t('org_chart_reactions'),
      summary: busiest(reacted, minutes, t('org_chart_none')),
      labels, values: reacted,
      head: [minuteHead, ...KINDS.map((k) => t(`meter_${k}`)), t('org_chart_total')],
      rows: timeline.map((m, n) => [m.minute, ...KINDS.map((k) => m.reactions[k] ?? 0), reacted[n]]),
    }));
    const chat = timeline.map((m) => m.chat_messages);
    section.append(barChart({
      id: 'chat',
      title: t('org_chart_chat'),
      summary: busiest(chat, minutes, t('org_chart_none')),
      labels, values: chat,
      head: [minuteHead, t('org_chart_chat_col')],
      rows: timeline.map((m) => [m.minute, m.chat_messages]),
    }));
    const voice = timeline.map((m) => m.voice);
    if (voice.some(Boolean)) {
      section.append(barChart({
        id: 'voice',
        title: t('org_chart_voice'),
        summary: busiest(voice, minutes, t('org_chart_none')),
        labels, values: voice,
        head: [minuteHead, t('org_chart_voice_col')],
        rows: timeline.map((m) => [m.minute, m.voice]),
      }));
    }
  }

  const scores = ['1', '2', '3', '4', '5'];
  const answers = scores.map((s) => report.feedback[s] ?? 0);
  const total = answers.reduce((a, b) => a + b, 0);
  section.append(barChart({
    id: 'feedback',
    title: t('org_chart_feedback'),
    summary: total
      ? t('org_chart_feedback_sum', {
        count: String(total),
        average: (answers.reduce((sum, n, i) => sum + n * (i + 1), 0) / total).toFixed(1),
      })
      : t('org_chart_feedback_none'),
    labels: scores,
    values: answers,
    head: [t('org_chart_score'), t('org_chart_answers')],
    rows: scores.map((s, n) => [`${s} – ${t(`fb_score_${s}`)}`, answers[n]]),
  }));

  const commentsTitle = document.createElement('h5');
  commentsTitle.textContent = t('org_insight_comments', { count: String(report.comments.length) });
  section.append(commentsTitle);
  if (report.comments.length) {
    const list = document.createElement('ul');
    list.className = 'insight-comments';
    list.append(...report.comments.map((text) => {
      const li = document.createElement('li');
      li.textContent = text;  // always text, never HTML
      return li;
    }));
    section.append(list);
  }
  const download = document.createElement('a');
  download.className = 'button insight-csv';
  download.textContent = t('org_insight_csv');
  download.download = 'yleiso.csv';
  if (csvUrl) download.href = csvUrl;
  else download.setAttribute('aria-disabled', 'true');
  section.append(download);
  return section;
}
