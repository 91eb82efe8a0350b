// A redis-server of our own on a free port of 127.0.0.1, for the Redis
// tests and the scale-out benchmark.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './helpers.mjs';

export async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A redis-server of our own, with an append-only file so that a kill -9
 * and restart keeps the stream. */
export class Redis {
  static async start() {
    const redis = new Redis();
    redis.port = await freePort();
    redis.dir = mkdtempSync(join(tmpdir(), 'native-sse-redis-'));
    await redis.run();
    return redis;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  async run() {
    this.process = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir],
      { stdio: 'ignore' },
    );
    await until(() => this.pingable, 10_000, 'redis-server to start').catch(async () => {
      throw new Error('redis-server did not start');
    });
  }

  get pingable() {
    if (this.#probe === undefined) {
      this.#probe = new Promise((resolve) => {
        const socket = net.connect(this.port, '127.0.0.1');
        socket.on('error', () => resolve(false));
        socket.on('data', (data) => resolve(data.toString().startsWith('+PONG')));
        socket.write('PING\r\n');
        setTimeout(() => resolve(false), 200);
      }).then((ok) => {
        this.#probe = undefined;
        this.#up = ok;
      });
    }
    return this.#up === true;
  }

  #probe;
  #up = false;

  async kill() {
    this.#up = false;
    this.process.kill('SIGKILL');
    await once(this.process, 'exit');
  }

  async stop() {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGTERM');
      await once(this.process, 'exit');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

