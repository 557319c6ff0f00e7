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
meets every earlier key once). :func:`overhead_vs_sarathi` sets this roofline ratio beside the
one Sarathi-Serve measured on real GPUs (:func:`pdlib.measurements.sarathi_chunking_overhead`).

Capacity under a token-gap SLO (:func:`tbt_capacity`) is Sarathi-Serve's: the highest Poisson
load at which the P99 of all token gaps of the run meets the target while the median scheduling
delay stays ≤ 2 s (:func:`pdlib.reproduce.sarathi_meets`). Units: seconds, tokens, requests
per second (req/s).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from . import measurements as _ms
from . import progress as _progress
from . import reproduce as _rp
from . import sim
from .cost import CostModel

__all__ = ["SARATHI_PAPER", "chunk_schedule", "chunk_steps", "chunk_step_times",
           "chunked_prefill_time", "chunk_overhead", "chunk_table", "overhead_curve",
           "overhead_vs_sarathi", "largest_chunk_within", "chunk_sweep", "tbt_capacity"]


def _paper() -> dict:
    ov = _ms.sarathi_chunking_overhead()
    mid = ov[ov.prompt == 4095].dropna(subset=["chunk"])
    mistral = _rp.SARATHI_PAPER["p99_tbt"]["Mistral-7B-v0.1"]
    budget = _rp.SARATHI_PAPER["token_budget"]
    return {"prefill_overhead_prompt": 4095,
            "prefill_overhead": {int(c): round(float(o), 2) for c, o in zip(mid.chunk, mid.overhead)},
            "slos": {k: (v, budget[k]) for k, v in mistral.items()},
            "capacity_ratio_mistral": _rp.SARATHI_PAPER["gain"]["Mistral-7B-v0.1"],
            "model": "Mistral-7B-v0.1",
            "gpu": _rp.SARATHI_PAPER["deployments"]["Mistral-7B-v0.1"]["gpu"]}


#: Sarathi-Serve's numbers the chapter compares with (Agrawal et al., OSDI 2024), derived from
#: their primary sources rather than typed: ``prefill_overhead`` {chunk: extra time} of a
#: 4,095-token Yi-34B (tp 2) prefill done in chunks vs in one piece, to the percent, from the
#: repository's chunking-overhead experiment (:func:`pdlib.measurements.sarathi_chunking_overhead`:
#: osdi-experiments/figure-9/chunking-overhead.csv rows 5–8, plotted in the paper as fig. 14,
#: §5.4.1); ``slos``: {level: (P99 TBT target s, token budget)} for Mistral-7B (table 3, §5.1);
#: ``capacity_ratio_mistral``: the abstract's 2.6× over vLLM for Mistral-7B, a maximum over the
#: datasets and SLOs of fig. 10; ``gpu``: the A100 80GB PCIe card of the paper's Azure NC96ads v4
#: machines. The full constants live in :data:`pdlib.reproduce.SARATHI_PAPER`.
SARATHI_PAPER: dict = _paper()


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


def overhead_curve(cm: CostModel, prompts: Sequence[int], chunks: Sequence[int]) -> pd.DataFrame:
    """The cost model's :func:`chunk_overhead` for every prompt × chunk (chunks ≥ the prompt give
    1.0): columns prompt, chunk, steps, relative (chunked ÷ whole prefill time)."""
    rows = [{"prompt": int(p), "chunk": int(c), "steps": chunk_steps(p, c),
             "relative": chunk_overhead(cm, p, c)} for p in prompts for c in chunks]
    return pd.DataFrame(rows)


def overhead_vs_sarathi(cm: CostModel | None = None) -> pd.DataFrame:
    """Sarathi-Serve's measured chunking overhead beside the cost model's, row by row.

    Measurements: :func:`pdlib.measurements.sarathi_chunking_overhead` (Yi-34B at tp 2 on two
    A100 80GB PCIe cards; prompts of 2,047…16,383 tokens in chunks of 512, 1,024, 2,048 and
    unchunked). ``cm`` defaults to the same deployment,
    ``CostModel("Yi-34B", "A100-PCIe-80GB", tp=2)``. Columns: prompt, chunk (<NA> = unchunked),
    steps, measured_ms, measured_relative, model_ms, model_relative (chunked ÷ unchunked time,
    each of its own), gap_pp = 100·(measured_relative − model_relative) (percentage points the
    model misses), and extra_ms_per_step = (measured chunked − measured unchunked) ÷ (steps − 1),
    the time each added step cost on the GPU (NaN unchunked)."""
    cm = cm or CostModel("Yi-34B", "A100-PCIe-80GB", tp=2)
    df = _ms.sarathi_chunking_overhead()
    chunk = df.chunk.fillna(df.prompt).astype(int)
    out = pd.DataFrame({"prompt": df.prompt, "chunk": df.chunk,
                        "steps": [chunk_steps(p, c) for p, c in zip(df.prompt, chunk)],
                        "measured_ms": df.prefill_ms, "measured_relative": df.relative})
    out["model_ms"] = [chunked_prefill_time(cm, p, c) * 1e3 for p, c in zip(df.prompt, chunk)]
    out["model_relative"] = [chunk_overhead(cm, p, c) for p, c in zip(df.prompt, chunk)]
    out["gap_pp"] = 100 * (out.measured_relative - out.model_relative)
    whole = out[out.chunk.isna()].set_index("prompt").measured_ms
    extra = (out.measured_ms - out.prompt.map(whole)) / (out.steps - 1).where(out.steps > 1)
    out["extra_ms_per_step"] = extra.astype(float)
    return out


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


def tbt_capacity(model, gpu: str, workload_fn: Callable[[float], object],
                 slos: dict[str, tuple[float, int]] | None = None, *, tp: int = 1,
                 max_batch: int = _rp.SARATHI_PAPER["max_batch"], prefill_budget: int = 8192,
                 max_median_delay: float | None = _rp.SARATHI_PAPER["max_median_queue_delay"],
                 lo: float = 0.05, hi: float = 16.0, tol: float = 0.1,
                 progress: bool = False) -> pd.DataFrame:
    """Capacity (req/s) of one instance under each token-gap SLO, prefill-priority
    ("continuous") vs chunked, measured as Sarathi-Serve measures it (OSDI 2024, §5.1): the
    highest Poisson rate at which the P99 of ALL token gaps of the run (every request's decode
    tokens pooled) is within the target and the median scheduling delay (arrival to first step)
    is at most ``max_median_delay`` s, every request finishing (:func:`pdlib.reproduce.sarathi_meets`).
    The delay bound is what keeps a chunked server from "meeting" a TBT target at any load while
    its queue grows without bound.

    ``slos`` maps a name to ``(p99_tbt seconds, token budget)`` (default
    ``SARATHI_PAPER["slos"]``: Mistral-7B's strict 0.1 s / 512 and relaxed 0.5 s / 2,048);
    ``workload_fn(rate)`` builds the workload. Other arguments and the columns are
    :func:`pdlib.reproduce.sarathi_capacity_table`'s (slo, p99_tbt_slo, scheduler, token_budget,
    capacity, p99_tbt, median_queue_delay, req_attainment, limited_by, gain); the searches
    run ``lo`` … ``hi`` req/s to relative width ``tol``.
    """
    return _rp.sarathi_capacity_table(model, gpu, workload_fn, dict(slos or SARATHI_PAPER["slos"]),
                                      tp=tp, max_batch=max_batch, prefill_budget=prefill_budget,
                                      max_median_delay=max_median_delay, lo=lo, hi=hi, tol=tol,
                                      progress=progress)
