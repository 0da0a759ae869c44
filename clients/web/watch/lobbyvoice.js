// @ts-check
/**
 * The lobby's voice on the Watch page: talk together during an intermission (../voice.js, loaded only
 * when needed), the microphone button, and a note of who is talking. A page without it (or a browser
 * without a microphone) simply watches: the voice is an extra.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./foyerchat.js').FoyerChat} FoyerChat */
/**
 * What ../voice.js's LobbyVoice tells (the lobby's voice during an intermission).
 * @typedef {{open: boolean, mic: boolean, talking: string[], stage: string | null,
 *            intermission: boolean, duck: boolean, joined?: boolean}} VoiceState
 * @typedef {{start(): Promise<void>, setMic(on: boolean): Promise<void>, close(): void,
 *            resume?(): void, readonly state: VoiceState}} Voice
 */

/**
 * @typedef {object} LobbyVoiceControls
 * @property {(connection: Connection, showState: string) => Promise<void>} start follow the
 *   lobby's voice on this connection (the show's state as joined)
 * @property {() => void} stop
 * @property {() => VoiceState} state what the voice tells now (all off without one)
 * @property {() => void} resume the viewer tapped for sound: let the voices play too
 * @property {() => void} render
 */

/**
 * @param {{foyer: Pick<FoyerChat, 'lobby' | 'me' | 'members'>, onRender: () => void}} options
 *   foyer: who sits in the lobby; onRender: after each render (the show's volume follows the voice)
 * @returns {LobbyVoiceControls}
 */
export function initLobbyVoice({ foyer, onRender }) {
  const el = {
    voiceNote: byId('voice-note'),
    mic: /** @type {HTMLButtonElement} */ (byId('mic-button')),
  };

  /** @type {{voice: Voice | null, connection: Connection | null}} */
  const talk = { voice: null, connection: null };

  /** @returns {VoiceState} */
  function state() {
    return talk.voice?.state ?? {
      open: false, mic: false, talking: [], stage: null, intermission: false, duck: false,
    };
  }

  /**
   * @param {Connection} connection
   * @param {string} showState the show's state when joined
   */
  async function start(connection, showState) {
    stop();
    talk.connection = connection;
    /** @type {Voice | null} */
    let voice = null;
    try {
      const { LobbyVoice } = await import('../voice.js');
      if (talk.connection !== connection) return;
      voice = talk.voice = new LobbyVoice(connection, {
        onChange: render, lobby: foyer.lobby?.id ?? null, member: foyer.me?.id ?? null,
        showState,
      });
      await voice.start();
    } catch (error) {
      console.warn('no lobby voice', error);
      voice?.close();
      if (talk.voice === voice) talk.voice = null;
    }
    render();
  }

  function stop() {
    talk.voice?.close();
    talk.voice = null;
    talk.connection = null;
    render();
  }

  function render() {
    const now = state();
    el.mic.hidden = !now.open || now.joined === false;
    el.mic.setAttribute('aria-pressed', String(now.mic));
    const notes = [];
    if (now.stage && now.stage === foyer.lobby?.id) notes.push(t('voice_stage'));
    else if (now.intermission) notes.push(t('voice_intermission'));
    if (!el.mic.hidden) notes.push(t(now.mic ? 'voice_mic_on' : 'voice_mic_off'));
    const talking = now.talking.map(
      (id) => foyer.members.find((member) => member.id === id)?.name || t('chat_someone'),
    );
    if (talking.length) notes.push(t('voice_talking', { names: talking.join(', ') }));
    el.voiceNote.textContent = notes.join(' ');
    onRender();
  }

  el.mic.addEventListener('click', async () => {
    const voice = talk.voice;
    if (!voice) return;
    try {
      await voice.setMic(!voice.state.mic);
    } catch (error) {
      console.warn('microphone', error);
      el.voiceNote.textContent = t('voice_failed');
      return;
    }
    render();
  });

  return {
    start,
    stop,
    state,
    resume() {
      talk.voice?.resume?.();
    },
    render,
  };
}
