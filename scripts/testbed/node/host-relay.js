// The way from the real node's pods to the test bed's apiserver, which listens on 127.0.0.1 only:
// a TCP relay on the node address (the `kubernetes` Service's endpoint, see apiserver-access.ts) to
// the apiserver's loopback port. TLS passes through untouched, so pods verify the apiserver's own
// certificate and authenticate with their service-account tokens.
//   node apiserver-relay.js <listen address> <port> <apiserver port>
'use strict';
const net = require('node:net');

const [listenAddress, listenPort, apiserverPort] = process.argv.slice(2);
if (!listenAddress || !Number(listenPort) || !Number(apiserverPort)) {
  console.error('usage: node apiserver-relay.js <listen address> <port> <apiserver port>');
  process.exit(2);
}

const server = net.createServer((client) => {
  const upstream = net.connect({ host: '127.0.0.1', port: Number(apiserverPort) });
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
server.on('error', (err) => {
  console.error(`apiserver relay on ${listenAddress}:${listenPort}: ${err.message}`);
  process.exit(1);
});
server.listen(Number(listenPort), listenAddress, () => console.log(`relaying ${listenAddress}:${listenPort} to 127.0.0.1:${apiserverPort}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
