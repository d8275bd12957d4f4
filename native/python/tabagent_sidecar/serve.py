"""What every TabAgent Python engine does around its model: take the key from the environment, listen where the
daemon says (--socket PATH, or --port N where there are no Unix sockets), answer /health with "loading" (503) while
the model loads, then serve it.

A second engine is a package with a __main__ that parses its own arguments (after add_listen_arguments) and calls
run(args, task, load): `load()` returns the engine object that server.py drives (see its docstring). The daemon's
side is one subclass of PythonSidecarBackend (src/backends/python)."""
import os
import sys
import threading


def log(message):
    """One line on stderr. The daemon logs `[sidecar] ...` lines at info (`error`/`cannot` at warn), the rest at debug."""
    sys.stderr.write(f"[sidecar] {message}\n")
    sys.stderr.flush()


def add_listen_arguments(parser):
    parser.add_argument("--id", default=None, help="the id the daemon serves the model under")
    listen = parser.add_mutually_exclusive_group(required=True)
    listen.add_argument("--socket", default=None, help="listen on this Unix socket (its directory should be private)")
    listen.add_argument("--port", type=int, default=None, help="listen on 127.0.0.1:PORT (where there are no Unix sockets)")


def run(args, task, load, model_path):
    """Listens, loads (`load()` returns the engine), serves until killed. A load failure ends the process with its
    reason on stderr (exit 3); a missing key or socket support ends it with exit 2."""
    key = os.environ.pop("TABAGENT_SIDECAR_KEY", "")  # popped: not inherited by anything this process starts
    if len(key) < 32:
        log("cannot start: TABAGENT_SIDECAR_KEY must hold the key (at least 32 characters) that requests will carry")
        sys.exit(2)

    from . import server as http

    # The Host header the daemon sends: its URL names no real host on a socket, and the address itself on TCP.
    if args.socket is not None:
        if not hasattr(http, "UnixServer"):
            log("cannot start: this platform has no Unix sockets; use --port")
            sys.exit(2)
        server_class, address, host, where = http.UnixServer, args.socket, "localhost", f"unix:{args.socket}"
    else:
        server_class, address, host = http.Server, ("127.0.0.1", args.port), f"127.0.0.1:{args.port}"
        where = host
    state = http.State(args.id or os.path.basename(os.path.normpath(model_path)), task, log, key, host)
    # Listen first, so the daemon's health checks see "loading" (503) rather than a refused connection.
    server = server_class(address, http.make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"listening on {where}, loading {model_path}")

    try:
        state.engine = load()
    except Exception as err:  # noqa: BLE001 - every load failure ends the process with its reason on stderr
        refused = type(err).__name__ == "RefusedModel"
        log(f"cannot load the model: {err}" if refused else f"cannot load the model: {type(err).__name__}: {err}")
        sys.stderr.flush()
        os._exit(3)
    log("ready")
    threading.Event().wait()
