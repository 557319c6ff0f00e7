"""Scheduling policies: which work items go into an instance's next step.

Each policy's ``plan(inst, now)`` returns ``("step", [(request, new_tokens), ...])`` for a step
that holds prefill work, ``("stretch", decoders)`` for decode-only steps (run by the instance's
fast path), or ``None`` when there is nothing it can run now.

* :class:`Static` — request-level batching (before Orca): admit up to ``max_batch`` waiting
  requests, prefill them together, decode until *all* of them finish, only then admit again.
  Each admitted request reserves KV blocks for ``prompt + output`` tokens, so it is never preempted.
* :class:`Continuous` — vLLM's classic iteration-level scheduler with prefill priority: if
  waiting requests can be admitted (free blocks for their prompt, batch below ``max_batch``,
  Σ prompt tokens within ``token_budget``) the step prefills their whole prompts and nothing else;
  otherwise it decodes every running request.
* :class:`Chunked` — Sarathi-Serve's stall-free batching, decode first: every running decode
  (one token each) goes in, and the rest of the ``token_budget`` (the chunk size) is filled with
  prefill chunks, first of partly prefilled requests, then of newly admitted ones, FCFS.
  On a disaggregated decode instance that may prefill (conditional disaggregation), requests
  whose KV has landed join the batch first, and again whenever a preemption has made room.

The first request of a prefill step is admitted even when its prompt alone exceeds the
budget (otherwise it could never run). A request with a prefix-cache hit of h tokens
(``RequestTable.cached``) is admitted with h tokens of KV already in place, so its prefill items
and the token budget count only the ``target − h`` tokens computed.
"""
from __future__ import annotations

from dataclasses import dataclass

from .request_state import DECODE, PREFILL


@dataclass(frozen=True)
class Static:
    max_batch: int = 256
    #: new work does not change a running static batch, so decode stretches are never cut
    interruptible: bool = False

    def plan(self, inst, now: float):
        q = inst.reqs
        if inst.running:
            return "stretch", inst.grow(list(inst.running))
        items = []
        while inst.waiting and len(items) < self.max_batch:
            r = inst.waiting[0]
            if not inst.can_reserve(q.prompt[r] + q.output[r]):
                break
            inst.admit(r, q.prompt[r] + q.output[r], now)
            items.append((r, q.target(r) - q.cached[r]))
        return ("step", items) if items else None


@dataclass(frozen=True)
class Continuous:
    max_batch: int = 256
    token_budget: int = 8192      # vLLM's max_num_batched_tokens for one prefill step
    interruptible: bool = True

    def plan(self, inst, now: float):
        q = inst.reqs
        while True:
            inst.join_ready(self.max_batch)
            items, tokens = [], 0
            while inst.waiting and len(inst.running) < self.max_batch:
                r = inst.waiting[0]
                t = q.target(r)
                n = t - q.cached[r]                       # tokens computed (prefix-cache hits skipped)
                if (items and tokens + n > self.token_budget) or not inst.can_reserve(t):
                    break
                inst.admit(r, t, now)
                items.append((r, n))
                tokens += n
            if items:
                return "step", items
            if not inst.running:
                return None
            decoders = inst.grow(list(inst.running))
            if decoders:
                return "stretch", decoders
            # every running request was preempted: memory is free again, admit on the next pass


@dataclass(frozen=True)
class Chunked:
    max_batch: int = 256
    token_budget: int = 512       # Sarathi-Serve's chunk size: tokens per step, decodes included
    interruptible: bool = True

    def plan(self, inst, now: float):
        q = inst.reqs
        inst.join_ready(self.max_batch)
        decoders = inst.grow([r for r in inst.running if q.phase[r] == DECODE])
        while inst.ready and len(inst.running) < self.max_batch:
            # preemption made room: requests whose KV has landed (disaggregated decode) join now
            inst.join_ready(self.max_batch)
            decoders = inst.grow([r for r in inst.running if q.phase[r] == DECODE])
        budget = self.token_budget - len(decoders)
        chunks = []
        for r in inst.running:
            if budget <= 0:
                break
            if q.phase[r] == PREFILL:
                c = min(q.target(r) - q.kv[r], budget)
                chunks.append((r, c))
                budget -= c
        while budget > 0 and inst.waiting and len(inst.running) < self.max_batch:
            r = inst.waiting[0]
            t = q.target(r)
            if not inst.can_reserve(t):
                break
            inst.admit(r, t, now)
            c = min(t - q.cached[r], budget)
            chunks.append((r, c))
            budget -= c
        if chunks:
            return "step", [(r, 1) for r in decoders] + chunks
        return ("stretch", decoders) if decoders else None


SCHEDULERS = {"static": Static, "continuous": Continuous, "chunked": Chunked}


def make_policy(name: str, max_batch: int = 256, token_budget: int | None = None):
    """Build the policy called ``name`` ("static", "continuous" or "chunked"). ``token_budget``
    defaults to 512 for "chunked" (its chunk size) and 8192 for "continuous"."""
    if name not in SCHEDULERS:
        raise KeyError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}")
    if not isinstance(max_batch, (int,)) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    if name == "static":
        return Static(max_batch)
    if token_budget is None:
        token_budget = 512 if name == "chunked" else 8192
    if token_budget < 1:
        raise ValueError(f"token budget (chunk size) must be >= 1 token, got {token_budget!r}")
    return SCHEDULERS[name](max_batch, int(token_budget))
