// Starts our echo server on a free port and runs the npm @cryb/mesa Client
// against it (echo_client.js). Usage: node run_echo.js path/to/echo_server
'use strict';
const { spawn } = require('child_process');
const path = require('path');

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node run_echo.js path/to/echo_server');
  process.exit(2);
}

const server = spawn(binary, ['0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const fail = (reason) => {
  console.error(`interop failed: ${reason}`);
  server.kill();
  process.exit(1);
};
const timer = setTimeout(() => fail('echo server did not report its port within 10 s'), 10000);
server.on('exit', (code) => fail(`echo server exited early (code ${code})`));

let output = '';
server.stdout.on('data', (chunk) => {
  output += chunk;
  const match = output.match(/ws:\/\/localhost:(\d+)\/ws/);
  if (!match) return;
  clearTimeout(timer);
  server.stdout.removeAllListeners('data');
  const client = spawn(process.execPath, [path.join(__dirname, 'echo_client.js'), `ws://127.0.0.1:${match[1]}/ws`],
    { stdio: 'inherit' });
  client.on('exit', (code) => {
    server.removeAllListeners('exit');
    server.kill();
    process.exit(code === 0 ? 0 : 1);
  });
});
