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
    )


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
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
        raise ProtocolError("input must be a string or a non-empty list of strings", "input")
    if len(inputs) > 2048:
        raise ProtocolError("input holds more than 2048 items", "input")
    fmt = body.get("encoding_format", "float")
    if fmt not in (None, "float"):
        raise ProtocolError("encoding_format must be float (the daemon encodes base64 itself)", "encoding_format")
    return inputs
