// The built mesa-gateway as a process serving wss:// (TLS_CERT/TLS_KEY),
// driven by the npm `ws` package (test/interop/node_modules) verifying the
// server against a throwaway self-signed certificate generated here with the
// `openssl` command ($OPENSSL, else from PATH) in a temporary directory.
// Usage: node gateway_tls_test.js path/to/mesa-gateway
'use strict';
const { spawnSync } = require('child_process');
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const h = require('../support/harness');
const { within, test } = h;

const WebSocket = h.load('ws');

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node gateway_tls_test.js path/to/mesa-gateway');
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-gateway-tls-'));
h.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
h.deadline(100000, 'gateway tls test: overall timeout (100 s)');

// ---- helpers ---------------------------------------------------------------
/// A `ws` WebSocket to `url`; resolves with it and its first frame (the hello), or rejects on error/close.
function connect (url, options) {
  return within(5000, new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const forget = h.onCleanup(() => ws.terminate());
    ws.frames = [];
    ws.waiters = [];
    ws.on('message', (data) => {
      ws.frames.push(JSON.parse(data.toString()));
      for (const w of ws.waiters.splice(0)) w();
      if (ws.frames.length === 1) resolve(ws);
    });
    ws.on('error', (e) => reject(e));
    ws.on('close', (code) => { forget(); reject(new Error(`closed ${code} before the hello`)); });
  }), `connect to ${url}`);
}

function nextFrame (ws, predicate, what) {
  return within(5000, new Promise((resolve) => {
    const check = () => {
      const f = ws.frames.find(predicate);
      if (f) resolve(f); else ws.waiters.push(check);
    };
    check();
  }), what);
}

// ---- the tests ---------------------------------------------------------------
let server; // { cert, key } of the gateway
let other; // an unrelated certificate
let gw = null;

test('certificates are generated with openssl', async () => {
  server = h.selfSignedCert(dir, 'server');
  other = h.selfSignedCert(dir, 'other');
});

test('--help documents TLS_CERT, TLS_KEY and TLS_CA', async () => {
  const r = spawnSync(binary, ['--help'], { encoding: 'utf8', timeout: 10000 });
  assert.strictEqual(r.status, 0, r.stderr);
  for (const name of ['TLS_CERT', 'TLS_KEY', 'TLS_CA']) assert.ok(r.stdout.includes(name), `--help does not mention ${name}`);
});

test('bad TLS variables stop start-up, naming the variable', async () => {
  const missing = path.join(dir, 'missing.pem');
  for (const [env, name] of [
    [{ TLS_CERT: missing, TLS_KEY: server.key }, 'TLS_CERT'],
    [{ TLS_CERT: server.cert, TLS_KEY: missing }, 'TLS_KEY'],
    [{ TLS_CERT: server.cert }, 'TLS_KEY'],
    [{ TLS_KEY: server.key }, 'TLS_CERT'],
    [{ TLS_CERT: server.cert, TLS_KEY: server.key, TLS_CA: missing }, 'TLS_CA']]) {
    const r = spawnSync(binary, [], { env: { PATH: process.env.PATH, MESA_PORT: '0', ...env }, encoding: 'utf8', timeout: 10000 });
    const what = JSON.stringify(env);
    assert.ok(r.status !== null, `${what}: killed by a signal`);
    assert.notStrictEqual(r.status, 0, `${what} was accepted`);
    assert.ok(r.stderr.includes(name), `${what}: message does not name ${name}: ${r.stderr}`);
    assert.ok(!/listening on port/.test(r.stderr), `${what}: it started anyway`);
  }
  // Readable but not a certificate: refused at start-up, naming the file.
  const r = spawnSync(binary, [], {
    env: { PATH: process.env.PATH, MESA_PORT: '0', TLS_CERT: server.key, TLS_KEY: server.key }, encoding: 'utf8', timeout: 10000
  });
  assert.notStrictEqual(r.status, 0, 'a key given as TLS_CERT was accepted');
  assert.ok(r.stderr.includes(server.key), `the message does not name the file: ${r.stderr}`);
  assert.ok(r.stderr.includes('TLS_CERT'), `the message does not name TLS_CERT: ${r.stderr}`);
});

test('TLS_CERT and TLS_KEY: start-up line says wss', async () => {
  const port = await h.freePort();
  gw = await h.startGateway(binary, { MESA_PORT: String(port), TLS_CERT: server.cert, TLS_KEY: server.key });
  assert.strictEqual(gw.port, port);
  assert.match(gw.log, /listening on port \d+, path .*, scheme wss/);
});

test('a wss:// client verifying the certificate gets the hello and PING/PONG', async () => {
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { ca: fs.readFileSync(server.cert) });
  assert.strictEqual(ws.frames[0].op, 10);
  ws.send(JSON.stringify({ op: 0, t: 'PING', d: { n: 42 } }));
  const pong = await nextFrame(ws, (f) => f.t === 'PONG', 'PONG');
  assert.deepStrictEqual(pong.d, { n: 42 });
  assert.strictEqual(ws._socket.getProtocol && /^TLSv1\.[23]$/.test(ws._socket.getProtocol()), true,
    `negotiated ${ws._socket.getProtocol && ws._socket.getProtocol()}`);
  ws.close(1000);
});

test('the HTTP API is served over https:// on the same port', async () => {
  const r = await h.httpRequest(gw.port, 'GET', '/health', { ca: fs.readFileSync(server.cert) });
  assert.strictEqual(r.status, 200, r.body);
  assert.strictEqual(JSON.parse(r.body).status, 'ok');
});

test('refused: a client trusting another certificate, a plain ws:// client, TLS 1.1', async () => {
  await assert.rejects(connect(`wss://127.0.0.1:${gw.port}/`, { ca: fs.readFileSync(other.cert) }), /certificate|self.signed/i);
  // Plain HTTP on the wss:// port: 400 in clear at once (not at the
  // handshake timeout), logged with the reason and counted.
  await within(3000, assert.rejects(connect(`ws://127.0.0.1:${gw.port}/`), /Unexpected server response: 400/));
  const plain = await h.httpRequest(gw.port, 'GET', '/health');
  assert.strictEqual(plain.status, 400, plain.body);
  assert.match(plain.body, /use https:\/\/ or wss:\/\//);
  await within(3000, (async () => {
    while ((gw.log.match(/refused with 400: plain HTTP sent to the TLS port/g) || []).length < 2) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })(), 'the log lines for a plain ws:// and http:// client');
  const metrics = await h.httpRequest(gw.port, 'GET', '/metrics', { ca: fs.readFileSync(server.cert) });
  assert.match(metrics.body, /^mesa_refused_http_requests_total\{status="400"\} 2$/m);
  await assert.rejects(connect(`wss://127.0.0.1:${gw.port}/`, {
    ca: fs.readFileSync(server.cert), minVersion: 'TLSv1', maxVersion: 'TLSv1.1'
  }), /alert protocol version/); // refused by the server, not by the client
  // Still serving.
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { ca: fs.readFileSync(server.cert) });
  assert.strictEqual(ws.frames[0].op, 10);
  ws.close(1000);
});

test('SIGTERM: the TLS gateway exits 0', async () => {
  const { code } = await gw.stop();
  assert.strictEqual(code, 0, gw.log);
  gw = null;
});

test('TLS_CA: only clients presenting a certificate it signed connect', async () => {
  const port = await h.freePort();
  gw = await h.startGateway(binary, { MESA_PORT: String(port), TLS_CERT: server.cert, TLS_KEY: server.key, TLS_CA: server.cert });
  assert.match(gw.log, /scheme wss \(client certificates required\)/);
  const ca = fs.readFileSync(server.cert);
  await assert.rejects(connect(`wss://127.0.0.1:${port}/`, { ca }), /./);
  await assert.rejects(connect(`wss://127.0.0.1:${port}/`, { ca, cert: fs.readFileSync(other.cert), key: fs.readFileSync(other.key) }), /./);
  // The self-signed server certificate is its own CA: as a client certificate it is accepted.
  const ws = await connect(`wss://127.0.0.1:${port}/`, { ca, cert: fs.readFileSync(server.cert), key: fs.readFileSync(server.key) });
  assert.strictEqual(ws.frames[0].op, 10);
  ws.close(1000);
});

test('without TLS_* the gateway serves plain ws:// and says so', async () => {
  const port = await h.freePort();
  const g = await h.startGateway(binary, { MESA_PORT: String(port) });
  assert.match(g.log, /scheme ws(?!s)/);
  const ws = await connect(`ws://127.0.0.1:${port}/`);
  assert.strictEqual(ws.frames[0].op, 10);
  ws.close(1000);
  await g.stop();
});

h.runTests(() => { if (gw) console.log(gw.log); });
