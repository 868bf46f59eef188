// The built mesa-gateway as a process, driven by the real npm @cryb/mesa
// Client (from test/interop/node_modules), Node's crypto (JWTs) and http (API).
// Usage: node gateway_test.js path/to/mesa-gateway
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const http = require('http');
const assert = require('assert');
const h = require('../support/harness');
const { sleep, within, jwt, b64url, test } = h;

const { Message } = h.load('@cryb/mesa');

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node gateway_test.js path/to/mesa-gateway');
  process.exit(2);
}

process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
h.deadline(150000, 'gateway test: overall timeout (150 s)');

// ---- helpers ---------------------------------------------------------------
const nowSeconds = () => Math.floor(Date.now() / 1000);
// One gateway on this machine: what it does shows within 3 s.
const eventually = (what, check, ms = 3000) => h.eventually(what, check, ms);

async function metrics (port) {
  const r = await h.httpRequest(port, 'GET', '/metrics');
  assert.strictEqual(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const values = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, value] = line.split(' ');
    values[name] = Number(value);
  }
  values.text = r.body;
  return values;
}

/// The values of mesa_worker_open_connections, by instance number.
function instanceGauges (values) {
  const out = [];
  for (let i = 0; `mesa_worker_open_connections{worker="${i}"}` in values; i++) {
    out.push(values[`mesa_worker_open_connections{worker="${i}"}`]);
  }
  return out;
}

/// The HTTP status of a bare WebSocket upgrade (101 when admitted; that connection is then dropped).
function upgradeStatus (port) {
  return within(5000, new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/',
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64')
      }
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  }), 'upgrade');
}

// ---- the tests ---------------------------------------------------------------
const KEY = 'gateway-test-secret';
const API_KEY = 'api-key-123';
let gw = null; // the main gateway, shared by the tests below that need it

test('--help exits 0 and lists every variable with its default', async () => {
  const r = spawnSync(binary, ['--help'], { encoding: 'utf8', timeout: 10000 });
  assert.strictEqual(r.status, 0, r.stderr);
  for (const name of ['MESA_PORT', 'MESA_THREADS', 'MESA_PATH', 'MESA_NAMESPACE', 'REDIS_URI', 'ENFORCE_EQUAL_VERSIONS', 'STORE_MESSAGES',
    'SYNC_ENABLED', 'SYNC_REDELIVERY_INTERVAL', 'PORTALS_ENABLED', 'PORTAL_DISTRIBUTE_LOAD', 'HEARTBEATS_ENABLED',
    'HEARTBEAT_INTERVAL', 'HEARTBEAT_MAX_ATTEMPTS', 'RECONNECTS_ENABLED', 'RECONNECT_INTERVAL', 'AUTH_TIMEOUT',
    'AUTH_REQUIRED', 'AUTH_SEND_USER_OBJECT', 'AUTH_DISCONNECT_ON_FAIL', 'AUTH_STORE_CONNECTED_USERS',
    'ENABLE_LOGGING', 'WS_KEY', 'MESA_API_KEY']) {
    assert.ok(r.stdout.includes(name), `--help does not mention ${name}`);
  }
  assert.match(r.stdout, /MESA_PORT \(4500\)/);
  assert.match(r.stdout, /HEARTBEAT_INTERVAL \(10000\)/);
});

test('invalid environment values stop start-up, naming the variable', async () => {
  for (const [name, value] of [['HEARTBEAT_INTERVAL', 'abc'], ['MESA_PORT', '70000'], ['SYNC_ENABLED', 'yes'],
    ['AUTH_TIMEOUT', '-5'], ['MESA_PATH', 'ws'], ['REDIS_URI', 'http://nope'], ['MESA_THREADS', '0'],
    ['MESA_THREADS', '257']]) {
    const r = spawnSync(binary, [], { env: { PATH: process.env.PATH, [name]: value }, encoding: 'utf8', timeout: 10000 });
    assert.notStrictEqual(r.status, 0, `${name}=${value} was accepted`);
    assert.ok(r.status !== null, `${name}=${value}: killed by a signal`);
    assert.ok(r.stderr.includes(name), `${name}=${value}: message does not name it: ${r.stderr}`);
  }
  const r = spawnSync(binary, ['--bogus'], { encoding: 'utf8', timeout: 10000 });
  assert.notStrictEqual(r.status, 0);
});

test('start-up on MESA_PORT with a start-up line naming port, path and broker', async () => {
  const port = await h.freePort();
  gw = await h.startGateway(binary, { MESA_PORT: String(port), WS_KEY: KEY, MESA_API_KEY: API_KEY, ENABLE_LOGGING: 'true' });
  assert.strictEqual(gw.port, port);
  assert.match(gw.log, /listening on port \d+, path \* \(every path\), broker memory/);
  assert.match(gw.log, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /m);
});

test('PING is answered with PONG and the same data (any path)', async () => {
  const c = await h.openClient(`${gw.url}/any/path`);
  assert.ok(Array.isArray(c.hello.d.rules));
  assert.strictEqual(c.hello.d.c_authentication_timeout, 10000);
  assert.ok(!('c_heartbeat_interval' in c.hello.d));
  const data = { n: 42, text: 'héllo', nested: { a: [1, 2] } };
  const pong = h.nextMessage(c, (m) => m.type === 'PONG', 'PONG');
  c.send(new Message(0, data, 'PING'));
  const m = await pong;
  assert.deepStrictEqual(m.data, data);
  c.disconnect(1000);
});

test('JWT authentication: a good token resolves with {id}', async () => {
  const c = await h.openClient(gw.url);
  const user = await within(5000, c.authenticate({ token: jwt({ id: 'alice', exp: nowSeconds() + 60 }, KEY) }), 'authenticate');
  assert.deepStrictEqual(user, { id: 'alice' });
  await eventually('log line', async () => assert.match(gw.log, /authenticated as alice/));
  c.disconnect(1000);
});

for (const [what, token] of [
  ['a bad signature', () => jwt({ id: 'mallory' }, 'not-the-key')],
  ['an expired token', () => jwt({ id: 'alice', exp: nowSeconds() - 10 }, KEY)],
  ['a token not valid yet (nbf)', () => jwt({ id: 'alice', nbf: nowSeconds() + 600 }, KEY)],
  ['alg none', () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ id: 'alice' })}.`],
  ['a malformed token', () => 'not.a-jwt'],
  ['no token at all', () => undefined]
]) {
  test(`JWT authentication: ${what} closes with 1008`, async () => {
    const c = await h.openClient(gw.url);
    let resolved = false;
    c.authenticate(token() === undefined ? { user: 'x' } : { token: token() }).then(() => { resolved = true; });
    const closed = await within(5000, c.closed, 'close after a failed authentication');
    assert.strictEqual(closed.code, 1008);
    assert.strictEqual(resolved, false);
  });
}

test('HTTP dispatch with the key reaches an authenticated client; without it 401', async () => {
  const c = await h.openClient(gw.url);
  await within(5000, c.authenticate({ token: jwt({ id: 'bob' }, KEY) }), 'authenticate');
  const other = await h.openClient(gw.url);
  await within(5000, other.authenticate({ token: jwt({ id: 'carol' }, KEY) }), 'authenticate');

  const body = { message: { op: 0, d: { text: 'hi bob' }, t: 'NEW_MESSAGE' }, recipients: ['bob'] };
  for (const headers of [{}, { Authorization: 'Bearer wrong' }, { Authorization: API_KEY }]) {
    const r = await h.httpRequest(gw.port, 'POST', '/dispatch', { body, headers });
    assert.strictEqual(r.status, 401, JSON.stringify(headers));
    assert.ok(r.json && typeof r.json.error === 'string');
  }
  const got = h.nextMessage(c, (m) => m.type === 'NEW_MESSAGE', 'dispatched message');
  const r = await h.httpRequest(gw.port, 'POST', '/dispatch', { body, headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' } });
  assert.strictEqual(r.status, 202, r.body);
  assert.deepStrictEqual(r.json.recipients, ['bob']);
  const m = await got;
  assert.deepStrictEqual(m.data, { text: 'hi bob' });

  // To everyone but bob (default recipients ["*"]).
  const everyone = h.nextMessage(other, (m) => m.type === 'ALL', 'broadcast');
  const r2 = await h.httpRequest(gw.port, 'POST', '/dispatch', { body: { message: { d: { n: 1 }, t: 'ALL' }, excluding: ['bob'] }, headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.strictEqual(r2.status, 202, r2.body);
  await everyone;
  // Once bob has a later broadcast, an ALL for him would have come before it.
  const after = h.nextMessage(c, (m) => m.type === 'AFTER', 'a later broadcast');
  const r3 = await h.httpRequest(gw.port, 'POST', '/dispatch', { body: { message: { d: {}, t: 'AFTER' } }, headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.strictEqual(r3.status, 202, r3.body);
  await after;
  assert.ok(!c.got.some((x) => x.type === 'ALL'), 'bob got the broadcast that excluded him');
  assert.ok(!other.got.some((x) => x.type === 'NEW_MESSAGE'), 'carol got bob\'s message');
  c.disconnect(1000);
  other.disconnect(1000);
});

test('HTTP API: clear 400 / 404 / 405 errors, /health', async () => {
  const auth = { Authorization: `Bearer ${API_KEY}` };
  for (const body of ['not json', '[]', { nomessage: 1 }, { message: { d: [] } }, { message: { d: {}, t: 3 } },
    { message: { d: {} }, recipients: 'bob' }, { message: { d: {} }, recipients: [] }]) {
    const r = await h.httpRequest(gw.port, 'POST', '/dispatch', { body, headers: auth });
    assert.strictEqual(r.status, 400, JSON.stringify(body));
    assert.ok(r.json && typeof r.json.error === 'string' && r.json.error.length > 0, r.body);
  }
  assert.strictEqual((await h.httpRequest(gw.port, 'GET', '/nope')).status, 404);
  assert.strictEqual((await h.httpRequest(gw.port, 'GET', '/dispatch')).status, 405);
  assert.strictEqual((await h.httpRequest(gw.port, 'POST', '/metrics', { body: '' })).status, 405);
  const health = await h.httpRequest(gw.port, 'GET', '/health');
  assert.strictEqual(health.status, 200);
  assert.strictEqual(health.json.status, 'ok');
  assert.strictEqual(typeof health.json.connections, 'number');
  assert.ok(!('redis' in health.json));
});

test('/metrics values move as clients connect, authenticate and talk', async () => {
  await eventually('no clients left', async () => assert.strictEqual((await metrics(gw.port)).mesa_open_connections, 0));
  const before = await metrics(gw.port);
  for (const name of ['mesa_open_connections', 'mesa_authenticated_clients', 'mesa_accepted_connections_total',
    'mesa_received_messages_total', 'mesa_sent_messages_total', 'mesa_received_bytes_total', 'mesa_sent_bytes_total',
    'mesa_http_dispatches_total', 'mesa_sync_stored_messages_total', 'mesa_sync_redelivered_messages_total', 'mesa_broker_connected']) {
    assert.ok(Number.isFinite(before[name]), `${name} missing`);
    assert.match(before.text, new RegExp(`# HELP ${name} `));
    assert.match(before.text, new RegExp(`# TYPE ${name} (gauge|counter)`));
  }
  assert.strictEqual(before.mesa_broker_connected, 1);
  assert.ok(before.mesa_http_dispatches_total >= 2);

  const a = await h.openClient(gw.url);
  const b = await h.openClient(gw.url);
  await within(5000, b.authenticate({ token: jwt({ id: 'dave' }, KEY) }), 'authenticate');
  const pong = h.nextMessage(a, (m) => m.type === 'PONG', 'PONG');
  a.send(new Message(0, { x: 1 }, 'PING'));
  await pong;
  const during = await metrics(gw.port);
  assert.strictEqual(during.mesa_open_connections, 2);
  assert.match(during.text, /# TYPE mesa_worker_open_connections gauge\n/);
  assert.strictEqual(instanceGauges(during).reduce((a, b) => a + b, 0), 2, during.text);
  assert.strictEqual(during.mesa_authenticated_clients, 1);
  assert.strictEqual(during.mesa_accepted_connections_total, before.mesa_accepted_connections_total + 2);
  assert.ok(during.mesa_received_messages_total >= before.mesa_received_messages_total + 2);
  assert.ok(during.mesa_sent_messages_total >= before.mesa_sent_messages_total + 4); // 2 hellos, op 22, PONG
  assert.ok(during.mesa_received_bytes_total > before.mesa_received_bytes_total);
  assert.ok(during.mesa_sent_bytes_total > before.mesa_sent_bytes_total);

  await h.httpRequest(gw.port, 'POST', '/dispatch', { body: { message: { d: {}, t: 'X' } }, headers: { Authorization: `Bearer ${API_KEY}` } });
  assert.strictEqual((await metrics(gw.port)).mesa_http_dispatches_total, before.mesa_http_dispatches_total + 1);

  a.disconnect(1000);
  b.disconnect(1000);
  await eventually('connections back to 0', async () => {
    const after = await metrics(gw.port);
    assert.strictEqual(after.mesa_open_connections, 0);
    assert.strictEqual(after.mesa_authenticated_clients, 0);
  });
});

test('one log line per connection, authentication, disconnection and error', async () => {
  assert.match(gw.log, /client #\d+ connected from /);
  assert.match(gw.log, /client #\d+ \(alice\) disconnected: 1000/);
  assert.match(gw.log, /error: client #\d+: authentication failed: (bad signature|token expired)/);
});

test('SIGTERM: clients are closed with 1001 and the process exits 0', async () => {
  const c = await h.openClient(gw.url);
  await within(5000, c.authenticate({ token: jwt({ id: 'erin' }, KEY) }), 'authenticate');
  gw.proc.kill('SIGTERM');
  const closed = await within(5000, c.closed, 'close on SIGTERM');
  assert.strictEqual(closed.code, 1001);
  const exit = await within(5000, gw.exited, 'exit after SIGTERM');
  assert.deepStrictEqual(exit, { code: 0, signal: null });
  assert.match(gw.log, /received SIGTERM/);
});

test('heartbeats from the environment; no MESA_API_KEY: dispatch without a key; MESA_PATH', async () => {
  const g = await h.startGateway(binary, {
    MESA_PORT: '0', MESA_PATH: '/ws', WS_KEY: KEY, HEARTBEATS_ENABLED: 'true', HEARTBEAT_INTERVAL: '200',
    ENABLE_LOGGING: 'false', SYNC_ENABLED: 'true'
  });
  assert.match(g.log, /path \/ws/);
  const c = await h.openClient(`${g.url}/ws`);
  assert.strictEqual(c.hello.d.c_heartbeat_interval, 200);
  // Several beats: the Client answers op 11, so it stays connected.
  await eventually('three beats arrive', async () => assert.ok(c.frames.filter((f) => f.op === 1).length >= 3), 10000);
  assert.ok(c.frames.filter((f) => f.op === 1).every((f) => f.d && !('tries' in f.d)), 'acked beats carry no tries');
  assert.strictEqual(c.ws.readyState, c.ws.OPEN);

  // Sync: a message for an offline id is stored, then redelivered with s = 1.
  const r = await h.httpRequest(g.port, 'POST', '/dispatch', { body: { message: { d: { n: 7 }, t: 'LATER' }, recipients: ['frank'] } });
  assert.strictEqual(r.status, 202, r.body);
  await eventually('stored', async () => assert.strictEqual((await metrics(g.port)).mesa_sync_stored_messages_total, 1));
  const f = await h.openClient(`${g.url}/ws`);
  const later = h.nextMessage(f, (m) => m.type === 'LATER', 'redelivered message');
  await within(5000, f.authenticate({ token: jwt({ id: 'frank' }, KEY) }), 'authenticate');
  const m = await later;
  assert.deepStrictEqual(m.data, { n: 7 });
  assert.strictEqual(m.sequence, 1);
  assert.strictEqual((await metrics(g.port)).mesa_sync_redelivered_messages_total, 1);

  // Without MESA_API_KEY, dispatch needs no key.
  const got = h.nextMessage(f, (m) => m.type === 'NOW', 'dispatch without a key');
  const r2 = await h.httpRequest(g.port, 'POST', '/dispatch', { body: { message: { d: {}, t: 'NOW' }, recipients: ['frank'] } });
  assert.strictEqual(r2.status, 202, r2.body);
  await got;
  assert.ok(!/connected from/.test(g.log), 'ENABLE_LOGGING=false still logged connections');

  g.proc.kill('SIGINT');
  assert.strictEqual((await within(5000, c.closed, 'close on SIGINT')).code, 1001);
  assert.deepStrictEqual(await within(5000, g.exited, 'exit after SIGINT'), { code: 0, signal: null });
});

test('MESA_THREADS=2: connections spread over both instances; every message reaches its clients once; SIGTERM closes all', async () => {
  const g = await h.startGateway(binary, { MESA_PORT: '0', MESA_THREADS: '2', WS_KEY: KEY, MESA_API_KEY: API_KEY, ENABLE_LOGGING: 'true' });
  assert.match(g.log, /listening on port \d+, .*, 2 threads/);
  const n = 40;
  const ids = Array.from({ length: n }, (_, i) => `t${i}`);
  const cs = await Promise.all(ids.map(async (id) => {
    const c = await h.openClient(g.url);
    await within(5000, c.authenticate({ token: jwt({ id }, KEY) }), `authenticate ${id}`);
    return c;
  }));

  // The kernel spreads connections over both instances; /metrics, wherever
  // it is answered, counts them all at once.
  const m = await metrics(g.port);
  assert.strictEqual(m.mesa_open_connections, n);
  assert.strictEqual(m.mesa_authenticated_clients, n);
  assert.strictEqual(m.mesa_accepted_connections_total, n);
  const per = instanceGauges(m);
  assert.strictEqual(per.length, 2, m.text);
  assert.strictEqual(per[0] + per[1], n, m.text);
  assert.ok(per[0] > 0 && per[1] > 0, `every connection on one instance: ${per}`);

  // Each HTTP request lands on either instance: broadcasts, one dispatch per
  // id and one to every id reach clients of both instances, once each.
  const auth = { Authorization: `Bearer ${API_KEY}` };
  const dispatch = async (body) => assert.strictEqual((await h.httpRequest(g.port, 'POST', '/dispatch', { body, headers: auth })).status, 202);
  for (let k = 0; k < 4; k++) await dispatch({ message: { d: { k }, t: 'ALL' } });
  for (const [i, id] of ids.entries()) await dispatch({ message: { d: { i }, t: 'ONE' }, recipients: [id] });
  await dispatch({ message: { d: {}, t: 'LIST' }, recipients: ids });
  const expected = (c) => c.got.filter((x) => x.type === 'ALL').length === 4 && c.got.filter((x) => x.type === 'ONE').length === 1 &&
    c.got.filter((x) => x.type === 'LIST').length === 1;
  await eventually('every client got its messages', async () => assert.ok(cs.every(expected)), 5000);
  await sleep(300); // anything delivered twice would have arrived by now
  for (const [i, c] of cs.entries()) {
    assert.deepStrictEqual(c.got.filter((x) => x.type === 'ALL').map((x) => x.data.k).sort(), [0, 1, 2, 3], ids[i]);
    assert.deepStrictEqual(c.got.filter((x) => x.type === 'ONE').map((x) => x.data.i), [i], ids[i]);
    assert.strictEqual(c.got.filter((x) => x.type === 'LIST').length, 1, ids[i]);
    assert.strictEqual(c.got.length, 6, ids[i]);
  }
  const after = await metrics(g.port);
  assert.strictEqual(after.mesa_http_dispatches_total, 4 + n + 1);
  // hello, op 22, 4 broadcasts, one message to the id, one to every id
  assert.strictEqual(after.mesa_sent_messages_total, 8 * n);

  // Connection numbers are unique across instances; log lines never interleave.
  const numbers = [...g.log.matchAll(/client #(\d+) connected from/g)].map((x) => Number(x[1]));
  assert.strictEqual(numbers.length, n);
  assert.strictEqual(new Set(numbers).size, n);
  for (const line of g.log.split('\n').filter(Boolean)) assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z mesa-gateway: /);

  g.proc.kill('SIGTERM');
  const closes = await within(5000, Promise.all(cs.map((c) => c.closed)), 'every client closed on SIGTERM');
  assert.deepStrictEqual(closes.map((x) => x.code), cs.map(() => 1001));
  assert.deepStrictEqual(await within(5000, g.exited, 'exit after SIGTERM'), { code: 0, signal: null });
});

test('MESA_THREADS=2: MESA_MAX_CONNECTIONS counts the whole gateway (HTTP 503 past it)', async () => {
  const g = await h.startGateway(binary, { MESA_PORT: '0', MESA_THREADS: '2', MESA_MAX_CONNECTIONS: '3', ENABLE_LOGGING: 'false' });
  const open = [await h.openClient(g.url), await h.openClient(g.url), await h.openClient(g.url)];
  // Each upgrade lands on either instance; a limit per instance would admit some.
  for (let i = 0; i < 10; i++) assert.strictEqual(await upgradeStatus(g.port), 503, `upgrade ${i}`);
  assert.strictEqual((await metrics(g.port)).mesa_open_connections, 3);
  open[0].disconnect(1000);
  await within(5000, open[0].closed, 'close');
  await eventually('a place is free again', async () => assert.strictEqual(await upgradeStatus(g.port), 101));
  assert.deepStrictEqual(await g.stop(), { code: 0, signal: null });
});

h.runTests(() => { if (gw && h.verbose) console.log(gw.log); });
