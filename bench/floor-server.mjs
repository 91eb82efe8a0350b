// The floor program (bench/floor.c) behind the same IPC protocol as
// server.mjs, so that run.mjs drives it like any implementation.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const { binary, clients, frames } = JSON.parse(process.argv[2]);
const child = spawn(binary, [String(clients), String(frames)], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
const next = async () => (await lines.next()).value;

process.send({ type: 'port', port: Number(await next()) });
process.on('message', async (message) => {
  switch (message.type) {
    case 'go':
      child.stdin.write('go\n');
      process.send({ type: 'started', streams: clients });
      break;
    case 'report': {
      const cpuMicros = Number(await next());
      process.send({
        type: 'report',
        streams: clients,
        cpuMicros,
        cpuUserMicros: null,
        loopDelayP99Ms: null,
        loopDelayMaxMs: null,
      });
      break;
    }
    case 'exit':
      child.stdin.end('done\n');
      process.exit(0);
  }
});
