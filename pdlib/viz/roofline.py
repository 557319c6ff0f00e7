"""Roofline plots: catalog GPUs, cost-model steps, and the measured roofline of your own device.

The roofline of a processor with peak ``F`` FLOP/s and memory bandwidth ``W`` bytes/s says a kernel
of arithmetic intensity ``I`` (FLOP per byte moved) can reach at most::

    attainable(I) = min(F, I · W)          FLOP/s

The two roofs meet at the ridge ``I* = F / W``: left of it a kernel is bandwidth-bound, right of
it compute-bound (Williams, Waterman and Patterson 2009). Plots show FLOP/s as TFLOP/s or
GFLOP/s for readability; every function takes and returns SI units (FLOP/s, bytes/s, seconds).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import hardware as hw
from .. import models as mdl
from ..cost import CostModel, StepCost, fitting_cost_model
from ..hardware import GPU

__all__ = ["attainable_flops", "step_table", "gpu_table", "phase_cost_table",
           "decode_intensity_table", "plot_rooflines", "plot_steps_on_roofline",
           "plot_decode_intensity", "plot_measured_roofline"]

_BOUND_COLOR = {"memory": "tab:blue", "compute": "tab:red"}
#: Colour of a step line in :func:`plot_rooflines` whose intensity lies between the GPUs' ridges.
_BETWEEN_COLOR = "tab:olive"
_STEP_KIND = {"memory": "memory-bound on every GPU", "compute": "compute-bound on every GPU",
              "between": "bound depends on the GPU"}

#: What tables print for a value that does not exist (an unpriced GPU, a step that cannot run).
MISSING = "–"


def attainable_flops(peak_flops: float, peak_bw: float, intensity):
    """Roofline bound in FLOP/s: ``min(peak_flops, intensity · peak_bw)`` (array-friendly);
    ``peak_flops`` in FLOP/s, ``peak_bw`` in bytes/s, ``intensity`` in FLOP/byte."""
    if peak_flops <= 0 or peak_bw <= 0:
        raise ValueError(f"peak_flops and peak_bw must be > 0, got {peak_flops!r}, {peak_bw!r}")
    return np.minimum(peak_flops, np.asarray(intensity, dtype=np.float64) * peak_bw)


def step_table(steps: Mapping[str, StepCost]):
    """A pandas DataFrame with one row per named step: FLOPs and bytes (per GPU), intensity
    (FLOP/B), compute, memory and step time, the bound, and time per new token. Times are shown
    in milliseconds (display only)."""
    import pandas as pd
    rows = []
    for label, s in steps.items():
        rows.append({"step": label, "new tokens": int(s.new_tokens), "FLOPs": s.flops,
                     "bytes": s.bytes, "FLOP/B": float(s.intensity),
                     "compute (ms)": s.compute_time * 1e3, "memory (ms)": s.memory_time * 1e3,
                     "step (ms)": s.time * 1e3, "bound": s.bound,
                     "ms / token": float(s.time_per_token) * 1e3})
    return pd.DataFrame(rows).set_index("step")


def _text(df, formats: Mapping[str, str]):
    """``df`` as strings for display: every column in ``formats`` printed by its format string,
    missing values (NaN, None) as :data:`MISSING`; other columns as they are."""
    out = df.copy().astype(object)
    for col, fmt in formats.items():
        out[col] = [MISSING if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)
                    for v in df[col]]
    return out


def gpu_table(model: str | mdl.ModelSpec = "Llama-3.1-8B", gpus: Sequence[str | GPU] | None = None,
              batch: int = 64, context: int = 1024, as_text: bool = False, **knobs):
    """Chapter 01's GPU comparison: one row per GPU, ``model`` on the smallest tensor-parallel
    degree its weights fit (:func:`pdlib.cost.fitting_cost_model`; ``knobs`` go to CostModel).

    Columns: memory type, HBM, ``TFLOP/s`` and ``TB/s`` (datasheet), ``ridge (FLOP/B)``, ``tp``,
    ``KV free (GB/GPU)`` (memory left after the weights), ``KV of batch (GB/GPU)`` (``batch ×
    (context + 1)`` tokens of KV), ``fits`` (whether that batch is resident at once),
    ``max batch`` (requests of ``context + 1`` tokens that fit), ``decode step (ms)`` (one step of
    ``batch`` requests with ``context`` cached tokens each), ``prefill compute-bound above
    (tokens)`` (:meth:`~pdlib.cost.CostModel.prefill_ridge_tokens`) and ``$ / GPU-hour`` (NaN
    when the catalog has no price).

    ``as_text=True`` returns the same table as strings for display: a decode step whose batch
    does not fit is printed with "(KV does not fit)" after it, never bare; missing values
    (no price) as "–"."""
    import pandas as pd
    names = list(gpus) if gpus is not None else hw.gpu_names()
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context must be a non-negative integer, got {context!r}")
    rows = []
    for name in names:
        g = hw.gpu(name)
        cm, _ = fitting_cost_model(model, g, **knobs)
        need = batch * (context + 1) * cm.kv_bytes_per_token
        rows.append({"GPU": g.name, "memory": g.mem_type, "HBM": g.is_hbm,
                     "TFLOP/s": g.flops / 1e12, "TB/s": g.mem_bw / 1e12, "ridge (FLOP/B)": g.ridge,
                     "tp": cm.tp, "KV free (GB/GPU)": cm.free_kv_bytes / 1e9,
                     "KV of batch (GB/GPU)": need / 1e9,
                     "fits": bool(batch * (context + 1) <= cm.kv_capacity_tokens),
                     "max batch": int(cm.max_decode_batch(context + 1)),
                     "decode step (ms)": float(cm.decode(batch, context).time) * 1e3,
                     "prefill compute-bound above (tokens)": cm.prefill_ridge_tokens(),
                     "$ / GPU-hour": np.nan if g.price_per_hour is None else g.price_per_hour})
    df = pd.DataFrame(rows).set_index("GPU")
    if not as_text:
        return df
    out = _text(df, {"TFLOP/s": "{:,.0f}", "TB/s": "{:.3g}", "ridge (FLOP/B)": "{:.0f}",
                     "KV free (GB/GPU)": "{:.1f}", "KV of batch (GB/GPU)": "{:.1f}",
                     "prefill compute-bound above (tokens)": "{:,.0f}", "$ / GPU-hour": "${:.2f}"})
    out["HBM"] = ["yes" if h else "no" for h in df.HBM]
    out["fits"] = ["yes" if f else "NO" for f in df.fits]
    out["decode step (ms)"] = [f"{t:.1f}" + ("" if f else " (KV does not fit)")
                               for t, f in zip(df["decode step (ms)"], df.fits)]
    return out


def phase_cost_table(model: str | mdl.ModelSpec = "Llama-3.1-8B",
                     gpus: Sequence[str | GPU] | None = None, prompt: int = 2000, output: int = 300,
                     max_batch: int = 128, as_text: bool = False, **knobs):
    """Dollars per million tokens of each phase on each GPU (``model`` at the smallest fitting tp;
    ``knobs`` go to CostModel), from the catalog's dated on-demand prices:

    * ``prefill $/M tokens`` = ``prefill(prompt).time_per_token · tp · price / 3600 · 1e6``;
    * ``decode $/M tokens``, the same for a decode step at ``decode batch``, the largest batch
      ≤ ``max_batch`` whose whole requests' KV (``prompt + output`` tokens each) fits, every
      request at the mean context ``prompt + output / 2``;
    * ``TFLOP/s per $/h`` and ``GB/s per $/h``: what each phase buys, compute and bandwidth.

    Unpriced GPUs get NaN (``as_text=True``: "–", and "not priced" in the price column); prices
    come from :attr:`pdlib.hardware.GPU.price_per_hour`, with their source and date in the
    ``price source`` column."""
    import pandas as pd
    names = list(gpus) if gpus is not None else hw.gpu_names()
    rows = []
    for name in names:
        g = hw.gpu(name)
        cm, _ = fitting_cost_model(model, g, **knobs)
        batch = int(min(max_batch, cm.max_decode_batch(prompt + output)))
        price = np.nan if g.price_per_hour is None else g.price_per_hour
        usd_s = price / 3600 * cm.tp
        dec = float(cm.decode(batch, prompt + output / 2).time_per_token) if batch >= 1 else np.nan
        rows.append({"GPU": g.name, "tp": cm.tp, "$ / GPU-hour": price,
                     "TFLOP/s per $/h": g.flops_per_usd / 1e12, "GB/s per $/h": g.bw_per_usd / 1e9,
                     "prefill $/M tokens": float(cm.prefill(prompt).time_per_token) * usd_s * 1e6,
                     "decode batch": batch, "decode $/M tokens": dec * usd_s * 1e6,
                     "price source": (f"{g.price_source}, read {g.price_date}" if g.price_per_hour
                                      else hw.NOT_PRICED)})
    df = pd.DataFrame(rows).set_index("GPU")
    if not as_text:
        return df
    out = _text(df, {"$ / GPU-hour": "${:.2f}", "TFLOP/s per $/h": "{:.0f}", "GB/s per $/h": "{:.0f}",
                     "prefill $/M tokens": "${:.4f}", "decode $/M tokens": "${:.3f}"})
    out["$ / GPU-hour"] = [hw.NOT_PRICED if v == MISSING else v for v in out["$ / GPU-hour"]]
    return out.drop(columns="price source")


def decode_intensity_table(model_names: Sequence[str] = ("Llama-3.1-8B", "Llama-3.1-70B", "DeepSeek-V3"),
                           gpus: Sequence[str] = ("A100-80GB", "H200-SXM", "H100-SXM", "L40S"),
                           context: int = 32768, kv_dtype: str = "bf16"):
    """How far decode can climb, model by model, against GPU ridges (BF16 math):

    * ``decode FLOP/pair (M)`` and ``prefill FLOP/pair (M)``: attention FLOPs per (query, key)
      pair in the form each phase runs
      (:attr:`~pdlib.models.ModelSpec.decode_attention_flops_per_pair`: MLA absorbed in decode);
    * ``KV bytes/token`` in ``kv_dtype``;
    * ``attention FLOP/B``: :meth:`~pdlib.models.ModelSpec.decode_attention_intensity`, the
      intensity of decode's attention, which a whole decode step approaches at large batch and
      long context;
    * ``large batch, {context} ctx (FLOP/B)``:
      :meth:`~pdlib.models.ModelSpec.decode_intensity_limit`, the whole step with the weights
      amortized away;
    * ``÷ {gpu} ridge``: the attention intensity over each GPU's ridge (≥ 1: compute-bound)."""
    import pandas as pd
    rows = []
    for name in model_names:
        m = mdl.get(name)
        inten = m.decode_attention_intensity(kv_dtype)
        row = {"model": m.name, "attention": m.attention.upper(),
               "decode FLOP/pair (M)": m.decode_attention_flops_per_pair / 1e6,
               "prefill FLOP/pair (M)": m.attention_flops_per_pair / 1e6,
               "KV bytes/token": m.kv_bytes_per_token(kv_dtype), "attention FLOP/B": inten,
               f"large batch, {context:,} ctx (FLOP/B)":
                   float(m.decode_intensity_limit(context, kv_dtype=kv_dtype))}
        for g in gpus:
            row[f"÷ {hw.gpu(g).name} ridge"] = inten / hw.gpu(g).ridge
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _log_axes(ax, title: str, ylabel: str = "attainable TFLOP/s (log)") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, FLOP per byte (log)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)


def plot_rooflines(gpus: Sequence[str | GPU], steps: Mapping[str, StepCost] | None = None,
                   ax=None, intensity_range: tuple[float, float] = (0.3, 1e4),
                   title: str = "Rooflines of catalog GPUs (dense BF16/FP16)"):
    """Roofline of each GPU (peak FLOP/s and bandwidth from :mod:`pdlib.hardware`), its ridge
    point marked and labelled in FLOP/B; GDDR cards dashed, HBM cards solid. ``steps``
    (optional, a :class:`~pdlib.cost.StepCost` or an intensity in FLOP/B each) are drawn as
    vertical lines at their intensity: a step's intensity does not depend on the GPU, so one line
    crosses every roofline. A line is blue left of every ridge, red right of every ridge, olive
    between them (its bound depends on the GPU); labels are staggered in the band above the
    roofs. Returns the matplotlib Axes."""
    if not gpus:
        raise ValueError("plot_rooflines needs at least one GPU name")
    specs = [hw.gpu(g) for g in gpus]
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
    _log_axes(ax, title)
    x = np.logspace(np.log10(intensity_range[0]), np.log10(intensity_range[1]), 400)
    colors = plt.get_cmap("tab10").colors
    for i, g in enumerate(specs):
        c = colors[i % len(colors)]
        ax.plot(x, attainable_flops(g.flops, g.mem_bw, x) / 1e12, color=c, lw=2,
                ls="-" if g.is_hbm else "--",
                label=f"{g.name} ({g.mem_type}, {g.mem_bw / 1e12:.2f} TB/s): ridge {g.ridge:.0f} FLOP/B")
        ax.plot([g.ridge], [g.flops / 1e12], "o", color=c, ms=7, mec="black")
    top = max(g.flops for g in specs) / 1e12
    bottom = min(g.mem_bw for g in specs) * intensity_range[0] / 1e12
    rows = 1.0
    if steps:
        lowest, highest = min(g.ridge for g in specs), max(g.ridge for g in specs)
        middle = np.sqrt(intensity_range[0] * intensity_range[1])
        kinds = []
        ordered = sorted(steps.items(), key=lambda kv: float(kv[1].intensity)
                         if isinstance(kv[1], StepCost) else float(kv[1]))
        for i, (label, s) in enumerate(ordered):
            I = float(s.intensity) if isinstance(s, StepCost) else float(s)
            where = "memory" if I < lowest else "compute" if I > highest else "between"
            color = _BOUND_COLOR.get(where, _BETWEEN_COLOR)
            ax.axvline(I, color=color, ls=":", lw=1.4)
            right = I < middle                        # text on the side with room
            ax.text(I * (1.08 if right else 1 / 1.08), top * 1.6 * 2.2 ** i, label, fontsize=8,
                    ha="left" if right else "right", va="center", color=color)
            if where not in kinds:
                kinds.append(where)
        for where in kinds:
            ax.plot([], [], color=_BOUND_COLOR.get(where, _BETWEEN_COLOR), ls=":", lw=1.4,
                    label=f"step: {_STEP_KIND[where]}")
        rows = 1.6 * 2.2 ** len(steps)
    ax.set_ylim(bottom / 1.5, top * max(3.0, rows))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="solid: HBM, dashed: GDDR",
              title_fontsize=8)
    return ax


def plot_steps_on_roofline(cm: CostModel, steps: Mapping[str, StepCost], ax=None,
                           title: str | None = None):
    """One GPU's roofline (peak, solid; derated by the cost model's η_F and η_W, dashed) with
    each step placed at (intensity, achieved FLOP/s per GPU = flops / time), blue when
    memory-bound and red when compute-bound. The flat roof is the peak the cost model's matmuls
    run at (:attr:`~pdlib.cost.CostModel.matmul_peak`: FP8 for FP8 weights on a GPU that has
    it). Returns the matplotlib Axes."""
    g = cm.gpu
    F = cm.matmul_peak
    ridge = F / g.mem_bw
    peak = "FP8 " if F != g.flops else ""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5.5))
    intens = [float(s.intensity) for s in steps.values()]
    lo = min(0.3, min(intens) / 3)
    hi = max(3e3, max(intens) * 3)
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    ax.plot(x, attainable_flops(F, g.mem_bw, x) / 1e12, color="black", lw=2,
            label=f"{g.name} {peak}peak: {F / 1e12:.0f} TFLOP/s, {g.mem_bw / 1e12:.2f} TB/s")
    ax.plot(x, attainable_flops(F * cm.flops_efficiency, g.mem_bw * cm.bw_efficiency, x) / 1e12,
            color="gray", lw=1.5, ls="--",
            label=f"cost model's roof (η_F={cm.flops_efficiency:g}, η_W={cm.bw_efficiency:g})")
    ax.axvline(ridge, color="black", lw=0.8, ls=":")
    ax.text(ridge * 1.08, F / 1e12 * 0.012, f"ridge {ridge:.0f} FLOP/B", fontsize=8,
            rotation=90, va="bottom")
    for i, (label, s) in enumerate(steps.items()):
        y = float(s.flops) / float(s.time) / 1e12
        ax.plot([float(s.intensity)], [y], "o", ms=8, color=_BOUND_COLOR[s.bound], mec="black")
        ax.annotate(label, (float(s.intensity), y), textcoords="offset points",
                    xytext=(6, -12 if i % 2 else 6), fontsize=8)
    for bound, c in _BOUND_COLOR.items():
        ax.plot([], [], "o", color=c, mec="black", label=f"{bound}-bound step")
    tp = f"{cm.tp}×" if cm.tp > 1 else ""
    _log_axes(ax, title or f"{cm.model.name} steps on {tp}{g.name} (per GPU)",
              ylabel="FLOP/s per GPU, in TFLOP/s (log)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_decode_intensity(cm: CostModel, contexts: Sequence[int] = (0, 1024, 8192),
                          batches=None, ax=None, title: str | None = None):
    """Arithmetic intensity of a decode step against batch size, one line per context length,
    with the GPU's ridge as a horizontal line. Each line is solid while the batch's KV cache fits
    in memory (``cm.max_decode_batch(context)``) and dotted beyond. The ridge is the cost model's
    (:attr:`~pdlib.cost.CostModel.ridge`: the FP8 one for FP8 weights). Returns the matplotlib Axes."""
    B = np.unique(np.round(np.logspace(0, 14, 57, base=2))) if batches is None \
        else np.asarray(batches, dtype=np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, len(contexts)))
    for L, c in zip(contexts, colors):
        inten = np.asarray(cm.decode(B, L).intensity)
        fits = B <= (cm.kv_capacity_tokens / max(L + 1, 1))
        ax.plot(B[fits], inten[fits], color=c, lw=2, label=f"context {L:,} tokens")
        ax.plot(B[~fits], inten[~fits], color=c, lw=1.5, ls=":")
    ax.axhline(cm.ridge, color="black", ls="--", lw=1)
    ax.text(B[0], cm.ridge * 1.1, f"{cm.gpu.name} ridge {cm.ridge:.0f} FLOP/B", fontsize=8)
    ax.plot([], [], color="gray", ls=":", label="KV cache no longer fits")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("decode batch size, requests (log)")
    ax.set_ylabel("arithmetic intensity, FLOP per byte (log)")
    ax.set_title(title or f"Decode intensity of {cm.model.name} ({cm.dtype}) vs batch")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_measured_roofline(roof, ax=None, title: str | None = None):
    """The measured roofline of a :class:`pdlib.microbench.DeviceRoofline`: ``min(peak_flops,
    I · peak_bw)`` with every measured kernel placed at (intensity, achieved FLOP/s). Kernels
    that do no arithmetic (copies) have no place on a log intensity axis; their bandwidth shows
    as the slanted roof when they set it. FLOP/s in GFLOP/s. Returns the matplotlib Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5.5))
    pts = [p for p in roof.points if p.flops > 0]
    lo = min([0.1] + [p.intensity / 3 for p in pts])
    hi = max([10 * roof.ridge] + [p.intensity * 3 for p in pts])
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    ax.plot(x, attainable_flops(roof.peak_flops, roof.peak_bw, x) / 1e9, color="black", lw=2,
            label=(f"measured roof: {roof.peak_flops / 1e9:.4g} GFLOP/s ({roof.peak_flops_kernel}), "
                   f"{roof.peak_bw / 1e9:.4g} GB/s ({roof.peak_bw_kernel}), "
                   f"ridge {roof.ridge:.3g} FLOP/B"))
    for i, p in enumerate(pts):
        c = "tab:red" if p.intensity >= roof.ridge else "tab:blue"
        ax.plot([p.intensity], [p.flops_per_s / 1e9], "o", ms=8, color=c, mec="black")
        ax.annotate(p.name, (p.intensity, p.flops_per_s / 1e9), textcoords="offset points",
                    xytext=(6, 7 if i % 2 else -13), fontsize=8)
    _log_axes(ax, title or f"Measured roofline: {roof.device}, {roof.dtype}",
              ylabel="achieved GFLOP/s (log)")
    ax.legend(fontsize=8, loc="lower right")
    return ax
