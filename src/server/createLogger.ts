import { pino, type Logger } from "pino";
import { redactUrl } from "./redactUrl.js";

interface CreateLoggerOptions {
  level: string;
  /** Human-readable output (pino-pretty) instead of JSON lines. Default: when stdout is a TTY. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

/** The root logger. Secrets in headers, and credentials in the query string of any logged `url`, never reach the log. */
export function createLogger({ level, pretty = process.stdout.isTTY === true, destination }: CreateLoggerOptions): Logger {
  const options = {
    level,
    base: { pid: process.pid },
    redact: {
      paths: ["req.headers.authorization", "req.headers.cookie", "headers.authorization", "authorization", "*.apiKey", "*.token"],
      censor: "[redacted]",
    },
    serializers: { url: (url: unknown) => (typeof url === "string" ? redactUrl(url) : url) },
  };
  if (pretty && !destination) {
    return pino({ ...options, transport: { target: "pino-pretty", options: { colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" } } });
  }
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}
