// Chaos test of exact presence and lossless sync (issue #12): three
// mesa-gateways (SYNC_ENABLED, two instances each) on one redis-server with
// appendfsync always; a few hundred users whose npm @cryb/mesa Clients (1-3
// sockets each, every op 1 answered with op 11) connect, authenticate, close
// and move between gateways at random; one gateway killed with SIGKILL and
// started again, Redis killed and started again on the same port and data
// directory; messages dispatched all along with POST /dispatch through every
// gateway, each to one user and numbered per sender (d: {sender, n}), a sender
// sending its next message only after a 202 and retrying on 503 (or a broken
// connection) until it gets one. At the end every socket is closed, the
// presence of the cluster drains (dead instances reaped, outboxes put back),
// every user connects once more and receives what is left.
//
// Reported: messages sent (answered 202), received (distinct, per user), lost
// (sent, never received), duplicated (received more than once by the user:
// every open tab gets its copy, and delivery is at least once; of those,
// redelivered_again: redeliveries of a message the user had already, and
// same_socket_again: a socket that got a message twice), out of order (a message's first receipt came after the first
// receipt of a later message of the same sender to the same user), retries.
// Exit status 1 when anything was lost, received out of order or received
// without having been sent, when fewer than CHAOS_MIN_SENT messages were sent,
// when a gateway died that was not killed on purpose, or a dispatch got an
// answer other than 202 or 503.
//
// Failover mode (CHAOS_SENTINELS=1): instead of one redis-server, a master,
// CHAOS_REPLICAS replicas (all with appendfsync always) and three sentinels (test/support/
// harness.js startSentinels); the gateways find the master with
// REDIS_SENTINELS and REDIS_SENTINEL_MASTER; instead of the Redis restarts, a
// forced failover (SENTINEL FAILOVER) and a SIGKILL of the current master
// (the sentinels promote the replica; the killed server is started again on
// its port and data directory and becomes a replica); the final checks read
// the master the sentinels name at the end.
//
// Also reported, in both modes: delayed, the messages whose first receipt
// came more than CHAOS_DELAY_MS after their 202 although their user had a
// socket open at the 202 that stayed open CHAOS_DELAY_MS longer (so a message
// waiting in a backlog for its user to come back is not counted), with the
// maximum delay, and per fault the same for the messages answered 202 from the
// fault's start to CHAOS_WINDOW_MS after its end.
//
// Usage: node bench/chaos.js path/to/mesa-gateway   (bench/chaos builds and runs it)
// NODE_PATH must reach test/interop/node_modules (npm ci there), or the script
// finds it relative to itself.
//
// Environment (defaults):
//   CHAOS_DURATION_S       seconds of churn and dispatching (180)
//   CHAOS_USERS            users (200)
//   CHAOS_GATEWAYS         gateways (3), each with MESA_THREADS=CHAOS_THREADS (2)
//   CHAOS_PRESENCE_TTL     the gateways' MESA_PRESENCE_TTL in ms (2000)
//   CHAOS_SENDERS          senders dispatching concurrently, each in sequence (8)
//   CHAOS_SEND_PAUSE_MS    pause of a sender between two messages (10)
//   CHAOS_CHURN_MS         one socket opened, closed or moved every this many ms (20)
//   CHAOS_GATEWAY_KILLS    gateways killed with SIGKILL (and started again) (1)
//   CHAOS_REDIS_RESTARTS   Redis restarts (1)
//   CHAOS_REDIS_SIGNAL     signal stopping Redis (SIGKILL)
//   CHAOS_REDIS_DOWN_MS    time Redis stays down (1500)
//   CHAOS_RETRY_MS         a sender's pause after a 503 or a failed request (100)
//   CHAOS_SENTINELS        1: the failover mode above (0)
//   CHAOS_FAILOVERS        failover mode: forced failovers, SENTINEL FAILOVER (1)
//   CHAOS_MASTER_KILLS     failover mode: SIGKILLs of the current master (1)
//   CHAOS_REPLICAS         failover mode: replicas of the master (1)
//   CHAOS_DELAY_MS         a receipt later than this after its 202 is delayed (2000)
//   CHAOS_WINDOW_MS        delays are also counted per fault, until this long after it (10000)
//   CHAOS_QUIET_MS         the end waits until nothing more arrived for this long (5000)
//   CHAOS_MIN_SENT         fewer messages sent than this fails (20 per second of duration)
//   CHAOS_SEED             seed of the random choices (random; printed)
//   CHAOS_OUT              directory for Redis data and gateway logs (a temp dir, removed on success)
//   CHAOS_BREAK            breaks the test on purpose, to see it fail: `no-retry` (a 503 or a
//                          failed request counts as sent), `drop-backlog` (undelivered_messages
//                          deleted mid-run), `swap` (a sender sends some pairs in the wrong order)
'use strict';
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const h = require(path.join(__dirname, '..', 'test', 'support', 'harness'));

const Redis = h.load('ioredis');
const { Client } = h.load('@cryb/mesa');

const gatewayBin = process.argv[2];
if (!gatewayBin) {
  console.error('usage: node bench/chaos.js path/to/mesa-gateway');
  process.exit(2);
}

const num = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) { console.error(`${name}: not a number >= 0: ${v}`); process.exit(2); }
  return n;
};
const cfg = {
  duration: num('CHAOS_DURATION_S', 180) * 1000,
  users: num('CHAOS_USERS', 200),
  gateways: num('CHAOS_GATEWAYS', 3),
  threads: num('CHAOS_THREADS', 2),
  ttl: num('CHAOS_PRESENCE_TTL', 2000),
  senders: num('CHAOS_SENDERS', 8),
  pause: num('CHAOS_SEND_PAUSE_MS', 10),
  churn: num('CHAOS_CHURN_MS', 20),
  gatewayKills: num('CHAOS_GATEWAY_KILLS', 1),
  redisRestarts: num('CHAOS_REDIS_RESTARTS', 1),
  redisSignal: process.env.CHAOS_REDIS_SIGNAL || 'SIGKILL',
  redisDown: num('CHAOS_REDIS_DOWN_MS', 1500),
  retry: num('CHAOS_RETRY_MS', 100),
  quiet: num('CHAOS_QUIET_MS', 5000),
  sentinels: num('CHAOS_SENTINELS', 0) > 0,
  failovers: num('CHAOS_FAILOVERS', 1),
  masterKills: num('CHAOS_MASTER_KILLS', 1),
  replicas: num('CHAOS_REPLICAS', 1),
  delay: num('CHAOS_DELAY_MS', 2000),
  window: num('CHAOS_WINDOW_MS', 10000),
  seed: num('CHAOS_SEED', Math.floor(Math.random() * 2 ** 31)),
  breakMode: process.env.CHAOS_BREAK || ''
};
cfg.minSent = num('CHAOS_MIN_SENT', Math.round(cfg.duration / 1000 * 20));
if (cfg.gateways < 2) { console.error('CHAOS_GATEWAYS: at least 2 (one is killed)'); process.exit(2); }
if (!['', 'no-retry', 'drop-backlog', 'swap'].includes(cfg.breakMode)) {
  console.error(`CHAOS_BREAK: no-retry, drop-backlog or swap, not ${cfg.breakMode}`);
  process.exit(2);
}
const KEY = 'chaos-secret';
const started = Date.now();
const since = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (...what) => console.log(`[${since()} s]`, ...what);

// A run-long bound: each phase below is bounded too; this catches a hang anywhere.
h.deadline(cfg.duration + 240000, 'chaos: overall timeout');

// ---- random choices, from a seed ------------------------------------------------
let seedState = cfg.seed >>> 0;
function random () { // mulberry32
  seedState = (seedState + 0x6D2B79F5) >>> 0;
  let t = seedState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (list) => list[Math.floor(random() * list.length)];

// ---- what happened ---------------------------------------------------------------------
const stats = {
  sent: 0,
  retries503: 0,
  retriesFailed: 0, // no answer: refused, reset, timeout
  failedBy: {},
  badStatus: [],
  opened: 0,
  authenticated: 0,
  openFailed: 0,
  closedByUs: 0,
  closedByServer: 0,
  unexpectedExits: [],
  events: [],
  faults: [] // {what, start, end} (ms since the start), for the delays around each
};

// ---- redis-server with an append-only file, fsync'd at every write -----------------------
const out = process.env.CHAOS_OUT || fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-chaos-'));
fs.mkdirSync(out, { recursive: true });
let redisPort;
let redisProc = null;

async function startRedis () {
  const logFd = fs.openSync(path.join(out, 'redis.log'), 'a');
  const proc = h.spawnChild('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', out,
    '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  let error = null;
  proc.on('error', (e) => { error = e; });
  const probe = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await h.eventually(`redis-server up on port ${redisPort}`, async () => {
      if (error) throw new Error(`cannot start redis-server: ${error.message}`);
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}), see ${out}/redis.log`);
      if (probe.status !== 'ready') { probe.disconnect(); await probe.connect(); }
      if (await probe.ping() !== 'PONG') throw new Error('no PONG');
    }, 20000);
  } finally { probe.disconnect(); }
  redisProc = proc;
}

// Our own view of Redis (reconnects by itself across the restart; in the
// failover mode, follows the master the sentinels name).
let redis;

// ---- failover mode: master, replica, three sentinels ----------------------------------------
let sentinelSet = null;
let sentinelDown = []; // nodes killed and not yet started again

/// The node ({port, proc, args}) the sentinels name as master.
async function currentMaster () {
  const port = await sentinelSet.masterPort();
  return sentinelSet.nodes.find((n) => n.port === port) || { port };
}

async function newMasterAfter (before, what) {
  const t = Date.now();
  await h.eventually(`the sentinels name a new master after ${what}`, async () => {
    if (await sentinelSet.masterPort() === before) throw new Error('same master');
  }, 60000);
  const port = await sentinelSet.masterPort();
  return { port, ms: Date.now() - t };
}

async function forcedFailover () {
  const start = Date.now() - started;
  const before = (await currentMaster()).port;
  log(`SENTINEL FAILOVER ${sentinelSet.name} (master on ${before})`);
  stats.events.push(`${since()} s: SENTINEL FAILOVER (master on port ${before})`);
  await h.eventually('SENTINEL FAILOVER accepted', async () => {
    const r = await sentinelSet.command(0, 'SENTINEL', 'FAILOVER', sentinelSet.name);
    if (r !== 'OK') throw new Error(String(r));
  }, 30000);
  const { port, ms } = await newMasterAfter(before, 'SENTINEL FAILOVER');
  log(`the sentinels name the master on ${port} (${ms} ms after the command was accepted)`);
  stats.events.push(`${since()} s: new master on port ${port}`);
  stats.faults.push({ what: 'SENTINEL FAILOVER', start, end: Date.now() - started });
}

async function killMaster () {
  const start = Date.now() - started;
  const node = await currentMaster();
  if (!node.proc) throw new Error(`the master on ${node.port} is none of the data nodes started`);
  log(`SIGKILL the master (port ${node.port})`);
  stats.events.push(`${since()} s: SIGKILL the master (port ${node.port})`);
  node.proc.kill('SIGKILL');
  await h.within(10000, node.proc.exited, 'master exit');
  sentinelDown.push(node);
  const { port, ms } = await newMasterAfter(node.port, 'SIGKILL');
  log(`the sentinels name the master on ${port} (${ms} ms after the kill)`);
  stats.events.push(`${since()} s: new master on port ${port}`);
  stats.faults.push({ what: 'SIGKILL master', start, end: Date.now() - started });
  // The killed server comes back on its port and data directory; the
  // sentinels make it a replica of the new master.
  await h.sleep(1000);
  await restartNode(node);
  log(`redis-server on ${node.port} started again`);
  stats.events.push(`${since()} s: redis-server on port ${node.port} started again`);
}

async function restartNode (node) {
  const logFd = fs.openSync(path.join(out, `redis-${node.port}.log`), 'a');
  const proc = h.spawnChild('redis-server', [...node.args, '--port', String(node.port), '--bind', '127.0.0.1'], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  node.proc = proc;
  const probe = new Redis({ host: '127.0.0.1', port: node.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await h.eventually(`redis-server up again on ${node.port}`, async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}), see ${out}/redis-${node.port}.log`);
      if (probe.status !== 'ready') { probe.disconnect(); await probe.connect(); }
      if (await probe.ping() !== 'PONG') throw new Error('no PONG');
    }, 20000);
  } finally { probe.disconnect(); }
  sentinelDown = sentinelDown.filter((n) => n !== node);
}

// ---- gateways ---------------------------------------------------------------------------------
const gateways = [];

async function startGateway (g) {
  const logFd = fs.openSync(path.join(out, `${g.name}.log`), 'a');
  const proc = h.spawnChild(gatewayBin, [], {
    env: {
      PATH: process.env.PATH,
      MESA_PORT: String(g.port),
      MESA_THREADS: String(cfg.threads),
      WS_KEY: KEY,
      ...(sentinelSet ? { REDIS_SENTINELS: sentinelSet.list, REDIS_SENTINEL_MASTER: sentinelSet.name } : { REDIS_URI: `redis://127.0.0.1:${redisPort}` }),
      // CHAOS_REPLICAS_TO_ACKNOWLEDGE: stores answered only once that many replicas have them (WAIT; the gateway defaults to 1 with sentinels).
      ...(process.env.CHAOS_REPLICAS_TO_ACKNOWLEDGE ? { REDIS_REPLICAS_TO_ACKNOWLEDGE: process.env.CHAOS_REPLICAS_TO_ACKNOWLEDGE } : {}),
      SYNC_ENABLED: 'true',
      MESA_PRESENCE_TTL: String(cfg.ttl),
      // Our clients send one op 11 per op 1 and nothing else, well under any limit.
      MESA_MAX_MESSAGES_PER_SECOND: '0'
    },
    stdio: ['ignore', logFd, logFd]
  });
  fs.closeSync(logFd);
  g.proc = proc;
  g.alive = true;
  g.killing = true; // not in use until it is up
  proc.exited.then(({ code, signal }) => {
    g.alive = false;
    if (!g.killing) {
      stats.unexpectedExits.push(`${g.name} exited (code ${code}, signal ${signal}) at ${since()} s; see ${out}/${g.name}.log`);
      log(`UNEXPECTED: ${g.name} exited (code ${code}, signal ${signal})`);
    }
  });
  await h.eventually(`${g.name} serves and reached Redis`, async () => {
    if (!g.alive) throw new Error(`${g.name} exited, see ${out}/${g.name}.log`);
    const r = await h.httpRequest(g.port, 'GET', '/health', { ms: 1000 });
    if (!r.json || r.json.status !== 'ok') throw new Error(`health: ${r.body}`);
  }, 20000);
  g.url = `ws://127.0.0.1:${g.port}`;
  g.agent = new http.Agent({ keepAlive: true, maxSockets: cfg.senders });
  g.killing = false; // in use from now on
}

const liveGateways = () => gateways.filter((g) => g.alive && !g.killing);

// ---- users and their sockets -------------------------------------------------------------------
// A user: its sockets, and what it received: got = Map "sender:n" -> receipts;
// firstMax[sender] = the highest n first received from that sender.
const users = [];
let socketSeq = 0;
const ooo = []; // out-of-order first receipts: examples
let outOfOrder = 0;
let socketOutOfOrder = 0; // the same, per socket (diagnostics)
const sockOoo = [];
let receipts = 0;
let lastReceipt = Date.now();
// At-least-once duplicates, apart from the copies every open tab of a user gets:
let redeliveredAgain = 0; // a redelivery (s set) of a message the user had received already
let sameSocketAgain = 0; // a socket received a message it had received already

function receive (user, sock, m) {
  if (m.type !== 'CHAOS' || !m.data) return;
  const { sender, n } = m.data;
  receipts++;
  lastReceipt = Date.now();
  const key = `${sender}:${n}`;
  const seen = user.got.get(key) || 0;
  user.got.set(key, seen + 1);
  if (seen > 0 && m.sequence) redeliveredAgain++;
  if (sock.got.has(key)) sameSocketAgain++;
  if (seen === 0) {
    user.firstAt.set(key, Date.now());
    const max = user.firstMax[sender] || 0;
    if (n < max) {
      outOfOrder++;
      if (ooo.length < 20) {
        ooo.push(`${user.id} got ${sender}:${n} first after ${sender}:${max} (socket ${sock.id} on ${sock.gateway}, ` +
          `${m.sequence ? `redelivered s=${m.sequence}` : 'live'}, at ${since()} s)`);
      }
    } else user.firstMax[sender] = n;
  }
  if (!sock.got.has(key)) {
    sock.got.add(key);
    const max = sock.firstMax[sender] || 0;
    if (n < max) {
      socketOutOfOrder++;
      if (sockOoo.length < 20) {
        sockOoo.push(`socket ${sock.id} of ${user.id} on ${sock.gateway} (authenticated at ${sock.at} s) got ${sender}:${n} after ` +
          `${sender}:${max} (${m.sequence ? `redelivered s=${m.sequence}` : 'live'}, at ${since()} s)`);
      }
    } else sock.firstMax[sender] = n;
  }
}

/// Opens a socket for `user` on gateway `g` (a random live one by default) and authenticates it.
async function openSocket (user, g = pick(liveGateways())) {
  if (!g) return;
  const sock = { id: ++socketSeq, gateway: g.name, got: new Set(), firstMax: {}, open: false, closed: false };
  const client = new Client(g.url, { autoConnect: false });
  sock.client = client;
  user.sockets.add(sock);
  stats.opened++;
  client.on('error', () => {});
  client.on('message', (m) => receive(user, sock, m));
  sock.done = new Promise((resolve) => client.on('disconnected', () => {
    if (!sock.closing) stats.closedByServer++;
    if (sock.endedAt === undefined) sock.endedAt = Date.now();
    sock.closed = true;
    user.sockets.delete(sock);
    resolve();
  }));
  try {
    await h.within(10000, client.connect(), `connect ${user.id}`);
    const gone = sock.done.then(() => { throw new Error('closed'); });
    gone.catch(() => {});
    await h.within(10000, Promise.race([client.authenticate({ token: h.jwt({ id: user.id }, KEY) }), gone]), `authenticate ${user.id}`);
    sock.open = true;
    sock.at = since();
    stats.authenticated++;
  } catch (_) {
    stats.openFailed++;
    closeSocket(sock);
    // A connection refused before it opened may never say 'disconnected'.
    sock.closed = true;
    if (sock.endedAt === undefined) sock.endedAt = Date.now();
    user.sockets.delete(sock);
  }
}

function closeSocket (sock) {
  if (sock.closing) return;
  sock.closing = true;
  if (sock.endedAt === undefined) sock.endedAt = Date.now();
  stats.closedByUs++;
  try { sock.client.disconnect(1000); } catch (_) {}
}

// ---- churn: sockets opened, closed and moved at random --------------------------------------------
let stopping = false;
let inFlight = 0;
const tracked = (p) => { inFlight++; return p.finally(() => { inFlight--; }); };

async function churn () {
  while (!stopping) {
    await h.sleep(cfg.churn * 2 * random());
    if (inFlight > 64) continue; // the machine is slower than the churn: let it catch up
    const user = pick(users);
    const open = [...user.sockets].filter((s) => !s.closing);
    const r = random();
    if (open.length === 0) {
      // offline users come back, sometimes with two tabs at once
      tracked(openSocket(user));
      if (r < 0.2) tracked(openSocket(user));
    } else if (open.length >= 3 || r < 0.35) {
      closeSocket(pick(open));
    } else if (r < 0.45) {
      // all tabs closed: offline until the churn picks it again
      for (const s of open) closeSocket(s);
    } else if (r < 0.65) {
      // moves: one socket closed, another opened on another gateway
      const s = pick(open);
      closeSocket(s);
      tracked(openSocket(user, pick(liveGateways().filter((g) => g.name !== s.gateway))));
    } else {
      tracked(openSocket(user));
    }
  }
}

// ---- senders: POST /dispatch, in sequence, retried until 202 -----------------------------------------
function post (g, body) {
  return new Promise((resolve) => {
    const text = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port: g.port, method: 'POST', path: '/dispatch', agent: g.agent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
      res.on('error', () => resolve({ status: 0 }));
    });
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, error: e.code || e.message }));
    req.end(text);
  });
}

const sentTo = []; // sentTo[sender][n - 1] = the user's index, for each message answered 202
const sentMeta = []; // sentMeta[sender][n - 1] = {at: time of the 202, socks: the user's sockets open then}
const openSockets = (userIndex) => [...users[userIndex].sockets].filter((s) => s.open && !s.closing);

/// Dispatches message n of `sender` until a gateway answers 202.
async function deliverOne (sender, n, userIndex) {
  const body = { message: { t: 'CHAOS', d: { sender, n } }, recipients: [users[userIndex].id] };
  for (;;) {
    const g = pick(liveGateways());
    if (!g) { await h.sleep(cfg.retry); continue; }
    const r = await post(g, body);
    if (r.status === 202) return { at: Date.now(), socks: openSockets(userIndex) };
    if (r.status === 503) stats.retries503++;
    else if (r.status === 0) {
      stats.retriesFailed++;
      stats.failedBy[r.error] = (stats.failedBy[r.error] || 0) + 1;
    }
    else {
      stats.badStatus.push(`${r.status} ${r.body}`);
      return false;
    }
    if (cfg.breakMode === 'no-retry') return { at: Date.now(), socks: [] }; // broken on purpose: counted as sent
    await h.sleep(cfg.retry);
  }
}

async function sender (s) {
  const sent = sentTo[s] = [];
  const meta = sentMeta[s] = [];
  let n = 0;
  while (!stopping) {
    const a = Math.floor(random() * users.length);
    if (cfg.breakMode === 'swap' && random() < 0.01) {
      // broken on purpose: n + 2 goes before n + 1, both to the same user
      const second = await deliverOne(s, n + 2, a);
      const first = second && await deliverOne(s, n + 1, a);
      if (!first) break;
      sent.push(a, a);
      meta.push(first, second);
      n += 2;
      stats.sent += 2;
    } else {
      const m = await deliverOne(s, n + 1, a);
      if (!m) break;
      sent.push(a);
      meta.push(m);
      n += 1;
      stats.sent++;
    }
    if (cfg.pause) await h.sleep(cfg.pause * 2 * random());
  }
}

// ---- the faults ---------------------------------------------------------------------------------------
async function killGateway () {
  const g = pick(liveGateways());
  const start = Date.now() - started;
  g.killing = true;
  log(`SIGKILL ${g.name}`);
  stats.events.push(`${since()} s: SIGKILL ${g.name}`);
  g.proc.kill('SIGKILL');
  await h.within(10000, g.proc.exited, `${g.name} exit`);
  // Down for longer than the presence TTL: a live instance reaps it meanwhile.
  await h.sleep(cfg.ttl * 2);
  await startGateway(g);
  log(`${g.name} started again`);
  stats.events.push(`${since()} s: ${g.name} started again`);
  stats.faults.push({ what: `SIGKILL ${g.name}`, start, end: Date.now() - started });
}

async function restartRedis () {
  log(`${cfg.redisSignal} redis-server`);
  stats.events.push(`${since()} s: ${cfg.redisSignal} redis-server`);
  const start = Date.now() - started;
  const proc = redisProc;
  proc.kill(cfg.redisSignal);
  await h.within(20000, proc.exited, 'redis-server exit');
  await h.sleep(cfg.redisDown);
  await startRedis();
  log('redis-server started again');
  stats.events.push(`${since()} s: redis-server started again`);
  stats.faults.push({ what: `${cfg.redisSignal} redis-server`, start, end: Date.now() - started });
}

async function dropBacklog () {
  const n = await redis.hlen('undelivered_messages');
  await redis.del('undelivered_messages');
  log(`CHAOS_BREAK=drop-backlog: deleted undelivered_messages (${n} users' backlogs)`);
}

// ---- the run ---------------------------------------------------------------------------------------------
async function pollUntil (ms, what, predicate) {
  try {
    await h.until(ms, predicate, what);
    return true;
  } catch (e) {
    log(`note: ${e.message}`);
    return false;
  }
}

async function scanKeys (pattern) {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

async function main () {
  log(`chaos: ${JSON.stringify(cfg)}; data and logs in ${out}`);
  if (cfg.sentinels) {
    sentinelSet = await h.startSentinels({ name: 'chaos', appendonly: true, replicas: cfg.replicas });
    log(`sentinels ${sentinelSet.list}, master on ${sentinelSet.master.port}, replicas on ${sentinelSet.replicas.map((r) => r.port).join(', ')}`);
    redis = new Redis({ sentinels: sentinelSet.ioredis, name: sentinelSet.name, maxRetriesPerRequest: 50 });
  } else {
    redisPort = await h.freePort();
    await startRedis();
    redis = new Redis({ host: '127.0.0.1', port: redisPort, maxRetriesPerRequest: 50 });
  }
  redis.on('error', () => {});
  h.onCleanup(() => redis.disconnect());
  for (let i = 0; i < cfg.gateways; i++) gateways.push({ name: `gateway-${i + 1}`, port: await h.freePort() });
  await Promise.all(gateways.map(startGateway));
  h.onCleanup(() => { for (const g of gateways) if (g.agent) g.agent.destroy(); });
  for (let i = 0; i < cfg.users; i++) users.push({ id: `u${i}`, sockets: new Set(), got: new Map(), firstAt: new Map(), firstMax: {} });
  h.onCleanup(() => { for (const u of users) for (const s of u.sockets) try { s.client.disconnect(1000); } catch (_) {} });

  // Everyone starts with one socket, a few at a time.
  for (let i = 0; i < users.length; i += 25) await Promise.all(users.slice(i, i + 25).map((u) => openSocket(u)));
  log(`${stats.authenticated} users connected; dispatching and churning for ${cfg.duration / 1000} s`);

  const churning = churn();
  const senders = [];
  for (let s = 0; s < cfg.senders; s++) senders.push(sender(s));

  // The faults, spread over the run: gateway kills and Redis restarts alternate.
  const faults = [];
  for (let k = 0; k < cfg.gatewayKills; k++) faults.push(killGateway);
  if (cfg.sentinels) {
    // forced failovers and master kills, with the gateway kills in between
    const redisFaults = [];
    for (let k = 0; k < Math.max(cfg.failovers, cfg.masterKills); k++) {
      if (k < cfg.failovers) redisFaults.push(forcedFailover);
      if (k < cfg.masterKills) redisFaults.push(killMaster);
    }
    redisFaults.forEach((f, k) => faults.splice(Math.min(2 * k, faults.length), 0, f));
  } else {
    for (let k = 0; k < cfg.redisRestarts; k++) faults.splice(2 * k + 1, 0, restartRedis);
  }
  if (cfg.breakMode === 'drop-backlog') faults.splice(1, 0, dropBacklog);
  const report = setInterval(() => {
    const sockets = users.reduce((a, u) => a + u.sockets.size, 0);
    log(`sent ${stats.sent}, receipts ${receipts}, sockets ${sockets}, retries 503 ${stats.retries503} / failed ${stats.retriesFailed}, ` +
      `opened ${stats.opened} (failed ${stats.openFailed}), gateways up ${liveGateways().length}`);
  }, 10000);
  const t0 = Date.now();
  for (let k = 0; k < faults.length; k++) {
    const at = t0 + cfg.duration * (k + 1) / (faults.length + 1);
    while (Date.now() < at) await h.sleep(100);
    await faults[k]();
  }
  while (Date.now() < t0 + cfg.duration) await h.sleep(100);

  // ---- the end: stop, close everything, let presence drain, reconnect everyone once ----
  stopping = true;
  log('stopping the churn and the senders (each finishes its message)');
  await h.within(120000, Promise.all([churning, ...senders]), 'senders finish');
  await pollUntil(30000, 'opening sockets settle', () => inFlight === 0);
  clearInterval(report);
  for (const u of users) for (const s of u.sockets) closeSocket(s);
  await pollUntil(20000, 'every socket closed', () => users.every((u) => u.sockets.size === 0));
  if (sentinelSet) {
    // From here on, read the master the sentinels name now, directly.
    const port = await sentinelSet.masterPort();
    const direct = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 50 });
    direct.on('error', () => {});
    h.onCleanup(() => direct.disconnect());
    redis.disconnect();
    redis = direct;
    log(`final checks on the master the sentinels name: port ${port} (role ${(await redis.call('ROLE'))[0]})`);
  }
  log(`all sockets closed; waiting for the presence to drain (TTL ${cfg.ttl} ms)`);
  await h.sleep(cfg.ttl);
  await pollUntil(cfg.ttl * 5 + 20000, 'presence drained: connected_clients, mesa_presence and outboxes empty', async () => {
    const [set, presence, boxes] = await Promise.all([redis.scard('connected_clients'), redis.hlen('mesa_presence'), scanKeys('mesa_outbox:*')]);
    return set === 0 && presence === 0 && boxes.length === 0;
  });
  const backlogs = await redis.hlen('undelivered_messages');
  log(`presence drained; ${backlogs} users have a backlog; every user connects once more`);

  const expected = users.map(() => 0);
  for (const list of sentTo) for (const a of list) expected[a]++;
  const missing = () => users.reduce((a, u, i) => a + Math.max(0, expected[i] - u.got.size), 0);
  lastReceipt = Date.now();
  const living = liveGateways();
  for (let i = 0; i < users.length; i += 25) {
    await Promise.all(users.slice(i, i + 25).map((u, j) => openSocket(u, living[(i + j) % living.length])));
  }
  const notOpen = users.filter((u) => ![...u.sockets].some((s) => s.open));
  if (notOpen.length) log(`note: ${notOpen.length} users could not connect at the end: ${notOpen.slice(0, 5).map((u) => u.id)}`);
  await pollUntil(120000, 'messages stop arriving', () => missing() === 0 || Date.now() - lastReceipt > cfg.quiet);
  // Let the last confirmations reach Redis, then look at what is left there.
  await h.sleep(500);
  const leftBacklogs = await redis.hlen('undelivered_messages');
  const leftOutboxes = (await scanKeys('mesa_outbox:*')).length;

  // ---- the figures ----
  let lost = 0, duplicated = 0, extra = 0, received = 0, phantom = 0;
  const lostExamples = [];
  const sentKeys = users.map(() => new Set());
  sentTo.forEach((list, s) => list.forEach((a, i) => sentKeys[a].add(`${s}:${i + 1}`)));
  users.forEach((u, a) => {
    for (const key of sentKeys[a]) {
      if (!u.got.has(key)) {
        lost++;
        if (lostExamples.length < 20) {
          const [s, n] = key.split(':').map(Number);
          const m = sentMeta[s][n - 1];
          lostExamples.push(`${u.id} never got ${key} (202 at ${((m.at - started) / 1000).toFixed(1)} s, ` +
            `${m.socks.length} sockets open then: ${m.socks.map((k) => `${k.id} on ${k.gateway}`).join(', ') || 'none'})`);
        }
      }
    }
    for (const [key, count] of u.got) {
      received++;
      if (count > 1) { duplicated++; extra += count - 1; }
      if (!sentKeys[a].has(key)) phantom++;
    }
  });
  // Delays: from the 202 to the first receipt, for messages whose user had a
  // socket open at the 202 that stayed open cfg.delay longer.
  const windows = stats.faults.map((f) => ({ fault: f.what, from_s: Number((f.start / 1000).toFixed(1)), to_s: Number((f.end / 1000).toFixed(1)), sent: 0, lost: 0, online: 0, delayed: 0, max_delay_ms: 0 }));
  let online = 0, delayedCount = 0, onlineNever = 0, maxDelay = 0, maxDelayOf = null;
  let lostFirst = null, lostLast = null;
  const delayedExamples = [];
  sentMeta.forEach((list, s) => list.forEach((m, i) => {
    const a = sentTo[s][i];
    const key = `${s}:${i + 1}`;
    const first = users[a].firstAt.get(key);
    const stayed = m.socks.some((k) => k.endedAt === undefined || k.endedAt >= m.at + cfg.delay);
    const t = m.at - started;
    const inWindows = windows.filter((w, j) => t >= stats.faults[j].start && t <= stats.faults[j].end + cfg.window);
    for (const w of inWindows) w.sent++;
    if (first === undefined) {
      for (const w of inWindows) w.lost++;
      if (lostFirst === null || t < lostFirst) lostFirst = t;
      if (lostLast === null || t > lostLast) lostLast = t;
    }
    if (!stayed) return;
    online++;
    for (const w of inWindows) w.online++;
    const delay = first === undefined ? Infinity : first - m.at;
    if (first === undefined) onlineNever++;
    else if (delay > cfg.delay) {
      delayedCount++;
      for (const w of inWindows) { w.delayed++; w.max_delay_ms = Math.max(w.max_delay_ms, delay); }
      if (delayedExamples.length < 10) {
        delayedExamples.push(`${users[a].id} got ${key} ${first === undefined ? 'never' : `${delay} ms`} after its 202 at ${(t / 1000).toFixed(1)} s`);
      }
    }
    if (first !== undefined && delay > maxDelay) { maxDelay = delay; maxDelayOf = `${users[a].id} ${key}, 202 at ${(t / 1000).toFixed(1)} s`; }
  }));
  const perUser = users.map((u) => u.got.size).sort((x, y) => x - y);
  const runTime = (Date.now() - started) / 1000;
  const figures = {
    seed: cfg.seed,
    mode: cfg.sentinels ? 'failover (sentinels)' : 'one redis-server',
    duration_s: cfg.duration / 1000,
    run_time_s: Number(runTime.toFixed(1)),
    users: cfg.users,
    sent: stats.sent,
    received_distinct: received,
    received_per_user: { min: perUser[0], median: perUser[perUser.length >> 1], max: perUser[perUser.length - 1] },
    lost,
    lost_202_between_s: lostFirst === null ? null : [Number((lostFirst / 1000).toFixed(1)), Number((lostLast / 1000).toFixed(1))],
    duplicated,
    duplicate_receipts: extra,
    redelivered_again: redeliveredAgain,
    same_socket_again: sameSocketAgain,
    out_of_order: outOfOrder,
    out_of_order_per_socket: socketOutOfOrder,
    received_not_sent: phantom,
    delayed: {
      threshold_ms: cfg.delay,
      online_at_202: online,
      delayed: delayedCount,
      online_never_received: onlineNever,
      max_delay_ms: maxDelay,
      max_delay_of: maxDelayOf,
      around_faults: windows
    },
    retries_503: stats.retries503,
    retries_no_answer: stats.retriesFailed,
    no_answer_by_error: stats.failedBy,
    sockets_opened: stats.opened,
    sockets_authenticated: stats.authenticated,
    sockets_failed_to_open: stats.openFailed,
    sockets_closed_by_server: stats.closedByServer,
    left_in_redis: { backlogs: leftBacklogs, outboxes: leftOutboxes },
    events: stats.events
  };
  console.log('\nchaos figures:\n' + JSON.stringify(figures, null, 2));
  if (lostExamples.length) console.log('lost, e.g.:\n  ' + lostExamples.join('\n  '));
  if (ooo.length) console.log('out of order, e.g.:\n  ' + ooo.join('\n  '));
  if (delayedExamples.length) console.log(`delayed (> ${cfg.delay} ms), e.g.:\n  ` + delayedExamples.join('\n  '));
  if (sockOoo.length) console.log('out of order on one socket, e.g.:\n  ' + sockOoo.join('\n  '));

  const failures = [];
  if (lost > 0) failures.push(`${lost} messages lost`);
  if (outOfOrder > 0) failures.push(`${outOfOrder} messages out of order`);
  if (phantom > 0) failures.push(`${phantom} messages received that were never sent`);
  if (stats.sent < cfg.minSent) failures.push(`only ${stats.sent} messages sent (CHAOS_MIN_SENT ${cfg.minSent})`);
  if (stats.badStatus.length) failures.push(`dispatch answered neither 202 nor 503: ${stats.badStatus.slice(0, 3).join('; ')}`);
  for (const e of stats.unexpectedExits) failures.push(e);
  if (notOpen.length) failures.push(`${notOpen.length} users could not connect at the end`);

  for (const g of gateways) { g.killing = true; if (g.alive) g.proc.kill('SIGTERM'); }
  await Promise.all(gateways.map((g) => h.within(10000, g.proc.exited, `${g.name} exit`).catch(() => {})));
  h.cleanup();
  if (failures.length) {
    console.log(`\nFAIL (seed ${cfg.seed}; data and logs kept in ${out}):\n  ${failures.join('\n  ')}`);
    process.exit(1);
  }
  if (!process.env.CHAOS_OUT) fs.rmSync(out, { recursive: true, force: true });
  console.log(`\nPASS: ${stats.sent} sent, none lost, none out of order (${duplicated} duplicated), ${runTime.toFixed(1)} s`);
  process.exit(0);
}

main().catch((e) => {
  console.log(`FAIL: ${e.stack || e}\n(seed ${cfg.seed}; data and logs kept in ${out})`);
  h.cleanup();
  process.exit(1);
});
