// Gateways, tools and npm @cryb/mesa following Redis Sentinel on loopback: a
// master, two replicas and three sentinels started here (redis-server --sentinel
// with generated configuration files; down-after-milliseconds 1000), two
// gateways with REDIS_SENTINELS and SYNC_ENABLED (so stores wait for one
// replica by default), npm Clients on each.
// Cases: start-up through the sentinels; a stored dispatch no replica
// acknowledges is refused (503); a forced failover and a master killed
// with SIGKILL, after which dispatches cross the gateways again (the time is
// printed); a sentinel down at start-up; a wrong master name; interop with the
// npm Dispatcher and Server configured with the same sentinels. Prints the
// live (not synced) messages of a steady stream lost during a forced failover
// (at-most-once) and fails when a synced one is lost.
// Usage: node sentinel_test.js mesa-gateway mesa-dispatcher
'use strict';
const assert = require('assert');
const { execFileSync } = require('child_process');
const h = require('../support/harness');
const { within, eventually, test, sleep } = h;

const mesa = h.load('@cryb/mesa');
const { Message, Dispatcher } = mesa;
const NodeServer = mesa.default;
const [gatewayBin, dispatcherBin] = process.argv.slice(2);
if (!gatewayBin || !dispatcherBin) {
  console.error('usage: node sentinel_test.js mesa-gateway mesa-dispatcher');
  process.exit(2);
}
h.deadline(170000, 'not ok - overall timeout (170 s)');

const KEY = 'sentinel-secret';
let set; // the sentinels
let A, B; // two gateways
let seq = 0;

async function gateway (name, env = {}) {
  const g = await h.startGateway(gatewayBin, {
    MESA_PORT: '0', WS_KEY: KEY, REDIS_SENTINELS: set.list, SYNC_ENABLED: 'true', MESA_THREADS: '1', MESA_PRESENCE_TTL: '2000', ...env
  }, `gateway ${name}`);
  h.onCleanup(() => g.proc.kill('SIGKILL'));
  return g;
}
const health = async (g) => (await h.httpRequest(g.port, 'GET', '/health')).json;
async function connected (g) {
  await eventually(`${g.name} connected to the master through the sentinels`, async () => assert.strictEqual((await health(g)).redis, true), 15000);
}
async function connectAs (g, id) {
  const c = await h.openClient(g.url, `${id}@${g.name}`);
  await within(5000, c.authenticate({ token: h.jwt({ id }, KEY) }), `authenticate ${id}`);
  return c;
}
const post = (g, body) => h.httpRequest(g.port, 'POST', '/dispatch', { body }).catch((e) => ({ status: 0, body: e.message }));
const ofType = (c, t) => c.got.filter((m) => m.type === t);

/// Milliseconds from `since` until a dispatch through `from` reaches `client`
/// (a probe every 100 ms, each waited for 1 s; at most `ms`).
async function crossesAgain (from, client, since, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const type = `PROBE_${++seq}`;
    const r = await post(from, { message: { t: type, d: {}, o: { sync: false } }, recipients: [client.label.split('@')[0]] });
    if (r.status === 202) {
      const t0 = Date.now();
      while (Date.now() - t0 < 1000 && ofType(client, type).length === 0) await sleep(20);
      if (ofType(client, type).length) return Date.now() - since;
    }
    await sleep(100);
  }
  throw new Error(`no dispatch through ${from.name} reached ${client.label} within ${ms} ms`);
}

async function forceFailover () {
  const before = await set.masterPort();
  await eventually('SENTINEL FAILOVER accepted', async () => {
    assert.strictEqual(await set.command(0, 'SENTINEL', 'FAILOVER', set.name), 'OK');
  }, 30000);
  return before;
}
async function switched (before) {
  await eventually('the sentinels name a new master', async () => assert.notStrictEqual(await set.masterPort(), before), 30000);
}

test('start-up through the sentinels; a dispatch through A reaches a client on B', async () => {
  set = await h.startSentinels({ replicas: 2 });
  A = await gateway('A');
  B = await gateway('B');
  await connected(A);
  await connected(B);
  assert.match(A.log, /master 'mymaster'/);
  assert.match(A.log, /stores acknowledged by every replica of the master/);
  const ub = await connectAs(B, 'ub');
  const r = await post(A, { message: { t: 'HELLO', d: { n: 1 } }, recipients: ['ub'] });
  assert.strictEqual(r.status, 202, r.body);
  await eventually('ub got HELLO', () => assert.strictEqual(ofType(ub, 'HELLO').length, 1));
  ub.disconnect(1000);
});

test('by default a stored dispatch counts as taken only once every replica has it: replicas stalled, 503; live ones still 202', async () => {
  const master = await set.masterPort();
  const replicas = set.nodes.filter((n) => n.port !== master);
  // Stopped, they stay connected to the master but acknowledge nothing.
  for (const r of replicas) r.proc.kill('SIGSTOP');
  try {
    const stored = await post(A, { message: { t: 'STORED', d: {} }, recipients: ['nobody-online'] });
    assert.strictEqual(stored.status, 503, stored.body);
    const live = await post(A, { message: { t: 'LIVE', d: {}, o: { sync: false } }, recipients: ['nobody-online'] });
    assert.strictEqual(live.status, 202, live.body);
    assert.match(A.log, /acknowledged by 0 replicas of 2/);
  } finally {
    for (const r of replicas) r.proc.kill('SIGCONT');
  }
  await eventually('the replicas acknowledge again', async () => {
    assert.strictEqual((await post(A, { message: { t: 'STORED', d: {} }, recipients: ['nobody-online'] })).status, 202);
  }, 20000);
});

test('a sentinel down at start-up: the gateway starts through the others', async () => {
  const dead = await h.freePort();
  const g = await gateway('C', { REDIS_SENTINELS: `127.0.0.1:${dead},${set.list}` });
  await connected(g);
  const uc = await connectAs(g, 'uc');
  assert.strictEqual((await post(A, { message: { t: 'TO_C', d: {} }, recipients: ['uc'] })).status, 202);
  await eventually('uc got TO_C', () => assert.strictEqual(ofType(uc, 'TO_C').length, 1));
  uc.disconnect(1000);
  await g.stop();
});

test('a wrong master name: the gateway starts, names it in its log, /health and /ready show the broker down', async () => {
  const g = await gateway('W', { REDIS_SENTINEL_MASTER: 'nosuchmaster', MESA_READY_GRACE: '0' });
  await eventually('the log names the master', () => assert.match(g.log, /no sentinel knows a master named 'nosuchmaster'/), 10000);
  assert.strictEqual((await health(g)).redis, false);
  assert.strictEqual((await h.httpRequest(g.port, 'GET', '/ready')).status, 503);
  assert.strictEqual((await post(g, { message: { t: 'X', d: {} } })).status, 503);
  await g.stop();
});

const recoveries = { failover: [], kill: [] };

/// A steady stream both ways (every 20 ms each), live (o.sync false) and synced
/// in turn, while `disrupt` runs and until synced dispatches are accepted again
/// on both sides (while a failover takes a replica away, stores are refused);
/// returns what was accepted (202) and received.
async function stream (ua, ub, disrupt) {
  const sent = { live: [], synced: [], refused: 0 };
  let running = true;
  const acceptedAfter = { ub: 0, ua: 0 };
  let disrupted = false;
  let n = 0;
  const pump = async (from, to) => {
    while (running) {
      const id = ++n;
      const live = id % 2 === 0;
      const r = await post(from, { message: { t: live ? 'LIVE' : 'SYNCED', d: { id }, ...(live ? { o: { sync: false } } : {}) }, recipients: [to] });
      if (r.status === 202) sent[live ? 'live' : 'synced'].push({ id, to });
      else sent.refused++;
      if (r.status === 202 && !live && disrupted) acceptedAfter[to]++;
      await sleep(20);
    }
  };
  const pumps = [pump(A, 'ub'), pump(B, 'ua')];
  await sleep(500);
  const result = await disrupt();
  disrupted = true;
  await eventually('synced dispatches accepted again both ways', () => {
    assert.ok(acceptedAfter.ua >= 3 && acceptedAfter.ub >= 3, JSON.stringify(acceptedAfter));
  }, 30000);
  running = false;
  await Promise.all(pumps);
  return { sent, result };
}
function received (c, type) { return new Set(ofType(c, type).map((m) => m.data.id)); }

test('forced failovers while clients on both gateways exchange messages; live losses counted, synced none lost', async () => {
  let ua = await connectAs(A, 'ua');
  let ub = await connectAs(B, 'ub');
  const runs = [];
  for (let round = 0; round < 2; ++round) {
    const { sent, result: ms } = await stream(ua, ub, async () => {
      const t0 = Date.now();
      const before = await forceFailover();
      await switched(before);
      const [ab, ba] = await Promise.all([crossesAgain(A, ub, t0), crossesAgain(B, ua, t0)]);
      return Math.max(ab, ba);
    });
    recoveries.failover.push(ms);
    await sleep(1000);
    const got = { ua: received(ua, 'LIVE'), ub: received(ub, 'LIVE') };
    const lostLive = sent.live.filter((m) => !got[m.to].has(m.id));
    const syncedGot = () => ({ ua: received(ua, 'SYNCED'), ub: received(ub, 'SYNCED') });
    let lostSynced = sent.synced.filter((m) => !syncedGot()[m.to].has(m.id));
    const lostBeforeReauth = lostSynced.length;
    if (lostSynced.length) {
      // Synced messages are redelivered on authentication: reconnect and look again.
      ua.disconnect(1000); ub.disconnect(1000);
      const oldUa = ua; const oldUb = ub;
      ua = await connectAs(A, 'ua'); ub = await connectAs(B, 'ub');
      await sleep(2000);
      const now = { ua: new Set([...received(oldUa, 'SYNCED'), ...received(ua, 'SYNCED')]), ub: new Set([...received(oldUb, 'SYNCED'), ...received(ub, 'SYNCED')]) };
      lostSynced = sent.synced.filter((m) => !now[m.to].has(m.id));
    }
    runs.push({ ms, live: sent.live.length, lostLive: lostLive.length, synced: sent.synced.length, lostBeforeReauth, lostSynced: lostSynced.length });
    console.log(`# forced failover ${round + 1}: dispatches cross again after ${ms} ms; live: ${lostLive.length} of ${sent.live.length} accepted lost; ` +
      `synced: ${lostSynced.length} of ${sent.synced.length} lost (${lostBeforeReauth} missing before re-authentication); ${sent.refused} refused (503)`);
    assert.deepStrictEqual(lostSynced, [], 'synced messages lost');
    // The sentinels turn the demoted master into a replica (within about 10 s,
    // their INFO period): the next failover starts from a whole set again.
    await eventually('the new master has both replicas online', async () => {
      const info = execFileSync('redis-cli', ['-p', String(await set.masterPort()), 'INFO', 'replication']).toString();
      assert.strictEqual((info.match(/state=online/g) || []).length, 2);
    }, 30000);
  }
  ua.disconnect(1000);
  ub.disconnect(1000);
});

test('interop after the failover: the npm Dispatcher with the same sentinels reaches our clients; ' +
     'mesa-dispatcher with REDIS_SENTINELS reaches an npm Server\'s clients', async () => {
  const ub = await connectAs(B, 'ub2');
  const nodeDispatcher = new Dispatcher({ sentinels: set.ioredis, name: set.name }, {});
  for (const c of [nodeDispatcher.redis, nodeDispatcher.publisher]) c.on('error', () => {});
  h.onCleanup(() => { nodeDispatcher.redis.disconnect(); nodeDispatcher.publisher.disconnect(); });
  await eventually('npm Dispatcher ready', () => assert.strictEqual(nodeDispatcher.publisher.status, 'ready'), 10000);
  // ioredis follows the failover on its own schedule: a publication it makes
  // on the demoted master is lost (at most once), so it dispatches until one arrives.
  await eventually('ub2 got FROM_NODE', () => {
    if (ofType(ub, 'FROM_NODE').length === 0) nodeDispatcher.dispatch(new Message(0, { via: 'node' }, 'FROM_NODE'), ['ub2']);
    assert.ok(ofType(ub, 'FROM_NODE').length >= 1);
  }, 20000);
  ub.disconnect(1000);

  const NNS = 'ns1';
  const nodePort = await h.freePort();
  const nodeServer = new NodeServer({ port: nodePort, namespace: NNS, redis: { sentinels: set.ioredis, name: set.name }, gracefullyExit: false });
  h.onCleanup(() => nodeServer.close());
  for (const c of [nodeServer.redis, nodeServer.publisher, nodeServer.subscriber]) if (c) c.on('error', () => {});
  nodeServer.on('connection', (client) => client.authenticate((data, done) => done(null, { id: data.id, user: { id: data.id } })));
  const jack = await h.openClient(`ws://127.0.0.1:${nodePort}`, 'jack');
  await within(5000, jack.authenticate({ id: 'jack' }), 'jack auth on the Node server');
  await eventually('the npm Server subscribed', () => assert.strictEqual(nodeServer.subscriber.status, 'ready'), 10000);
  await sleep(300);
  const proc = h.spawnChild(dispatcherBin, ['--namespace', NNS, '--to', 'jack'], {
    stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH, REDIS_SENTINELS: set.list, REDIS_SENTINEL_MASTER: set.name }
  });
  let stderr = '';
  proc.stderr.on('data', (c) => { stderr += c; });
  proc.stdin.end('FROM_CPP {"n":1}\n');
  const { code } = await within(20000, proc.exited, 'mesa-dispatcher');
  assert.strictEqual(code, 0, stderr);
  await eventually('jack got FROM_CPP', () => assert.strictEqual(ofType(jack, 'FROM_CPP').length, 1));
  jack.disconnect(1000);
});

test('the master killed with SIGKILL: a new one is elected, dispatches cross the gateways again', async () => {
  const ua = await connectAs(A, 'ka');
  const ub = await connectAs(B, 'kb');
  const before = await set.masterPort();
  const victim = set.nodes.find((r) => r.port === before);
  const t0 = Date.now();
  await victim.stop();
  await switched(before);
  const [ab, ba] = await Promise.all([crossesAgain(A, ub, t0), crossesAgain(B, ua, t0)]);
  recoveries.kill.push(Math.max(ab, ba));
  console.log(`# master killed: dispatches cross again after ${Math.max(ab, ba)} ms`);
  ua.disconnect(1000);
  ub.disconnect(1000);
  console.log(`# recovery (ms): forced failover ${recoveries.failover.join(', ')}; master killed ${recoveries.kill.join(', ')}`);
});

h.runTests(() => {
  for (const g of [A, B]) if (g) process.stderr.write(`--- ${g.name} log ---\n${g.log}\n`);
}).then(() => {
  console.log(`# recovery (ms): forced failover ${recoveries.failover.join(', ')}; master killed ${recoveries.kill.join(', ')}`);
});
