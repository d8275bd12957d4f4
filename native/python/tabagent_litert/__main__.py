"""python -m tabagent_litert --model FILE (--socket PATH | --port N) [--backend cpu|gpu] [--threads N] [--cache-dir DIR]

A .litertlm or LLM .task bundle served by LiteRT-LM. The key every request must carry comes from the environment
(TABAGENT_SIDECAR_KEY), never from the command line."""
import argparse

from tabagent_sidecar.serve import add_listen_arguments, log, run


def main(argv=None):
    p = argparse.ArgumentParser(prog="tabagent_litert")
    p.add_argument("--model", required=True, help="a .litertlm or .task file")
    add_listen_arguments(p)
    p.add_argument("--backend", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = the runtime's default")
    p.add_argument("--cache-dir", required=True, help="where the runtime keeps its weight caches (never the model's folder)")
    p.add_argument("--chat-template", default=None, help="a Jinja chat template used instead of the bundle's")
    a = p.parse_args(argv)

    def load():
        import litert_lm

        from .engine import LiteRtLM

        litert_lm.set_min_log_severity(litert_lm.LogSeverity.ERROR)
        return LiteRtLM(a.model, a.backend, a.threads, a.cache_dir, a.chat_template, log)

    run(a, "text-generation", load, a.model)


if __name__ == "__main__":
    main()
