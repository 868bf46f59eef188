// Idle memory per wss:// connection of mesa-gateway: starts the gateway with
// a self-signed certificate (made with the `openssl` command) on a free port,
// opens N wss:// connections (npm `ws`), waits for every hello, and prints
// the gateway's VmRSS growth per connection. Not part of `meson test`.
// Several gateways (e.g. one built on transport::asio_tls, one on
// websocketpp_tls) are measured in turn, TRIALS times each (default 3).
//
//   NODE_PATH=test/interop/node_modules node bench/tls_idle.js build/examples/mesa-gateway [other-gateway...] [N]
'use strict';
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const WebSocket = require('ws');

const args = process.argv.slice(2);
const gateways = args.filter((a) => !/^\d+$/.test(a));
const count = Number(args.find((a) => /^\d+$/.test(a)) || 2000);
const trials = Number(process.env.TRIALS || 3);
const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/// One gateway, one trial: its VmRSS growth per idle wss:// connection.
async function measure (gatewayPath, cert, key, trial) {
  const port = await freePort();
  const gw = spawn(gatewayPath, [], {
    env: { ...process.env, MESA_PORT: String(port), TLS_CERT: cert, TLS_KEY: key, WS_KEY: 'bench', MESA_THREADS: '1',
      ENABLE_LOGGING: 'false', AUTH_TIMEOUT: '0', MESA_MAX_MESSAGES_PER_SECOND: '0' },
    stdio: 'ignore',
  });
  let up = false;
  for (let i = 0; i < 100 && !up; ++i) {
    await sleep(100);
    up = await new Promise((r) => net.connect(port, '127.0.0.1').on('connect', function () { this.destroy(); r(true); }).on('error', () => r(false)));
  }
  await sleep(300);
  const before = rss(gw.pid);
  const sockets = [];
  let hellos = 0;
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { rejectUnauthorized: false, perMessageDeflate: false });
      ws.once('message', () => { ++hellos; resolve(); });
      ws.once('error', reject);
      sockets.push(ws);
    })));
  }
  await sleep(2000);
  const after = rss(gw.pid);
  console.log(JSON.stringify({ gateway: gatewayPath, trial, connections: count, hellos, rss_before: before,
    rss_after: after, bytes_per_connection: Math.round((after - before) / count) }));
  for (const ws of sockets) ws.terminate();
  gw.kill('SIGKILL');
  await new Promise((resolve) => gw.once('exit', resolve));
}

(async () => {
  if (gateways.length === 0) throw new Error('usage: node bench/tls_idle.js path/to/mesa-gateway [more...] [N]');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-tls-idle-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  for (let trial = 1; trial <= trials; ++trial) {
    for (const g of gateways) await measure(g, cert, key, trial);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
