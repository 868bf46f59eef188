// Exact presence and sync across gateways over real sockets and a real
// redis-server (started here on a free port), with npm @cryb/mesa Clients:
// a user with two tabs on two gateways, a gateway killed with SIGKILL, a
// redelivery cut short, sequential dispatches served by two instances, and
// repeated recipients.
// Usage: node presence_test.js path/to/mesa-gateway
'use strict';
const assert = require('assert');
const h = require('../support/harness');
const { within, eventually, test } = h;

const Redis = h.load('ioredis');
const gatewayBin = process.argv[2];
if (!gatewayBin) {
  console.error('usage: node presence_test.js mesa-gateway');
  process.exit(2);
}
h.deadline(170000, 'not ok - overall timeout (170 s)');

const KEY = 'presence-secret';
const TTL = 1000; // MESA_PRESENCE_TTL of these gateways
let redis, uri;

async function gateway (name, env = {}) {
  const g = await h.startGateway(gatewayBin, {
    MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: uri, SYNC_ENABLED: 'true', MESA_PRESENCE_TTL: String(TTL), MESA_THREADS: '1', ...env
  }, `gateway ${name}`);
  await eventually(`${name} connected to redis`, async () => {
    assert.strictEqual((await h.httpRequest(g.port, 'GET', '/health')).json.status, 'ok');
  }, 10000);
  h.onCleanup(() => g.proc.kill('SIGKILL'));
  return g;
}
async function connectAs (g, id) {
  const c = await h.openClient(g.url, `${id}@${g.name}`);
  await within(5000, c.authenticate({ token: h.jwt({ id }, KEY) }), `authenticate ${id}`);
  return c;
}
async function dispatch (g, body) {
  const r = await h.httpRequest(g.port, 'POST', '/dispatch', { body });
  assert.strictEqual(r.status, 202, `POST /dispatch: ${r.status} ${r.body}`);
}
const online = async (id) => (await redis.sismember('connected_clients', id)) === 1;
const count = async () => Number(await redis.get('connected_clients_count'));
const ofType = (c, t) => c.got.filter((m) => m.type === t);

test('two tabs on two gateways: closing one keeps the user online, the other tab gets what follows', async () => {
  const a = await gateway('A');
  const b = await gateway('B');
  const tab1 = await connectAs(a, 'u1');
  const tab2 = await connectAs(b, 'u1');
  // Presence is applied by each gateway's broker step, after op 22 went out
  // (a gateway still registering counts its sockets when it is done).
  await eventually('both tabs counted', async () => assert.strictEqual(Number(await redis.hget('mesa_presence', 'u1')), 2));
  const before = await count();
  tab1.disconnect(1000);
  await eventually('the count drops by one', async () => assert.strictEqual(await count(), before - 1));
  assert.ok(await online('u1'), 'u1 stays in connected_clients while a tab is open');
  await dispatch(a, { message: { t: 'AFTER', d: {} }, recipients: ['u1'] });
  await eventually('the open tab gets AFTER', () => assert.strictEqual(ofType(tab2, 'AFTER').length, 1));
  assert.strictEqual(await redis.hexists('undelivered_messages', 'u1'), 0, 'nothing parked in the backlog');
  tab2.disconnect(1000);
  await eventually('u1 offline after its last tab', async () => assert.ok(!(await online('u1'))));
  await a.stop();
  await b.stop();
});

test('a gateway killed with SIGKILL is reaped: its users go offline, messages for them are kept', async () => {
  const a = await gateway('A');
  const b = await gateway('B');
  await connectAs(a, 'u2');
  const other = await connectAs(b, 'u3');
  assert.ok(await online('u2'));
  await a.stop('SIGKILL');
  await eventually('u2 reaped after the time to live', async () => assert.ok(!(await online('u2'))), 10000);
  assert.strictEqual(await count(), 1, 'only u3\'s connection is counted');
  await dispatch(b, { message: { t: 'WHILE_DEAD', d: { n: 1 } }, recipients: ['u2'] });
  await eventually('stored for u2', async () => assert.strictEqual(await redis.hexists('undelivered_messages', 'u2'), 1));
  const back = await connectAs(b, 'u2');
  await eventually('redelivered on reconnection', () => assert.strictEqual(ofType(back, 'WHILE_DEAD').length, 1));
  back.disconnect(1000);
  other.disconnect(1000);
  await b.stop();
});

test('a redelivery cut short keeps what was not confirmed, in order', async () => {
  const g = await gateway('R', { SYNC_REDELIVERY_INTERVAL: '300' });
  for (let n = 1; n <= 10; n++) await dispatch(g, { message: { t: 'N', d: { n } }, recipients: ['pat'] });
  const pat = await connectAs(g, 'pat');
  await eventually('3 received', () => assert.ok(ofType(pat, 'N').length >= 3), 10000);
  pat.disconnect(1000);
  await pat.closed;
  const first = ofType(pat, 'N').length;
  // What was not sent, and what was sent but not confirmed by an op 11 before
  // the close (at least once: the last received may come again), is put back.
  await eventually('the rest put back', async () => {
    const stored = JSON.parse((await redis.hget('undelivered_messages', 'pat')) || '[]');
    assert.ok(stored.length >= 10 - first && stored.length <= 10, `${stored.length} stored after ${first} received`);
    assert.strictEqual(stored[stored.length - 1].d.n, 10);
  }, 5000);
  const again = await connectAs(g, 'pat');
  await eventually('the rest redelivered', () => assert.strictEqual(ofType(again, 'N').slice(-1)[0]?.data.n, 10), 10000);
  const rest = ofType(again, 'N').map((m) => m.data.n);
  assert.ok(rest[0] <= first + 1, `nothing lost: ${first} received, then ${rest}`);
  assert.deepStrictEqual(rest, Array.from({ length: rest.length }, (_, i) => rest[0] + i), 'in order, each once');
  again.disconnect(1000);
  await g.stop();
});

test('sequential dispatches served by two instances keep their order, offline and while the user authenticates', async () => {
  const g = await gateway('T', { MESA_THREADS: '2' });
  for (let n = 1; n <= 100; n++) await dispatch(g, { message: { t: 'S', d: { n } }, recipients: ['seq'] });
  const first = await connectAs(g, 'seq');
  await eventually('100 redelivered', () => assert.strictEqual(ofType(first, 'S').length, 100), 10000);
  assert.deepStrictEqual(ofType(first, 'S').map((m) => m.data.n), Array.from({ length: 100 }, (_, i) => i + 1));
  first.disconnect(1000);
  await first.closed;

  // 300 more, sent one after the other while the user connects and authenticates.
  let sent = 0;
  const sending = (async () => {
    while (sent < 300) await dispatch(g, { message: { t: 'L', d: { n: ++sent } }, recipients: ['seq'] });
  })();
  while (sent < 50) await h.sleep(5);
  const second = await connectAs(g, 'seq');
  await sending;
  await eventually('all 300 arrive', () => assert.strictEqual(new Set(ofType(second, 'L').map((m) => m.data.n)).size, 300), 10000);
  const order = ofType(second, 'L').map((m) => m.data.n);
  assert.deepStrictEqual(order, Array.from({ length: 300 }, (_, i) => i + 1), 'in order, each once');
  assert.strictEqual(await redis.hexists('undelivered_messages', 'seq'), 0, 'nothing parked while the user is online');
  second.disconnect(1000);
  await g.stop();
});

test('sequential dispatches alternating between two gateways of two instances reach every tab in order', async () => {
  const g1 = await gateway('P', { MESA_THREADS: '2' });
  const g2 = await gateway('Q', { MESA_THREADS: '2' });
  const tabs = [];
  for (let i = 0; i < 6; i++) tabs.push(await connectAs(i % 2 ? g1 : g2, 'many'));
  for (let n = 1; n <= 200; n++) await dispatch(n % 2 ? g1 : g2, { message: { t: 'A', d: { n } }, recipients: ['many'] });
  for (const [i, tab] of tabs.entries()) {
    await eventually(`tab ${i} gets all 200`, () => assert.strictEqual(ofType(tab, 'A').length, 200), 10000);
    assert.deepStrictEqual(ofType(tab, 'A').map((m) => m.data.n), Array.from({ length: 200 }, (_, k) => k + 1), `tab ${i} in order`);
  }
  for (const tab of tabs) tab.disconnect(1000);
  await g1.stop();
  await g2.stop();
});

test('a dispatch the broker cannot take is answered 503, and 202 again once Redis is back', async () => {
  const own = await h.startRedis();
  const g = await h.startGateway(gatewayBin, { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: own.uri, SYNC_ENABLED: 'true', MESA_THREADS: '1' }, 'gateway O');
  h.onCleanup(() => g.proc.kill('SIGKILL'));
  await eventually('O connected', async () => assert.strictEqual((await h.httpRequest(g.port, 'GET', '/health')).json.status, 'ok'), 10000);
  await own.stop();
  await eventually('O degraded', async () => assert.strictEqual((await h.httpRequest(g.port, 'GET', '/health')).json.status, 'degraded'), 10000);
  const r = await h.httpRequest(g.port, 'POST', '/dispatch', { body: { message: { t: 'X', d: {} }, recipients: ['nobody'] } });
  assert.strictEqual(r.status, 503, r.body);
  assert.strictEqual(r.headers['retry-after'], '1');
  await g.stop();
});

test('repeated recipients get a message once, over HTTP and from a Node-style publication', async () => {
  const g = await gateway('D');
  const u = await connectAs(g, 'dup');
  const u2 = await connectAs(g, 'dup');
  await dispatch(g, { message: { t: 'NEWS', d: { x: 1 } }, recipients: ['dup', 'dup'] });
  await redis.publish('ws', JSON.stringify({ message: { op: 0, t: 'NODE', d: {} }, recipients: ['dup', 'dup'] }));
  await dispatch(g, { message: { t: 'END', d: {} }, recipients: ['dup'] });
  for (const c of [u, u2]) {
    await eventually('END arrives', () => assert.strictEqual(ofType(c, 'END').length, 1));
    assert.strictEqual(ofType(c, 'NEWS').length, 1);
    assert.strictEqual(ofType(c, 'NODE').length, 1);
  }
  u.disconnect(1000);
  u2.disconnect(1000);
  await g.stop();
});

(async () => {
  const server = await h.startRedis();
  uri = server.uri;
  redis = new Redis(server.port, '127.0.0.1');
  redis.on('error', () => {});
  h.onCleanup(() => redis.disconnect());
  await h.runTests();
})().catch((e) => { console.log(`not ok - ${e.stack || e}`); h.cleanup(); process.exit(1); });
