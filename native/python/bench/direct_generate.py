"""The baseline for `npm run bench -- transformers`: transformers' own generate() on a model folder, its text
timed as it streams. Reads one command per stdin line ("run"), answers one JSON line per run on stdout:
{"ttft_ms": ..., "arrivals_ms": [...], "prompt_tokens": N, "completion_tokens": N, "text": "..."}."""
import argparse
import json
import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.streamers import BaseStreamer


class Timing(BaseStreamer):
    """Times each piece of text as a streaming caller would see it (TextStreamer's rule: decode everything so far,
    emit what grew unless it ends in an incomplete character), so both sides time text, not raw tokens."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.prompt_seen = False
        self.times = []
        self.ids = []
        self.shown = 0

    def put(self, value):
        if not self.prompt_seen:  # generate() passes the prompt first
            self.prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if len(text) > self.shown and not text.endswith("\ufffd"):
            self.shown = len(text)
            self.times.append(time.perf_counter())

    def end(self):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="as the sidecar picks it: CUDA (bf16), MPS (fp16) or CPU (fp32)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    # The sidecar's own device and dtype choice, so both sides run the same arithmetic.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tabagent_sidecar.device import pick_device, pick_dtype

    device = pick_device(a.device)
    tok = AutoTokenizer.from_pretrained(a.model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        a.model, local_files_only=True, use_safetensors=True, dtype=pick_dtype("auto", device)
    ).to(device).eval()
    messages = [{"role": "user", "content": a.prompt}]

    def prompt_ids():
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_tensors="pt")
        return (ids if torch.is_tensor(ids) else ids["input_ids"]).to(device)

    print(json.dumps({"ready": True, "prompt_tokens": prompt_ids().shape[1]}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        streamer = Timing(tok)
        start = time.perf_counter()
        ids = prompt_ids()  # a caller renders the chat template per request too
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=a.max_tokens, do_sample=False, streamer=streamer, pad_token_id=tok.pad_token_id)
        arrivals = [(t - start) * 1000 for t in streamer.times]
        print(json.dumps({
            "ttft_ms": arrivals[0] if arrivals else None,
            "arrivals_ms": arrivals,
            "prompt_tokens": ids.shape[1],
            "completion_tokens": len(streamer.ids),
            "text": tok.decode(streamer.ids, skip_special_tokens=True),
        }), flush=True)


if __name__ == "__main__":
    main()
