// npm run bench:storm [-- --clients=10000]
//
// A reconnect storm, as after a deploy: every client resumes at once from an
// id 500 events back (500 × 512 B each), in four client processes. Beside
// native-sse (direct and adopted) runs what a careful developer writes
// without it: the history as encoded frames, each resume written frame by
// frame with res.write, waiting for 'drain' whenever the response is full
// (__test__/fixtures/storm-app.mjs, IMPL=node). Each server runs twice in
// fresh processes: with the clients resuming, and with the same clients
// connecting anew (what the connections alone cost). Prints, for each, the
// time until every client had its 500 events, the server's CPU, its peak
// RSS beyond the connections' own, and the event loop's longest block, with
// the ratios to the hand-written replay.
import { runStorm } from '../__test__/fixtures/storm.mjs';

const args = process.argv.slice(2);
const CLIENTS = Number(args.find((a) => a.startsWith('--clients='))?.slice(10) ?? 10_000);
const mib = (bytes) => bytes / 2 ** 20;

const impls = [
  ['node:http, replay by hand (drain-paced)', { IMPL: 'node' }],
  ['native-sse, direct', { ADOPT: '0' }],
  ['native-sse, adopt: true', { ADOPT: '1' }],
];
const rows = [];
for (const [name, env] of impls) {
  process.stderr.write(`${name}…\n`);
  const control = await runStorm({ env, count: CLIENTS, resume: false });
  await control.stop();
  const run = await runStorm({ env, count: CLIENTS });
  await run.stop();
  const exact = run.results.reduce((n, r) => n + r.exact, 0);
  rows.push({
    name,
    exact,
    seconds: run.ms / 1000,
    cpu: (run.after.cpu - run.before.cpu) / 1e6,
    replayMiB: mib(run.after.peakRss - run.before.rss) - mib(control.after.peakRss - control.before.rss),
    block: run.after.longestBlock,
  });
}
const base = rows[0];
const ratio = (a, b) => (b > 0 ? `${(a / b).toFixed(2)}x` : '–');
console.log(
  `\nreconnect storm: ${CLIENTS} clients resume 500 events of 512 B at once (${((CLIENTS * 500 * 512) / 2 ** 30).toFixed(2)} GiB)\n`,
);
console.log(
  '| server | exact | all caught up (s) | server CPU (s) | peak RSS beyond the connections (MiB) | longest loop block (ms) |',
);
console.log('|---|--:|--:|--:|--:|--:|');
for (const r of rows) {
  const vs = r === base ? '' : ` (${ratio(r.seconds, base.seconds)})`;
  console.log(
    `| ${r.name} | ${r.exact} | ${r.seconds.toFixed(1)}${vs} | ${r.cpu.toFixed(1)}${r === base ? '' : ` (${ratio(r.cpu, base.cpu)})`} | ${r.replayMiB.toFixed(0)}${r === base ? '' : ` (${ratio(r.replayMiB, base.replayMiB)})`} | ${r.block.toFixed(0)} |`,
  );
}
