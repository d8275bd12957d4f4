import { createServer } from "node:net";

/**
 * Asks the OS for a free TCP port on `host` (bind port 0, read it, close). Another program can take it before the
 * child binds it; ManagedProcess then retries with a new port when the child reports the port in use.
 */
export function findFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : port > 0 ? resolve(port) : reject(new Error("no port was assigned"))));
    });
  });
}
