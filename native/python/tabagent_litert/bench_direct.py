"""The benchmark's direct side: LiteRT-LM's Python API alone on a bundle, no daemon, no HTTP. One JSON line at start
({"prompt_tokens"}), then one per `run` line on stdin: the arrival time of each streamed piece (ms after the request
began), the runtime's count of generated tokens and the text. The prompt is the daemon's (the bundle's own chat
template, rendered the same way), greedy, with the same max_tokens, so both sides decode the same tokens.

    python -m tabagent_litert.bench_direct MODEL --prompt TEXT --max-tokens N [--threads N] --cache-dir DIR"""
import argparse
import json
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-tokens", type=int, required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cache-dir", required=True)
    a = p.parse_args()

    import litert_lm

    from .engine import LiteRtLM

    litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
    # Only for the prompt's text; the timed runs below use the bindings directly.
    text = LiteRtLM(a.model, "cpu", a.threads, a.cache_dir, None, lambda m: None).chat_ids([{"role": "user", "content": a.prompt}]).text
    engine = litert_lm.Engine(
        a.model,
        backend=litert_lm.Backend.CPU(thread_count=a.threads if a.threads > 0 else None),
        cache_dir=a.cache_dir,
        enable_benchmark=True,
    )
    print(json.dumps({"prompt_tokens": len(engine.tokenize(text))}), flush=True)
    sampler = litert_lm.SamplerConfig(top_k=1, top_p=1.0, temperature=0.0, seed=0)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        start = time.perf_counter()
        session = engine.create_session(apply_prompt_template=False, sampler_config=sampler, max_output_tokens=a.max_tokens)
        session.run_prefill([text])
        arrivals, pieces = [], []
        for r in session.run_decode_async():
            arrivals.append((time.perf_counter() - start) * 1000)
            pieces.append(r.texts[0])
        tokens = session.get_benchmark_info().last_decode_token_count
        session.close()
        print(json.dumps({"arrivals_ms": arrivals, "completion_tokens": tokens, "prompt_tokens": 0, "text": "".join(pieces)}), flush=True)


if __name__ == "__main__":
    main()
