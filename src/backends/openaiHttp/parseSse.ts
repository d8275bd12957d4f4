/**
 * Splits a server-sent-events byte stream into the `data:` payloads of its events, as they arrive.
 * Handles CRLF, multi-line data fields and comments; a line longer than `maxLineBytes` is an error, so a broken
 * upstream cannot make us buffer without bound.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>, maxLineBytes = 8 << 20): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  const flushEvent = function* () {
    if (data.length > 0) {
      const payload = data.join("\n");
      data = [];
      yield payload;
    }
  };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        yield* flushEvent();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
      // other fields (event:, id:, retry:) and comments (:) carry nothing we use
    }
    if (buffer.length > maxLineBytes) throw new Error(`server-sent event line longer than ${maxLineBytes} bytes`);
  }
  buffer += decoder.decode();
  if (buffer.startsWith("data:")) data.push(buffer.slice(buffer.startsWith("data: ") ? 6 : 5));
  yield* flushEvent();
}
