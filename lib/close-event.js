'use strict';

/**
 * The `close` event of an endpoint. Node 20 has no global `CloseEvent`
 * (Node 23 does), so this one carries the same three fields.
 */
const CloseEvent =
  typeof globalThis.CloseEvent === 'function'
    ? globalThis.CloseEvent
    : class CloseEvent extends Event {
        #wasClean;
        #code;
        #reason;

        constructor(type, init = {}) {
          super(type, init);
          this.#wasClean = Boolean(init.wasClean);
          this.#code = Number(init.code ?? 0);
          this.#reason = String(init.reason ?? '');
        }

        get wasClean() {
          return this.#wasClean;
        }

        get code() {
          return this.#code;
        }

        get reason() {
          return this.#reason;
        }
      };

module.exports = { CloseEvent };
