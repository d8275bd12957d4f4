import { performance } from "node:perf_hooks";
import type { RunSample, StreamSample, Streamer } from "./types.js";

/** `concurrency` streams issued at the same instant; TTFT of each counts from that instant, as a client sees it. */
export function runConcurrent(streamer: Streamer, concurrency: number, prompt: string, maxTokens: number): Promise<RunSample> {
  const startMs = performance.now();
  return Promise.all(Array.from({ length: concurrency }, () => streamer.stream(prompt, maxTokens, { startMs })));
}

interface LateArrivalSample {
  /** TTFT of the request that arrived while the others were decoding. */
  lateTtftMs: number;
  streams: StreamSample[];
}

/**
 * `background` long streams start together; once all of them are decoding, one more request arrives. A server
 * should answer it about as fast as an idle one (it only has to join the batch); a lock held across the running
 * streams' decode loop makes it wait for them instead. The background streams are stopped as soon as the late
 * one has its first token, so a trial lasts about as long as that wait.
 */
export async function lateArrival(streamer: Streamer, background: number, prompt: string, backgroundTokens: number, maxTokens: number): Promise<LateArrivalSample> {
  const stop = new AbortController();
  let firstTokens = 0;
  let allDecoding!: () => void;
  const decoding = new Promise<void>((resolve) => (allDecoding = resolve));
  const onFirstToken = () => {
    if (++firstTokens === background) allDecoding();
  };
  const startMs = performance.now();
  const others = Array.from({ length: background }, () => streamer.stream(prompt, backgroundTokens, { startMs, onFirstToken, signal: stop.signal }));
  try {
    await Promise.race([decoding, Promise.all(others)]);
    await new Promise((resolve) => setTimeout(resolve, 10)); // well inside their decode loop, not at its first step
    const late = await streamer.stream(prompt, maxTokens, { onFirstToken: () => stop.abort() });
    const streams = [...(await Promise.all(others)), late];
    return { lateTtftMs: (late.arrivalsMs[0] ?? Number.NaN) - late.startMs, streams };
  } finally {
    stop.abort();
    await Promise.allSettled(others);
  }
}
