// @ts-check
/**
 * The chat of every lobby in the studio, newest first, with moderation: delete a message
 * (`chat.delete`), pause a viewer's chat (`chat.mute`), or remove a viewer from the show after
 * asking (`viewer.remove`). Each button says what it does and which message it acts on.
 */
import { t } from '../i18n.js';
import { byId } from '../dom.js';
import { ProtocolError } from '../protocol.js';
import { clock } from '../foyer.js';

/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('../protocol.js').ServerEvent} ServerEvent */
/** @typedef {import('./lobbynames.js').LobbyNames} LobbyNames */

const FEED_MAX = 200;

/**
 * A button that says what it does, with the message it acts on as its description.
 * @param {string} key the text's key
 * @param {string} describedBy
 * @param {() => void} action
 */
function feedButton(key, describedBy, action) {
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.t = key;
  button.textContent = t(key);
  button.setAttribute('aria-describedby', describedBy);
  button.addEventListener('click', action);
  return button;
}

/**
 * @typedef {object} Moderation
 * @property {(event: ServerEvent) => void} onMessage a `chat.message` of any lobby
 * @property {(event: ServerEvent) => void} onDeleted a `chat.deleted`
 * @property {() => void} render every message's labels in the page's language
 */

/**
 * @param {{host: () => Connection | null, names: LobbyNames}} options
 *   host: the host connection now; names: what to call the lobbies (shared with the lobbies' voice)
 * @returns {Moderation}
 */
export function initModeration({ host, names }) {
  const el = {
    feed: /** @type {HTMLOListElement} */ (byId('feed')),
    feedEmpty: byId('feed-empty'),
    feedStatus: byId('feed-status'),
  };

  const feed = {
    /** @type {Map<string, HTMLLIElement>} shown messages by id */ items: new Map(),
    /** @type {Set<string>} members whose chat is paused */ muted: new Set(),
    /** @type {Set<string>} members removed from the show */ removed: new Set(),
    count: 0,
  };

  /** @param {ServerEvent} event */
  function onMessage(event) {
    if (feed.items.has(event.id)) return;
    const n = ++feed.count;
    const li = document.createElement('li');
    li.className = 'msg';
    Object.assign(li.dataset, {
      id: event.id, lobby: event.lobby, member: event.member, name: event.name ?? '',
      lobbyCode: event.lobby_code ?? '',
    });
    names.seen(event.lobby, event.lobby_code ?? '');
    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('strong');
    who.className = 'who';
    who.id = `feed-${n}-who`;
    who.textContent = event.name || t('chat_someone');  // always text, never HTML
    const where = document.createElement('span');
    where.className = 'where';
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = clock(event.at);
    const tag = document.createElement('span');
    tag.className = 'tag';
    meta.append(who, ' ', where, ' ', when, ' ', tag);
    const text = document.createElement('p');
    text.className = 'text';
    text.id = `feed-${n}-text`;
    text.textContent = event.text;

    const about = `${who.id} ${text.id}`;
    const actions = document.createElement('div');
    actions.className = 'actions';
    const confirm = document.createElement('div');
    confirm.className = 'confirm';
    confirm.hidden = true;
    const question = document.createElement('p');
    question.className = 'question';
    const yes = feedButton('feed_remove_yes', about, () => removeViewer(li));
    yes.classList.add('danger');
    const no = feedButton('feed_remove_no', about, () => {
      confirm.hidden = true;
      actions.hidden = false;
      remove.focus();
    });
    confirm.append(question, yes, no);
    const mute = feedButton('feed_mute', about, () => muteViewer(li));
    mute.classList.add('mute');
    const remove = feedButton('feed_remove', about, () => {
      question.textContent = t('feed_remove_confirm', { name: li.dataset.name || t('chat_someone') });
      actions.hidden = true;
      confirm.hidden = false;
      no.focus();
    });
    remove.classList.add('remove');
    actions.append(feedButton('feed_delete', about, () => deleteMessage(li)), mute, remove);
    li.append(meta, text, actions, confirm);

    el.feed.prepend(li);  // newest first: the performer glances, never scrolls
    feed.items.set(event.id, li);
    while (feed.items.size > FEED_MAX) {
      const oldest = /** @type {HTMLLIElement | null} */ (el.feed.lastElementChild);
      if (!oldest) break;
      feed.items.delete(oldest.dataset.id ?? '');
      oldest.remove();
    }
    renderItem(li);
    el.feedEmpty.hidden = true;
  }

  /** @param {ServerEvent} event */
  function onDeleted(event) {
    feed.items.get(event.id)?.remove();
    feed.items.delete(event.id);
    el.feedEmpty.hidden = feed.items.size > 0;
  }

  /** A message's lobby, its members' state and its buttons, in the page's language. */
  function renderItem(/** @type {HTMLLIElement} */ li) {
    const { member = '', lobby = '', lobbyCode = '' } = li.dataset;
    const where = /** @type {HTMLElement} */ (li.querySelector('.where'));
    where.textContent = lobbyCode
      ? t('feed_lobby', { code: lobbyCode })
      : t('feed_lobby_n', { n: names.number(lobby) });
    const removed = feed.removed.has(member);
    const muted = feed.muted.has(member);
    const tag = /** @type {HTMLElement} */ (li.querySelector('.tag'));
    tag.textContent = removed ? t('feed_removed_tag') : muted ? t('feed_muted_tag') : '';
    const mute = /** @type {HTMLButtonElement} */ (li.querySelector('button.mute'));
    mute.dataset.t = muted ? 'feed_unmute' : 'feed_mute';
    mute.textContent = t(mute.dataset.t);
    mute.hidden = removed;
    /** @type {HTMLButtonElement} */ (li.querySelector('button.remove')).hidden = removed;
    if (removed) {
      /** @type {HTMLElement} */ (li.querySelector('.confirm')).hidden = true;
      /** @type {HTMLElement} */ (li.querySelector('.actions')).hidden = false;
    }
  }

  /** @param {string} member */
  function renderMember(member) {
    for (const li of feed.items.values()) {
      if (li.dataset.member === member) renderItem(li);
    }
  }

  /**
   * Send a moderation command on the host connection; say in words how it went.
   * @param {string} type
   * @param {Record<string, unknown>} fields
   * @returns {Promise<any>} the result, or null if it did not work (already said)
   */
  async function moderate(type, fields) {
    const connection = host();
    if (!connection) {
      el.feedStatus.textContent = t('feed_offline');
      return null;
    }
    try {
      return await connection.request(type, fields);
    } catch (error) {
      const code = error instanceof ProtocolError ? error.code : '';
      el.feedStatus.textContent = code === 'lobby_not_found' ? t('feed_gone') : t('error');
      return null;
    }
  }

  /** @param {HTMLLIElement} li */
  async function deleteMessage(li) {
    const done = await moderate('chat.delete', { lobby: li.dataset.lobby, message: li.dataset.id });
    if (done) {
      onDeleted({ type: 'chat.deleted', id: li.dataset.id });
      el.feedStatus.textContent = t('feed_deleted');
    }
  }

  /** @param {HTMLLIElement} li */
  async function muteViewer(li) {
    const member = li.dataset.member ?? '';
    const name = li.dataset.name || t('chat_someone');
    const done = await moderate('chat.mute', { member, muted: !feed.muted.has(member) });
    if (!done) return;
    if (done.muted) feed.muted.add(member);
    else feed.muted.delete(member);
    renderMember(member);
    el.feedStatus.textContent = t(done.muted ? 'feed_muted' : 'feed_unmuted', { name });
  }

  /** @param {HTMLLIElement} li */
  async function removeViewer(li) {
    const member = li.dataset.member ?? '';
    const name = li.dataset.name || t('chat_someone');
    const done = await moderate('viewer.remove', { lobby: li.dataset.lobby, member });
    if (!done) return;
    feed.removed.add(member);
    feed.muted.add(member);  // the server pauses a removed viewer's chat too
    renderMember(member);
    el.feedStatus.textContent = t('feed_removed', { name });
  }

  return {
    onMessage,
    onDeleted,
    render() {
      for (const li of feed.items.values()) renderItem(li);
    },
  };
}
