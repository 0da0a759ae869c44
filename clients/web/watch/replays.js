// @ts-check
/**
 * "Watch again" on the Watch page: ended shows with a recording (`GET /api/recordings`) as large
 * cards below the programme, and a player for one of them with its captions track and large
 * buttons (play/pause, 30 s back and forward, volume in steps), in place of the programme.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {{media_url: string, media_type: string, captions_url: string,
 *             duration_s: number, expires_at: string}} RecordingInfo */
/** @typedef {{id: string, title: string, performer?: string, language?: string,
 *             recording: RecordingInfo}} Replay */

const STEP_SECONDS = 30;
const VOLUME_STEP = 0.2;

/** @param {number} seconds */
function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds || 0));
  const minutes = Math.floor(whole / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return minutes >= 60
    ? `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, '0')}:${rest}`
    : `${minutes}:${rest}`;
}

/**
 * @param {{front: HTMLElement}} options the programme, hidden while a recording plays
 */
export function initReplays({ front }) {
  const el = {
    section: byId('again'),
    list: /** @type {HTMLUListElement} */ (byId('again-list')),
    player: byId('replay'),
    title: byId('replay-title'),
    video: /** @type {HTMLVideoElement} */ (byId('replay-video')),
    play: /** @type {HTMLButtonElement} */ (byId('replay-play')),
    position: byId('replay-position'),
    volume: byId('replay-volume'),
    back: byId('replay-back'),
  };
  /** @type {Replay[]} */
  let replays = [];
  /** @type {Replay | null} */
  let playing = null;

  /** @param {Replay} replay */
  function card(replay) {
    const li = document.createElement('li');
    li.className = 'show-card state-ended';
    const title = document.createElement('h3');
    title.textContent = replay.title;
    if (replay.language) title.lang = replay.language;
    li.append(title);
    if (replay.performer) {
      const performer = document.createElement('p');
      performer.className = 'performer';
      performer.textContent = replay.performer;
      li.append(performer);
    }
    const length = document.createElement('p');
    length.className = 'when';
    length.textContent = t('again_length', {
      minutes: String(Math.max(1, Math.round(replay.recording.duration_s / 60))),
    });
    const until = document.createElement('p');
    until.className = 'where';
    until.textContent = t('again_until', {
      date: new Date(replay.recording.expires_at).toLocaleDateString(document.documentElement.lang),
    });
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'primary big';
    button.textContent = t('again_watch');
    button.setAttribute('aria-label', `${t('again_watch')}: ${replay.title}`);
    button.addEventListener('click', () => open(replay));
    li.append(length, until, button);
    return li;
  }

  function renderControls() {
    el.play.textContent = el.video.paused ? t('again_play') : t('again_pause');
    el.position.textContent = t('again_position', {
      at: clock(el.video.currentTime),
      length: clock(playing ? playing.recording.duration_s : el.video.duration),
    });
    el.volume.textContent = t('again_volume', { percent: String(Math.round(el.video.volume * 100)) });
  }

  function render() {
    el.section.hidden = replays.length === 0;
    el.list.replaceChildren(...replays.map(card));
    if (playing) {
      const track = el.video.querySelector('track');
      if (track) track.label = t('again_captions');
      renderControls();
    }
  }

  /** @param {Replay} replay */
  function open(replay) {
    playing = replay;
    front.hidden = true;
    el.player.hidden = false;
    el.title.textContent = replay.title;
    if (replay.language) el.title.lang = replay.language;
    const track = document.createElement('track');
    track.kind = 'captions';
    track.src = replay.recording.captions_url;
    track.srclang = replay.language || 'fi';
    track.label = t('again_captions');
    track.default = true;
    const source = document.createElement('source');
    source.src = replay.recording.media_url;
    source.type = replay.recording.media_type;
    el.video.replaceChildren(source, track);
    el.video.load();
    if (el.video.textTracks[0]) el.video.textTracks[0].mode = 'showing';
    renderControls();
    el.title.focus();
    el.video.play().catch(() => renderControls());  // without a tap the browser may wait
  }

  function close() {
    el.video.pause();
    el.video.replaceChildren();
    el.video.removeAttribute('src');
    el.video.load();
    playing = null;
    el.player.hidden = true;
    front.hidden = false;
  }

  /** @param {number} seconds */
  function seek(seconds) {
    const end = Number.isFinite(el.video.duration) ? el.video.duration : Infinity;
    el.video.currentTime = Math.min(end, Math.max(0, el.video.currentTime + seconds));
    renderControls();
  }

  /** @param {number} step */
  function louder(step) {
    el.video.volume = Math.min(1, Math.max(0, Math.round((el.video.volume + step) * 10) / 10));
    el.video.muted = false;
    renderControls();
  }

  el.play.addEventListener('click', () => {
    if (el.video.paused) el.video.play().catch(() => renderControls());
    else el.video.pause();
  });
  byId('replay-back30').addEventListener('click', () => seek(-STEP_SECONDS));
  byId('replay-forward30').addEventListener('click', () => seek(STEP_SECONDS));
  byId('replay-quieter').addEventListener('click', () => louder(-VOLUME_STEP));
  byId('replay-louder').addEventListener('click', () => louder(VOLUME_STEP));
  el.back.addEventListener('click', () => {
    const id = playing?.id;
    close();
    const again = id && el.list.querySelector('button');
    if (again) /** @type {HTMLElement} */ (again).focus();
  });
  for (const event of ['play', 'pause', 'timeupdate', 'volumechange', 'loadedmetadata']) {
    el.video.addEventListener(event, renderControls);
  }

  async function load() {
    try {
      const response = await fetch('/api/recordings');
      if (!response.ok) return;
      replays = (await response.json()).recordings;
    } catch {
      return;  // the list stays as it was
    }
    render();
  }

  return { load, render };
}
