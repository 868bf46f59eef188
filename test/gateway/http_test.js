// The HTTP API on the WebSocket port of the built mesa-gateway, over real
// sockets: persistent connections with Node's fetch (undici keeps them
// alive), refusals right after the header section (401 without reading a
// 30 MB body, the gateway's memory unchanged), HEAD, 501 for an unknown
// transfer coding, 408 for a request that never ends, and those refusals
// counted apart from refused upgrades.
//
// Usage: node http_test.js path/to/mesa-gateway
'use strict';
const assert = require('assert');
const net = require('net');
const h = require('../support/harness');
const { within, test } = h;

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node http_test.js path/to/mesa-gateway');
  process.exit(2);
}

process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
h.deadline(100000, 'http test: overall timeout (100 s)');

const API_KEY = 'http-test-api-key';
const auth = { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' };
const dispatchBody = (n) => JSON.stringify({ message: { t: 'N', d: { n } }, recipients: ['nobody'] });

let gw;
async function gateway () {
  if (!gw) gw = await h.startGateway(binary, { MESA_PORT: '0', MESA_THREADS: '1', MESA_API_KEY: API_KEY, ENABLE_LOGGING: 'true' });
  return gw;
}

/// A TCP proxy to `port` that counts the connections it accepts.
function countingProxy (port) {
  return new Promise((resolve) => {
    const proxy = { accepted: 0 };
    const server = net.createServer((client) => {
      proxy.accepted++;
      const upstream = net.connect(port, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      const end = () => { client.destroy(); upstream.destroy(); };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    });
    h.onCleanup(() => server.close());
    server.listen(0, '127.0.0.1', () => { proxy.port = server.address().port; resolve(proxy); });
  });
}

/// Writes `request` on a fresh socket and resolves with what came back once
/// `done(received)` holds or the server closed: {text, closed, socket}.
function exchange (port, request, { done = () => false, ms = 10000 } = {}) {
  return within(ms, new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    h.onCleanup(() => socket.destroy());
    // Made now: the socket may be closed before the caller looks at it.
    const whenClosed = new Promise((resolve) => socket.once('close', resolve));
    let text = '';
    let settled = false;
    const settle = (closed) => { if (!settled) { settled = true; resolve({ text, closed, socket, whenClosed }); } };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (c) => { text += c.toString('latin1'); if (done(text)) settle(false); });
    socket.on('end', () => settle(true));
    socket.on('close', () => settle(true));
    socket.on('error', (e) => { if (!text) reject(e); else settle(true); });
  }), `exchange on port ${port}`);
}

const statusOf = (text) => Number((text.match(/^HTTP\/1\.1 (\d{3}) /) || [])[1]);

async function metricValues (port) {
  const r = await h.httpRequest(port, 'GET', '/metrics');
  assert.strictEqual(r.status, 200);
  const values = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, value] = line.split(' ');
    values[name] = Number(value);
  }
  return values;
}

// ---- the tests ---------------------------------------------------------------
test('1 000 sequential POST /dispatch with fetch all succeed, on kept-alive connections', async () => {
  const g = await gateway();
  const failures = [];
  for (let i = 0; i < 1000; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${g.port}/dispatch`, { method: 'POST', headers: auth, body: dispatchBody(i) });
      await r.text();
      if (r.status !== 202) failures.push(`#${i}: ${r.status}`);
    } catch (e) {
      failures.push(`#${i}: ${e.cause ? e.cause.code || e.cause.message : e.message}`);
    }
  }
  assert.deepStrictEqual(failures, [], `${failures.length} of 1000 failed`);
  // The same through a proxy counting connections: fetch reused its socket.
  const proxy = await countingProxy(g.port);
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`http://127.0.0.1:${proxy.port}/dispatch`, { method: 'POST', headers: auth, body: dispatchBody(i) });
    assert.strictEqual(r.status, 202);
    assert.strictEqual(r.headers.get('connection'), null);
    assert.match(r.headers.get('keep-alive') || '', /^timeout=\d+$/);
    await r.text();
  }
  // undici opens a second connection for the second request (it does so
  // against Node's own http server too), then reuses them: 200 without
  // persistent connections.
  console.log(`200 sequential fetches used ${proxy.accepted} connection(s)`);
  assert(proxy.accepted <= 2, `200 sequential fetches opened ${proxy.accepted} connections`);
});

test('401 right after the header section: 10 requests announcing 30 MB each, bodies never read', async () => {
  const g = await gateway();
  const baseline = h.rssOf(g.proc.pid);
  let maxRss = baseline;
  const sampler = setInterval(() => { if (g.alive) maxRss = Math.max(maxRss, h.rssOf(g.proc.pid)); }, 20);
  const size = 30 * 1024 * 1024;
  const header = `POST /dispatch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`;
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 10 }, () =>
    exchange(g.port, header, { done: (t) => t.includes('\r\n\r\n') && t.includes('}') })));
  const elapsed = Date.now() - started;
  for (const a of answers) {
    assert.strictEqual(statusOf(a.text), 401, a.text);
    assert.match(a.text, /\r\nWWW-Authenticate: Bearer\r\n/);
    assert.match(a.text, /\r\nConnection: close\r\n/);
  }
  assert(elapsed < 3000, `the 401s took ${elapsed} ms`);
  // The clients send their bodies anyway: the gateway drops them unread.
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  await Promise.all(answers.map(({ socket, whenClosed }) => new Promise((resolve) => {
    let sent = 0;
    whenClosed.then(resolve);
    const more = () => {
      while (sent < size && !socket.destroyed) {
        sent += chunk.length;
        if (!socket.write(chunk)) return socket.once('drain', more);
      }
      socket.end();
    };
    more();
  })));
  clearInterval(sampler);
  maxRss = Math.max(maxRss, h.rssOf(g.proc.pid));
  const growth = maxRss - baseline;
  console.log(`gateway VmRSS grew by ${(growth / 1048576).toFixed(1)} MiB while 10 x 30 MB were refused`);
  assert(growth < 16 * 1024 * 1024, `VmRSS grew by ${growth} bytes`);
  // Authenticated but over the API's limit: 413, also before the body.
  const big = await exchange(g.port, `POST /dispatch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`,
    { done: (t) => t.includes('}') });
  assert.strictEqual(statusOf(big.text), 413, big.text);
  assert.match(g.log, /http POST \/dispatch -> 401 \(body not read\)/);
});

test('HEAD gets what GET gets, without a body', async () => {
  const g = await gateway();
  for (const target of ['/health', '/ready', '/metrics']) {
    const get = await h.httpRequest(g.port, 'GET', target);
    const head = await h.httpRequest(g.port, 'HEAD', target);
    assert.strictEqual(head.status, get.status, target);
    assert.strictEqual(head.body, '', target);
    assert.strictEqual(head.headers['content-type'], get.headers['content-type'], target);
    assert(Number(head.headers['content-length']) > 0, target);
    if (target !== '/metrics') assert.strictEqual(head.headers['content-length'], get.headers['content-length'], target);
  }
  const presence = await h.httpRequest(g.port, 'HEAD', '/presence?id=a', { headers: auth });
  assert.strictEqual(presence.status, 200);
  assert.strictEqual((await h.httpRequest(g.port, 'HEAD', '/presence?id=a')).status, 401);
  const wrong = await h.httpRequest(g.port, 'HEAD', '/dispatch');
  assert.strictEqual(wrong.status, 405);
  // On the raw socket: the header block, and nothing after it.
  const raw = await exchange(g.port, 'HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  assert(raw.closed);
  assert.strictEqual(statusOf(raw.text), 200);
  assert(raw.text.endsWith('\r\n\r\n'), raw.text);
});

test('501 for an unknown transfer coding, 400 for a TLS ClientHello, 408 for a request that never ends: counted apart from upgrades', async () => {
  const g = await gateway();
  const from = g.log.length;
  const gzip = await exchange(g.port, `POST /dispatch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\n` +
    'Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
  assert.strictEqual(statusOf(gzip.text), 501, gzip.text);
  const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), Buffer.alloc(64, 7)]);
  const tls = await exchange(g.port, hello);
  assert.strictEqual(statusOf(tls.text), 400, tls.text);
  const slow = await exchange(g.port, 'GET /health HTTP/1.1\r\nHost: 127.0', { ms: 15000 });
  assert.strictEqual(statusOf(slow.text), 408, slow.text);
  assert(slow.closed);
  const values = await metricValues(g.port);
  assert.strictEqual(values['mesa_refused_http_requests_total{status="501"}'], 1);
  assert.strictEqual(values['mesa_refused_http_requests_total{status="400"}'], 1);
  assert.strictEqual(values['mesa_refused_http_requests_total{status="408"}'], 1);
  assert.deepStrictEqual(Object.keys(values).filter((k) => k.startsWith('mesa_refused_upgrades_total')), []);
  const log = g.log.slice(from);
  assert.match(log, /HTTP request \/dispatch refused with 501/);
  assert.match(log, /HTTP request refused with 400: malformed HTTP request/);
  assert.match(log, /HTTP request refused with 408: the request did not arrive whole in time/);
  assert.doesNotMatch(log, /upgrade of/);
});

h.runTests(() => { if (gw) console.log(gw.log.split('\n').slice(-30).join('\n')); });
