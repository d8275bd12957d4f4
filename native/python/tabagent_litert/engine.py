"""One LiteRT-LM model, driven the way tabagent_sidecar.server drives an engine (chat_ids, prompt_ids, check_length,
run; see that module's docstring).

LiteRT-LM's sessions take text and stream text: the prompt is rendered here with the bundle's own Jinja chat
template (HF conventions: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`), counted with the runtime's
tokenizer, prefilled as text (special tokens in it are parsed by that tokenizer) and decoded with the runtime's
sampler. The decode callback fires once per generated token, so token counts are exact even when a piece is held
back (an incomplete UTF-8 character) and arrives with the next one; token ids themselves are not exposed."""
import ctypes
import os
import queue

from tabagent_sidecar.protocol import ProtocolError

from .bundle import read_bundle, token_text

# What the runtime reports instead of a final chunk when a decode ends early.
_CANCELLED = "CANCELLED"
_MAX_TOKENS = "Max number of tokens reached"


class PromptIds(list):
    """The prompt's token ids (what usage counts and check_length measures), carrying the text that is prefilled."""

    def __init__(self, ids, text):
        super().__init__(ids)
        self.text = text


class StopMatcher:
    """Holds back text that may be the start of a stop sequence; cuts at the first complete one."""

    def __init__(self, stops):
        self.stops = stops
        self.held = ""

    def push(self, piece):
        """(text to emit, stopped)."""
        if not self.stops:
            return piece, False
        text = self.held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held = ""
            return text[:cut], True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self.held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep], False

    def flush(self):
        rest, self.held = self.held, ""
        return rest


class LiteRtLM:
    def __init__(self, path, backend, threads, cache_dir, chat_template, log):
        import litert_lm

        self._lt = litert_lm
        self.kind, self.meta = read_bundle(path)
        if backend == "gpu":
            chosen = litert_lm.Backend.GPU()
        else:
            chosen = litert_lm.Backend.CPU(thread_count=threads if threads > 0 else None)
        self.backend = backend
        self.context = int(self.meta.max_num_tokens) or None
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        try:
            # The benchmark counters are the only exact count of generated tokens (pieces held for UTF-8 get no callback).
            self.engine = litert_lm.Engine(path, backend=chosen, max_num_tokens=self.context, cache_dir=cache_dir, enable_benchmark=True)
        except RuntimeError as err:
            # The runtime's own reason is on stderr just above (the daemon quotes the last lines).
            raise RuntimeError(f"LiteRT-LM could not load the {self.kind} bundle on {backend} ({err})") from None
        self.context = self.context or 4096
        template = chat_template or self.meta.jinja_prompt_template
        self.template = None
        if template:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

            def raise_exception(message):
                raise ProtocolError(f"the chat template refused the messages: {message}", "messages")

            env.globals["raise_exception"] = raise_exception
            self.template = env.from_string(template)
        self.bos = token_text(self.engine, self.meta.start_token) if self.meta.HasField("start_token") else ""
        stops = [token_text(self.engine, s) for s in self.meta.stop_tokens]
        self.eos = next((s for s in stops if s), "")
        log(f"loaded {self.kind} bundle on {backend}: context {self.context} tokens, chat template: {'yes' if self.template else 'no'}")

    # ---- prompts

    def _ids(self, text):
        return PromptIds(self.engine.tokenize(text), text)

    def chat_ids(self, messages, tools=None):
        if tools:
            raise ProtocolError("the LiteRT engine has no tool calling", "tools")
        if self.template is None:
            raise ProtocolError("this bundle has no chat template; use /v1/completions or set chatTemplate in its config", "messages")
        plain = []
        for m in messages:
            content = m.get("content")
            if isinstance(content, list):  # text parts only reach here (the daemon refuses images for this engine)
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            plain.append({"role": m["role"], "content": content or ""})
        text = self.template.render(messages=plain, add_generation_prompt=True, bos_token=self.bos, eos_token=self.eos)
        return self._ids(text)

    def prompt_ids(self, prompt):
        if not isinstance(prompt, str):
            raise ProtocolError("the LiteRT engine takes a prompt as text, not token ids", "prompt")
        return self._ids(prompt)

    def check_length(self, ids, sampling):
        for name, value, off in (
            ("presence_penalty", sampling.presence_penalty, 0.0),
            ("frequency_penalty", sampling.frequency_penalty, 0.0),
            ("min_p", sampling.min_p, 0.0),
            ("repetition_penalty", sampling.repeat_penalty, 1.0),
        ):
            if value != off:
                raise ProtocolError(f"the LiteRT engine does not support {name}", name, code="unsupported_parameter")
        if len(ids) == 0:
            raise ProtocolError("the prompt is empty", "prompt")
        room = self.context - len(ids)
        if room <= 0 or (sampling.max_tokens is not None and sampling.max_tokens > room):
            want = sampling.max_tokens or 1
            raise ProtocolError(
                f"the prompt ({len(ids)} tokens) plus max_tokens ({want}) exceeds the model's context of {self.context} tokens",
                "max_tokens" if room > 0 else "messages",
                code="context_length_exceeded",
            )

    # ---- generation

    def _sampler(self, sampling):
        if sampling.temperature == 0:
            return self._lt.SamplerConfig(top_k=1, top_p=1.0, temperature=0.0, seed=0)
        seed = None if sampling.seed is None else sampling.seed % (1 << 31)
        return self._lt.SamplerConfig(
            top_k=sampling.top_k or None, top_p=sampling.top_p, temperature=sampling.temperature, seed=seed
        )

    @staticmethod
    def _decoded(session, counted):
        """Tokens decoded so far by the session (at least the callbacks counted)."""
        try:
            return max(counted, int(session.get_benchmark_info().last_decode_token_count))
        except (RuntimeError, ValueError):
            return counted

    def run(self, ids, sampling, cancelled, constraint=None):
        """("text", piece)... then ("finish", reason, prompt_tokens, completion_tokens). Stops within one token once
        `cancelled` is set or the generator is closed (the daemon hung up)."""
        if constraint is not None:
            raise ProtocolError("the LiteRT engine has no constrained decoding", "response_format")
        limit = sampling.max_tokens if sampling.max_tokens is not None else self.context - len(ids)
        session = self.engine.create_session(apply_prompt_template=False, sampler_config=self._sampler(sampling), max_output_tokens=limit)
        lib = session._lib  # the bindings' C handle: the decode callback below needs the raw chunk
        items = queue.Queue()

        def callback(_data, chunk):
            err = lib.litert_lm_stream_chunk_get_error(chunk)
            if err:
                items.put(("error", err.decode("utf-8", "replace")))
                return
            text = lib.litert_lm_stream_chunk_get_text(chunk)
            items.put(("final" if lib.litert_lm_stream_chunk_is_final(chunk) else "piece", text.decode("utf-8", "replace") if text else ""))

        c_callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(callback)
        stops = StopMatcher(sampling.stop)
        produced = 0
        running = False
        stopped = False
        try:
            session.run_prefill([ids.text])
            if lib.litert_lm_session_run_decode_async(session._ptr, c_callback, None) != 0:
                raise RuntimeError("litert_lm_session_run_decode_async failed")
            running = True
            reason = None
            while reason is None:
                try:
                    kind, text = items.get(timeout=0.05)
                except queue.Empty:
                    if cancelled.is_set():
                        return
                    continue
                if kind == "error":
                    running = False
                    if _MAX_TOKENS in text:
                        reason = "length"
                        produced = self._decoded(session, produced)
                        break
                    if _CANCELLED in text:
                        return
                    raise RuntimeError(f"LiteRT-LM decode failed: {text}")
                if kind == "final":
                    running = False
                    produced = self._decoded(session, produced)
                    reason = "length" if produced >= limit else "stop"
                if kind == "piece":
                    produced += 1
                piece, stopped = stops.push(text)
                if piece:
                    yield ("text", piece)
                if stopped:
                    # The decode is still running, so the runtime's counter is not this answer's yet: the callbacks'
                    # count stands (short only by pieces held back for an incomplete UTF-8 character).
                    reason = "stop"
                    break
                if kind == "piece" and produced >= limit:
                    reason = "length"
                    break
                if cancelled.is_set():
                    return
            if not stopped:  # text held back for a stop sequence that never completed belongs to the answer
                rest = stops.flush()
                if rest:
                    yield ("text", rest)
            yield ("finish", reason, len(ids), produced)
        finally:
            if running:
                session.cancel_process()
                # The runtime's thread calls back once more (the cancellation); wait for it before the session goes.
                while True:
                    try:
                        kind, _ = items.get(timeout=5)
                    except queue.Empty:
                        break
                    if kind != "piece":
                        break
            session.close()
            del c_callback
