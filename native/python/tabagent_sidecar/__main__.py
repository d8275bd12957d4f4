"""python -m tabagent_sidecar --model DIR --task text-generation|embeddings|rerank (--socket PATH | --port N) [--device auto] [--dtype auto]

The key every request must carry comes from the environment (TABAGENT_SIDECAR_KEY), never from the command line."""
import argparse
import os

# Offline by design: the daemon downloads; nothing here may reach a hub. Set before transformers is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from .serve import add_listen_arguments, log, run  # noqa: E402 - after the environment above


def main(argv=None):
    p = argparse.ArgumentParser(prog="tabagent_sidecar")
    p.add_argument("--model", required=True, help="a transformers model folder")
    p.add_argument("--task", required=True, choices=["text-generation", "embeddings", "rerank"])
    add_listen_arguments(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--chat-template", default=None, help="a Jinja chat template used instead of the tokenizer's")
    a = p.parse_args(argv)

    def load():
        import torch

        from .device import pick_device, pick_dtype

        if a.threads > 0:
            torch.set_num_threads(a.threads)
        device = pick_device(a.device)
        dtype = pick_dtype(a.dtype, device)
        if a.task == "text-generation":
            from .generator import CausalLM

            return CausalLM(a.model, device, dtype, a.trust_remote_code, log, a.chat_template)
        if a.task == "rerank":
            from .reranker import Reranker

            return Reranker(a.model, device, dtype, a.trust_remote_code, log)
        from .embedder import Embedder

        return Embedder(a.model, device, dtype, a.trust_remote_code, log)

    run(a, a.task, load, a.model)


if __name__ == "__main__":
    main()
