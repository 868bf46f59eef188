// mesa-gateway given REDIS_URI: two gateways and the npm @cryb/mesa
// Dispatcher on one redis-server (started here on a free port).
// Usage: node gateway_redis_test.js path/to/mesa-gateway
'use strict';
const assert = require('assert');
const h = require('../support/harness');
const { within, eventually, jwt } = h;

const { Message, Dispatcher } = h.load('@cryb/mesa');
const Redis = h.load('ioredis');

const binary = process.argv[2];
const fail = (e) => { console.log(`not ok - ${(e && e.stack) || e}`); h.cleanup(); process.exit(1); };
process.on('unhandledRejection', fail);
h.deadline(100000, 'not ok - overall timeout (100 s)');

(async () => {
  const redisServer = await h.startRedis();
  const { port: redisPort, uri } = redisServer;
  const redis = new Redis(uri, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});

  const KEY = 'k';
  const env = { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: uri, MESA_NAMESPACE: 'gw', SYNC_ENABLED: 'true', ENABLE_LOGGING: 'true' };
  const a = await h.startGateway(binary, env);
  const b = await h.startGateway(binary, env);
  assert.match(a.log, new RegExp(`broker redis at 127\\.0\\.0\\.1:${redisPort}, namespace gw`));
  await eventually('health says redis connected', async () => {
    const health = (await h.httpRequest(a.port, 'GET', '/health')).json;
    assert.deepStrictEqual([health.status, health.broker, health.redis], ['ok', 'redis', true]);
    assert.match((await h.httpRequest(a.port, 'GET', '/metrics')).body, /\nmesa_broker_connected 1\n/);
  });
  console.log('ok - start-up on Redis, /health and /metrics report it');

  const alice = await h.openClient(a.url);
  assert.deepStrictEqual(await within(5000, alice.authenticate({ token: jwt({ id: 'alice' }, KEY) }), 'auth'), { id: 'alice' });
  await eventually('alice in connected_clients_gw', async () => assert.strictEqual(await redis.sismember('connected_clients_gw', 'alice'), 1));

  // The npm Dispatcher reaches a client of gateway A through Redis.
  const dispatcher = new Dispatcher(uri, { namespace: 'gw', sync: { enabled: true } });
  const got = h.nextMessage(alice, 'FROM_NODE');
  dispatcher.dispatch(new Message(0, { via: 'dispatcher' }, 'FROM_NODE'), ['alice']);
  assert.deepStrictEqual((await got).data, { via: 'dispatcher' });
  console.log('ok - npm Dispatcher -> Redis -> gateway -> npm Client');

  // HTTP dispatch on gateway B reaches alice on gateway A.
  const got2 = h.nextMessage(alice, 'FROM_B');
  assert.strictEqual((await h.httpRequest(b.port, 'POST', '/dispatch', { body: { message: { d: { n: 2 }, t: 'FROM_B' }, recipients: ['alice'] } })).status, 202);
  assert.deepStrictEqual((await got2).data, { n: 2 });
  console.log('ok - HTTP dispatch on one gateway reaches a client of another');

  // The Dispatcher stores for offline ids; gateway B redelivers on authentication.
  dispatcher.dispatch(new Message(0, { n: 3 }, 'OFFLINE'), ['bob']);
  await eventually('stored for bob', async () => assert.ok(await redis.hexists('undelivered_messages_gw', 'bob')));
  const bob = await h.openClient(b.url);
  const later = h.nextMessage(bob, 'OFFLINE');
  await within(5000, bob.authenticate({ token: jwt({ id: 'bob' }, KEY) }), 'auth bob');
  const m = await later;
  assert.deepStrictEqual([m.data, m.sequence], [{ n: 3 }, 1]);
  console.log('ok - Node Dispatcher sync: stored offline, redelivered by the gateway');

  // Stores that no replica acknowledges (this Redis has none): 503 that says
  // the message was taken, and each socket has it once (from the broker), not
  // also from the gateway's fallback for a broker that took nothing.
  const c = await h.startGateway(binary, { ...env, REDIS_REPLICAS_TO_ACKNOWLEDGE: '1', REDIS_REPLICA_TIMEOUT: '200' });
  const carol = await h.openClient(c.url);
  await within(5000, carol.authenticate({ token: jwt({ id: 'carol' }, KEY) }), 'auth carol');
  await eventually('carol in connected_clients_gw', async () => assert.strictEqual(await redis.sismember('connected_clients_gw', 'carol'), 1));
  for (let n = 0; n < 3; ++n) {
    const r = await h.httpRequest(c.port, 'POST', '/dispatch', { body: { message: { d: { n }, t: 'UNCONFIRMED' }, recipients: ['carol'] } });
    assert.strictEqual(r.status, 503);
    assert.match(r.body, /took the message but could not confirm it/);
  }
  await eventually('carol got the three', () => assert.strictEqual(carol.got.filter((m) => m.type === 'UNCONFIRMED').length, 3));
  await h.sleep(500);
  assert.deepStrictEqual(carol.got.filter((m) => m.type === 'UNCONFIRMED').map((m) => m.data.n), [0, 1, 2]);
  carol.disconnect(1000);
  c.proc.kill('SIGTERM');
  await within(5000, c.exited, 'gateway C exit');
  console.log('ok - a store no replica acknowledges: 503 saying it was taken, delivered once');

  // SIGTERM cleans the cluster state.
  a.proc.kill('SIGTERM');
  assert.strictEqual((await within(5000, alice.closed, 'alice closed')).code, 1001);
  assert.deepStrictEqual(await within(5000, a.exited, 'gateway A exit'), { code: 0, signal: null });
  assert.strictEqual(await redis.sismember('connected_clients_gw', 'alice'), 0);
  assert.strictEqual(await redis.sismember('connected_clients_gw', 'bob'), 1);
  b.proc.kill('SIGTERM');
  assert.strictEqual((await within(5000, bob.closed, 'bob closed')).code, 1001);
  assert.deepStrictEqual(await within(5000, b.exited, 'gateway B exit'), { code: 0, signal: null });
  assert.strictEqual(await redis.scard('connected_clients_gw'), 0);
  assert.strictEqual(Number(await redis.get('connected_clients_count_gw')), 0);
  console.log('ok - SIGTERM: 1001, exit 0, connected_clients and the count cleaned');

  // A Redis that is up but silent (SIGSTOP): dispatches answer 503 within
  // REDIS_COMMAND_TIMEOUT (not when Redis comes back), /ready 503; after SIGCONT, 202.
  const d = await h.startGateway(binary, { ...env, REDIS_COMMAND_TIMEOUT: '500', MESA_READY_GRACE: '0' });
  const dispatchTo = () => h.httpRequest(d.port, 'POST', '/dispatch', { body: { message: { d: {}, t: 'PAUSED' }, recipients: ['dave'] }, ms: 10000 });
  await eventually('gateway D ready', async () => assert.strictEqual((await h.httpRequest(d.port, 'GET', '/ready')).status, 200));
  assert.strictEqual((await dispatchTo()).status, 202);
  redisServer.proc.kill('SIGSTOP');
  try {
    const started = Date.now();
    const r = await dispatchTo();
    assert.strictEqual(r.status, 503);
    assert.ok(r.headers['retry-after'], 'a 503 with Retry-After');
    assert.ok(Date.now() - started < 3000, `answered after ${Date.now() - started} ms`);
    await eventually('/ready 503 while Redis is paused', async () => assert.strictEqual((await h.httpRequest(d.port, 'GET', '/ready')).status, 503));
    assert.strictEqual((await h.httpRequest(d.port, 'GET', '/health')).json.redis, false);
  } finally {
    redisServer.proc.kill('SIGCONT');
  }
  await eventually('202 again after SIGCONT', async () => assert.strictEqual((await dispatchTo()).status, 202), 15000);
  await eventually('/ready 200 again', async () => assert.strictEqual((await h.httpRequest(d.port, 'GET', '/ready')).status, 200));
  d.proc.kill('SIGTERM');
  await within(5000, d.exited, 'gateway D exit');
  console.log('ok - a paused Redis: 503 within the command timeout, /ready 503, 202 after it resumes');

  dispatcher.redis.disconnect();
  dispatcher.publisher.disconnect();
  redis.disconnect();
  h.cleanup();
  console.log('all passed');
  process.exit(0);
})().catch(fail);
