// A redis-server of our own on a free port of 127.0.0.1, for the Redis
// tests and the scale-out benchmark.
import net from 'node:net';
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './helpers.mjs';

/**
 * Sends a signal to a child process. Through process.kill, not
 * ChildProcess#kill: under Deno the latter acts on its first call only, so a
 * SIGCONT after a SIGSTOP, or a SIGKILL after a SIGTERM, would be ignored.
 * A process that has exited meanwhile is not an error.
 */
export function signal(child, name) {
  try {
    process.kill(child.pid, name);
  } catch (err) {
    if (err.code !== 'ESRCH') throw err;
  }
}

/**
 * Ends a child process within a bounded time: SIGCONT first (a test may have
 * paused it with SIGSTOP, and a stopped process never acts on SIGTERM), then
 * SIGTERM, then SIGKILL if it has not exited 10 s later. A test's teardown
 * must never wait for ever.
 */
export async function endProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  signal(child, 'SIGCONT');
  signal(child, 'SIGTERM');
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(resolve, 10_000, 'late');
  });
  if ((await Promise.race([exited, late])) === 'late') {
    signal(child, 'SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/** The first output of a child process (the URL it listens on); rejects if
 * it exits first, instead of waiting for ever. */
async function firstLine(child) {
  const ended = once(child, 'exit').then(([code, signal]) => {
    throw new Error(`the app exited (${signal ?? code}) before printing its URL`);
  });
  ended.catch(() => {});
  // A bound, so that an app that never starts fails its test by name rather
  // than the whole file by the runner's timeout.
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('the app printed no URL in 60 s')), 60_000);
  });
  try {
    const [line] = await Promise.race([once(child.stdout, 'data'), ended, late]);
    return line;
  } finally {
    clearTimeout(timer);
  }
}

export async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether `port` of 127.0.0.1 can be listened on now. */
async function bindable(port) {
  const server = net.createServer();
  const ok = await new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}

/**
 * A free port for a cluster node: a node also listens on its port + 10,000
 * (the cluster bus), so the port is at most 55,535 and that one free too
 * (the kernel's free ports reach 60,999, where redis-server refuses to start).
 */
export async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    if (port <= 55_535 && (await bindable(port + 10_000))) return port;
  }
}

/** One RESP command as bytes; arguments may be strings or Buffers. */
function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one RESP2 reply at `at`; returns [value, next] or null if
 * incomplete. Bulk strings come back as Buffers, errors as Error objects. */
function parseReply(buffer, at) {
  const lineEnd = buffer.indexOf('\r\n', at);
  if (lineEnd < 0) return null;
  const type = String.fromCharCode(buffer[at]);
  const line = buffer.toString('latin1', at + 1, lineEnd);
  const next = lineEnd + 2;
  if (type === '+') return [line, next];
  if (type === '-') return [new Error(line), next];
  if (type === ':') return [Number(line), next];
  if (type === '$') {
    const length = Number(line);
    if (length < 0) return [null, next];
    if (buffer.length < next + length + 2) return null;
    return [buffer.subarray(next, next + length), next + length + 2];
  }
  if (type === '*') {
    const count = Number(line);
    if (count < 0) return [null, next];
    const items = [];
    let cursor = next;
    for (let i = 0; i < count; i++) {
      const item = parseReply(buffer, cursor);
      if (item === null) return null;
      items.push(item[0]);
      cursor = item[1];
    }
    return [items, cursor];
  }
  throw new Error(`unexpected RESP type ${type}`);
}

/**
 * Sends commands to a Redis server in one pipeline on a fresh connection and
 * resolves to their replies: a test's own producer, with no client library
 * in between (entries written "by hand").
 */
export async function redisCommands(port, commands) {
  const socket = net.connect(port, '127.0.0.1');
  let pending = Buffer.alloc(0);
  const replies = [];
  const done = new Promise((resolve, reject) => {
    socket.on('error', reject);
    // A paused server (SIGSTOP) accepts the connection and never answers.
    socket.setTimeout(10_000, () => reject(new Error(`no reply from the Redis server on port ${port} in 10 s`)));
    socket.on('data', (data) => {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
      let at = 0;
      for (;;) {
        const reply = parseReply(pending, at);
        if (reply === null) break;
        replies.push(reply[0]);
        at = reply[1];
      }
      pending = pending.subarray(at);
      if (replies.length === commands.length) resolve(replies);
    });
  });
  for (let i = 0; i < commands.length; i += 1000) {
    if (!socket.write(Buffer.concat(commands.slice(i, i + 1000).map(encodeCommand)))) await once(socket, 'drain');
  }
  try {
    return await done;
  } finally {
    socket.destroy();
  }
}

/** A redis-server of our own, with an append-only file so that a kill -9
 * and restart keeps the stream. */
export class Redis {
  /**
   * Starts a server. `tls` ({ cert, key, ca } file paths) adds a TLS port,
   * which then takes clients with a certificate of that CA only; `port`
   * picks the plain port (a free one by default). `durable: false` (for
   * benchmarks) drops the fsync of every write.
   */
  static async start({ tls, port, durable = true, replicaOf, extra = [] } = {}) {
    const redis = new Redis();
    redis.extra.push(...extra);
    if (!durable) redis.persistence = ['--appendonly', 'no'];
    if (replicaOf !== undefined) redis.extra.push('--replicaof', '127.0.0.1', String(replicaOf));
    redis.port = port ?? (await freePort());
    redis.dir = mkdtempSync(join(tmpdir(), 'native-sse-redis-'));
    if (tls) {
      redis.tlsPort = await freePort();
      redis.extra.push(
        '--tls-port',
        String(redis.tlsPort),
        '--tls-cert-file',
        tls.cert,
        '--tls-key-file',
        tls.key,
        '--tls-ca-cert-file',
        tls.ca,
        '--tls-auth-clients',
        'yes',
      );
    }
    await redis.run();
    return redis;
  }

  extra = [];
  persistence = ['--appendonly', 'yes', '--appendfsync', 'always'];

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Runs commands on this server in one pipeline; see redisCommands. */
  commands(commands) {
    return redisCommands(this.port, commands);
  }

  async run() {
    this.process = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        ...this.persistence,
        '--dir',
        this.dir,
        '--enable-debug-command',
        'local',
        ...this.extra,
      ],
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
        const answer = (ok) => {
          socket.destroy();
          resolve(ok);
        };
        socket.on('error', () => answer(false));
        socket.on('data', (data) => answer(data.toString().startsWith('+PONG')));
        socket.write('PING\r\n');
        setTimeout(() => answer(false), 200);
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
    // The first signal this child object sends (see signal()).
    this.process.kill('SIGKILL');
    await once(this.process, 'exit');
  }

  async stop() {
    await endProcess(this.process);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * High availability with Sentinel: a master, a replica and three sentinels
 * (quorum 2) watching them as `mymaster`, each a redis-server of its own on
 * a free port of 127.0.0.1. The master is deemed down after 1 s without an
 * answer. Resolves once every sentinel knows the replica and the other two.
 */
export class SentinelGroup {
  static NAME = 'mymaster';

  static async start() {
    const group = new SentinelGroup();
    group.master = await Redis.start({ durable: false, extra: ['--repl-diskless-sync-delay', '0'] });
    group.replica = await Redis.start({ durable: false, replicaOf: group.master.port });
    await until(
      async () => {
        const [info] = await redisCommands(group.replica.port, [['INFO', 'replication']]);
        return String(info).includes('master_link_status:up');
      },
      30_000,
      'the replica to sync with the master',
    );
    group.dir = mkdtempSync(join(tmpdir(), 'native-sse-sentinel-'));
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(group.dir, `sentinel-${i}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${group.dir}`,
          `sentinel monitor ${SentinelGroup.NAME} 127.0.0.1 ${group.master.port} 2`,
          `sentinel down-after-milliseconds ${SentinelGroup.NAME} 1000`,
          `sentinel failover-timeout ${SentinelGroup.NAME} 10000`,
          `sentinel parallel-syncs ${SentinelGroup.NAME} 1`,
          '',
        ].join('\n'),
      );
      const process = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
      group.sentinels.push({ port, process });
    }
    await until(
      async () => {
        for (const { port } of group.sentinels) {
          const [replicas, others] = await redisCommands(port, [
            ['SENTINEL', 'REPLICAS', SentinelGroup.NAME],
            ['SENTINEL', 'SENTINELS', SentinelGroup.NAME],
          ]).catch(() => [null, null]);
          if (!Array.isArray(replicas) || replicas.length !== 1 || !Array.isArray(others) || others.length !== 2)
            return false;
        }
        return true;
      },
      30_000,
      'the sentinels to know the replica and each other',
    );
    return group;
  }

  sentinels = [];

  /** The URL a Channel is given: the sentinels, and the master's name. */
  get url() {
    return `redis+sentinel://${this.sentinels.map(({ port }) => `127.0.0.1:${port}`).join(',')}/${SentinelGroup.NAME}`;
  }

  /** The port of the master the sentinels name now (the first that answers). */
  async masterPort() {
    for (const { port } of this.sentinels) {
      const [address] = await redisCommands(port, [['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SentinelGroup.NAME]]).catch(
        () => [null],
      );
      if (Array.isArray(address)) return Number(String(address[1]));
    }
    return null;
  }

  async stop() {
    for (const { process } of this.sentinels) await endProcess(process);
    await this.master?.stop();
    await this.replica?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A Redis Cluster of three masters, with `replicas` replicas each (none by
 * default), each a redis-server of its own on a free port of 127.0.0.1,
 * joined by `redis-cli --cluster create` (the slots split in three). A
 * master that does not answer for 2 s is deemed failed; `ports` picks the
 * nodes' ports (free ones by default). Resolves once every node says the
 * cluster is ok.
 */
export class RedisCluster {
  static async start({ replicas = 0, ports = [] } = {}) {
    const cluster = new RedisCluster();
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      const port = ports[i] ?? (await freeClusterPort());
      cluster.nodes.push(
        await Redis.start({
          durable: false,
          port,
          extra: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      );
    }
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      // It waits for the nodes to agree, with no bound of its own.
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (create.status !== 0)
      throw new Error(
        `redis-cli --cluster create failed (${create.signal ?? create.status}): ${create.stdout}${create.stderr}`,
      );
    await cluster.untilOk(cluster.nodes);
    return cluster;
  }

  nodes = [];

  get url() {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  /** Resolves once each of `nodes` says cluster_state:ok. */
  async untilOk(nodes) {
    await until(
      async () => {
        for (const node of nodes) {
          const [info] = await node.commands([['CLUSTER', 'INFO']]).catch(() => ['']);
          if (!String(info).includes('cluster_state:ok')) return false;
        }
        return true;
      },
      30_000,
      'the cluster to be ok',
    );
  }

  /** The node that holds `key`'s slot now. */
  async nodeOf(key) {
    // Asked of a node that answers: any of them may be down.
    let slot;
    for (const node of this.nodes) {
      [slot] = await node.commands([['CLUSTER', 'KEYSLOT', key]]).catch(() => [undefined]);
      if (slot !== undefined) break;
    }
    for (const node of this.nodes) {
      const [slots] = await node.commands([['CLUSTER', 'SLOTS']]).catch(() => [null]);
      if (!Array.isArray(slots)) continue;
      for (const [start, end, [, port]] of slots) {
        if (slot >= start && slot <= end) return this.nodes.find((n) => n.port === Number(port));
      }
    }
    return null;
  }

  async stop() {
    for (const node of this.nodes) await node.stop();
  }
}

/** Whether redis-server is on the PATH. */
export const hasRedis = spawnSync('redis-server', ['--version']).status === 0;

/**
 * One redis-server for a test file: started before its tests, stopped after
 * them (`file.redis`); and stream names no other test uses (`nextStream()`).
 */
export function redisForFile(prefix) {
  let streams = 0;
  const file = { redis: null, nextStream: () => `${prefix}-${process.pid}-${++streams}` };
  test.before(async () => {
    file.redis = await Redis.start();
  });
  test.after(() => file.redis?.stop());
  return file;
}

/**
 * Registers a file's Redis tests, or, without redis-server on the PATH, says
 * loudly that they did not run (and fails under CI).
 */
export function redisSuite(register) {
  if (hasRedis) {
    register();
    return;
  }
  const notice =
    'redis-server is not on the PATH: the Redis-backed Channel tests did NOT run (apt-get install redis-server)';
  console.error(`\n${'!'.repeat(notice.length)}\n${notice}\n${'!'.repeat(notice.length)}\n`);
  if (process.env.CI) test('redis-server is installed (required under CI)', () => assert.fail(notice));
}

/**
 * A server process with a Redis-backed channel (__test__/fixtures/redis-app.mjs),
 * ended after the test. `env` adds settings (MAX_LEN, STOP_MAX_AGE).
 */
export async function startApp(t, redis, stream, env = {}) {
  // Warnings are read through /stats; --no-warnings keeps them off stderr.
  const child = spawn(process.execPath, ['--no-warnings', '__test__/fixtures/redis-app.mjs'], {
    cwd: new URL('..', import.meta.url),
    env: { ...process.env, REDIS_URL: redis.url, STREAM: stream, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => endProcess(child));
  const line = await firstLine(child);
  const url = String(line).trim();
  const get = async (path) => {
    const response = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(60_000) });
    return { status: response.status, body: await response.text() };
  };
  return {
    url,
    child,
    async publish(text, { event } = {}) {
      const query = new URLSearchParams({ text });
      if (event !== undefined) query.set('event', event);
      const { status, body } = await get(`/publish?${query}`);
      return { ok: status === 200, status, body };
    },
    /** `n` broadcasts issued without awaiting; resolves to their outcomes. */
    async burst(n, prefix, size = 0) {
      return JSON.parse((await get(`/burst?n=${n}&prefix=${prefix}&size=${size}`)).body);
    },
    async stats(reset = false) {
      return JSON.parse((await get(`/stats${reset ? '?reset' : ''}`)).body);
    },
    async stopAll() {
      await get('/stop');
    },
    /** channel.deleteHistory() in the app: `true` or `false`, or why not. */
    async deleteHistory() {
      return (await get('/delete')).body;
    },
  };
}

/** A process of __test__/fixtures/redis-rooms-app.mjs, ended after the test. */
export async function startRooms(t, redis, rooms, prefix) {
  const child = spawn(process.execPath, ['--no-warnings', '--expose-gc', '__test__/fixtures/redis-rooms-app.mjs'], {
    cwd: new URL('..', import.meta.url),
    env: { ...process.env, REDIS_URL: redis.url, ROOMS: String(rooms), PREFIX: prefix },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => endProcess(child));
  const line = await firstLine(child);
  const url = String(line).trim();
  return {
    url,
    async stats() {
      return (await fetch(`${url}/stats`, { signal: AbortSignal.timeout(60_000) })).json();
    },
    async burst(list) {
      const response = await fetch(`${url}/burst`, {
        method: 'POST',
        body: JSON.stringify(list),
        signal: AbortSignal.timeout(60_000),
      });
      return response.json();
    },
  };
}

/**
 * A CA, and a server and a client certificate it signed (the server's for
 * IP 127.0.0.1), made with the openssl command in a fresh folder; returns
 * the file paths and their PEM text.
 */
export function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), 'native-sse-tls-'));
  const path = (name) => join(dir, name);
  const openssl = (...args) => {
    const run = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
  };
  const key = (name) => openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', name);
  key('ca.key');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=native-sse test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  for (const [name, usage, san] of [
    ['server', 'serverAuth', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'clientAuth', 'subjectAltName=DNS:client'],
  ]) {
    key(`${name}.key`);
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    writeFileSync(
      path(`${name}.ext`),
      `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=${usage}\n${san}\n`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    );
  }
  // PKCS#8, the form every TLS stack reads.
  for (const name of ['server', 'client'])
    openssl('pkcs8', '-topk8', '-nocrypt', '-in', `${name}.key`, '-out', `${name}.pem`);
  const read = (name) => readFileSync(path(name), 'utf8');
  return {
    dir,
    files: { ca: path('ca.crt'), cert: path('server.crt'), key: path('server.pem') },
    ca: read('ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
