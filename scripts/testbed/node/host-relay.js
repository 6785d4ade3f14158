// The way from the real node's pods to the test bed's servers, which listen on 127.0.0.1 only (the
// apiserver, Temporal, S3, Prometheus, the webhook receiver): one TCP relay per port on the node
// address to the same port on loopback. Bytes pass through untouched, so TLS is end to end (pods
// verify the apiserver's own certificate) and S3's signatures still match the Host they were made for.
//   node host-relay.js <listen address> <port> [<port> ...]
'use strict';
const net = require('node:net');

const [listenAddress, ...ports] = process.argv.slice(2);
if (!listenAddress || ports.length === 0 || ports.some((p) => !Number(p))) {
  console.error('usage: node host-relay.js <listen address> <port> [<port> ...]');
  process.exit(2);
}

const servers = ports.map((port) => {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: Number(port) });
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  server.on('error', (err) => {
    console.error(`relay on ${listenAddress}:${port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(Number(port), listenAddress, () => console.log(`relaying ${listenAddress}:${port} to 127.0.0.1:${port}`));
  return server;
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => Promise.all(servers.map((s) => new Promise((done) => s.close(done)))).then(() => process.exit(0)));
