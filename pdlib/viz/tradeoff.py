"""Plots of the chunk-size trade-off: what a chunk costs per step and in total, latency curves of a
chunk-size sweep, and capacity under token-gap SLOs.

Inputs are the DataFrames of :mod:`pdlib.chunking` (seconds, tokens, req/s); plots show
milliseconds or percent where that reads better and say so on their axes.

* :func:`plot_chunk_costs` — longest step (the token gap riding decodes see) and prefill overhead
  vs chunk size, one line per deployment, with measured points from a paper.
* :func:`plot_tradeoff` — P99 TBT vs TTFT of a :func:`pdlib.chunking.chunk_sweep`, each point
  labelled with its chunk size, the prefill-priority baseline as a separate marker.
* :func:`plot_capacity` — grouped bars of capacity per SLO and scheduler, with the ratios.
"""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

__all__ = ["plot_chunk_costs", "plot_tradeoff", "plot_capacity"]


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
                  title: str = "Capacity under a P99 TBT SLO"):
    """Grouped bars from :func:`pdlib.chunking.tbt_capacity`: one group per SLO, one bar per
    scheduler (req/s), the chunked ÷ continuous ratio written above each group, and
    ``paper_ratio`` in the legend for comparison. Returns the axes."""
    _need(cap, ("slo", "p99_tbt", "scheduler", "chunk", "rate", "ratio"), "plot_capacity")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    slos = list(dict.fromkeys(cap.slo))
    x = np.arange(len(slos))
    w = 0.38
    for j, (sched, color) in enumerate((("continuous", "tab:red"), ("chunked", "tab:blue"))):
        rates = [cap[(cap.slo == s) & (cap.scheduler == sched)].rate.iloc[0] for s in slos]
        ax.bar(x + (j - 0.5) * w, rates, w, color=color,
               label="continuous (prefill priority)" if sched == "continuous" else "chunked prefill")
    for i, s in enumerate(slos):
        g = cap[cap.slo == s]
        top = g.rate.max()
        ratio = g[g.scheduler == "chunked"].ratio.iloc[0]
        ax.annotate(f"{ratio:.1f}×", (x[i], top), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontweight="bold")
    labels = []
    for s in slos:
        g = cap[cap.slo == s]
        c = g[g.scheduler == "chunked"].chunk.iloc[0]
        labels.append(f"{s}\nP99 TBT ≤ {g.p99_tbt.iloc[0] * 1e3:g} ms, chunk {int(c)}")
    ax.set_xticks(x, labels)
    ax.set(ylabel="capacity (req/s)", title=title)
    ax.set_ylim(0, cap.rate.max() * 1.35)
    if paper_ratio is not None:
        ax.plot([], [], " ", label=f"paper: up to {paper_ratio:g}× (measured)")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return ax
