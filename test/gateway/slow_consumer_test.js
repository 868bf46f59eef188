// A client that stops reading, over real sockets, against the built
// mesa-gateway process (in-memory broker, MESA_MAX_BACKLOG = 256 KiB):
//
//  - one "slow" client completes the WebSocket upgrade, reads its hello and
//    then stops reading (socket.pause(): what the server sends piles up in the
//    kernel buffers, then in the server's own send queue);
//  - three normal clients (npm `ws`) read everything;
//  - about 52 MB of messages (1 600 x 32 KiB) go to everyone via POST /dispatch.
//
// Asserts that the gateway's VmRSS stays far below what queueing everything
// for the slow client would take (about 40 MB more: the bound below is 12 MiB
// over the baseline), that the server decides by itself to close the slow
// client (its error event, logged, comes while the client is paused), that
// the client, reading again at once, finds what was queued before and then a
// 4002 close frame (never the whole series), and that each normal client got
// every message, in order, and stayed open. Without the bound
// (MESA_MAX_BACKLOG=0) the RSS assertion fails.
//
// Usage: node slow_consumer_test.js path/to/mesa-gateway
'use strict';
const net = require('net');
const assert = require('assert');
const h = require('../support/harness');
const { within, until } = h;

const WebSocket = h.load('ws');

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node slow_consumer_test.js path/to/mesa-gateway');
  process.exit(2);
}

const MAX_BACKLOG = 256 * 1024;
const MESSAGES = 1600;
const PAD_BYTES = 32 * 1024;
const NORMAL_CLIENTS = 3;
const WINDOW = 4;                        // messages a normal client may be behind before the next POST
const RSS_SLACK = 12 * 1024 * 1024;      // allowed VmRSS growth over the baseline
const API_KEY = 'slow-consumer-test-key';

process.on('unhandledRejection', (e) => h.abort('unhandled rejection:', e));
const overall = h.deadline(100000, 'slow consumer test: overall timeout (100 s)');

// ---- helpers ---------------------------------------------------------------
const auth = { Authorization: `Bearer ${API_KEY}` };
const request = (port, method, target, body) =>
  h.httpRequest(port, method, target, { body, headers: body === undefined ? auth : { ...auth, 'Content-Type': 'application/json' }, ms: 10000 });

/// A normal client: records the seq of every message, in arrival order.
function normalClient (port, index) {
  return within(10000, new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const c = { ws, index, hello: false, seqs: [], bad: [], closed: null };
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (!c.hello) {
        if (m.op !== 10) c.bad.push(`first frame op ${m.op}`);
        c.hello = true;
        resolve(c);
        return;
      }
      if (m.op !== 0 || m.t !== 'SLOW' || typeof m.d.seq !== 'number' || m.d.pad.length !== PAD_BYTES) {
        c.bad.push(JSON.stringify(m).slice(0, 100));
        return;
      }
      c.seqs.push(m.d.seq);
    });
    ws.on('close', (code, reason) => { c.closed = { code, reason: String(reason) }; });
    ws.on('error', reject);
  }), `normal client ${index}`);
}

/// The slow client: a raw socket that upgrades, reads the hello, then pauses.
/// Once resumed it parses the server frames it finds (unmasked, 7/16/64-bit lengths).
function slowClient (port) {
  return within(10000, new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    h.onCleanup(() => s.destroy());
    const c = { socket: s, buffer: Buffer.alloc(0), upgraded: false, frames: [], closeCode: null, ended: false, bytes: 0 };
    c.done = new Promise((done) => { c.finish = done; });
    s.on('connect', () => {
      s.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    s.on('data', (chunk) => {
      c.bytes += chunk.length;
      c.buffer = Buffer.concat([c.buffer, chunk]);
      if (!c.upgraded) {
        const end = c.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!c.buffer.slice(0, 12).toString().startsWith('HTTP/1.1 101')) return reject(new Error(`upgrade refused: ${c.buffer.slice(0, end)}`));
        c.upgraded = true;
        c.buffer = c.buffer.slice(end + 4);
      }
      for (;;) {
        if (c.buffer.length < 2) break;
        const opcode = c.buffer[0] & 0x0f;
        let len = c.buffer[1] & 0x7f;
        let header = 2;
        if (len === 126) { if (c.buffer.length < 4) break; len = c.buffer.readUInt16BE(2); header = 4; } else if (len === 127) { if (c.buffer.length < 10) break; len = Number(c.buffer.readBigUInt64BE(2)); header = 10; }
        if (c.buffer.length < header + len) break;
        const payload = c.buffer.slice(header, header + len);
        c.buffer = c.buffer.slice(header + len);
        if (opcode === 0x8) {
          c.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
          c.finish('close frame');
          continue;
        }
        if (opcode !== 0x1) continue;
        const m = JSON.parse(payload.toString());
        c.frames.push(m.op === 0 ? m.d.seq : -m.op);
        if (m.op === 10 && c.frames.length === 1) {
          // Stop reading: from here on the server's frames pile up.
          s.pause();
          resolve(c);
        }
      }
    });
    s.on('end', () => { c.ended = true; c.finish('end'); });
    s.on('close', () => { c.ended = true; c.finish('close'); });
    s.on('error', (e) => { c.error = e.message; c.ended = true; c.finish('error'); });
  }), 'slow client hello');
}

// ---- the test ----------------------------------------------------------------
(async () => {
  const g = await h.startGateway(binary, {
    MESA_PORT: '0', MESA_MAX_BACKLOG: String(MAX_BACKLOG), MESA_API_KEY: API_KEY, AUTH_TIMEOUT: '0', MESA_THREADS: '1'
  });
  const pid = g.proc.pid;
  const health = async () => JSON.parse((await request(g.port, 'GET', '/health')).body);

  const normal = [];
  for (let i = 0; i < NORMAL_CLIENTS; ++i) normal.push(await normalClient(g.port, i));
  const slow = await slowClient(g.port);
  await until(5000, async () => (await health()).connections === NORMAL_CLIENTS + 1, 'every client counted');
  const baseline = h.rssOf(pid);

  let maxRss = baseline;
  const sampler = setInterval(() => { if (g.alive) maxRss = Math.max(maxRss, h.rssOf(pid)); }, 20);

  // The slow client reads again as soon as the gateway reports it: the 4002
  // close frame waits behind its backlog, and websocketpp drops the
  // connection if the close handshake does not finish within 5 s.
  const cutOff = /client #\d+: client stopped reading/;
  let reportedAtSeq = null;
  const reported = until(90000, () => cutOff.test(g.log), 'the gateway reports the slow client')
    .then(() => slow.socket.resume());

  const pad = 'x'.repeat(PAD_BYTES);
  const started = Date.now();
  for (let seq = 0; seq < MESSAGES; ++seq) {
    // At most WINDOW messages outstanding for the normal clients, so that
    // only the slow one can exceed the bound.
    if (normal.some((c) => c.seqs.length < seq - WINDOW)) {
      await until(10000, () => normal.every((c) => c.seqs.length >= seq - WINDOW), `normal clients reach ${seq - WINDOW}`);
    }
    const body = JSON.stringify({ message: { op: 0, d: { seq, pad }, t: 'SLOW' }, recipients: ['*'] });
    const r = await request(g.port, 'POST', '/dispatch', body);
    assert.strictEqual(r.status, 202, `POST /dispatch #${seq}: ${r.status} ${r.body}`);
    if (reportedAtSeq === null && cutOff.test(g.log)) reportedAtSeq = seq;
  }
  await until(15000, () => normal.every((c) => c.seqs.length >= MESSAGES), 'normal clients receive every message');
  const dispatchedIn = (Date.now() - started) / 1000;
  const mib = (n) => (n / 1048576).toFixed(1);
  const total = MESSAGES * (PAD_BYTES + 40);
  console.log(`dispatched ${MESSAGES} x ${PAD_BYTES} B (${mib(total)} MiB) to ${NORMAL_CLIENTS + 1} clients in ${dispatchedIn.toFixed(1)} s; ` +
              `MESA_MAX_BACKLOG ${mib(MAX_BACKLOG)} MiB`);
  const rssGrowth = () => `gateway VmRSS: baseline ${mib(baseline)} MiB, max ${mib(maxRss)} MiB (+${mib(maxRss - baseline)}); bound +${mib(RSS_SLACK)} MiB`;
  console.log(rssGrowth());

  // Memory: far below queueing everything for the slow client.
  maxRss = Math.max(maxRss, h.rssOf(pid));
  assert(maxRss - baseline < RSS_SLACK, `${rssGrowth()}: the slow client's backlog is not bounded`);

  // The server reported the slow client while it was paused; reading again,
  // it finds the end of its connection.
  await within(20000, reported, 'the gateway reports the slow client');
  const how = await within(20000, slow.done, 'the slow client sees its connection closed');
  await until(20000, async () => (await health()).connections === NORMAL_CLIENTS, 'the server drops the slow client');
  clearInterval(sampler);
  maxRss = Math.max(maxRss, h.rssOf(pid));
  assert(maxRss - baseline < RSS_SLACK, `${rssGrowth()} (after the slow client was dropped)`);
  const seqs = slow.frames.filter((x) => x >= 0);

  console.log(`slow client: ${seqs.length} messages read after resuming (${mib(slow.bytes)} MiB), last seq ${seqs.length ? seqs[seqs.length - 1] : '-'}, ` +
              `then ${how}${slow.closeCode !== null ? ` (code ${slow.closeCode})` : ''}; ` +
              (reportedAtSeq === null ? 'the gateway reported it after the last dispatch'
                : `the gateway had reported it by message ${reportedAtSeq + 1}`) +
              `; gateway VmRSS max +${mib(maxRss - baseline)} MiB`);
  const report = g.log.split('\n').find((l) => /stopped reading/.test(l));
  if (report) console.log(`gateway: ${report.trim()}`);

  // The slow client was closed with 4002, and never got the whole series.
  assert.strictEqual(slow.closeCode, 4002, `slow client: expected a 4002 close frame, got ${how} code ${slow.closeCode}`);
  assert(seqs.length < MESSAGES, 'the slow client received every message: it was never cut off');
  seqs.forEach((s, i) => assert.strictEqual(s, i, `slow client: message ${i} has seq ${s}`));
  // The others: everything, in order, still open.
  for (const c of normal) {
    assert.deepStrictEqual(c.bad, [], `normal client ${c.index}: unexpected frames`);
    assert.strictEqual(c.closed, null, `normal client ${c.index} was closed: ${JSON.stringify(c.closed)}`);
    assert.strictEqual(c.seqs.length, MESSAGES, `normal client ${c.index}: ${c.seqs.length} of ${MESSAGES} messages`);
    c.seqs.forEach((s, i) => { if (s !== i) assert.fail(`normal client ${c.index}: message ${i} has seq ${s}`); });
  }
  assert(g.alive, 'the gateway exited');
  const last = await health();
  assert.strictEqual(last.status, 'ok');
  assert.strictEqual(last.connections, NORMAL_CLIENTS);

  for (const c of normal) c.ws.close(1000);
  g.proc.kill('SIGTERM');
  await within(10000, g.exited, 'gateway exit');
  clearTimeout(overall);
  console.log('slow consumer test: ok');
})().catch((e) => {
  console.error('slow consumer test FAILED:', e && e.stack ? e.stack : e);
  h.cleanup();
  process.exit(1);
});
