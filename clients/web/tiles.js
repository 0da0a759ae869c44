// @ts-check
/**
 * Camera tiles as the foyer (watch/foyercameras.js) and the performer's audience wall
 * (studio/wall.js) show them: a muted picture with its name under it as text, each made once and
 * kept while it shows, so that its picture does not blink when the list changes.
 */

/** @typedef {{li: HTMLLIElement, video: HTMLVideoElement, caption: HTMLElement}} Tile */

export class Tiles {
  /**
   * @param {HTMLElement} list the list the tiles go in
   * @param {{className: string, idPrefix: string, data: string}} options each tile's class, the
   *   prefix of its caption's id, and the `data-` attribute that holds its key
   */
  constructor(list, { className, idPrefix, data }) {
    this.list = list;
    this.className = className;
    this.idPrefix = idPrefix;
    this.data = data;
    /** @type {Map<string, Tile>} */
    this.tiles = new Map();
  }

  /**
   * @param {string} key
   * @returns {Tile | undefined}
   */
  get(key) {
    return this.tiles.get(key);
  }

  /**
   * The tile of ``key`` showing ``stream`` under ``words``, made if it is new.
   * @param {string} key
   * @param {MediaStream | null} stream
   * @param {string} words
   * @returns {HTMLLIElement}
   */
  tile(key, stream, words) {
    let shown = this.tiles.get(key);
    if (!shown) {
      const li = document.createElement('li');
      li.className = this.className;
      li.dataset[this.data] = key;
      const figure = document.createElement('figure');
      const video = document.createElement('video');
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      video.setAttribute('playsinline', '');
      const caption = document.createElement('figcaption');
      caption.id = `${this.idPrefix}${key}`;
      video.setAttribute('aria-labelledby', caption.id);
      figure.append(video, caption);
      li.append(figure);
      shown = { li, video, caption };
      this.tiles.set(key, shown);
    }
    if (shown.video.srcObject !== stream) {
      shown.video.srcObject = stream;
      shown.video.play().catch(() => { /* muted: plays when it can */ });
    }
    shown.caption.textContent = words;  // names as text, never HTML
    return shown.li;
  }

  /**
   * Show exactly ``items`` (tiles of this list), in order; the others let their pictures go.
   * @param {HTMLLIElement[]} items
   */
  show(items) {
    for (const [key, kept] of this.tiles) {
      if (!items.includes(kept.li)) {
        kept.video.srcObject = null;
        this.tiles.delete(key);
      }
    }
    this.list.replaceChildren(...items);
    this.list.hidden = items.length === 0;
  }
}
