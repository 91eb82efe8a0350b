// The demo: a page whose EventSource shows live events from native-sse.
//
//   npm start            (builds the addon, then runs this file)
//   PORT=8080 npm start  (another port; 3000 by default, a free one if taken)
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { EventEndpoint } from 'native-sse';

const page = readFileSync(new URL('./index.html', import.meta.url));
let visitors = 0;

function stream(req, res) {
  const events = new EventEndpoint(req, res, { reconnectionTime: 2000 });
  const visitor = ++visitors;
  let tick = Number(events.lastEventId) || 0;

  // A custom event, which the page listens for by name.
  events.sendEvent('welcome', `You are visitor #${visitor}. Resuming after event ${tick}.`);

  const clock = setInterval(() => {
    tick++;
    events.send(new Date().toLocaleTimeString('en-GB'), String(tick));
    if (tick % 5 === 0) {
      // One message, three lines: the browser receives it joined by "\n".
      events.sendEvent(
        'report',
        `Report for tick ${tick}\nvisitors so far: ${visitors}\nmemory: ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`,
      );
    }
  }, 1000);

  events.addEventListener('close', (ev) => {
    clearInterval(clock);
    console.log(`visitor #${visitor}: stream closed (${ev.reason})`);
  });
}

const server = http.createServer((req, res) => {
  if (req.url === '/events') return stream(req, res);
  if (req.url === '/' || req.url === '/index.html') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  res.writeHead(404).end('not found');
});

function listen(port) {
  server.once('error', (err) => {
    if (err.code === 'EADDRINUSE' && port !== 0) {
      console.log(`port ${port} is taken, using a free one`);
      listen(0);
    } else {
      throw err;
    }
  });
  server.listen(port, '127.0.0.1', () => {
    console.log(`native-sse demo: http://127.0.0.1:${server.address().port}/`);
  });
}

listen(Number(process.env.PORT ?? 3000));
