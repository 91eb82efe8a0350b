import { Channel, EventEndpoint } from 'native-sse';

// Render on every request: a stream is never static.
export const dynamic = 'force-dynamic';

// One ticker for every client of this server process, with a history, so
// that a client that reconnects with Last-Event-ID gets what it missed.
// (Kept on globalThis: in development, Next.js reloads this module.)
function ticker() {
  const channel = new Channel({ historySize: 100 });
  let n = 0;
  setInterval(
    () => {
      n++;
      channel.broadcast({ n, at: new Date().toISOString() }, { id: String(n) });
    },
    Number(process.env.TICK_MS ?? 1000),
  ).unref();
  return channel;
}
globalThis.nativeSseTicks ??= ticker();
const ticks = globalThis.nativeSseTicks;

// The fetch-style form: a Request in, the endpoint's Response out.
export function GET(request) {
  const events = new EventEndpoint(request);
  ticks.subscribe(events);
  return events.response;
}
