// A @cryb/mesa 1.5.8 Server (the Node reference) for the mesa-client tests:
// heartbeat 100 ms (maxAttempts 1), reconnect 100 ms, authentication
// ({token}: "bad" fails with 1008, else id = token, user {id, name}); PING -> PONG;
// prints "listening on PORT" once bound and "heartbeat ack" for each op 11.
// No sync (it needs Redis in Node). Usage: node node_server.js PORT
'use strict';
const path = require('path');
let mesa;
try { mesa = require('@cryb/mesa'); } catch (_) {
  mesa = require(path.join(__dirname, '..', 'interop', 'node_modules', '@cryb', 'mesa'));
}
const port = Number(process.argv[2]);
const server = new mesa.default({
  port,
  gracefullyExit: false,
  heartbeat: { enabled: true, interval: 100, maxAttempts: 1 },
  reconnect: { enabled: true, interval: 100 }
});
server.on('connection', (client) => {
  client.authenticate((data, done) => {
    if (!data.token || data.token === 'bad') return done(new Error('bad token'));
    done(null, { id: data.token, user: { id: data.token, name: 'User ' + data.token } });
  });
  client.on('message', (m) => {
    if (m.type === 'PING') client.send(new mesa.Message(0, m.data, 'PONG'));
  });
  client.on('disconnect', (code) => console.log(`disconnect ${code}`));
});
server.on('error', () => {});
// The Server's ws.Server (set up in its constructor) says when the port is bound.
server.wss.on('listening', () => console.log(`listening on ${port}`));
// One line per heartbeat answer (op 11), which the Server handles silently.
server.wss.on('connection', (socket) => socket.on('message', (data) => {
  try { if (JSON.parse(data).op === 11) console.log('heartbeat ack'); } catch (_) {}
}));
