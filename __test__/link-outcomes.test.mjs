// The order of outcomes across the seam: the link in Rust numbers the
// outcomes of the requests it takes (src/io/redis/mod.rs, PublishBatch), and
// the JavaScript link (lib/channel/link.js) checks each batch's first
// number against the request it waits for next. Here the addon's link is
// replaced by one the test drives, so that batches can come out of order:
// each request still hears once, and the fault is said.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('../lib/native.js');
const { Link } = require('../lib/channel/link.js');

test('outcomes numbered twice, or past a gap: every request is settled once, the others told unknown, and the fault is warned of', async (t) => {
  const real = native.RedisLink;
  let settle;
  native.RedisLink = class {
    server = 'redis://fake:1';
    health = { connected: true, since: 0, reason: null };
    constructor(...args) {
      settle = args[2];
    }
    mark() {
      return true;
    }
    close() {}
  };
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => {
    native.RedisLink = real;
    process.off('warning', onWarning);
  });
  const link = Link.acquire({ url: 'redis://fake:1/outcomes', tls: undefined });
  t.after(() => link.release());
  const marked = [];
  const target = (name) => ({ marked: (error) => marked.push([name, error?.code ?? null]) });
  for (const name of ['a', 'b', 'c', 'd']) link.ready('stream', target(name));

  settle({ first: 0, ids: ['1-0'], failures: undefined });
  assert.deepEqual(marked, [['a', null]]);
  // 0 again, then 1: the first is not settled twice.
  settle({ first: 0, ids: ['1-0', '2-0'], failures: undefined });
  assert.deepEqual(marked, [
    ['a', null],
    ['b', null],
  ]);
  // 2 never comes: c is told its outcome is unknown; 3 is d's.
  settle({ first: 3, ids: ['3-0'], failures: undefined });
  assert.deepEqual(marked, [
    ['a', null],
    ['b', null],
    ['c', 'ERR_SSE_REDIS_OUTCOME_UNKNOWN'],
    ['d', null],
  ]);
  // In order again: nothing more is said.
  link.ready('stream', target('e'));
  settle({ first: 4, ids: [''], failures: [{ index: 0, code: 'ERR_SSE_REDIS_UNAVAILABLE', reason: 'down' }] });
  assert.deepEqual(marked.at(-1), ['e', 'ERR_SSE_REDIS_UNAVAILABLE']);
  await new Promise(setImmediate);
  assert.deepEqual(
    warnings.map((w) => [w.code, w.message]),
    [
      [
        'ERR_SSE_INTERNAL',
        'Internal error on the link to Redis at redis://fake:1: outcomes numbered from 0 came when 1 was next',
      ],
      [
        'ERR_SSE_INTERNAL',
        'Internal error on the link to Redis at redis://fake:1: outcomes numbered from 3 came when 2 was next',
      ],
    ],
  );
});
