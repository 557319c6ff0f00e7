"""Per-request state of a simulation, kept column-wise in plain Python lists.

Token bookkeeping for request r with prompt P and output O:

* ``gen[r]`` output tokens produced so far (0..O); token g's time goes to ``token_time[off[r] + g]``.
* ``kv[r]`` tokens whose KV is cached on the instance now serving r.
* A request needs a *prefill* of ``target = P + gen`` tokens (the prompt, plus on a re-prefill
  after preemption the tokens it had already produced); the step that completes that prefill
  emits one token. After it, ``kv = P + gen − 1``: the newest token's KV is written by the next
  decode step, which is the item ``(1, kv)`` and emits one more token.
* ``cached[r]`` = h prompt tokens are a prefix-cache hit: when r is admitted for a prefill its
  ``kv`` starts at h (their KV is read from the cache, not computed), so the prefill computes
  ``target − h`` tokens and its first item is ``(target − h, h)``; blocks are still reserved for
  all ``target`` tokens. A re-prefill after preemption skips the same h tokens again: the prefix
  stays in the (shared) prefix cache, only the request's private copy was dropped.
* ``site[r]``: role of the instance chosen for r's first prefill ("both" colocated, "prefill" or
  "decode" disaggregated; "" when rejected on arrival).
"""
from __future__ import annotations

import numpy as np

PREFILL, DECODE = 0, 1


class RequestTable:
    """Mutable state of every request of one run (index = request id = workload row)."""

    def __init__(self, arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray,
                 cached: np.ndarray | None = None) -> None:
        self.n = len(arrival)
        self.arrival = np.asarray(arrival, dtype=np.float64)
        self.prompt: list[int] = [int(x) for x in prompt]
        self.output: list[int] = [int(x) for x in output]
        if self.n and (min(self.prompt) < 1 or min(self.output) < 1):
            raise ValueError("every request needs prompt >= 1 and output >= 1 tokens")
        if self.n and np.any(np.diff(self.arrival) < 0):
            raise ValueError("workload arrivals must be sorted in time")
        if cached is None:
            self.cached: list[int] = [0] * self.n
        else:
            self.cached = [int(x) for x in cached]
            if len(self.cached) != self.n:
                raise ValueError(f"cached must have one entry per request: got {len(self.cached)} "
                                 f"for {self.n} requests")
            bad = [i for i, (h, p) in enumerate(zip(self.cached, self.prompt)) if not 0 <= h < p]
            if bad:
                i = bad[0]
                raise ValueError(f"cached tokens must satisfy 0 <= cached <= prompt - 1; request {i} has "
                                 f"cached={self.cached[i]}, prompt={self.prompt[i]}")
        self.site = [""] * self.n                   # role of the instance of its first prefill
        self.gen = [0] * self.n
        self.kv = [0] * self.n
        self.blocks = [0] * self.n                  # blocks held on the serving instance
        self.phase = [PREFILL] * self.n
        self.instance = [-1] * self.n               # instance it was routed to (disaggregated: its prefill
                                                    # instance, or its decode instance when prefilled there)
        self.first_sched = [np.nan] * self.n        # start of its first step
        self.preemptions = [0] * self.n
        self.transfer = [np.nan] * self.n           # disaggregated: KV landed − prefill end
        self.reason = [""] * self.n                 # non-empty: rejected, and why
        self.off = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(self.output, out=self.off[1:])
        self.token_time = np.full(int(self.off[-1]), np.nan)

    def target(self, r: int) -> int:
        """Tokens the next prefill of r must have in KV when done: ``P + gen``."""
        return self.prompt[r] + self.gen[r]

    def emit(self, r: int, t: float) -> bool:
        """Record one output token of r at time t; True when r has produced all its tokens."""
        g = self.gen[r]
        self.token_time[self.off[r] + g] = t
        self.gen[r] = g + 1
        return g + 1 == self.output[r]
