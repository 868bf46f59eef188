// Multi-process cluster tests on a real redis-server (started here on a free
// port): mesa-gateway processes, the mesa-dispatcher and mesa-portal tools,
// and the npm @cryb/mesa@1.5.8 Client, Dispatcher, Portal and Server.
// Usage: node cluster_test.js path/to/mesa-gateway path/to/mesa-dispatcher path/to/mesa-portal
'use strict';
const { spawnSync } = require('child_process');
const assert = require('assert');
const h = require('../support/harness');
const { sleep, within, eventually } = h;

const mesa = h.load('@cryb/mesa');
const { Message, Dispatcher, Portal } = mesa;
const NodeServer = mesa.default;
const Redis = h.load('ioredis');

const [gatewayBin, dispatcherBin, portalBin] = process.argv.slice(2);
if (!gatewayBin || !dispatcherBin || !portalBin) {
  console.error('usage: node cluster_test.js mesa-gateway mesa-dispatcher mesa-portal');
  process.exit(2);
}

let current = 'start-up';
const fail = (e) => {
  console.log(`not ok - ${current}: ${(e && e.stack) || e}`);
  h.cleanup();
  process.exit(1);
};
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);
h.deadline(270000, 'not ok - overall timeout (270 s)');

// ---- helpers ---------------------------------------------------------------
const KEY = 'cluster-secret';
const jwt = (payload) => h.jwt(payload, KEY);
async function dispatchHttp (g, body) {
  const r = await h.httpRequest(g.port, 'POST', '/dispatch', { body });
  assert.strictEqual(r.status, 202, `POST /dispatch on ${g.name}: ${r.status} ${r.body}`);
}
const health = async (g) => (await h.httpRequest(g.port, 'GET', '/health')).json;
/// The open connections of each instance of `g` (its /metrics gauges, by instance number).
async function instanceConnections (g) {
  const body = (await h.httpRequest(g.port, 'GET', '/metrics')).body;
  return [...body.matchAll(/^mesa_worker_open_connections\{worker="(\d+)"\} (\d+)$/gm)].map((m) => Number(m[2]));
}
const ok = (what) => console.log(`ok - ${what}`);
// Library gaps found by a scenario that can go on: reported (and failing the run) at the end.
const gaps = [];
const gap = (what) => { console.log(`not ok - ${current}: ${what}`); gaps.push(what); };
// ioredis connections of npm objects: no unhandled error events, closed at the end.
const ioredisClients = [];
function quiet (...list) {
  for (const r of list) { r.on('error', () => {}); ioredisClients.push(r); }
}
h.onCleanup(() => { for (const r of ioredisClients) r.disconnect(); });

// ---- mesa-gateway processes ---------------------------------------------------
let uri; // of the redis-server
async function startGateway (name, env) {
  const g = await h.startGateway(gatewayBin, { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: uri, ENABLE_LOGGING: 'true', ...env }, `gateway ${name}`);
  await eventually(`gateway ${name} connected to redis`, async () => assert.strictEqual((await health(g)).status, 'ok'), 10000);
  return g;
}
async function stopGateway (g) {
  assert.deepStrictEqual(await g.stop(), { code: 0, signal: null }, `${g.name} exit status`);
}

// ---- npm Clients that record every message -------------------------------------
async function connectAs (url, id) {
  const c = await h.openClient(url, id);
  const user = await within(5000, c.authenticate({ token: jwt({ id }) }), `authenticate ${id}`);
  assert.deepStrictEqual(user, { id });
  return c;
}
async function close (c) {
  c.disconnect(1000);
  await within(5000, c.closed, `close ${c.label}`);
}
const ofType = (c, type) => c.got.filter((m) => m.type === type);
async function waitFor (c, type, n = 1, ms = 5000) {
  await eventually(`${c.label} receives ${n} x ${type}`, async () => assert.ok(ofType(c, type).length >= n, `has ${ofType(c, type).length}`), ms);
  return ofType(c, type);
}
// A later message on the same path proves the earlier ones had their chance.
let markers = 0;
async function barrier (g, list) {
  const type = `MARK_${++markers}`;
  await dispatchHttp(g, { message: { t: type, d: {} } });
  for (const c of list) await waitFor(c, type);
}
function expectCounts (type, counts) {
  for (const [c, n] of counts) assert.strictEqual(ofType(c, type).length, n, `${c.label} got ${ofType(c, type).length} x ${type}, expected ${n}`);
}

// ---- mesa-dispatcher / mesa-portal ----------------------------------------------
function runDispatcher (args, lines, ms = 30000) {
  const proc = h.spawnChild(dispatcherBin, ['--redis', uri, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c) => { stderr += c; });
  proc.stdin.on('error', () => {});
  proc.stdin.end(lines.length ? lines.join('\n') + '\n' : '');
  return within(ms, proc.exited.then(({ code }) => ({ code, stderr })), `mesa-dispatcher ${args.join(' ')}`);
}
async function dispatchCpp (args, lines) {
  const r = await runDispatcher(args, lines);
  assert.strictEqual(r.code, 0, `mesa-dispatcher ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}
async function startPortal (args) {
  const proc = h.spawnChild(portalBin, ['--redis', uri, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { proc, stderr: '', events: [], buffer: '', exited: proc.exited };
  proc.stdout.on('data', (chunk) => {
    p.buffer += chunk;
    let nl;
    while ((nl = p.buffer.indexOf('\n')) >= 0) {
      const line = p.buffer.slice(0, nl);
      p.buffer = p.buffer.slice(nl + 1);
      if (line.trim()) p.events.push(JSON.parse(line));
    }
  });
  p.id = await within(10000, new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      p.stderr += chunk;
      if (h.verbose) process.stderr.write(`[portal] ${chunk}`);
      const m = p.stderr.match(/joined the pool as (\S+)/);
      if (m) resolve(m[1]);
    });
    p.exited.then(({ code }) => reject(new Error(`mesa-portal exited early (code ${code}): ${p.stderr}`)));
  }), 'mesa-portal joins the pool');
  return p;
}

// =============================================================================
(async () => {
  let redisServer = await h.startRedis();
  uri = redisServer.uri;
  const redis = new Redis(uri, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  h.onCleanup(() => redis.disconnect());
  ok(`redis-server on port ${redisServer.port}`);

  // ---------------------------------------------------------------------------
  current = 'two gateways on one Redis';
  const NS = 'c1';
  const env = { MESA_NAMESPACE: NS, SYNC_ENABLED: 'true' };
  // A runs two instances on its port: they must reach each other's clients
  // while Redis is down too (see the outage below).
  const A = await startGateway('A', { ...env, MESA_THREADS: '2' });
  const B = await startGateway('B', env);
  const C = await startGateway('C', { MESA_NAMESPACE: 'other', SYNC_ENABLED: 'true' });
  const count = async (ns = NS) => Number(await redis.get(`connected_clients_count_${ns}`) || 0);
  const members = async (ns = NS) => (await redis.smembers(`connected_clients_${ns}`)).sort();
  assert.strictEqual(await count(), 0);

  const alice = await connectAs(A.url, 'alice');
  const anon = await h.openClient(A.url, 'anonymous');
  const bob = await connectAs(B.url, 'bob');
  const carol = await connectAs(B.url, 'carol');
  const dave = await connectAs(C.url, 'dave');
  await eventually('connected_clients and count after 4 connections, 3 authentications', async () => {
    assert.deepStrictEqual(await members(), ['alice', 'bob', 'carol']);
    assert.strictEqual(await count(), 4);
    assert.deepStrictEqual(await members('other'), ['dave']);
    assert.strictEqual(await count('other'), 1);
  });
  ok('connected_clients / connected_clients_count follow connections and authentications (namespaced)');

  const all = [alice, anon, bob, carol];
  await dispatchHttp(A, { message: { t: 'GLOBAL', d: { n: 1 } } });
  await barrier(B, all);
  expectCounts('GLOBAL', [[alice, 1], [anon, 1], [bob, 1], [carol, 1], [dave, 0]]);
  assert.deepStrictEqual(ofType(bob, 'GLOBAL')[0].data, { n: 1 });
  ok('global send on gateway A reaches every client on A and B exactly once');

  await dispatchHttp(B, { message: { t: 'TO_IDS', d: {} }, recipients: ['alice', 'bob', 'nobody-online'] });
  await dispatchHttp(A, { message: { t: 'TO_IDS2', d: {} }, recipients: ['carol'] });
  await barrier(A, all);
  expectCounts('TO_IDS', [[alice, 1], [anon, 0], [bob, 1], [carol, 0], [dave, 0]]);
  expectCounts('TO_IDS2', [[alice, 0], [anon, 0], [bob, 0], [carol, 1], [dave, 0]]);
  ok('send to ids reaches each id exactly once wherever it is connected');

  await dispatchHttp(A, { message: { t: 'EXCL', d: {} }, excluding: ['bob'] });
  await dispatchHttp(B, { message: { t: 'EXCL2', d: {} }, recipients: ['alice', 'carol'], excluding: ['carol'] });
  await barrier(A, all);
  expectCounts('EXCL', [[alice, 1], [anon, 1], [bob, 0], [carol, 1], [dave, 0]]);
  expectCounts('EXCL2', [[alice, 1], [anon, 0], [bob, 0], [carol, 0], [dave, 0]]);
  ok('excluding: everyone-but and ids-minus-excluded');

  await dispatchHttp(C, { message: { t: 'OTHER_NS', d: {} } });
  await waitFor(dave, 'OTHER_NS');
  await barrier(A, all);
  expectCounts('OTHER_NS', [[alice, 0], [anon, 0], [bob, 0], [carol, 0], [dave, 1]]);
  assert.deepStrictEqual(dave.got.map((m) => m.type), ['OTHER_NS'], 'namespace "other" got nothing else');
  ok('namespace isolation: MESA_NAMESPACE=other gets nothing of c1 and vice versa');

  await close(carol);
  await close(anon);
  await eventually('connected_clients and count after 2 disconnections', async () => {
    assert.deepStrictEqual(await members(), ['alice', 'bob']);
    assert.strictEqual(await count(), 2);
  });
  ok('connected_clients / count follow disconnections');

  // Sync across processes: stored by A, redelivered by B.
  await dispatchHttp(A, { message: { t: 'SYNCED', d: { k: 1 } }, recipients: ['erin'] });
  await dispatchHttp(A, { message: { t: 'SYNCED', d: { k: 2 } }, recipients: ['erin', 'alice'] });
  await eventually('stored for erin', async () => assert.strictEqual(JSON.parse(await redis.hget(`undelivered_messages_${NS}`, 'erin') || '[]').length, 2));
  await waitFor(alice, 'SYNCED');
  const erin = await connectAs(B.url, 'erin');
  const synced = await waitFor(erin, 'SYNCED', 2);
  assert.deepStrictEqual(synced.map((m) => [m.data.k, m.sequence]), [[1, 1], [2, 2]]);
  assert.strictEqual(await redis.hexists(`undelivered_messages_${NS}`, 'erin'), 0, 'backlog taken');
  ok('sync across processes: stored at A for offline erin, redelivered by B with s=1,2 (npm Client)');

  // ---------------------------------------------------------------------------
  current = '4 concurrent mesa-dispatcher --sync x 250';
  const N = 250;
  const W = 4;
  const runs = [];
  for (let w = 0; w < W; ++w) {
    const lines = [];
    for (let i = 0; i < N; ++i) lines.push(i % 2 ? `SEQ {"w":${w},"i":${i}}` : JSON.stringify({ op: 0, d: { w, i }, t: 'SEQ' }));
    runs.push(dispatchCpp(['--namespace', NS, '--sync', '--to', 'zed'], lines));
  }
  await Promise.all(runs);
  const stored = JSON.parse(await redis.hget(`undelivered_messages_${NS}`, 'zed') || '[]');
  assert.strictEqual(stored.length, W * N, `stored backlog of zed has ${stored.length} entries`);
  const zed = await connectAs(A.url, 'zed');
  const seq = await waitFor(zed, 'SEQ', W * N, 20000);
  await sleep(200);
  assert.strictEqual(ofType(zed, 'SEQ').length, W * N, 'no duplicates');
  assert.deepStrictEqual(seq.map((m) => m.sequence), Array.from({ length: W * N }, (_, i) => i + 1), 's = 1..1000');
  const next = new Array(W).fill(0);
  for (const m of seq) {
    assert.strictEqual(m.data.i, next[m.data.w], `dispatcher ${m.data.w}: got i=${m.data.i}, expected ${next[m.data.w]}`);
    next[m.data.w]++;
  }
  assert.deepStrictEqual(next, new Array(W).fill(N));
  ok(`${W} concurrent mesa-dispatcher --sync x ${N} to offline zed: all ${W * N} redelivered, per-dispatcher order kept, s = 1..${W * N}`);

  // mesa-dispatcher --to / --all / --exclude / --disconnect on our gateways.
  await dispatchCpp(['--namespace', NS, '--all', '--exclude', 'bob'], ['CPP_ALL {"x":1}']);
  await dispatchCpp(['--namespace', NS, '--to', 'bob'], ['CPP_BOB']);
  await barrier(A, [alice, bob, zed]);
  expectCounts('CPP_ALL', [[alice, 1], [bob, 0], [zed, 1], [dave, 0]]);
  expectCounts('CPP_BOB', [[alice, 0], [bob, 1], [zed, 0]]);
  await dispatchCpp(['--namespace', NS, '--disconnect', 'zed'], []);
  assert.strictEqual((await within(5000, zed.closed, 'zed closed by DISCONNECT_CLIENT')).code, 1000);
  const bad = await runDispatcher(['--namespace', NS, '--to', 'bob'], ['NOT_AN_OBJECT [1]']);
  assert.strictEqual(bad.code, 1, 'a bad input line fails the run');
  assert.match(bad.stderr, /line 1 skipped/);
  const deadPort = await h.freePort();
  const unreachable = await runDispatcher(['--redis', `redis://127.0.0.1:${deadPort}`, '--timeout', '1000'], ['NEVER']);
  assert.strictEqual(unreachable.code, 1, `unreachable Redis: exit ${unreachable.code}`);
  assert.match(unreachable.stderr, /unreachable within 1000 ms \(last: .*refused/i, 'the final line names the reason');
  const badArg = await runDispatcher(['--to', 'a', '--all'], []);
  assert.strictEqual(badArg.code, 2, `bad argument: exit ${badArg.code}`);
  assert.match(badArg.stderr, /--to and --all exclude each other/);
  const portalBad = spawnSync(portalBin, ['--bogus'], { encoding: 'utf8', timeout: 5000 });
  assert.strictEqual(portalBad.status, 2);
  assert.match(portalBad.stderr, /not expected: --bogus/);
  const portalDead = spawnSync(portalBin, ['--redis', `redis://127.0.0.1:${deadPort}`, '--timeout', '1000'], { encoding: 'utf8', timeout: 10000 });
  assert.strictEqual(portalDead.status, 1);
  assert.match(portalDead.stderr, /unreachable within 1000 ms \(last: .*refused/i, 'the final line names the reason');
  ok('mesa-dispatcher --all/--exclude/--to/--disconnect; a bad line exits 1, unreachable Redis 1, bad argument 2 (mesa-portal too)');

  // ---------------------------------------------------------------------------
  current = 'interop: npm Dispatcher -> our gateways';
  const nodeDispatcher = new Dispatcher(uri, { namespace: NS });
  const nodeSyncDispatcher = new Dispatcher(uri, { namespace: NS, sync: { enabled: true } });
  for (const d of [nodeDispatcher, nodeSyncDispatcher]) quiet(d.redis, d.publisher);
  nodeDispatcher.dispatch(new Message(0, { via: 'node' }, 'NODE_ALL'));
  nodeDispatcher.dispatch(new Message(0, { via: 'node' }, 'NODE_BOB'), ['bob']);
  await waitFor(alice, 'NODE_ALL');
  await waitFor(bob, 'NODE_ALL');
  await waitFor(bob, 'NODE_BOB');
  await barrier(B, [alice, bob]);
  expectCounts('NODE_ALL', [[alice, 1], [bob, 1], [dave, 0]]);
  expectCounts('NODE_BOB', [[alice, 0], [bob, 1]]);
  nodeSyncDispatcher.dispatch(new Message(0, { k: 'a' }, 'NODE_SYNC'), ['fay']);
  await eventually('Node dispatcher stored for fay', async () => assert.ok(await redis.hexists(`undelivered_messages_${NS}`, 'fay')));
  nodeSyncDispatcher.dispatch(new Message(0, { k: 'b' }, 'NODE_SYNC'), ['fay']);
  await eventually('Node dispatcher stored twice for fay', async () => assert.strictEqual(JSON.parse(await redis.hget(`undelivered_messages_${NS}`, 'fay')).length, 2));
  // ours appends to the array the Node dispatcher wrote
  await dispatchCpp(['--namespace', NS, '--sync', '--to', 'fay'], ['NODE_SYNC {"k":"c"}']);
  const fay = await connectAs(A.url, 'fay');
  const faySync = await waitFor(fay, 'NODE_SYNC', 3);
  assert.deepStrictEqual(faySync.map((m) => [m.data.k, m.sequence]), [['a', 1], ['b', 2], ['c', 3]]);
  ok('npm Dispatcher reaches clients on our gateways (global, ids, and with sync: redelivered with s, mixed with our dispatcher)');

  // ---------------------------------------------------------------------------
  current = 'interop: npm Portal <- our gateway';
  const PNS = 'p1';
  const nodePortal = new Portal(uri, { namespace: PNS, reportAllEvents: false });
  quiet(nodePortal.redis, nodePortal.publisher, nodePortal.subscriber);
  const portalEvents = [];
  for (const type of ['connection', 'authentication', 'disconnection']) nodePortal.on(type, (clientId) => portalEvents.push({ type, clientId }));
  nodePortal.on('message', (m, clientId) => portalEvents.push({ type: 'message', clientId, message: m }));
  await eventually('npm Portal in the pool', async () => assert.strictEqual(await redis.sismember(`available_portals_pool_${PNS}`, nodePortal.id), 1));
  await eventually('npm Portal subscribed to its channel', async () =>
    assert.strictEqual((await redis.pubsub('NUMSUB', `portal_${PNS}`))[1], 1));
  const P = await startGateway('P', { MESA_NAMESPACE: PNS, PORTALS_ENABLED: 'true' });
  const gina = await h.openClient(P.url, 'gina');
  await within(5000, gina.authenticate({ token: jwt({ id: 'gina' }) }), 'gina auth');
  gina.send(new Message(0, { hello: 'portal' }, 'TO_PORTAL'));
  await eventually('portal got connection, authentication, message', async () => assert.strictEqual(portalEvents.length, 3));
  await close(gina);
  await eventually('portal got disconnection', async () => assert.strictEqual(portalEvents.length, 4));
  assert.deepStrictEqual(portalEvents[0], { type: 'connection', clientId: undefined });
  assert.deepStrictEqual(portalEvents[1], { type: 'authentication', clientId: 'gina' });
  assert.strictEqual(portalEvents[2].type, 'message');
  assert.strictEqual(portalEvents[2].clientId, 'gina');
  assert.deepStrictEqual([portalEvents[2].message.opcode, portalEvents[2].message.data, portalEvents[2].message.type], [0, { hello: 'portal' }, 'TO_PORTAL']);
  assert.deepStrictEqual(portalEvents[3], { type: 'disconnection', clientId: 'gina' });
  ok('npm Portal receives our gateway\'s events: connection, authentication (clientId), message, disconnection');

  // A portal joining later is followed live; our mesa-portal next to the Node one.
  const cppPortalOnP = await startPortal(['--namespace', PNS]);
  // P learns of the new portal from the pool channel: a client's events reach it once it has.
  portalEvents.length = 0;
  let probes = 0; // each gives two events (connection, disconnection) to the portals
  await eventually('gateway P sends events to the new mesa-portal', async () => {
    probes++;
    await close(await h.openClient(P.url, 'probe'));
    await h.until(2000, () => cppPortalOnP.events.length > 0, 'an event at mesa-portal');
  });
  await eventually('every probe event arrived', async () => assert.strictEqual(portalEvents.length + cppPortalOnP.events.length, 2 * probes));
  portalEvents.length = 0;
  cppPortalOnP.events.length = 0;
  const hugo = await connectAs(P.url, 'hugo');
  for (let i = 0; i < 4; ++i) hugo.send(new Message(0, { i }, 'RR'));
  await close(hugo);
  // connection, authentication, 4 x message, disconnection = 7 events, round-robin over 2 portals
  await eventually('7 events shared by both portals', async () => assert.strictEqual(portalEvents.length + cppPortalOnP.events.length, 7));
  assert.ok(portalEvents.length >= 3 && cppPortalOnP.events.length >= 3, `round-robin: node ${portalEvents.length}, ours ${cppPortalOnP.events.length}`);
  cppPortalOnP.proc.kill('SIGTERM');
  assert.deepStrictEqual(await within(5000, cppPortalOnP.exited, 'mesa-portal exit'), { code: 0, signal: null });
  assert.strictEqual(await redis.sismember(`available_portals_pool_${PNS}`, cppPortalOnP.id), 0);
  // P learns of the leave from the pool channel: from then on both events of a client reach the Node portal.
  await eventually('after mesa-portal left, the Node portal gets everything', async () => {
    portalEvents.length = 0;
    await close(await h.openClient(P.url, 'ivan'));
    await h.until(2000, () => portalEvents.length === 2, 'connection and disconnection at the Node portal');
  });
  ok('gateway follows portal joins/leaves live (round-robin over a Node Portal and mesa-portal; SIGTERM leaves the pool, exit 0)');
  await stopGateway(P);

  // ---------------------------------------------------------------------------
  current = 'interop: our tools <- -> Node Mesa Server';
  const NNS = 'n1';
  const cppPortal = await startPortal(['--namespace', NNS]);
  const nodePort = await h.freePort();
  const nodeServer = new NodeServer({
    port: nodePort, namespace: NNS, redis: uri, gracefullyExit: false,
    sync: { enabled: true }, portal: { enabled: true }
  });
  h.onCleanup(() => nodeServer.close());
  quiet(nodeServer.redis, nodeServer.publisher, nodeServer.subscriber);
  nodeServer.on('connection', (client) => client.authenticate((data, done) => done(null, { id: data.id, user: { id: data.id } })));
  await eventually('Node server knows the portal', async () => assert.deepStrictEqual(nodeServer.portals, [cppPortal.id]));
  const nodeUrl = `ws://127.0.0.1:${nodePort}`;
  const jack = await h.openClient(nodeUrl, 'jack');
  await within(5000, jack.authenticate({ id: 'jack' }), 'jack auth on the Node server');
  const kim = await h.openClient(nodeUrl, 'kim');
  await within(5000, kim.authenticate({ id: 'kim' }), 'kim auth on the Node server');
  await eventually('Node server stored its users', async () => assert.deepStrictEqual(await members(NNS), ['jack', 'kim']));
  await dispatchCpp(['--namespace', NNS, '--to', 'jack'], ['FROM_CPP {"n":1}']);
  await dispatchCpp(['--namespace', NNS], ['FROM_CPP_ALL {"n":2}']);
  await dispatchCpp(['--namespace', NNS, '--sync', '--to', 'jack,lea'], ['FROM_CPP_SYNC {"n":3}', 'FROM_CPP_SYNC {"n":4}']);
  assert.deepStrictEqual((await waitFor(jack, 'FROM_CPP'))[0].data, { n: 1 });
  await waitFor(jack, 'FROM_CPP_ALL');
  await waitFor(kim, 'FROM_CPP_ALL');
  await waitFor(jack, 'FROM_CPP_SYNC', 2);
  await sleep(200);
  expectCounts('FROM_CPP', [[jack, 1], [kim, 0]]);
  expectCounts('FROM_CPP_ALL', [[jack, 1], [kim, 1]]);
  expectCounts('FROM_CPP_SYNC', [[jack, 2], [kim, 0]]);
  const lea = await h.openClient(nodeUrl, 'lea');
  await within(5000, lea.authenticate({ id: 'lea' }), 'lea auth on the Node server');
  const leaSync = await waitFor(lea, 'FROM_CPP_SYNC', 2);
  assert.deepStrictEqual(leaSync.map((m) => [m.data.n, m.sequence]), [[3, 1], [4, 2]]);
  ok('mesa-dispatcher reaches clients of a Node Mesa Server (ids, all, sync: stored in the format the Node server redelivers)');

  jack.send(new Message(0, { q: 1 }, 'ASK'));
  await close(kim);
  await eventually('mesa-portal printed the Node server\'s events', async () => {
    const types = cppPortal.events.map((e) => e.type);
    assert.ok(types.includes('disconnection'), JSON.stringify(cppPortal.events));
  });
  const ev = cppPortal.events;
  assert.deepStrictEqual(ev.filter((e) => e.type === 'connection').length, 3);
  assert.deepStrictEqual(ev.filter((e) => e.type === 'authentication').map((e) => e.clientId), ['jack', 'kim', 'lea']);
  assert.deepStrictEqual(ev.filter((e) => e.type === 'message'), [{ type: 'message', clientId: 'jack', message: { op: 0, d: { q: 1 }, t: 'ASK' } }]);
  assert.deepStrictEqual(ev.filter((e) => e.type === 'disconnection'), [{ type: 'disconnection', clientId: 'kim' }]);
  cppPortal.proc.kill('SIGINT');
  assert.deepStrictEqual(await within(5000, cppPortal.exited, 'mesa-portal exit'), { code: 0, signal: null });
  await eventually('Node server saw mesa-portal leave', async () => assert.deepStrictEqual(nodeServer.portals, []));
  ok('mesa-portal receives a Node Mesa Server\'s events (connection, authentication, message, disconnection); SIGINT leaves the pool');
  for (const c of [jack, lea]) await close(c);

  // ---------------------------------------------------------------------------
  current = 'fault: Redis outage';
  nodeServer.close();
  for (const r of ioredisClients) r.disconnect();
  const before = { alice: ofType(alice, 'DURING').length };
  // Clients on every instance of A: the kernel picks the instance of each new connection.
  const locals = [];
  for (;;) {
    const perInstance = await instanceConnections(A);
    assert.strictEqual(perInstance.length, 2, 'gateway A runs two instances');
    if (perInstance.every((n) => n > 0)) break;
    assert.ok(locals.length < 100, `100 connections, all on one instance of A: ${perInstance}`);
    locals.push(await h.openClient(A.url, `local ${locals.length}`));
  }
  const faultPortal = await startPortal(['--namespace', NS]);
  await redisServer.stop();
  await eventually('gateway A reports degraded', async () => {
    const a = await health(A);
    assert.deepStrictEqual([a.status, a.redis], ['degraded', false]);
  }, 10000);
  alice.send(new Message(0, { during: 'outage' }, 'PING'));
  const pong = await waitFor(alice, 'PONG');
  assert.deepStrictEqual(pong[0].data, { during: 'outage' });
  // Not taken by a broker: 503, so the caller retries; the gateway's own clients got it meanwhile.
  const refusedDuringOutage = async (body) => {
    const r = await h.httpRequest(A.port, 'POST', '/dispatch', { body });
    assert.strictEqual(r.status, 503, `POST /dispatch during the outage: ${r.status} ${r.body}`);
    assert.strictEqual(r.headers['retry-after'], '1');
  };
  await refusedDuringOutage({ message: { t: 'DURING', d: {} } });
  await waitFor(alice, 'DURING', before.alice + 1);
  for (const c of locals) await waitFor(c, 'DURING');
  await refusedDuringOutage({ message: { t: 'DURING_TO', d: {} }, recipients: ['alice'] });
  await waitFor(alice, 'DURING_TO');
  for (const c of locals) await close(c);
  ok('Redis down: PING/PONG works, /dispatch (all, and to a local id) answers 503 and reaches the clients of every instance of the gateway, /health degraded');

  redisServer = await h.startRedis(redisServer.port);
  await eventually('gateways A and B report ok again', async () => {
    assert.strictEqual((await health(A)).status, 'ok');
    assert.strictEqual((await health(B)).status, 'ok');
  }, 20000);
  // Replication resumed: B's publication reaches A's subscription, and the other way.
  await eventually('dispatch from B reaches alice on A', async () => {
    if (!ofType(alice, 'AFTER_B').length) await dispatchHttp(B, { message: { t: 'AFTER_B', d: {} } });
    await sleep(200);
    assert.ok(ofType(alice, 'AFTER_B').length >= 1);
  }, 15000);
  await waitFor(bob, 'AFTER_B');
  await dispatchCpp(['--namespace', NS], ['AFTER_CPP']);
  await waitFor(alice, 'AFTER_CPP');
  await waitFor(bob, 'AFTER_CPP');
  await dispatchCpp(['--namespace', NS, '--to', 'bob'], ['AFTER_CPP_BOB']);
  await waitFor(bob, 'AFTER_CPP_BOB');
  await dispatchHttp(A, { message: { t: 'AFTER_A', d: {} }, recipients: ['bob'], excluding: [] });
  ok('Redis restarted on the same port: replication and subscriptions resumed without restarting the gateways');

  // The restarted Redis lost its data: the cluster state this process owns
  // (the ids of its authenticated clients, the portal's pool membership) must
  // be re-established, or sync sends to ids store messages for users who are
  // online and servers started later never see the portal.
  try {
    await eventually('connected_clients_c1 re-established after the Redis restart', async () =>
      assert.deepStrictEqual(await members(), ['alice', 'bob', 'erin', 'fay']), 8000);
    await waitFor(bob, 'AFTER_A');
    ok('connected_clients re-established after the restart; a sync send to an online id is delivered');
  } catch (e) {
    const storedForBob = await redis.hget(`undelivered_messages_${NS}`, 'bob');
    gap(`after Redis restarted (empty), the gateways never re-added their authenticated ids to ` +
      `connected_clients_${NS} (now ${JSON.stringify(await members())}, count ${await count()} with 4 clients open); ` +
      `so a sync send to online bob was stored instead of delivered ` +
      `(undelivered_messages_${NS}[bob] = ${storedForBob}). ${e.message}`);
  }
  try {
    await eventually('mesa-portal back in available_portals_pool_c1 after the Redis restart', async () =>
      assert.strictEqual(await redis.sismember(`available_portals_pool_${NS}`, faultPortal.id), 1), 8000);
    ok('mesa-portal re-joined the pool after the restart');
  } catch (e) {
    gap(`after Redis restarted (empty), mesa::portal never re-added its id to available_portals_pool_${NS}: ` +
      `servers started from now on do not know it. ${e.message}`);
  }
  faultPortal.proc.kill('SIGTERM');
  assert.deepStrictEqual(await within(5000, faultPortal.exited, 'mesa-portal exit'), { code: 0, signal: null });

  // ---------------------------------------------------------------------------
  current = 'shutdown';
  for (const c of [alice, bob, erin, fay, dave]) await close(c);
  for (const g of [A, B, C]) await stopGateway(g);
  h.cleanup();
  if (gaps.length) {
    for (const g of gaps) console.log(`not ok - LIBRARY GAP: ${g}`);
    console.log(`${gaps.length} library gap(s) found`);
    process.exit(1);
  }
  console.log('all passed');
  process.exit(0);
})().catch(fail);
