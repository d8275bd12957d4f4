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
  embeddings: embed(inputs: a list of texts or of token-id lists, with .flat and .param) -> (vectors, prompt_tokens).

One thread per request (ThreadingHTTPServer). A streamed generation writes each piece as one SSE event in its own
HTTP chunk (with TCP_NODELAY set on TCP); a failed write means the daemon hung up, which cancels the generation
before its next token."""
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
                    self.send_json(200, {"status": "ok", "model": state.model_id, "task": state.task, "active": state.active})
            elif self.path == "/v1/models":
                self.send_json(200, {"object": "list", "data": [{"id": state.model_id, "object": "model", "created": state.created, "owned_by": "tabagent"}]})
            else:
                self.send_error_envelope(ProtocolError(f"no route GET {self.path}", status=404, type_="not_found_error"))

        def do_POST(self):
            if self.refused():
                return
            try:
                routes = {"/v1/chat/completions": self.chat, "/v1/completions": self.completions, "/v1/embeddings": self.embeddings}
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
            self.generate(req, ids, "chat.completion", engine.constrain(req))

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

        def generate(self, req, ids, kind, constraint=None):
            engine = state.engine
            engine.check_length(ids, req.sampling)  # a 400 before any stream starts
            cancelled = threading.Event()
            with state.lock:
                state.active += 1
            try:
                if constraint is None:
                    events = engine.run(ids, req.sampling, cancelled)
                else:
                    events = engine.run(ids, req.sampling, cancelled, constraint)
                mode = getattr(req, "tool_mode", "none")
                if mode != "none":
                    events = with_tool_calls(events, ToolCalls(mode, req.tools, first_only=not req.parallel_tool_calls), len(ids))
                self.run_generation(req, ids, kind, events, cancelled)
            finally:
                with state.lock:
                    state.active -= 1

        @staticmethod
        def ids_event(rid, kind, created, chat, content, reason, token_ids, prompt_ids):
            """A streamed event with return_token_ids fields (vLLM's layout); the plain path stays pre-serialized."""
            choice = {"index": 0, "finish_reason": reason, "token_ids": token_ids}
            choice.update({"delta": content} if chat else {"text": content})
            obj = {"id": rid, "object": f"{kind}.chunk" if chat else "text_completion", "created": created, "model": state.model_id, "choices": [choice]}
            if prompt_ids is not None:
                (obj if chat else choice)["prompt_token_ids"] = prompt_ids
            return obj

        def run_generation(self, req, ids, kind, events, cancelled):
            rid = f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}"
            created = int(time.time())
            chat = kind == "chat.completion"
            if not req.stream:
                text, tokens, finish, calls = [], [], None, []
                for ev in events:
                    if ev[0] == "text":
                        text.append(ev[1])
                    elif ev[0] == "token":
                        tokens.append(ev[1])
                    elif ev[0] == "call":
                        calls.append({"id": ev[2], "type": "function", "function": {"name": ev[3], "arguments": ev[4]}})
                    elif ev[0] == "args":
                        calls[ev[1]]["function"]["arguments"] += ev[2]
                    else:
                        finish = ev
                content = "".join(text)
                choice = {"index": 0, "finish_reason": finish[1]}
                message = {"role": "assistant", "content": content}
                if calls:
                    message = {"role": "assistant", "content": content or None, "tool_calls": calls}
                choice.update({"message": message} if chat else {"text": content})
                extra = {}
                if req.return_token_ids:  # vLLM's layout
                    choice["token_ids"] = tokens
                    (extra if chat else choice)["prompt_token_ids"] = list(ids)
                usage = {"prompt_tokens": finish[2], "completion_tokens": finish[3], "total_tokens": finish[2] + finish[3]}
                self.send_json(200, {"id": rid, "object": kind, "created": created, "model": state.model_id, **extra, "choices": [choice], "usage": usage})
                return
            head = b'{"id":"%s","object":"%s.chunk","created":%d,"model":%s,"choices":[' % (
                rid.encode(), kind.encode() if chat else b"text_completion", created, json.dumps(state.model_id).encode())
            self.start_stream()
            self.writer = ChunkWriter(self.wfile)
            try:
                if chat:
                    self.event(head + b'{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}')
                want_ids = req.return_token_ids
                pending = []  # ids wait for the next event: the text they became, or the finish
                prompt_ids = list(ids) if want_ids else None
                for ev in events:
                    kind_ = ev[0]
                    if kind_ == "token":
                        if want_ids:
                            pending.append(ev[1])
                    elif kind_ in ("call", "args"):
                        if kind_ == "call":
                            _, i, cid, name, args = ev
                            deltas = [{"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}]
                            if args:
                                deltas.append({"index": i, "function": {"arguments": args}})
                        else:
                            deltas = [{"index": ev[1], "function": {"arguments": ev[2]}}]
                        for d in deltas:
                            if want_ids:
                                self.event(self.ids_event(rid, kind, created, chat, {"tool_calls": [d]}, None, pending, prompt_ids))
                                pending, prompt_ids = [], None
                            else:
                                self.event(head + b'{"index":0,"delta":%s,"finish_reason":null}]}' % json.dumps({"tool_calls": [d]}, separators=(",", ":")).encode())
                    elif kind_ == "text":
                        if want_ids:
                            self.event(self.ids_event(rid, kind, created, chat, {"content": ev[1]} if chat else ev[1], None, pending, prompt_ids))
                            pending, prompt_ids = [], None
                            continue
                        piece = json.dumps(ev[1]).encode()
                        body = b'{"index":0,"delta":{"content":%s},"finish_reason":null}]}' % piece if chat else b'{"index":0,"text":%s,"finish_reason":null}]}' % piece
                        self.event(head + body)
                    else:
                        _, reason, prompt, completion = ev
                        if want_ids:
                            self.event(self.ids_event(rid, kind, created, chat, {} if chat else "", reason, pending, prompt_ids))
                        else:
                            self.event(head + (b'{"index":0,"delta":{},"finish_reason":"%s"}]}' if chat else b'{"index":0,"text":"","finish_reason":"%s"}]}') % reason.encode())
                        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
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


if hasattr(socket, "AF_UNIX"):

    class UnixServer(Server):
        """The same server on a Unix socket (the path must not exist yet; its directory is the daemon's, mode 0700)."""
        address_family = socket.AF_UNIX

        def server_bind(self):
            # HTTPServer.server_bind reads (host, port) from the address: a socket path has neither.
            socketserver.TCPServer.server_bind(self)
            self.server_name = "localhost"
            self.server_port = 0
