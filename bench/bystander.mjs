// A process that does nothing but measure its own event-loop delay, the
// same way bench/server.mjs does, while a workload runs beside it: the
// delay this machine's scheduler alone gives a Node process under that
// load, the floor of any server's loop delay there.
import { createHistogram, performance } from 'node:perf_hooks';

const delay = createHistogram();
let due = performance.now() + 1;
const sampler = setInterval(() => {
  const now = performance.now();
  delay.record(Math.max(1, Math.round((now - due) * 1000)));
  due = now + 1;
}, 1);
process.on('message', (message) => {
  if (message.type !== 'report') return;
  clearInterval(sampler);
  process.send({ type: 'report', loopDelayP99Ms: delay.percentile(99) / 1000, loopDelayMaxMs: delay.max / 1000 });
  process.exit(0);
});
process.send({ type: 'ready' });
