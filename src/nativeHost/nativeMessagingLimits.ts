/** The name browsers know the host by (lowercase letters, digits, `_` and `.`, as Chrome requires). */
export const HOST_NAME = "com.tabagent.host";

/** Chrome and Firefox refuse a single message from a host larger than 1 MB: longer payloads are sent in parts. */
export const MAX_OUTGOING_BYTES = 1024 * 1024;

/**
 * Our cap on a message from the browser (Chrome allows 64 MiB). 8 MiB is the daemon's default request body limit: a
 * larger message could not be relayed anyway. A larger frame is refused with an error and its bytes are skipped.
 */
export const MAX_INCOMING_BYTES = 8 * 1024 * 1024;
