import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { splitHostPort } from '../common/host-port';

/** A server of the worker process, listening. */
export interface Listening {
  /** http://host:port as bound (port 0 resolved). */
  url: string;
  close(): Promise<void>;
}

/** Listens on "host:port" (an IPv6 host in brackets); `close` also ends kept-alive connections. */
export async function listenOn(server: Server, listen: string): Promise<Listening> {
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
