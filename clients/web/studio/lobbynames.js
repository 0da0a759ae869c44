// @ts-check
/**
 * What the studio knows to call each lobby by: its code, as the chat messages and the lobby list tell
 * it, or else a number in the order its first message came. The chat feed and the lobbies' voice
 * share one of these (the studio's entry point makes it).
 */

export class LobbyNames {
  constructor() {
    /** @private @type {Map<string, string>} lobby codes by lobby id */
    this.codes = new Map();
    /** @private @type {Map<string, number>} a number per lobby, for messages with no lobby code */
    this.numbers = new Map();
  }

  /**
   * A chat message of this lobby came, with its lobby code or without ('').
   * @param {string} lobby a lobby id
   * @param {string} code
   */
  seen(lobby, code) {
    if (!code && !this.numbers.has(lobby)) this.numbers.set(lobby, this.numbers.size + 1);
    if (code) this.codes.set(lobby, code);
  }

  /**
   * The lobby list told this lobby's code.
   * @param {string} lobby
   * @param {string} code
   */
  setCode(lobby, code) {
    this.codes.set(lobby, code);
  }

  /**
   * The lobby's code, or '' if none is known.
   * @param {string} lobby
   * @returns {string}
   */
  code(lobby) {
    return this.codes.get(lobby) ?? '';
  }

  /**
   * The lobby's number, or '' if it has none.
   * @param {string} lobby
   * @returns {string}
   */
  number(lobby) {
    return String(this.numbers.get(lobby) ?? '');
  }
}
