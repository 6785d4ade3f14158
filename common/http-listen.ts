/** "host:port" as configured (an IPv6 host in brackets) into what `server.listen` takes. */
export function splitHostPort(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  return { host: listen.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(listen.slice(at + 1)) };
}

/** An HTTP server of ours (codec server, health endpoints, alert bridge), listening. */
export interface Listening {
  /** http://host:port as bound (port 0 resolved). */
  url: string;
  close(): Promise<void>;
}

/** The part of node:http's Server used here (common/ is also imported by workflows, so no Node types). */
export interface HttpServer {
  listen(port: number, host: string, listening: () => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  address(): { address: string; family: string; port: number } | string | null;
  close(closed: () => void): unknown;
  closeAllConnections(): void;
}

/** Listens on "host:port" (an IPv6 host in brackets); `close` also ends kept-alive connections. */
export async function listenOn(server: HttpServer, listen: string): Promise<Listening> {
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const address = server.address() as { address: string; family: string; port: number };
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        server.closeAllConnections();
      }),
  };
}
