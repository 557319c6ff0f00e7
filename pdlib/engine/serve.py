"""Serve a batch of requests on one colocated engine and time every token.

:func:`serve` runs :meth:`pdlib.engine.Runner.generate` — the same continuous batching and
(optionally) chunked prefill, nothing re-implemented — and stamps each token with the wall time
at which the step that made it finished. All requests arrive at time 0 (the call), so the times
are directly comparable with a disaggregated run's :class:`pdlib.disagg.RequestResult` on the
same prompts: ``ttft`` = time of token 1, ``tpot`` = mean gap between later tokens::

    from pdlib import engine
    m = engine.load("tiny", dtype=torch.float32)
    whole = engine.serve(m, prompts, 16)                                   # whole-prompt prefill
    chunked = engine.serve(m, prompts, 16, token_budget=128)               # Sarathi-style steps
    whole[0].ttft, whole[0].tpot, whole[0].tokens
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from .allocator import steady_allocator
from .kv_cache import blocks_for_all
from .model import Decoder
from .runner import Runner, _sync

__all__ = ["Served", "serve"]


@dataclass(frozen=True)
class Served:
    """One request served by :func:`serve`.

    ``tokens``: the generated token ids (greedy, without the prompt); ``token_times``: seconds
    since the batch was submitted at which each token was out (its step had finished), one per
    token, non-decreasing. ``ttft`` (seconds) = ``token_times[0]``; ``tpot`` (seconds per token)
    = ``(token_times[-1] − token_times[0]) / (len(tokens) − 1)``, None for a single token — the
    same definitions as :class:`pdlib.disagg.RequestResult`.
    """
    tokens: tuple[int, ...]
    token_times: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.token_times) or not self.tokens:
            raise ValueError(f"need one time per token and at least one token, got {len(self.tokens)} "
                             f"tokens and {len(self.token_times)} times")
        if any(b < a for a, b in zip(self.token_times, self.token_times[1:])):
            raise ValueError(f"token_times must be non-decreasing seconds, got {self.token_times}")

    @property
    def ttft(self) -> float:
        """Seconds from submission to the first token."""
        return self.token_times[0]

    @property
    def tpot(self) -> float | None:
        """Mean seconds per output token after the first (None with one token)."""
        n = len(self.token_times)
        return (self.token_times[-1] - self.token_times[0]) / (n - 1) if n > 1 else None


def serve(model: Decoder, prompts: Sequence[Sequence[int]], max_new_tokens: int,
          chunk_size: int | None = None, token_budget: int | None = None,
          n_blocks: int | None = None, block_size: int = 16) -> list[Served]:
    """Serve ``prompts`` (lists of token ids, all arriving at once) greedily on one engine and
    return a :class:`Served` per prompt, in order.

    Scheduling is :meth:`Runner.generate`'s: each step decodes every running request, then
    spends what is left of ``token_budget`` (tokens per step, None = unlimited) on prefill
    chunks of at most ``chunk_size`` tokens (None = whole prompts). ``chunk_size=None,
    token_budget=None`` is the colocated engine of chapter 6 with whole-prompt prefill (all
    prompts in the first step); ``token_budget=B`` is Sarathi-Serve's chunked prefill with a
    B-token budget per step, decodes included. ``n_blocks`` blocks of ``block_size`` tokens
    (default: room for every request at once, as :func:`pdlib.engine.generate`).

    Times are wall-clock seconds from the call (after the KV cache is allocated), taken when a
    step's logits are back on the host (CUDA is synchronised), so a token's time includes
    everything the engine did before it; tokens made by the same step share one time. :func:`steady_allocator` is applied first, as in the
    disaggregated workers, so both are timed in the same allocator regime.
    """
    prompts = [list(p) for p in prompts]
    if not prompts:
        raise ValueError("serve needs at least one prompt")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if n_blocks is None:
        n_blocks = blocks_for_all(prompts, max_new_tokens, block_size)
    steady_allocator()
    runner = Runner(model, n_blocks=n_blocks, block_size=block_size, record=True)
    times: list[list[float]] = [[] for _ in prompts]
    step_end: dict[int, float] = {}                 # step number -> seconds when it was done
    _sync(model.device)
    t0 = time.perf_counter()

    def stamp(i: int, token: int) -> None:
        # every token of one step gets that step's time (the first stamp after it finished)
        times[i].append(step_end.setdefault(len(runner.history), time.perf_counter() - t0))

    tokens = runner.generate(prompts, max_new_tokens, chunk_size, token_budget, on_token=stamp)
    return [Served(tuple(t), tuple(ts)) for t, ts in zip(tokens, times)]
