"""Validation of the daemon's requests. The daemon validates first (zod); this side checks again, because a
request that slips through must end in a clear 400, never a traceback or a hung generation."""
import json
from dataclasses import dataclass, field


class ProtocolError(Exception):
    def __init__(self, message, param=None, status=400, code=None, type_="invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code
        self.type = type_

    def envelope(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Sampling:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list = field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0  # 0 = off
    repeat_penalty: float = 1.0  # 1 = off; over the last REPEAT_WINDOW tokens of prompt and answer


REPEAT_WINDOW = 64


@dataclass
class Generation:
    sampling: Sampling
    stream: bool
    return_token_ids: bool = False
    messages: list | None = None  # chat
    prompt: str | None = None  # completions
    tools: list = field(default_factory=list)  # [{"name", "description", "parameters"}]
    tool_choice: object = "auto"  # "none" | "auto" | "required" | ("function", name)
    parallel_tool_calls: bool = True
    response_format: dict | None = None  # None (text), {"type": "json_object"}, {"type": "json_schema", "schema"}
    n: int = 1  # choices of the one prompt
    logprobs: int | None = None  # None: off; else how many most likely alternatives per token (chat 0-20, legacy 0-5)

    @property
    def tool_mode(self):
        """none: tools (if any) are rendered, no call is parsed; auto: `<tool_call>` blocks become calls; forced: the
        answer is one call, generated under a grammar."""
        if not self.tools or self.tool_choice == "none":
            return "none"
        return "auto" if self.tool_choice == "auto" else "forced"

    def forced_tools(self):
        if isinstance(self.tool_choice, tuple):
            return [t for t in self.tools if t["name"] == self.tool_choice[1]]
        return self.tools


def _require_object(body):
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object")
    return body


def _number(body, name, lo, hi, default):
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(f"{name} must be a number", name)
    if not (lo <= v <= hi):
        raise ProtocolError(f"{name} must be between {lo} and {hi}", name)
    return float(v)


def _int(body, name, lo, hi):
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProtocolError(f"{name} must be an integer", name)
    if not (lo <= v <= hi):
        raise ProtocolError(f"{name} must be between {lo} and {hi}", name)
    return v


def _flag(body, name):
    v = body.get(name)
    if v is not None and not isinstance(v, bool):
        raise ProtocolError(f"{name} must be a boolean", name)
    return bool(v)


def parse_sampling(body):
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 16 or not all(isinstance(s, str) and s for s in stop):
        raise ProtocolError("stop must be a non-empty string or a list of at most 16 of them", "stop")
    return Sampling(
        max_tokens=_int(body, "max_tokens", 1, 1 << 20),
        temperature=_number(body, "temperature", 0, 2, 1.0),
        top_p=_number(body, "top_p", 0, 1, 1.0),
        seed=_int(body, "seed", -(1 << 63), (1 << 64) - 1),
        stop=stop,
        presence_penalty=_number(body, "presence_penalty", -2, 2, 0.0),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2, 0.0),
        top_k=_int(body, "top_k", 0, 1 << 30) or 0,
        min_p=_number(body, "min_p", 0, 1, 0.0),
        repeat_penalty=_repeat_penalty(body),
    )


def _repeat_penalty(body):
    """llama.cpp's `repeat_penalty`, or vLLM's spelling `repetition_penalty`; both must agree when both are set."""
    a = _number(body, "repeat_penalty", 0, 10, None)
    b = _number(body, "repetition_penalty", 0, 10, None)
    if a is not None and b is not None and a != b:
        raise ProtocolError("repeat_penalty and repetition_penalty differ", "repetition_penalty")
    v = a if a is not None else b
    if v is None:
        return 1.0
    if v <= 0:
        raise ProtocolError("repeat_penalty must be greater than 0", "repeat_penalty")
    return v


MAX_CHOICES = 16


def _choices(body):
    return _int(body, "n", 1, MAX_CHOICES) or 1


def _chat_logprobs(body):
    """chat: `logprobs: true` with `top_logprobs` (0-20) alternatives; `top_logprobs` alone is refused, as OpenAI does."""
    on = _flag(body, "logprobs")
    top = _int(body, "top_logprobs", 0, 20)
    if not on:
        if top:
            raise ProtocolError("top_logprobs needs logprobs: true", "top_logprobs")
        return None
    return top or 0


def parse_chat(body):
    body = _require_object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("messages must be a non-empty list", "messages")
    out = []
    names = {}  # tool call id -> function name, for the tool messages that answer them
    for i, m in enumerate(messages):
        out.append(_message(m, i, names))
    tools = _tools(body)
    return Generation(
        sampling=parse_sampling(body),
        stream=bool(body.get("stream")),
        messages=out,
        return_token_ids=_flag(body, "return_token_ids"),
        tools=tools,
        tool_choice=_tool_choice(body, tools),
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        response_format=_response_format(body),
        n=_choices(body),
        logprobs=_chat_logprobs(body),
    )


def _message(m, i, names):
    """One message as chat templates take it: tool calls with their arguments as objects (what templates that
    render them expect), a tool message with its call's id and function name."""
    at = f"messages[{i}]"
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise ProtocolError(f"{at} needs a string role", at)
    role = m["role"]
    if role not in ("system", "user", "assistant", "tool"):
        raise ProtocolError(f"{at}.role '{role}' is not supported", f"{at}.role")
    calls = m.get("tool_calls") if role == "assistant" else None
    content = m.get("content")
    if calls:
        if content is None:
            content = ""
    if not isinstance(content, str):
        raise ProtocolError(f"{at} needs a string content", f"{at}.content")
    msg = {"role": role, "content": content}
    if calls:
        if not isinstance(calls, list):
            raise ProtocolError(f"{at}.tool_calls must be a list", f"{at}.tool_calls")
        msg["tool_calls"] = []
        for j, c in enumerate(calls):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(fn.get("arguments", ""), str):
                raise ProtocolError(f"{at}.tool_calls[{j}] needs a function with a string name and string arguments", f"{at}.tool_calls[{j}]")
            args = fn.get("arguments") or "{}"
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = args  # kept as the client sent it
            cid = c.get("id") if isinstance(c.get("id"), str) else f"call_{j}"
            names[cid] = fn["name"]
            msg["tool_calls"].append({"id": cid, "type": "function", "function": {"name": fn["name"], "arguments": parsed}})
    if role == "tool":
        cid = m.get("tool_call_id")
        if cid is not None and not isinstance(cid, str):
            raise ProtocolError(f"{at}.tool_call_id must be a string", f"{at}.tool_call_id")
        if cid is not None:
            msg["tool_call_id"] = cid
            if cid in names:
                msg["name"] = names[cid]
    return msg


def _tools(body):
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ProtocolError("tools must be a list", "tools")
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) and t.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ProtocolError(f"tools[{i}] must be a function tool with a name", f"tools[{i}]")
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise ProtocolError(f"tools[{i}].function.parameters must be a JSON Schema object", f"tools[{i}].function.parameters")
        desc = fn.get("description")
        out.append({"name": fn["name"], "description": desc if isinstance(desc, str) else "", "parameters": params})
    return out


def _tool_choice(body, tools):
    c = body.get("tool_choice")
    if c is None:
        return "auto"
    if c in ("none", "auto", "required"):
        return c
    fn = c.get("function") if isinstance(c, dict) and c.get("type") == "function" else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ProtocolError("tool_choice must be none, auto, required or {type: function, function: {name}}", "tool_choice")
    if not any(t["name"] == fn["name"] for t in tools):
        raise ProtocolError(f"tool_choice names the function '{fn['name']}', which is not in tools", "tool_choice")
    return ("function", fn["name"])


def _response_format(body):
    f = body.get("response_format")
    if f is None:
        return None
    if not isinstance(f, dict) or f.get("type") not in ("text", "json_object", "json_schema"):
        raise ProtocolError("response_format.type must be text, json_object or json_schema", "response_format")
    if f["type"] == "text":
        return None
    if f["type"] == "json_object":
        return {"type": "json_object"}
    spec = f.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if schema is None:
        schema = {}
    if not isinstance(schema, (dict, bool)):
        raise ProtocolError("response_format.json_schema.schema must be a JSON Schema", "response_format", code="invalid_schema")
    return {"type": "json_schema", "schema": schema}


def parse_completion(body):
    body = _require_object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ProtocolError("prompt must be a string (the daemon sends one prompt per request)", "prompt")
    return Generation(
        sampling=parse_sampling(body),
        stream=bool(body.get("stream")),
        prompt=prompt,
        return_token_ids=_flag(body, "return_token_ids"),
        n=_choices(body),
        logprobs=_int(body, "logprobs", 0, 5),  # the legacy count; null is off
    )


def parse_embeddings(body):
    body = _require_object(body)
    inputs = body.get("input")
    flat = isinstance(inputs, list) and bool(inputs) and all(_is_id(t) for t in inputs)
    if isinstance(inputs, str) or flat:
        inputs = [inputs]
    ok = isinstance(inputs, list) and inputs and (
        all(isinstance(s, str) for s in inputs) or all(isinstance(t, list) and t and all(_is_id(i) for i in t) for t in inputs)
    )
    if not ok:
        raise ProtocolError(
            "input must be a string, a non-empty list of strings, a list of token ids or a list of lists of token ids", "input"
        )
    if len(inputs) > 2048:
        raise ProtocolError("input holds more than 2048 items", "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in (None, "float"):
        raise ProtocolError("encoding_format must be float (the daemon encodes base64 itself)", "encoding_format")
    return Embeddings(inputs, flat=flat)


class Embeddings(list):
    """The inputs (strings, or lists of token ids) as a list, so an engine's embed(inputs) iterates them as before;
    `flat`: one flat list of ids was sent, whose bad id is input[j]."""

    def __init__(self, inputs, flat=False):
        super().__init__(inputs)
        self.flat = flat

    def param(self, i, j=None):
        if j is None:
            return "input" if self.flat else f"input[{i}]"
        return f"input[{j}]" if self.flat else f"input[{i}][{j}]"


def _is_id(v):
    return isinstance(v, int) and not isinstance(v, bool)
