// @ts-check
/**
 * The care-home room's camera on the TV (docs/screens.md): off unless staff turn it on from their
 * phone (`screen.control`'s `camera`: `off`, `lobby`, `performer`). Turned on, the TV opens the
 * foyer's cameras (./cameras.js, loaded only then) and shows the room to its lobby whenever the
 * lobby may see cameras (before and after the show, in an intermission; the server switches it
 * off when the lobby closes, and the TV turns it on again at the next opening), and with
 * `performer` to the performer at any time of the show. A line on the TV always says, in words,
 * who sees the room; with the camera off there is no camera connection at all.
 */
import { t } from './i18n.js';

/** @typedef {import('./protocol.js').Connection} Connection */
/** @typedef {import('./cameras.js').LobbyCameras} LobbyCameras */
/** @typedef {import('./cameras.js').CameraState} CameraState */

/**
 * @param {{line: HTMLElement, onChange: () => void}} options line: where the TV says who sees
 *   the room; onChange: after each change of what the line says
 */
export function initRoomCamera({ line, onChange }) {
  const room = {
    /** @type {string} what staff chose */ mode: 'off',
    /** @type {Connection | null} the seated connection the camera follows */ connection: null,
    /** @type {LobbyCameras | null} */ cameras: null,
    /** @type {CameraState | null} */ state: null,
    busy: false,
  };

  function render() {
    const state = room.state;
    let words = '';
    if (room.mode !== 'off' && state?.on) {
      if (state.waiting) words = t('screen_camera_waiting');
      else if (state.performer && state.slot !== null) words = t('screen_camera_both');
      else if (state.performer) words = t('screen_camera_performer');
      else words = t('screen_camera_lobby');
    }
    line.hidden = !words;
    if (line.textContent !== words) {
      line.textContent = words;
      onChange();
    }
  }

  function close() {
    room.cameras?.close();
    room.cameras = null;
    room.state = null;
    render();
  }

  /** Turn the camera on (or to the chosen audience) when it should be and is not. */
  async function settle() {
    const cameras = room.cameras;
    const state = room.state;
    if (!cameras || !state?.joined || room.busy) return;
    const performer = room.mode === 'performer';
    const wanted = performer || state.open;
    const right = state.on && state.performer === performer
      && (state.slot !== null || state.waiting || !state.open);
    if (!wanted || right) return;
    room.busy = true;
    try {
      await cameras.setCamera(true, { performer });
    } catch (error) {
      console.warn('the room camera stays off for now', error);
    } finally {
      room.busy = false;
    }
    render();
  }

  /**
   * Follow what staff chose on the connection the TV is seated on (null: not seated).
   * @param {Connection | null} connection
   * @param {string} mode `off`, `lobby` or `performer`
   */
  async function follow(connection, mode) {
    room.mode = ['lobby', 'performer'].includes(mode) ? mode : 'off';
    if (room.mode === 'off' || !connection) {
      room.connection = null;
      close();
      return;
    }
    if (room.connection !== connection || !room.cameras) {
      close();
      room.connection = connection;
      try {
        const { LobbyCameras } = await import('./cameras.js');
        if (room.connection !== connection || room.mode === 'off') return;
        const cameras = room.cameras = new LobbyCameras(connection, {
          onChange: (state) => {
            if (room.cameras !== cameras) return;
            room.state = state;
            render();
            settle();
          },
        });
        await cameras.start();
      } catch (error) {
        console.warn('no room camera', error);
        close();
        return;
      }
    }
    await settle();
  }

  return { follow, close };
}
