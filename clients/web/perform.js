// @ts-check
/** The performer's page: reads "#<show id>.<performer token>" (never sent to the server in URLs). */

const [showId, token] = location.hash.slice(1).split('.');
const status = /** @type {HTMLElement} */ (document.getElementById('perform-status'));

async function load() {
  if (!showId || !token) {
    status.textContent = 'Esiintyjän linkki puuttuu. / Länken saknas. / The performer link is missing.';
    return;
  }
  const response = await fetch(`/api/shows/${encodeURIComponent(showId)}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    status.textContent = 'Linkki ei kelpaa. / Länken gäller inte. / This link is not valid.';
    return;
  }
  const show = await response.json();
  /** @type {HTMLElement} */ (document.getElementById('show-title')).textContent = show.title;
  /** @type {HTMLElement} */ (document.getElementById('show-code')).textContent = show.code_display;
  /** @type {HTMLElement} */ (document.getElementById('show-state')).textContent = show.state;
  /** @type {HTMLElement} */ (document.getElementById('stream-key')).textContent = show.stream_key;
  /** @type {HTMLElement} */ (document.getElementById('show-facts')).hidden = false;
}

load();
