// native-sse's figures for Prometheus: a ticker on a Channel at /events, and
// diagnostics() exported at /metrics through prom-client. Every figure is
// read when Prometheus scrapes, so nothing is counted twice.
//
//   node examples/metrics/server.mjs       (after `npm ci && npm run build`)
//   curl -N http://127.0.0.1:3000/events & curl http://127.0.0.1:3000/metrics
import http from 'node:http';
import client from 'prom-client';
import { EventEndpoint, Channel, diagnostics } from 'native-sse';

const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

/** A gauge read from diagnostics() at each scrape. */
function gauge(name, help, read) {
  new client.Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read(diagnostics()));
    },
  });
}

/** A counter (a total since start) read from diagnostics() at each scrape. */
function counter(name, help, read, labelNames = []) {
  new client.Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      const value = read(diagnostics());
      if (typeof value === 'number') this.inc(value);
      else for (const [label, n] of Object.entries(value)) this.inc({ [labelNames[0]]: label }, n);
    },
  });
}

gauge('sse_open_streams', 'Event streams open now.', (d) => d.openStreams);
gauge('sse_direct_sockets', 'Sockets native-sse writes to from Rust.', (d) => d.directSockets);
gauge('sse_held_bytes', 'Bytes held for clients now (queued, or held by their responses).', (d) => d.heldBytes);
gauge('sse_memory_budget_bytes', 'The memory budget of the streams.', (d) => d.memoryBudget);
counter('sse_streams_opened_total', 'Event streams opened.', (d) => d.streamsOpened);
counter('sse_streams_closed_total', 'Event streams ended, by who ended them.', (d) => d.streamsClosed, ['by']);
counter('sse_events_queued_total', 'Events queued for clients (one per client).', (d) => d.eventsQueued);
counter('sse_bytes_written_total', 'Bytes handed to clients.', (d) => d.bytesWritten);
counter('sse_budget_cut_offs_total', 'Clients cut off by the memory budget.', (d) => d.budgetCutOffs);
counter('sse_stop_token_refusals_total', 'Reconnects refused (204) after close(true).', (d) => d.stopTokenRefusals);
counter(
  'sse_skipped_stream_entries_total',
  'Redis stream entries skipped as malformed.',
  (d) => d.skippedStreamEntries,
);

const ticker = new Channel({ historySize: 100 });
let n = 0;
setInterval(() => ticker.broadcast(new Date().toISOString(), { event: 'tick', id: String(++n) }), 1000).unref();

const server = http.createServer(async (req, res) => {
  if (req.url === '/events') {
    ticker.subscribe(new EventEndpoint(req, res));
    return;
  }
  if (req.url === '/metrics') {
    res.writeHead(200, { 'Content-Type': registry.contentType }).end(await registry.metrics());
    return;
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`http://127.0.0.1:${server.address().port}/metrics`);
});
