"""Discrete-event simulator of LLM serving clusters, driven by the roofline cost model.

>>> import pdlib
>>> cluster = pdlib.sim.colocated(model="Llama-2-7B", gpu="A100-80GB", scheduler="chunked")
>>> res = pdlib.sim.simulate(cluster, pdlib.workload.poisson(rate=4.0, n=1000))
>>> res.summary()["ttft_p90"]                                   # doctest: +SKIP

Modules, one idea each: :mod:`~pdlib.sim.kv` (block pool), :mod:`~pdlib.sim.request_state`
(per-request token bookkeeping), :mod:`~pdlib.sim.schedulers` (static / continuous / chunked),
:mod:`~pdlib.sim.instance` (one engine and its decode fast path), :mod:`~pdlib.sim.events` (the
event loop), :mod:`~pdlib.sim.cluster` (colocated and disaggregated shapes, router, KV link),
:mod:`~pdlib.sim.results` (metrics, SLO attainment).
"""
from __future__ import annotations

from typing import Callable

from .cluster import Colocated, Disaggregated, colocated, disaggregated
from .request_state import RequestTable
from .results import Goodput, Result
from .schedulers import SCHEDULERS, Chunked, Continuous, Static

__all__ = ["simulate", "colocated", "disaggregated", "goodput", "Result", "Goodput", "Colocated",
           "Disaggregated", "Static", "Continuous", "Chunked", "SCHEDULERS"]


def simulate(cluster: Colocated | Disaggregated, workload, *, seed: int = 0,
             max_time: float | None = None) -> Result:
    """Run ``workload`` (anything with sorted ``arrival`` seconds and ``prompt``/``output`` token
    arrays, e.g. :class:`pdlib.workload.Workload`) through ``cluster``.

    A ``cached`` array on the workload (prefix-cache hit tokens per request, see
    :class:`pdlib.workload.Workload`) shortens each prefill to ``prompt − cached`` tokens computed
    from context ``cached``; without it nothing is cached.

    Every request ends finished or rejected with a reason (a request still in flight at
    ``max_time`` seconds is reported rejected, reason "unfinished ..."). Deterministic: the same
    inputs give the same result; ``seed`` only drives the "random" router.
    """
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be > 0 seconds, got {max_time!r}")
    reqs = RequestTable(workload.arrival, workload.prompt, workload.output,
                        getattr(workload, "cached", None))
    run = cluster.build(reqs, seed)
    end = run.run(max_time)
    rows = [row for inst in run.instances for row in inst.timeline]
    return Result(reqs, rows, cluster, end)


def goodput(cluster: Colocated | Disaggregated | Callable[[], Colocated | Disaggregated],
            workload_fn: Callable[[float], object], slo: dict, *, target: float = 0.9,
            lo: float = 0.1, hi: float = 64.0, tol: float = 0.02) -> Goodput:
    """Highest request rate (req/s) at which ``slo`` attainment stays ≥ ``target``, by bisection.

    ``workload_fn(rate)`` builds the workload for a rate; ``slo`` holds targets in seconds for
    :meth:`Result.slo_attainment` (``ttft``, ``tpot``, ``p99_tbt``, ``max_tbt``). Attainment is
    assumed to fall as the rate grows. Bisection stops when ``hi − lo ≤ tol · lo``. Returns rate 0
    when even ``lo`` misses the target, and ``hi`` when ``hi`` meets it. ``per_gpu`` = rate /
    ``cluster.n_gpus``.
    """
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi req/s, got lo={lo!r}, hi={hi!r}")
    make = cluster if callable(cluster) else (lambda: cluster)
    n_gpus = make().n_gpus

    def attain(rate: float) -> float:
        return simulate(make(), workload_fn(rate)).slo_attainment(**slo)

    a_lo = attain(lo)
    if a_lo < target:
        return Goodput(0.0, 0.0, n_gpus, a_lo, target)
    a_hi = attain(hi)
    if a_hi >= target:
        return Goodput(hi, hi / n_gpus, n_gpus, a_hi, target)
    while hi - lo > tol * lo:
        mid = (lo + hi) / 2
        a = attain(mid)
        if a >= target:
            lo, a_lo = mid, a
        else:
            hi = mid
    return Goodput(lo, lo / n_gpus, n_gpus, a_lo, target)
