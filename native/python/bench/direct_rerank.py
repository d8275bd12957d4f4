"""The direct side of `npm run bench -- rerank`: sentence-transformers' CrossEncoder.predict on a fixed query and
documents, loaded as the sidecar loads it (CPU, float32, batches of 32). Reads one line per timed run on stdin
("run"), prints the run's milliseconds; prints "ready" once loaded and warmed up.

    python direct_rerank.py MODEL_DIR PAIRS_JSON --threads N
"""
import argparse
import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("pairs")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(a.threads)
    with open(a.pairs, encoding="utf-8") as f:
        spec = json.load(f)
    pairs = [(spec["query"], d) for d in spec["documents"]]
    model = CrossEncoder(a.model, device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32})
    model.predict(pairs, batch_size=32, show_progress_bar=False)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        model.predict(pairs, batch_size=32, show_progress_bar=False, convert_to_numpy=True)
        print(f"{(time.perf_counter() - start) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    main()
