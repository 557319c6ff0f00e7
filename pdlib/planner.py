"""Search serving configurations for the best goodput per GPU and per dollar under an SLO.

The question of the book, asked of one workload: with these latency targets and this many GPUs
(or dollars per hour), should the GPUs share both phases (colocated: prefill-priority or chunked
prefill) or split them (PD disaggregation, xPyD)? The planner answers it with the simulator
(:mod:`pdlib.sim`), in four steps::

    from pdlib import planner
    cands = planner.colocated_candidates("Llama-3.1-8B", gpus=("H100-SXM",))
    cands += planner.disaggregated_candidates("Llama-3.1-8B", max_unit_gpus=3)
    sw = planner.sweep(cands, workload_fn, progress=True)     # one simulation per (candidate, rate)
    p = planner.plan(sw, {"ttft": 1.0, "tpot": 0.03}, budget_gpus=16)
    p.best("per_gpu"), p.table                                 # the winner, the whole searched table
    planner.slo_map(sw, ttft_targets, tpot_targets)            # who wins, SLO pair by SLO pair

**Units of search.** Each candidate is the smallest repeatable unit of a configuration: one
colocated instance (``tp`` GPUs), or one xPyD group (``x`` prefill instances of ``tp_p`` GPUs and
``y`` decode instances of ``tp_d`` GPUs, ``x·tp_p + y·tp_d`` GPUs; only reduced ratios, so 2P2D is
two 1P1D units). A budget of ``N`` GPUs is served by ``floor(N / unit GPUs)`` replicas of the unit
behind an ideal router that splits the traffic evenly, so the deployment's goodput is
``replicas × unit goodput`` (a budget of ``B`` USD per hour: ``floor(B / unit USD per hour)``
replicas). A real router does slightly better (pooling smooths bursts) or worse (imbalance).

**Goodput from a rate sweep.** :func:`sweep` simulates every candidate once per arrival rate on
a geometric grid of rates and keeps each request's ``ttft``, ``tpot``, ``p99_tbt`` and
``max_tbt``. Any SLO's attainment at any grid rate is then a comparison of stored arrays, so an
SLO map of many (TTFT, TPOT) pairs costs no more simulations than one SLO. The goodput for an
SLO and attainment ``target`` is read off the grid: find the first grid rate ``r_k`` whose
attainment ``a_k`` falls below the target; the goodput is the linear interpolation between the
last rate that met it and ``r_k``::

    goodput = r_{k−1} + (a_{k−1} − target) / (a_{k−1} − a_k) · (r_k − r_{k−1})

It is 0 when the lowest grid rate already misses the target (``censored="below grid"``) and the
top grid rate when none misses (``censored="above grid"``: the true goodput is higher). The
crossing that :func:`pdlib.sim.goodput`'s bisection finds lies between ``r_{k−1}`` and ``r_k``
(when attainment falls with the rate); the interpolation assumes a linear fall in between, so
when attainment drops off a cliff it is conservative, low by up to one grid step (~1.5× with the
default grid). ``refine=slo`` in :func:`sweep` adds bisection steps (in log rate) around that
SLO's crossing, and a finer grid (``rates=`` per-GPU values) narrows it everywhere.

Architectures (:data:`ARCHS`): colocated, disaggregated, and conditional (an xPyD whose decode
instances prefill short prompts themselves, when the simulator supports ``local_prefill``).
Analyses built on sweeps: :func:`slo_map` (TaiChi's TTFT × TPOT map of winners),
:func:`phase_diagram` and its wrappers :func:`ratio_model_diagram` and
:func:`prompt_link_diagram`, :func:`burstiness_sweep` (Gamma arrivals), :func:`cost_table`
(USD per million tokens); chapter 09's setup is :data:`HEAD_TO_HEAD` with
:func:`head_to_head_candidates`, :func:`head_to_head_workload` and :func:`head_to_head_sweep`.

**The KV link.** Disaggregated units move each request's KV after its prefill ends
(``transfer="whole"``, as vLLM's NixlConnector does, and with it llm-d and Dynamo's vLLM path;
``"layerwise"`` streams it during the prefill, as Mooncake does; see :mod:`pdlib.sim.cluster`).
With ``parallel_links="tp"`` every GPU has its own NIC, so a prefill instance sends on ``tp_p``
lanes and a decode instance receives on ``tp_d`` lanes, which the ``x`` prefill instances of an
xPyD share.

Rates are requests per second (req/s) of a unit; ``goodput_per_gpu`` divides by the unit's GPUs;
``goodput_per_usd`` is requests per USD, ``3600 · goodput / usd_per_hour``. Prices are the
catalog's on-demand prices, all from one dated price list (:attr:`pdlib.hardware.GPU.price_per_hour`,
``price_source``, ``price_date``); they move by 10–15% in weeks, so read the ratios. A GPU without
a catalog price gets ``usd_per_hour`` NaN and drops out of per-dollar rankings (tables say "not
priced"); :func:`gpu_value_table` sets what a dollar buys on each card side by side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import hardware as hw
from . import models as mdl
from . import progress as _progress
from . import published as pub
from . import sim
from . import workload as wl
from .cost import CostModel

__all__ = ["ARCHS", "METRICS", "Candidate", "colocated_candidates", "disaggregated_candidates",
           "gpu_value_table", "NOT_PRICED",
           "conditional_candidates", "capacity_estimate", "capacity_bound",
           "rate_grid", "DIAGRAM_REQUESTS",
           "Sweep", "sweep", "Plan", "plan", "slo_map", "phase_diagram", "ratio_model_diagram",
           "prompt_link_diagram", "scaled_slo", "pool_ratio", "burstiness_sweep", "cost_table",
           "HEAD_TO_HEAD", "HEAD_TO_HEAD_SPACE", "head_to_head_candidates", "head_to_head_workload",
           "head_to_head_sweep", "head_to_head_verdict", "HEAD_TO_HEAD_REQUESTS",
           # the model's error and the tie rule
           "RESOLUTION", "comparison_band", "within_band", "decide", "cost_model",
           # deployment arithmetic (also re-exported by pdlib.reproduce)
           "xpyd_configs", "config_name", "config_price", "cost_per_million_tokens"]

#: Architectures a candidate can have: colocated (both phases on every instance), disaggregated
#: (xPyD, KV over a link), conditional (xPyD whose decode instances prefill short prompts
#: themselves, NVIDIA Dynamo's rule; needs ``local_prefill`` in :func:`pdlib.sim.disaggregated`).
ARCHS = ("colocated", "disaggregated", "conditional")

#: Per-request metrics a :class:`Sweep` keeps (seconds); SLO dicts may name any of them.
METRICS = ("ttft", "tpot", "p99_tbt", "max_tbt")


# ---------------------------------------------------------------- deployment arithmetic
def xpyd_configs(max_gpus: int) -> list[tuple[int, int]]:
    """All ``(n_prefill, n_decode)`` with both ≥ 1 and at most ``max_gpus`` GPUs in total, ordered
    by GPU count then by prefill count: 1P1D, 1P2D, 2P1D, 1P3D, 2P2D, 3P1D, ..."""
    if not isinstance(max_gpus, (int, np.integer)) or max_gpus < 2:
        raise ValueError(f"max_gpus must be an integer >= 2 (one prefill + one decode), got {max_gpus!r}")
    return [(p, g - p) for g in range(2, max_gpus + 1) for p in range(1, g)]


def config_name(n_prefill: int, n_decode: int) -> str:
    """``"2P1D"`` for 2 prefill and 1 decode instance."""
    return f"{n_prefill}P{n_decode}D"


def config_price(prefill_gpu: str, decode_gpu: str, n_prefill: int, n_decode: int) -> float:
    """USD per hour of an xPyD deployment (one GPU per instance): Σ GPUs × catalog
    ``price_per_hour`` (on-demand prices from one dated list, :mod:`pdlib.hardware`; use for
    ratios). A GPU without a catalog price -> KeyError listing the priced ones."""
    price = {}
    for name in (prefill_gpu, decode_gpu):
        g = hw.gpu(name)
        if g.price_per_hour is None:
            priced = [n for n in hw.gpu_names() if hw.gpu(n).price_per_hour is not None]
            raise KeyError(f"GPU {g.name!r} has no price in the catalog; priced GPUs: {', '.join(priced)}")
        price[name] = g.price_per_hour
    return n_prefill * price[prefill_gpu] + n_decode * price[decode_gpu]


def cost_per_million_tokens(rate: float, output_tokens: float, usd_per_hour: float) -> float:
    """USD per million output tokens of a deployment costing ``usd_per_hour`` that serves
    ``rate`` req/s of ``output_tokens`` tokens each: ``usd_per_hour / (3600 · rate · output) · 1e6``."""
    if rate <= 0 or output_tokens <= 0 or usd_per_hour <= 0:
        raise ValueError(f"rate, output_tokens and usd_per_hour must be > 0, got {rate!r}, "
                         f"{output_tokens!r}, {usd_per_hour!r}")
    return usd_per_hour / (3600.0 * rate * output_tokens) * 1e6


#: What tables print where a GPU has no catalog price (instead of NaN).
NOT_PRICED = hw.NOT_PRICED


def gpu_value_table(gpus: Sequence[str] | None = None) -> pd.DataFrame:
    """What a dollar buys on each GPU, from the catalog (:mod:`pdlib.hardware`): one row per GPU of
    ``gpus`` (default: every catalog GPU), in the order given.

    Columns: gpu, memory (type), tflops (dense BF16 TFLOP/s; FP16 on cards without BF16),
    gb_per_s (memory bandwidth, GB/s), ridge (FLOP/B = FLOP/s ÷ bytes/s), usd_per_hour,
    tflops_per_usd = tflops / usd_per_hour and gb_per_s_per_usd = gb_per_s / usd_per_hour (per USD
    per hour), price_date. Prefill is compute-bound and buys FLOP/s, decode is bandwidth-bound and
    buys bytes/s: judge a prefill card by ``tflops_per_usd``, a decode card by ``gb_per_s_per_usd``
    (and by the KV it holds). A GPU without a catalog price gets NaN in the three price columns and
    price_date :data:`NOT_PRICED`; display the table with ``na_rep=NOT_PRICED`` (e.g.
    ``df.style.format(na_rep=planner.NOT_PRICED)``), never as NaN."""
    names = hw.gpu_names() if gpus is None else [_gpu_name(g) for g in gpus]
    rows = []
    for n in names:
        g = hw.gpu(n)
        usd = math.nan if g.price_per_hour is None else float(g.price_per_hour)
        rows.append({"gpu": g.name, "memory": g.mem_type, "tflops": g.flops / 1e12,
                     "gb_per_s": g.mem_bw / 1e9, "ridge": g.ridge, "usd_per_hour": usd,
                     "tflops_per_usd": g.flops_per_usd / 1e12, "gb_per_s_per_usd": g.bw_per_usd / 1e9,
                     "price_date": g.price_date if g.price_per_hour is not None else NOT_PRICED})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- candidates
@dataclass(frozen=True, eq=False)
class Candidate:
    """One unit of a configuration to evaluate.

    ``arch``: one of :data:`ARCHS`; ``name``: a readable label ("chunked-512 tp1 H100-SXM",
    "2P1D tp1/tp1 H100-SXM/H100-SXM IB-NDR-400G"); ``params``: the keyword arguments of
    :func:`pdlib.sim.colocated` (colocated) or :func:`pdlib.sim.disaggregated` (the others);
    ``n_gpus``: GPUs of the unit; ``usd_per_hour``: its price (NaN when a GPU has no catalog price);
    ``calibration``: None (the roofline) or a published source ("splitwise", "vidur", "sarathi")
    whose fitted terms price every pool of the unit at its own tp
    (:func:`pdlib.published.calibrated_cluster`).
    """
    arch: str
    name: str
    params: dict = field(repr=False)
    n_gpus: int
    usd_per_hour: float
    calibration: str | None = None

    def cluster(self) -> sim.Colocated | sim.Disaggregated:
        """The simulator cluster of this unit (calibrated when :attr:`calibration` is set)."""
        c = sim.colocated(**self.params) if self.arch == "colocated" else sim.disaggregated(**self.params)
        return pub.calibrated_cluster(c, self.calibration)


def _price(prefill_gpu: str, decode_gpu: str, n_prefill_gpus: int, n_decode_gpus: int) -> float:
    try:
        return config_price(prefill_gpu, decode_gpu, n_prefill_gpus, n_decode_gpus)
    except KeyError:                      # a GPU without a catalog price: NaN, usable with GPU budgets
        return math.nan


def _gpu_name(g) -> str:
    return hw.gpu(g).name                 # unknown name -> KeyError listing the catalog


def _fits(model, gpu: str, tp: int, min_kv_tokens: int, cost_kwargs: dict | None) -> bool:
    """True when ``model`` fits ``tp`` × ``gpu`` with KV room for ``min_kv_tokens`` tokens."""
    try:
        cm = CostModel(mdl.get(model), gpu, tp=tp, **(cost_kwargs or {}))
    except ValueError:                    # weights do not fit, or tp does not divide the heads
        return False
    return cm.kv_capacity_tokens >= min_kv_tokens


def _check_ints(name: str, values) -> tuple[int, ...]:
    vals = tuple(values)
    if not vals or any(not isinstance(v, (int, np.integer)) or v < 1 for v in vals):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return tuple(int(v) for v in vals)


def colocated_candidates(model, *, gpus: Sequence[str] = ("H100-SXM",), tps: Sequence[int] = (1, 2, 4, 8),
                         schedulers: Sequence[str] = ("continuous", "chunked"),
                         chunk_sizes: Sequence[int] = (512, 2048), max_batch: int = 256,
                         min_kv_tokens: int = 1, cost_kwargs: dict | None = None,
                         calibration: str | None = None) -> list[Candidate]:
    """Colocated units: one instance of ``tp`` GPUs per candidate, for every GPU type in ``gpus``,
    tensor-parallel degree in ``tps`` where ``model`` fits (weights plus KV room for at least
    ``min_kv_tokens`` tokens, e.g. one request's prompt + output), and scheduler: "continuous"
    (vLLM's prefill priority, default 8,192-token step budget) once, "chunked" once per chunk size
    in ``chunk_sizes`` (tokens per step). ``calibration``: None (the roofline) or a published
    source whose fitted terms price the unit (:attr:`Candidate.calibration`). Unknown GPU ->
    KeyError listing the catalog; unknown scheduler -> KeyError listing the schedulers."""
    gpus = tuple(_gpu_name(g) for g in gpus)
    tps = _check_ints("tps", tps)
    chunk_sizes = _check_ints("chunk_sizes", chunk_sizes)
    for s in schedulers:
        if s not in ("continuous", "chunked"):
            raise KeyError(f"unknown scheduler {s!r} for the planner; allowed: continuous, chunked")
    out = []
    for g in gpus:
        for tp in tps:
            if not _fits(model, g, tp, min_kv_tokens, cost_kwargs):
                continue
            for s in schedulers:
                for chunk in (chunk_sizes if s == "chunked" else (None,)):
                    label = "prefill-priority" if s == "continuous" else f"chunked-{chunk}"
                    params = dict(model=model, gpu=g, tp=tp, scheduler=s, chunk_size=chunk,
                                  max_batch=max_batch, cost_kwargs=cost_kwargs)
                    out.append(Candidate("colocated", f"{label} tp{tp} {g}", params, tp,
                                         _price(g, g, tp, 0), calibration))
    return out


def _reduced(x: int, y: int) -> bool:
    return math.gcd(x, y) == 1


def disaggregated_candidates(model, *, prefill_gpus: Sequence[str] = ("H100-SXM",),
                             decode_gpus: Sequence[str] = ("H100-SXM",),
                             links: Sequence[str] = ("IB-NDR-400G",), prefill_tps: Sequence[int] = (1,),
                             decode_tps: Sequence[int] = (1,), max_unit_gpus: int = 4,
                             ratios: Sequence[tuple[int, int]] | None = None, parallel_links: str | int = "tp",
                             transfer: str = "whole",
                             first_token: str = "decode", max_batch: int = 256, min_kv_tokens: int = 1,
                             cost_kwargs: dict | None = None, calibration: str | None = None,
                             _arch: str = "disaggregated",
                             _extra: dict | None = None, _tag: str = "") -> list[Candidate]:
    """Disaggregated units: ``x`` prefill instances of ``tp_p`` × prefill GPU and ``y`` decode
    instances of ``tp_d`` × decode GPU joined by a link, for every GPU pair, tp pair and link
    given, and every reduced ratio (gcd(x, y) = 1: 2P2D is two 1P1D units) with
    ``x·tp_p + y·tp_d ≤ max_unit_gpus`` (only the ``(x, y)`` in ``ratios`` when given).
    ``parallel_links``: NIC lanes per instance ("tp": one NIC per GPU, as on an HGX node, so a
    prefill instance sends on ``tp_p`` lanes and a decode instance receives on ``tp_d``; or an int,
    the same for both). A (GPU, tp) that does not fit the model is skipped. ``transfer`` (default
    "whole": the KV moves after the prefill, as vLLM's NixlConnector does), ``first_token``,
    ``max_batch``: as :func:`pdlib.sim.disaggregated`. ``calibration``: None (the roofline) or a
    published source whose fitted terms price each pool at its own tp (:attr:`Candidate.calibration`)."""
    pgs = tuple(_gpu_name(g) for g in prefill_gpus)
    dgs = tuple(_gpu_name(g) for g in decode_gpus)
    links = tuple(hw.link(ln).name for ln in links)
    ptps, dtps = _check_ints("prefill_tps", prefill_tps), _check_ints("decode_tps", decode_tps)
    if not isinstance(max_unit_gpus, (int, np.integer)) or max_unit_gpus < 2:
        raise ValueError(f"max_unit_gpus must be an integer >= 2 (one prefill + one decode GPU), "
                         f"got {max_unit_gpus!r}")
    if not links:
        raise ValueError("links is empty: pass link names such as 'IB-NDR-400G'")
    wanted = None if ratios is None else {(int(x), int(y)) for x, y in ratios}
    out = []
    for pg in pgs:
        for dg in dgs:
            for tpp in ptps:
                if not _fits(model, pg, tpp, 1, cost_kwargs):
                    continue
                for tpd in dtps:
                    if not _fits(model, dg, tpd, min_kv_tokens, cost_kwargs):
                        continue
                    lanes = tpp if parallel_links == "tp" else int(parallel_links)
                    lanes_in = tpd if parallel_links == "tp" else int(parallel_links)
                    for x, y in xpyd_configs(max_unit_gpus):
                        n = x * tpp + y * tpd
                        if n > max_unit_gpus or not _reduced(x, y):
                            continue
                        if ratios is not None and (x, y) not in wanted:
                            continue
                        for ln in links:
                            params = dict(model=model, prefill_gpu=pg, decode_gpu=dg, link=ln,
                                          n_prefill=x, n_decode=y, prefill_tp=tpp, decode_tp=tpd,
                                          parallel_links=lanes, decode_links=lanes_in, transfer=transfer,
                                          first_token=first_token, max_batch=max_batch,
                                          cost_kwargs=cost_kwargs, **(_extra or {}))
                            gp = pg if pg == dg else f"{pg}/{dg}"
                            name = f"{config_name(x, y)}{_tag} tp{tpp}/tp{tpd} {gp} {ln}"
                            out.append(Candidate(_arch, name, params, n, _price(pg, dg, x * tpp, y * tpd),
                                                 calibration))
    return out


def conditional_candidates(model, *, local_prefill: Sequence[int] = (512,), decode_chunk: int = 512,
                           **kwargs) -> list[Candidate]:
    """Conditional-disaggregation units (NVIDIA Dynamo's "prefill locally when short"): like
    :func:`disaggregated_candidates` (same keywords), and for each threshold in ``local_prefill``
    (tokens of prefill work) a request whose prefill work is at most the threshold is prefilled on
    its decode instance, which then runs chunked steps of ``decode_chunk`` tokens; longer prompts go
    to the prefill pool. Architecture "conditional"."""
    out = []
    for t in _check_ints("local_prefill", local_prefill):
        out += disaggregated_candidates(model, _arch="conditional", _tag=f" local≤{t}",
                                        _extra=dict(local_prefill=t, decode_chunk=decode_chunk), **kwargs)
    return out


# ---------------------------------------------------------------- rate grids
def _lengths(workload_fn) -> tuple[np.ndarray, np.ndarray]:
    w = workload_fn(1.0)
    return np.asarray(w.prompt, dtype=np.float64), np.asarray(w.output, dtype=np.float64)


def capacity_estimate(candidate: Candidate, prompt, output) -> float:
    """A roofline *estimate* of a unit's throughput (req/s) for requests of ``prompt`` and
    ``output`` tokens (arrays of lengths, or numbers), ignoring every SLO; used to place the rate
    grid and to flag suspect goodputs. With ``B`` = the largest decode batch (``max_batch``, or
    fewer if the KV of ``prompt + output`` tokens per request runs out), a decode step of ``B``
    requests at context ``prompt + output/2`` (compute ``c_d``, memory ``m_d``, time ``t_d``
    seconds), one prompt's prefill alone (compute ``c_p``, memory ``m_p``, time ``t_p``; means over
    the prompts) and ``O`` = mean output:

    * colocated: ``1 / max(c_p + (O−1)·c_d/B, m_p + (O−1)·m_d/B)`` — mixed steps can hide decode
      memory traffic under prefill compute, so the two roofs add up separately;
    * xPyD: ``min(x / t_p, y · B / ((O−1) · t_d))`` (the slower pool).

    It is an estimate, **not a strict upper bound**: a simulated goodput can exceed it. What it
    ignores, in both directions:

    * batched prefill: ``t_p`` is one prompt alone, but a prefill step may carry several prompts
      that share one read of the weights, so short (memory-bound) prompts prefill faster per
      request than ``1 / t_p`` (xPyD prefill pools, and colocated prefill-priority steps);
    * shared weight reads: in a colocated mixed step the weights are read once for the prefill
      chunk and the decodes together, while the estimate counts ``m_p`` on top of ``m_d / B``;
    * mean lengths: ``t_d`` is taken at the mean context and ``t_p`` averages over prompts, so a
      skewed length distribution moves the true capacity either way;
    * the decode batch is assumed full (``B``), the KV link is assumed free, and the scheduler's
      step budget, queueing and preemption are left out (these lower the true capacity).

    A goodput well above it (say > 1.1×) most likely comes from a run too short to reach steady
    state (the queue never fills) or from batched prefill; treat such a number as suspect.
    ``capacity_bound`` is the same function under its old name.
    """
    P = np.atleast_1d(np.asarray(prompt, dtype=np.float64))
    O = np.atleast_1d(np.asarray(output, dtype=np.float64))
    c = candidate.cluster()
    if candidate.arch == "colocated":
        pre_cm = dec_cm = c.cost
    else:
        pre_cm, dec_cm = c.prefill_cost, c.decode_cost
    pre = pre_cm.prefill(P)
    ctx = float(np.mean(P) + np.mean(O) / 2)
    B = max(1, min(c.max_batch, int(dec_cm.kv_capacity_tokens // max(1.0, float(np.mean(P + O))))))
    dec = dec_cm.decode(B, ctx)
    o = max(float(np.mean(O)) - 1, 1e-9)
    if candidate.arch == "colocated":
        compute = float(np.mean(pre.compute_time)) + o * float(dec.compute_time) / B
        memory = float(np.mean(pre.memory_time)) + o * float(dec.memory_time) / B
        beyond = float(np.mean(pre.context_time)) + o * float(dec.context_time) / B   # context_seconds
        return 1.0 / (max(compute, memory) + beyond)
    return min(c.n_prefill / float(np.mean(pre.time)), c.n_decode * B / (o * float(dec.time)))


#: Old name of :func:`capacity_estimate`, kept so existing callers work (it was documented as an
#: upper bound, which it is not; see :func:`capacity_estimate`).
capacity_bound = capacity_estimate


def rate_grid(candidate: Candidate, prompt, output, n_rates: int = 8,
              span: tuple[float, float] = (0.1, 1.5)) -> np.ndarray:
    """``n_rates`` unit rates (req/s) spaced geometrically from ``span[0]`` to ``span[1]`` times
    :func:`capacity_estimate` (default 0.1× … 1.5×: with 8 rates a step of ~1.47×)."""
    if n_rates < 2 or not 0 < span[0] < span[1]:
        raise ValueError(f"need n_rates >= 2 and 0 < span[0] < span[1], got {n_rates!r}, {span!r}")
    return capacity_estimate(candidate, prompt, output) * np.geomspace(span[0], span[1], n_rates)


# ---------------------------------------------------------------- sweep
def _check_slo(slo: Mapping[str, float]) -> dict:
    if not slo:
        raise ValueError(f"slo is empty: give targets in seconds for any of {', '.join(METRICS)}")
    bad = [k for k in slo if k not in METRICS]
    if bad:
        raise KeyError(f"unknown SLO metric(s) {bad}; allowed: {', '.join(METRICS)}")
    for k, v in slo.items():
        if not (isinstance(v, (int, float, np.floating, np.integer)) and v > 0):
            raise ValueError(f"SLO target {k} must be > 0 seconds, got {v!r}")
    return dict(slo)


def _check_target(target: float) -> float:
    if not 0 < target <= 1:
        raise ValueError(f"target (attainment fraction) must be in (0, 1], got {target!r}")
    return float(target)


@dataclass
class Sweep:
    """Per-request metrics of every candidate at every simulated rate (see :func:`sweep`).

    ``rates[i]``: the unit rates (req/s, ascending) simulated for ``candidates[i]``;
    ``data[i][m]``: a ``(len(rates[i]), n_requests)`` float array of metric ``m`` (one of
    :data:`METRICS`, seconds; NaN where undefined), and ``data[i]["finished"]`` a bool array.
    A candidate's sweep may stop before the end of its grid (``stop_slo`` in :func:`sweep`).
    """
    candidates: list[Candidate]
    rates: list[np.ndarray]
    data: list[dict[str, np.ndarray]]
    grids: list[np.ndarray]
    workload_name: str = ""

    def _ok(self, i: int, slo: Mapping[str, float]) -> np.ndarray:
        d = self.data[i]
        ok = d["finished"].copy()
        for k, t in slo.items():
            v = d[k]
            ok &= (v <= t) if k == "ttft" else (np.isnan(v) | (v <= t))
        return ok

    def attainment(self, slo: Mapping[str, float]) -> list[np.ndarray]:
        """For each candidate, the fraction of requests meeting every target of ``slo`` at each of
        its simulated rates (rejected and unfinished requests miss; a NaN TPOT/TBT from a
        one-token output meets its target, as in :meth:`pdlib.sim.Result.slo_attainment`)."""
        slo = _check_slo(slo)
        return [self._ok(i, slo).mean(axis=1) for i in range(len(self.candidates))]

    def goodput(self, slo: Mapping[str, float], target: float = 0.9) -> pd.DataFrame:
        """One row per candidate: arch, name, params, n_gpus, usd_per_hour, goodput (req/s, read
        off the grid as in the module docstring), goodput_per_gpu, goodput_per_usd (requests per
        USD), attainment (measured at ``rate_met``, the highest grid rate below the first miss),
        rate_met, censored ("", "below grid" or "above grid")."""
        target = _check_target(target)
        rows = []
        for c, r, a in zip(self.candidates, self.rates, self.attainment(slo)):
            g, a_met, r_met, cens = _crossing(r, a, target)
            rows.append(_row(c, g, a_met, r_met, cens))
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """One row per (candidate, simulated rate): name, arch, rate, per_gpu_rate and the P50/P90
        of ttft and tpot and P99 of p99_tbt over finished requests (seconds), finished fraction."""
        rows = []
        for c, rates, d in zip(self.candidates, self.rates, self.data):
            for j, rate in enumerate(rates):
                f = d["finished"][j]
                q = lambda m, p: float(np.nanpercentile(d[m][j][f], p)) if f.any() else math.nan  # noqa: E731
                rows.append({"name": c.name, "arch": c.arch, "rate": float(rate),
                             "per_gpu_rate": float(rate) / c.n_gpus, "finished": float(f.mean()),
                             "ttft_p50": q("ttft", 50), "ttft_p90": q("ttft", 90),
                             "tpot_p50": q("tpot", 50), "tpot_p90": q("tpot", 90),
                             "p99_tbt_p99": q("p99_tbt", 99)})
        return pd.DataFrame(rows)


def _crossing(rates: np.ndarray, att: np.ndarray, target: float) -> tuple[float, float, float, str]:
    """(goodput, attainment at the last rate meeting the target, that rate, censored)."""
    fail = np.flatnonzero(att < target)
    if len(fail) == 0:
        return float(rates[-1]), float(att[-1]), float(rates[-1]), "above grid"
    k = int(fail[0])
    if k == 0:
        return 0.0, float(att[0]), 0.0, "below grid"
    r0, r1, a0, a1 = rates[k - 1], rates[k], att[k - 1], att[k]
    g = r0 + (a0 - target) / (a0 - a1) * (r1 - r0)
    return float(g), float(a0), float(r0), ""


def _row(c: Candidate, goodput: float, attainment: float, rate_met: float, censored: str) -> dict:
    usd = c.usd_per_hour
    return {"arch": c.arch, "name": c.name, "params": _params_str(c), "n_gpus": c.n_gpus,
            "usd_per_hour": usd, "goodput": goodput, "goodput_per_gpu": goodput / c.n_gpus,
            "goodput_per_usd": 3600.0 * goodput / usd if usd > 0 else math.nan,
            "attainment": attainment, "rate_met": rate_met, "censored": censored}


def _params_str(c: Candidate) -> str:
    skip = {"model", "cost_kwargs", "max_batch", "transfer", "first_token"}
    return ", ".join(f"{k}={v}" for k, v in c.params.items() if k not in skip and v is not None)


def _as_workload_fn(workload) -> Callable[[float], object]:
    if callable(workload):
        return workload
    if isinstance(workload, wl.Workload):
        return workload.with_rate
    raise TypeError(f"workload must be a function rate -> Workload, or a Workload (rescaled to each "
                    f"rate), got {type(workload).__name__}")


def _attain(cols: dict, slo: Mapping[str, float], j: int) -> float:
    ok = cols["finished"][j].copy()
    for k, t in slo.items():
        v = cols[k][j]
        ok &= (v <= t) if k == "ttft" else (np.isnan(v) | (v <= t))
    return float(ok.mean())


def sweep(candidates: Sequence[Candidate], workload, rates: str | Sequence[float] = "auto", *,
          n_rates: int = 8, span: tuple[float, float] = (0.1, 1.5),
          stop_slo: Mapping[str, float] | None = None, stop_below: float = 0.5,
          refine: Mapping[str, float] | Sequence[Mapping[str, float]] | None = None,
          refine_steps: int = 2, target: float = 0.9,
          progress: bool = False, desc: str = "planner sweep") -> Sweep:
    """Simulate every candidate at every rate of its grid, once, and keep per-request metrics.

    ``workload``: a function ``rate -> Workload`` (req/s; keep its seed fixed so rates differ only
    in arrival times) or a :class:`~pdlib.workload.Workload` rescaled to each rate with
    :meth:`~pdlib.workload.Workload.with_rate`. ``rates``: "auto" (per candidate,
    :func:`rate_grid` with ``n_rates`` and ``span``) or a sequence of rates **per GPU** (req/s/GPU)
    shared by all candidates (a unit of ``n`` GPUs is simulated at ``n ×`` each).
    ``stop_slo``: the loosest SLO you will ask about; a candidate's sweep stops at the first rate
    whose attainment of ``stop_slo`` is below ``stop_below`` (any tighter SLO misses there too,
    and attainment falls with the rate), which skips simulating hopeless overloads.
    ``refine``: an SLO (or a list of SLOs) whose goodput matters most: after the grid, each
    candidate gets ``refine_steps`` extra rates per SLO, each at the geometric midpoint of the
    interval where attainment first falls below ``target`` (bisection in log rate), so that
    goodput's grid step shrinks from ``s`` to ``s^(1/2^refine_steps)``. The extra rates serve
    every other SLO too. ``progress`` shows a tqdm bar over (candidate, rate) simulations.
    """
    cands = list(candidates)
    if not cands:
        raise ValueError("no candidates to sweep: build them with colocated_candidates / "
                         "disaggregated_candidates (did every (GPU, tp) fail to fit the model?)")
    fn = _as_workload_fn(workload)
    if stop_slo is not None:
        stop_slo = _check_slo(stop_slo)
    refine_slos = [] if refine is None else [refine] if isinstance(refine, Mapping) else list(refine)
    refine_slos = [_check_slo(s) for s in refine_slos]
    target = _check_target(target)
    if isinstance(rates, str):
        if rates != "auto":
            raise ValueError(f"rates must be 'auto' or a sequence of req/s per GPU, got {rates!r}")
        P, O = _lengths(fn)
        grids = [rate_grid(c, P, O, n_rates, span) for c in cands]
    else:
        per_gpu = np.asarray(rates, dtype=np.float64)
        if per_gpu.ndim != 1 or len(per_gpu) < 2 or np.any(per_gpu <= 0) or np.any(np.diff(per_gpu) <= 0):
            raise ValueError(f"rates must be >= 2 increasing positive req/s per GPU, got {rates!r}")
        grids = [per_gpu * c.n_gpus for c in cands]
    extra = len(refine_slos) * refine_steps
    bar = _progress.counter(sum(len(g) + extra for g in grids), progress, desc)
    all_rates, all_data, name = [], [], ""
    for c, grid in zip(cands, grids):
        cols: dict[str, list] = {m: [] for m in (*METRICS, "finished")}
        done: list[float] = []

        def run(rate: float) -> None:
            nonlocal name
            w = fn(float(rate))
            name = name or getattr(w, "name", "")
            df = sim.simulate(c.cluster(), w).requests
            cols["finished"].append((df.status == "finished").to_numpy())
            for m in METRICS:
                cols[m].append(df[m].to_numpy(dtype=np.float64))
            done.append(float(rate))
            if bar is not None:
                bar.update(1)

        for j, rate in enumerate(grid):
            run(rate)
            if stop_slo is not None and _attain(cols, stop_slo, j) < stop_below:
                if bar is not None:
                    bar.update(len(grid) - j - 1)
                break
        for slo in refine_slos:
            for _ in range(refine_steps):
                order = np.argsort(done)
                att = np.array([_attain(cols, slo, j) for j in order])
                fail = np.flatnonzero(att < target)
                if len(fail) == 0 or fail[0] == 0:
                    if bar is not None:
                        bar.update(1)
                    continue
                lo, hi = done[order[fail[0] - 1]], done[order[fail[0]]]
                run(math.sqrt(lo * hi))
        lens = {len(a) for a in cols["finished"]}
        if len(lens) != 1:
            raise ValueError(f"workload_fn returned workloads of different sizes {sorted(lens)} for "
                             f"different rates; keep n fixed")
        order = np.argsort(done)
        all_rates.append(np.asarray(done)[order])
        all_data.append({k: np.vstack(v)[order] for k, v in cols.items()})
    if bar is not None:
        bar.close()
    return Sweep(cands, all_rates, all_data, grids, name)


# ---------------------------------------------------------------- plan
@dataclass
class Plan:
    """What :func:`plan` returns: the whole searched ``table`` (one row per candidate, see
    :func:`plan`), the ``slo`` and ``target`` it was computed for, and the budget."""
    table: pd.DataFrame
    slo: dict
    target: float
    budget_gpus: int | None = None
    budget_usd: float | None = None

    def best(self, by: str = "per_gpu", arch: str | None = None) -> pd.Series:
        """The best row: by "per_gpu" (goodput per GPU), "per_usd" (requests per USD) or
        "deployment" (goodput of the whole budget); among ``arch`` only when given. Ties go to
        the smaller unit, then the name. Only candidates whose unit fits the budget compete."""
        cols = {"per_gpu": "goodput_per_gpu", "per_usd": "goodput_per_usd",
                "deployment": "deployment_goodput"}
        if by not in cols:
            raise ValueError(f"by must be one of {', '.join(cols)}, got {by!r}")
        t = self.table[self.table.fits_budget]
        if arch is not None:
            if arch not in ARCHS:
                raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
            t = t[t.arch == arch]
        t = t[t[cols[by]].notna()]
        if t.empty:
            raise ValueError(f"no candidate{'' if arch is None else ' of arch ' + repr(arch)} with a "
                             f"{cols[by]} value fits the budget")
        t = t.sort_values([cols[by], "n_gpus", "name"], ascending=[False, True, True], kind="stable")
        return t.iloc[0]

    def summary(self) -> pd.DataFrame:
        """The best row of each architecture present, by goodput per GPU."""
        rows = [self.best("per_gpu", a) for a in ARCHS if (self.table.arch == a).any()
                and self.table[(self.table.arch == a) & self.table.fits_budget].shape[0]]
        return pd.DataFrame(rows).reset_index(drop=True)


def plan(sweep_or_candidates, slo: Mapping[str, float], *, target: float = 0.9,
         budget_gpus: int | None = None, budget_usd: float | None = None, workload_fn=None,
         **sweep_kwargs) -> Plan:
    """Goodput of every candidate under ``slo`` (seconds, any of :data:`METRICS`) at attainment
    ``target``, and the deployment a budget buys.

    ``sweep_or_candidates``: a :class:`Sweep`, or a list of candidates plus ``workload_fn`` (then
    :func:`sweep` runs here with ``stop_slo`` = ``refine`` = ``slo`` and ``sweep_kwargs``).
    Budget: ``budget_gpus`` (GPUs) or ``budget_usd`` (USD per hour), at most one; a unit fits when
    at least one replica does. Columns of ``Plan.table``: the :meth:`Sweep.goodput` columns, plus replicas
    (``floor(budget / unit GPUs or unit USD per hour)``; 1 without a budget), deployment_gpus,
    deployment_usd_per_hour, deployment_goodput (replicas × goodput, req/s, ideal router),
    fits_budget. Raises ValueError for an empty candidate list and for a budget below every unit.
    """
    slo = _check_slo(slo)
    target = _check_target(target)
    if budget_gpus is not None and budget_usd is not None:
        raise ValueError("give budget_gpus or budget_usd, not both")
    if isinstance(sweep_or_candidates, Sweep):
        sw = sweep_or_candidates
    else:
        cands = list(sweep_or_candidates)
        if not cands:
            raise ValueError("no candidates to plan: the candidate list is empty")
        if workload_fn is None:
            raise ValueError("plan(candidates, ...) needs workload_fn= (rate -> Workload); or pass a Sweep")
        sw = sweep(cands, workload_fn, **{"stop_slo": slo, "refine": slo, "target": target, **sweep_kwargs})
    t = sw.goodput(slo, target)
    if budget_gpus is not None:
        if not isinstance(budget_gpus, (int, np.integer)) or budget_gpus < 1:
            raise ValueError(f"budget_gpus must be a positive integer, got {budget_gpus!r}")
        t["replicas"] = budget_gpus // t.n_gpus
    elif budget_usd is not None:
        if not budget_usd > 0:
            raise ValueError(f"budget_usd must be > 0 USD per hour, got {budget_usd!r}")
        if t.usd_per_hour.isna().all():
            raise ValueError("budget_usd needs priced GPUs; none of the candidates' GPUs has a catalog "
                             "price (see pdlib.hardware.GPU.price_per_hour)")
        t["replicas"] = np.floor(budget_usd / t.usd_per_hour).fillna(0).astype(int)
    else:
        t["replicas"] = 1
    t["replicas"] = t.replicas.astype(int)
    t["deployment_gpus"] = t.replicas * t.n_gpus
    t["deployment_usd_per_hour"] = t.replicas * t.usd_per_hour
    t["deployment_goodput"] = t.replicas * t.goodput
    t["fits_budget"] = t.replicas >= 1
    if not t.fits_budget.any():
        small = t.loc[t.n_gpus.idxmin()] if budget_gpus is not None else t.loc[t.usd_per_hour.idxmin()]
        what = (f"{budget_gpus} GPUs" if budget_gpus is not None else f"{budget_usd} USD per hour")
        raise ValueError(f"budget of {what} is below the smallest unit: {small['name']} needs "
                         f"{small.n_gpus} GPUs at {small.usd_per_hour:.2f} USD per hour")
    return Plan(t, slo, target, budget_gpus, budget_usd)


# ---------------------------------------------------------------- SLO map
def slo_map(sw: Sweep, ttft_targets: Sequence[float], tpot_targets: Sequence[float], *,
            target: float = 0.9, metric: str = "tpot", by: str = "per_gpu",
            tie_within: float = 0.05) -> pd.DataFrame:
    """Which architecture serves more under each SLO pair: one row per (ttft, ``metric``) target
    pair (seconds), from the stored sweep (no new simulation).

    Columns: ttft, tpot (the second target, whatever ``metric`` — "tpot", "p99_tbt" or "max_tbt" —
    it bounds), and per architecture present ``best_<arch>`` (highest goodput per GPU, or requests
    per USD with ``by="per_usd"``) and ``name_<arch>``; ``winner`` (the architecture with the
    highest value; "tie" when the top two are within ``tie_within`` of each other,
    ``top ≤ (1 + tie_within) · second`` (:func:`decide`; pass :func:`comparison_band` to make
    the band the cost model's error), "none" when all are 0) and ``ratio`` (best disaggregated ÷ best colocated; inf when only the
    disaggregated units meet the SLO at some grid rate, NaN when neither does).
    """
    target = _check_target(target)
    if metric not in ("tpot", "p99_tbt", "max_tbt"):
        raise ValueError(f"metric must be 'tpot', 'p99_tbt' or 'max_tbt', got {metric!r}")
    if by not in ("per_gpu", "per_usd"):
        raise ValueError(f"by must be 'per_gpu' or 'per_usd', got {by!r}")
    T = np.asarray(ttft_targets, dtype=np.float64)
    S = np.asarray(tpot_targets, dtype=np.float64)
    if T.size == 0 or S.size == 0 or np.any(T <= 0) or np.any(S <= 0):
        raise ValueError("ttft_targets and tpot_targets must be non-empty positive seconds")
    archs = [a for a in ARCHS if any(c.arch == a for c in sw.candidates)]
    val = {a: np.zeros((T.size, S.size)) for a in archs}
    who = {a: np.full((T.size, S.size), "", dtype=object) for a in archs}
    for c, rates, d in zip(sw.candidates, sw.rates, sw.data):
        fin = d["finished"]
        ok_t = fin[None] & (d["ttft"][None] <= T[:, None, None])                # (nT, R, n)
        v = d[metric]
        ok_s = np.isnan(v)[None] | (v[None] <= S[:, None, None])                  # (nS, R, n)
        att = np.einsum("trn,srn->tsr", ok_t.astype(np.float32), ok_s.astype(np.float32)) / fin.shape[1]
        scale = (1.0 / c.n_gpus) if by == "per_gpu" else (3600.0 / c.usd_per_hour)
        for i in range(T.size):
            for j in range(S.size):
                g = _crossing(rates, att[i, j], target)[0] * scale
                if g > val[c.arch][i, j]:
                    val[c.arch][i, j], who[c.arch][i, j] = g, c.name
    rows = []
    for i, t in enumerate(T):
        for j, s in enumerate(S):
            row = {"ttft": float(t), "tpot": float(s)}
            for a in archs:
                row[f"best_{a}"] = float(val[a][i, j])
                row[f"name_{a}"] = who[a][i, j]
            row["winner"] = _winner({a: val[a][i, j] for a in archs}, tie_within)
            col = val.get("colocated", np.zeros((T.size, S.size)))[i, j]
            dis = val.get("disaggregated", np.full((T.size, S.size), np.nan))[i, j]
            row["ratio"] = _ratio(dis, col)
            rows.append(row)
    return pd.DataFrame(rows)


def _ratio(dis: float, col: float) -> float:
    """dis / col; inf when only the disaggregated unit meets the SLO, NaN when neither does."""
    if col > 0:
        return float(dis / col)
    return math.inf if dis > 0 else math.nan


def _winner(values: Mapping[str, float], tie_within: float) -> str:
    return decide(values, tie_within)


# ---------------------------------------------------------------- the model's error and ties
#: The simulation's own resolution in a ratio of two goodputs (relative): finite runs (a few
#: hundred requests) and goodputs read off a rate grid move a ratio even for an exact cost model.
#: Measured on chapter 09's head-to-head (300 requests, :func:`head_to_head_sweep`'s grid): the
#: ratio of the best split to the best colocated unit over arrival seeds 0–3 spans 0.98–1.23
#: with the roofline and 1.10–1.26 with the Splitwise-calibrated model, about ±10% around the
#: middle of each range.
RESOLUTION = 0.10


def cost_model(model, gpu, tp: int = 1, calibration: str | None = None, **knobs) -> CostModel:
    """``CostModel(model, gpu, tp)`` (the roofline) when ``calibration`` is None, else
    :func:`pdlib.calibrate.from_published` of that source at this tp."""
    if calibration is None:
        return CostModel(mdl.get(model), gpu, tp=tp, **knobs)
    return pub.from_published(model, gpu, tp, calibration, **knobs)


def comparison_band(source: str | None, gpu=None, phases: Sequence[str] = ("prefill", "decode"), *,
                    resolution: float = RESOLUTION, stat: str = "median") -> float:
    """How far apart (relative) two goodputs priced by one cost model must be before the model can
    tell them apart: the band of :func:`within_band` and :func:`decide`.

    ``source``: the model's calibration (None or "roofline": the pure roofline; else a published
    source, :func:`pdlib.calibrate.from_published`); its error is ``e`` = the largest of its
    out-of-sample ``stat`` absolute errors over ``phases`` on ``gpu``
    (:func:`pdlib.published.model_error`; both architectures' goodputs depend on both phases,
    so each may be off by the worse one). Then::

        band = (1 + e) / (1 − e) · (1 + resolution) − 1

    **Why the errors are taken as independent.** A goodput is a rate, the inverse of step times, so
    a step-time error e moves it by about e. The two architectures are priced by the same model on
    the same GPU, and the part of its error they share (one GPU's per-step overhead, its GEMM
    efficiency) cancels in their ratio: if every step were 5% slow, both goodputs would fall 5% and
    the ratio would stand. But the measured errors are not one common factor: prefill and decode
    err by different amounts and signs on the held-out rows, and a split's goodput is set by its
    slower pool while a colocated unit's mixes both phases in every step, so the two goodputs
    weight the errors differently. The validation rows (a handful per phase) cannot separate the
    shared part from the rest, so we take the conservative case: the two goodputs may be off by
    ``e`` in opposite directions, and their ratio by ``(1 + e)/(1 − e)``. That calls more ties
    than treating the errors as correlated (band ≈ ``resolution``) or independent in quadrature
    (≈ ``√2·e``). ``resolution`` (default :data:`RESOLUTION`) is the simulation's own spread,
    compounded on top."""
    if not 0 <= resolution < 1:
        raise ValueError(f"resolution must be in [0, 1), got {resolution!r}")
    src = "roofline" if source is None else source
    e = max(pub.model_error(src, p, gpu, stat) for p in phases)
    if not e < 1:
        raise ValueError(f"model error {e:.0%} ≥ 100%: no band")
    return (1 + e) / (1 - e) * (1 + resolution) - 1


def within_band(a: float, b: float, band: float) -> bool:
    """True when ``a`` and ``b`` (goodputs, ≥ 0) are a tie within ``band``:
    ``max(a, b) ≤ (1 + band) · min(a, b)`` (two zeros are a tie; a zero and a positive value are
    not)."""
    if a < 0 or b < 0 or band < 0:
        raise ValueError(f"need a, b >= 0 and band >= 0, got {a!r}, {b!r}, {band!r}")
    return max(a, b) <= (1 + band) * min(a, b)


def decide(values: Mapping[str, float], band: float) -> str:
    """The winner among ``values`` (name → goodput, ≥ 0): the name with the highest value, "tie"
    when the runner-up is within ``band`` of it (:func:`within_band`; :func:`comparison_band`
    gives the band a cost model's error allows), "none" when every value is 0."""
    if not values:
        raise ValueError("values is empty: give at least one name -> goodput")
    order = sorted(values, key=lambda a: values[a], reverse=True)
    top = values[order[0]]
    if top <= 0:
        return "none"
    if len(order) > 1 and within_band(top, values[order[1]], band):
        return "tie"
    return order[0]


# ---------------------------------------------------------------- phase diagrams
def phase_diagram(xs: Sequence, ys: Sequence, setup: Callable[[object, object], dict], *,
                  x_name: str = "x", y_name: str = "y", target: float = 0.9, tie_within: float = 0.05,
                  progress: bool = False, desc: str = "phase diagram", **sweep_kwargs) -> pd.DataFrame:
    """Which architecture has the higher goodput per GPU in each cell of an ``xs × ys`` grid.

    ``setup(x, y)`` returns ``{"candidates": [...], "workload": rate -> Workload, "slo": {...}}``
    and optionally ``"key"``: cells with the same key share the workload and SLO, so a candidate
    already evaluated under that key (same name) is not simulated again (e.g. a colocated
    candidate across a link axis). Each cell is swept (:func:`sweep` with ``stop_slo`` = the cell's
    SLO, ``stop_below`` = ``target``, and ``sweep_kwargs``) and read off at ``target``. Columns:
    ``x_name``, ``y_name``, per architecture ``best_<arch>`` (goodput per GPU, req/s/GPU),
    ``name_<arch>`` (that unit), ``censored_<arch>`` (its :meth:`Sweep.goodput` censoring: "",
    "below grid": goodput 0 because the lowest rate already misses, "above grid": the true goodput
    is higher than the top rate), ``capacity_<arch>`` (its :func:`capacity_estimate` per GPU,
    req/s/GPU, at the mean lengths of the cell's workload) and ``above_estimate_<arch>`` (True when
    its goodput exceeds that estimate: a suspect cell, usually a run too short to reach steady
    state; see :data:`DIAGRAM_REQUESTS`); winner (as :func:`slo_map`), ratio (best disaggregated ÷
    best colocated), above_estimate (True when any architecture's best unit is above its
    estimate), slo.
    """
    target = _check_target(target)
    cells = [(x, y) for y in ys for x in xs]
    rows, cache = [], {}
    bar = _progress.counter(len(cells), progress, desc)
    for x, y in cells:
        spec = setup(x, y)
        key = spec.get("key", (x, y))
        todo = [c for c in spec["candidates"] if (c.name, key) not in cache]
        if todo:
            kw = {"stop_slo": spec["slo"], "stop_below": target, "refine": spec["slo"], "target": target,
                  "refine_steps": 1, **sweep_kwargs}
            sw = sweep(todo, spec["workload"], **kw)
            P, O = _lengths(_as_workload_fn(spec["workload"]))
            for c, (_, r) in zip(todo, sw.goodput(spec["slo"], target).iterrows()):
                r = r.copy()
                r["capacity"] = capacity_estimate(c, P, O)
                cache[c.name, key] = r
        t = pd.DataFrame([cache[c.name, key] for c in spec["candidates"]])
        row = {x_name: x, y_name: y}
        vals = {}
        for a in ARCHS:
            ta = t[t.arch == a]
            if ta.empty:
                continue
            b = ta.loc[ta.goodput_per_gpu.idxmax()]
            vals[a] = float(b.goodput_per_gpu)
            row[f"best_{a}"], row[f"name_{a}"] = vals[a], b["name"]
            row[f"censored_{a}"] = b.censored
            row[f"capacity_{a}"] = float(b.capacity) / int(b.n_gpus)
            row[f"above_estimate_{a}"] = bool(float(b.goodput) > float(b.capacity))
        row["winner"] = _winner(vals, tie_within)
        col = vals.get("colocated", 0.0)
        row["ratio"] = _ratio(vals.get("disaggregated", math.nan), col)
        row["above_estimate"] = any(row[f"above_estimate_{a}"] for a in vals)
        row["slo"] = dict(spec["slo"])
        rows.append(row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)


def scaled_slo(model, gpu: str, prompt: int, output: int, tp: int = 1, *, ttft_scale: float = 5.0,
               tpot_scale: float = 2.0, calibration: str | None = None) -> dict:
    """An SLO scaled to the model and request (DistServe's "SLO scale" idea), so that one rule is
    equally strict for a small and a large model: TTFT ≤ ``ttft_scale`` × the prefill time of one
    ``prompt`` alone, TPOT ≤ ``tpot_scale`` × one decode step of a lone request at context
    ``prompt + output`` (seconds, on ``tp`` × ``gpu``, priced by :func:`cost_model` with
    ``calibration``: the scale is relative to the steps of the model that prices the runs)."""
    cm = cost_model(model, gpu, tp, calibration)
    return {"ttft": ttft_scale * float(cm.prefill(prompt).time),
            "tpot": tpot_scale * float(cm.decode(1, prompt + output).time)}


def _min_tp(model, gpu: str, need_tokens: int) -> int:
    for tp in (1, 2, 4, 8):
        if _fits(model, gpu, tp, need_tokens, None):
            return tp
    raise ValueError(f"{model} does not fit one node of 8 × {gpu} with KV for {need_tokens} tokens")


def pool_ratio(model, gpu: str, prompt: int, output: int, slo: Mapping[str, float], *, tp: int = 1,
               max_instances: int = 3, max_batch: int = 256,
               calibration: str | None = None) -> tuple[int, int]:
    """The xPyD ratio whose pools are best balanced, from the roofline alone (DistServe's placement
    idea, no simulation): one prefill instance serves ``C_p = 1 / t_p`` req/s (``t_p``: one
    ``prompt`` alone); one decode instance ``C_d = B / ((output − 1) · t_d(B))`` req/s, with ``B``
    the largest batch whose step ``t_d(B)`` (context ``prompt + output/2``) meets ``slo["tpot"]``
    (when given) and whose KV fits. Returns the reduced ``(x, y)`` with ``x + y ≤ max_instances``
    maximizing ``min(x·C_p, y·C_d) / (x + y)``, ties to fewer instances. Step times from
    :func:`cost_model` with ``calibration`` (None: the roofline)."""
    cm = cost_model(model, gpu, tp, calibration)
    c_p = 1.0 / float(cm.prefill(prompt).time)
    b_max = max(1, min(max_batch, cm.kv_capacity_tokens // (prompt + output)))
    batches = np.arange(1, b_max + 1)
    t_d = np.asarray(cm.decode(batches, prompt + output / 2).time)
    ok = t_d <= slo.get("tpot", np.inf)
    b = int(batches[ok][-1]) if ok.any() else 1
    c_d = b / (max(output - 1, 1) * float(t_d[b - 1]))
    best, score = (1, 1), -1.0
    for x, y in xpyd_configs(max_instances):
        if not _reduced(x, y):
            continue
        s = min(x * c_p, y * c_d) / (x + y)
        if s > score * (1 + 1e-9):
            best, score = (x, y), s
    return best


def _cell_candidates(model, gpu: str, tp: int, link: str, chunk: int, max_unit_instances: int,
                     prompt: int, output: int, slo: Mapping[str, float],
                     transfer: str = "whole", calibration: str | None = None) -> list[Candidate]:
    need = prompt + output
    cands = colocated_candidates(model, gpus=(gpu,), tps=(tp,), schedulers=("chunked",),
                                 chunk_sizes=(chunk,), min_kv_tokens=need, calibration=calibration)
    x, y = pool_ratio(model, gpu, prompt, output, slo, tp=tp, max_instances=max_unit_instances,
                      calibration=calibration)
    cands += [c for c in disaggregated_candidates(model, prefill_gpus=(gpu,), decode_gpus=(gpu,),
                                                  links=(link,), prefill_tps=(tp,), decode_tps=(tp,),
                                                  max_unit_gpus=(x + y) * tp, min_kv_tokens=need,
                                                  transfer=transfer, calibration=calibration)
              if (c.params["n_prefill"], c.params["n_decode"]) == (x, y)]
    return cands


#: Default requests per simulation of :func:`ratio_model_diagram` and :func:`prompt_link_diagram`.
#: A run must span several request lifetimes for the queue and the decode batch to fill (steady
#: state); near capacity a unit holds a full decode batch in flight (hundreds of requests for an 8B
#: model), so short runs end before that and overstate goodput. Measured with the default
#: ``ratio_model_diagram`` on Llama-3.1-8B (n_rates=4, span=(0.15, 1.5)): at 1024/1024 the 1P2D unit
#: reads 9.42 req/s/GPU with 150 requests (28.3 req/s, 1.5× its :func:`capacity_estimate` of 18.8),
#: 4.77 with 300 and 4.65 with 450, and the winner flips from the split (1.42×) to chunked prefill
#: (0.74×, 0.72×); at 1920/128 the 2P1D unit is still above its estimate with 150 and 300 requests
#: (ratio 1.01, 0.99) and below it with 450 (ratio 0.80), so the request count cannot shrink with
#: the output. 450 is what a diagram cell affords on a 2-core CPU; some cells (the 70B model with
#: 1,792-token outputs) still do not reach steady state: read the ``above_estimate`` column.
DIAGRAM_REQUESTS = 450


def ratio_model_diagram(models: Sequence[str] = ("Llama-3.1-8B", "Llama-3.1-70B"),
                        shapes: Sequence[tuple[int, int]] = ((1920, 128), (1024, 1024), (256, 1792)), *,
                        gpu: str = "H100-SXM", link: str = "IB-NDR-400G", chunk: int = 512,
                        max_unit_instances: int = 3, min_batch: int = 32, ttft_scale: float = 5.0,
                        tpot_scale: float = 2.0, n: int = DIAGRAM_REQUESTS, seed: int = 0,
                        transfer: str = "whole", calibration: str | None = None,
                        progress: bool = False, **sweep_kwargs) -> pd.DataFrame:
    """Phase diagram over the prompt:output shape (x: ``"prompt/output"``) and the model (y).

    Each cell: Poisson requests of fixed ``(prompt, output)`` tokens on ``model`` at the smallest
    tp (1, 2, 4, 8) whose KV holds ``min_batch`` such requests on one ``gpu`` instance (column
    ``tp``), SLO :func:`scaled_slo`. Two candidates per cell, each architecture at a sensible
    setting: colocated chunked prefill (``chunk`` tokens per step; chapter 04's best colocated
    scheduler under a TPOT target) and the xPyD of :func:`pool_ratio` (≤ ``max_unit_instances``
    instances, KV over ``link``, sent ``transfer``: "whole" after the prefill, or "layerwise").
    Extra columns: prompt, output, ratio_po (prompt ÷ output), tp,
    n (requests per simulation), and :func:`phase_diagram`'s censored / capacity / above_estimate
    columns. ``n`` requests per simulation (default :data:`DIAGRAM_REQUESTS`: fewer do not reach
    steady state); ``calibration``: None (the roofline) or a published source pricing the runs,
    the SLO scale and the pool ratio (:func:`cost_model`); ``sweep_kwargs`` go to
    :func:`phase_diagram` (``tie_within``, e.g. :func:`comparison_band` of the calibration) and on
    to :func:`sweep` (e.g. ``n_rates``)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (requests per simulation) must be a positive integer, got {n!r}")
    n_of = {f"{p}/{o}": int(n) for p, o in shapes}
    spec = {f"{p}/{o}": (p, o) for p, o in shapes}
    tps = {(m, s): _min_tp(m, gpu, min_batch * sum(spec[s])) for m in models for s in spec}

    def setup(shape, model):
        p, o = spec[shape]
        tp = tps[model, shape]
        slo = scaled_slo(model, gpu, p, o, tp, ttft_scale=ttft_scale, tpot_scale=tpot_scale,
                         calibration=calibration)
        return {"candidates": _cell_candidates(model, gpu, tp, link, chunk, max_unit_instances, p, o, slo,
                                               transfer, calibration),
                "workload": lambda rate: wl.poisson(rate=rate, n=n_of[shape], prompt=p, output=o, seed=seed),
                "slo": slo}

    df = phase_diagram(list(spec), list(models), setup, x_name="shape", y_name="model",
                       progress=progress, desc="shape × model", **sweep_kwargs)
    df.insert(2, "prompt", [spec[s][0] for s in df["shape"]])
    df.insert(3, "output", [spec[s][1] for s in df["shape"]])
    df.insert(4, "ratio_po", df.prompt / df.output)
    df.insert(5, "tp", [tps[m, s] for m, s in zip(df.model, df["shape"])])
    df.insert(6, "n", [n_of[s] for s in df["shape"]])
    return df


def prompt_link_diagram(model: str = "Llama-2-7B", prompts: Sequence[int] = (512, 2048, 8192),
                        links: Sequence[str] = ("100GbE", "IB-NDR-400G", "NVLink4"), *,
                        output: int = 128, gpu: str = "H100-SXM", chunk: int = 512,
                        max_unit_instances: int = 3, ttft_scale: float = 5.0, tpot_scale: float = 2.0,
                        n: int = DIAGRAM_REQUESTS, seed: int = 0, transfer: str = "whole",
                        calibration: str | None = None, progress: bool = False,
                        **sweep_kwargs) -> pd.DataFrame:
    """Phase diagram over the prompt length (x, tokens) and the KV link (y): Poisson requests of
    ``prompt`` + ``output`` tokens on ``model`` (tp 1 on ``gpu``), SLO :func:`scaled_slo`; the
    colocated candidate (chunked prefill) does not use the link and is simulated once per prompt;
    the xPyD of :func:`pool_ratio` sends the KV over each link, ``transfer`` "whole" after the
    prefill (default, as vLLM's NixlConnector) or "layerwise" (streamed during it, as Mooncake),
    TTFT counting the transfer (token 1 reaches the client with the KV). ``n`` requests per
    simulation (default :data:`DIAGRAM_REQUESTS`; with the default 128-token outputs and whole
    transfers, 150 give ratios within 0.05 of 450's: 0.04 at most over the default 3 × 3 cells).
    ``calibration`` as in :func:`ratio_model_diagram`.
    Extra columns: link_gbps (Gb/s), and :func:`phase_diagram`'s censored / capacity /
    above_estimate columns."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (requests per simulation) must be a positive integer, got {n!r}")
    def setup(prompt, link):
        slo = scaled_slo(model, gpu, prompt, output, 1, ttft_scale=ttft_scale, tpot_scale=tpot_scale,
                         calibration=calibration)
        return {"candidates": _cell_candidates(model, gpu, 1, link, chunk, max_unit_instances, prompt,
                                               output, slo, transfer, calibration),
                "workload": lambda rate: wl.poisson(rate=rate, n=n, prompt=prompt, output=output, seed=seed),
                "slo": slo, "key": prompt}

    df = phase_diagram(list(prompts), list(links), setup, x_name="prompt", y_name="link",
                       progress=progress, desc="prompt × link", **sweep_kwargs)
    df.insert(2, "link_gbps", [hw.link(ln).bandwidth * 8 / 1e9 for ln in df.link])
    return df


# ---------------------------------------------------------------- burstiness
def burstiness_sweep(candidates: Sequence[Candidate], per_gpu_rate: float,
                     cvs: Sequence[float] = (1.0, 2.0, 4.0, 8.0), *, n: int = 400,
                     prompt: int | wl.LengthDist = 1024, output: int | wl.LengthDist = 128, seed: int = 0,
                     n_seeds: int = 3, progress: bool = False) -> pd.DataFrame:
    """TPOT and token-gap inflation under bursty arrivals (the DistServe retrospective's claim
    that one large prefill inflates TPOT 2–30× even with chunked prefill).

    Each candidate serves ``n`` requests with Gamma inter-arrival gaps of coefficient of variation
    ``cv`` (:func:`pdlib.workload.gamma`; cv = 1 is Poisson, larger is burstier) at the same mean
    load, ``per_gpu_rate`` × its GPUs (req/s), once per seed ``seed, seed + 1, …, seed + n_seeds − 1``;
    the percentiles pool the requests (and token gaps) of all seeds.

    **What n means for a bursty run.** Gamma gaps of shape ``1/cv²`` put most arrivals in a few
    clumps separated by long idle gaps: at cv 9 a run of a few hundred requests holds only a
    handful of bursts, so its tail (P99 TPOT, above all with prefill priority, where one burst of
    prompts stalls every decode) is decided by how big those few bursts happen to be, and one seed
    can differ from the next several-fold. Column ``bursts`` counts them: the arrival clusters,
    a new one starting at every gap longer than the mean gap ``1 / rate`` (summed over seeds; about
    ``0.37 · n`` per seed for Poisson, far fewer for cv ≫ 1). Trust a tail only when ``bursts`` is
    in the tens or more; raise ``n`` or ``n_seeds`` otherwise. Measured on chapter 09's
    prefill-priority tp4 unit at cv 9 and 300 requests, P99 TPOT ÷ a lone decode step: one seed at a
    time 14–83 over seeds 0–5 (12–14 bursts each); 3 seeds pooled 21–47 over six disjoint triples;
    8 seeds pooled 30–36 over three disjoint octets. Each extra seed costs one more simulation per
    cell; the default of 3 keeps chapter 09's cell at a few seconds.

    Baseline: ``decode_step_s``, one decode step of a lone request at context prompt + output/2
    (mean lengths) on the decode GPU — the TPOT with no batching and no interference. Columns:
    name, arch, cv, rate, n_seeds, n_requests (n × n_seeds), bursts, decode_step_s, tpot_p50,
    tpot_p90, tpot_p99, tbt_p99 (P99 over all token gaps), max_tbt_p99 (P99 of each request's
    largest gap), ttft_p90 (seconds); ``*_inflation`` = each of tpot_p50, tpot_p99, tbt_p99,
    max_tbt_p99 ÷ decode_step_s; finished (fraction)."""
    cands = list(candidates)
    if not cands:
        raise ValueError("no candidates: pass at least one Candidate")
    if not per_gpu_rate > 0:
        raise ValueError(f"per_gpu_rate must be > 0 req/s per GPU, got {per_gpu_rate!r}")
    if not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    rows = []
    bar = _progress.counter(len(cands) * len(cvs), progress, "burstiness (Gamma cv)")
    for c in cands:
        cl = c.cluster()
        dec_cm = cl.cost if c.arch == "colocated" else cl.decode_cost
        for cv in cvs:
            rate = per_gpu_rate * c.n_gpus
            fins, tbts, n_all, bursts, P, O = [], [], 0, 0, [], []
            for s in range(seed, seed + int(n_seeds)):
                w = wl.gamma(rate=rate, n=n, cv=cv, prompt=prompt, output=output, seed=s)
                res = sim.simulate(c.cluster(), w)
                df = res.requests
                fins.append(df[df.status == "finished"])
                tbts.append(np.asarray(res.tbt, dtype=np.float64))
                n_all += len(df)
                bursts += 1 + int(np.sum(np.diff(np.asarray(w.arrival)) > 1.0 / rate))
                P.append(np.asarray(w.prompt, dtype=np.float64))
                O.append(np.asarray(w.output, dtype=np.float64))
            fin = pd.concat(fins, ignore_index=True)
            P, O = np.concatenate(P), np.concatenate(O)
            base = float(dec_cm.decode(1, float(np.mean(P) + np.mean(O) / 2)).time)
            tp = fin.tpot.dropna().to_numpy()
            tbt = np.concatenate(tbts)
            row = {"name": c.name, "arch": c.arch, "cv": float(cv), "rate": rate, "n_seeds": int(n_seeds),
                   "n_requests": n_all, "bursts": bursts, "decode_step_s": base,
                   "tpot_p50": float(np.percentile(tp, 50)), "tpot_p90": float(np.percentile(tp, 90)),
                   "tpot_p99": float(np.percentile(tp, 99)), "tbt_p99": float(np.percentile(tbt, 99)),
                   "max_tbt_p99": float(np.percentile(fin.max_tbt.dropna(), 99)),
                   "ttft_p90": float(np.percentile(fin.ttft, 90)), "finished": float(len(fin) / n_all)}
            for k in ("tpot_p50", "tpot_p99", "tbt_p99", "max_tbt_p99"):
                row[f"{k}_inflation"] = row[k] / base
            rows.append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- cost
def cost_table(p: Plan, output_tokens: float, archs: Iterable[str] | None = None) -> pd.DataFrame:
    """USD per million output tokens of the best unit (by requests per USD) of each architecture of
    plan ``p``, run at its goodput: :func:`cost_per_million_tokens` with the unit's
    goodput (req/s), ``output_tokens`` (mean output tokens per request) and price. Columns: arch,
    name, n_gpus, usd_per_hour, goodput, goodput_per_usd, usd_per_m_tokens."""
    rows = []
    for a in (archs or ARCHS):
        if not ((p.table.arch == a) & p.table.fits_budget & p.table.goodput_per_usd.notna()).any():
            continue
        b = p.best("per_usd", a)
        usd = (cost_per_million_tokens(b.goodput, output_tokens, b.usd_per_hour)
               if b.goodput > 0 else math.nan)
        rows.append({"arch": a, "name": b["name"], "n_gpus": int(b.n_gpus), "usd_per_hour": float(b.usd_per_hour),
                     "goodput": float(b.goodput), "goodput_per_usd": float(b.goodput_per_usd),
                     "usd_per_m_tokens": usd})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the book's head-to-head setup
#: Chapter 09's setup: Llama-3.1-70B on H100-SXM, request lengths of the Azure conversation trace
#: (:func:`pdlib.workload.named` "azure-conv"), a chat SLO of TTFT ≤ 1 s and TPOT ≤ 50 ms at 90%
#: attainment, a budget of 16 GPUs (two 8-GPU HGX nodes), KV over one 400 Gb/s InfiniBand NIC
#: per GPU. The SLO is a typical interactive-chat target, not a number from a paper.
#: ``calibration``: the published measurements that price the chapter's calibrated runs —
#: SplitwiseSim's engine profiles of Llama-2-70B on DGX-H100 (:func:`pdlib.calibrate.from_published`),
#: the only whole-step H100 measurements shipped; a 70B Llama at tp 4 and 8 is priced by the same
#: fitted terms (and the all-reduce measured at each tp on the DGX-H100).
HEAD_TO_HEAD = {"model": "Llama-3.1-70B", "gpu": "H100-SXM", "workload": "azure-conv",
                "link": "IB-NDR-400G", "slo": {"ttft": 1.0, "tpot": 0.05}, "target": 0.9,
                "budget_gpus": 16, "calibration": "splitwise"}

#: Chapter 09's search space, as broad for one side as for the other. Colocated: tp 4 and 8, each
#: with prefill priority and chunked prefill at 256, 512, 1,024 and 2,048 tokens per step.
#: Disaggregated: prefill tp 2, 4 or 8 (a prefill instance needs KV room only for the prompts in
#: flight, so it may be narrower than a decode instance) × decode tp 4 or 8, every reduced xPyD
#: with ``x ≤ max_prefill``, ``y ≤ max_decode`` and at most 16 GPUs. Conditional: 1P1D at
#: (tp_p, tp_d) in ``conditional_tps``, prompts of ≤ 1,024 tokens prefilled on the decode instance.
#: tp 2 is left out where an instance must hold the decoding requests' KV: Llama-3.1-70B's weights
#: leave room for about 8 requests of mean length on 2 × 80 GB.
HEAD_TO_HEAD_SPACE = {"colocated_tps": (4, 8), "chunk_sizes": (256, 512, 1024, 2048),
                      "prefill_tps": (2, 4, 8), "decode_tps": (4, 8), "max_prefill": 4, "max_decode": 2,
                      "conditional_tps": ((2, 4), (4, 4)), "local_prefill": 1024}


def head_to_head_candidates(model: str = HEAD_TO_HEAD["model"], gpu: str = HEAD_TO_HEAD["gpu"],
                            link: str = HEAD_TO_HEAD["link"], conditional: bool = True,
                            calibration: str | None = None, space: Mapping | None = None) -> list[Candidate]:
    """Chapter 09's candidates: the units of :data:`HEAD_TO_HEAD_SPACE` (or ``space``, the same
    keys), colocated, disaggregated and, when ``conditional``, conditional; ``calibration``: None
    (the roofline) or a published source (:attr:`Candidate.calibration`)."""
    sp = {**HEAD_TO_HEAD_SPACE, **(space or {})}
    c = colocated_candidates(model, gpus=(gpu,), tps=sp["colocated_tps"], chunk_sizes=sp["chunk_sizes"],
                             calibration=calibration)
    ratios = [(x, y) for x in range(1, sp["max_prefill"] + 1) for y in range(1, sp["max_decode"] + 1)
              if _reduced(x, y)]
    for tpp in sp["prefill_tps"]:
        c += disaggregated_candidates(model, prefill_gpus=(gpu,), decode_gpus=(gpu,), links=(link,),
                                      prefill_tps=(tpp,), decode_tps=sp["decode_tps"], ratios=ratios,
                                      max_unit_gpus=16, calibration=calibration)
    if conditional:
        for tpp, tpd in sp["conditional_tps"]:
            c += conditional_candidates(model, prefill_gpus=(gpu,), decode_gpus=(gpu,), links=(link,),
                                        prefill_tps=(tpp,), decode_tps=(tpd,), ratios=((1, 1),),
                                        max_unit_gpus=16, local_prefill=(sp["local_prefill"],),
                                        calibration=calibration)
    return c


def head_to_head_workload(n: int = 300, seed: int = 0, workload: str = HEAD_TO_HEAD["workload"]
                          ) -> Callable[[float], wl.Workload]:
    """``rate -> Workload``: ``n`` Poisson requests with the lengths of trace ``workload``."""
    return lambda rate: wl.named(workload, n=n, rate=rate, seed=seed)


#: Requests per simulation of chapter 09's sweeps (:func:`head_to_head_sweep`): the chapter runs
#: two sweeps (roofline and calibrated) of the 31 units of :data:`HEAD_TO_HEAD_SPACE`, about 10 s
#: each on 2 cores. Shorter runs move the goodputs: at 200 requests the best roofline unit reads
#: 3.10 req/s/GPU against 2.78 at 300 (chunked-512 tp4, seed 0).
HEAD_TO_HEAD_REQUESTS = 300


def head_to_head_sweep(candidates: Sequence[Candidate] | None = None, n: int = HEAD_TO_HEAD_REQUESTS,
                       calibration: str | None = None, progress: bool = False) -> Sweep:
    """Chapter 09's sweep: :func:`head_to_head_candidates` (with ``calibration``; or
    ``candidates``) on :func:`head_to_head_workload` (``n`` requests), five rates per unit from
    0.15× to 1.5× its :func:`capacity_estimate`, stopping where even TTFT ≤ 8 s and TPOT ≤ 150 ms
    fail half the requests, plus two bisection steps around the crossing of the chapter's SLO."""
    cands = head_to_head_candidates(calibration=calibration) if candidates is None else list(candidates)
    return sweep(cands, head_to_head_workload(n), n_rates=5, span=(0.15, 1.5),
                 stop_slo={"ttft": 8.0, "tpot": 0.15}, refine=HEAD_TO_HEAD["slo"],
                 target=HEAD_TO_HEAD["target"], progress=progress)


def head_to_head_verdict(p: Plan, calibration: str | None, gpu: str = HEAD_TO_HEAD["gpu"], *,
                         resolution: float = RESOLUTION, by: str = "per_gpu") -> dict:
    """Who wins plan ``p`` (colocated against disaggregated, best unit of each ``by`` goodput per
    GPU or per USD), judged within the error of the cost model that priced it
    (:func:`comparison_band` of ``calibration`` on ``gpu``). Returns a dict: colocated,
    disaggregated (the best rows), ratio (disaggregated ÷ colocated), band, error (the model's
    worse phase error, :func:`pdlib.published.model_error`), calibration and verdict
    ("colocated", "disaggregated", "tie" or "none")."""
    col = {"per_gpu": "goodput_per_gpu", "per_usd": "goodput_per_usd"}[by]
    bc, bd = p.best(by, "colocated"), p.best(by, "disaggregated")
    band = comparison_band(calibration, gpu, resolution=resolution)
    src = "roofline" if calibration is None else calibration
    err = max(pub.model_error(src, ph, gpu) for ph in ("prefill", "decode"))
    vc, vd = float(bc[col]), float(bd[col])
    return {"colocated": bc, "disaggregated": bd, "ratio": _ratio(vd, vc), "band": band, "error": err,
            "calibration": calibration, "verdict": decide({"colocated": vc, "disaggregated": vd}, band)}
