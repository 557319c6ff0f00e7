"""One serving engine: a cost model, a pool of KV blocks, a waiting queue and a running batch.

The instance runs one engine step at a time. A *step* holds work items ``(new_tokens, context)``
chosen by its scheduler (:mod:`pdlib.sim.schedulers`) and lasts ``CostModel.cost(...)`` seconds.
Tokens a step produces are stamped with the step's end time.

Fast path. When a step holds only decodes, nothing changes the batch until one of its requests
finishes, blocks run out, or new work arrives. Over the next ``k`` steps the batch of B requests
with ΣL cached tokens has ``ΣL_j = ΣL + B·j`` at step j, so the k step times come from one
vectorized ``CostModel.cost`` call and the step end times from one cumulative sum: a *stretch*.
A stretch is planned up to its natural end (first finish, KV blocks exhausted, or ``max_stretch``
steps); new work for the instance cuts it at the first step boundary at or after the moment the
work arrives, exactly where a step-by-step simulation would have seen it.

Preemption (vLLM's recompute mode): when a decode step needs a new block and none is free, the
most recently admitted running request loses its blocks and goes back to the front of the
waiting queue; later it re-prefills its prompt plus the tokens it had produced.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..cost import CostModel
from ..models import attention_pairs, attention_pairs_scalar
from .kv import BlockPool
from .pricing import StepPricer
from .request_state import DECODE, PREFILL, RequestTable

#: Timeline columns (one row per step, or per decode stretch of ``steps`` identical-batch steps).
TIMELINE_COLUMNS = ("instance", "role", "start", "end", "steps", "n_prefill_tokens", "n_decode",
                    "batch", "kv_tokens_used", "kv_capacity", "bound")


@dataclass
class Step:
    """A step in flight: ``items`` are ``(request, new_tokens)``; context is the request's KV."""
    start: float
    end: float
    items: list
    bound: str


@dataclass
class Stretch:
    """``k`` decode steps of a fixed batch; step j (0-based) ends at ``ends[j]``."""
    start: float
    ends: np.ndarray
    members: list
    kv0: np.ndarray         # KV tokens of each member before the stretch
    held0: np.ndarray       # blocks held by each member before the stretch
    gen0: np.ndarray        # tokens produced by each member before the stretch
    k: int                  # steps that will run (≤ len(ends); lowered by cuts)
    reserved: int           # blocks allocated for all len(ends) steps
    bound: str

    @property
    def end(self) -> float:
        return float(self.ends[self.k - 1])


class Instance:
    """A serving engine. ``role`` is "both" (colocated), "prefill" (hands requests off once their
    prefill is done) or "decode" (receives requests with their KV through ``ready``)."""

    def __init__(self, idx: int, cm: CostModel, policy, reqs: RequestTable, *, role: str = "both",
                 block_size: int = 16, kv_tokens: int | None = None, max_stretch: int = 1024) -> None:
        cap = cm.kv_capacity_tokens if kv_tokens is None else int(kv_tokens)
        if cap < block_size:
            raise ValueError(f"KV capacity of {cap} tokens is below one block of {block_size} tokens")
        self.idx, self.cm, self.policy, self.reqs, self.role = idx, cm, policy, reqs, role
        self.pool = BlockPool(cap // block_size, block_size)
        self.max_stretch = max_stretch
        self.waiting: deque[int] = deque()    # need a prefill here
        self.ready: deque[int] = deque()      # decode role: KV has landed, may join the batch
        self.pending: deque = deque()         # decode role: prefilled elsewhere, KV not pulled yet
        self.running: list[int] = []          # admitted, oldest first
        self.busy = False
        self.version = 0                      # bumps invalidate stale step-end events
        self.work: Step | Stretch | None = None
        self.timeline: list[tuple] = []
        self._window = cm.model.sliding_window
        self.pricer = StepPricer(cm)
        self._preempted = False               # a preemption happened while planning this step

    # ---------------------------------------------------------------- memory and queues
    @property
    def load(self) -> int:
        """Requests queued or served here (what a least-loaded router compares)."""
        return len(self.waiting) + len(self.ready) + len(self.pending) + len(self.running)

    def fits_ever(self, tokens: int) -> bool:
        return self.pool.blocks_for(tokens) <= self.pool.capacity

    def can_reserve(self, tokens: int) -> bool:
        return self.pool.blocks_for(tokens) <= self.pool.free

    def admit(self, r: int, reserve_tokens: int, now: float) -> None:
        """Move r from the front of ``waiting`` into ``running`` holding blocks for ``reserve_tokens``.
        Its KV starts at its prefix-cache hit (``cached[r]`` tokens, not computed)."""
        assert self.waiting[0] == r
        self.waiting.popleft()
        b = self.pool.blocks_for(reserve_tokens)
        self.pool.alloc(b)
        self.reqs.blocks[r] = b
        self.reqs.kv[r] = self.reqs.cached[r]
        self.running.append(r)
        if self.reqs.first_sched[r] != self.reqs.first_sched[r]:      # NaN: first time scheduled
            self.reqs.first_sched[r] = now

    def join_ready(self, max_batch: int) -> None:
        while self.ready and len(self.running) < max_batch:
            self.running.append(self.ready.popleft())

    def preempt(self, r: int) -> None:
        """Recompute-mode preemption: free r's blocks, put it first in line to re-prefill."""
        q = self.reqs
        self.pool.release(q.blocks[r])
        q.blocks[r] = q.kv[r] = 0
        q.phase[r] = PREFILL
        q.preemptions[r] += 1
        self._preempted = True
        self.running.remove(r)
        self.waiting.appendleft(r)

    def grow(self, decoders: list[int]) -> list[int]:
        """Give each decoder the blocks for one more KV token, preempting the most recently
        admitted running requests while blocks are short. Returns the decoders still running."""
        q, bs = self.reqs, self.pool.block_size
        while True:
            need = sum(max(0, -(-(q.kv[r] + 1) // bs) - q.blocks[r]) for r in decoders)
            if need <= self.pool.free:
                break
            victim = self.running[-1]
            self.preempt(victim)
            if victim in decoders:
                decoders.remove(victim)
        for r in decoders:
            b = -(-(q.kv[r] + 1) // bs)
            if b > q.blocks[r]:
                self.pool.alloc(b - q.blocks[r])
                q.blocks[r] = b
        return decoders

    # ---------------------------------------------------------------- starting work
    def start(self, now: float) -> float | None:
        """Ask the scheduler for the next step and start it; returns its end time (None: idle)."""
        self._preempted = False
        plan = self.policy.plan(self, now)
        if plan is None:
            self.work = None
            return None
        kind, payload = plan
        self.work = self._step(payload, now) if kind == "step" else self._stretch(payload, now)
        return self.work.end

    def _step(self, items: list, now: float) -> Step:
        q, w = self.reqs, self._window
        T = L = logits = 0
        pairs = dpairs = 0.0
        cctx = 0
        for r, n in items:
            c = q.kv[r]
            T += n
            L += c
            p = (n * c + n * (n + 1) / 2) if w is None else attention_pairs_scalar(n, c, w)
            pairs += p
            if n == 1:                  # a decode (MLA prices its pairs in the absorbed form)
                dpairs += p
            else:                       # a chunk (MLA rebuilds the keys of its cached tokens)
                cctx += c
            if q.phase[r] == DECODE or c + n == q.target(r):
                logits += 1
        t, bound = self.pricer.step(len(items), T, L, pairs, logits, dpairs, cctx)
        return Step(now, now + t, items, bound)

    def _need(self, st_kv: np.ndarray, held: np.ndarray, k: int) -> int:
        """Extra blocks the members need to run k more decode steps."""
        bs = self.pool.block_size
        return int(np.maximum(0, -(-(st_kv + k) // bs) - held).sum())

    def _stretch(self, members: list[int], now: float) -> Stretch:
        q = self.reqs
        kv0 = np.array([q.kv[r] for r in members], dtype=np.int64)
        held0 = np.array([q.blocks[r] for r in members], dtype=np.int64)
        gen0 = np.array([q.gen[r] for r in members], dtype=np.int64)
        H = min(min(q.output[r] - q.gen[r] for r in members), self.max_stretch)
        if self._preempted:           # the scheduler decides afresh after one step (queues changed)
            H = 1
        free = self.pool.free
        need = self._need(kv0, held0, H)
        if need > free:            # blocks run out: stop where they do
            lo, hi = 1, H                                 # need(1) == 0: grow() gave step 1 its blocks
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if self._need(kv0, held0, mid) <= free else (lo, mid - 1)
            H = lo
            reserved = self._need(kv0, held0, H)
        else:
            reserved = need
        B = len(members)
        j = np.arange(H)
        ctx = float(kv0.sum()) + B * j                   # ΣL at step j
        if self._window is None:
            pairs = ctx + B                               # each decode: L + 1 pairs
        else:
            pairs = attention_pairs(1, kv0[:, None] + j[None, :], self._window).sum(axis=0)
        times, bound = self.pricer.decode_steps(B, ctx, pairs)
        ends = now + np.cumsum(times)
        self.pool.alloc(reserved)
        return Stretch(now, ends, members, kv0, held0, gen0, H, reserved, bound)

    def cut(self, t: float) -> float | None:
        """New work arrived at time t: end the running stretch with the step in progress at t
        (the first step ending at or after t) and give back the blocks reserved for the steps
        after it. Returns the new end time, or None when nothing changed."""
        st = self.work
        if not isinstance(st, Stretch):
            return None
        k = int(np.searchsorted(st.ends, t, side="left")) + 1
        if k >= st.k:
            return None
        st.k = k
        keep = self._need(st.kv0, st.held0, k)
        self.pool.release(st.reserved - keep)
        st.reserved = keep
        return st.end

    # ---------------------------------------------------------------- finishing work
    def finish(self, now: float) -> tuple[list[int], list[int]]:
        """Apply the effects of the work that ends now. Returns (finished, handed_off): requests
        that produced their last token, and (role "prefill") requests whose prefill is done."""
        work, self.work = self.work, None
        if work is None:
            return [], []
        return self._finish_step(work) if isinstance(work, Step) else self._finish_stretch(work)

    def _row(self, work, steps: int, n_prefill: int, n_decode: int, batch: int) -> None:
        bs = self.pool.block_size
        self.timeline.append((self.idx, self.role, work.start, work.end, steps, n_prefill, n_decode,
                              batch, self.pool.used * bs, self.pool.capacity * bs, work.bound))

    def _finish_step(self, st: Step) -> tuple[list[int], list[int]]:
        q = self.reqs
        finished, handed = [], []
        n_prefill = n_decode = 0
        for r, n in st.items:
            if q.phase[r] == DECODE:
                n_decode += 1
                q.kv[r] += n
                if q.emit(r, st.end):
                    finished.append(r)
                continue
            n_prefill += n
            q.kv[r] += n
            if q.kv[r] == q.target(r):                    # prefill complete: emits a token
                q.phase[r] = DECODE
                if q.emit(r, st.end):
                    finished.append(r)
                elif self.role == "prefill":
                    handed.append(r)
        self._row(st, 1, n_prefill, n_decode, len(st.items))
        self._leave(finished, handed)
        return finished, handed

    def _finish_stretch(self, st: Stretch) -> tuple[list[int], list[int]]:
        q, k = self.reqs, st.k
        m = np.asarray(st.members, dtype=np.int64)
        base = q.off[m] + st.gen0
        q.token_time[base[:, None] + np.arange(k)[None, :]] = st.ends[None, :k]
        self.pool.release(st.reserved - self._need(st.kv0, st.held0, k))
        bs = self.pool.block_size
        finished = []
        for r in st.members:
            q.gen[r] += k
            q.kv[r] += k
            q.blocks[r] = max(q.blocks[r], -(-q.kv[r] // bs))
            if q.gen[r] == q.output[r]:
                finished.append(r)
        self._row(st, k, 0, len(st.members), len(st.members))
        self._leave(finished, [])
        return finished, []

    def _leave(self, finished: list[int], handed: list[int]) -> None:
        if not finished and not handed:
            return
        q = self.reqs
        for r in finished:
            self.pool.release(q.blocks[r])
            q.blocks[r] = 0
        gone = set(finished) | set(handed)
        self.running = [r for r in self.running if r not in gone]
