// A real browser: Chromium's EventSource stores an id that is not ASCII and
// sends it back, as UTF-8, in Last-Event-ID when it reconnects; the Channel
// resumes it exactly. Needs Debian's chromium (`.ci/run` installs it);
// without it a notice says the test did not run, and under CI it fails.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEndpoint, Channel } from 'native-sse';
import { needs } from './helpers.mjs';

const hasChromium = spawnSync('chromium', ['--version']).status === 0;

const page = `<!doctype html><meta charset="utf-8"><pre id="out"></pre><script>
const events = new EventSource('/events');
events.onmessage = (e) => {
  document.getElementById('out').textContent += e.lastEventId + '|' + e.data + ';';
  if (e.data === 'three') events.close();
};
</script>`;

/** Loads `url` in headless Chromium and returns the text of #out. */
async function runPage(url) {
  const profile = mkdtempSync(join(tmpdir(), 'native-sse-chromium-'));
  try {
    const chromium = spawn(
      'chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        '--virtual-time-budget=5000',
        '--dump-dom',
        url,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let dom = '';
    chromium.stdout.on('data', (data) => (dom += data));
    await once(chromium, 'exit');
    return /<pre id="out">(.*?)<\/pre>/s.exec(dom)?.[1] ?? dom;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

needs(
  'chromium',
  hasChromium,
  () => {
    test("Chromium's EventSource resumes from an id that is not ASCII, exactly", async (t) => {
      const channel = new Channel({ historySize: 10 });
      const resumes = [];
      const server = http.createServer((req, res) => {
        if (req.url !== '/events') {
          res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page);
          return;
        }
        const endpoint = new EventEndpoint(req, res, { reconnectionTime: 50 });
        const decoded = endpoint.lastEventId;
        const replay = channel.subscribe(endpoint);
        if (decoded !== '') {
          resumes.push({ lastEventId: req.headers['last-event-id'], decoded, replay });
          return;
        }
        channel.broadcast('one', { id: 'café-1' });
        channel.broadcast('two', { id: 'café-2 ☕' });
        // The connection drops; an event goes out while the client is away.
        setTimeout(() => {
          endpoint.close();
          channel.broadcast('three', { id: 'naïve-3' });
        }, 50);
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      t.after(() => {
        server.closeAllConnections();
        server.close();
      });
      const text = await runPage(`http://127.0.0.1:${server.address().port}/`);
      assert.equal(text, 'café-1|one;café-2 ☕|two;naïve-3|three;');
      assert.equal(resumes.length, 1);
      assert.equal(resumes[0].decoded, 'café-2 ☕');
      assert.equal(
        resumes[0].lastEventId,
        Buffer.from('café-2 ☕').toString('latin1'),
        'the header came as UTF-8 bytes',
      );
      assert.deepEqual(resumes[0].replay, { replayed: 1, complete: true });
    });
  },
  'apt-get install chromium',
);
