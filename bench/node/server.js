// The reference server of bench/run: the npm @cryb/mesa 1.5.8 Server with its
// defaults, answering PING with PONG (as examples/gateway does), joined to
// Redis when REDIS_URI is set. Port from MESA_PORT (default 4000).
'use strict';
const { default: Server, Message } = require('@cryb/mesa');

const port = Number(process.env.MESA_PORT || 4000);
const config = { port };
if (process.env.REDIS_URI) config.redis = process.env.REDIS_URI;

const server = new Server(config);
server.on('connection', (client) => {
  client.on('message', (message) => {
    if (message.type === 'PING') client.send(new Message(0, message.data, 'PONG'), true);
  });
});
server.on('error', (error) => console.error(`mesa-node: ${error && error.message}`));
server.wss.on('listening', () => console.log(`listening on port ${port}`));
