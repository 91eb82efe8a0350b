// The memory rule of the transport contract (lib/transports/contract.js): a share of a
// large flush that a transport may keep is a copy, so that a stuck client
// holds its own bytes (plus at most 256 KiB of others'), never the flush.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const { ownShare } = createRequire(import.meta.url)('../lib/transports/contract.js');

test('a small share of a large flush is copied; a small flush, or most of one, is not', () => {
  const large = Buffer.alloc(1 << 20, 1);
  const share = large.subarray(1000, 1100);
  const own = ownShare(share);
  assert.notEqual(own.buffer, large.buffer, 'the copy keeps nothing of the flush alive');
  assert.deepEqual(own, share);
  const most = large.subarray(0, 800 * 1024);
  assert.equal(ownShare(most).buffer, large.buffer, 'most of a flush: nothing to save');
  const small = Buffer.alloc(64 * 1024, 2);
  assert.equal(ownShare(small.subarray(0, 100)).buffer, small.buffer, 'a small flush pins little');
});
