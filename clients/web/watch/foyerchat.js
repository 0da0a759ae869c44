// @ts-check
/**
 * The foyer on the Watch page: who sits in the viewer's lobby, the link and code that seat a friend
 * there, and the lobby's chat (messages in order, ours shown at once and sent again after a lost
 * connection until the server has stored them, ones the performer took away removed), and the
 * viewer's choice to show the chat or not (remembered on this device).
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError } from '../protocol.js';
import { clock, compareIds, historyStart, newClientId } from '../foyer.js';
import { keep } from './settings.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */
/** @typedef {import('./watching.js').Joined} Joined */
/** @typedef {{id: string, name: string, head_count: number, role: string}} Member */
/** @typedef {{id: string, show: string, code: string, capacity: number}} Lobby */
/**
 * A message of ours the server has not acknowledged yet (sent again after a lost connection).
 * @typedef {{clientId: string, text: string, li: HTMLLIElement, when: HTMLElement,
 *            note: HTMLElement, sending: Connection | null}} Unsent
 */

const CHAT_KEY = 'lampio.chat';

/**
 * @typedef {object} FoyerChat
 * @property {Lobby | null} lobby the lobby the viewer sits in
 * @property {Member | null} me the viewer as a member of it
 * @property {string} session what brings the viewer back as the same member
 * @property {Member[]} members who is there
 * @property {boolean | 'ticket'} removed the performer removed this viewer, or (`'ticket'`) its
 *   ticket went to another device: do not come back by ourselves
 * @property {(connection: Connection, joined: Joined) => void} enter take the seat `watch.join` gave
 * @property {(event: ServerEvent) => void} onEvent `chat.*`, `lobby.members` and `member.removed`
 * @property {(text: string) => void} note the foyer's note (a friend's lobby full or gone)
 * @property {() => void} reset forget the last show's lobby, chat and unsent messages
 * @property {() => void} renderMembers
 * @property {() => void} renderShown the chat shown or not
 */

/**
 * @param {{current: () => Connection | null, showCode: () => string}} options
 *   current: the page's connection now; showCode: the code of the show watched
 * @returns {FoyerChat}
 */
export function initFoyerChat({ current, showCode }) {
  const el = {
    watch: byId('watch'),
    chatToggle: /** @type {HTMLButtonElement} */ (byId('chat-button')),
    foyer: byId('foyer'),
    foyerNote: byId('foyer-note'),
    members: byId('members'),
    friendCode: byId('friend-code'),
    friendLink: /** @type {HTMLAnchorElement} */ (byId('friend-link')),
    copy: /** @type {HTMLButtonElement} */ (byId('copy-link')),
    copyStatus: byId('copy-status'),
    chat: /** @type {HTMLOListElement} */ (byId('chat')),
    chatEmpty: byId('chat-empty'),
    chatForm: /** @type {HTMLFormElement} */ (byId('chat-form')),
    chatInput: /** @type {HTMLInputElement} */ (byId('chat-input')),
    chatStatus: byId('chat-status'),
  };

  /** The lobby the viewer sits in, who is there, and what was said. */
  const foyer = {
    /** @type {Lobby | null} */ lobby: null,
    /** @type {Member | null} */ me: null,
    session: '',
    /** @type {Member[]} */ members: [],
    /** @type {Map<string, HTMLLIElement>} shown messages by id */ messages: new Map(),
    /** @type {Set<string>} */ deleted: new Set(),
    /** @type {Map<string, Unsent>} by client id */ unsent: new Map(),
    /** The newest chat id this page has seen: where `chat.history` resumes. */ lastSeen: '',
    /** @type {boolean | 'ticket'} removed (by the performer, or the ticket went elsewhere): do not come back by ourselves. */ removed: /** @type {boolean | 'ticket'} */ (false),
    /** The chat is shown. */ shown: localStorage.getItem(CHAT_KEY) !== 'off',
  };

  function reset() {
    foyer.lobby = null;
    foyer.me = null;
    foyer.session = '';
    foyer.members = [];
    foyer.unsent.clear();
    foyer.removed = false;
    clearChat();
    el.foyerNote.textContent = '';
    el.chatStatus.textContent = '';
    el.copyStatus.textContent = '';
  }

  function clearChat() {
    foyer.messages.clear();
    foyer.deleted.clear();
    foyer.lastSeen = '';
    el.chat.replaceChildren(...Array.from(foyer.unsent.values(), (unsent) => unsent.li));
    renderChatEmpty();
  }

  /**
   * Take a seat from `watch.join`: a first join shows the lobby's chat; coming back to the same
   * lobby adds what was said meanwhile. Either way, what had not gone out is sent (again).
   * @param {Connection} connection
   * @param {Joined} joined
   */
  function enter(connection, joined) {
    const sameLobby = foyer.lobby !== null && foyer.lobby.id === joined.lobby.id;
    foyer.lobby = joined.lobby;
    foyer.me = joined.me;
    foyer.session = joined.session;
    foyer.members = joined.members ?? [];
    renderMembers();
    renderFriend();
    if (sameLobby) {
      catchUp(connection, historyStart(foyer.lastSeen));
    } else {
      clearChat();
      for (const event of joined.chat ?? []) onChat(event);
    }
    for (const unsent of foyer.unsent.values()) send(unsent);
  }

  /** @param {ServerEvent} event */
  function onEvent(event) {
    switch (event.type) {
      case 'chat.message':
      case 'chat.deleted':
        onChat(event);
        break;
      case 'lobby.members':
        if (event.lobby === foyer.lobby?.id) {
          foyer.members = event.members ?? [];
          renderMembers();
        }
        break;
      case 'member.removed':
        if (event.member === foyer.me?.id) foyer.removed = event.reason === 'ticket' ? 'ticket' : true;
        break;
    }
  }

  function renderMembers() {
    if (!foyer.lobby) {
      el.members.textContent = '';
      return;
    }
    const names = [];
    let unnamed = 0;
    const me = foyer.members.filter((member) => member.id === foyer.me?.id);
    const others = foyer.members.filter((member) => member.id !== foyer.me?.id);
    for (const member of me) {
      names.push(member.name ? `${member.name} (${t('members_you')})` : t('members_you'));
    }
    for (const member of others) {
      if (!member.name) {
        unnamed += 1;
        continue;
      }
      const heads = member.head_count > 1 ? ` (${t('members_heads', { count: String(member.head_count) })})` : '';
      names.push(member.name + heads);
    }
    if (unnamed === 1) names.push(t('members_unnamed_one'));
    else if (unnamed > 1) names.push(t('members_unnamed', { count: String(unnamed) }));
    el.members.textContent = t('members_now', { names: names.join(', ') });
  }

  /** The link that seats a friend in this lobby. */
  function friendUrl() {
    const url = new URL('/watch', location.href);
    url.searchParams.set('code', showCode());
    url.searchParams.set('lobby', foyer.lobby?.code ?? '');
    return url.href;
  }

  function renderFriend() {
    if (!foyer.lobby) return;
    el.friendCode.textContent = foyer.lobby.code;
    el.friendLink.href = friendUrl();
    el.friendLink.textContent = friendUrl();
  }

  /**
   * What was said while we were away, page by page.
   * @param {Connection} connection
   * @param {string} after
   */
  function catchUp(connection, after) {
    connection.request('chat.history', { after }).then((reply) => {
      if (connection !== current()) return;
      const messages = reply.messages ?? [];
      for (const event of messages) onChat(event);
      const last = messages[messages.length - 1];
      if (reply.more && last) catchUp(connection, last.at_id ?? last.id);
    }, (error) => console.warn('no chat history', error));
  }

  el.copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(friendUrl());
      el.copyStatus.textContent = t('friend_copied');
    } catch {
      el.copyStatus.textContent = t('friend_copy_failed');
    }
  });

  /** @param {string | undefined} id a chat id this page has now seen */
  function seen(id) {
    if (id && compareIds(id, foyer.lastSeen) > 0) foyer.lastSeen = id;
  }

  /**
   * A chat event of our lobby: a message, or one taken away by the performer.
   * @param {ServerEvent} event
   */
  function onChat(event) {
    if (!foyer.lobby || event.lobby !== foyer.lobby.id) return;
    if (event.type === 'chat.deleted') {
      seen(event.at_id);
      foyer.deleted.add(event.id);
      foyer.messages.get(event.id)?.remove();
      foyer.messages.delete(event.id);
      renderChatEmpty();
      return;
    }
    seen(event.id);
    if (foyer.messages.has(event.id) || foyer.deleted.has(event.id)) return;
    const unsent = foyer.unsent.get(event.client_id);
    if (unsent && event.member === foyer.me?.id) {
      delivered(unsent, event.id, event.at);
      return;
    }
    const mine = event.member === foyer.me?.id;
    const { li } = messageItem(event.name, event.text, event.at, mine);
    place(li, event.id);
    foyer.messages.set(event.id, li);
    renderChatEmpty();
  }

  /**
   * One message as the list shows it: who, when, and the text (always text, never HTML).
   * @param {string} name
   * @param {string} text
   * @param {number | undefined} at
   * @param {boolean} mine
   */
  function messageItem(name, text, at, mine) {
    const li = document.createElement('li');
    li.className = mine ? 'msg mine' : 'msg';
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('strong');
    who.className = 'who';
    who.textContent = mine ? t('chat_you') : name || t('chat_someone');
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = clock(at);
    meta.append(who, ' ', when);
    const body = document.createElement('p');
    body.className = 'text';
    body.textContent = text;
    li.append(meta, body);
    return { li, meta, when };
  }

  /**
   * Put a message in its place: the list runs oldest to newest, our unsent ones last.
   * @param {HTMLLIElement} li
   * @param {string} id
   */
  function place(li, id) {
    const following = nearEnd();
    li.dataset.id = id;
    let before = null;
    for (let other = el.chat.lastElementChild; other; other = other.previousElementSibling) {
      const otherId = /** @type {HTMLElement} */ (other).dataset.id;
      if (!otherId || compareIds(otherId, id) > 0) before = other;
      else break;
    }
    el.chat.insertBefore(li, before);
    if (following) el.chat.scrollTop = el.chat.scrollHeight;
  }

  /** Whether the chat is scrolled to its end (new messages then keep it there). */
  function nearEnd() {
    return el.chat.scrollHeight - el.chat.scrollTop - el.chat.clientHeight < 80;
  }

  function renderChatEmpty() {
    el.chatEmpty.hidden = el.chat.childElementCount > 0;
  }

  el.chatForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = el.chatInput.value.trim();
    if (!text || !foyer.lobby) return;
    if (text.length > 500) {
      el.chatStatus.textContent = t('chat_too_long');
      return;
    }
    el.chatInput.value = '';
    el.chatStatus.textContent = '';
    const { li, meta, when } = messageItem(foyer.me?.name ?? '', text, undefined, true);
    li.classList.add('pending');
    const note = document.createElement('span');
    note.className = 'sending';
    note.textContent = t('chat_sending');
    meta.append(' ', note);
    el.chat.append(li);
    el.chat.scrollTop = el.chat.scrollHeight;
    renderChatEmpty();
    /** @type {Unsent} */
    const unsent = { clientId: newClientId(), text, li, when, note, sending: null };
    foyer.unsent.set(unsent.clientId, unsent);
    send(unsent);
  });

  /**
   * Send a message (again); it stays unsent, and is sent again, until the server has stored it.
   * @param {Unsent} unsent
   */
  async function send(unsent) {
    const connection = current();
    if (!connection || unsent.sending === connection) return;
    unsent.sending = connection;
    try {
      const ack = await connection.request('chat.send', {
        text: unsent.text,
        client_id: unsent.clientId,
      });
      delivered(unsent, ack.id);
    } catch (error) {
      const code = error instanceof ProtocolError ? error.code : 'error';
      if (code === 'closed') return;  // sent again once the page is back (enter)
      if (code === 'timeout' || code === 'bus_unavailable' || code === 'internal_error') {
        setTimeout(() => {
          unsent.sending = null;
          if (foyer.unsent.get(unsent.clientId) === unsent) send(unsent);
        }, 2000);
        return;
      }
      refused(unsent, code);
    }
  }

  /**
   * The server stored our message: it becomes an ordinary one, in its place.
   * @param {Unsent} unsent
   * @param {string} id
   * @param {number} [at]
   */
  function delivered(unsent, id, at) {
    if (foyer.unsent.get(unsent.clientId) !== unsent) return;
    foyer.unsent.delete(unsent.clientId);
    unsent.note.remove();
    unsent.li.classList.remove('pending');
    unsent.li.remove();
    if (foyer.messages.has(id) || foyer.deleted.has(id)) {
      renderChatEmpty();
      return;
    }
    if (at) unsent.when.textContent = clock(at);
    place(unsent.li, id);
    foyer.messages.set(id, unsent.li);
  }

  /**
   * The server refused the message: say why in words and give the text back to edit.
   * @param {Unsent} unsent
   * @param {string} code
   */
  function refused(unsent, code) {
    foyer.unsent.delete(unsent.clientId);
    unsent.li.remove();
    renderChatEmpty();
    if (!el.chatInput.value) el.chatInput.value = unsent.text;
    const known = ['chat_too_long', 'rate_limited', 'chat_muted'];
    el.chatStatus.textContent = known.includes(code) ? t(`chat_${code.replace(/^chat_/, '')}`) : t('error');
  }

  function renderShown() {
    el.foyer.hidden = !foyer.shown;
    el.chatToggle.setAttribute('aria-pressed', String(foyer.shown));
    el.watch.classList.toggle('no-chat', !foyer.shown);
  }

  el.chatToggle.addEventListener('click', () => {
    foyer.shown = !foyer.shown;
    keep(CHAT_KEY, foyer.shown ? 'on' : 'off');
    renderShown();
  });

  return {
    get lobby() { return foyer.lobby; },
    get me() { return foyer.me; },
    get session() { return foyer.session; },
    get members() { return foyer.members; },
    get removed() { return foyer.removed; },
    enter,
    onEvent,
    note(text) {
      el.foyerNote.textContent = text;
    },
    reset,
    renderMembers,
    renderShown,
  };
}
