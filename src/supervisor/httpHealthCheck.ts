import { request } from "node:http";

/**
 * The default health check: `GET http://127.0.0.1:${port}${path}` answers 200. llama-server answers 503 while it
 * loads the model and 200 once it can serve. Connection errors and other statuses count as "not yet".
 */
export function httpHealthCheck(path = "/health"): (port: number, signal: AbortSignal) => Promise<boolean> {
  return (port, signal) =>
    new Promise<boolean>((resolve) => {
      if (signal.aborted) {
        resolve(false);
        return;
      }
      // node:http rather than fetch: no keep-alive pool holding sockets to a child that is about to be killed.
      const req = request({ host: "127.0.0.1", port, path, method: "GET", agent: false, signal }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.once("error", () => resolve(false));
      req.end();
    });
}
