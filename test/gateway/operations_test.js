// What operators run the built mesa-gateway with, over real sockets: /ready
// (503 while shutting down, and once Redis has been unreachable for longer
// than MESA_READY_GRACE), the admin listener (MESA_ADMIN_PORT), the metric
// names, the service manager's notifications (NOTIFY_SOCKET, received by
// notify_listener), JSON logs and LOG_LEVEL, the default MESA_THREADS under a
// cgroup CPU quota (MESA_CGROUP_CPU_MAX), command-line options and secret files.
// Every wait polls state with a bound; nothing asserts on timing.
//
// Usage: NOTIFY_LISTENER=path/to/notify_listener node operations_test.js path/to/mesa-gateway
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const h = require('../support/harness');
const { within, test } = h;

const WebSocket = h.load('ws');

const binary = process.argv[2];
const listener = process.env.NOTIFY_LISTENER;
if (!binary || !listener) {
  console.error('usage: NOTIFY_LISTENER=path/to/notify_listener node operations_test.js path/to/mesa-gateway');
  process.exit(2);
}

process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
h.deadline(160000, 'operations test: overall timeout (160 s)');

const KEY = 'operations-test-secret';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-operations-'));
h.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
const version = spawnSync(binary, ['--version']).stdout.toString().trim().split(' ')[1];

/// Starts the gateway with `args` and `env`; resolves once it logged its
/// start-up line. -> {proc, log, port, adminPort?, exited, stop(signal)}
async function start (env, args = [], name = 'gateway') {
  const proc = h.spawnChild(binary, args, { env: { PATH: process.env.PATH, MESA_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const g = { proc, log: '', exited: proc.exited };
  proc.stdout.on('data', (c) => { g.log += c; });
  await within(10000, new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      g.log += chunk;
      if (h.verbose) process.stderr.write(`[${name}] ${chunk}`);
      const m = g.log.match(/listening on port (\d+)/);
      if (!m) return;
      g.port = Number(m[1]);
      const admin = g.log.match(/admin on [^:]+:(\d+)/);
      if (admin) g.adminPort = Number(admin[1]);
      resolve();
    });
    g.exited.then(({ code }) => reject(new Error(`${name} exited early (code ${code}): ${g.log}`)));
  }), `${name} start-up line`);
  g.stop = (signal = 'SIGTERM') => { proc.kill(signal); return within(10000, g.exited, `${name} exit after ${signal}`); };
  return g;
}

/// A raw `ws` client; resolves once the hello arrived. -> {ws, closed}
function connect (url) {
  return within(5000, new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    h.onCleanup(() => ws.terminate());
    const c = { ws };
    c.closed = new Promise((done) => ws.on('close', (code) => done(code)));
    ws.on('unexpected-response', (req, res) => { res.resume(); req.destroy(); resolve({ status: res.statusCode }); });
    ws.on('message', (data) => { if (JSON.parse(data.toString()).op === 10) resolve(c); });
    ws.on('error', reject);
  }), `connect to ${url}`);
}

/// The samples of a Prometheus text, by series ("name{labels}" or "name").
function samples (text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

const get = (port, target) => h.httpRequest(port, 'GET', target);
const metricsOf = async (port) => samples((await get(port, '/metrics')).body);

// ---- the admin listener and the metric names ------------------------------------
test('MESA_ADMIN_PORT serves /metrics, /health, /ready; the public port answers them 404', async () => {
  const g = await start({ WS_KEY: KEY, MESA_THREADS: '2', MESA_PATH: '/ws', MESA_ADMIN_PORT: '0', ENABLE_LOGGING: 'false' });
  assert.ok(g.adminPort > 0, g.log);
  for (const target of ['/health', '/ready', '/metrics']) {
    assert.strictEqual((await get(g.port, target)).status, 404, `public ${target}`);
    const r = await get(g.adminPort, target);
    assert.strictEqual(r.status, 200, `admin ${target}`);
    assert.strictEqual(r.headers.connection, 'close');
    assert.strictEqual(Number(r.headers['content-length']), Buffer.byteLength(r.body));
  }
  assert.deepStrictEqual((await get(g.adminPort, '/ready')).json, { status: 'ready' });
  assert.strictEqual((await get(g.adminPort, '/nope')).status, 404);
  assert.strictEqual((await h.httpRequest(g.adminPort, 'POST', '/dispatch', { body: { message: { d: {} } } })).status, 404);
  assert.strictEqual((await h.httpRequest(g.adminPort, 'POST', '/metrics', { body: '' })).status, 405);

  // Something for every labelled series: a refused upgrade (404), closes with
  // a code of ours and one of the client's own, a dispatch through the broker.
  assert.strictEqual((await connect(`ws://127.0.0.1:${g.port}/elsewhere`)).status, 404);
  const a = await connect(`ws://127.0.0.1:${g.port}/ws`);
  a.ws.close(1000);
  assert.strictEqual(await within(5000, a.closed, 'close 1000'), 1000);
  const b = await connect(`ws://127.0.0.1:${g.port}/ws`);
  b.ws.close(3001);
  await within(5000, b.closed, 'close 3001');
  assert.strictEqual((await h.httpRequest(g.port, 'POST', '/dispatch', { body: { message: { t: 'X', d: {} } } })).status, 202);

  let m;
  await h.eventually('closes counted', async () => {
    m = await metricsOf(g.adminPort);
    assert.strictEqual(m['mesa_closes_total{code="1000"}'], 1);
    assert.strictEqual(m['mesa_closes_total{code="other"}'], 1);
  });
  const text = (await get(g.adminPort, '/metrics')).body;
  assert.strictEqual(m[`mesa_build_info{version="${version}"}`], 1, text);
  assert.strictEqual(m['mesa_refused_upgrades_total{status="404"}'], 1, text);
  assert.strictEqual(m.mesa_dispatch_broker_seconds_count, 1, text);
  assert.strictEqual(m['mesa_dispatch_broker_seconds_bucket{le="+Inf"}'], 1, text);
  assert.strictEqual(m.mesa_broker_reconnects_total, 0, text);
  assert.strictEqual(m.mesa_accepted_connections_total, 2, text);
  assert.strictEqual(m.mesa_open_connections, 0, text);
  assert.strictEqual(m['mesa_worker_open_connections{worker="0"}'] + m['mesa_worker_open_connections{worker="1"}'], 0, text);
  for (const name of ['mesa_received_bytes_total', 'mesa_sent_bytes_total', 'mesa_received_messages_total',
    'mesa_sent_messages_total', 'mesa_http_dispatches_total', 'mesa_sync_stored_messages_total',
    'mesa_sync_redelivered_messages_total', 'mesa_authenticated_clients', 'mesa_broker_connected']) {
    assert.ok(name in m, `${name} in\n${text}`);
  }
  assert.ok(!/instance=/.test(text), 'no label named instance');
  assert.ok(m.mesa_sent_bytes_total > 0);
  assert.strictEqual((await g.stop()).code, 0);
});

// ---- the service manager's notifications, /ready while shutting down ----------------
for (const where of ['path', 'abstract']) {
  test(`NOTIFY_SOCKET (${where}): READY=1 once listening, STOPPING=1 at SIGTERM; /ready 503 during MESA_SHUTDOWN_DELAY`, async () => {
    const address = where === 'path' ? path.join(dir, 'notify.sock') : `@mesa-operations-${process.pid}`;
    const l = h.spawnChild(listener, [address], { stdio: ['ignore', 'pipe', 'inherit'] });
    let heard = '';
    l.stdout.on('data', (c) => { heard += c; });
    await h.until(5000, () => heard.includes('bound\n'), 'notify_listener bound');
    const g = await start({ WS_KEY: KEY, MESA_THREADS: '1', MESA_ADMIN_PORT: '0', MESA_SHUTDOWN_DELAY: '3600000', NOTIFY_SOCKET: address });
    await h.until(5000, () => heard.includes('READY=1\n'), 'READY=1');
    assert.ok(!heard.includes('STOPPING=1'));
    const c = await connect(`ws://127.0.0.1:${g.port}/`);
    assert.strictEqual((await get(g.adminPort, '/ready')).status, 200);

    g.proc.kill('SIGTERM');
    await h.until(5000, () => heard.includes('STOPPING=1\n'), 'STOPPING=1');
    let ready;
    await h.eventually('/ready says shutting down', async () => {
      ready = await get(g.adminPort, '/ready');
      assert.strictEqual(ready.status, 503);
    });
    assert.deepStrictEqual(ready.json, { status: 'not ready', reason: 'shutting down' });
    assert.strictEqual((await get(g.adminPort, '/health')).status, 200, 'still alive');
    assert.strictEqual(c.ws.readyState, WebSocket.OPEN, 'clients stay during the delay');
    // A second signal ends the delay: clients are closed with 1001.
    g.proc.kill('SIGTERM');
    assert.strictEqual(await within(10000, c.closed, 'close after the second SIGTERM'), 1001);
    assert.strictEqual((await within(10000, g.exited, 'exit')).code, 0);
    l.kill('SIGKILL');
  });
}

// ---- /ready and a Redis outage ----------------------------------------------------------
test('/ready: 503 once Redis is unreachable for longer than MESA_READY_GRACE, 200 again when it is back', async () => {
  const redis = await h.startRedis();
  const env = { WS_KEY: KEY, MESA_THREADS: '1', MESA_ADMIN_PORT: '0', REDIS_URI: redis.uri };
  const quick = await start({ ...env, MESA_READY_GRACE: '300' }, [], 'quick');
  const patient = await start({ ...env, MESA_READY_GRACE: '3600000' }, [], 'patient');
  for (const g of [quick, patient]) {
    // The gateway looks at its broker periodically: wait until it saw it up.
    await h.until(10000, () => /worker 0: broker connected after/.test(g.log), 'broker connected (log)');
    await h.eventually('ready on Redis', async () => {
      assert.strictEqual((await get(g.adminPort, '/ready')).status, 200);
      assert.strictEqual((await metricsOf(g.adminPort)).mesa_broker_connected, 1);
    });
  }
  await redis.stop();
  await h.eventually('quick: not ready', async () => {
    const r = await get(quick.adminPort, '/ready');
    assert.strictEqual(r.status, 503);
    assert.match(r.json.reason, /broker unreachable for \d+ ms/);
  }, 15000);
  assert.strictEqual((await get(quick.adminPort, '/health')).status, 200, 'alive all the same');
  await h.eventually('patient: broker down', async () => assert.strictEqual((await metricsOf(patient.adminPort)).mesa_broker_connected, 0), 15000);
  assert.strictEqual((await get(patient.adminPort, '/ready')).status, 200, 'within its grace');

  const back = await h.startRedis(redis.port);
  h.onCleanup(() => back.proc.kill('SIGKILL'));
  for (const g of [quick, patient]) {
    await h.eventually('ready again, one reconnection counted', async () => {
      assert.strictEqual((await get(g.adminPort, '/ready')).status, 200);
      const m = await metricsOf(g.adminPort);
      assert.strictEqual(m.mesa_broker_connected, 1, 'connected');
      assert.strictEqual(m.mesa_broker_reconnects_total, 1, `reconnects; log:\n${g.log}`);
    }, 15000);
  }
  assert.match(quick.log, /broker unreachable/);
  await quick.stop();
  await patient.stop();
  await back.stop();
});

// ---- logs -------------------------------------------------------------------------------
test('LOG_FORMAT=json: one JSON object per line (time, level, event, client, code); LOG_LEVEL filters', async () => {
  const g = await start({ WS_KEY: KEY, MESA_THREADS: '1', LOG_FORMAT: 'json', LOG_LEVEL: 'debug' });
  const c = await connect(`ws://127.0.0.1:${g.port}/`);
  c.ws.close(4000);
  await within(5000, c.closed, 'close');
  await get(g.port, '/health');
  await h.until(5000, () => /"event":"disconnected"/.test(g.log) && /"event":"http"/.test(g.log), 'events logged');
  const lines = g.log.trim().split('\n').map((l) => JSON.parse(l));
  for (const l of lines) {
    assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['debug', 'info', 'warning', 'error'].includes(l.level), JSON.stringify(l));
    assert.strictEqual(typeof l.event, 'string');
    assert.strictEqual(typeof l.message, 'string');
  }
  const listening = lines.find((l) => l.event === 'listening');
  assert.strictEqual(listening.port, g.port);
  assert.strictEqual(listening.version, version);
  const connected = lines.find((l) => l.event === 'connected');
  const disconnected = lines.find((l) => l.event === 'disconnected');
  assert.strictEqual(typeof connected.client, 'number');
  assert.strictEqual(disconnected.client, connected.client);
  assert.strictEqual(disconnected.code, 4000);
  assert.strictEqual(lines.find((l) => l.event === 'http').level, 'debug');
  await g.stop();

  const quiet = await start({ WS_KEY: KEY, MESA_THREADS: '1', LOG_LEVEL: 'error' });
  const q = await connect(`ws://127.0.0.1:${quiet.port}/`);
  q.ws.close(1000);
  await within(5000, q.closed, 'close');
  await quiet.stop();
  const rest = quiet.log.trim().split('\n').filter((l) => !/listening on port/.test(l));
  assert.deepStrictEqual(rest, [], 'LOG_LEVEL=error: nothing below error but the start-up line');
});

// ---- threads, options, secret files ---------------------------------------------------
test('MESA_THREADS defaults to the cgroup CPU quota; --opt=value and --opt value; secrets from files', async () => {
  const cpuMax = path.join(dir, 'cpu.max');
  fs.writeFileSync(cpuMax, '100000 100000\n');
  const keyFile = path.join(dir, 'ws_key');
  fs.writeFileSync(keyFile, `${KEY}\n`);
  const apiKeyFile = path.join(dir, 'api_key');
  fs.writeFileSync(apiKeyFile, 'from-a-file\n');
  const g = await start({ MESA_CGROUP_CPU_MAX: cpuMax, MESA_PORT: '1' },
    ['--mesa-port=0', '--ws-key-file', keyFile, `--mesa-api-key-file=${apiKeyFile}`, '--log-format', 'json']);
  const listening = JSON.parse(g.log.split('\n').find((l) => /"event":"listening"/.test(l)));
  assert.strictEqual(listening.threads, 1, 'one CPU of quota: one instance');
  assert.ok(!/WS_KEY is not set|MESA_API_KEY is not set/.test(g.log), g.log);
  const dispatch = (key) => h.httpRequest(g.port, 'POST', '/dispatch', { body: { message: { d: {} } }, headers: { Authorization: `Bearer ${key}` } });
  assert.strictEqual((await dispatch('from-a-file')).status, 202);
  assert.strictEqual((await dispatch('wrong')).status, 401);
  await g.stop();

  const bad = spawnSync(binary, ['--no-such-option=1']);
  assert.strictEqual(bad.status, 2, String(bad.stderr));
  const both = spawnSync(binary, [], { env: { WS_KEY: 'a', WS_KEY_FILE: keyFile } });
  assert.strictEqual(both.status, 1);
  assert.match(String(both.stderr), /WS_KEY_FILE/);
  assert.match(spawnSync(binary, ['--help']).stdout.toString(), /MESA_READY_GRACE \(10000\)/);
});

h.runTests();
