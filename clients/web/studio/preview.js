// @ts-check
/**
 * The studio's camera and microphone: asked for with music in mind (the sound as played, no noise
 * suppression or gain riding), shown in the preview, and chosen from the lists of devices; another
 * choice changes the preview and, while live, what the audience gets.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/**
 * @typedef {object} Preview
 * @property {MediaStream | null} stream the camera and microphone in use
 * @property {() => Promise<void>} open ask for them and show the preview (throws if refused)
 * @property {() => Promise<void>} listDevices fill the camera and microphone choices
 * @property {() => void} stop stop the camera and microphone
 */

/**
 * @param {{senders: () => RTCRtpSender[], say: (text: string) => void}} options
 *   senders: what sends the tracks to the audience now (none when not live); say: the status line
 * @returns {Preview}
 */
export function initPreview({ senders, say }) {
  const el = {
    stage: byId('stage'),
    preview: /** @type {HTMLVideoElement} */ (byId('preview')),
    devices: byId('devices'),
    camera: /** @type {HTMLSelectElement} */ (byId('camera')),
    microphone: /** @type {HTMLSelectElement} */ (byId('microphone')),
  };

  /** @type {{stream: MediaStream | null}} */
  const media = { stream: null };

  /** The constraints of the chosen devices (music: the sound as played, no gain riding). */
  function mediaConstraints() {
    const camera = el.camera.value;
    const microphone = el.microphone.value;
    return {
      video: {
        width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25 },
        ...(camera ? { deviceId: { exact: camera } } : {}),
      },
      audio: {
        echoCancellation: true, noiseSuppression: false, autoGainControl: false,
        ...(microphone ? { deviceId: { exact: microphone } } : {}),
      },
    };
  }

  /** Fill the camera and microphone choices, the ones in use chosen. */
  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const inUse = new Set(media.stream?.getTracks().map((track) => track.getSettings().deviceId));
    for (const [select, kind, key] of /** @type {const} */ ([
      [el.camera, 'videoinput', 'camera_n'], [el.microphone, 'audioinput', 'microphone_n'],
    ])) {
      const options = devices.filter((device) => device.kind === kind).map((device, n) => {
        const option = document.createElement('option');
        option.value = device.deviceId;
        option.textContent = device.label || t(key, { n: String(n + 1) });  // device names as text
        option.selected = inUse.has(device.deviceId);
        return option;
      });
      select.replaceChildren(...options);
    }
    el.devices.hidden = false;
  }

  /** Another camera or microphone: the preview and, while live, what the audience gets. */
  async function switchDevices() {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(mediaConstraints());
    } catch (error) {
      console.error('could not switch devices', error);
      say(t('perform_no_camera'));
      return;
    }
    const old = media.stream;
    media.stream = stream;
    el.preview.srcObject = stream;
    for (const sender of senders()) {
      const kind = sender.track?.kind;
      const track = stream.getTracks().find((candidate) => candidate.kind === kind);
      if (track) await sender.replaceTrack(track);
    }
    for (const track of old?.getTracks() ?? []) track.stop();
  }

  el.camera.addEventListener('change', switchDevices);
  el.microphone.addEventListener('change', switchDevices);

  return {
    get stream() { return media.stream; },
    async open() {
      // Music: keep the sound as played (no noise suppression or gain riding).
      media.stream = await navigator.mediaDevices.getUserMedia(mediaConstraints());
      el.preview.srcObject = media.stream;
      el.stage.hidden = false;
    },
    listDevices,
    stop() {
      for (const track of media.stream?.getTracks() ?? []) track.stop();
    },
  };
}
