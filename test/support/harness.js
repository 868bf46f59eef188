// What the Node.js process tests share: child processes that die with the
// test (mesa-gateway, redis-server), timeouts, JWTs, HTTP requests and npm
// @cryb/mesa Clients that record what they receive.
// MESA_TEST_VERBOSE=1 echoes the output of the processes started here.
'use strict';
const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const net = require('net');
const path = require('path');
const assert = require('assert');

const verbose = !!process.env.MESA_TEST_VERBOSE;

/// An npm package: from NODE_PATH, else from test/interop/node_modules (run by hand).
function load (name) {
  try {
    return require(name);
  } catch (_) {
    return require(path.join(__dirname, '..', 'interop', 'node_modules', name));
  }
}

// ---- cleanup -----------------------------------------------------------------
// Whatever a test leaves open when it exits, by failure or timeout: children
// left running would hold their ports and outlive the meson test.
const children = new Set();
const closers = new Set();

/// Runs `fn` at cleanup; the returned function unregisters it (once the thing closed by itself).
function onCleanup (fn) {
  closers.add(fn);
  return () => closers.delete(fn);
}

function cleanup () {
  for (const f of closers) { try { f(); } catch (_) {} }
  closers.clear();
  for (const p of children) { try { p.kill('SIGKILL'); } catch (_) {} }
}
process.on('exit', cleanup);

/// Prints `what`, cleans up and exits 1.
function abort (...what) {
  console.error(...what);
  cleanup();
  process.exit(1);
}

/// A timer that aborts the test after `ms`. Not unref'd: it also keeps the
/// event loop alive, so a test stuck on a promise fails instead of exiting 0.
function deadline (ms, what) {
  return setTimeout(() => abort(what), ms);
}

/// spawn(), SIGKILLed at cleanup; `proc.exited` resolves with {code, signal}.
function spawnChild (binary, args, options) {
  const proc = spawn(binary, args, options);
  children.add(proc);
  proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
  return proc;
}

// ---- time ----------------------------------------------------------------------
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function within (ms, promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timeout (${ms} ms): ${what}`)), ms); })
  ]);
}

/// Retries `check` (which throws, e.g. an assertion, until it holds) every 50 ms for up to `ms`.
async function eventually (what, check, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    try { return await check(); } catch (e) {
      if (Date.now() > end) throw new Error(`${what} (within ${ms} ms): ${e.message}`);
    }
    await sleep(50);
  }
}

/// Polls `predicate` (true or false, may be async) every 20 ms until it is true, for up to `ms`.
async function until (ms, predicate, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > end) throw new Error(`timeout (${ms} ms): ${what}`);
    await sleep(20);
  }
}

// ---- a test list run in order ------------------------------------------------------
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

/// Runs the tests given to test(), each after the other (they share processes);
/// `onFailure` adds context after a failure. Exits 1 if any failed.
async function runTests (onFailure = () => {}) {
  let failed = 0;
  for (const { name, fn } of tests) {
    try {
      await fn();
      console.log(`ok - ${name}`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${name}\n  ${String((e && e.stack) || e).split('\n').join('\n  ')}`);
      onFailure();
    }
  }
  cleanup();
  console.log(failed ? `${failed} of ${tests.length} failed` : `all ${tests.length} passed`);
  process.exit(failed ? 1 : 0);
}

// ---- ports, tokens, HTTP, /proc --------------------------------------------------------
function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/// An HS256 JWT for `payload` signed with `key` (another `header` makes bad ones).
function jwt (payload, key, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${crypto.createHmac('sha256', key).update(input).digest('base64url')}`;
}

/// An HTTP request to 127.0.0.1:`port` (https:// when given a `ca`); a body
/// that is not a string is sent as JSON. -> {status, headers, body, json}
function httpRequest (port, method, target, { body, headers, ca, ms = 5000 } = {}) {
  return within(ms, new Promise((resolve, reject) => {
    const text = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
    const allHeaders = { ...(headers || {}) };
    if (text !== undefined) allHeaders['Content-Length'] = Buffer.byteLength(text);
    const req = (ca ? https : http).request({ host: '127.0.0.1', port, method, path: target, ca, agent: false, headers: allHeaders }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(data); } catch (_) {}
        resolve({ status: res.statusCode, headers: res.headers, body: data, json });
      });
    });
    req.on('error', reject);
    req.end(text);
  }), `${method} ${target} on port ${port}`);
}

/// A self-signed EC certificate for 127.0.0.1 and localhost, written to `dir`
/// with the `openssl` command ($OPENSSL, else from PATH). -> {cert, key} paths
function selfSignedCert (dir, name) {
  const cert = path.join(dir, `${name}-cert.pem`);
  const key = path.join(dir, `${name}-key.pem`);
  const r = spawnSync(process.env.OPENSSL || 'openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', `/CN=mesa-test-${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', key, '-out', cert], { encoding: 'utf8', timeout: 30000 });
  assert.strictEqual(r.status, 0, `openssl failed: ${r.error || r.stderr}`);
  return { cert, key };
}

/// The resident set size of process `pid` in bytes (Linux).
function rssOf (pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  assert(m, 'no VmRSS in /proc/PID/status');
  return Number(m[1]) * 1024;
}

// ---- redis-server and mesa-gateway ----------------------------------------------------------
/// A redis-server on `port` (a free one by default), without persistence;
/// resolves once it answers PING. -> {proc, port, uri, args, output, stop}
async function startRedis (port) {
  return startRedisWith(['--save', '', '--appendonly', 'no'], port);
}

/// Starts one redis-server with `args` on `port` (a free one by default) and
/// waits until it answers. Without a `--dir` in `args` it runs in a directory
/// of its own: a replica writes an RDB file at each full sync, and a server
/// started later in the same directory would load it (another test's data).
async function startRedisWith (args = [], port) {
  if (spawnSync('redis-server', ['--version']).error) throw new Error('redis-server not found (apt-get install redis-server)');
  if (port === undefined) port = await freePort();
  const own = [];
  if (!args.includes('--dir')) {
    const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'mesa-redis-'));
    onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    own.push('--dir', dir);
  }
  const proc = spawnChild('redis-server', [...args, ...own, '--port', String(port), '--bind', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c) => { out += c; });
  proc.stderr.on('data', (c) => { out += c; });
  let error = null;
  proc.on('error', (e) => { error = e; });
  const Redis = load('ioredis');
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {}); // refused until redis-server is up
  try {
    await eventually(`redis-server ${args.join(' ')} up on port ${port}`, async () => {
      if (error) throw new Error(`cannot start redis-server: ${error.message}`);
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}): ${out}`);
      if (probe.status !== 'ready') { probe.disconnect(); await probe.connect(); }
      assert.strictEqual(await probe.ping(), 'PONG');
    }, 10000);
  } finally { probe.disconnect(); }
  return {
    proc,
    port,
    uri: `redis://127.0.0.1:${port}`,
    args,
    output: () => out,
    stop: async () => { proc.kill('SIGKILL'); await within(5000, proc.exited, 'redis-server exit'); }
  };
}

/// A master, its replicas and three sentinels (redis-server --sentinel with
/// generated configuration files) monitoring it as `name`, on loopback, with
/// `replicas` replicas (1). Waits until every sentinel knows the replicas and
/// the two other sentinels. With `appendonly`, every data node keeps an
/// append-only file fsync'd at every write (`--appendfsync always`) in a
/// directory of its own; `node.args` start it again (add --port).
/// -> {master, replica (the first), replicas, nodes (master and replicas),
///     sentinels: [{port, proc, stop}], list ("h:p,h:p,h:p"),
///     ioredis ([{host, port}]), name, command(i, ...args), masterPort()}
async function startSentinels ({ name = 'mymaster', downAfterMs = 1000, failoverTimeoutMs = 3000, appendonly = false, replicas: replicaCount = 1 } = {}) {
  const os = require('os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-sentinel-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  const base = (role) => {
    if (!appendonly) return ['--save', '', '--appendonly', 'no'];
    const data = path.join(dir, role);
    fs.mkdirSync(data, { recursive: true });
    return ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', data];
  };
  const master = await startRedisWith(base('master'));
  const replicas = [];
  for (let i = 0; i < replicaCount; ++i) replicas.push(await startRedisWith([...base(`replica-${i}`), '--replicaof', '127.0.0.1', String(master.port)]));
  // Replicas still loading their first copy would not acknowledge (WAIT) yet.
  const Redis = load('ioredis');
  const probe = new Redis({ host: '127.0.0.1', port: master.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  try {
    await eventually(`the master has ${replicaCount} replicas online`, async () => {
      const online = (await probe.info('replication')).match(/state=online/g) || [];
      assert.strictEqual(online.length, replicaCount);
    }, 30000);
  } finally { probe.disconnect(); }
  const sentinels = [];
  for (let i = 0; i < 3; ++i) {
    const port = await freePort();
    const file = path.join(dir, `sentinel-${i}.conf`);
    fs.writeFileSync(file, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${name} 1`, ''
    ].join('\n'));
    const proc = spawnChild('redis-server', [file, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', (c) => { if (verbose) process.stderr.write(`[sentinel ${i}] ${c}`); });
    sentinels.push({ port, proc, stop: async () => { proc.kill('SIGKILL'); await within(5000, proc.exited, 'sentinel exit'); } });
  }
  const clients = sentinels.map((s) => {
    const c = new Redis({ host: '127.0.0.1', port: s.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    c.on('error', () => {});
    onCleanup(() => c.disconnect());
    return c;
  });
  const command = (i, ...args) => clients[i].call(...args);
  await eventually('three sentinels know the master, the replica and each other', async () => {
    for (let i = 0; i < 3; ++i) {
      const flat = (entry) => { const o = {}; for (let k = 0; k < entry.length; k += 2) o[entry[k]] = entry[k + 1]; return o; };
      const known = (await command(i, 'SENTINEL', 'REPLICAS', name)).map(flat).filter((r) => !r.flags.includes('down'));
      assert.strictEqual(known.length, replicaCount, `sentinel ${i} knows ${known.length} of ${replicaCount} replicas`);
      assert.strictEqual((await command(i, 'SENTINEL', 'SENTINELS', name)).length, 2, `sentinel ${i} knows the others`);
    }
  }, 30000);
  return {
    master,
    replica: replicas[0],
    replicas,
    /// The data nodes: the master first started, then the replicas.
    nodes: [master, ...replicas],
    sentinels,
    name,
    list: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    ioredis: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
    command,
    /// The master's port as the first sentinel that answers names it.
    masterPort: async () => {
      for (let i = 0; i < 3; ++i) {
        try { return Number((await command(i, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name))[1]); } catch (e) {}
      }
      throw new Error('no sentinel answers');
    }
  };
}

/// Starts mesa-gateway (`binary`) with `env` added to a minimal environment and
/// waits for its start-up line. -> {name, proc, port, url, log (stdout and
/// stderr so far), exited, alive, stop(signal)}
async function startGateway (binary, env, name = 'gateway') {
  const proc = spawnChild(binary, [], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const g = { name, proc, log: '', exited: proc.exited, alive: true };
  proc.on('exit', () => { g.alive = false; });
  proc.stdout.on('data', (c) => { g.log += c; });
  g.port = await within(10000, new Promise((resolve, reject) => {
    proc.stderr.on('data', (chunk) => {
      g.log += chunk;
      if (verbose) process.stderr.write(`[${name}] ${chunk}`);
      const m = g.log.match(/listening on port (\d+)/);
      if (m) resolve(Number(m[1]));
    });
    g.exited.then(({ code }) => reject(new Error(`${name} exited early (code ${code}): ${g.log}`)));
  }), `${name} start-up line`);
  g.url = `ws://127.0.0.1:${g.port}`;
  /// Sends `signal`; resolves with the exit status.
  g.stop = (signal = 'SIGTERM') => {
    proc.kill(signal);
    return within(5000, g.exited, `${name} exit after ${signal}`);
  };
  return g;
}

// ---- npm @cryb/mesa Clients ------------------------------------------------------------------
/// A connected npm Client with its hello (op 10) received. It records every
/// raw frame (`frames`) and every message event (`got`); `closed` resolves
/// with {code, reason} on the first disconnection; `hello` is the hello frame.
async function openClient (url, label = url) {
  const { Client } = load('@cryb/mesa');
  const client = new Client(url, { autoConnect: false });
  const forget = onCleanup(() => client.disconnect(1000));
  client.label = label;
  client.frames = [];
  client.got = [];
  client.on('error', () => {});
  client.on('message', (m) => client.got.push(m));
  client.closed = new Promise((resolve) => client.on('disconnected', (code, reason) => { forget(); resolve({ code, reason: String(reason) }); }));
  // The Client handles op 10 (and heartbeats) without an event: see them in its frame handler.
  let helloSeen;
  const hello = new Promise((resolve) => { helloSeen = resolve; });
  const original = client.registerMessage;
  client.registerMessage = function (data) {
    const json = JSON.parse(data.toString());
    client.frames.push(json);
    const result = original.call(this, data);
    if (json.op === 10) helloSeen(json);
    return result;
  };
  await within(5000, client.connect(), `connect ${label} to ${url}`);
  client.hello = await within(5000, hello, `hello (op 10) to ${label}`);
  return client;
}

/// The next message event of `client` of type `type` (a string) or for which `type` (a function) is true.
function nextMessage (client, type, what = `message ${type}`) {
  const matches = typeof type === 'function' ? type : (m) => m.type === type;
  return within(5000, new Promise((resolve) => {
    const on = (m) => { if (matches(m)) { client.removeListener('message', on); resolve(m); } };
    client.on('message', on);
  }), what);
}

module.exports = {
  verbose,
  load,
  onCleanup,
  cleanup,
  abort,
  deadline,
  spawnChild,
  sleep,
  within,
  eventually,
  until,
  test,
  runTests,
  freePort,
  b64url,
  jwt,
  httpRequest,
  selfSignedCert,
  rssOf,
  startRedis,
  startRedisWith,
  startSentinels,
  startGateway,
  openClient,
  nextMessage
};
