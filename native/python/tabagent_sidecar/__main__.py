"""python -m tabagent_sidecar --model DIR --task text-generation|embeddings (--socket PATH | --port N) [--device auto] [--dtype auto]

The key every request must carry comes from the environment (TABAGENT_SIDECAR_KEY), never from the command line."""
import argparse
import os
import sys
import threading

# Offline by design: the daemon downloads; nothing here may reach a hub. Set before transformers is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def log(message):
    sys.stderr.write(f"[sidecar] {message}\n")
    sys.stderr.flush()


def main(argv=None):
    p = argparse.ArgumentParser(prog="tabagent_sidecar")
    p.add_argument("--model", required=True, help="a transformers model folder")
    p.add_argument("--id", default=None, help="the id the daemon serves it under")
    p.add_argument("--task", required=True, choices=["text-generation", "embeddings"])
    listen = p.add_mutually_exclusive_group(required=True)
    listen.add_argument("--socket", default=None, help="listen on this Unix socket (its directory should be private)")
    listen.add_argument("--port", type=int, default=None, help="listen on 127.0.0.1:PORT (where there are no Unix sockets)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--chat-template", default=None, help="a Jinja chat template used instead of the tokenizer's")
    a = p.parse_args(argv)

    key = os.environ.pop("TABAGENT_SIDECAR_KEY", "")  # popped: not inherited by anything this process starts
    if len(key) < 32:
        log("cannot start: TABAGENT_SIDECAR_KEY must hold the key (at least 32 characters) that requests will carry")
        sys.exit(2)

    from . import server as http

    # The Host header the daemon sends: its URL names no real host on a socket, and the address itself on TCP.
    if a.socket is not None:
        if not hasattr(http, "UnixServer"):
            log("cannot start: this platform has no Unix sockets; use --port")
            sys.exit(2)
        server_class, address, host, where = http.UnixServer, a.socket, "localhost", f"unix:{a.socket}"
    else:
        server_class, address, host = http.Server, ("127.0.0.1", a.port), f"127.0.0.1:{a.port}"
        where = host
    state = http.State(a.id or os.path.basename(os.path.normpath(a.model)), a.task, log, key, host)
    # Listen first, so the daemon's health checks see "loading" (503) rather than a refused connection.
    server = server_class(address, http.make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"listening on {where}, loading {a.model}")

    try:
        import torch

        from .device import pick_device, pick_dtype
        from .folder import RefusedModel

        if a.threads > 0:
            torch.set_num_threads(a.threads)
        device = pick_device(a.device)
        dtype = pick_dtype(a.dtype, device)
        if a.task == "text-generation":
            from .generator import CausalLM

            state.engine = CausalLM(a.model, device, dtype, a.trust_remote_code, log, a.chat_template)
        else:
            from .embedder import Embedder

            state.engine = Embedder(a.model, device, dtype, a.trust_remote_code, log)
    except Exception as err:  # noqa: BLE001 - every load failure ends the process with its reason on stderr
        refused = type(err).__name__ == "RefusedModel"
        log(f"cannot load the model: {err}" if refused else f"cannot load the model: {type(err).__name__}: {err}")
        sys.stderr.flush()
        os._exit(3)
    log("ready")
    threading.Event().wait()


if __name__ == "__main__":
    main()
