"""Validation of the daemon's requests. The daemon validates first (zod); this side checks again, because a
request that slips through must end in a clear 400, never a traceback or a hung generation."""
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


def parse_chat(body):
    body = _require_object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProtocolError("messages must be a non-empty list", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ProtocolError(f"messages[{i}] needs a string role and a string content", f"messages[{i}]")
        if m["role"] not in ("system", "user", "assistant", "tool"):
            raise ProtocolError(f"messages[{i}].role '{m['role']}' is not supported", f"messages[{i}].role")
        out.append({"role": m["role"], "content": m["content"]})
    return Generation(sampling=parse_sampling(body), stream=bool(body.get("stream")), messages=out, return_token_ids=_flag(body, "return_token_ids"))


def parse_completion(body):
    body = _require_object(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ProtocolError("prompt must be a string (the daemon sends one prompt per request)", "prompt")
    return Generation(sampling=parse_sampling(body), stream=bool(body.get("stream")), prompt=prompt, return_token_ids=_flag(body, "return_token_ids"))


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
