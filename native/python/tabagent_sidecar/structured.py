"""Tools and JSON output: constrained decoding with llguidance (a token mask per step from a grammar), the Hermes
tool-call convention for templates that do not render tools, and turning generated text into tool calls.

What is constrained:
  response_format json_schema -> the schema; json_object -> any JSON object.
  tool_choice required / a named function -> one call's JSON, {"name": <const>, "arguments": <its parameters>}
    (anyOf over the tools for required), returned as a tool call.
  tool_choice auto -> free text; `<tool_call>{...}</tool_call>` blocks naming a declared tool become calls. With a
    response_format too, the answer is either that JSON or tool-call blocks (a grammar with both branches).

JSON is generated compact (no whitespace between tokens of the structure): a small model cannot loop on newlines.
A schema keyword the grammar cannot enforce is refused (400, by path) instead of being dropped."""
import json
import re
import secrets
import threading
from collections import OrderedDict

from .protocol import ProtocolError

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

# Keywords llguidance turns into constraints (its JSON converter refuses the rest of the JSON Schema vocabulary
# itself, but it ignores keywords it does not know, so a typo or an OpenAPI-only keyword would be dropped silently:
# they are refused here, by path).
SCHEMA_KEYS = {"type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
               "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
               "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
               "$defs", "definitions"}
# Annotations describe and never constrain, so a grammar may leave them out.
ANNOTATIONS = {"title", "description", "$schema", "$id", "$anchor", "$comment", "examples", "default", "deprecated",
               "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "discriminator"}
# Values that are schemas, maps of schemas, lists of schemas.
SUBSCHEMA = {"items", "additionalProperties"}
SCHEMA_MAPS = {"properties", "$defs", "definitions"}
SCHEMA_LISTS = {"prefixItems", "anyOf", "oneOf", "allOf"}
MAX_SCHEMA_BYTES = 64 * 1024
CACHE_SIZE = 64


def invalid_schema(message, param):
    return ProtocolError(message, param, code="invalid_schema")


def check_schema(node, path, param):
    """Refuses (400, `param`, message naming the path) a keyword that no grammar here enforces."""
    if isinstance(node, bool):
        if not node:
            raise invalid_schema(f"{path}: the schema `false` matches nothing", param)
        return
    if not isinstance(node, dict):
        raise invalid_schema(f"{path} must be a JSON Schema object", param)
    for key, value in node.items():
        at = f"{path}.{key}"
        if key in ANNOTATIONS or (key.startswith("x-") and key != "x-guidance"):  # x-guidance: llguidance's options, ours to set
            continue
        if key not in SCHEMA_KEYS:
            raise invalid_schema(f"{at}: the keyword '{key}' cannot be enforced by the transformers engine's grammar (llguidance); remove it", param)
        if key in SUBSCHEMA and not isinstance(value, bool):
            if key == "items" and isinstance(value, list):
                raise invalid_schema(f"{at}: items as a list is draft-07's tuple form; use prefixItems", param)
            check_schema(value, at, param)
        elif key in SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise invalid_schema(f"{at} must be an object of schemas", param)
            for k, v in value.items():
                check_schema(v, f"{at}.{k}", param)
        elif key in SCHEMA_LISTS:
            if not isinstance(value, list):
                raise invalid_schema(f"{at} must be a list of schemas", param)
            for i, v in enumerate(value):
                check_schema(v, f"{at}[{i}]", param)
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise invalid_schema(f"{at}: only references inside the schema (#/...) are supported", param)


def compact(schema):
    """The schema as generated here: closed objects (see `closed`), and llguidance's option for JSON without
    whitespace between its tokens."""
    if isinstance(schema, bool):
        schema = {}
    return {**closed(schema), "x-guidance": {"whitespace_flexible": False}}


def closed(node, in_all_of=False):
    """An object schema that lists properties and says nothing of others gets `additionalProperties: false`: the
    output holds only the declared properties, which still validates against the schema as sent (a model left free
    to invent keys can write them forever). Not inside `allOf`, whose branches are intersected."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: closed(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = closed(value)
        elif key in ("prefixItems", "anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [closed(v, key == "allOf") for v in value]
        else:
            out[key] = value
    if "properties" in node and "additionalProperties" not in node and "allOf" not in node and not in_all_of:
        out["additionalProperties"] = False
    return out


def call_schema(tools):
    """One call's JSON: {"name": <const>, "arguments": <parameters>}, name first (llguidance keeps the order)."""
    def one(t):
        return {"type": "object", "properties": {"name": {"const": t["name"]}, "arguments": t["parameters"]},
                "required": ["name", "arguments"], "additionalProperties": False}
    return one(tools[0]) if len(tools) == 1 else {"anyOf": [one(t) for t in tools]}


class Grammars:
    """Compiles grammars for one tokenizer, caching a fresh matcher per grammar (a request gets a deep copy)."""

    def __init__(self, tokenizer, vocab_size, eos):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos = sorted(eos)
        self._lltok = None
        self.cache = OrderedDict()
        self.lock = threading.Lock()

    @property
    def lltok(self):
        if self._lltok is None:
            import llguidance.hf

            try:
                self._lltok = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.vocab_size, eos_token=self.eos or None)
            except Exception as err:  # a slow (Python) tokenizer: llguidance reads fast tokenizers only
                raise ProtocolError(f"this model's tokenizer cannot drive constrained decoding (llguidance): {err}", "response_format", code="unsupported_tokenizer") from err
        return self._lltok

    def matcher(self, grammar, param):
        import llguidance

        with self.lock:
            template = self.cache.get(grammar)
            if template is not None:
                self.cache.move_to_end(grammar)
                return template.deep_copy()
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, self.lltok)
        if failed:
            raise invalid_schema(f"the schema cannot be compiled into a grammar: {messages[0] if messages else 'unknown error'}", param)
        template = llguidance.LLMatcher(self.lltok, grammar, log_level=0)
        if template.is_error():
            raise invalid_schema(f"the schema cannot be compiled into a grammar: {template.get_error()}", param)
        with self.lock:
            self.cache[grammar] = template
            while len(self.cache) > CACHE_SIZE:
                self.cache.popitem(last=False)
        return template.deep_copy()

    def constraint(self, matcher):
        return Constraint(matcher, self.lltok.vocab_size)

    def for_request(self, req):
        """The request's constraint (None when its output is free), or a 400 for a schema that cannot be enforced."""
        import llguidance

        mode = req.tool_mode
        fmt = req.response_format
        answer = None
        if fmt is not None:
            schema = {"type": "object"} if fmt["type"] == "json_object" else fmt["schema"]
            if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
                raise ProtocolError(f"response_format's schema is larger than {MAX_SCHEMA_BYTES // 1024} KiB", "response_format", code="schema_too_large")
            check_schema(schema, "response_format.json_schema.schema", "response_format")
            answer = compact(schema)
        if mode == "forced":
            tools = req.forced_tools()
            for i, t in enumerate(req.tools):
                if t in tools:
                    check_schema(t["parameters"], f"tools[{i}].function.parameters", "tools")
            return self.constraint(self.matcher(llguidance.LLMatcher.grammar_from_json_schema(compact(call_schema(tools))), "tools"))
        if answer is None:
            return None
        if mode == "auto":
            # Either the JSON answer or tool-call blocks: the model still chooses between them.
            for i, t in enumerate(req.tools):
                check_schema(t["parameters"], f"tools[{i}].function.parameters", "tools")
            blocks = 'block ("\\n" block)*' if req.parallel_tool_calls else "block"
            lark = (f"start: answer | calls\nanswer: %json {json.dumps(answer)}\ncalls: {blocks}\n"
                    f'block: "{OPEN}" call "{CLOSE}"\ncall: %json {json.dumps(compact(call_schema(req.tools)))}\n')
            return self.constraint(self.matcher(llguidance.LLMatcher.grammar_from_lark(lark), "response_format"))
        return self.constraint(self.matcher(llguidance.LLMatcher.grammar_from_json_schema(answer), "response_format"))


class Constraint:
    """One generation's matcher: masks the logits before each pick, advances with each picked token."""

    def __init__(self, matcher, vocab_size):
        import numpy as np

        self.m = matcher
        self.bits = np.zeros((vocab_size + 31) // 32, dtype=np.int32)  # one bit per token, filled by llguidance

    def mask(self, logits):
        import numpy as np
        import torch

        n = logits.shape[-1]
        self.m.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)
        allowed = np.unpackbits(self.bits.view(np.uint8), bitorder="little")[:n].astype(bool)
        if allowed.shape[0] < n:
            allowed = np.concatenate([allowed, np.zeros(n - allowed.shape[0], dtype=bool)])
        logits.masked_fill_(~torch.from_numpy(allowed).to(logits.device), float("-inf"))

    def advance(self, token):
        """False when the matcher refused the token (it should not: the mask allowed it)."""
        return self.m.consume_token(token)

    @property
    def done(self):
        """The grammar is complete: nothing more may follow (treated as EOS)."""
        return self.m.is_stopped()

    @property
    def error(self):
        return self.m.get_error() if self.m.is_error() else ""


# ---- chat templates and tools


def template_reads_tools(template):
    source = template if isinstance(template, str) else json.dumps(template)
    return re.search(r"\btools\b", source or "") is not None


def tools_for_template(tools):
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["parameters"]}} for t in tools]


def hermes_messages(messages, tools):
    """The conversation for a template that knows nothing of tools: the tool list in a system message, earlier calls
    as `<tool_call>` blocks in the assistant's text, tool results as `<tool_response>` blocks from the user."""
    out = []
    if tools:
        listing = "\n".join(json.dumps({"name": t["name"], "description": t["description"], "parameters": t["parameters"]}) for t in tools)
        system = (f"You can call these functions:\n{listing}\n"
                  f'To call one, answer with {OPEN}{{"name": <function name>, "arguments": <arguments object>}}{CLOSE}, one block per call.')
        if messages and messages[0]["role"] == "system":
            out.append({"role": "system", "content": f"{messages[0]['content']}\n\n{system}"})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": system})
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        elif m.get("tool_calls"):
            calls = "\n".join(f"{OPEN}\n{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}\n{CLOSE}" for c in m["tool_calls"])
            out.append({"role": "assistant", "content": f"{m['content']}\n{calls}" if m["content"] else calls})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


# ---- generated text -> tool calls


def new_call_id():
    return f"call_{secrets.token_urlsafe(12)}"


def read_call(text, tools):
    """(name, arguments JSON) when `text` is a call of a declared tool, else None."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    if not any(t["name"] == value["name"] for t in tools):
        return None
    args = value.get("arguments", {})
    return value["name"], args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def partial_prefix(text, marker):
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


FORCED_HEAD = re.compile(r'^\{"name":("(?:[^"\\]|\\.)*"),"arguments":')


class ToolCalls:
    """Turns a generation's ("text", piece) events into text and tool-call events:
    ("call", index, id, name, arguments) starts a call (arguments "" or all of them), ("args", index, fragment)
    continues it. `forced`: the whole answer is one call's compact JSON, streamed as its arguments arrive. `auto`:
    `<tool_call>` blocks become calls once closed, the text around them stays text; a block that is not a valid call
    of a declared tool stays text as written. `first_only` (parallel_tool_calls false): `done` turns true after one
    call, so the caller stops generating."""

    def __init__(self, mode, tools, first_only=False):
        self.mode = mode
        self.tools = tools
        self.first_only = first_only
        self.pending = ""
        self.inside = False
        self.calls = 0
        self.done = False
        self.forced_started = False

    def push(self, piece):
        if self.mode == "none":
            return [("text", piece)]
        self.pending += piece
        return self._forced() if self.mode == "forced" else self._auto()

    def _forced(self):
        out = []
        if not self.forced_started:
            head = FORCED_HEAD.match(self.pending)
            if not head:
                return out
            name = json.loads(head.group(1))
            self.forced_started = True
            self.calls = 1
            self.pending = self.pending[head.end():]
            out.append(("call", 0, new_call_id(), name, ""))
        # The outer object's closing brace is not part of the arguments: hold the last character back.
        if len(self.pending) > 1:
            out.append(("args", 0, self.pending[:-1]))
            self.pending = self.pending[-1:]
        return out

    def _auto(self):
        out = []
        while not self.done:
            if not self.inside:
                at = self.pending.find(OPEN)
                if at >= 0:
                    if at > 0:
                        out.append(("text", self.pending[:at]))
                    self.pending = self.pending[at:]
                    self.inside = True
                    continue
                keep = partial_prefix(self.pending, OPEN)
                if len(self.pending) > keep:
                    out.append(("text", self.pending[: len(self.pending) - keep]))
                self.pending = self.pending[len(self.pending) - keep:]
                break
            end = self.pending.find(CLOSE)
            if end < 0:
                break
            block = self.pending[: end + len(CLOSE)]
            call = read_call(block[len(OPEN):end].strip(), self.tools)
            if call:
                out.append(("call", self.calls, new_call_id(), call[0], call[1]))
                self.calls += 1
                self.done = self.first_only
            else:
                out.append(("text", block))
            self.pending = self.pending[end + len(CLOSE):].lstrip()
            self.inside = False
        return out

    def finish(self, reason):
        """Events for what is still held back, and the finish reason (tool_calls when calls were made and it stopped)."""
        out = []
        if self.mode == "forced":
            if self.forced_started:
                rest = self.pending[:-1] if reason != "length" and self.pending.endswith("}") else self.pending
                if rest:
                    out.append(("args", 0, rest))
            else:
                # Not a call's JSON (cut short, say): the text as it came.
                call = read_call(self.pending, self.tools)
                if call:
                    out.append(("call", 0, new_call_id(), call[0], call[1]))
                    self.calls = 1
                elif self.pending:
                    out.append(("text", self.pending))
        elif self.pending and not self.done:
            out.append(("text", self.pending))
        self.pending = ""
        return out, ("tool_calls" if self.calls and reason == "stop" else reason)


def with_tool_calls(events, make_calls, prompt_tokens, halted):
    """A generation's events (tagged with their choice's index, see generator.generate) with each choice's text
    turned into tool-call events by its own ToolCalls (from `make_calls()`): ("call", i, call_index, id, name,
    arguments) and ("args", i, call_index, fragment). When a choice's calls are done early (one call and
    parallel_tool_calls false), that choice finishes there and is added to `halted`, which the generation reads to
    drop it."""
    calls = {}
    produced = {}
    try:
        for ev in events:
            kind, i = ev[0], ev[1]
            if i in halted:
                continue
            c = calls.get(i)
            if c is None:
                c = calls[i] = make_calls()
            if kind == "text":
                yield from ((out[0], i, *out[1:]) for out in c.push(ev[2]))
                if c.done:
                    halted.add(i)
                    rest, reason = c.finish("stop")
                    yield from ((out[0], i, *out[1:]) for out in rest)
                    yield ("finish", i, reason, prompt_tokens, produced.get(i, 0))
            elif kind == "finish":
                rest, reason = c.finish(ev[2])
                yield from ((out[0], i, *out[1:]) for out in rest)
                yield ("finish", i, reason, *ev[3:])
            else:
                if kind == "token":
                    produced[i] = produced.get(i, 0) + 1
                yield ev
    finally:
        events.close()
