// The outcomes across the seam: the link in Rust numbers each request that
// reports when it takes it and hands the number back (src/io/redis/mod.rs,
// PublishBatch); each outcome comes with its number, and the JavaScript
// link (lib/channel/link.js) settles it against the request of that number.
// Here the addon's link is replaced by one the test drives, so that
// outcomes can come out of order, twice, or for no request: each request
// still hears once, and every fault is said.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const native = require('../lib/native.js');
const { Link } = require('../lib/channel/link.js');

test('outcomes settle the request of their number, in any order across batches; one twice, one for no request, or numbers going back within a batch are faults, said and settled against nothing', async (t) => {
  const real = native.RedisLink;
  let settle;
  let next = 0;
  native.RedisLink = class {
    server = 'redis://fake:1';
    health = { connected: true, since: 0, reason: null };
    constructor(...args) {
      settle = args[2];
    }
    mark() {
      return next++;
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

  // A cluster answers each master's in order, the masters' in any order.
  settle({ numbers: [1, 3], ids: ['1-0', '3-0'], failures: undefined });
  settle({ numbers: [0], ids: [''], failures: [{ index: 0, code: 'ERR_SSE_REDIS_UNAVAILABLE', reason: 'down' }] });
  assert.deepEqual(marked, [
    ['b', null],
    ['d', null],
    ['a', 'ERR_SSE_REDIS_UNAVAILABLE'],
  ]);
  // 1 again, 7 (never sent), then 2 after 3 in one batch: faults; 2 is
  // settled once it comes in order.
  settle({ numbers: [1, 7], ids: ['1-0', '7-0'], failures: undefined });
  settle({ numbers: [3, 2], ids: ['3-0', '2-0'], failures: undefined });
  assert.equal(marked.length, 3, 'nothing settled by a fault');
  settle({ numbers: [2], ids: ['2-0'], failures: undefined });
  assert.deepEqual(marked.at(-1), ['c', null]);
  await new Promise(setImmediate);
  const fault = (n) => [
    'ERR_SSE_INTERNAL',
    `Internal error on the link to Redis at redis://fake:1: an outcome came for request ${n}, which is not waiting for one`,
  ];
  assert.deepEqual(
    warnings.map((w) => [w.code, w.message]),
    [fault(1), fault(7), fault(3), fault(2)],
  );
});
