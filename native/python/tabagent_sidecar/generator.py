"""Causal LM generation: our own decode loop over the KV cache, so every token can be streamed, cancelled and
counted, with OpenAI's sampling parameters applied exactly (greedy at temperature 0)."""
import inspect
import os
import threading

import torch

from .folder import check_folder
from .protocol import REPEAT_WINDOW, ProtocolError
from .structured import Grammars, hermes_messages, template_reads_tools, tools_for_template

# Decode this many earlier tokens with each new one, so tokenizers that merge spaces across tokens decode right.
DETOK_CONTEXT = 5


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
        log(f"loaded {cfg.model_type} on {device} ({dtype}), context {self.context}, eos {sorted(self.eos)}")

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
    def tokens(self, ids, sampling, max_tokens, cancelled, constraint=None):
        """Yields token ids; stops at EOS, max_tokens or when `cancelled` is set (checked before each step). With a
        constraint, tokens it does not allow are masked out before the pick (greedy and sampled alike) and each
        picked token advances it."""
        gen = torch.Generator(device="cpu")
        gen.manual_seed(sampling.seed % (1 << 63) if sampling.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
        counts = {}
        # The repeat penalty's window: the last tokens of the prompt and the answer (kept only when it is on).
        window = list(ids[-REPEAT_WINDOW:]) if sampling.repeat_penalty != 1.0 else None
        past = None
        step_input = torch.tensor([ids], device=self.device)
        for _ in range(max_tokens):
            if cancelled.is_set():
                return
            out = self.model(input_ids=step_input, **self.step_kwargs, **{self.cache_arg: past})
            past = getattr(out, self.cache_arg)
            logits = out.logits[0, -1, :].float()
            if constraint is not None:
                constraint.mask(logits)
            token = self.pick(logits, sampling, counts, gen, window)
            if constraint is not None and token not in self.eos:
                constraint.advance(token)
            yield token
            if token in self.eos:
                return
            counts[token] = counts.get(token, 0) + 1
            if window is not None:
                window.append(token)
                del window[:-REPEAT_WINDOW]
            step_input = torch.tensor([[token]], device=self.device)

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
        """Yields ("token", id) for each generated token (before the text it becomes), ("text", piece) events, and
        ends with ("finish", reason, prompt_tokens, completion_tokens). A constraint's grammar, once complete, ends
        the generation as EOS would."""
        cancelled = cancelled or threading.Event()
        max_tokens = self.check_length(ids, sampling)
        detok = IncrementalDetokenizer(self.tokenizer, ids)
        stops = StopMatcher(sampling.stop)
        produced = 0
        reason = "length"
        for token in self.tokens(ids, sampling, max_tokens, cancelled, constraint):
            if token in self.eos:
                reason = "stop"
                break
            produced += 1
            yield ("token", token)
            text, stopped = stops.push(detok.push(token))
            if text:
                yield ("text", text)
            if stopped:
                reason = "stop"
                break
            if constraint is not None and (constraint.done or constraint.error):
                if constraint.error:
                    self.log(f"error: the grammar refused a token: {constraint.error}")
                reason = "stop"
                break
        else:
            if cancelled.is_set():
                return
        rest = stops.flush()  # text held back for a stop sequence that never completed
        if rest:
            yield ("text", rest)
        yield ("finish", reason, len(ids), produced)
