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
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import hardware as hw
from . import models as mdl
from . import sim
from .cost import CostModel

__all__ = ["DISTSERVE_SLO", "DISTSERVE_PAPER", "SPLITWISE_PAPER", "distserve_prefill_fit",
           "distserve_decode_fit", "distserve_fit_table", "distserve_bw_efficiency", "xpyd_configs",
           "config_name", "config_price", "cost_per_million_tokens", "xpyd_goodput", "xpyd_search",
           "distserve_example", "pd_ratio_sweep", "pool_growth", "decode_hardware",
           "decode_tpot_table"]

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

# DistServe's fitted step latency for OPT-13B, TP=1, one A100 (milliseconds), DistServe §4.1
# (latency model used by its placement search); copied in /work/shared/FACTS.md §5.
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
    ``price_per_hour`` (rough late-2025 rental prices; use for ratios only)."""
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


def _poisson(prompt: int, output: int, n: int, seed: int) -> Callable[[float], object]:
    from . import workload
    return lambda rate: workload.poisson(rate=rate, n=n, prompt=prompt, output=output, seed=seed)


def _progress(items: list, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, leave=False)


def xpyd_goodput(n_prefill: int, n_decode: int, *, model: str = "OPT-13B",
                 prefill_gpu: str = "A100-80GB", decode_gpu: str = "A100-80GB",
                 link: str = "NVLink3", prompt: int = 512, output: int = 64,
                 slo: dict | None = None, n: int = 1000, seed: int = 0, tol: float = 0.05,
                 first_token: str = "decode", cost_kwargs: dict | None = None) -> sim.Goodput:
    """Goodput (req/s, and per GPU) of one ``n_prefill``P``n_decode``D deployment on a Poisson
    workload of ``n`` requests with fixed ``prompt``/``output`` lengths (tokens), for ``slo``
    (default :data:`DISTSERVE_SLO`) at 90% attainment. The bisection searches 0.05 … 32 req/s per
    GPU and stops at relative width ``tol``."""
    def make():
        return sim.disaggregated(model=model, prefill_gpu=prefill_gpu, decode_gpu=decode_gpu,
                                 link=link, n_prefill=n_prefill, n_decode=n_decode,
                                 first_token=first_token, cost_kwargs=cost_kwargs)
    g = n_prefill + n_decode
    return sim.goodput(make, _poisson(prompt, output, n, seed), slo or DISTSERVE_SLO,
                       lo=0.05 * g, hi=32.0 * g, tol=tol)


def xpyd_search(configs: Iterable[tuple[int, int]], *, progress: bool = False, **kwargs) -> pd.DataFrame:
    """Goodput of each ``(n_prefill, n_decode)`` in ``configs`` (keyword arguments as
    :func:`xpyd_goodput`). Columns: config, n_prefill, n_decode, n_gpus, rate (req/s),
    per_gpu (req/s/GPU), usd_per_hour (when both GPUs are priced), best (highest per_gpu)."""
    configs = list(configs)
    rows = []
    for p, d in _progress(configs, progress, "xPyD configs"):
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
                      max_gpus: int = 4, tol: float = 0.05, cost_kwargs: dict | None = None) -> dict:
    """DistServe's motivating example (§2.2, fig. 1): a 13B model on A100-80GB, 512-token prompts
    and 64-token outputs, Poisson arrivals, SLO :data:`DISTSERVE_SLO` at 90% attainment.

    ``model`` defaults to OPT-13B, the model DistServe measured (MHA, 0.82 MB of KV per token);
    "Llama-2-13B" has the same layers, width and attention and gives step times within 1%.
    ``n`` requests per simulation, arrivals seeded with ``seed``; ``progress`` shows tqdm bars;
    ``tol`` is the bisection's relative width; ``cost_kwargs`` go to :class:`~pdlib.CostModel`
    (e.g. ``{"bw_efficiency": distserve_bw_efficiency()}`` to match DistServe's decode fit).
    Returns a dict:

    * ``colocated_per_gpu``: goodput of one A100 running vLLM-style continuous batching (req/s);
    * ``prefill_only_rps``: rate one prefill instance sustains with P90 TTFT ≤ 0.4 s (decode pool
      large enough not to matter); ``decode_only_rps``: rate one decode instance sustains with
      P90 TPOT ≤ 0.04 s (prefill pool large enough);
    * ``table``: every xPyD with ≤ ``max_gpus`` GPUs, as a :func:`pd_ratio_sweep` frame (so it
      concatenates with sweeps of other shapes), plus ``vs_colocated`` (per-GPU goodput ÷
      colocated);
    * ``best_config`` (e.g. "2P1D"), ``disaggregated_per_gpu`` (its goodput per GPU), ``ratio``;
    * ``paper``: :data:`DISTSERVE_PAPER`; ``model``, ``gpu``, ``link``, ``slo``.

    The KV link defaults to NVLink3 (DistServe places a 13B model's P and D instances in one node).
    """
    wl = _poisson(512, 64, n, seed)
    common = dict(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link, n=n, seed=seed, tol=tol,
                  cost_kwargs=cost_kwargs)
    kw = dict(common, prompt=512, output=64)
    steps = ["colocated", "prefill-only", "decode-only", "xPyD search"]
    bar = _progress(steps, progress, "DistServe example")
    out: dict = {}
    for step in bar:
        if step == "colocated":
            c = sim.colocated(model=model, gpu=gpu, cost_kwargs=cost_kwargs)
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
               model=model, gpu=gpu, link=link, slo=dict(DISTSERVE_SLO))
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
    for prompt, output in _progress(list(shapes), progress, "prompt/output shapes"):
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
                progress: bool = False) -> pd.DataFrame:
    """SLO attainment of every xPyD with 1…``max_prefill`` prefill and 1…``max_decode`` decode
    instances at a fixed ``rate`` (req/s), for a Poisson workload of ``prompt``/``output`` tokens.

    This is the question an operator asks when the workload shifts: which pool must grow, and by
    how much, to keep serving the same traffic? Columns: n_prefill, n_decode, n_gpus, config,
    attainment (fraction meeting all of ``slo``), ttft_p90, tpot_p90 (seconds), meets (≥ 0.9),
    cheapest (meets with the fewest GPUs; ties broken by the higher attainment).
    """
    s = slo or DISTSERVE_SLO
    wl = _poisson(prompt, output, n, seed)(rate)
    grid = [(p, d) for p in range(1, max_prefill + 1) for d in range(1, max_decode + 1)]
    rows = []
    for p, d in _progress(grid, progress, "pool sizes"):
        c = sim.disaggregated(model=model, prefill_gpu=gpu, decode_gpu=gpu, link=link,
                              n_prefill=p, n_decode=d)
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
    catalog's rough rental prices: use the ratios, not the dollars.
    """
    rows = []
    for pg, dg in _progress(list(pairs), progress, "hardware pairs"):
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
