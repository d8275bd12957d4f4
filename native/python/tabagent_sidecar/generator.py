"""Causal LM generation: our own decode loop over the KV cache, so every token can be streamed, cancelled and
counted, with OpenAI's sampling parameters applied exactly (greedy at temperature 0)."""
import inspect
import os
import threading

import torch

from .batching import Batcher, Job, batchable
from .folder import check_folder
from .protocol import REPEAT_WINDOW, ProtocolError
from .structured import Grammars, hermes_messages, template_reads_tools, tools_for_template

# Decode this many earlier tokens with each new one, so tokenizers that merge spaces across tokens decode right.
DETOK_CONTEXT = 5
# A logprob entry's token text: its piece after this many earlier tokens of the choice (the in-process engines' 8).
LOGPROB_CONTEXT = 8
# JSON has no -Infinity: a token the model rules out reports OpenAI's floor.
LOGPROB_FLOOR = -9999.0


class IncrementalDetokenizer:
    """Turns token ids into text pieces without splitting a multi-byte character (no U+FFFD mid-stream)."""

    def __init__(self, tokenizer, prompt_ids):
        self.tok = tokenizer
        self.ids = list(prompt_ids[-DETOK_CONTEXT:])
        self.prefix = 0
        self.read = len(self.ids)

    def push(self, token_id):
        self.ids.append(token_id)
        before = self.tok.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        text = self.tok.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(text) > len(before) and not text.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return text[len(before):]
        return ""


class StopMatcher:
    """Holds back text that may be the start of a stop sequence; cuts at the first complete one."""

    def __init__(self, stops):
        self.stops = stops
        self.held = ""

    def push(self, piece):
        """Returns (text to emit, stopped)."""
        text = self.held + piece
        if not self.stops:
            self.held = ""
            return text, False
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held = ""
            return text[:cut], True
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self.held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep], False

    def flush(self):
        text, self.held = self.held, ""
        return text


class _Choice:
    """One choice's decoding state in a batch: its seed stream, penalties' counts, detokenizer, stop matcher,
    grammar, and the logprob entries whose text is still held back."""

    def __init__(self, index, seed, constraint, ids, sampling, tokenizer):
        self.index = index
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(seed)
        self.counts = {}
        # The repeat penalty's window: the last tokens of the prompt and the answer (kept only when it is on).
        self.window = list(ids[-REPEAT_WINDOW:]) if sampling.repeat_penalty != 1.0 else None
        self.detok = IncrementalDetokenizer(tokenizer, ids)
        self.stops = StopMatcher(sampling.stop)
        self.constraint = constraint
        self.produced = 0
        self.pending = []
        self.context = list(ids[-LOGPROB_CONTEXT:])
        self.done = False


class CausalLM:
    def __init__(self, path, device, dtype, trust_remote_code, log, chat_template=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_folder(path, trust_remote_code)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        if chat_template:
            self.tokenizer.chat_template = chat_template
        self.model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, local_files_only=True, trust_remote_code=trust_remote_code
        ).to(device).eval()
        cfg = self.model.config
        self.context = int(getattr(cfg, "max_position_embeddings", 0) or self.tokenizer.model_max_length or 2048)
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.reads_tools = self.has_template and template_reads_tools(self.tokenizer.chat_template)
        out_emb = self.model.get_output_embeddings()
        vocab = int(out_emb.weight.shape[0]) if out_emb is not None else int(getattr(cfg, "vocab_size", 0) or 0)
        self.grammars = Grammars(self.tokenizer, max(vocab, len(self.tokenizer)), self.eos)
        # transformers renamed `past_key_values` to `cache` (5.2x); speak whichever this version has.
        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are needed: skips a [prompt x vocab] matmul on the prompt.
        self.step_kwargs = {"use_cache": True, **({"logits_to_keep": 1} if "logits_to_keep" in params else {})}
        self.log = log
        # Concurrent requests share one decode loop (batching.py) where the model's cache allows it.
        on = os.environ.get("TABAGENT_SIDECAR_BATCHING", "1") != "0"
        self.batcher = Batcher(self) if on and batchable(self.model, self.cache_arg, device) else None
        batching = "batched decoding" if self.batcher else "one request at a time (this cache cannot be batched)" if on else "batching off"
        log(f"loaded {cfg.model_type} on {device} ({dtype}), context {self.context}, eos {sorted(self.eos)}, {batching}")

    def chat_ids(self, messages, tools=None):
        """The prompt's ids. With tools, or tool calls and results in the history, a template that reads `tools` gets
        them as transformers passes them (calls' arguments as objects); another gets them in the Hermes convention."""
        if not self.has_template:
            raise ProtocolError("this model has no chat template; use /v1/completions", "messages")
        extra = {}
        if self.reads_tools:
            if tools:
                extra["tools"] = tools_for_template(tools)
        elif tools or any(m["role"] == "tool" or m.get("tool_calls") for m in messages):
            messages = hermes_messages(messages, tools or [])
        try:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **extra)
        except Exception as err:  # a template that rejects the roles it was given (e.g. no system role)
            raise ProtocolError(f"the model's chat template failed: {err}", "messages") from err
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def prompt_ids(self, prompt):
        return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])

    def check_length(self, ids, sampling):
        if len(ids) >= self.context:
            raise ProtocolError(
                f"the prompt is {len(ids)} tokens; this model's context is {self.context}",
                "messages",
                code="context_length_exceeded",
            )
        room = self.context - len(ids)
        return room if sampling.max_tokens is None else min(sampling.max_tokens, room)

    def constrain(self, req):
        """The request's grammar (structured.Constraint), None for free text; a 400 for a schema it cannot enforce."""
        return self.grammars.for_request(req)

    @torch.inference_mode()
    def generate(self, ids, sampling, cancelled=None, n=1, logprobs=None, constraints=None, halted=None):
        """`n` choices of one prompt in one decode loop, yielding events tagged with the choice's index i:
        ("token", i, id) for each generated token (before the text it becomes), ("logprobs", i, entries) for the
        tokens of the text event that follows (or of the finish, for text held back), ("text", i, piece), and last
        ("finish", i, reason, prompt_tokens, completion_tokens). Stops at EOS, a stop sequence, max_tokens, a
        complete grammar, or when `cancelled` is set (checked before each step; no finish then).

        The prompt is evaluated once; its KV cache is then repeated to n rows, each choice's row decoding its own
        tokens (a finished choice's row is dropped from the batch). Choice i samples with its own generator seeded
        seed + i (the request's seed, or one drawn for it), so it is the answer of a one-choice request with seed + i;
        its penalties count its own tokens; `constraints[i]` (a structured.Constraint, or None) masks its logits and
        advances with its tokens. A choice whose index is added to `halted` (a set) is dropped without a finish.

        `logprobs` (None: off): each generated token's log-softmax of the model's logits before anything touches
        them (temperature 1, no penalty, no top-k/top-p/min-p, no grammar mask), with that many most likely
        alternatives; an entry is {"token", "logprob", "bytes", "top": [{"token", "logprob", "bytes"}, ...]}, the
        token's text being its piece in context. A stop sequence's last token and EOS are not listed."""
        cancelled = cancelled or threading.Event()
        halted = halted if halted is not None else set()
        max_tokens = self.check_length(ids, sampling)
        base = sampling.seed if sampling.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        constraints = constraints or [None] * n
        prompt_tokens = len(ids)
        if self.batcher is not None:
            job = Job(ids, sampling, n, logprobs, constraints, halted, cancelled, max_tokens, base)
            self.batcher.submit(job)
            yield from self._batched(job, prompt_tokens)
            return
        rows = [_Choice(i, (base + i) % (1 << 63), constraints[i], ids, sampling, self.tokenizer) for i in range(n)]
        top = logprobs or 0
        past = None
        step_input = torch.tensor([ids], device=self.device)
        for step in range(max_tokens):
            if cancelled.is_set():
                return
            for c in rows:
                if c.index in halted:
                    c.done = True
            rows, past, step_input = self._live(rows, past, step_input)
            if not rows:
                return
            out = self.model(input_ids=step_input, **self.step_kwargs, **{self.cache_arg: past})
            past = getattr(out, self.cache_arg)
            logits = out.logits[:, -1, :].float()
            if step == 0 and n > 1:
                if hasattr(past, "batch_repeat_interleave"):
                    past.batch_repeat_interleave(n)
                else:  # a cache that cannot be repeated: the prompt again, as n rows
                    out = self.model(input_ids=step_input.expand(n, -1), **self.step_kwargs, **{self.cache_arg: None})
                    past = getattr(out, self.cache_arg)
                logits = logits.expand(n, -1).clone()
            lsm = torch.log_softmax(logits, dim=-1) if logprobs is not None else None
            picked = []
            for r, c in enumerate(rows):
                if c.done:  # a row kept only because this cache cannot drop it
                    picked.append(next(iter(self.eos), 0))
                    continue
                row = logits[r]
                if c.constraint is not None:
                    c.constraint.mask(row)
                token = self.pick(row, sampling, c.counts, c.gen, c.window)
                if c.constraint is not None and token not in self.eos:
                    c.constraint.advance(token)
                picked.append(token)
            chosen = tops = None
            if lsm is not None:
                at = torch.tensor(picked, device=lsm.device).unsqueeze(1)
                chosen = lsm.gather(1, at).squeeze(1).tolist()
                if top > 0:
                    values, order = torch.topk(lsm, min(top, lsm.shape[-1]), dim=-1)
                    tops = [list(zip(o, v)) for o, v in zip(order.tolist(), values.tolist())]
            events = []
            for r, c in enumerate(rows):
                if not c.done:
                    self._advance(c, picked[r], prompt_tokens, None if chosen is None else chosen[r], None if tops is None else tops[r], events)
            for ev in events:
                if ev[1] not in halted:
                    yield ev
            step_input = torch.tensor([[t] for t in picked], device=self.device)
        if cancelled.is_set():
            return
        for c in rows:
            if not c.done and c.index not in halted:
                yield from self._finish(c, "length", prompt_tokens)

    def _batched(self, job, prompt_tokens):
        """A batched job's events, made on the request's thread from the decode thread's items: detokenizing, stop
        sequences and logprob texts happen here, out of the decode loop's way."""
        choices = [_Choice(i, 0, None, job.ids, job.sampling, self.tokenizer) for i in range(job.n)]
        open_ = set(range(job.n))
        halted = job.halted
        try:
            while open_:
                for item in job.out.get():
                    kind = item[0]
                    if kind == "error":
                        raise RuntimeError(f"the batch failed: {type(item[1]).__name__}: {item[1]}") from item[1]
                    i = item[1]
                    if i not in open_:
                        continue
                    c = choices[i]
                    if kind == "tok":
                        events = []
                        self._advance(c, item[2], prompt_tokens, item[3], item[4], events)
                        if c.done:
                            job.ended.add(i)
                            open_.discard(i)
                        for ev in events:
                            if ev[1] not in halted:
                                yield ev
                    elif kind == "end":
                        open_.discard(i)
                        if i not in halted:
                            yield from self._finish(c, item[2], prompt_tokens)
                    else:  # gone: halted
                        open_.discard(i)
                open_ -= halted
        finally:
            if open_:  # abandoned (the client left, or an error): its rows leave the batch before the next step
                job.cancelled.set()

    def _live(self, rows, past, step_input):
        """Drops finished choices' rows from the batch (and the cache) where the cache allows it."""
        keep = [r for r, c in enumerate(rows) if not c.done]
        if len(keep) == len(rows) or past is None:
            return (rows if keep else []), past, step_input
        if not keep:
            return [], past, step_input
        if not hasattr(past, "batch_select_indices"):
            return rows, past, step_input  # still decoded, never reported
        at = torch.tensor(keep, device=self.device)
        past.batch_select_indices(at)
        return [rows[r] for r in keep], past, step_input[at]

    def _advance(self, c, token, prompt_tokens, logprob, top, events):
        """Choice `c` took `token`: its events appended to `events`."""
        i = c.index
        if token in self.eos:
            c.done = True
            events.extend(self._finish(c, "stop", prompt_tokens))
            return
        c.produced += 1
        c.counts[token] = c.counts.get(token, 0) + 1
        if c.window is not None:
            c.window.append(token)
            del c.window[:-REPEAT_WINDOW]
        events.append(("token", i, token))
        if logprob is not None:
            c.pending.append(self._entry(c, token, logprob, top or ()))
        text, stopped = c.stops.push(c.detok.push(token))
        if stopped:
            # The token that completed the stop sequence is not part of the answer; those before it are if any of
            # their text is.
            if c.pending:
                c.pending.pop()
            if text:
                if c.pending:
                    events.append(("logprobs", i, c.pending))
                events.append(("text", i, text))
            c.pending = []
            c.done = True
            events.extend(self._finish(c, "stop", prompt_tokens))
            return
        if text:
            if c.pending:
                events.append(("logprobs", i, c.pending))
                c.pending = []
            events.append(("text", i, text))
        if c.constraint is not None and (c.constraint.done or c.constraint.error):
            if c.constraint.error:
                self.log(f"error: the grammar refused a token: {c.constraint.error}")
            c.done = True
            events.extend(self._finish(c, "stop", prompt_tokens))

    @staticmethod
    def _finish(c, reason, prompt_tokens):
        c.done = True
        out = []
        if c.pending:  # tokens whose text is still held back ride on the finish
            out.append(("logprobs", c.index, c.pending))
            c.pending = []
        rest = c.stops.flush()  # text held back for a stop sequence that never completed
        if rest:
            out.append(("text", c.index, rest))
        out.append(("finish", c.index, reason, prompt_tokens, c.produced))
        return out

    def _entry(self, c, token, logprob, top):
        """One token's logprob entry; texts are pieces after the choice's last LOGPROB_CONTEXT tokens."""
        before = self.tokenizer.decode(c.context, skip_special_tokens=True)

        def piece(t):  # as the in-process engines decode it (special tokens are skipped, as in the text)
            text = self.tokenizer.decode(c.context + [t], skip_special_tokens=True)
            return text[len(before):] if text.startswith(before) else self.tokenizer.decode([t], skip_special_tokens=True)

        def one(t, lp):
            text = piece(t)
            return {"token": text, "logprob": max(lp, LOGPROB_FLOOR), "bytes": list(text.encode("utf-8"))}

        ranked = sorted(top, key=lambda x: (-x[1], x[0]))  # ties to the lower id
        entry = one(token, logprob)
        entry["top"] = [one(t, lp) for t, lp in ranked]
        c.context.append(token)
        del c.context[:-LOGPROB_CONTEXT]
        return entry

    @staticmethod
    def pick(logits, s, counts, gen, window=None):
        """The repeat penalty first (llama.cpp's: a positive logit divided, a negative one multiplied, each token of
        the window once), then presence/frequency, temperature, top_k, top_p and min_p in transformers' order."""
        if window and s.repeat_penalty != 1.0:
            idx = torch.tensor(sorted(set(window)), device=logits.device)
            picked = logits[idx]
            logits[idx] = torch.where(picked > 0, picked / s.repeat_penalty, picked * s.repeat_penalty)
        if counts and (s.presence_penalty or s.frequency_penalty):
            idx = torch.tensor(list(counts.keys()), device=logits.device)
            n = torch.tensor(list(counts.values()), dtype=logits.dtype, device=logits.device)
            logits[idx] -= s.presence_penalty + s.frequency_penalty * n
        if s.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / s.temperature, dim=-1)
        if 0 < s.top_k < probs.shape[-1]:
            # Stable descending sort: ties at the cut keep the lower ids, as the other engines do.
            _, order = torch.sort(probs, descending=True, stable=True)
            drop = order[s.top_k :]
            probs[drop] = 0
            probs = probs / probs.sum()
        if s.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < s.top_p
            keep[0] = True
            probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
        if s.min_p > 0:
            probs = torch.where(probs >= s.min_p * probs.max(), probs, torch.zeros_like(probs))
        return int(torch.multinomial(probs.cpu(), 1, generator=gen))

    def run(self, ids, sampling, cancelled=None, constraint=None):
        """One choice, its events without the index: ("token", id), ("text", piece), ("finish", reason,
        prompt_tokens, completion_tokens) (see generate)."""
        for ev in self.generate(ids, sampling, cancelled, constraints=[constraint]):
            if ev[0] != "logprobs":
                yield (ev[0], *ev[2:])
