// The reduced soak: 1,000 connect/disconnect cycles under broadcast (the full
// one is `npm run soak`). It runs in a process of its own, so that its
// memory figures are its own.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';

test('1,000 connect/disconnect cycles leave nothing behind', async () => {
  const { stdout } = await new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      ['--expose-gc', '--max-semi-space-size=8', 'soak/soak.mjs', '--cycles=1000', '--seconds=60'],
      { cwd: new URL('..', import.meta.url), timeout: 90_000 },
      (err, stdout, stderr) => (err && !stdout ? reject(err) : resolve({ stdout, stderr })),
    ),
  );
  const result = JSON.parse(stdout);
  assert.deepEqual(result.failures, []);
  assert.equal(result.closeEvents, result.streamsOpened);
  assert.equal(result.openStreams, 0);
  assert.equal(result.keepAliveTimer, false);
  assert.equal(result.directSockets, 0);
  assert.ok(result.cycles >= 1000);
});
