"""Chunked prefill (Sarathi / Sarathi-Serve) in numbers: what cutting a prompt into chunks costs,
what it buys, and how much load a server carries under a token-gap SLO.

A prompt of ``P`` tokens prefilled in chunks of ``c`` tokens runs ``⌈P / c⌉`` steps; chunk i is
the work item ``(c_i, i·c)``: ``c_i`` new tokens after ``i·c`` already cached ones (the
:mod:`pdlib.cost` vocabulary). Decodes that ride along add ``(1, L)`` items to every step::

    chunked prefill time = Σ_i CostModel.step([(c_i, i·c)] + decodes).time          (seconds)
    overhead ratio       = Σ_i step([(c_i, i·c)]).time / CostModel.prefill(P).time

The ratio exceeds 1 because every chunk step reads the weights again (a memory term that a large
chunk hides under its compute), reads the KV of the prefix already done, and pays its own
tensor-parallel all-reduce latency; attention FLOPs are the same either way (each query still
meets every earlier key once).

Capacity under a token-gap SLO (:func:`tbt_capacity`) uses :func:`pdlib.sim.goodput`, i.e. the
per-request attainment of :meth:`pdlib.sim.Result.slo_attainment`. Units: seconds, tokens,
requests per second (req/s).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from . import progress as _progress
from . import sim
from .cost import CostModel

__all__ = ["SARATHI_PAPER", "chunk_schedule", "chunk_steps", "chunk_step_times",
           "chunked_prefill_time",
           "chunk_overhead", "chunk_table", "largest_chunk_within", "chunk_sweep", "tbt_capacity"]

#: Numbers Sarathi-Serve reports (Agrawal et al., OSDI 2024, https://arxiv.org/abs/2403.02310),
#: as collected in the book's fact sheet (FACTS.md §4 claim 8 and §5):
#: ``prefill_overhead``: measured extra time of a 4,096-token prefill done in chunks of the given
#: size vs in one piece (fig. 9a); ``slos``: (P99 TBT target in seconds, token budget) of the
#: strict and relaxed settings of the capacity experiments (§5); ``capacity_ratio_mistral``:
#: Sarathi-Serve's capacity over vLLM for Mistral-7B on one A100 ("up to 2.6×").
SARATHI_PAPER: dict = {
    "prefill_overhead_prompt": 4096,
    "prefill_overhead": {512: 0.19, 1024: 0.20, 2048: 0.02},
    "slos": {"strict": (0.1, 512), "relaxed": (0.5, 2048)},
    "capacity_ratio_mistral": 2.6,
    "model": "Mistral-7B-v0.1",
    "gpu": "A100-80GB",
}


def _pos_int(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer number of tokens, got {v!r}")
    return int(v)


def chunk_schedule(prompt: int, chunk: int) -> list[tuple[int, int]]:
    """The prefill work items of a ``prompt``-token prompt cut into chunks of ``chunk`` tokens:
    ``[(c_0, 0), (c_1, chunk), …]`` with ``c_i = min(chunk, prompt − i·chunk)`` new tokens after
    ``i·chunk`` cached ones. ``chunk ≥ prompt`` gives one whole prefill ``[(prompt, 0)]``."""
    P, c = _pos_int("prompt", prompt), _pos_int("chunk", chunk)
    return [(min(c, P - done), done) for done in range(0, P, c)]


def chunk_steps(prompt: int, chunk: int) -> int:
    """Number of engine steps the chunked prefill takes: ``⌈prompt / chunk⌉``."""
    return len(chunk_schedule(prompt, chunk))


def _decodes(decode_batch: int, decode_context: int) -> list[tuple[int, int]]:
    if not isinstance(decode_batch, (int, np.integer)) or decode_batch < 0:
        raise ValueError(f"decode_batch must be an integer >= 0 requests, got {decode_batch!r}")
    if decode_context < 0:
        raise ValueError(f"decode_context must be >= 0 tokens, got {decode_context!r}")
    return [(1, int(decode_context))] * int(decode_batch)


def chunk_step_times(cm: CostModel, prompt: int, chunk: int, decode_batch: int = 0,
                     decode_context: int = 0) -> np.ndarray:
    """Seconds of each step of the chunked prefill, each step carrying ``decode_batch`` decodes of
    ``decode_context`` cached tokens: ``CostModel.step([(c_i, i·chunk)] + decodes).time``.
    (The decodes' contexts are held fixed: the few tokens they gain meanwhile are negligible.)"""
    dec = _decodes(decode_batch, decode_context)
    return np.array([cm.step([item] + dec).time for item in chunk_schedule(prompt, chunk)])


def chunked_prefill_time(cm: CostModel, prompt: int, chunk: int, decode_batch: int = 0,
                         decode_context: int = 0) -> float:
    """Seconds from the first to the last chunk step of a ``prompt``-token prefill in chunks of
    ``chunk`` tokens, with ``decode_batch`` decodes of ``decode_context`` tokens riding in every
    step: ``Σ_i CostModel.step([(c_i, i·chunk)] + decodes).time`` (see :func:`chunk_step_times`)."""
    return float(chunk_step_times(cm, prompt, chunk, decode_batch, decode_context).sum())


def chunk_overhead(cm: CostModel, prompt: int, chunk: int) -> float:
    """How many times longer the chunked prefill takes than one whole prefill, no decodes:
    ``chunked_prefill_time(cm, prompt, chunk) / cm.prefill(prompt).time`` (1.0 = no overhead)."""
    return chunked_prefill_time(cm, prompt, chunk) / float(cm.prefill(_pos_int("prompt", prompt)).time)


def chunk_table(cm: CostModel, prompt: int, chunks: Sequence[int], decode_batch: int = 0,
                decode_context: int = 0) -> pd.DataFrame:
    """One row per chunk size: ``steps``; ``max_step_s`` (the longest step, i.e. the largest token
    gap the riding decodes see); ``prefill_s`` (:func:`chunked_prefill_time` with the decodes);
    ``overhead`` (:func:`chunk_overhead`, no decodes); ``decode_step_s`` (a decode-only step of the
    same decodes; NaN without decodes) and ``stall_ratio`` = max_step_s / decode_step_s."""
    dec_t = (float(cm.decode(decode_batch, decode_context).time) if decode_batch
             else float("nan"))
    rows = []
    for c in chunks:
        t = chunk_step_times(cm, prompt, c, decode_batch, decode_context)
        rows.append({"chunk": int(c), "steps": len(t), "max_step_s": float(t.max()),
                     "prefill_s": float(t.sum()), "overhead": chunk_overhead(cm, prompt, c),
                     "decode_step_s": dec_t, "stall_ratio": float(t.max()) / dec_t})
    return pd.DataFrame(rows)


def largest_chunk_within(cm: CostModel, step_time: float, decode_batch: int = 0,
                         decode_context: int = 0, prefix: int = 0, max_chunk: int = 1 << 20) -> int:
    """Largest chunk (tokens) whose step, with ``decode_batch`` decodes of ``decode_context`` tokens
    and ``prefix`` tokens of the prompt already cached, lasts at most ``step_time`` seconds; 0 when
    even a 1-token chunk is too slow. Bisection on the integer chunk size (step time grows with it)."""
    if not step_time > 0:
        raise ValueError(f"step_time must be > 0 seconds, got {step_time!r}")
    dec = _decodes(decode_batch, decode_context)

    def fits(c: int) -> bool:
        return cm.step([(c, prefix)] + dec).time <= step_time

    if not fits(1):
        return 0
    lo, hi = 1, _pos_int("max_chunk", max_chunk)
    if fits(hi):
        return hi
    while hi - lo > 1:                    # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def chunk_sweep(model: str, gpu: str, workload, chunks: Sequence[int] = (128, 256, 512, 1024, 2048, 4096),
                *, tp: int = 1, baseline: bool = True, progress: bool = False) -> pd.DataFrame:
    """Simulate ``workload`` on one colocated instance with the chunked scheduler for each chunk
    size (token budget per step, decodes included), plus the prefill-priority ``"continuous"``
    baseline (chunk NaN). Columns: scheduler, chunk, ttft_p50, ttft_p90, ttft_p99, tbt_p50,
    tbt_p99 (over all token gaps), tpot_p90 (seconds), throughput_rps (req/s), preemptions."""
    runs = ([("continuous", None)] if baseline else []) + [("chunked", int(c)) for c in chunks]
    rows = []
    for sched, c in _progress.over(runs, progress, "chunk sizes"):
        cluster = sim.colocated(model=model, gpu=gpu, tp=tp, scheduler=sched, chunk_size=c)
        s = sim.simulate(cluster, workload).summary()
        rows.append({"scheduler": sched, "chunk": np.nan if c is None else c,
                     **{k: s[k] for k in ("ttft_p50", "ttft_p90", "ttft_p99", "tbt_p50", "tbt_p99",
                                          "tpot_p90", "throughput_rps", "preemptions")}})
    return pd.DataFrame(rows)


def tbt_capacity(model: str, gpu: str, workload_fn: Callable[[float], object],
                 slos: dict[str, tuple[float, int]] | None = None, *, ttft: float = 2.0,
                 target: float = 0.9, lo: float = 0.1, hi: float = 16.0, tol: float = 0.05,
                 progress: bool = False) -> pd.DataFrame:
    """Capacity (req/s) of one instance under each token-gap SLO, prefill-priority
    ("continuous") vs chunked, as in Sarathi-Serve's capacity experiment.

    ``slos`` maps a name to ``(p99_tbt seconds, chunk tokens)`` (default
    ``SARATHI_PAPER["slos"]``). Capacity is :func:`pdlib.sim.goodput` with
    ``slo=dict(p99_tbt=…, ttft=ttft)`` at ``target`` attainment: the highest Poisson rate at which
    at least ``target`` of the requests each have their own P99 token gap within the target *and*
    a TTFT within ``ttft`` seconds (without that guard a chunked server "meets" a TBT SLO at any
    load while its queue grows without bound). Columns: slo, p99_tbt, scheduler, chunk, rate,
    attainment, tbt_p99_all (P99 over all token gaps at that rate, Sarathi-Serve's metric),
    ttft_p50 at that rate, and ratio (chunked ÷ continuous within the SLO).
    """
    slos = slos or SARATHI_PAPER["slos"]
    jobs = [(name, t, sched, c if sched == "chunked" else None)
            for name, (t, c) in slos.items() for sched in ("continuous", "chunked")]
    rows = []
    for name, t, sched, c in _progress.over(jobs, progress, "capacity searches"):
        def make(sched=sched, c=c):
            return sim.colocated(model=model, gpu=gpu, scheduler=sched, chunk_size=c)
        g = sim.goodput(make, workload_fn, dict(p99_tbt=t, ttft=ttft), target=target, lo=lo, hi=hi, tol=tol)
        s = sim.simulate(make(), workload_fn(g.rate)).summary() if g.rate > 0 else {}
        rows.append({"slo": name, "p99_tbt": t, "scheduler": sched, "chunk": np.nan if c is None else c,
                     "rate": g.rate, "attainment": g.attainment,
                     "tbt_p99_all": s.get("tbt_p99", np.nan), "ttft_p50": s.get("ttft_p50", np.nan)})
    df = pd.DataFrame(rows)
    base = df[df.scheduler == "continuous"].set_index("slo").rate
    df["ratio"] = df.rate / df.slo.map(base)
    return df
