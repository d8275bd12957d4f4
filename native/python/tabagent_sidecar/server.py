"""The sidecar's HTTP surface: a subset of the OpenAI API, spoken to one client (the daemon).

It listens on a Unix socket in a directory only the daemon's user can enter (or, where there are no Unix sockets,
on 127.0.0.1), and answers only the daemon: every request must carry the key the daemon gave this start (in
TABAGENT_SIDECAR_KEY), the Host header the daemon sends, and no Origin header (a browser's request, say through
DNS rebinding). Anything else gets 401 or 403 with a JSON error, and the connection is closed.

The engine (state.engine, set once loaded; any Python engine, see serve.py) is duck-typed by task:
  text-generation: chat_ids(messages) and prompt_ids(prompt) -> token ids; check_length(ids, sampling) raises
    ProtocolError when the prompt does not fit; run(ids, sampling, cancelled) yields ("token", id), ("text", piece)
    and last ("finish", reason, prompt_tokens, completion_tokens), and stops once `cancelled` is set. Tools and
    JSON output (tools, tool history, response_format) need two more: chat_ids(messages, tools) and
    constrain(req) -> a structured.Constraint or None, which run(ids, sampling, cancelled, constraint) obeys; an
    engine without `constrain` answers such a request with a 400. Tool calls are parsed here (structured.ToolCalls).
    `n` > 1 and logprobs need generate(ids, sampling, cancelled, n, logprobs, constraints, halted), whose events
    carry their choice's index (see generator.CausalLM.generate); an engine with run() only refuses them (400).
  embeddings: embed(inputs: a list of texts or of token-id lists, with .flat and .param) -> (vectors, prompt_tokens).

One thread per request (ThreadingHTTPServer). A CausalLM decodes every request in one batch on its own decode
thread (batching.py); the request's thread turns that thread's tokens into text and writes each piece as one SSE
event in its own HTTP chunk (with TCP_NODELAY set on TCP); a failed write means the daemon hung up, which drops the
request's rows from the batch before the next step."""
import hmac
import json
import socket
import socketserver
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .protocol import ProtocolError, parse_chat, parse_completion, parse_embeddings
from .structured import ToolCalls, with_tool_calls

MAX_BODY = 64 * 1024 * 1024
REFUSED_BODY_DRAIN = 64 * 1024


class State:
    def __init__(self, model_id, task, log, key, host):
        self.model_id = model_id
        self.task = task
        self.log = log
        self.key = key.encode()  # what the Authorization header must carry (as a bearer token)
        self.host = host  # the Host header the daemon sends
        self.engine = None  # set once loaded
        self.active = 0  # generations running; /health shows it, so a cancelled one can be seen to end
        self.lock = threading.Lock()
        self.created = int(time.time())


class ClientGone(Exception):
    pass


class ChunkWriter:
    """Writes a streamed response as HTTP chunks, one per event, straight from the generating thread. (A writer
    thread was measured slower: handing each event over costs more GIL switches than the write itself.)"""

    def __init__(self, wfile):
        self.wfile = wfile
        self.gone = False

    def put(self, data):
        if self.gone:
            raise ClientGone()
        self._write(b"%x\r\n%s\r\n" % (len(data), data))
        if self.gone:
            raise ClientGone()

    def close(self):
        """Ends the chunked body (unless the client is gone)."""
        self._write(b"0\r\n\r\n")

    def _write(self, data):
        if self.gone:
            return
        try:
            self.wfile.write(data)
        except OSError:
            self.gone = True


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tabagent-sidecar"

        def setup(self):
            super().setup()
            if self.connection.family in (socket.AF_INET, socket.AF_INET6):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def address_string(self):  # a Unix socket's peer address is a string (often empty), not (host, port)
            return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

        def log_message(self, fmt, *args):  # the daemon logs requests; keep stderr for what matters
            pass

        def refused(self):
            """Answers 403/401 and returns True unless the request comes from the daemon; the connection is closed
            after the answer. A small body is read first (closing on unread data would reset the connection before
            the client reads the answer); a larger one is left unread."""
            if self.headers.get("Origin") is not None:
                err = ProtocolError("cross-origin requests are refused", status=403, type_="permission_error", code="origin_refused")
            elif self.headers.get("Host") != state.host:
                err = ProtocolError("requests for another host are refused", status=403, type_="permission_error", code="host_refused")
            else:
                auth = self.headers.get("Authorization") or ""
                token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
                if hmac.compare_digest(token.encode(), state.key):
                    return False
                err = ProtocolError("a valid key is required", status=401, type_="authentication_error", code="invalid_api_key")
            self.close_connection = True
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            if 0 < length <= REFUSED_BODY_DRAIN:
                self.rfile.read(length)
            self.send_error_envelope(err)
            return True

        # ---- plumbing

        def send_json(self, status, obj):
            data = json.dumps(obj, separators=(",", ":")).encode()
            self.send_response(status)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_error_envelope(self, err):
            self.send_json(err.status, err.envelope())

        def read_body(self):
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise ProtocolError("a Content-Length header is required", status=411)
            if length < 0 or length > MAX_BODY:
                raise ProtocolError(f"the body must be at most {MAX_BODY} bytes", status=413)
            raw = self.rfile.read(length)
            try:
                return json.loads(raw)
            except ValueError as err:
                raise ProtocolError(f"the body is not valid JSON: {err}")

        def start_stream(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def event(self, obj):
            self.writer.put(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()) + b"\n\n")

        # ---- routes

        def do_OPTIONS(self):  # a CORS preflight: never allowed (no Access-Control-* headers, ever)
            if not self.refused():
                self.send_error_envelope(ProtocolError(f"no route OPTIONS {self.path}", status=405, type_="invalid_request_error"))

        def do_GET(self):
            if self.refused():
                return
            if self.path == "/health":
                if state.engine is None:
                    self.send_json(503, {"status": "loading"})
                else:
                    health = {"status": "ok", "model": state.model_id, "task": state.task, "active": state.active}
                    batcher = getattr(state.engine, "batcher", None)
                    if batcher is not None:  # rows decoding now, the most at once so far, decode steps run
                        health["batch"] = batcher.stats()
                    self.send_json(200, health)
            elif self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": state.model_id, "object": "model", "created": state.created, "owned_by": "tabagent"}]})
            else:
                self.send_error_envelope(ProtocolError(f"no route GET {self.path}", status=404, type_="not_found_error"))

        def do_POST(self):
            if self.refused():
                return
            try:
                routes = {"/v1/chat/completions": self.chat, "/v1/completions": self.completions, "/v1/embeddings": self.embeddings, "/v1/rerank": self.rerank}
                route = routes.get(self.path)
                if route is None:
                    raise ProtocolError(f"no route POST {self.path}", status=404, type_="not_found_error")
                body = self.read_body()
                if state.engine is None:
                    raise ProtocolError("the model is still loading", status=503, type_="server_error", code="model_loading")
                route(body)
            except ProtocolError as err:
                self.send_error_envelope(err)
            except ClientGone:
                self.close_connection = True
            except Exception as err:  # the request fails; the sidecar keeps serving
                state.log(f"error: {err}\n{traceback.format_exc()}")
                self.send_error_envelope(ProtocolError(f"the sidecar failed: {type(err).__name__}: {err}", status=500, type_="server_error"))

        def chat(self, body):
            if state.task != "text-generation":
                raise ProtocolError("this model serves embeddings, not chat", "model", code="wrong_task")
            req = parse_chat(body)
            engine = state.engine
            structured = bool(req.tools or req.response_format or any(m["role"] == "tool" or m.get("tool_calls") for m in req.messages))
            if not structured:
                self.generate(req, engine.chat_ids(req.messages), "chat.completion")
                return
            if not hasattr(engine, "constrain"):
                raise ProtocolError("this engine has no tools or JSON output", "tools" if req.tools else "response_format")
            ids = engine.chat_ids(req.messages, req.tools)
            # Each choice its own matcher (a grammar's state is the text so far).
            self.generate(req, ids, "chat.completion", [engine.constrain(req) for _ in range(req.n)])

        def completions(self, body):
            if state.task != "text-generation":
                raise ProtocolError("this model serves embeddings, not completions", "model", code="wrong_task")
            req = parse_completion(body)
            self.generate(req, state.engine.prompt_ids(req.prompt), "text_completion")

        def embeddings(self, body):
            if state.task != "embeddings":
                raise ProtocolError("this model generates text; it has no embeddings here", "model", code="wrong_task")
            vectors, tokens = state.engine.embed(parse_embeddings(body))
            self.send_json(200, {
                "object": "list",
                "model": state.model_id,
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })

        def rerank(self, body):
            if state.task != "rerank":
                raise ProtocolError(f"this model's task is {state.task}, not rerank", "model", code="wrong_task")
            from .reranker import rerank_response

            self.send_json(200, rerank_response(state, body))

        def events_of(self, engine, req, ids, cancelled, constraints, halted):
            """The engine's events, tagged with their choice's index: generate() where the engine has it (n choices,
            logprobs), else run() for one choice without logprobs."""
            if hasattr(engine, "generate"):
                return engine.generate(ids, req.sampling, cancelled, n=req.n, logprobs=req.logprobs, constraints=constraints, halted=halted)
            if req.n > 1:
                raise ProtocolError("this engine generates one choice per request", "n")
            if req.logprobs is not None:
                raise ProtocolError("this engine has no logprobs", "logprobs")
            events = engine.run(ids, req.sampling, cancelled) if constraints is None else engine.run(ids, req.sampling, cancelled, constraints[0])
            return ((ev[0], 0, *ev[1:]) for ev in events)

        def generate(self, req, ids, kind, constraints=None):
            engine = state.engine
            engine.check_length(ids, req.sampling)  # a 400 before any stream starts
            cancelled = threading.Event()
            halted = set()  # choices ended early (one tool call, parallel_tool_calls false)
            events = self.events_of(engine, req, ids, cancelled, constraints, halted)
            with state.lock:
                state.active += 1
            try:
                mode = getattr(req, "tool_mode", "none")
                if mode != "none":
                    events = with_tool_calls(events, lambda: ToolCalls(mode, req.tools, first_only=not req.parallel_tool_calls), len(ids), halted)
                self.run_generation(req, ids, kind, events, cancelled)
            finally:
                with state.lock:
                    state.active -= 1

        @staticmethod
        def logprobs_json(entries, chat, offset):
            """Logprob entries in OpenAI's shape: chat's `content` list, or the legacy completions arrays (each
            `top_logprobs` object holds the alternatives and the chosen token; `text_offset` counts from `offset`)."""
            if chat:
                return {"content": [{"token": e["token"], "logprob": e["logprob"], "bytes": e["bytes"],
                                     "top_logprobs": [{"token": t["token"], "logprob": t["logprob"], "bytes": t["bytes"]} for t in e["top"]]}
                                    for e in entries], "refusal": None}
            offsets = []
            for e in entries:
                offsets.append(offset)
                offset += len(e["token"])
            tops = []
            for e in entries:
                top = {}
                for t in (*e["top"], e):
                    top[t["token"]] = max(top.get(t["token"], t["logprob"]), t["logprob"])
                tops.append(top)
            return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries], "top_logprobs": tops, "text_offset": offsets}

        def run_generation(self, req, ids, kind, events, cancelled):
            rid = f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}"
            created = int(time.time())
            chat = kind == "chat.completion"
            n = req.n
            if not req.stream:
                text = [[] for _ in range(n)]
                tokens = [[] for _ in range(n)]
                calls = [[] for _ in range(n)]
                lps = [[] for _ in range(n)]
                finish = [None] * n
                for ev in events:
                    k, i = ev[0], ev[1]
                    if k == "text":
                        text[i].append(ev[2])
                    elif k == "token":
                        tokens[i].append(ev[2])
                    elif k == "logprobs":
                        lps[i].extend(ev[2])
                    elif k == "call":
                        calls[i].append({"id": ev[3], "type": "function", "function": {"name": ev[4], "arguments": ev[5]}})
                    elif k == "args":
                        calls[i][ev[2]]["function"]["arguments"] += ev[3]
                    else:
                        finish[i] = ev
                if any(f is None for f in finish):
                    raise RuntimeError("the generation ended without finishing every choice")
                choices = []
                extra = {}
                for i in range(n):
                    content = "".join(text[i])
                    choice = {"index": i, "finish_reason": finish[i][2]}
                    message = {"role": "assistant", "content": content}
                    if calls[i]:
                        message = {"role": "assistant", "content": content or None, "tool_calls": calls[i]}
                    choice.update({"message": message} if chat else {"text": content})
                    choice["logprobs"] = None if req.logprobs is None else self.logprobs_json(lps[i], chat, 0)
                    if req.return_token_ids:  # vLLM's layout
                        choice["token_ids"] = tokens[i]
                        (extra if chat else choice)["prompt_token_ids"] = list(ids)
                    choices.append(choice)
                completion = sum(f[4] for f in finish)
                usage = {"prompt_tokens": len(ids), "completion_tokens": completion, "total_tokens": len(ids) + completion}
                self.send_json(200, {"id": rid, "object": kind, "created": created, "model": state.model_id, **extra, "choices": choices, "usage": usage})
                return
            head = b'{"id":"%s","object":"%s.chunk","created":%d,"model":%s,"choices":[' % (
                rid.encode(), kind.encode() if chat else b"text_completion", created, json.dumps(state.model_id).encode())
            self.start_stream()
            self.writer = ChunkWriter(self.wfile)
            want_ids = req.return_token_ids
            pending = [[] for _ in range(n)]  # ids wait for the next event of their choice: their text, or the finish
            pending_lp = [[] for _ in range(n)]  # so do logprob entries
            offsets = [0] * n  # legacy text_offset
            prompt_ids = [list(ids) if want_ids else None for _ in range(n)]  # chat: on the response's first event only
            finished = 0
            completion = 0

            def emit(i, content, reason=None):
                """One choice's event: chat `content` is its delta, a completion's its text."""
                if not want_ids and not pending_lp[i]:
                    if chat:
                        body = b'{"index":%d,"delta":%s,"finish_reason":%s}]}' % (i, json.dumps(content, separators=(",", ":")).encode(), json.dumps(reason).encode())
                    else:
                        body = b'{"index":%d,"text":%s,"finish_reason":%s}]}' % (i, json.dumps(content).encode(), json.dumps(reason).encode())
                    self.event(head + body)
                    return
                choice = {"index": i, "finish_reason": reason}
                choice.update({"delta": content} if chat else {"text": content})
                obj = {"id": rid, "object": f"{kind}.chunk" if chat else "text_completion", "created": created, "model": state.model_id, "choices": [choice]}
                if pending_lp[i]:
                    choice["logprobs"] = self.logprobs_json(pending_lp[i], chat, offsets[i])
                    offsets[i] += sum(len(e["token"]) for e in pending_lp[i])
                    pending_lp[i] = []
                if want_ids:  # vLLM's layout
                    choice["token_ids"] = pending[i]
                    pending[i] = []
                    if prompt_ids[i] is not None:
                        (obj if chat else choice)["prompt_token_ids"] = prompt_ids[i]
                        if chat:
                            prompt_ids[:] = [None] * n
                        else:
                            prompt_ids[i] = None
                self.event(obj)

            try:
                if chat:
                    for i in range(n):
                        self.event(head + b'{"index":%d,"delta":{"role":"assistant","content":""},"finish_reason":null}]}' % i)
                for ev in events:
                    k, i = ev[0], ev[1]
                    if k == "token":
                        if want_ids:
                            pending[i].append(ev[2])
                    elif k == "logprobs":
                        pending_lp[i].extend(ev[2])
                    elif k in ("call", "args"):
                        if k == "call":
                            _, _, c, cid, name, args = ev
                            deltas = [{"index": c, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}]
                            if args:
                                deltas.append({"index": c, "function": {"arguments": args}})
                        else:
                            deltas = [{"index": ev[2], "function": {"arguments": ev[3]}}]
                        for d in deltas:
                            emit(i, {"tool_calls": [d]})
                    elif k == "text":
                        emit(i, {"content": ev[2]} if chat else ev[2])
                    else:
                        _, _, reason, _, produced = ev
                        emit(i, {} if chat else "", reason)
                        finished += 1
                        completion += produced
                if finished == n:
                    usage = {"prompt_tokens": len(ids), "completion_tokens": completion, "total_tokens": len(ids) + completion}
                    self.event(head + b"]," + json.dumps({"usage": usage})[1:].encode())
                self.event(b"[DONE]")
            except ClientGone:
                cancelled.set()
                events.close()
                raise
            except Exception as err:
                cancelled.set()
                state.log(f"error mid-stream: {err}\n{traceback.format_exc()}")
                try:
                    self.event({"error": {"message": f"the sidecar failed mid-stream: {type(err).__name__}: {err}", "type": "server_error"}})
                except ClientGone:
                    pass
                self.close_connection = True
            finally:
                self.writer.close()
                if self.writer.gone:
                    self.close_connection = True

    return Handler


class Server(ThreadingHTTPServer):
    """TCP on 127.0.0.1: only where there are no Unix sockets (Windows)."""
    daemon_threads = True
    allow_reuse_address = False
    # socketserver's default backlog is 5: a sixth simultaneous connect to a Unix socket fails at once (EAGAIN).
    request_queue_size = 128


if hasattr(socket, "AF_UNIX"):

    class UnixServer(Server):
        """The same server on a Unix socket (the path must not exist yet; its directory is the daemon's, mode 0700)."""
        address_family = socket.AF_UNIX

        def server_bind(self):
            # HTTPServer.server_bind reads (host, port) from the address: a socket path has neither.
            socketserver.TCPServer.server_bind(self)
            self.server_name = "localhost"
            self.server_port = 0
