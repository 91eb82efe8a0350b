// Frameworks and their middleware in front of an adopted endpoint (Rust
// owns the connection): Express 5 with morgan, cors, helmet and
// express-session; Fastify with its onResponse hook; Koa with an
// on-finished logger, as koa-logger does; NestJS on Express with morgan.
// Each stream is adopted (counted), and each logger runs once, when the
// stream really ends, with its status and a duration as long as the stream
// was open: as on Node's own path, which each case is run on too and
// compared with.
import test from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { EventEndpoint, diagnostics } from 'native-sse';
import { RawClient, until, parseEventStream } from './helpers.mjs';

const linux = existsSync('/proc/self/fd') && !globalThis.Bun && !globalThis.Deno;
/** How long each stream is kept open before it ends: the loggers' figures
 * must be at least this. */
const OPEN_MS = 300;

/** Opens a stream on `port`, waits for its first event, keeps it open
 * OPEN_MS, then ends it: the client leaves (`leave`), or the server closes
 * it (`close`). Returns when the logs say it ended, with what they said. */
async function streamOnce(t, { port, path, endpoints, logs, end }) {
  const client = RawClient.connect(port, { path });
  t.after(() => client.destroy());
  await until(() => parseEventStream(client.body).events.length === 1, 20_000, 'the first event');
  const opened = performance.now();
  await new Promise((resolve) => setTimeout(resolve, OPEN_MS));
  assert.deepEqual(logs, [], 'nothing logged while the stream is open');
  const endpoint = endpoints.at(-1);
  if (end === 'leave') client.destroy();
  else endpoint.close();
  await until(() => endpoint.closed, 10_000, 'the endpoint to close');
  await until(() => logs.length > 0, 10_000, 'the log line');
  // Once, not twice: every listener is called in the same turn, so a
  // second line would be here by the next one.
  await new Promise((resolve) => setImmediate(resolve));
  return { logs: [...logs], open: performance.now() - opened };
}

/** Runs `make(adopt)` (a started app: { port, path, endpoints, logs,
 * close }) on Node's path and adopted, ending the stream as `end` says,
 * and checks each logged the same (status), late enough (duration), and
 * that the adopted one was adopted. */
async function bothPaths(t, make, end, check) {
  const results = {};
  for (const adopt of [false, true]) {
    const app = await make(adopt);
    t.after(() => app.close());
    const adoptedBefore = diagnostics().adopted;
    const result = await streamOnce(t, { ...app, end });
    result.adopted = diagnostics().adopted - adoptedBefore;
    results[adopt ? 'adopted' : 'node'] = result;
  }
  assert.equal(results.node.adopted, 0);
  assert.equal(results.adopted.adopted, 1, 'the stream was adopted');
  for (const [path, { logs }] of Object.entries(results)) check(path, logs);
  return results;
}

/** A started app on a node:http `server`, as bothPaths() takes it. */
async function served(server, endpoints, logs) {
  if (!server.listening) await once(server, 'listening');
  return {
    port: server.address().port,
    path: '/events',
    endpoints,
    logs,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Express 5 with morgan (its total time), cors, helmet, express-session. */
async function expressApp(adopt) {
  const { default: express } = await import('express');
  const { default: morgan } = await import('morgan');
  const { default: cors } = await import('cors');
  const { default: helmet } = await import('helmet');
  const { default: session } = await import('express-session');
  const logs = [];
  const endpoints = [];
  const app = express();
  app.use(morgan(':method :url :status :total-time[0]', { stream: { write: (line) => logs.push(line.trim()) } }));
  app.use(cors());
  app.use(helmet());
  app.use(session({ secret: 'test only', resave: false, saveUninitialized: true }));
  app.get('/events', async (req, res) => {
    // An await before the endpoint, as an auth check's.
    await new Promise((resolve) => setImmediate(resolve));
    const endpoint = new EventEndpoint(req, res, { adopt, keepAlive: 0 });
    endpoints.push(endpoint);
    endpoint.send('hello');
  });
  return served(app.listen(0, '127.0.0.1'), endpoints, logs);
}

const morganCheck = (path, logs) => {
  assert.equal(logs.length, 1, `${path}: one line: ${logs.join(' | ')}`);
  const [method, url, status, ms] = logs[0].split(' ');
  assert.deepEqual([method, url, status], ['GET', '/events', '200'], `${path}: ${logs[0]}`);
  assert.ok(Number(ms) >= OPEN_MS, `${path}: the total time (${ms} ms) covers the stream`);
};

test('Express 5 with morgan, cors, helmet and express-session: adopted, and morgan logs once, when the client leaves, as on Node’s path', {
  skip: !linux,
}, async (t) => {
  await bothPaths(t, expressApp, 'leave', morganCheck);
});

test('Express 5 with morgan, cors, helmet and express-session: a stream the server closes is logged once, when it ends', {
  skip: !linux,
}, async (t) => {
  await bothPaths(t, expressApp, 'close', morganCheck);
});

/** Fastify, the endpoint on reply.raw (hijacked), its onResponse hook. */
async function fastifyApp(adopt) {
  const { default: Fastify } = await import('fastify');
  const logs = [];
  const endpoints = [];
  const app = Fastify();
  app.addHook('onResponse', async (request, reply) => {
    logs.push(`${request.method} ${request.url} ${reply.raw.statusCode} ${Math.round(reply.elapsedTime)}`);
  });
  app.get('/events', (request, reply) => {
    reply.hijack();
    const endpoint = new EventEndpoint(request.raw, reply.raw, { adopt, keepAlive: 0 });
    endpoints.push(endpoint);
    endpoint.send('hello');
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: app.server.address().port, path: '/events', endpoints, logs, close: () => app.close() };
}

test('Fastify: adopted, and its onResponse hook runs once, when the server closes the stream, as on Node’s path', {
  skip: !linux,
}, async (t) => {
  await bothPaths(t, fastifyApp, 'close', morganCheck);
});

/** Koa with ctx.respond = false and a logger on on-finished (koa-logger's
 * way). */
async function koaApp(adopt) {
  const { default: Koa } = await import('koa');
  const { default: onFinished } = await import('on-finished');
  const logs = [];
  const endpoints = [];
  const app = new Koa();
  app.use(async (ctx, next) => {
    const started = performance.now();
    onFinished(ctx.res, () =>
      logs.push(`${ctx.method} ${ctx.url} ${ctx.res.statusCode} ${Math.round(performance.now() - started)}`),
    );
    await next();
  });
  app.use((ctx) => {
    ctx.respond = false;
    const endpoint = new EventEndpoint(ctx.req, ctx.res, { adopt, keepAlive: 0 });
    endpoints.push(endpoint);
    endpoint.send('hello');
  });
  return served(app.listen(0, '127.0.0.1'), endpoints, logs);
}

test('Koa with an on-finished logger: adopted, and the line is written once, when the client leaves, as on Node’s path', {
  skip: !linux,
}, async (t) => {
  await bothPaths(t, koaApp, 'leave', morganCheck);
});

/** NestJS on Express, morgan in front, a controller's route handing the
 * endpoint the raw request and response. */
async function nestApp(adopt) {
  await import('reflect-metadata');
  const { Module, Controller, Get, Req, Res } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { default: morgan } = await import('morgan');
  const logs = [];
  const endpoints = [];
  class EventsController {
    events(req, res) {
      const endpoint = new EventEndpoint(req, res, { adopt, keepAlive: 0 });
      endpoints.push(endpoint);
      endpoint.send('hello');
    }
  }
  // Decorators applied by hand: this file is JavaScript.
  Controller()(EventsController);
  const descriptor = Object.getOwnPropertyDescriptor(EventsController.prototype, 'events');
  Get('events')(EventsController.prototype, 'events', descriptor);
  Req()(EventsController.prototype, 'events', 0);
  Res()(EventsController.prototype, 'events', 1);
  Reflect.defineMetadata('design:paramtypes', [Object, Object], EventsController.prototype, 'events');
  class AppModule {}
  Module({ controllers: [EventsController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  app.use(morgan(':method :url :status :total-time[0]', { stream: { write: (line) => logs.push(line.trim()) } }));
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer();
  return { port: server.address().port, path: '/events', endpoints, logs, close: () => app.close() };
}

test('NestJS on Express with morgan: adopted, and morgan logs once, when the client leaves, as on Node’s path', {
  skip: !linux,
}, async (t) => {
  await bothPaths(t, nestApp, 'leave', morganCheck);
});
