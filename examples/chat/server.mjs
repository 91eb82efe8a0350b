// A chat room on a Channel: messages are broadcast to every open page, and a
// page that loses its connection (try restarting Wi-Fi, or closing the
// server's side) gets, on reconnect, exactly the messages it missed.
//
//   node examples/chat/server.mjs       (after `npm ci && npm run build`)
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { EventEndpoint, Channel } from 'native-sse';

const page = readFileSync(new URL('./index.html', import.meta.url));
const room = new Channel({ historySize: 200 });
let nextId = 1;

const server = http.createServer((req, res) => {
  if (req.url === '/events') {
    const events = new EventEndpoint(req, res, { reconnectionTime: 1000 });
    // Replays what this client missed (after its Last-Event-ID), then goes live.
    const { replayed, complete } = room.subscribe(events);
    if (!complete) events.sendEvent('notice', 'Some older messages are no longer available.');
    if (replayed > 0) console.log(`a client resumed with ${replayed} missed messages`);
    return;
  }
  if (req.url === '/send' && req.method === 'POST') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 10_000) req.destroy();
    });
    req.on('end', () => {
      const { name, text } = JSON.parse(body || '{}');
      if (typeof name !== 'string' || typeof text !== 'string' || !text) {
        return res.writeHead(400).end('name and text are required');
      }
      room.broadcast(JSON.stringify({ name: name.slice(0, 40), text: text.slice(0, 2000), at: Date.now() }), {
        event: 'chat',
        id: String(nextId++),
      });
      res.writeHead(204).end();
    });
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page);
});

server.listen(Number(process.env.PORT ?? 3003), '127.0.0.1', () => {
  console.log(`chat example: http://127.0.0.1:${server.address().port}/`);
});
