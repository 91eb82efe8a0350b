'use strict';

// Unknown option names. An options object is the user's spelling of what
// they want: `{ retry: 3000 }` or `new Channel({ redisUrl })` accepted and
// ignored would be a silent misconfiguration (the second one a channel that
// never crosses processes). Every options object native-sse takes is checked
// here, so that a name it does not know is a TypeError naming it, with the
// known name it most likely meant.

const { invalidValue } = require('./errors.js');

/** Names people reach for that are not near the right one by spelling:
 * other libraries' names and the obvious guesses. */
const MEANT = {
  retry: 'reconnectionTime',
  reconnect: 'reconnectionTime',
  reconnectTime: 'reconnectionTime',
  heartbeat: 'keepAlive',
  ping: 'keepAlive',
  maxBuffer: 'maxBufferedBytes',
  bufferSize: 'maxBufferedBytes',
  history: 'historySize',
  historyLength: 'historySize',
  maxHistory: 'historySize',
  eventName: 'event',
  type: 'event',
  name: 'event',
  eventId: 'id',
  lastEventId: 'id',
  url: 'redis',
  redisUrl: 'redis',
  redisURL: 'redis',
  streamKey: 'stream',
  key: 'stream',
  maxlen: 'maxLen',
  timeOut: 'timeout',
  secret: 'key',
  ttl: 'maxAge',
};

/** Edit distance, case-insensitively (`timeOut` is `timeout`), where two
 * letters swapped are one edit (`tsl` is nearer `tls` than `url`). */
function distance(a, b) {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const rows = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j], rows[i - 2][j - 2] + 1);
      }
    }
    rows.push(row);
  }
  return rows[a.length][b.length];
}

function sameLetters(a, b) {
  const letters = (word) => [...word.toLowerCase()].sort().join('');
  return b !== undefined && letters(a) === letters(b);
}

/** The known name `unknown` most likely meant, or undefined. */
function closest(unknown, known) {
  const meant = Object.hasOwn(MEANT, unknown) ? MEANT[unknown] : undefined;
  if (meant !== undefined && known.includes(meant)) return meant;
  const lower = unknown.toLowerCase();
  let best;
  let bestDistance = Math.max(2, Math.floor(unknown.length / 3)) + 1;
  for (const name of known) {
    const d = distance(unknown, name);
    // At the same distance, the name with the same letters wins (`tsl` is
    // `tls` with two swapped, not `ttl` with one changed).
    if (d < bestDistance || (d === bestDistance && sameLetters(unknown, name) && !sameLetters(unknown, best))) {
      best = name;
      bestDistance = d;
    }
  }
  if (best !== undefined) return best;
  // A part of the right name (`history`), or the right name inside (`redisUrl`).
  return known.find((name) => {
    const other = name.toLowerCase();
    return (lower.length >= 4 && other.startsWith(lower)) || (other.length >= 4 && lower.startsWith(other));
  });
}

/**
 * Throws a TypeError naming the first own enumerable property of `options`
 * that is not one of `known` (an array of names), as `${name}.${property}`.
 */
function checkOptionNames(name, options, known, what) {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const meant = closest(key, known);
    const hint =
      meant === undefined ? `known ones are ${known.map((k) => `"${k}"`).join(', ')}` : `did you mean "${meant}"?`;
    throw invalidValue(`${name}.${key}`, `is not an option of ${what} (${hint})`);
  }
}

module.exports = { checkOptionNames, closest };
