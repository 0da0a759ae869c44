// @ts-check
/**
 * The lobby's cameras on the Watch page (../cameras.js, loaded only when needed): the "Camera"
 * button beside the microphone, shown while the lobby may show cameras (before the show, in an
 * intermission) or while this member's camera is on; "show me to the performer too"; the small
 * tiles of the others in the foyer column, each with the member's name; a plain sentence whenever
 * this member's camera is on, waits its turn or was switched off. The camera is off until the
 * member turns it on, every time. A page without it (or a browser without a camera) simply
 * watches: the cameras are an extra.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { Tiles } from '../tiles.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./foyerchat.js').FoyerChat} FoyerChat */
/** @typedef {import('../cameras.js').CameraState} CameraState */
/** @typedef {import('../cameras.js').LobbyCameras} LobbyCameras */

/**
 * @typedef {object} FoyerCameras
 * @property {(connection: Connection) => Promise<void>} start follow the lobby's cameras on this
 *   connection (the camera off)
 * @property {() => void} stop leave them and release the camera
 * @property {() => LobbyCameras | null} cameras the cameras now (for tests and debugging)
 * @property {() => void} render
 */

/** @type {CameraState} */
const NONE = {
  open: false, on: false, performer: false, waiting: false, slot: null, cameras: [], off: null,
  joined: false,
};

/**
 * @param {{foyer: Pick<FoyerChat, 'lobby' | 'me' | 'members' | 'note'>}} options who sits in the
 *   lobby, and its note (where a camera switched off is told)
 * @returns {FoyerCameras}
 */
export function initFoyerCameras({ foyer }) {
  const el = {
    button: /** @type {HTMLButtonElement} */ (byId('camera-button')),
    section: byId('cameras'),
    note: byId('camera-note'),
    tiles: byId('camera-tiles'),
    performer: /** @type {HTMLButtonElement} */ (byId('camera-performer-button')),
  };

  /** @type {{cameras: LobbyCameras | null, connection: Connection | null, performer: boolean,
   *           problem: string, off: string | null, busy: boolean}} */
  const now = {
    cameras: null,
    connection: null,
    /** the member asked to be shown to the performer too (off by default) */ performer: false,
    /** a key of what went wrong with the last tap ('' when nothing) */ problem: '',
    /** the last switch-off already told */ off: null,
    busy: false,
  };

  const tiles = new Tiles(el.tiles, {
    className: 'camera-tile', idPrefix: 'camera-name-', data: 'camera',
  });

  /** @returns {CameraState} */
  function state() {
    return now.cameras?.state ?? NONE;
  }

  /** @param {Connection} connection */
  async function start(connection) {
    stop();
    now.connection = connection;
    /** @type {LobbyCameras | null} */
    let cameras = null;
    try {
      const { LobbyCameras } = await import('../cameras.js');
      if (now.connection !== connection) return;
      cameras = now.cameras = new LobbyCameras(connection, {
        onChange: render, member: foyer.me?.id ?? null,
      });
      await cameras.start();
    } catch (error) {
      console.warn('no lobby cameras', error);
      cameras?.close();
      if (now.cameras === cameras) now.cameras = null;
    }
    render();
  }

  function stop() {
    now.cameras?.close();
    now.cameras = null;
    now.connection = null;
    now.problem = '';
    render();
  }

  /** What the member reads about its own camera. */
  function noteText() {
    const camera = state();
    if (now.problem) return t(now.problem);
    if (!camera.on) return camera.open ? t('camera_help') : '';
    if (camera.waiting) return t('camera_waiting');
    // shown in the lobby: it has a tile slot there; else the performer alone sees it
    if (camera.slot === null && camera.performer) return t('camera_on_performer');
    return t(camera.performer ? 'camera_on_both' : 'camera_on_lobby');
  }

  function render() {
    const camera = state();
    const cameras = now.cameras;
    const shown = camera.joined && (camera.open || camera.on);
    el.button.hidden = !shown;
    el.button.setAttribute('aria-pressed', String(camera.on));
    el.button.disabled = now.busy;
    if (camera.on) now.performer = camera.performer;
    el.performer.hidden = !shown;
    el.performer.setAttribute('aria-pressed', String(now.performer));
    el.performer.disabled = now.busy;
    el.section.hidden = !shown && !now.problem;
    el.note.textContent = noteText();
    el.note.classList.toggle('camera-live', camera.on && !now.problem);
    // the server switched the camera off (the show began, the intermission ended): said once
    if (camera.off && camera.off !== now.off) foyer.note(t('camera_switched_off'));
    now.off = camera.off;

    /** @type {HTMLLIElement[]} */
    const items = [];
    const self = cameras?.track ? cameras.self : null;
    if (self && camera.on) {
      const known = tiles.get('self')?.video.srcObject;
      const stream = known instanceof MediaStream && known.getVideoTracks()[0] === cameras?.track
        ? known : self;
      items.push(tiles.tile('self', stream, t('camera_self')));
      tiles.get('self')?.li.classList.add('self');
    }
    for (const other of camera.cameras) {
      const name = other.name
        || foyer.members.find((member) => member.id === other.member)?.name || t('chat_someone');
      items.push(tiles.tile(String(other.slot), cameras?.stream(other.slot) ?? null, name));
    }
    tiles.show(items);
  }

  /**
   * Ask for the camera on or off (and shown to the performer or not); say in words if it failed.
   * @param {boolean} on
   * @param {boolean} performer
   */
  async function set(on, performer) {
    const cameras = now.cameras;
    if (!cameras || now.busy) return;
    now.busy = true;
    now.problem = '';
    render();
    try {
      await cameras.setCamera(on, { performer });
    } catch (error) {
      console.warn('camera', error);
      const code = /** @type {{code?: string}} */ (error).code;
      now.problem = code === 'camera_closed' ? 'camera_not_now' : 'camera_failed';
    } finally {
      now.busy = false;
    }
    render();
  }

  el.button.addEventListener('click', async () => {
    await set(!state().on, now.performer);
    el.button.focus();
  });

  el.performer.addEventListener('click', async () => {
    now.performer = !now.performer;
    const camera = state();
    render();
    // the choice applies at once to a camera that is on; else it waits for the camera
    if (camera.on) await set(camera.slot !== null || camera.waiting || now.performer, now.performer);
    el.performer.focus();
  });

  return {
    start,
    stop,
    cameras: () => now.cameras,
    render,
  };
}
