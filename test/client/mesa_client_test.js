// mesa-client as a process (stdin lines in, stdout JSON lines out, exit
// codes), against our interop_server, our mesa-gateway (JWT, restart on the
// same port) and the Node @cryb/mesa 1.5.8 Server (node_server.js): the
// library's mesa::client talking to both implementations.
// Usage: node mesa_client_test.js mesa-client interop_server mesa-gateway
'use strict';
const { spawn } = require('child_process');
const crypto = require('crypto');
const net = require('net');
const path = require('path');
const assert = require('assert');

const [client, interopServer, gateway] = process.argv.slice(2);
if (!gateway) {
  console.error('usage: node mesa_client_test.js mesa-client interop_server mesa-gateway');
  process.exit(2);
}

const children = new Set();
process.on('exit', () => { for (const p of children) { try { p.kill('SIGKILL'); } catch (_) {} } });
const overall = setTimeout(() => { console.error('mesa-client test: overall timeout'); process.exit(1); }, 100000);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function within (ms, promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timeout (${ms} ms): ${what}`)), ms); })
  ]);
}
function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
const b64url = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function jwt (payload, key) {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(payload)}`;
  return `${input}.${crypto.createHmac('sha256', key).update(input).digest('base64url')}`;
}

/// Spawns a process; collects stdout/stderr; `exited` resolves with {code, signal}.
function run (binary, args, opts = {}) {
  const proc = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  children.add(proc);
  const p = { proc, out: '', err: '' };
  proc.stdin.on('error', () => {}); // EPIPE when it exited first (usage errors)
  proc.stdout.on('data', (c) => { p.out += c; });
  proc.stderr.on('data', (c) => { p.err += c; if (process.env.CLIENT_TEST_VERBOSE) process.stderr.write(c); });
  p.exited = new Promise((resolve) => proc.on('exit', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
  p.lines = () => p.out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  p.waitFor = (what, check, ms = 5000) => within(ms, (async () => { while (!check()) await sleep(20); })(), `${what}\nstdout: ${p.out}\nstderr: ${p.err}`);
  return p;
}

/// mesa-client with `input` lines on stdin (then end of input) -> {code, out, err, lines}.
async function mesaClient (args, input = [], ms = 10000) {
  const p = run(client, args);
  p.proc.stdin.end(input.map((l) => l + '\n').join(''));
  const { code, signal } = await within(ms, p.exited, `mesa-client ${args.join(' ')}`);
  return { code, signal, out: p.out, err: p.err, lines: p.lines() };
}

async function startInterop () {
  const s = run(interopServer, ['100', '100']);
  await s.waitFor('interop_server start-up', () => /listening on \d+/.test(s.out));
  s.url = `ws://127.0.0.1:${s.out.match(/listening on (\d+)/)[1]}`;
  return s;
}
const KEY = 'client-test-secret';
async function startGateway (port) {
  const g = run(gateway, [], {
    env: { PATH: process.env.PATH, MESA_PORT: String(port), WS_KEY: KEY, RECONNECTS_ENABLED: 'true', RECONNECT_INTERVAL: '100', HEARTBEATS_ENABLED: 'true', HEARTBEAT_INTERVAL: '100', HEARTBEAT_MAX_ATTEMPTS: '1' }
  });
  await g.waitFor('gateway start-up', () => /listening on port \d+/.test(g.err), 10000);
  return g;
}
async function startNode (port) {
  const s = run(process.execPath, [path.join(__dirname, 'node_server.js'), String(port)], { env: process.env });
  await s.waitFor('Node server start-up', () => /listening on \d+/.test(s.out));
  return s;
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

// ---- usage and URLs ----------------------------------------------------------------
test('bad usage and URLs exit 2 with a clear message', async () => {
  let r = await mesaClient([]);
  assert.strictEqual(r.code, 2); assert.match(r.err, /usage: mesa-client URL/);
  r = await mesaClient(['http://127.0.0.1:1/']);
  assert.strictEqual(r.code, 2); assert.match(r.err, /not a ws:\/\/ URL/);
  r = await mesaClient(['wss://127.0.0.1:1/']);
  assert.strictEqual(r.code, 2); assert.match(r.err, /wss:\/\/ is not supported yet/);
  r = await mesaClient(['ws://127.0.0.1:1', '--auth', '[1]']);
  assert.strictEqual(r.code, 2); assert.match(r.err, /--auth needs a JSON object/);
  r = await mesaClient(['ws://127.0.0.1:1', '--bogus']);
  assert.strictEqual(r.code, 2); assert.match(r.err, /unknown option --bogus/);
});

test('no server there: exit 1, saying it cannot connect', async () => {
  const r = await mesaClient([`ws://127.0.0.1:${await freePort()}`], ['PING {}']);
  assert.strictEqual(r.code, 1, r.err);
  assert.match(r.err, /cannot connect to ws:\/\/127\.0\.0\.1:\d+/);
});

// ---- our interop server ------------------------------------------------------------
let interop;
test('interop_server: PINGs answered in order, stdout is one JSON line per op 0, exit 0', async () => {
  interop = await startInterop();
  const r = await mesaClient([interop.url, '--token', 'alice', '--linger', '400'],
    ['PING {"n": 1}', '', '# a comment', 'PING {"n":2}', 'PING', '{"op":0,"d":{"n":4},"t":"PING"}', 'PING [1]', 'PING {oops']);
  assert.strictEqual(r.code, 0, r.err);
  assert.deepStrictEqual(r.lines, [
    { op: 0, d: { n: 1 }, t: 'PONG' }, { op: 0, d: { n: 2 }, t: 'PONG' }, { op: 0, d: {}, t: 'PONG' }, { op: 0, d: { n: 4 }, t: 'PONG' }]);
  assert.match(r.err, /connected to ws:\/\//);
  assert.match(r.err, /authenticated as \{"id":"alice","name":"User alice"\}/);
  assert.match(r.err, /line 7 ignored: data of PING must be a JSON object/);
  assert.match(r.err, /line 8 ignored: data of PING is not JSON/);
});

test('interop_server: refused credentials exit 3', async () => {
  const r = await mesaClient([interop.url, '--token', 'bad'], ['PING {}']);
  assert.strictEqual(r.code, 3, r.err);
  assert.match(r.err, /authentication failed: .*1008/);
});

test('interop_server: synced messages printed with s in order; --no-sync drops them', async () => {
  const send = ['SEND_TO {"to":"zed","n":1}', 'SEND_TO {"to":"zed","n":2}', 'SEND_TO {"to":"zed","n":3}', 'SEND_TO {"to":"yan","n":9}'];
  let r = await mesaClient([interop.url, '--token', 'sender', '--linger', '100'], send);
  assert.strictEqual(r.code, 0, r.err);
  r = await mesaClient([interop.url, '--token', 'zed', '--linger', '300']);
  assert.strictEqual(r.code, 0, r.err);
  assert.deepStrictEqual(r.lines, [1, 2, 3].map((n) => ({ op: 0, d: { n }, t: 'SYNCED', s: n })));
  r = await mesaClient([interop.url, '--token', 'yan', '--no-sync', '--linger', '300']);
  assert.strictEqual(r.code, 0, r.err);
  assert.deepStrictEqual(r.lines, []);
  interop.proc.kill('SIGTERM');
});

// ---- our gateway: JWT, restart on the same port ------------------------------------------
test('mesa-gateway: JWT auth, then a restart on the same port: reconnects, re-authenticates, flushes the queue', async () => {
  const port = await freePort();
  let g = await startGateway(port);
  const url = `ws://127.0.0.1:${port}`;
  const bad = await mesaClient([url, '--token', jwt({ id: 'eve' }, 'wrong-key')], []);
  assert.strictEqual(bad.code, 3, bad.err);

  const c = run(client, [url, '--token', jwt({ id: 'alice' }, KEY)]);
  await c.waitFor('authenticated', () => /authenticated as \{"id":"alice"\}/.test(c.err));
  c.proc.stdin.write('PING {"n":1}\n');
  await c.waitFor('PONG 1', () => c.lines().length === 1);
  await sleep(400); // heartbeats at 100 ms, one attempt allowed: answered or we would be closed
  assert.doesNotMatch(c.err, /disconnected/);

  g.proc.kill('SIGKILL');
  await g.exited;
  await c.waitFor('reconnecting', () => /disconnected \(1006[^)]*\); reconnecting/.test(c.err));
  c.proc.stdin.write('PING {"n":2}\nPING {"n":3}\n'); // queued while the gateway is down
  await sleep(300);
  g = await startGateway(port);
  await c.waitFor('PONG 2 and 3', () => c.lines().length === 3);
  assert.deepStrictEqual(c.lines().map((l) => l.d.n), [1, 2, 3]);
  assert.match(c.err, /connected to .* \(automatic reconnection\)/);
  assert.strictEqual((c.err.match(/authenticated as/g) || []).length, 2);
  c.proc.stdin.end();
  assert.strictEqual((await within(5000, c.exited, 'exit')).code, 0, c.err);
  g.proc.kill('SIGTERM');
});

// ---- the Node reference server -------------------------------------------------------------
test('Node @cryb/mesa Server: hello, heartbeats, auth with the user object, restart, queue flush', async () => {
  const port = await freePort();
  let s = await startNode(port);
  const url = `ws://127.0.0.1:${port}`;
  const bad = await mesaClient([url, '--token', 'bad'], []);
  assert.strictEqual(bad.code, 3, bad.err);

  const c = run(client, [url, '--token', 'nina']);
  await c.waitFor('authenticated', () => /authenticated as \{"id":"nina","name":"User nina"\}/.test(c.err));
  c.proc.stdin.write('PING {"n":1}\n');
  await c.waitFor('PONG 1', () => c.lines().length === 1);
  const before = (s.out.match(/disconnect/g) || []).length;
  await sleep(600); // six heartbeat intervals with maxAttempts 1
  assert.doesNotMatch(c.err, /disconnected/);
  assert.strictEqual((s.out.match(/disconnect/g) || []).length, before);

  s.proc.kill('SIGKILL');
  await s.exited;
  await c.waitFor('reconnecting', () => /reconnecting/.test(c.err));
  c.proc.stdin.write('PING {"n":2}\n');
  await sleep(200);
  s = await startNode(port);
  await c.waitFor('PONG 2', () => c.lines().length === 2);
  assert.deepStrictEqual(c.lines(), [{ op: 0, d: { n: 1 }, t: 'PONG' }, { op: 0, d: { n: 2 }, t: 'PONG' }]);
  assert.strictEqual((c.err.match(/authenticated as/g) || []).length, 2);
  c.proc.stdin.end();
  assert.strictEqual((await within(5000, c.exited, 'exit')).code, 0, c.err);
  s.proc.kill('SIGKILL');
});

(async () => {
  let failed = 0;
  for (const { name, fn } of tests) {
    try {
      await fn();
      console.log(`ok - ${name}`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${name}\n  ${String(e.stack || e).split('\n').join('\n  ')}`);
    }
  }
  clearTimeout(overall);
  console.log(failed ? `${failed} of ${tests.length} failed` : `all ${tests.length} passed`);
  process.exit(failed ? 1 : 0);
})();
