/**
 * Reads a streamed response to its end and returns the raw SSE text. `onceContent` runs once, when the first
 * content chunk has arrived (to kill an engine mid-stream, say).
 */
export async function readSse(res: Response, onceContent?: () => void): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let fired = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (!fired && onceContent && text.includes('"content"')) {
      fired = true;
      onceContent();
    }
  }
  return text;
}
