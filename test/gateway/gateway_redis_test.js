// mesa-gateway given REDIS_URI: two gateways and the npm @cryb/mesa
// Dispatcher on one redis-server (started here on a free port).
// Usage: node gateway_redis_test.js path/to/mesa-gateway
'use strict';
const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const http = require('http');
const net = require('net');
const path = require('path');
const assert = require('assert');

const modules = path.join(__dirname, '..', 'interop', 'node_modules');
const load = (name) => { try { return require(name); } catch (_) { return require(path.join(modules, name)); } };
const { Client, Message, Dispatcher } = load('@cryb/mesa');
const Redis = load('ioredis');

const binary = process.argv[2];
const children = new Set();
const cleanup = () => { for (const p of children) { try { p.kill('SIGKILL'); } catch (_) {} } };
process.on('exit', cleanup);
const fail = (e) => { console.log(`not ok - ${(e && e.stack) || e}`); cleanup(); process.exit(1); };
process.on('unhandledRejection', fail);
setTimeout(() => fail('overall timeout (100 s)'), 100000).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function within (ms, promise, what) {
  let timer;
  return Promise.race([promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timeout (${ms} ms): ${what}`)), ms); })]);
}
function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
async function eventually (what, check, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    try { return await check(); } catch (e) { if (Date.now() > end) throw new Error(`${what}: ${e.message}`); }
    await sleep(50);
  }
}
const b64url = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function jwt (payload, key) {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  return `${input}.${crypto.createHmac('sha256', key).update(input).digest('base64url')}`;
}
function get (port, target) {
  return within(5000, new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    }).on('error', reject);
  }), `GET ${target}`);
}
function post (port, target, body) {
  return within(5000, new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: target, agent: false }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  }), `POST ${target}`);
}

async function startGateway (env) {
  const proc = spawn(binary, [], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  const g = { proc, stderr: '' };
  g.exited = new Promise((resolve) => proc.on('exit', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
  g.port = await within(10000, new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      g.stderr += chunk;
      const m = g.stderr.match(/listening on port (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    g.exited.then(({ code }) => reject(new Error(`gateway exited early (code ${code}): ${g.stderr}`)));
  }), 'gateway start-up');
  g.url = `ws://127.0.0.1:${g.port}`;
  return g;
}

async function connect (url) {
  const client = new Client(url, { autoConnect: false });
  client.on('error', () => {});
  client.closed = new Promise((resolve) => client.on('disconnected', (code) => resolve(code)));
  await within(5000, client.connect(), 'connect');
  return client;
}
const nextMessage = (client, type) => within(5000, new Promise((resolve) => {
  const on = (m) => { if (m.type === type) { client.removeListener('message', on); resolve(m); } };
  client.on('message', on);
}), `message ${type}`);

(async () => {
  if (spawnSync('redis-server', ['--version']).error) throw new Error('redis-server not found (apt-get install redis-server)');
  const redisPort = await freePort();
  const redisProc = spawn('redis-server', ['--port', String(redisPort), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.add(redisProc);
  const uri = `redis://127.0.0.1:${redisPort}`;
  const redis = new Redis(uri, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // refused until redis-server is up
  await eventually('redis-server up', async () => { await redis.connect().catch(() => {}); assert.strictEqual(await redis.ping(), 'PONG'); });

  const KEY = 'k';
  const env = { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: uri, MESA_NAMESPACE: 'gw', SYNC_ENABLED: 'true', ENABLE_LOGGING: 'true' };
  const a = await startGateway(env);
  const b = await startGateway(env);
  assert.match(a.stderr, new RegExp(`broker redis at 127\\.0\\.0\\.1:${redisPort}, namespace gw`));
  await eventually('health says redis connected', async () => {
    const h = JSON.parse((await get(a.port, '/health')).body);
    assert.deepStrictEqual([h.status, h.broker, h.redis], ['ok', 'redis', true]);
    assert.match((await get(a.port, '/metrics')).body, /\nmesa_broker_connected 1\n/);
  });
  console.log('ok - start-up on Redis, /health and /metrics report it');

  const alice = await connect(a.url);
  assert.deepStrictEqual(await within(5000, alice.authenticate({ token: jwt({ id: 'alice' }, KEY) }), 'auth'), { id: 'alice' });
  await eventually('alice in connected_clients_gw', async () => assert.strictEqual(await redis.sismember('connected_clients_gw', 'alice'), 1));

  // The npm Dispatcher reaches a client of gateway A through Redis.
  const dispatcher = new Dispatcher(uri, { namespace: 'gw', sync: { enabled: true } });
  const got = nextMessage(alice, 'FROM_NODE');
  dispatcher.dispatch(new Message(0, { via: 'dispatcher' }, 'FROM_NODE'), ['alice']);
  assert.deepStrictEqual((await got).data, { via: 'dispatcher' });
  console.log('ok - npm Dispatcher -> Redis -> gateway -> npm Client');

  // HTTP dispatch on gateway B reaches alice on gateway A.
  const got2 = nextMessage(alice, 'FROM_B');
  assert.strictEqual((await post(b.port, '/dispatch', { message: { d: { n: 2 }, t: 'FROM_B' }, recipients: ['alice'] })).status, 202);
  assert.deepStrictEqual((await got2).data, { n: 2 });
  console.log('ok - HTTP dispatch on one gateway reaches a client of another');

  // The Dispatcher stores for offline ids; gateway B redelivers on authentication.
  dispatcher.dispatch(new Message(0, { n: 3 }, 'OFFLINE'), ['bob']);
  await eventually('stored for bob', async () => assert.ok(await redis.hexists('undelivered_messages_gw', 'bob')));
  const bob = await connect(b.url);
  const later = nextMessage(bob, 'OFFLINE');
  await within(5000, bob.authenticate({ token: jwt({ id: 'bob' }, KEY) }), 'auth bob');
  const m = await later;
  assert.deepStrictEqual([m.data, m.sequence], [{ n: 3 }, 1]);
  console.log('ok - Node Dispatcher sync: stored offline, redelivered by the gateway');

  // SIGTERM cleans the cluster state.
  a.proc.kill('SIGTERM');
  assert.strictEqual(await within(5000, alice.closed, 'alice closed'), 1001);
  assert.deepStrictEqual(await within(5000, a.exited, 'gateway A exit'), { code: 0, signal: null });
  assert.strictEqual(await redis.sismember('connected_clients_gw', 'alice'), 0);
  assert.strictEqual(await redis.sismember('connected_clients_gw', 'bob'), 1);
  b.proc.kill('SIGTERM');
  assert.strictEqual(await within(5000, bob.closed, 'bob closed'), 1001);
  assert.deepStrictEqual(await within(5000, b.exited, 'gateway B exit'), { code: 0, signal: null });
  assert.strictEqual(await redis.scard('connected_clients_gw'), 0);
  assert.strictEqual(Number(await redis.get('connected_clients_count_gw')), 0);
  console.log('ok - SIGTERM: 1001, exit 0, connected_clients and the count cleaned');

  dispatcher.redis.disconnect();
  dispatcher.publisher.disconnect();
  redis.disconnect();
  cleanup();
  console.log('all passed');
  process.exit(0);
})().catch(fail);
