// Sessions of the built mesa-gateway over real sockets and a real Redis, two
// gateways: token expiry (4004) and refresh, the per-user connection cap
// (4005), the upgrade rate limit (503 + Retry-After), and the presence and
// disconnect HTTP API.
//
// Usage: node sessions_test.js path/to/mesa-gateway
'use strict';
const assert = require('assert');
const h = require('../support/harness');
const { within, jwt, test } = h;

const WebSocket = h.load('ws');

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node sessions_test.js path/to/mesa-gateway');
  process.exit(2);
}

process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
h.deadline(110000, 'sessions test: overall timeout (110 s)');

const KEY = 'sessions-test-secret';
const nowSeconds = () => Math.floor(Date.now() / 1000);
const token = (id, exp) => jwt(exp === undefined ? { id } : { id, exp }, KEY);

/// A raw `ws` client of `url`. Resolves once the hello arrived with
/// {ws, frames (parsed), closed: promise of {code, reason, at}}, or with
/// {status, headers} when the upgrade is refused.
function connect (url) {
  return within(5000, new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    h.onCleanup(() => ws.terminate());
    const c = { ws, frames: [] };
    c.closed = new Promise((done) => ws.on('close', (code, reason) => done({ code, reason: String(reason), at: Date.now() })));
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      c.frames.push(m);
      if (m.op === 10) resolve(c);
    });
    ws.on('error', (e) => { if (!c.frames.length) reject(e); });
  }), `connect to ${url}`);
}

const authenticated = (c) => c.frames.filter((m) => m.op === 22).length;

/// Sends op 2 with `tok` and waits for the first op 22.
async function authenticate (c, tok) {
  c.ws.send(JSON.stringify({ op: 2, d: { token: tok } }));
  await h.until(5000, () => authenticated(c) > 0, 'op 22');
}

let redis, redisUri, a, b;

test('a token that expires closes its socket with 4004 at its exp, with an error event', async () => {
  const exp = nowSeconds() + 2;
  const c = await connect(a.url);
  await authenticate(c, token('expiring', exp));
  const from = a.log.length;
  const { code, at } = await within(5000, c.closed, 'close at exp');
  assert.strictEqual(code, 4004);
  assert.ok(at >= exp * 1000 - 50, `closed ${exp * 1000 - at} ms before exp`);
  assert.ok(at <= exp * 1000 + 1000, `closed ${at - exp * 1000} ms after exp`);
  await h.until(5000, () => /error: .*4004/.test(a.log.slice(from)), 'error event for 4004');
});

test('op 2 with a fresh token for the same id 1 s before exp keeps the socket: no second op 22', async () => {
  const exp = nowSeconds() + 2;
  const c = await connect(a.url);
  await authenticate(c, token('refreshing', exp));
  await h.sleep(exp * 1000 - Date.now() - 1000);
  c.ws.send(JSON.stringify({ op: 2, d: { token: token('refreshing', exp + 30) } }));
  await h.sleep(exp * 1000 - Date.now() + 1000);
  assert.strictEqual(c.ws.readyState, WebSocket.OPEN);
  assert.strictEqual(authenticated(c), 1);
  c.ws.close(1000);
});

test('op 2 with an expired token closes with 1008 (AUTH_DISCONNECT_ON_FAIL)', async () => {
  const c = await connect(a.url);
  await authenticate(c, token('stale', nowSeconds() + 60));
  c.ws.send(JSON.stringify({ op: 2, d: { token: token('stale', nowSeconds() - 10) } }));
  assert.strictEqual((await within(5000, c.closed, 'close')).code, 1008);
});

test('MESA_MAX_CONNECTIONS_PER_USER=2: the third socket of a user, on the other gateway, closes with 4005', async () => {
  const first = await connect(a.url);
  const second = await connect(a.url);
  await authenticate(first, token('capped'));
  await authenticate(second, token('capped'));
  const third = await connect(b.url);
  const from = b.log.length;
  third.ws.send(JSON.stringify({ op: 2, d: { token: token('capped') } }));
  assert.strictEqual((await within(5000, third.closed, 'third closed')).code, 4005);
  assert.strictEqual(authenticated(third), 0);
  await h.until(5000, () => /error: .*max_connections_per_user/.test(b.log.slice(from)), 'error event for 4005');
  await h.sleep(200);
  assert.strictEqual(first.ws.readyState, WebSocket.OPEN);
  assert.strictEqual(second.ws.readyState, WebSocket.OPEN);
  // One of them leaves: a new socket takes its place.
  second.ws.close(1000);
  await second.closed;
  await h.until(5000, async () => (await redis.hget('mesa_presence_sessions', 'capped')) === '1', 'count back to 1');
  const next = await connect(b.url);
  await authenticate(next, token('capped'));
  assert.strictEqual(next.ws.readyState, WebSocket.OPEN);
  first.ws.close(1000);
  next.ws.close(1000);
});

test('MESA_MAX_UPGRADES_PER_SECOND=10: a burst of 50 upgrades gets 503s with Retry-After, and the gateway goes on', async () => {
  const c = await h.startGateway(binary, { MESA_PORT: '0', WS_KEY: KEY, MESA_MAX_UPGRADES_PER_SECOND: '10' }, 'gateway C');
  const results = await Promise.all(Array.from({ length: 50 }, () => connect(c.url)));
  const admitted = results.filter((r) => r.ws);
  const refused = results.filter((r) => r.status);
  assert.strictEqual(admitted.length + refused.length, 50);
  assert.ok(admitted.length >= 10 && admitted.length <= 15, `${admitted.length} admitted`);
  for (const r of refused) {
    assert.strictEqual(r.status, 503);
    assert.match(r.headers['retry-after'], /^[1-9][0-9]*$/);
  }
  // Spread: the later refusals are sent further away than the first.
  const waits = refused.map((r) => Number(r.headers['retry-after']));
  assert.ok(Math.max(...waits) >= 3, `Retry-After ${waits}`);
  const refusals = () => (c.log.match(/error: .*over the upgrade rate limit/g) || []).length;
  await h.until(5000, () => refusals() === refused.length,
    `one error event per refusal, naming the limit (${refused.length} refused)`).catch((e) => {
    throw new Error(`${e.message}: ${refusals()} events in\n${c.log}`);
  });
  await h.sleep(1100);
  const later = await connect(c.url);
  assert.ok(later.ws, 'admitted again once the rate allows');
  assert.ok(c.alive);
  for (const r of [...admitted, later]) r.ws.close(1000);
  assert.deepStrictEqual(await c.stop(), { code: 0, signal: null });
});

const API = 'sessions-api-key';
const api = (g, method, target, body) => h.httpRequest(g.port, method, target, { body, headers: { Authorization: `Bearer ${API}` } });

test('POST /disconnect on gateway B closes a user\'s socket on gateway A with the code and reason given', async () => {
  const target = await connect(a.url);
  const bystander = await connect(a.url);
  await authenticate(target, token('target'));
  await authenticate(bystander, token('bystander'));
  const r = await api(b, 'POST', '/disconnect', { ids: ['target'], code: 4100, reason: 'banned' });
  assert.deepStrictEqual([r.status, r.json], [202, { status: 'accepted', ids: ['target'] }]);
  const { code, reason } = await within(5000, target.closed, 'target closed');
  assert.deepStrictEqual([code, reason], [4100, 'banned']);
  assert.strictEqual(bystander.ws.readyState, WebSocket.OPEN);
  // Bad input: our own codes, a wrong key, a huge list.
  assert.strictEqual((await api(b, 'POST', '/disconnect', { ids: ['bystander'], code: 4000 })).status, 400);
  assert.strictEqual((await h.httpRequest(b.port, 'POST', '/disconnect', { body: { ids: ['bystander'] }, headers: { Authorization: 'Bearer wrong' } })).status, 401);
  const many = Array.from({ length: 1001 }, (_, i) => `u${i}`);
  assert.strictEqual((await api(b, 'POST', '/disconnect', { ids: many })).status, 413);
  assert.strictEqual((await api(b, 'POST', '/disconnect', ' '.repeat(2 << 20))).status, 413);
  await h.sleep(200);
  assert.strictEqual(bystander.ws.readyState, WebSocket.OPEN);
  bystander.ws.close(1000);
});

test('GET /presence: after connect, after one of two sockets closes, after the user\'s gateway stops', async () => {
  const presence = async (g, ...ids) => {
    const r = await api(g, 'GET', '/presence?' + ids.map((id) => `id=${encodeURIComponent(id)}`).join('&'));
    assert.strictEqual(r.status, 200, r.body);
    return r.json.presence;
  };
  const one = await connect(a.url);
  const two = await connect(a.url);
  await authenticate(one, token('present'));
  await authenticate(two, token('present'));
  assert.deepStrictEqual(await presence(b, 'present', 'absent'),
    { present: { online: true, sockets: 2 }, absent: { online: false, sockets: 0 } });
  // An id only Node's set holds (a Node server's client): online, count unknown.
  await redis.sadd('connected_clients_sessions', 'node-user');
  assert.deepStrictEqual(await presence(b, 'node-user'), { 'node-user': { online: true, sockets: null } });
  one.ws.close(1000);
  await one.closed;
  await h.eventually('one socket left', async () =>
    assert.deepStrictEqual(await presence(b, 'present'), { present: { online: true, sockets: 1 } }));
  // Bad input.
  assert.strictEqual((await api(b, 'GET', '/presence?id=')).status, 400);
  assert.strictEqual((await api(b, 'GET', '/presence?id=%zz')).status, 400);
  assert.strictEqual((await h.httpRequest(b.port, 'GET', '/presence?id=present')).status, 401);
  const many = Array.from({ length: 1001 }, (_, i) => `id=u${i}`).join('&');
  assert.strictEqual((await api(b, 'GET', `/presence?${many}`)).status, 414);
  // The user's gateway stops: the user is offline at once.
  assert.deepStrictEqual(await a.stop(), { code: 0, signal: null });
  assert.deepStrictEqual(await presence(b, 'present'), { present: { online: false, sockets: 0 } });
});

test('POST /dispatch with an Idempotency-Key delivers once across gateways; a repeat gets 200 and the first answer', async () => {
  const env = { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: redisUri, MESA_NAMESPACE: 'idem', MESA_THREADS: '1', MESA_API_KEY: API, SYNC_ENABLED: 'true' };
  const c = await h.startGateway(binary, env, 'gateway C');
  const d = await h.startGateway(binary, env, 'gateway D');
  const online = await connect(c.url);
  await authenticate(online, token('online'));
  const dispatch = (g, key, { auth = API, body = { message: { t: 'ONCE', d: { n: 1 } }, recipients: ['online', 'offline'] } } = {}) =>
    h.httpRequest(g.port, 'POST', '/dispatch', { body, headers: { Authorization: `Bearer ${auth}`, ...(key === undefined ? {} : { 'Idempotency-Key': key }) } });
  const received = () => online.frames.filter((m) => m.op === 0 && m.t === 'ONCE').length;
  const stored = async () => JSON.parse((await redis.hget('undelivered_messages_idem', 'offline')) || '[]').length;

  // Through C, then repeated through D: sent once, the repeat answered 200 with C's 202 body.
  const first = await dispatch(c, 'order-1');
  assert.strictEqual(first.status, 202, first.body);
  assert.deepStrictEqual(first.json, { status: 'accepted', recipients: ['online', 'offline'] });
  assert.strictEqual(first.headers['idempotent-replayed'], undefined);
  const repeat = await dispatch(d, 'order-1');
  assert.strictEqual(repeat.status, 200, repeat.body);
  assert.strictEqual(repeat.body, first.body);
  assert.strictEqual(repeat.headers['idempotent-replayed'], 'true');
  // The structured-field form (the key in double quotes) names the same key.
  assert.strictEqual((await dispatch(c, '"order-1"')).status, 200);
  await h.until(5000, () => received() === 1, 'the first dispatch');
  await h.sleep(300);
  assert.strictEqual(received(), 1);
  assert.strictEqual(await stored(), 1);

  // Another key sends again.
  assert.strictEqual((await dispatch(d, 'order-2')).status, 202);
  await h.until(5000, () => received() === 2, 'the second key\'s dispatch');
  assert.strictEqual(await stored(), 2);

  // Both gateways at once with one key: one 202; the other 200 (after) or 409 (while in flight).
  const both = await Promise.all([dispatch(c, 'order-3'), dispatch(d, 'order-3')]);
  const statuses = both.map((r) => r.status);
  assert.strictEqual(statuses.filter((s) => s === 202).length, 1, statuses.join());
  assert.ok(statuses.every((s) => s === 202 || s === 200 || s === 409), statuses.join());
  for (const r of both) if (r.status === 409) assert.strictEqual(r.headers['retry-after'], '1');
  await h.until(5000, () => received() === 3, 'the racing dispatch');

  // Refused before anything is sent: bad keys (400), two keys (400), a wrong API key (401).
  for (const bad of ['', 'k'.repeat(256), 'a b', '"unclosed']) {
    const r = await dispatch(c, bad);
    assert.strictEqual(r.status, 400, `key ${JSON.stringify(bad)}: ${r.body}`);
    assert.match(r.json.error, /Idempotency-Key/);
  }
  assert.strictEqual((await dispatch(c, ['order-4', 'order-5'])).status, 400);
  assert.strictEqual((await dispatch(c, 'order-4', { auth: 'wrong' })).status, 401);
  assert.strictEqual((await dispatch(c, 'k'.repeat(255))).status, 202);
  await h.until(5000, () => received() === 4, 'the 255-byte key\'s dispatch');
  await h.sleep(300);
  assert.strictEqual(received(), 4);
  assert.strictEqual(await stored(), 4);
  online.ws.close(1000);
  assert.deepStrictEqual(await c.stop(), { code: 0, signal: null });
  assert.deepStrictEqual(await d.stop(), { code: 0, signal: null });
});

(async () => {
  const { uri } = await h.startRedis();
  redisUri = uri;
  const Redis = h.load('ioredis');
  redis = new Redis(uri, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  h.onCleanup(() => redis.disconnect());
  const env = { MESA_PORT: '0', WS_KEY: KEY, REDIS_URI: uri, MESA_NAMESPACE: 'sessions', MESA_THREADS: '1', MESA_MAX_CONNECTIONS_PER_USER: '2', MESA_API_KEY: API };
  a = await h.startGateway(binary, env, 'gateway A');
  b = await h.startGateway(binary, env, 'gateway B');
  await h.runTests(() => console.log(`gateway A log:\n${a.log}\ngateway B log:\n${b.log}`));
})().catch((e) => h.abort('sessions test:', e));
