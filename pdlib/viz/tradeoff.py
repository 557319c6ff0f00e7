"""Plots of the chunk-size trade-off: what a chunk costs per step and in total, latency curves of a
chunk-size sweep, and capacity under token-gap SLOs.

Inputs are the DataFrames of :mod:`pdlib.chunking` (seconds, tokens, req/s); plots show
milliseconds or percent where that reads better and say so on their axes.

* :func:`plot_chunk_costs` — longest step (the token gap riding decodes see) and prefill overhead
  vs chunk size, one line per deployment, with measured points from a paper.
* :func:`plot_overhead_vs_measured` — chunked ÷ unchunked prefill time against the chunk size:
  the cost model's curve per prompt length, the measured points on top
  (:func:`pdlib.chunking.overhead_vs_sarathi`).
* :func:`plot_tradeoff` — P99 TBT vs TTFT of a :func:`pdlib.chunking.chunk_sweep`, each point
  labelled with its chunk size, the prefill-priority baseline as a separate marker.
* :func:`plot_capacity` — grouped bars of capacity per (dataset,) SLO and scheduler, with the
  gains.
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

__all__ = ["plot_chunk_costs", "plot_overhead_vs_measured", "plot_tradeoff", "plot_capacity"]


def _need(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} needs columns {list(cols)}; missing {missing} (have {list(df.columns)})")


def plot_chunk_costs(tables: Mapping[str, pd.DataFrame], paper: Mapping[int, float] | None = None,
                     paper_label: str = "paper (measured)", axes=None,
                     title: str = "What a chunk size costs"):
    """Two panels from :func:`pdlib.chunking.chunk_table` frames, one line per ``tables`` entry:
    left, the longest step (ms, log scale) against the chunk size, with each deployment's pure
    decode step dashed; right, the prefill overhead (% over one whole prefill) with ``paper``
    points ``{chunk: overhead fraction}`` as black crosses. Returns the figure."""
    if not tables:
        raise ValueError("tables is empty: pass {label: chunk_table(...)}")
    for label, df in tables.items():
        _need(df, ("chunk", "max_step_s", "overhead", "decode_step_s"), f"table {label!r}")
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax1, ax2 = axes
    for i, (label, df) in enumerate(tables.items()):
        color = f"C{i}"
        ax1.plot(df.chunk, df.max_step_s * 1e3, marker="o", color=color, label=f"{label}: chunk step")
        dec = df.decode_step_s.iloc[0]
        if np.isfinite(dec):
            ax1.axhline(dec * 1e3, color=color, ls="--", lw=1, label=f"{label}: decode-only step")
        ax2.plot(df.chunk, (df.overhead - 1) * 100, marker="o", color=color, label=label)
    if paper:
        ks = sorted(paper)
        ax2.scatter(ks, [paper[k] * 100 for k in ks], marker="x", s=60, color="black", zorder=3,
                    label=paper_label)
    ax1.set(xscale="log", yscale="log", xlabel="chunk size (tokens, log scale)",
            ylabel="longest step = token gap (ms, log)", title="Step time with the decodes riding along")
    ax2.set(xscale="log", xlabel="chunk size (tokens, log scale)",
            ylabel="prefill time over one whole prefill (%)", title="Total prefill overhead")
    chunks = sorted({int(c) for df in tables.values() for c in df.chunk})
    for ax in (ax1, ax2):
        ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax1.yaxis.set_major_formatter(ScalarFormatter())
    ax1.figure.suptitle(title)
    return ax1.figure


def plot_overhead_vs_measured(curve: pd.DataFrame, measured: pd.DataFrame, ax=None,
                              title: str = "Chunked ÷ unchunked prefill time",
                              calibrated: pd.DataFrame | None = None,
                              labels: tuple[str, str] = ("cost model", "calibrated")):
    """Prefill time in chunks over the same prefill unchunked (%, 0 = no overhead) against the
    chunk size (log scale), one colour per prompt length: ``curve`` (columns prompt, chunk,
    relative; e.g. :func:`pdlib.chunking.overhead_curve`) as solid lines, ``calibrated`` (the same
    columns, e.g. the curve of a :func:`pdlib.calibrate.from_published` model) as dashed lines when
    given, ``measured`` (columns prompt, chunk, measured_relative; <NA> chunk rows, the unchunked
    references, are skipped; e.g. :func:`pdlib.chunking.overhead_vs_sarathi`) as filled markers.
    ``labels`` name the two line styles in the legend. Returns the axes."""
    _need(curve, ("prompt", "chunk", "relative"), "plot_overhead_vs_measured curve")
    _need(measured, ("prompt", "chunk", "measured_relative"), "plot_overhead_vs_measured measured")
    if calibrated is not None:
        _need(calibrated, ("prompt", "chunk", "relative"), "plot_overhead_vs_measured calibrated")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    prompts = sorted(set(curve.prompt) | set(measured.prompt))
    for i, p in enumerate(prompts):
        color = f"C{i}"
        c = curve[(curve.prompt == p) & (curve.chunk < p)].sort_values("chunk")
        ax.plot(c.chunk, (c.relative - 1) * 100, color=color, lw=1.5,
                label=f"{p:,} tokens: {labels[0]}")
        if calibrated is not None:
            k = calibrated[(calibrated.prompt == p) & (calibrated.chunk < p)].sort_values("chunk")
            ax.plot(k.chunk, (k.relative - 1) * 100, color=color, lw=1.5, ls="--",
                    label=f"{p:,} tokens: {labels[1]}")
        m = measured[(measured.prompt == p)].dropna(subset=["chunk"])
        ax.plot(m.chunk.astype(float), (m.measured_relative - 1) * 100, "o", color=color, ms=7,
                mec="black", label=f"{p:,} tokens: measured")
    ax.axhline(0, color="grey", lw=1)
    chunks = sorted({int(c) for c in measured.chunk.dropna()})
    ax.set(xscale="log", xlabel="chunk size (tokens, log scale)",
           ylabel="prefill time over unchunked (%)", title=title)
    ax.set_xticks(chunks, [f"{c:,}" for c in chunks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_tradeoff(sweep: pd.DataFrame, x: str = "ttft_p50", y: str = "tbt_p99",
                  slo: float | None = None, ax=None, title: str = "Chunk size: TBT vs TTFT"):
    """Scatter-line of ``y`` against ``x`` (both seconds, drawn in ms) for the chunked rows of a
    :func:`pdlib.chunking.chunk_sweep`, each point labelled with its chunk size; the
    "continuous" row as a red star; ``slo`` (seconds) as a horizontal dotted line. Returns the axes."""
    _need(sweep, ("scheduler", "chunk", x, y), "plot_tradeoff")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ch = sweep[sweep.scheduler == "chunked"].sort_values("chunk")
    ax.plot(ch[x] * 1e3, ch[y] * 1e3, marker="o", label="chunked prefill")
    for _, r in ch.iterrows():
        ax.annotate(f"{int(r.chunk)}", (r[x] * 1e3, r[y] * 1e3), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    base = sweep[sweep.scheduler == "continuous"]
    if len(base):
        ax.scatter(base[x] * 1e3, base[y] * 1e3, marker="*", s=160, color="tab:red", zorder=3,
                   label="continuous (prefill priority)")
    if slo is not None:
        ax.axhline(slo * 1e3, color="grey", ls=":", label=f"target {slo * 1e3:g} ms")
    ax.set(xlabel=f"{x.replace('_', ' ').upper()} (ms)", ylabel=f"{y.replace('_', ' ').upper()} (ms, log)",
           yscale="log", title=title)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def plot_capacity(cap: pd.DataFrame, paper_ratio: float | None = None, ax=None,
                  title: str = "Capacity under a P99 TBT SLO", paper_label: str | None = None):
    """Grouped bars from :func:`pdlib.chunking.tbt_capacity` or the ``table`` of
    :func:`pdlib.reproduce.sarathi_capacity`: one group per (dataset, if the column is there, and)
    SLO level, one bar per scheduler (req/s), the chunked ÷ prefill-priority gain above each
    group, and ``paper_ratio`` in the legend for comparison (``paper_label``, default
    "paper: up to …× (measured)"). Returns the axes."""
    _need(cap, ("slo", "p99_tbt_slo", "scheduler", "token_budget", "capacity", "gain"), "plot_capacity")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    keys = ["dataset", "slo"] if "dataset" in cap.columns else ["slo"]
    groups = list(dict.fromkeys(map(tuple, cap[keys].itertuples(index=False))))
    x = np.arange(len(groups))
    w = 0.38
    scheds = list(dict.fromkeys(cap.scheduler))
    colors = ("tab:red", "tab:blue")
    for j, sched in enumerate(scheds):
        rates = [cap[(cap[keys].apply(tuple, axis=1) == g) & (cap.scheduler == sched)].capacity.iloc[0]
                 for g in groups]
        ax.bar(x + (j - (len(scheds) - 1) / 2) * w, rates, w, color=colors[j % 2], label=sched)
    labels = []
    for i, g in enumerate(groups):
        rows = cap[cap[keys].apply(tuple, axis=1) == g]
        chunked = rows[rows.scheduler == scheds[-1]].iloc[0]
        ax.annotate(f"{chunked.gain:.1f}×", (x[i], rows.capacity.max()), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontweight="bold")
        head = f"{g[0]}\n" if len(g) == 2 else ""
        labels.append(f"{head}{g[-1]}: P99 TBT ≤ {chunked.p99_tbt_slo * 1e3:g} ms\n"
                      f"budget {int(chunked.token_budget):,}")
    ax.set_xticks(x, labels, fontsize=7 if len(groups) > 2 else 8)
    ax.set(ylabel="capacity (req/s)", title=title)
    ax.set_ylim(0, cap.capacity.max() * (1.35 if len(groups) > 2 else 1.6))
    if paper_ratio is not None:
        ax.plot([], [], " ", label=paper_label or f"paper: up to {paper_ratio:g}× (measured)")
    ax.legend(loc="upper center", ncol=3 if len(groups) > 2 else 1, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return ax
