// Gateways and npm @cryb/mesa on a redis-server that serves TLS only
// (--port 0 --tls-port N), with certificates made here by
// test/support/make_redis_certs.sh. Cases: two gateways on rediss:// with a
// dispatch crossing them and an npm Dispatcher (ioredis `tls` options)
// reaching their clients; a gateway given the wrong CA still serves its own
// clients, logs why Redis refused and shows Redis down on /health and /ready;
// a certificate for another host refused, then accepted with
// REDIS_TLS_SERVER_NAME; tls-auth-clients yes without and with a client
// certificate; a Redis restart; REDIS_TLS_* without TLS refused at start-up;
// mesa-dispatcher and mesa-portal on rediss:// (REDIS_URI, REDIS_TLS_CA)
// with a gateway's clients, and both given an untrusted CA.
// Usage: node redis_tls_test.js mesa-gateway make_redis_certs.sh mesa-dispatcher mesa-portal
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const h = require('../support/harness');
const { within, eventually, test } = h;

const Redis = h.load('ioredis');
const mesa = h.load('@cryb/mesa');
const { Message, Dispatcher } = mesa;
const [gatewayBin, makeCerts, dispatcherBin, portalBin] = process.argv.slice(2);
if (!gatewayBin || !makeCerts || !dispatcherBin || !portalBin) {
  console.error('usage: node redis_tls_test.js mesa-gateway make_redis_certs.sh mesa-dispatcher mesa-portal');
  process.exit(2);
}
h.deadline(170000, 'not ok - overall timeout (170 s)');

const KEY = 'redis-tls-secret';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-redis-tls-'));
h.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
const made = spawnSync(makeCerts, [dir], { encoding: 'utf8', timeout: 60000 });
assert.strictEqual(made.status, 0, `make_redis_certs.sh failed: ${made.error || made.stderr}`);
const file = (name) => path.join(dir, name);
const ca = fs.readFileSync(file('ca.pem'));

/// A redis-server serving TLS only with certificate `cert` (.pem/.key); the
/// port stays the same across restart(). -> {port, uri, stop, restart}
async function tlsRedis (cert = 'server', { authClients = false, port } = {}) {
  if (port === undefined) port = await h.freePort();
  const proc = h.spawnChild('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--save', '', '--appendonly', 'no', '--tls-cert-file', file(`${cert}.pem`), '--tls-key-file', file(`${cert}.key`),
    '--tls-ca-cert-file', file('ca.pem'), '--tls-auth-clients', authClients ? 'yes' : 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  proc.stderr.on('data', (c) => { out += c; });
  const probe = new Redis({
    host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null,
    tls: { ca, servername: 'localhost', checkServerIdentity: () => undefined, ...(authClients ? { cert: fs.readFileSync(file('client.pem')), key: fs.readFileSync(file('client.key')) } : {}) }
  });
  probe.on('error', () => {});
  try {
    await eventually(`TLS redis-server up on port ${port}`, async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${out}`);
      if (probe.status !== 'ready') { probe.disconnect(); await probe.connect(); }
      assert.strictEqual(await probe.ping(), 'PONG');
    }, 10000);
  } finally { probe.disconnect(); }
  const r = {
    port,
    uri: `rediss://127.0.0.1:${port}`,
    stop: async () => { proc.kill('SIGKILL'); await within(5000, proc.exited, 'redis-server exit'); },
    restart: async () => { await r.stop(); return tlsRedis(cert, { authClients, port }); }
  };
  h.onCleanup(() => proc.kill('SIGKILL'));
  return r;
}

async function gateway (name, env) {
  const g = await h.startGateway(gatewayBin, { MESA_PORT: '0', WS_KEY: KEY, MESA_THREADS: '1', MESA_READY_GRACE: '0', ...env }, `gateway ${name}`);
  h.onCleanup(() => g.proc.kill('SIGKILL'));
  return g;
}
const health = async (g) => (await h.httpRequest(g.port, 'GET', '/health')).json;
async function redisUp (g, ms = 10000) {
  await eventually(`${g.name} connected to Redis over TLS`, async () => assert.strictEqual((await health(g)).redis, true), ms);
}
/// `g` logs `pattern` and shows Redis down on /health and /ready.
async function refused (g, pattern) {
  await eventually(`${g.name} logs ${pattern}`, () => assert.match(g.log, pattern), 10000);
  const hl = await health(g);
  assert.strictEqual(hl.status, 'degraded');
  assert.strictEqual(hl.redis, false);
  await eventually(`${g.name} not ready`, async () => {
    const ready = await h.httpRequest(g.port, 'GET', '/ready');
    assert.strictEqual(ready.status, 503, `/ready: ${ready.status} ${ready.body}`);
  });
}
async function connectAs (g, id) {
  const c = await h.openClient(g.url, `${id}@${g.name}`);
  await within(5000, c.authenticate({ token: h.jwt({ id }, KEY) }), `authenticate ${id}`);
  return c;
}
const dispatch = async (g, body) => {
  const r = await h.httpRequest(g.port, 'POST', '/dispatch', { body });
  assert.strictEqual(r.status, 202, `POST /dispatch: ${r.status} ${r.body}`);
};
const ofType = (c, t) => c.got.filter((m) => m.type === t);

let redis; // the shared TLS Redis
const tlsEnv = () => ({ REDIS_URI: redis.uri, REDIS_TLS_CA: file('ca.pem') });

/// Runs mesa-dispatcher with `args`, `env` and `lines` on stdin. -> {code, stderr}
function runDispatcher (env, args, lines) {
  const proc = h.spawnChild(dispatcherBin, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (c) => { stderr += c; });
  proc.stdin.on('error', () => {});
  proc.stdin.end(lines.length ? lines.join('\n') + '\n' : '');
  return within(30000, proc.exited.then(({ code }) => ({ code, stderr })), `mesa-dispatcher ${args.join(' ')}`);
}
/// Starts mesa-portal with `args` and `env`, its JSON event lines collected
/// in `events`; resolves once it joined the pool. -> {proc, stderr, events, exited}
async function startPortal (env, args) {
  const proc = h.spawnChild(portalBin, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { proc, stderr: '', events: [], exited: proc.exited };
  let buffer = '';
  proc.stdout.on('data', (chunk) => {
    buffer += chunk;
    for (let nl; (nl = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(nl + 1)) {
      if (buffer.slice(0, nl).trim()) p.events.push(JSON.parse(buffer.slice(0, nl)));
    }
  });
  await within(10000, new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      p.stderr += chunk;
      if (h.verbose) process.stderr.write(`[portal] ${chunk}`);
      if (/joined the pool as \S+/.test(p.stderr)) resolve();
    });
    p.exited.then(({ code }) => reject(new Error(`mesa-portal exited early (code ${code}): ${p.stderr}`)));
  }), 'mesa-portal joins the pool over TLS');
  return p;
}

test('two gateways on rediss://: a dispatch crosses them; an npm Dispatcher with ioredis tls options reaches their clients', async () => {
  const a = await gateway('A', tlsEnv());
  const b = await gateway('B', tlsEnv());
  await redisUp(a);
  await redisUp(b);
  assert.match(a.log, /redis \(TLS\)/);
  const alice = await connectAs(a, 'alice');
  const bob = await connectAs(b, 'bob');
  await dispatch(b, { message: { t: 'CROSS', d: { n: 1 } }, recipients: ['alice'] });
  await dispatch(a, { message: { t: 'CROSS', d: { n: 2 } }, recipients: ['bob'] });
  await eventually('B -> alice on A', () => assert.deepStrictEqual(ofType(alice, 'CROSS').map((m) => m.data.n), [1]));
  await eventually('A -> bob on B', () => assert.deepStrictEqual(ofType(bob, 'CROSS').map((m) => m.data.n), [2]));

  const node = new Dispatcher({ host: '127.0.0.1', port: redis.port, tls: { ca, servername: 'localhost' } });
  h.onCleanup(() => { node.redis.disconnect(); node.publisher.disconnect(); });
  for (const c of [node.redis, node.publisher]) c.on('error', () => {});
  await eventually('npm Dispatcher connected over TLS', () => assert.strictEqual(node.publisher.status, 'ready'));
  node.dispatch(new Message(0, { via: 'node' }, 'NODE_ALL'));
  node.dispatch(new Message(0, { via: 'node' }, 'NODE_BOB'), ['bob']);
  await eventually('NODE_ALL reaches alice and bob', () => {
    assert.strictEqual(ofType(alice, 'NODE_ALL').length, 1);
    assert.strictEqual(ofType(bob, 'NODE_ALL').length, 1);
    assert.strictEqual(ofType(bob, 'NODE_BOB').length, 1);
  });
  assert.strictEqual(ofType(alice, 'NODE_BOB').length, 0);
  alice.disconnect(1000);
  bob.disconnect(1000);
  await a.stop();
  await b.stop();
});

test('an untrusted CA: the gateway serves its own clients, logs why and shows Redis down', async () => {
  const u = await gateway('U', { REDIS_URI: redis.uri, REDIS_TLS_CA: file('other-ca.pem') });
  await refused(u, /untrusted: the server's certificate is not signed by a trusted CA/);
  const carol = await connectAs(u, 'carol');
  const dave = await connectAs(u, 'dave');
  assert.strictEqual((await health(u)).authenticated, 2, 'its clients are served while Redis is refused');
  carol.disconnect(1000);
  dave.disconnect(1000);
  await u.stop();
});

test('a certificate for another host is refused; REDIS_TLS_SERVER_NAME names the expected one', async () => {
  const other = await tlsRedis('wrong-host');
  const w = await gateway('W', { REDIS_URI: other.uri, REDIS_TLS_CA: file('ca.pem') });
  await refused(w, /wrong host: the server's certificate does not name '127\.0\.0\.1'/);
  await w.stop();
  const n = await gateway('N', { REDIS_URI: other.uri, REDIS_TLS_CA: file('ca.pem'), REDIS_TLS_SERVER_NAME: 'redis.test' });
  await redisUp(n);
  await n.stop();
  await other.stop();
});

test('tls-auth-clients yes: refused without a client certificate, joined with one', async () => {
  const strict = await tlsRedis('server', { authClients: true });
  const without = await gateway('C0', { REDIS_URI: strict.uri, REDIS_TLS_CA: file('ca.pem') });
  await refused(without, /the server requires a client certificate/);
  await without.stop();
  const withCert = await gateway('C1', {
    REDIS_URI: strict.uri, REDIS_TLS_CA: file('ca.pem'), REDIS_TLS_CERT: file('client.pem'), REDIS_TLS_KEY: file('client.key')
  });
  await redisUp(withCert);
  await withCert.stop();
  await strict.stop();
});

test('a TLS Redis restart: the gateways reconnect and dispatches cross them again', async () => {
  const own = await tlsRedis();
  const env = { REDIS_URI: own.uri, REDIS_TLS_CA: file('ca.pem') };
  const a = await gateway('RA', env);
  const b = await gateway('RB', env);
  await redisUp(a);
  await redisUp(b);
  const erin = await connectAs(a, 'erin');
  const again = await own.restart();
  await redisUp(a, 15000);
  await redisUp(b, 15000);
  await eventually('a dispatch through B reaches erin on A again', async () => {
    await dispatch(b, { message: { t: 'AFTER_RESTART', d: {} }, recipients: ['erin'] });
    await h.sleep(200);
    assert.ok(ofType(erin, 'AFTER_RESTART').length >= 1);
  }, 15000);
  erin.disconnect(1000);
  await a.stop();
  await b.stop();
  await again.stop();
});

test('REDIS_TLS_* without TLS, or a certificate without its key, is refused at start-up', async () => {
  const run = (env) => spawnSync(gatewayBin, [], { env: { PATH: process.env.PATH, MESA_PORT: '0', ...env }, encoding: 'utf8', timeout: 10000 });
  const plain = run({ REDIS_URI: 'redis://127.0.0.1:1', REDIS_TLS_CA: file('ca.pem') });
  assert.strictEqual(plain.status, 1, plain.stderr);
  assert.match(plain.stderr, /REDIS_TLS_CA: needs TLS: a rediss:\/\/ REDIS_URI or REDIS_TLS=true/);
  const half = run({ REDIS_URI: 'rediss://127.0.0.1:1', REDIS_TLS_CERT: file('client.pem') });
  assert.strictEqual(half.status, 1, half.stderr);
  assert.match(half.stderr, /REDIS_TLS_CERT: and REDIS_TLS_KEY go together/);
  const help = spawnSync(gatewayBin, ['--help'], { encoding: 'utf8', timeout: 10000 });
  for (const v of ['REDIS_TLS', 'REDIS_TLS_CA', 'REDIS_TLS_CERT', 'REDIS_TLS_KEY', 'REDIS_TLS_SERVER_NAME', 'REDIS_TLS_INSECURE']) { assert.match(help.stdout, new RegExp(`${v}\\b`)); }
});

test('mesa-dispatcher on REDIS_URI=rediss:// with REDIS_TLS_CA reaches the clients of a gateway on the same TLS Redis', async () => {
  const g = await gateway('D', tlsEnv());
  await redisUp(g);
  const frank = await connectAs(g, 'frank');
  const gwen = await connectAs(g, 'gwen');
  const r = await runDispatcher(tlsEnv(), ['--to', 'frank'], ['TOOL_TLS {"n":1}']);
  assert.strictEqual(r.code, 0, `mesa-dispatcher exited ${r.code}: ${r.stderr}`);
  await eventually('TOOL_TLS reaches frank', () => assert.deepStrictEqual(ofType(frank, 'TOOL_TLS').map((m) => m.data), [{ n: 1 }]));
  const all = await runDispatcher(tlsEnv(), ['--all'], ['TOOL_TLS_ALL']);
  assert.strictEqual(all.code, 0, `mesa-dispatcher --all exited ${all.code}: ${all.stderr}`);
  await eventually('TOOL_TLS_ALL reaches frank and gwen', () => {
    assert.strictEqual(ofType(frank, 'TOOL_TLS_ALL').length, 1);
    assert.strictEqual(ofType(gwen, 'TOOL_TLS_ALL').length, 1);
  });
  assert.strictEqual(ofType(gwen, 'TOOL_TLS').length, 0);
  frank.disconnect(1000);
  gwen.disconnect(1000);
  await g.stop();
});

test('mesa-portal on rediss:// receives the portal messages of a gateway\'s client; SIGTERM leaves the pool', async () => {
  const PNS = 'ptls';
  const g = await gateway('P', { ...tlsEnv(), MESA_NAMESPACE: PNS, PORTALS_ENABLED: 'true' });
  await redisUp(g);
  const p = await startPortal(tlsEnv(), ['--namespace', PNS]);
  // The gateway learns of the new portal from the pool channel: a client's
  // events reach it once it has.
  await eventually('gateway P sends events to mesa-portal', async () => {
    const probe = await h.openClient(g.url, 'probe');
    probe.disconnect(1000);
    await within(2000, probe.closed, 'probe closed');
    await h.until(2000, () => p.events.length > 0, 'an event at mesa-portal');
  });
  await eventually('the probe\'s disconnection too', () => assert.strictEqual(p.events.filter((e) => e.type === 'disconnection').length, p.events.filter((e) => e.type === 'connection').length));
  p.events.length = 0;
  const hana = await connectAs(g, 'hana');
  hana.send(new Message(0, { hello: 'portal' }, 'TO_PORTAL'));
  await eventually('mesa-portal got connection, authentication, message', () => assert.strictEqual(p.events.length, 3));
  assert.deepStrictEqual(p.events, [
    { type: 'connection' },
    { type: 'authentication', clientId: 'hana' },
    { type: 'message', clientId: 'hana', message: { op: 0, d: { hello: 'portal' }, t: 'TO_PORTAL' } }
  ]);
  hana.disconnect(1000);
  await eventually('mesa-portal got the disconnection', () => assert.deepStrictEqual(p.events[3], { type: 'disconnection', clientId: 'hana' }));
  p.proc.kill('SIGTERM');
  assert.deepStrictEqual(await within(5000, p.exited, 'mesa-portal exit'), { code: 0, signal: null }, p.stderr);
  await g.stop();
});

test('mesa-dispatcher and mesa-portal given an untrusted CA: exit 1, naming the certificate problem', async () => {
  const env = { REDIS_URI: redis.uri, REDIS_TLS_CA: file('other-ca.pem') };
  const untrusted = /TLS handshake failed: untrusted: the server's certificate is not signed by a trusted CA/;
  const d = await runDispatcher(env, ['--timeout', '1500'], ['NEVER']);
  assert.strictEqual(d.code, 1, d.stderr);
  assert.match(d.stderr, untrusted);
  assert.match(d.stderr, /unreachable within 1500 ms \(last: .*untrusted/, 'the final line names the reason');
  assert.doesNotMatch(d.stderr, /dispatched/);
  const p = spawnSync(portalBin, ['--timeout', '1500'], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 10000 });
  assert.strictEqual(p.status, 1, p.stderr);
  assert.match(p.stderr, untrusted);
  assert.match(p.stderr, /unreachable within 1500 ms \(last: .*untrusted/, 'the final line names the reason');
  assert.doesNotMatch(p.stderr, /joined the pool/);
});

(async () => {
  redis = await tlsRedis();
  await h.runTests();
})().catch((e) => { console.log(`not ok - ${e.stack || e}`); h.cleanup(); process.exit(1); });
