// HTTP/2 with TLS (what browsers speak HTTP/2 over), through the node:http2
// compatibility API; HTTP/1.1 clients are served by the same handler.
// The certificate is self-signed and made at start-up, so the browser will
// warn once.
//
//   node examples/http2/server.mjs       (after `npm ci && npm run build`)
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import selfsigned from 'selfsigned';
import { EventEndpoint } from 'native-sse';

const page = readFileSync(new URL('../demo/index.html', import.meta.url));
const { private: key, cert } = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  keyType: 'ec',
  algorithm: 'sha256',
});

const server = http2.createSecureServer({ key, cert, allowHTTP1: true }, (req, res) => {
  if (req.url !== '/events') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  // The same code as for node:http: no connection-specific headers are sent
  // on HTTP/2, where Node refuses them.
  const events = new EventEndpoint(req, res, { reconnectionTime: 2000 });
  let tick = Number(events.lastEventId) || 0;
  events.sendEvent('welcome', `HTTP/${req.httpVersion} stream; resuming after event ${tick}`);
  const clock = setInterval(() => {
    tick++;
    events.send(new Date().toLocaleTimeString('en-GB'), String(tick));
    if (tick % 5 === 0) events.sendEvent('report', `tick ${tick}\nover HTTP/${req.httpVersion}`);
  }, 1000);
  events.addEventListener('close', () => clearInterval(clock));
});

server.listen(Number(process.env.PORT ?? 3002), '127.0.0.1', () => {
  console.log(`HTTP/2 example: https://127.0.0.1:${server.address().port}/ (self-signed certificate)`);
});
