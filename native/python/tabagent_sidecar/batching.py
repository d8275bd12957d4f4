"""Continuous batching for CausalLM: one decode thread per model runs every request's choices as rows of one batch.

A request (a Job: one prompt, its n choices) is prefilled alone on its own KV cache, then its rows join the running
batch between two steps (the shorter cache left-padded, the padding masked out, positions counted per row); rows
leave when they finish, are cancelled or halted, and padding that no row needs any more is trimmed off.

The decode thread does only what needs the logits: the forward pass, each row's sampling (its own torch.Generator,
seeded seed + i, its own penalties and grammar), logprobs, EOS, max_tokens and a grammar's end. Everything per token
that does not (detokenizing, stop sequences, logprob texts, JSON and the socket write) runs on the request's own
thread, which reads the job's queue; a stop sequence found there ends its row before the next step.

transformers' own continuous batching (generation/continuous_batching, 5.24) was not used: it seeds one generator
for the whole manager (a seeded request's text would depend on its neighbours), reports only the chosen token's
logprob (no alternatives), and has no hook for a per-request grammar mask or our penalties."""
import os
import queue
import threading

import torch

from .protocol import REPEAT_WINDOW

# A prompt is evaluated alone; rows then decode together. Kept small so a long batch never starves the prefill.
MAX_ROWS = int(os.environ.get("TABAGENT_MAX_BATCH", "64") or 64)


class _Row:
    """The decode side of one choice: what sampling needs."""

    __slots__ = ("job", "index", "gen", "counts", "window", "constraint", "produced", "next", "pad")

    def __init__(self, job, index, seed, constraint, ids, sampling):
        self.job = job
        self.index = index
        self.gen = torch.Generator(device="cpu")
        self.gen.manual_seed(seed)
        self.counts = {}
        self.window = list(ids[-REPEAT_WINDOW:]) if sampling.repeat_penalty != 1.0 else None
        self.constraint = constraint
        self.produced = 0
        self.next = None  # the token sampled last, fed to the next step
        self.pad = 0  # left-padding columns in the batch cache

    @property
    def plain_greedy(self):
        s = self.job.sampling
        return (
            self.constraint is None
            and s.temperature == 0
            and not (self.window and s.repeat_penalty != 1.0)
            and not (s.presence_penalty or s.frequency_penalty)
        )


class Job:
    """One request on its way through the batch: the decode thread puts lists of items on `out`:
    ("tok", i, token, logprob, top) and ("end", i, reason), ("gone", i) for a choice dropped without an end
    (halted), ("error", exception)."""

    def __init__(self, ids, sampling, n, logprobs, constraints, halted, cancelled, max_tokens, base_seed):
        self.ids = ids
        self.sampling = sampling
        self.n = n
        self.logprobs = logprobs
        self.halted = halted
        self.cancelled = cancelled
        self.max_tokens = max_tokens
        self.ended = set()  # choices the request's thread ended (a stop sequence)
        self.out = queue.SimpleQueue()
        self.rows = [
            _Row(self, i, (base_seed + i) % (1 << 63), constraints[i], ids, sampling) for i in range(n)
        ]


def batchable(model, cache_arg, device):
    """Whether this model's cache is the plain dynamic one (per-layer key/value tensors that can be padded and
    concatenated); a sliding-window or other cache keeps the one-request-at-a-time loop."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    try:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([[0]], device=device), use_cache=True)
        cache = getattr(out, cache_arg, None)
    except Exception:  # noqa: BLE001 - a model that cannot be probed is not batched
        return False
    layers = getattr(cache, "layers", None)
    return type(cache) is DynamicCache and bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class Batcher:
    """The decode thread of one CausalLM (started on first use)."""

    def __init__(self, lm):
        self.lm = lm
        self.inbox = queue.SimpleQueue()
        self.rows = []
        self.cache = None
        self.thread = None
        self.start_lock = threading.Lock()
        self.peak = 0
        self.steps = 0

    def stats(self):
        return {"rows": len(self.rows), "peak_rows": self.peak, "steps": self.steps}

    def submit(self, job):
        with self.start_lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="decode", daemon=True)
                self.thread.start()
        self.inbox.put(job)

    # ---- the decode thread

    def _loop(self):
        while True:
            try:
                # Block only when nothing is decoding; else take whoever arrived since the last step.
                jobs = [self.inbox.get()] if not self.rows else []
                while len(self.rows) < MAX_ROWS:
                    try:
                        jobs.append(self.inbox.get_nowait())
                    except queue.Empty:
                        break
                self._prefill(jobs)
                self._drop()
                if self.rows:
                    self._step()
            except Exception as err:  # noqa: BLE001 - the batch fails; its requests get the error, the thread goes on
                for job in {id(r.job): r.job for r in self.rows}.values():
                    job.out.put([("error", err)])
                self.rows = []
                self.cache = None

    @torch.inference_mode()
    def _prefill(self, jobs):
        """Evaluates the prompts that arrived since the last step in one forward (left-padded to the longest; one
        prompt alone is not padded), samples each choice's first token, and joins the live rows to the batch."""
        lm = self.lm
        jobs = [j for j in jobs if not j.cancelled.is_set()]
        if not jobs:
            return
        try:
            longest = max(len(j.ids) for j in jobs)
            kwargs = {}
            if len(jobs) == 1:
                step_input = torch.tensor([jobs[0].ids], device=lm.device)
            else:
                step_input = torch.zeros((len(jobs), longest), dtype=torch.long, device=lm.device)
                mask = torch.zeros((len(jobs), longest), dtype=torch.long, device=lm.device)
                for b, j in enumerate(jobs):
                    step_input[b, longest - len(j.ids) :] = torch.tensor(j.ids, device=lm.device)
                    mask[b, longest - len(j.ids) :] = 1
                kwargs = {"attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
            out = lm.model(input_ids=step_input, **lm.step_kwargs, **kwargs)
            cache = getattr(out, lm.cache_arg)
            logits = out.logits[:, -1, :].float()
            rows = []
            if any(j.n > 1 for j in jobs):  # each prompt's cache row repeated for its n choices
                at = torch.tensor([b for b, j in enumerate(jobs) for _ in range(j.n)], device=lm.device)
                cache.batch_select_indices(at)
                logits = logits[at]
            for j in jobs:
                for r in j.rows:
                    r.pad = longest - len(j.ids)
                    rows.append(r)
            live = self._sample(rows, logits)
        except Exception as err:  # noqa: BLE001 - these requests fail; the batch goes on
            for j in jobs:
                j.out.put([("error", err)])
            return
        if not live:
            return
        if len(live) < len(rows):
            keep = [b for b, r in enumerate(rows) if r in live]
            cache.batch_select_indices(torch.tensor(keep, device=lm.device))
        self._join(live, cache)

    def _join(self, rows, cache):
        """Appends rows (their cache `cache`) to the batch, left-padding whichever cache is shorter."""
        if not self.rows:  # the rows keep the padding of their own prefill
            self.rows, self.cache = list(rows), cache
            self._trim()
            return
        have, add = self.cache.get_seq_length(), cache.get_seq_length()
        length = max(have, add)
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, length - have), _left_pad(theirs.keys, length - add)], dim=0)
            mine.values = torch.cat([_left_pad(mine.values, length - have), _left_pad(theirs.values, length - add)], dim=0)
        for r in self.rows:
            r.pad += length - have
        for r in rows:
            r.pad += length - add
        self.rows.extend(rows)

    def _drop(self):
        """Drops rows whose request was cancelled, or whose choice ended on the request's side or was halted."""
        keep = []
        for r, row in enumerate(self.rows):
            job = row.job
            if job.cancelled.is_set():
                continue
            if row.index in job.halted or row.index in job.ended:
                job.out.put([("gone", row.index)])
                continue
            keep.append(r)
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache = [], None
            return
        self.cache.batch_select_indices(torch.tensor(keep, device=self.lm.device))
        self.rows = [self.rows[r] for r in keep]
        self._trim()

    def _trim(self):
        """Cuts the padding columns every row has."""
        trim = min(r.pad for r in self.rows)
        if trim:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, trim:, :]
                layer.values = layer.values[:, :, trim:, :]
            for r in self.rows:
                r.pad -= trim

    @torch.inference_mode()
    def _step(self):
        lm = self.lm
        rows = self.rows
        self.steps += 1
        self.peak = max(self.peak, len(rows))
        step_input = torch.tensor([[r.next] for r in rows], device=lm.device)
        kwargs = {}
        if any(r.pad for r in rows):
            length = self.cache.get_seq_length()
            mask = torch.ones((len(rows), length + 1), dtype=torch.long, device=lm.device)
            for b, r in enumerate(rows):
                if r.pad:
                    mask[b, : r.pad] = 0
            kwargs["attention_mask"] = mask
            kwargs["position_ids"] = torch.tensor([[length - r.pad] for r in rows], device=lm.device)
        out = lm.model(input_ids=step_input, **lm.step_kwargs, **kwargs, **{lm.cache_arg: self.cache})
        self.cache = getattr(out, lm.cache_arg)
        live = self._sample(rows, out.logits[:, -1, :].float())
        if len(live) < len(rows):
            keep = [b for b, r in enumerate(rows) if r in live]
            if keep:
                self.cache.batch_select_indices(torch.tensor(keep, device=lm.device))
            self.rows = live
            if not live:
                self.cache = None

    def _sample(self, rows, logits):
        """Each row's next token from its logits row; the items go to each job's queue. Returns the rows still live."""
        lm = self.lm
        want = [r.job.logprobs for r in rows]
        lsm = torch.log_softmax(logits, dim=-1) if any(w is not None for w in want) else None
        greedy = None
        if any(r.plain_greedy for r in rows):
            greedy = logits.argmax(dim=-1).tolist()  # one op for every plain greedy row
        picked = []
        for b, r in enumerate(rows):
            if greedy is not None and r.plain_greedy:
                picked.append(greedy[b])
                continue
            row = logits[b]
            if r.constraint is not None:
                r.constraint.mask(row)
            token = lm.pick(row, r.job.sampling, r.counts, r.gen, r.window)
            picked.append(token)
        chosen = tops = None
        if lsm is not None:
            chosen = lsm.gather(1, torch.tensor(picked, device=lsm.device).unsqueeze(1)).squeeze(1).tolist()
            top = max(w or 0 for w in want)
            if top > 0:
                values, order = torch.topk(lsm, min(top, lsm.shape[-1]), dim=-1)
                tops = [list(zip(o, v)) for o, v in zip(order.tolist(), values.tolist())]
        items = {}
        live = []
        for b, r in enumerate(rows):
            job, token = r.job, picked[b]
            got = items.setdefault(id(job), (job, []))[1]
            if token in lm.eos:
                got.append(("end", r.index, "stop"))
                continue
            if r.constraint is not None:
                r.constraint.advance(token)
            r.produced += 1
            r.counts[token] = r.counts.get(token, 0) + 1
            if r.window is not None:
                r.window.append(token)
                del r.window[:-REPEAT_WINDOW]
            lp = None if chosen is None or job.logprobs is None else chosen[b]
            top = None if tops is None or not job.logprobs else tops[b][: job.logprobs]
            got.append(("tok", r.index, token, lp, top))
            if r.constraint is not None and (r.constraint.done or r.constraint.error):
                if r.constraint.error:
                    lm.log(f"error: the grammar refused a token: {r.constraint.error}")
                got.append(("end", r.index, "stop"))
            elif r.produced >= job.max_tokens:
                got.append(("end", r.index, "length"))
            else:
                r.next = token
                live.append(r)
        for job, got in items.values():
            job.out.put(got)
        return live


def _left_pad(t, n):
    if n == 0:
        return t
    return torch.cat([t.new_zeros((*t.shape[:2], n, t.shape[3])), t], dim=2)
