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
from ..cost import CostModel, StepCost
from ..hardware import GPU

__all__ = ["attainable_flops", "step_table", "plot_rooflines", "plot_steps_on_roofline",
           "plot_decode_intensity", "plot_measured_roofline"]

_BOUND_COLOR = {"memory": "tab:blue", "compute": "tab:red"}


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
    point marked and labelled in FLOP/B; GDDR cards dashed, HBM cards solid. ``steps`` (optional)
    are drawn as vertical lines at their intensity: a step's intensity does not depend on the GPU,
    so one line crosses every roofline. Returns the matplotlib Axes."""
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
    if steps:
        lowest_ridge = min(g.ridge for g in specs)
        for label, s in steps.items():
            I = float(s.intensity)
            ax.axvline(I, color=_BOUND_COLOR["memory" if I < lowest_ridge else "compute"], ls=":",
                       lw=1.2)
            ax.text(I * 1.08, top * 1.5, label, rotation=90, ha="left", va="bottom", fontsize=8)
    ax.set_ylim(bottom / 1.5, top * (25 if steps else 3))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="solid: HBM, dashed: GDDR",
              title_fontsize=8)
    return ax


def plot_steps_on_roofline(cm: CostModel, steps: Mapping[str, StepCost], ax=None,
                           title: str | None = None):
    """One GPU's roofline (peak, solid; derated by the cost model's η_F and η_W, dashed) with
    each step placed at (intensity, achieved FLOP/s per GPU = flops / time), blue when
    memory-bound and red when compute-bound. Returns the matplotlib Axes."""
    g = cm.gpu
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5.5))
    intens = [float(s.intensity) for s in steps.values()]
    lo = min(0.3, min(intens) / 3)
    hi = max(3e3, max(intens) * 3)
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    ax.plot(x, attainable_flops(g.flops, g.mem_bw, x) / 1e12, color="black", lw=2,
            label=f"{g.name} peak: {g.flops / 1e12:.0f} TFLOP/s, {g.mem_bw / 1e12:.2f} TB/s")
    ax.plot(x, attainable_flops(g.flops * cm.flops_efficiency, g.mem_bw * cm.bw_efficiency, x) / 1e12,
            color="gray", lw=1.5, ls="--",
            label=f"cost model's roof (η_F={cm.flops_efficiency:g}, η_W={cm.bw_efficiency:g})")
    ax.axvline(g.ridge, color="black", lw=0.8, ls=":")
    ax.text(g.ridge * 1.08, g.flops / 1e12 * 0.012, f"ridge {g.ridge:.0f} FLOP/B", fontsize=8,
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
    in memory (``cm.max_decode_batch(context)``) and dotted beyond. Returns the matplotlib Axes."""
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
    ax.axhline(cm.gpu.ridge, color="black", ls="--", lw=1)
    ax.text(B[0], cm.gpu.ridge * 1.1, f"{cm.gpu.name} ridge {cm.gpu.ridge:.0f} FLOP/B", fontsize=8)
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
