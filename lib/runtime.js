'use strict';

// Which JavaScript runtime runs native-sse, tested one way, once: each
// needs a workaround or a default of its own (see where these are read).

/** Deno (its node:http compatibility layer, and its fetch-style server). */
const IS_DENO = typeof process.versions.deno === 'string';
/** Bun (Bun.serve drops a request idle for 10 s). */
const IS_BUN = typeof process.versions.bun === 'string';

module.exports = { IS_DENO, IS_BUN };
