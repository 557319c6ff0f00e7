"""Published results reproduced with the simulator, one function per result.

Every function is pure: it builds clusters with :mod:`pdlib.sim`, runs Poisson workloads from
:mod:`pdlib.workload` with fixed seeds, and returns plain dicts and pandas DataFrames that a
chapter plots and a test pins. Rates are requests per second (req/s), times seconds, prices USD.

Goodput (DistServe's metric): the highest Poisson arrival rate at which at least 90% of the
requests meet *every* latency target of the SLO, found by bisection
(:func:`pdlib.sim.goodput`); divided by the number of GPUs it is *goodput per GPU*, the number
that decides how many GPUs a service needs.

An ``xPyD`` configuration is ``x`` prefill instances and ``y`` decode instances (one GPU each
here, tp = 1), joined by a KV link.

**Calibrated reruns.** Every experiment takes ``calibration``: None (default) prices its steps
with the pure roofline; a published source ("splitwise", "vidur", "sarathi";
:func:`pdlib.calibrate.from_published`) prices every instance with the terms fitted to that
source's GPU measurements, each pool at its own tp (:func:`pdlib.published.calibrated_cluster`).
The result records ``calibration``; :func:`pdlib.published.model_error` gives the model's
out-of-sample error to state beside it.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import hardware as hw
from . import models as mdl
from . import progress as _progress
from . import published as pub
from . import sim
from . import workload as wlmod
from .cost import CostModel
# deployment arithmetic lives in the planner (sim → planner → reproduce); re-exported here
from .planner import (comparison_band, config_name, config_price, cost_model, cost_per_million_tokens,
                      within_band, xpyd_configs)

__all__ = ["DISTSERVE_SLO", "DISTSERVE_PAPER", "SPLITWISE_PAPER", "distserve_prefill_fit",
           "distserve_decode_fit", "distserve_fit_table", "distserve_bw_efficiency", "xpyd_configs",
           "config_name", "config_price", "cost_per_million_tokens", "xpyd_goodput", "xpyd_search",
           "distserve_example", "pd_ratio_sweep", "pool_growth", "decode_hardware",
           "decode_tpot_table",
           # chapter 10: the papers reproduced
           "DISTSERVE_SLO_SCALE_PAPER", "SARATHI_PAPER", "MOONCAKE_PAPER", "SPLITWISE_SLO",
           "REPRODUCED_TOL", "compare", "compare_within_error",
           "scale_at_attainment", "distserve_slo_scale", "without_sliding_window",
           "sarathi_meets", "sarathi_workload", "sarathi_capacity_table", "sarathi_capacity", "gbps_link", "kv_emission_gbps", "bandwidth_knee",
           "mooncake_bandwidth_knee", "mooncake_pd_ratio", "splitwise_cost"]

#: DistServe's running example: P90 TTFT ≤ 0.4 s and P90 TPOT ≤ 0.04 s, i.e. 90% of the requests
#: meet both (seconds). Source: Zhong et al., DistServe (OSDI 2024) §2.2, fig. 1 and its blog post
#: https://hao-ai-lab.github.io/blogs/distserve/
DISTSERVE_SLO: dict[str, float] = {"ttft": 0.4, "tpot": 0.04}

#: What DistServe reports for that example (13B model, one A100-80GB per instance, 512 prompt /
#: 64 output tokens, Poisson arrivals). Rates: *_rps per instance, *_per_gpu per GPU (req/s).
#: Source: DistServe (OSDI 2024) §2.2 and fig. 1; https://hao-ai-lab.github.io/blogs/distserve/
DISTSERVE_PAPER: dict = {"colocated_per_gpu": 1.6, "prefill_only_rps": 5.6, "decode_only_rps": 10.0,
                         "disaggregated_per_gpu": 3.3, "best_config": "2P1D"}

#: Splitwise's headline for heterogeneous pools (H100 prompt machines, A100 token machines):
#: 1.4× the throughput at 20% lower cost than a homogeneous design. Source: Patel et al.,
#: Splitwise (ISCA 2024), abstract.
SPLITWISE_PAPER: dict = {"throughput_ratio": 1.4, "cost_ratio": 0.8}

# DistServe's fitted step latency for OPT-13B, TP=1, one A100-80GB (milliseconds), in the form of
# its simulator's latency model (github.com/LLMServe/DistServe, simdistserve/estimators/
# time_estimator.py: prefill a + b·Σlen + c·Σlen², decode a + b·Σcontext + c·batch). The decode
# constants are that repository's profile exactly (simdistserve/estimators/profile_data/
# profiler-a100-80g.json, "facebook/opt-13b", TP "1", "decoding_smallbs"); the prefill constants
# are an earlier fit of the same form: the file's own "prefill" entry, 16.46 + 0.0926·Σlen +
# 6.47e-6·Σlen², prices a 512–2,048-token prefill about 9% lower.
_DS_PREFILL_MS = (18.1, 0.1019, 7.12e-6)        # C1 + C2·Σtokens + C3·Σlen²
_DS_DECODE_MS = (19.93, 6.27e-4, 0.0385)        # C4 + C5·Σcontext + C6·batch


def distserve_prefill_fit(lengths) -> float:
    """DistServe's fitted time (seconds) of one prefill step over prompts of ``lengths`` tokens
    (OPT-13B, TP 1, A100): ``(18.1 + 0.1019·Σlen + 7.12e-6·Σlen²) ms``."""
    a = np.atleast_1d(np.asarray(lengths, dtype=np.float64))
    if a.size == 0 or np.any(a <= 0):
        raise ValueError(f"prompt lengths must be positive token counts, got {lengths!r}")
    c1, c2, c3 = _DS_PREFILL_MS
    return float(c1 + c2 * a.sum() + c3 * (a ** 2).sum()) * 1e-3


def distserve_decode_fit(batch, context):
    """DistServe's fitted time (seconds) of one decode step of ``batch`` requests with ``context``
    cached tokens each (OPT-13B, TP 1, A100): ``(19.93 + 6.27e-4·batch·context + 0.0385·batch) ms``.
    Array-friendly."""
    b = np.asarray(batch, dtype=np.float64)
    L = np.asarray(context, dtype=np.float64)
    if np.any(b < 1) or np.any(L < 0):
        raise ValueError(f"need batch >= 1 and context >= 0 tokens, got {batch!r}, {context!r}")
    c4, c5, c6 = _DS_DECODE_MS
    t = (c4 + c5 * b * L + c6 * b) * 1e-3
    return float(t) if np.ndim(t) == 0 else t


def distserve_bw_efficiency(model: str = "OPT-13B", gpu: str = "A100-80GB") -> float:
    """The bandwidth efficiency η_W that makes our decode cost grow with context exactly like
    DistServe's fit: each cached token costs ``k / (W·η_W)`` seconds to read, and the fit says
    6.27e-4 ms, so ``η_W = k / (W · 6.27e-7 s)`` (k = KV bytes per token, W = bytes/s)."""
    k = mdl.get(model).kv_bytes_per_token("bf16")
    return k / (hw.gpu(gpu).mem_bw * _DS_DECODE_MS[1] * 1e-3)


def distserve_fit_table(model: str = "OPT-13B", gpu: str = "A100-80GB", *,
                        prompts: Sequence[int] = (128, 512, 1024, 2048),
                        batches: Sequence[int] = (1, 8, 32, 64), context: int = 544,
                        cost_kwargs: dict | None = None) -> pd.DataFrame:
    """Our roofline step times beside DistServe's fitted ones: one row per prefill of a single
    prompt of each length in ``prompts``, then per decode step of each batch size at ``context``
    cached tokens per request (544 = the mid-point of a 512 + 64 request). Columns: step, ours_s,
    distserve_fit_s, ratio (ours / fit)."""
    cm = CostModel(model, gpu, **(cost_kwargs or {}))
    rows = [(f"prefill {p}", float(cm.prefill(p).time), distserve_prefill_fit([p])) for p in prompts]
    rows += [(f"decode batch {b} @ {context}", float(cm.decode(b, context).time),
              distserve_decode_fit(b, context)) for b in batches]
    df = pd.DataFrame(rows, columns=["step", "ours_s", "distserve_fit_s"])
    df["ratio"] = df.ours_s / df.distserve_fit_s
    return df


def _poisson(prompt: int, output: int, n: int, seed: int) -> Callable[[float], object]:
    from . import workload
    return lambda rate: workload.poisson(rate=rate, n=n, prompt=prompt, output=output, seed=seed)


def xpyd_goodput(n_prefill: int, n_decode: int, *, model: str = "OPT-13B",
                 prefill_gpu: str = "A100-80GB", decode_gpu: str = "A100-80GB",
                 link: str = "NVLink3", prompt: int = 512, output: int = 64,
                 slo: dict | None = None, n: int = 1000, seed: int = 0, tol: float = 0.05,
                 first_token: str = "decode", transfer: str = "whole",
                 cost_kwargs: dict | None = None, calibration: str | None = None) -> sim.Goodput:
    """Goodput (req/s, and per GPU) of one ``n_prefill``P``n_decode``D deployment on a Poisson
    workload of ``n`` requests with fixed ``prompt``/``output`` lengths (tokens), for ``slo``
    (default :data:`DISTSERVE_SLO`) at 90% attainment. The bisection searches 0.05 … 32 req/s per
    GPU and stops at relative width ``tol``.

    ``transfer`` defaults to "whole": DistServe's decoding instances pull a request's KV cache
    once its prefill has finished, the prefill GPU's memory serving as the queue (DistServe,
    OSDI 2024, §4.3 "Combat burstiness"); vLLM's NIXL connector, which llm-d and Dynamo's vLLM
    path use, also reads the cache after the prefill. "layerwise" streams it during the prefill.
    ``calibration``: see the module docstring."""
    def make():
        return pub.calibrated_cluster(sim.disaggregated(
            model=model, prefill_gpu=prefill_gpu, decode_gpu=decode_gpu, link=link, n_prefill=n_prefill,
            n_decode=n_decode, first_token=first_token, transfer=transfer, cost_kwargs=cost_kwargs), calibration)
    g = n_prefill + n_decode
    return sim.goodput(make, _poisson(prompt, output, n, seed), slo or DISTSERVE_SLO,
                       lo=0.05 * g, hi=32.0 * g, tol=tol)


def xpyd_search(configs: Iterable[tuple[int, int]], *, progress: bool = False, **kwargs) -> pd.DataFrame:
    """Goodput of each ``(n_prefill, n_decode)`` in ``configs`` (keyword arguments as
    :func:`xpyd_goodput`). Columns: config, n_prefill, n_decode, n_gpus, rate (req/s),
    per_gpu (req/s/GPU), usd_per_hour (when both GPUs are priced), best (highest per_gpu)."""
    configs = list(configs)
    rows = []
    for p, d in _progress.over(configs, progress, "xPyD configs"):
        g = xpyd_goodput(p, d, **kwargs)
        rows.append({"config": config_name(p, d), "n_prefill": p, "n_decode": d, "n_gpus": p + d,
                     "rate": g.rate, "per_gpu": g.per_gpu})
    df = pd.DataFrame(rows)
    pg, dg = kwargs.get("prefill_gpu", "A100-80GB"), kwargs.get("decode_gpu", "A100-80GB")
    if hw.gpu(pg).price_per_hour and hw.gpu(dg).price_per_hour:
        df["usd_per_hour"] = [config_price(pg, dg, p, d) for p, d in zip(df.n_prefill, df.n_decode)]
    df["best"] = df.per_gpu == df.per_gpu.max()
    return df


def distserve_example(n: int = 1000, seed: int = 0, progress: bool = False, *,
                      model: str = "OPT-13B", gpu: str = "A100-80GB", link: str = "NVLink3",
                      max_gpus: int = 4, tol: float = 0.05, cost_kwargs: dict | None = None,
                      calibration: str | None = None) -> dict:
    """DistServe's motivating example (§2.2, fig. 1): a 13B model on A100-80GB, 512-token prompts
    and 64-token outputs, Poisson arrivals, SLO :data:`DISTSERVE_SLO` at 90% attainment.

    ``model`` defaults to OPT-13B, the model DistServe measured (MHA, 0.82 MB of KV per token);
    "Llama-2-13B" has the same layers, width and attention and gives step times within 1%.
    ``n`` requests per simulation, arrivals seeded with ``seed``; ``progress`` shows tqdm bars;
    ``tol`` is the bisection's relative width; ``cost_kwargs`` go to :class:`~pdlib.CostModel`
    (e.g. ``{"bw_efficiency": distserve_bw_efficiency()}`` to match DistServe's decode fit);
    ``calibration`` a published source (module docstring; "vidur" for DistServe's A100).
    Returns a dict:

    * ``colocated_per_gpu``: goodput of one A100 running vLLM-style continuous batching (req/s);
    * ``prefill_only_rps``: rate one prefill instance sustains with P90 TTFT ≤ 0.4 s (decode pool
      large enough not to matter); ``decode_only_rps``: rate one decode instance sustains with
      P90 TPOT ≤ 0.04 s (prefill pool large enough);
    * ``table``: every xPyD with ≤ ``max_gpus`` GPUs, as a :func:`pd_ratio_sweep` frame (so it
      concatenates with sweeps of other shapes), plus ``vs_colocated`` (per-GPU goodput ÷
      colocated);
    * ``best_config`` (e.g. "2P1D"), ``disaggregated_per_gpu`` (its goodput per GPU), ``ratio``;
    * ``paper``: :data:`DISTSERVE_PAPER`; ``model``, ``gpu``, ``link``, ``slo``, ``calibration``.

    The KV link defaults to NVLink3 (DistServe places a 13B model's P and D instances in one node).
    """
    wl = _poisson(512, 64, n, seed)
    common = dict(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link, n=n, seed=seed, tol=tol,
                  cost_kwargs=cost_kwargs, calibration=calibration)
    kw = dict(common, prompt=512, output=64)
    steps = ["colocated", "prefill-only", "decode-only", "xPyD search"]
    bar = _progress.over(steps, progress, "DistServe example")
    out: dict = {}
    for step in bar:
        if step == "colocated":
            c = pub.calibrated_cluster(sim.colocated(model=model, gpu=gpu, cost_kwargs=cost_kwargs), calibration)
            out["colocated_per_gpu"] = sim.goodput(c, wl, DISTSERVE_SLO, lo=0.05, hi=16.0, tol=tol).per_gpu
        elif step == "prefill-only":     # one P, enough D that decode never limits; TTFT only
            out["prefill_only_rps"] = xpyd_goodput(1, 4, **{**kw, "slo": {"ttft": DISTSERVE_SLO["ttft"]}}).rate
        elif step == "decode-only":      # one D, enough P that prefill never limits; TPOT only
            out["decode_only_rps"] = xpyd_goodput(4, 1, **{**kw, "slo": {"tpot": DISTSERVE_SLO["tpot"]}}).rate
        else:
            table = pd_ratio_sweep(((512, 64),), slo=DISTSERVE_SLO, max_gpus=max_gpus,
                                   progress=progress, **common)
    table["vs_colocated"] = table.per_gpu / out["colocated_per_gpu"]
    best = table.loc[table.per_gpu.idxmax()]
    out.update(table=table, best_config=str(best.config), disaggregated_per_gpu=float(best.per_gpu),
               ratio=float(best.per_gpu / out["colocated_per_gpu"]), paper=dict(DISTSERVE_PAPER),
               model=model, gpu=gpu, link=link, slo=dict(DISTSERVE_SLO), calibration=calibration)
    return out


def pd_ratio_sweep(shapes: Sequence[tuple[int, int]] = ((512, 64), (2048, 64), (128, 512)), *,
                   slo: dict | Callable[[int, int], dict] | None = None, max_gpus: int = 4,
                   progress: bool = False, **kwargs) -> pd.DataFrame:
    """Goodput per GPU of every xPyD with ≤ ``max_gpus`` GPUs, for each ``(prompt, output)`` shape.

    ``slo``: a dict for all shapes, or ``slo(prompt, output) -> dict`` (default
    :data:`DISTSERVE_SLO`). Other keywords as :func:`xpyd_goodput` (model, GPUs, link, n, seed,
    tol). Columns: prompt, output, shape ("512/64"), config, n_prefill, n_decode, n_gpus, rate,
    per_gpu, pd_ratio (n_prefill / n_decode), best (highest per_gpu within the shape).
    """
    frames = []
    for prompt, output in _progress.over(list(shapes), progress, "prompt/output shapes"):
        s = slo(prompt, output) if callable(slo) else (slo or DISTSERVE_SLO)
        df = xpyd_search(xpyd_configs(max_gpus), prompt=prompt, output=output, slo=s, **kwargs)
        df.insert(0, "shape", f"{prompt}/{output}")
        df.insert(0, "output", output)
        df.insert(0, "prompt", prompt)
        df["pd_ratio"] = df.n_prefill / df.n_decode
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def pool_growth(rate: float, *, prompt: int = 512, output: int = 64, max_prefill: int = 6,
                max_decode: int = 3, slo: dict | None = None, model: str = "OPT-13B",
                gpu: str = "A100-80GB", link: str = "NVLink3", n: int = 1000, seed: int = 0,
                transfer: str = "whole", progress: bool = False) -> pd.DataFrame:
    """SLO attainment of every xPyD with 1…``max_prefill`` prefill and 1…``max_decode`` decode
    instances at a fixed ``rate`` (req/s), for a Poisson workload of ``prompt``/``output`` tokens;
    the KV cache moves whole after the prefill, as DistServe's decoding instances pull it
    (``transfer``, see :func:`xpyd_goodput`).

    This is the question an operator asks when the workload shifts: which pool must grow, and by
    how much, to keep serving the same traffic? Columns: n_prefill, n_decode, n_gpus, config,
    attainment (fraction meeting all of ``slo``), ttft_p90, tpot_p90 (seconds), meets (≥ 0.9),
    cheapest (meets with the fewest GPUs; ties broken by the higher attainment).
    """
    s = slo or DISTSERVE_SLO
    wl = _poisson(prompt, output, n, seed)(rate)
    grid = [(p, d) for p in range(1, max_prefill + 1) for d in range(1, max_decode + 1)]
    rows = []
    for p, d in _progress.over(grid, progress, "pool sizes"):
        c = sim.disaggregated(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link,
                              n_prefill=p, n_decode=d, transfer=transfer)
        r = sim.simulate(c, wl)
        summ = r.summary()
        rows.append({"n_prefill": p, "n_decode": d, "n_gpus": p + d, "config": config_name(p, d),
                     "attainment": r.slo_attainment(**s), "ttft_p90": summ["ttft_p90"],
                     "tpot_p90": summ["tpot_p90"]})
    df = pd.DataFrame(rows)
    df["meets"] = df.attainment >= 0.9
    df["cheapest"] = False
    ok = df[df.meets]
    if len(ok):
        best = ok.sort_values(["n_gpus", "attainment"], ascending=[True, False]).index[0]
        df.loc[best, "cheapest"] = True
    return df


def decode_tpot_table(gpus: Sequence[str] = ("A100-80GB", "H100-SXM", "L40S"), *,
                      model: str = "OPT-13B", batches: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                      context: int = 544) -> pd.DataFrame:
    """Decode step time (seconds, = TPOT of an uninterrupted decode) of ``model`` on each GPU for
    each batch size at ``context`` cached tokens per request, with each card's memory type,
    bandwidth (bytes/s) and the largest batch its KV memory holds at that context."""
    rows = []
    for name in gpus:
        cm = CostModel(model, name)
        for b in batches:
            rows.append({"gpu": cm.gpu.name, "mem_type": cm.gpu.mem_type, "mem_bw": cm.gpu.mem_bw,
                         "batch": b, "step_s": float(cm.decode(b, context).time),
                         "max_batch_in_memory": int(cm.max_decode_batch(context))})
    return pd.DataFrame(rows)


def decode_hardware(pairs: Sequence[tuple[str, str]] = (("A100-80GB", "A100-80GB"),
                                                        ("A100-80GB", "L40S"),
                                                        ("H100-SXM", "H100-SXM"),
                                                        ("H100-SXM", "A100-80GB"),
                                                        ("H100-SXM", "L40S")), *,
                    link: str = "IB-NDR-400G", max_gpus: int = 4, output: int = 64,
                    progress: bool = False, **kwargs) -> pd.DataFrame:
    """For each ``(prefill_gpu, decode_gpu)`` pair, the xPyD (≤ ``max_gpus`` GPUs) serving the
    most requests per dollar, with its goodput per GPU and per dollar. Pools sit on different machines, so the KV crosses ``link`` (default
    one 400 Gb/s InfiniBand NIC). Other keywords as :func:`xpyd_goodput` (model, prompt, slo, n,
    seed, tol).

    Columns: prefill_gpu, decode_gpu, config, n_gpus, rate (req/s), per_gpu (req/s/GPU),
    usd_per_hour, req_per_usd (requests per dollar = 3600·rate / usd_per_hour) and
    usd_per_m_tokens (:func:`cost_per_million_tokens`; NaN at zero goodput). Prices are the
    catalog's dated on-demand prices (:attr:`pdlib.hardware.GPU.price_per_hour`, one public list):
    ratios between cards carry over better than the dollars.
    """
    rows = []
    for pg, dg in _progress.over(list(pairs), progress, "hardware pairs"):
        df = xpyd_search(xpyd_configs(max_gpus), prefill_gpu=pg, decode_gpu=dg, link=link,
                         output=output, **kwargs)
        df["req_per_usd"] = 3600.0 * df.rate / df.usd_per_hour
        b = df.loc[df.req_per_usd.idxmax()]
        usd = float(b.usd_per_hour)
        rows.append({"prefill_gpu": pg, "decode_gpu": dg, "config": b.config, "n_gpus": int(b.n_gpus),
                     "rate": float(b.rate), "per_gpu": float(b.per_gpu), "usd_per_hour": usd,
                     "req_per_usd": float(b.req_per_usd),
                     "usd_per_m_tokens": (cost_per_million_tokens(b.rate, output, usd) if b.rate > 0
                                          else float("nan"))})
    return pd.DataFrame(rows)


# ================================================================================================
# Chapter 10, "Reproducing the papers": one function per published result beyond DistServe's
# example. Each returns the numbers the chapter plots; paper numbers sit in named constants.
# ================================================================================================

#: DistServe's headline (abstract; §6 plots SLO attainment against rate and against SLO scale): at ≥ 90% SLO
#: attainment, DistServe serves 7.4× more requests or meets a 12.6× tighter SLO than the best
#: colocated system (vLLM / DeepSpeed-MII), the maximum over its applications and models. The SLO
#: scale multiplies the TTFT and TPOT targets together. Source: Zhong et al., DistServe (OSDI 2024).
DISTSERVE_SLO_SCALE_PAPER: dict = {"tighter_slo": 12.6, "more_requests": 7.4, "attainment": 0.9}

#: Sarathi-Serve's capacity experiment, as the paper defines and runs it (Agrawal et al.,
#: "Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve", OSDI 2024,
#: https://www.usenix.org/conference/osdi24/presentation/agrawal):
#:
#: * capacity (§2.4, §5.1): the highest Poisson load (queries per second) at which the P99 of
#:   the time between tokens — over every decode token of the run, "since every decode token
#:   results in a TBT latency value" (§5, Metrics) — stays within the SLO, while "the queuing
#:   delay does not blow up (we use a limit of 2 seconds on median scheduling delay)" (§5.1). The
#:   repository runs exactly this test: ``sarathi/benchmark/capacity_search/main.py`` defaults
#:   ``--tbt-slo-quantile 0.99``, ``--scheduling-delay-slo-quantile 0.5``,
#:   ``--scheduling-delay-slo-value 2.0`` (github.com/microsoft/sarathi-serve);
#: * ``p99_tbt``: the strict and relaxed SLOs per model (table 3), 5× and 25× an undisturbed
#:   decode step; ``token_budget``: 512 under strict, 2,048 under relaxed (§5.1);
#:   ``max_batch``: 128 for vLLM and Sarathi-Serve (repository, osdi-experiments/figure-5-6/*.yml);
#: * ``deployments``: Mistral-7B on one A100 and Yi-34B on two (TP-2) (table 1), "80GB A100 GPUs,
#:   connected with pairwise NVLINK" in Azure NC96ads v4 VMs (§5), i.e. the A100 80GB **PCIe**
#:   card (repository README of osdi-experiments/figure-5-6);
#: * ``datasets``: prompt and output tokens, median and P90, of the two traces (table 2), with
#:   the length filter (§5: total ≤ 8,192 and 16,384 tokens);
#: * ``gain``: the headline capacity gains over vLLM (abstract, §1): "2.6×" for Mistral-7B and
#:   "up to 3.7×" for Yi-34B, "under different SLO targets" (§1): maxima over figure 10's
#:   datasets × SLOs. §5.1 names the Yi-34B point: strict SLO, openchat_sharegpt4;
#: * ``tradeoff_gain``: the same comparison in §5.2 (fig. 12, vLLM at max batch 32, 64 or 128):
#:   "3.5× higher capacity ... under strict SLO (100ms, Mistral-7B)" with budget 512 and
#:   "1.65× ... (1s, Yi-34B)" with budget 2,048, both on openchat_sharegpt4 — for Mistral-7B
#:   the paper's own second measurement of a point that fig. 10 puts at ≤ 2.6×;
#: * ``overhead_text``: §5.4.1 on fig. 14, chunking overhead of Yi-34B prefills: "at most ∼25%"
#:   at chunk 512, "almost negligible" at 2,048 (the rows themselves are in
#:   :func:`pdlib.measurements.sarathi_chunking_overhead`).
SARATHI_PAPER: dict = {
    "deployments": {"Mistral-7B-v0.1": {"gpu": "A100-PCIe-80GB", "tp": 1},
                    "Yi-34B": {"gpu": "A100-PCIe-80GB", "tp": 2}},
    "p99_tbt": {"Mistral-7B-v0.1": {"strict": 0.1, "relaxed": 0.5},
                "Yi-34B": {"strict": 0.2, "relaxed": 1.0}},
    "token_budget": {"strict": 512, "relaxed": 2048},
    "max_batch": 128, "max_median_queue_delay": 2.0, "tbt_quantile": 0.99,
    "datasets": {"openchat_sharegpt4": {"prompt": (1730, 5696), "output": (415, 834), "max_tokens": 8192},
                 "arxiv_summarization": {"prompt": (7059, 12985), "output": (208, 371), "max_tokens": 16384}},
    "gain": {"Mistral-7B-v0.1": 2.6, "Yi-34B": 3.7},
    "gain_at": {"Yi-34B": ("openchat_sharegpt4", "strict")},
    "tradeoff_gain": {"Mistral-7B-v0.1": ("openchat_sharegpt4", "strict", 3.5),
                      "Yi-34B": ("openchat_sharegpt4", "relaxed", 1.65)},
    "overhead_text": {512: 0.25},
}

#: The scorecard's tolerance (:func:`compare`): a paper's number counts as reproduced when ours is
#: within 25% of it — of the value for a quantity, of the effect ln(x) for a ratio of two designs.
REPRODUCED_TOL: float = 0.25


def compare(paper: float, ours: float, kind: str = "ratio", tol: float = REPRODUCED_TOL,
            tie: bool = False) -> str:
    """The scorecard's verdict on one number, the same rule for every paper.

    ``kind="ratio"``: the number compares two designs (a gain, "× tighter", a cost ratio); what
    is compared is its *effect* e = ln(x), so that 0.8× and 1.25× are equally large effects and 1×
    is none. "reproduced" when e_ours has e_paper's sign and ``abs(e_ours / e_paper − 1) ≤ tol``;
    otherwise "same direction, smaller effect" / "same direction, larger effect" when the signs
    agree, "not reproduced" when they do not (or ours is exactly 1). ``tie=True`` (ours is within
    the error of the cost model behind it, :func:`pdlib.planner.comparison_band`, or the
    measurement's own resolution, of 1: no effect shown) gives "no effect within error".
    ``kind="quantity"``: a value (Gb/s, a P:D ratio): "reproduced" when ours/paper lies in
    [1/(1 + ``tol``), 1 + ``tol``], else "not reproduced: lower" / "not reproduced: higher"."""
    if not (paper > 0 and ours > 0):
        raise ValueError(f"paper and ours must be > 0, got {paper!r}, {ours!r}")
    if kind == "quantity":
        r = ours / paper
        if 1 / (1 + tol) <= r <= 1 + tol:
            return "reproduced"
        return "not reproduced: lower" if r < 1 else "not reproduced: higher"
    if kind != "ratio":
        raise ValueError(f"kind must be 'ratio' or 'quantity', got {kind!r}")
    if paper == 1:
        raise ValueError("a ratio of 1 has no effect to compare with")
    if tie:
        return "no effect within error"
    e_p, e_o = math.log(paper), math.log(ours)
    if e_o == 0 or (e_o > 0) != (e_p > 0):
        return "not reproduced"
    r = e_o / e_p
    if abs(r - 1) <= tol:
        return "reproduced"
    return "same direction, smaller effect" if r < 1 else "same direction, larger effect"

#: Mooncake's network and P:D results: TTFT grows sharply once the network falls below about
#: 100 Gb/s (bandwidths swept over 24–400 Gb/s), which is why Mooncake recommends ≥ 100 Gb/s;
#: with a fixed number of nodes (16) the best prefill:decode split for its long-prompt traces is
#: near 1:1; SLOs TTFT ≤ 30 s and TBT ≤ 0.1 / 0.2 / 0.3 s; a LLaMA2-70B-like dummy model on
#: 8-GPU A800 nodes; capacity +59%…+498% over the colocated baseline. Source: Qin et al.,
#: Mooncake: Trading More Storage for Less Computation (FAST 2025), evaluation section;
#: https://www.usenix.org/conference/fast25/presentation/qin
MOONCAKE_PAPER: dict = {"knee_gbps": 100.0, "bandwidth_range_gbps": (24.0, 400.0), "nodes": 16,
                        "best_pd_ratio": 1.0, "ttft_slo": 30.0, "tbt_slos": (0.1, 0.2, 0.3),
                        "model": "Llama-2-70B", "gpus_per_node": 8,
                        "capacity_gain_range": (0.59, 4.98)}

#: The SLO our Splitwise reproduction uses (seconds, P90 = 90% attainment). Splitwise states its
#: SLOs as slowdowns over an unloaded run (P50/P90/P99 of TTFT, TBT and end-to-end latency, in
#: its evaluation); these absolute targets are our choice: an interactive TTFT, and a TPOT that a
#: colocated engine meets only when prefills do not stall its decodes too often.
SPLITWISE_SLO: dict[str, float] = {"ttft": 1.0, "tpot": 0.05}


def compare_within_error(paper: float, ours: float, kind: str = "ratio", calibration: str | None = None,
                         gpus: Sequence[str] = ("H100-SXM",), priced_by_model: bool = True,
                         tol: float = REPRODUCED_TOL) -> str:
    """:func:`compare`, with the tie decided by the error of the cost model that priced ``ours``:
    a ratio of two designs lies within :func:`pdlib.planner.comparison_band` (``calibration``,
    None = the pure roofline; the widest band over ``gpus``) of 1 → "no effect within error".
    ``priced_by_model=False`` for a number no cost model prices (a ratio of catalog prices): the
    plain :func:`compare`. Quantities are never ties."""
    tie = False
    if kind == "ratio" and priced_by_model:
        band = max(comparison_band(calibration, g) for g in gpus)
        tie = within_band(ours, 1.0, band)
    return compare(paper, ours, kind, tol=tol, tie=tie)


def _positive_int_arg(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


class _Probe:
    """Simulations of one cluster shape at several rates, cached by rate, so that several SLOs
    (or capacity criteria) bisected over the same rates pay for each simulation once."""

    def __init__(self, make: Callable[[], object], workload_fn: Callable[[float], object]):
        self.make, self.workload_fn, self.cache = make, workload_fn, {}

    def __call__(self, rate: float) -> sim.Result:
        key = round(float(rate), 9)
        if key not in self.cache:
            self.cache[key] = sim.simulate(self.make(), self.workload_fn(rate))
        return self.cache[key]


def _bracket(passes: Callable[[float], bool], lo: float, hi: float, tol: float,
             guess: float | None = None) -> tuple[float, float]:
    """``(passing, failing)`` rates (req/s) around the highest rate in [lo, hi] for which
    ``passes(rate)`` holds, assuming it holds below some rate and fails above: geometric
    bisection until ``failing / passing ≤ 1 + tol``. ``(0, lo)`` when ``lo`` fails, ``(hi, inf)``
    when ``hi`` passes.

    ``guess`` (a rate expected near the answer, e.g. a related search's result) starts the search
    there: the bracket doubles (or halves) from it until the answer is inside, then bisects; the
    result satisfies the same conditions with fewer evaluations when the guess is within a factor
    of a few of the answer."""
    if not 0 < lo < hi or not tol > 0:
        raise ValueError(f"need 0 < lo < hi req/s and tol > 0, got lo={lo!r}, hi={hi!r}, tol={tol!r}")
    if guess is not None and lo < guess < hi:
        if passes(guess):
            a = guess
            while True:
                b = min(2 * a, hi)
                if not passes(b):
                    break
                if b == hi:
                    return hi, math.inf
                a = b
        else:
            b = guess
            while True:
                a = max(b / 2, lo)
                if passes(a):
                    break
                if a == lo:
                    return 0.0, lo
                b = a
        lo, hi = a, b
    else:
        if not passes(lo):
            return 0.0, lo
        if passes(hi):
            return hi, math.inf
    while hi / lo > 1 + tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo, hi


def _max_rate(passes: Callable[[float], bool], lo: float, hi: float, tol: float) -> float:
    """Highest rate (req/s) in [lo, hi] for which ``passes(rate)`` holds (:func:`_bracket`'s
    passing end): 0 when ``lo`` fails, ``hi`` when ``hi`` passes."""
    return _bracket(passes, lo, hi, tol)[0]


def _required_scale(df: pd.DataFrame, slo: dict) -> np.ndarray:
    """Per request, the smallest SLO scale s at which it meets every target of ``slo`` multiplied
    by s: ``max(ttft / slo_ttft, tpot / slo_tpot, ...)``; inf for a rejected request, and a NaN
    tpot/TBT (one-token output) needs no scale."""
    need = np.zeros(len(df))
    for col, target in slo.items():
        if col not in ("ttft", "tpot", "p99_tbt", "max_tbt"):
            raise KeyError(f"unknown SLO metric {col!r}; known: ttft, tpot, p99_tbt, max_tbt")
        v = df[col].to_numpy(dtype=np.float64) / target
        v = np.where(np.isnan(v), 0.0 if col != "ttft" else np.inf, v)
        need = np.maximum(need, v)
    return np.where((df.status == "finished").to_numpy(), need, np.inf)


def scale_at_attainment(required: np.ndarray, target: float = 0.9) -> float:
    """Smallest SLO scale at which a fraction ≥ ``target`` of the requests meet the scaled SLO,
    from each request's required scale (see :func:`distserve_slo_scale`): the ⌈target·n⌉-th
    smallest required scale (inf when too many requests were rejected)."""
    r = np.sort(np.asarray(required, dtype=np.float64))
    if r.size == 0 or not 0 < target <= 1:
        raise ValueError(f"need at least one request and 0 < target <= 1, got {r.size}, {target!r}")
    return float(r[math.ceil(target * r.size - 1e-9) - 1])


def distserve_slo_scale(rate_per_gpu: float = 6.0, *, scales: Sequence[float] | None = None,
                        max_gpus: int = 4, model: str = "OPT-13B", gpu: str = "A100-80GB",
                        link: str = "NVLink3", prompt: int = 512, output: int = 64,
                        slo: dict | None = None, target: float = 0.9, n: int = 600, seed: int = 0,
                        transfer: str = "whole", calibration: str | None = None,
                        progress: bool = False) -> dict:
    """DistServe's SLO-scale experiment (§6, fig. 8 style) on its running example: at a fixed load
    of ``rate_per_gpu`` req/s per GPU, the fraction of requests meeting the SLO when both targets
    of ``slo`` (default :data:`DISTSERVE_SLO`) are multiplied by a scale s.

    Each request needs the scale ``s_r = max(ttft/TTFT_target, tpot/TPOT_target)`` (inf when
    rejected); the attainment at scale s is the fraction with ``s_r ≤ s`` (so it never falls as s
    grows), and the scale reaching ``target`` attainment is a quantile of ``s_r``
    (:func:`scale_at_attainment`). One simulation per configuration: every xPyD with ≤
    ``max_gpus`` GPUs at ``rate_per_gpu × GPUs``; the *best* split is the one reaching the target
    at the smallest scale; the colocated baseline gets the same number of GPUs (instances of one
    GPU behind a least-loaded router) and the same total rate. The KV cache moves whole after
    the prefill, as DistServe's decoding instances pull it (``transfer``, see :func:`xpyd_goodput`).

    Returns a dict: ``curve`` (DataFrame: scale, colocated, disaggregated attainment),
    ``configs`` (DataFrame: config, n_gpus, scale_at_target per xPyD), ``best_config``,
    ``colocated_scale`` and ``disaggregated_scale`` (smallest scales reaching ``target``),
    ``tighter`` (their ratio, DistServe's "× tighter SLO"), ``paper``
    (:data:`DISTSERVE_SLO_SCALE_PAPER`), ``rate_per_gpu``, ``slo``, ``calibration`` (module
    docstring).
    """
    if not rate_per_gpu > 0:
        raise ValueError(f"rate_per_gpu must be > 0 req/s, got {rate_per_gpu!r}")
    s = dict(slo or DISTSERVE_SLO)
    grid = np.round(np.linspace(0.4, 2.0, 17), 3) if scales is None else np.asarray(scales, float)
    wl = _poisson(prompt, output, n, seed)
    rows, need = [], {}
    for p, d in _progress.over(xpyd_configs(max_gpus), progress, "xPyD at fixed load"):
        c = pub.calibrated_cluster(sim.disaggregated(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link,
                                                     n_prefill=p, n_decode=d, transfer=transfer), calibration)
        need[p, d] = _required_scale(sim.simulate(c, wl(rate_per_gpu * (p + d))).requests, s)
        rows.append({"config": config_name(p, d), "n_prefill": p, "n_decode": d, "n_gpus": p + d,
                     "scale_at_target": scale_at_attainment(need[p, d], target)})
    configs = pd.DataFrame(rows)
    b = configs.loc[configs.scale_at_target.idxmin()]
    g = int(b.n_gpus)
    col = pub.calibrated_cluster(sim.colocated(model=model, gpu=gpu, instances=g, router="least_loaded"),
                                 calibration)
    need_col = _required_scale(sim.simulate(col, wl(rate_per_gpu * g)).requests, s)
    need_dis = need[int(b.n_prefill), int(b.n_decode)]
    curve = pd.DataFrame({"scale": grid,
                          "colocated": [(need_col <= x).mean() for x in grid],
                          "disaggregated": [(need_dis <= x).mean() for x in grid]})
    cs, ds = scale_at_attainment(need_col, target), float(b.scale_at_target)
    return {"curve": curve, "configs": configs, "best_config": str(b.config), "n_gpus": g,
            "colocated_scale": cs, "disaggregated_scale": ds, "tighter": cs / ds,
            "paper": dict(DISTSERVE_SLO_SCALE_PAPER), "rate_per_gpu": rate_per_gpu, "slo": s,
            "target": target, "calibration": calibration}


def sarathi_meets(res: sim.Result, p99_tbt: float,
                  max_median_delay: float | None = SARATHI_PAPER["max_median_queue_delay"]) -> bool:
    """Sarathi-Serve's capacity test on one run (:data:`SARATHI_PAPER`, §5.1): every request
    finished, the P99 of ALL token gaps of the run (``res.tbt``, every request's decode tokens
    pooled) ≤ ``p99_tbt`` s, and the median scheduling delay (``requests.queue_delay``: arrival
    to the request's first step) ≤ ``max_median_delay`` s (None: no bound)."""
    df = res.requests
    if (df.status != "finished").any():
        return False
    tbt = res.tbt
    if len(tbt) and np.percentile(tbt, 100 * SARATHI_PAPER["tbt_quantile"]) > p99_tbt:
        return False
    return max_median_delay is None or float(df.queue_delay.median()) <= max_median_delay


def _limited_by(res: sim.Result, p99_tbt: float, max_median_delay: float | None) -> str:
    """Which part of :func:`sarathi_meets` a failing run misses first: "unfinished", "TBT" or
    "scheduling delay" (both: "TBT and scheduling delay")."""
    df = res.requests
    if (df.status != "finished").any():
        return "unfinished"
    tbt = len(res.tbt) and np.percentile(res.tbt, 100 * SARATHI_PAPER["tbt_quantile"]) > p99_tbt
    delay = max_median_delay is not None and float(df.queue_delay.median()) > max_median_delay
    return " and ".join(n for n, f in (("TBT", tbt), ("scheduling delay", delay)) if f)


def without_sliding_window(model: str | mdl.ModelSpec) -> mdl.ModelSpec:
    """``model`` (a catalog name or spec) with full attention instead of a sliding window.

    Mistral-7B's 4,096-token window changes nothing for a prefill chunk of a prompt ≤ 4,096
    tokens, and only the attention pairs (not the KV bytes read) of decode tokens past position
    4,096. It was once a speed workaround; the simulator now prices windowed attention as fast
    as full attention (:func:`pdlib.models.attention_pairs_scalar`)."""
    import dataclasses
    spec = mdl.get(model)
    return dataclasses.replace(spec, sliding_window=None) if spec.sliding_window else spec


def sarathi_workload(dataset: str, n: int, rate: float, seed: int = 0):
    """``n`` requests with the lengths of one of Sarathi-Serve's datasets
    (:data:`SARATHI_PAPER` ``["datasets"]``, table 2) arriving as a Poisson process of ``rate``
    req/s (the paper's arrivals, §5).

    ``"openchat_sharegpt4"``: the ``"sharegpt"`` named trace, the repository's own
    ``sharegpt_8k_filtered_stats_llama2_tokenizer.csv`` (its medians and P90s are table 2's).
    ``"arxiv_summarization"``: lognormal prompts and outputs with table 2's median and P90
    (prompts 7,059 / 12,985, outputs 208 / 371 tokens), prompts clipped at 16,384 tokens like the
    paper's filter. The ``"arxiv-summarization"`` named trace is a different, shorter cut of the
    dataset (≤ 4k tokens, median prompt 2,730) and is not used here."""
    ds = SARATHI_PAPER["datasets"]
    if dataset not in ds:
        raise KeyError(f"unknown Sarathi-Serve dataset {dataset!r}; known: {', '.join(ds)}")
    if dataset == "openchat_sharegpt4":
        return wlmod.named("sharegpt", n, rate, seed=seed)
    d = ds[dataset]
    return wlmod.poisson(rate=rate, n=n, prompt=wlmod.lognormal(*d["prompt"], max=d["max_tokens"]),
                         output=wlmod.lognormal(*d["output"], max=2048), seed=seed)


_SCHED_LABEL = {"continuous": "prefill-priority (vLLM)", "chunked": "chunked (Sarathi-Serve)"}


def sarathi_capacity_table(model, gpu: str, workload_fn: Callable[[float], object],
                           levels: dict[str, tuple[float, int]], *, tp: int = 1,
                           max_batch: int = SARATHI_PAPER["max_batch"], prefill_budget: int = 8192,
                           max_median_delay: float | None = SARATHI_PAPER["max_median_queue_delay"],
                           lo: float = 0.05, hi: float = 16.0, tol: float = 0.1,
                           calibration: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Sarathi-Serve's capacity (:func:`sarathi_meets`) of one ``tp`` × ``gpu`` instance of
    ``model`` on ``workload_fn(rate)``, for each SLO level and for both schedulers.

    ``levels`` maps a name to ``(P99 TBT target s, token budget)``. Each level is searched for
    prefill-priority scheduling (``"continuous"``: vLLM's scheduler, whole prompts up to
    ``prefill_budget`` tokens per step) and for chunked prefill with the level's token budget,
    both with at most ``max_batch`` running requests. Capacity: geometric bisection between
    ``lo`` and ``hi`` req/s to relative width ``tol`` (:func:`_bracket`), each search started
    from the one before it (the same scheduler at the previous level; the first chunked search
    from twice prefill priority's capacity); runs are shared between levels with the same
    scheduler and budget. ``calibration``: see the module docstring ("sarathi" for the paper's
    A100 PCIe cards).

    Columns: slo, p99_tbt_slo (s), scheduler, token_budget, capacity (req/s), p99_tbt (s, all
    gaps) and median_queue_delay (s) at capacity, req_attainment (fraction of requests whose own
    P99 gap meets the target there: the per-request reading of the same SLO), limited_by (what
    the next rate up misses: "TBT", "scheduling delay", "unfinished"; "" when ``hi`` passes), and
    gain (chunked ÷ prefill-priority capacity of the level; inf when prefill-priority has none).
    """
    probes: dict = {}

    def probe(sched: str, budget: int) -> _Probe:
        if (sched, budget) not in probes:
            probes[sched, budget] = _Probe(lambda: pub.calibrated_cluster(sim.colocated(
                model=model, gpu=gpu, tp=tp, scheduler=sched, chunk_size=budget,
                max_batch=max_batch), calibration), workload_fn)
        return probes[sched, budget]

    cases = [(name, t, sched, b if sched == "chunked" else prefill_budget)
             for name, (t, b) in levels.items() for sched in ("continuous", "chunked")]
    rows, found = [], {}
    for name, target, sched, budget in _progress.over(cases, progress, "Sarathi-Serve capacity"):
        pr = probe(sched, budget)
        # warm start: the same scheduler's capacity under the previous level, or, for the first
        # chunked search, twice prefill priority's (the searches' results, not their speed,
        # are what the bisection guarantees)
        guess = found.get(sched) or (2 * found["continuous"] if found.get("continuous") else None)
        cap, fail = _bracket(lambda r: sarathi_meets(pr(r), target, max_median_delay), lo, hi, tol,
                             guess=guess)
        if cap > 0:
            found[sched] = cap
        res = pr(cap) if cap > 0 else None
        rows.append({"slo": name, "p99_tbt_slo": target, "scheduler": _SCHED_LABEL[sched],
                     "token_budget": budget, "capacity": cap,
                     "p99_tbt": (float(np.percentile(res.tbt, 100 * SARATHI_PAPER["tbt_quantile"]))
                                 if res is not None else float("nan")),
                     "median_queue_delay": (float(res.requests.queue_delay.median())
                                            if res is not None else float("nan")),
                     "req_attainment": (res.slo_attainment(p99_tbt=target) if res is not None
                                        else float("nan")),
                     "limited_by": (_limited_by(pr(fail), target, max_median_delay)
                                    if math.isfinite(fail) else "")})
    table = pd.DataFrame(rows)
    base = table[table.scheduler == _SCHED_LABEL["continuous"]].set_index("slo").capacity
    with np.errstate(divide="ignore", invalid="ignore"):
        table["gain"] = np.where(table.slo.map(base) > 0, table.capacity / table.slo.map(base), np.inf)
    return table


def sarathi_capacity(model: str = "Mistral-7B-v0.1", *,
                     datasets: Sequence[str] = tuple(SARATHI_PAPER["datasets"]),
                     gpu: str | None = None, tp: int | None = None, slos: dict | None = None,
                     token_budgets: dict | None = None,
                     max_median_delay: float | None = SARATHI_PAPER["max_median_queue_delay"],
                     max_batch: int = SARATHI_PAPER["max_batch"], n: int = 300, seed: int = 0,
                     lo: float = 0.05, hi: float = 16.0, tol: float = 0.1,
                     full_attention: bool = False, calibration: str | None = None,
                     progress: bool = False) -> dict:
    """Sarathi-Serve's capacity experiment (:data:`SARATHI_PAPER`, §5.1 and fig. 10) for one
    model over the paper's grid: each dataset in ``datasets`` (:func:`sarathi_workload`, ``n``
    requests, Poisson arrivals seeded with ``seed``) × each SLO level, prefill-priority (vLLM)
    against chunked prefill, capacity by :func:`sarathi_capacity_table`.

    Defaults are the paper's: ``gpu``/``tp`` from ``SARATHI_PAPER["deployments"][model]``
    (A100-PCIe-80GB; Yi-34B at tp 2), ``slos`` (name → P99 TBT target s) from
    ``SARATHI_PAPER["p99_tbt"][model]`` (table 3), ``token_budgets`` 512 strict / 2,048 relaxed,
    ``max_batch`` 128, a 2 s bound on the median scheduling delay (None: no bound). The
    prefill-priority scheduler's per-step budget is the dataset's length filter (8,192 or 16,384
    tokens, vLLM's ``max_num_batched_tokens`` = the maximum sequence length). The model keeps its
    sliding window (Mistral-7B: 4,096 tokens, "GQA-SW" in table 1); ``full_attention=True`` runs
    it without (:func:`without_sliding_window`). ``calibration``: see the module docstring
    ("sarathi": the terms fitted to Sarathi-Serve's own A100 PCIe measurements).

    Returns a dict: ``table`` (DataFrame: dataset plus :func:`sarathi_capacity_table`'s columns),
    ``gain`` (DataFrame indexed by (dataset, slo): chunked ÷ prefill-priority capacity),
    ``max_gain`` and ``max_at`` ((dataset, slo) where it is reached): the maximum over the grid,
    the number to set beside the paper's ``paper_gain`` ("up to"), and ``paper_point``: our gain at
    the point the paper names for its headline (Yi-34B: openchat_sharegpt4, strict), else NaN;
    ``paper``, ``model``, ``gpu``, ``tp``, ``n``, ``tol``, ``calibration``.
    """
    if model not in SARATHI_PAPER["deployments"] and (gpu is None or tp is None or slos is None):
        raise KeyError(f"no paper deployment for {model!r} (known: "
                       f"{', '.join(SARATHI_PAPER['deployments'])}); pass gpu, tp and slos")
    dep = SARATHI_PAPER["deployments"].get(model, {})
    gpu = gpu or dep["gpu"]
    tp = tp or dep["tp"]
    levels = dict(slos or SARATHI_PAPER["p99_tbt"][model])
    budgets = dict(token_budgets or SARATHI_PAPER["token_budget"])
    missing = [k for k in levels if k not in budgets]
    if missing:
        raise KeyError(f"no token budget for SLO level(s) {', '.join(missing)}; token_budgets has "
                       f"{', '.join(budgets)}")
    spec = without_sliding_window(model) if full_attention else model
    frames = []
    for ds in _progress.over(list(datasets), progress, "Sarathi-Serve datasets"):
        wl = (lambda rate, ds=ds: sarathi_workload(ds, n, rate, seed))
        t = sarathi_capacity_table(spec, gpu, wl, {k: (v, budgets[k]) for k, v in levels.items()},
                                   tp=tp, max_batch=max_batch,
                                   prefill_budget=SARATHI_PAPER["datasets"][ds]["max_tokens"],
                                   max_median_delay=max_median_delay, lo=lo, hi=hi, tol=tol,
                                   calibration=calibration)
        frames.append(t.assign(dataset=ds))
    table = pd.concat(frames, ignore_index=True)
    table = table[["dataset"] + [c for c in table.columns if c != "dataset"]]
    gain = (table[table.scheduler == _SCHED_LABEL["chunked"]].set_index(["dataset", "slo"]).gain)
    at = gain.idxmax()
    point = SARATHI_PAPER["gain_at"].get(model)
    return {"table": table, "gain": gain, "max_gain": float(gain.max()), "max_at": at,
            "paper_gain": SARATHI_PAPER["gain"].get(model, float("nan")),
            "paper_point": float(gain.get(point, float("nan"))) if point else float("nan"),
            "paper": dict(SARATHI_PAPER), "model": model, "gpu": gpu, "tp": tp, "n": n, "tol": tol,
            "calibration": calibration}


def gbps_link(gbps: float, latency: float = 1e-5) -> hw.Link:
    """A network link of ``gbps`` gigabits per second (bandwidth ``gbps·1e9/8`` bytes/s) and
    ``latency`` s one way (RoCE-like 10 µs), for bandwidth sweeps."""
    if not gbps > 0:
        raise ValueError(f"bandwidth must be > 0 Gb/s, got {gbps!r}")
    return hw.Link(f"{gbps:g}Gbps", gbps * 1e9 / 8, latency, "network",
                   source="swept bandwidth (pdlib.reproduce.mooncake_bandwidth_knee)")


def kv_emission_gbps(prompt: int, *, model: str = "Llama-2-70B", gpu: str = "A100-80GB",
                     tp: int = 8, calibration: str | None = None) -> float:
    """Rate (Gb/s) at which one prefill instance produces KV cache for a ``prompt``-token prompt:
    ``8 · prompt · kv_bytes_per_token / prefill_time / 1e9`` (prefill priced by the roofline, or
    by ``calibration``'s fitted terms). A layer-by-layer transfer over a link faster than this
    hides behind the prefill; a slower one stretches it."""
    cm = cost_model(model, gpu, tp, calibration)
    return 8 * prompt * cm.model.kv_bytes_per_token("bf16") / float(cm.prefill(prompt).time) / 1e9


def bandwidth_knee(gbps: Sequence[float], ttft: Sequence[float], tol: float = 0.10) -> float:
    """The knee of a TTFT-vs-bandwidth curve: the smallest bandwidth whose TTFT is within ``tol``
    (10%) of the TTFT at the highest bandwidth swept; below it, a slower network costs more
    than ``tol`` of TTFT. ``gbps`` must increase."""
    b, t = np.asarray(gbps, float), np.asarray(ttft, float)
    if b.ndim != 1 or b.shape != t.shape or b.size < 2 or np.any(np.diff(b) <= 0):
        raise ValueError("need >= 2 increasing bandwidths and one TTFT per bandwidth")
    ok = t <= (1 + tol) * t[-1]
    # the knee is where the curve last enters the band (a noisy dip above it does not count)
    first = b.size - np.argmin(ok[::-1]) if not ok.all() else 0
    return float(b[min(first, b.size - 1)])


def mooncake_bandwidth_knee(bandwidths_gbps: Sequence[float] = (24, 32, 48, 64, 100, 128, 200, 400),
                            *, workload: str = "mooncake-conversation", rate: float = 2.0,
                            n: int = 400, n_prefill: int = 4, n_decode: int = 4, tp: int = 8,
                            model: str = "Llama-2-70B", gpu: str = "A100-80GB",
                            transfers: Sequence[str] = ("whole", "layerwise"),
                            first_token: str = "decode", knee_tol: float = 0.10, seed: int = 0,
                            calibration: str | None = None, progress: bool = False) -> dict:
    """Mooncake's network experiment (:data:`MOONCAKE_PAPER`): mean and P90 TTFT of a
    disaggregated cluster against the bandwidth of each prefill node's network.

    ``n_prefill`` + ``n_decode`` nodes of ``tp`` × ``gpu`` serve ``model`` (Mooncake: a
    LLaMA2-70B-like model on 8-GPU nodes); ``n`` requests with the prompt and output lengths of
    the named ``workload`` (a Mooncake trace by default) arrive as a Poisson process of ``rate``
    req/s. Each bandwidth (Gb/s, per prefill node, :func:`gbps_link`) is run for each KV
    ``transfers`` mode: "whole" (the cache is sent after the prefill) and "layerwise" (streamed
    during it). ``first_token="decode"``: TTFT includes the transfer, as a client sees it.

    Returns a dict: ``table`` (DataFrame: transfer, gbps, ttft_mean, ttft_p90, transfer_mean (s),
    link_util = offered KV bytes per second ÷ bandwidth per prefill node), ``knee`` (transfer mode
    → :func:`bandwidth_knee` of the mean TTFT), ``emission_gbps`` (:func:`kv_emission_gbps` at
    the workload's mean prompt), ``kv_gb_mean`` (GB of KV per request, mean), ``paper``,
    ``calibration`` (module docstring).
    """
    bws = sorted(float(b) for b in bandwidths_gbps)
    for t in transfers:
        if t not in ("layerwise", "whole"):
            raise ValueError(f"transfer must be 'layerwise' or 'whole', got {t!r}")
    w = wlmod.named(workload, n, rate, seed=seed)
    kv_tok = mdl.get(model).kv_bytes_per_token("bf16")
    offered = rate / n_prefill * float(w.prompt.mean()) * kv_tok * 8 / 1e9       # Gb/s per node
    rows = []
    cases = [(t, b) for t in transfers for b in bws]
    for t, b in _progress.over(cases, progress, "bandwidths"):
        c = pub.calibrated_cluster(sim.disaggregated(
            model=model, prefill_gpu=gpu, decode_gpu=gpu, link=gbps_link(b), n_prefill=n_prefill,
            n_decode=n_decode, prefill_tp=tp, decode_tp=tp, transfer=t, first_token=first_token), calibration)
        df = sim.simulate(c, w).requests
        fin = df[df.status == "finished"]
        rows.append({"transfer": t, "gbps": b, "ttft_mean": float(fin.ttft.mean()),
                     "ttft_p90": float(fin.ttft.quantile(0.9)),
                     "transfer_mean": float(fin.transfer_time.mean()), "link_util": offered / b,
                     "finished": len(fin)})
    table = pd.DataFrame(rows)
    knee = {t: bandwidth_knee(g.gbps, g.ttft_mean, knee_tol) for t, g in table.groupby("transfer")}
    return {"table": table, "knee": knee, "knee_tol": knee_tol,
            "emission_gbps": kv_emission_gbps(int(round(w.prompt.mean())), model=model, gpu=gpu, tp=tp,
                                              calibration=calibration),
            "kv_gb_mean": float(w.prompt.mean()) * kv_tok / 1e9, "paper": dict(MOONCAKE_PAPER),
            "workload": workload, "rate": rate, "model": model, "tp": tp, "calibration": calibration}


def mooncake_pd_ratio(n_nodes: int = 8, *, tbt_slos: Sequence[float] = MOONCAKE_PAPER["tbt_slos"],
                      ttft_slo: float = MOONCAKE_PAPER["ttft_slo"],
                      workload: str = "mooncake-conversation", n: int = 400, tp: int = 8,
                      model: str = "Llama-2-70B", gpu: str = "A100-80GB",
                      link: str = "Mooncake-RoCE-4x200G", overload_rate: float | None = None,
                      check_load: float | None = 0.9, cached_fraction: float = 0.0, seed: int = 0,
                      transfer: str = "layerwise", calibration: str | None = None,
                      progress: bool = False) -> pd.DataFrame:
    """Mooncake's P:D sweep (:data:`MOONCAKE_PAPER`): every split of ``n_nodes`` nodes of ``tp`` ×
    ``gpu`` into xPyD, each run with a queue that never empties, on ``n`` requests with the named
    ``workload``'s lengths.

    Why saturation rather than a goodput bisection: Mooncake's TTFT target (``ttft_slo`` = 30 s)
    is many times a mean prefill, so the prefill pool can run close to full load before TTFT
    binds, and a bisection on a short run would be fooled by the queue growing too slowly to
    show within the run. Each split's **capacity** is therefore its completion rate (req/s:
    finished requests ÷ seconds from the first arrival to the last token) when all ``n``
    requests arrive at ``overload_rate`` req/s (default 4 per node, well above any split's
    capacity); the decode pool then runs as full as its KV memory allows, which is the worst case
    for the time between tokens. The TBT at capacity is the 90th percentile over requests of each
    request's P99 token gap (SLO met when ≤ the target for 90% of requests). To check the argument,
    each split is run again with Poisson arrivals at ``check_load`` × its capacity (None: skip):
    ``attainment_check`` is the fraction of requests meeting TTFT ≤ ``ttft_slo`` and the tightest
    TBT target there (a run of ``n`` requests at that rate lasts minutes, long against 30 s).

    ``cached_fraction`` > 0 gives every prompt a prefix-cache hit of that share of its tokens
    (:func:`pdlib.workload.with_cached_fraction`): the prefill computes only the rest, as when
    Mooncake finds a prompt's prefix in its KV pool (loading that KV is not modelled).

    ``transfer`` defaults to "layerwise": Mooncake streams each layer's KV out while the prefill
    computes the next ("layer-wise prefill", Qin et al., FAST 2025, in its prefill-pool design).

    Columns: config, n_prefill, n_decode, pd_ratio (n_prefill / n_decode), capacity (req/s),
    per_node (req/s per node), tbt_p90 (s), ttft_mean (s, at saturation: queueing included),
    attainment_check and,
    for each TBT target t in ``tbt_slos``, ``meets_<t>`` (bool) and ``best_<t>`` (the highest
    capacity among the splits meeting t). ``ttft_slo`` and ``calibration`` (module docstring) are
    recorded in ``df.attrs``.
    """
    if not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2:
        raise ValueError(f"n_nodes must be an integer >= 2, got {n_nodes!r}")
    rate = 4.0 * n_nodes if overload_rate is None else float(overload_rate)
    if not rate > 0:
        raise ValueError(f"overload_rate must be > 0 req/s, got {overload_rate!r}")
    def wl(r):
        w = wlmod.named(workload, n, r, seed=seed)
        return wlmod.with_cached_fraction(w, cached_fraction) if cached_fraction else w

    w = wl(rate)
    rows = []
    for p in _progress.over(list(range(1, n_nodes)), progress, "P:D splits"):
        d = n_nodes - p
        c = pub.calibrated_cluster(sim.disaggregated(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link,
                                                     n_prefill=p, n_decode=d, prefill_tp=tp, decode_tp=tp,
                                                     transfer=transfer), calibration)
        r = sim.simulate(c, w)
        summ, df = r.summary(), r.requests
        cap = summ["throughput_rps"]
        check = float("nan")
        if check_load is not None:
            check = sim.simulate(c, wl(check_load * cap)).slo_attainment(ttft=ttft_slo, p99_tbt=min(tbt_slos))
        rows.append({"config": config_name(p, d), "n_prefill": p, "n_decode": d, "pd_ratio": p / d,
                     "capacity": cap, "per_node": cap / n_nodes,
                     "tbt_p90": float(df.p99_tbt.quantile(0.9)), "ttft_mean": summ["ttft_mean"],
                     "attainment_check": check})
    out = pd.DataFrame(rows)
    for t in tbt_slos:
        meets = out.tbt_p90 <= t
        out[f"meets_{t:g}"] = meets
        out[f"best_{t:g}"] = meets & (out.capacity == out.capacity[meets].max()) if meets.any() else False
    out.attrs.update(ttft_slo=ttft_slo, overload_rate=rate, workload=workload, n_nodes=n_nodes,
                     cached_fraction=cached_fraction, calibration=calibration)
    return out


def splitwise_cost(*, workload: str = "azure-conv", model: str = "Llama-2-70B", tp: int = 8,
                   slo: dict | None = None, configs: Sequence[tuple[int, int]] = ((2, 1),),
                   colocated_machines: int = 3, link: str = "HGX-H100-8x400G", n: int = 400,
                   seed: int = 0, tol: float = 0.1, transfer: str = "layerwise",
                   calibration: str | None = None, progress: bool = False) -> dict:
    """Splitwise's cost argument (:data:`SPLITWISE_PAPER`): H100 prefill machines with A100
    decode machines against homogeneous designs, at the SLO ``slo`` (default
    :data:`SPLITWISE_SLO`, 90% attainment).

    Machines are ``tp``-GPU instances (Splitwise: DGX-H100 and DGX-A100, 8 GPUs); the workload is
    ``n`` requests with the named trace's lengths (Splitwise's coding or conversation traces from
    Azure: "azure-code", "azure-conv"), Poisson arrivals. Designs: colocated all-H100 and
    all-A100 (``colocated_machines`` machines each, prefill-priority scheduling without chunks,
    like Splitwise's vLLM-style baseline), and every xPyD in ``configs`` for the pairs H100/H100,
    A100/A100 and H100-prefill/A100-decode; the KV crosses ``link`` (one per prefill machine),
    ``transfer`` "layerwise" by default: Splitwise sends each layer's KV as soon as it is computed,
    overlapped with the prompt phase, and sends it whole after the prompt only for prompts below
    about 512 tokens (Splitwise, ISCA 2024, §4.3 and fig. 11).
    Goodput by geometric bisection to relative width ``tol``, between 1/3 and 1.25× the prefill
    pool's service rate μ (prefill machines ÷ mean prefill time of the workload's prompts, the
    most a design can sustain; a finite run can overshoot it a little), or between μ/30 and μ/3
    when even μ/3 misses the SLO. A run of ``n`` requests at rate λ lasts n/λ s: keep it long
    against the TTFT target (400 requests at 50 req/s last 8 s against a 1 s target), or an
    overloaded queue does not grow enough within the run to be seen. Prices: the catalog's USD
    per GPU-hour × ``tp``.

    Returns a dict: ``table`` (DataFrame: design, prefill_gpu, decode_gpu, config, machines,
    rate (req/s), usd_per_hour, req_per_usd (requests per dollar = 3600·rate/usd_per_hour),
    best (most requests per dollar within the design)), ``best`` (one row per design), ``vs``
    (the heterogeneous design against each homogeneous one: throughput ratio, cost ratio,
    requests-per-dollar ratio, each of the best rows), ``paper``, ``slo``, ``tol``,
    ``calibration`` (module docstring; "splitwise": the terms fitted to Splitwise's own DGX-A100
    and DGX-H100 profiles, each pool's GPU its own, μ too).
    """
    s = dict(slo or SPLITWISE_SLO)
    configs = [tuple(map(int, c)) for c in configs]
    m = _positive_int_arg("colocated_machines", colocated_machines)

    def wl(rate):
        return wlmod.named(workload, n, rate, seed=seed)

    prompts = wl(1.0).prompt                    # lengths do not depend on the rate
    jobs = [("colocated H100", "H100-SXM", "H100-SXM", None),
            ("colocated A100", "A100-80GB", "A100-80GB", None)]
    jobs += [(design, pg, dg, c) for design, pg, dg in (("split H100/H100", "H100-SXM", "H100-SXM"),
                                                         ("split A100/A100", "A100-80GB", "A100-80GB"),
                                                         ("split H100→A100", "H100-SXM", "A100-80GB"))
             for c in configs]
    rows = []
    for design, pg, dg, c in _progress.over(jobs, progress, "Splitwise designs"):
        if c is None:
            make = (lambda g=pg: pub.calibrated_cluster(sim.colocated(model=model, gpu=g, tp=tp, instances=m,
                                                                      router="least_loaded"), calibration))
            cfg, machines, usd = f"{m}× colocated", m, m * tp * hw.gpu(pg).price_per_hour
        else:
            p, d = c
            make = (lambda p=p, d=d, pg=pg, dg=dg: pub.calibrated_cluster(sim.disaggregated(
                model=model, prefill_gpu=pg, decode_gpu=dg, link=link, n_prefill=p, n_decode=d,
                prefill_tp=tp, decode_tp=tp, transfer=transfer), calibration))
            cfg, machines, usd = config_name(p, d), p + d, tp * config_price(pg, dg, p, d)
        pr = _Probe(make, wl)
        n_pre = m if c is None else c[0]
        mu = n_pre / float(np.mean(cost_model(model, pg, tp, calibration).prefill(prompts).time))
        ok = (lambda r, pr=pr: pr(r).slo_attainment(**s) >= 0.9)
        rate = _max_rate(ok, mu / 3, 1.25 * mu, tol) or _max_rate(ok, mu / 30, mu / 3, tol)
        rows.append({"design": design, "prefill_gpu": pg, "decode_gpu": dg, "config": cfg,
                     "machines": machines, "rate": rate, "usd_per_hour": usd,
                     "req_per_usd": 3600.0 * rate / usd})
    table = pd.DataFrame(rows)
    table["best"] = table.req_per_usd == table.groupby("design").req_per_usd.transform("max")
    best = table[table.best].drop_duplicates("design").set_index("design")
    het = best.loc["split H100→A100"]
    vs = pd.DataFrame([{"against": other, "throughput_ratio": het.rate / best.loc[other, "rate"],
                        "cost_ratio": het.usd_per_hour / best.loc[other, "usd_per_hour"],
                        "req_per_usd_ratio": het.req_per_usd / best.loc[other, "req_per_usd"]}
                       for other in best.index if other != "split H100→A100"])
    return {"table": table, "best": best.reset_index(), "vs": vs, "paper": dict(SPLITWISE_PAPER),
            "slo": s, "workload": workload, "model": model, "tp": tp, "tol": tol, "calibration": calibration}
