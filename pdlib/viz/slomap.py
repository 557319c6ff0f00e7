"""Plots of the head-to-head comparison (chapter 09): the planner's table, attainment curves, SLO
maps and phase diagrams coloured by the winning architecture, and the burstiness sweep.

Inputs are the DataFrames of :mod:`pdlib.planner` (seconds, req/s, req/s/GPU); the plots show
milliseconds where that reads better and say so on their axes. Each function returns the
matplotlib Axes (or array of Axes) it drew on.

* :func:`plot_plan` — goodput per GPU (or requests per USD) of every searched candidate, coloured
  by architecture.
* :func:`plot_attainment` — SLO attainment against the per-GPU rate for each candidate of a sweep.
* :func:`plot_slo_map` — a TTFT-target × TPOT-target grid coloured by the winner (TaiChi's map),
  each cell labelled with best disaggregated ÷ best colocated.
* :func:`plot_phase_diagram` — the same kind of grid for any two axes of :func:`pdlib.planner.phase_diagram`.
* :func:`plot_burstiness` — TPOT and token-gap inflation against the Gamma cv of the arrivals.
* :func:`plot_plans_within_error` — the same units priced by two cost models side by side, each
  with the band of goodputs its error cannot tell from the best unit's.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter

__all__ = ["ARCH_COLORS", "plot_plan", "plot_attainment", "plot_slo_map", "plot_phase_diagram",
           "plot_burstiness", "plot_plans_within_error"]

#: Colour of each architecture, and of the "tie" and "none" outcomes of a map cell.
ARCH_COLORS = {"colocated": "tab:blue", "disaggregated": "tab:orange", "conditional": "tab:green",
               "tie": "0.8", "none": "white"}


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} needs columns {list(cols)}; missing {missing} (have {list(df.columns)})")


def plot_plan(table: pd.DataFrame, by: str = "goodput_per_gpu", ax=None,
              title: str = "Every searched configuration"):
    """Horizontal bars of ``by`` ("goodput_per_gpu", req/s/GPU, or "goodput_per_usd", requests per
    USD) for each row of a :class:`pdlib.planner.Plan` table, sorted, coloured by ``arch``; a hatched
    bar is censored at the top of its rate grid (the true value is higher)."""
    _need(table, ("name", "arch", by), "plot_plan")
    if by not in ("goodput_per_gpu", "goodput_per_usd"):
        raise ValueError(f"by must be 'goodput_per_gpu' or 'goodput_per_usd', got {by!r}")
    t = table.sort_values(by)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.35 * len(t) + 1.2), layout="constrained")
    cens = t["censored"] if "censored" in t.columns else pd.Series("", index=t.index)
    bars = ax.barh(t["name"], t[by], color=[ARCH_COLORS.get(a, "0.5") for a in t.arch],
                   hatch=None, edgecolor="black", lw=0.5)
    for bar, c in zip(bars, cens):
        if c == "above grid":
            bar.set_hatch("//")
    archs = [a for a in ARCH_COLORS if a in set(t.arch)]
    ax.legend(handles=[Patch(color=ARCH_COLORS[a], label=a) for a in archs], loc="lower right", fontsize=8)
    ax.set_xlabel("goodput per GPU (req/s/GPU)" if by == "goodput_per_gpu" else "requests per USD")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    return ax


def plot_attainment(sw, slo: Mapping[str, float], target: float = 0.9, ax=None,
                    names: Sequence[str] | None = None, title: str | None = None):
    """SLO attainment (fraction of requests meeting every target of ``slo``) against the per-GPU
    arrival rate (req/s/GPU) for each candidate of a :class:`pdlib.planner.Sweep` (or those in
    ``names``), solid for colocated, dashed otherwise; ``target`` as a dotted line."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    att = sw.attainment(slo)
    for i, (c, rates, a) in enumerate(zip(sw.candidates, sw.rates, att)):
        if names is not None and c.name not in names:
            continue
        ax.plot(rates / c.n_gpus, a, marker="o", ms=3, ls="-" if c.arch == "colocated" else "--",
                color=f"C{i % 10}", label=c.name)
    ax.axhline(target, color="black", ls=":", lw=1, label=f"target {target:.0%}")
    ax.set(xscale="log", xlabel="arrival rate per GPU (req/s/GPU, log)", ylabel="SLO attainment",
           ylim=(-0.02, 1.02),
           title=title or "Attainment of " + ", ".join(f"{k} ≤ {v * 1e3:g} ms" for k, v in slo.items()))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return ax


def _winner_grid(df: pd.DataFrame, x: str, y: str, ax, xfmt, yfmt, xlabel: str, ylabel: str,
                 title: str, label_col: str | None):
    xs = list(dict.fromkeys(df[x]))
    ys = list(dict.fromkeys(df[y]))
    keys = [k for k in ARCH_COLORS if k in set(df.winner)]
    code = {k: i for i, k in enumerate(keys)}
    grid = np.full((len(ys), len(xs)), np.nan)
    for r in df.itertuples(index=False):
        grid[ys.index(getattr(r, y)), xs.index(getattr(r, x))] = code[r.winner]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(xs) + 2.5, 0.6 * len(ys) + 1.8), layout="constrained")
    ax.imshow(grid, cmap=ListedColormap([ARCH_COLORS[k] for k in keys]), vmin=-0.5,
              vmax=len(keys) - 0.5, origin="lower", aspect="auto")
    if label_col is not None and label_col in df.columns:
        for r in df.itertuples(index=False):
            v = getattr(r, label_col)
            if not np.isnan(v):
                ax.text(xs.index(getattr(r, x)), ys.index(getattr(r, y)),
                        f"{v:.2f}" if np.isfinite(v) else "∞", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(xs)), [xfmt(v) for v in xs])
    ax.set_yticks(range(len(ys)), [yfmt(v) for v in ys])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(handles=[Patch(facecolor=ARCH_COLORS[k], edgecolor="black", label=k) for k in keys],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return ax


def plot_slo_map(slo_map: pd.DataFrame, ax=None, metric_label: str = "TPOT",
                 title: str = "Which architecture serves more per GPU"):
    """TaiChi-style SLO map from :func:`pdlib.planner.slo_map`: TTFT target (ms) across, second
    target (``metric_label``, ms) up, each cell coloured by the winner and labelled with
    best disaggregated ÷ best colocated goodput per GPU ("∞": only disaggregated units meet it)."""
    _need(slo_map, ("ttft", "tpot", "winner", "ratio"), "plot_slo_map")
    ms = lambda v: f"{v * 1e3:g}"  # noqa: E731
    return _winner_grid(slo_map, "ttft", "tpot", ax, ms, ms, "TTFT target (ms)",
                        f"{metric_label} target (ms)", title, "ratio")


def plot_phase_diagram(df: pd.DataFrame, x: str, y: str, ax=None, xlabel: str | None = None,
                       ylabel: str | None = None, title: str = "Who wins where"):
    """A phase diagram from :func:`pdlib.planner.phase_diagram` (or its wrappers): ``x`` across,
    ``y`` up, cells coloured by the winner and labelled with best disaggregated ÷ best colocated."""
    _need(df, (x, y, "winner", "ratio"), "plot_phase_diagram")
    return _winner_grid(df, x, y, ax, str, str, xlabel or x, ylabel or y, title, "ratio")


def plot_burstiness(df: pd.DataFrame, metrics: Sequence[str] = ("tpot_p50_inflation", "tpot_p99_inflation"),
                    axes=None, claim: tuple[float, float] | None = (2.0, 30.0),
                    title: str = "Bursty arrivals: how much do token times inflate?"):
    """One panel per metric of :func:`pdlib.planner.burstiness_sweep` (``*_inflation``: the metric
    ÷ a lone request's decode step), against the Gamma cv of the arrivals, one line per
    candidate (solid: colocated, dashed: the others); ``claim`` (low, high) shades the claimed
    inflation range. Returns the axes."""
    _need(df, ("name", "arch", "cv", *metrics), "plot_burstiness")
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), layout="constrained",
                               squeeze=False)
        axes = axes[0]
    labels = {"tpot_p50_inflation": "median TPOT", "tpot_p99_inflation": "P99 TPOT",
              "tbt_p99_inflation": "P99 token gap", "max_tbt_p99_inflation": "P99 of the largest gap"}
    for ax, m in zip(axes, metrics):
        for k, (name, g) in enumerate(df.groupby("name", sort=False)):
            ax.plot(g.cv, g[m], marker="os^vD"[k % 5], color=f"C{k % 10}",
                    ls="-" if g.arch.iloc[0] == "colocated" else "--", label=name)
        if claim is not None:
            ax.axhspan(*claim, color="tab:red", alpha=0.08, label=f"claimed {claim[0]:g}–{claim[1]:g}×")
        ax.set(xscale="log", yscale="log", xlabel="cv of inter-arrival gaps (1 = Poisson, log)",
               ylabel=f"{labels.get(m, m)} ÷ lone decode step (log)")
        ax.set_xticks(sorted(set(df.cv)), [f"{v:g}" for v in sorted(set(df.cv))])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].figure.suptitle(title)
    return axes


def plot_plans_within_error(tables: Mapping[str, pd.DataFrame], bands: Mapping[str, float],
                            by: str = "goodput_per_gpu", top: int | None = 10, axes=None,
                            title: str = "The same units, two cost models"):
    """One panel per :class:`pdlib.planner.Plan` table of ``tables`` (label → table, the same
    unit names in each): horizontal bars of ``by`` coloured by architecture, units in the order of
    the last table (best at the top; with ``top``, the union of each table's ``top`` best units),
    and a grey band from
    ``best / (1 + band)`` to the best value, ``band`` = ``bands[label]``
    (:func:`pdlib.planner.comparison_band`): a bar reaching into it is a tie with the best unit
    within that cost model's error. Each panel has its own x scale (the models' rates differ).
    Returns the axes."""
    labels = list(tables)
    if not labels or set(labels) != set(bands):
        raise ValueError(f"tables and bands need the same non-empty labels, got {list(tables)} and {list(bands)}")
    for lab in labels:
        _need(tables[lab], ("name", "arch", by), "plot_plans_within_error")
    order = tables[labels[-1]].sort_values(by, ascending=False)["name"].tolist()
    if top is not None:
        keep = set()
        for lab in labels:
            keep |= set(tables[lab].sort_values(by, ascending=False)["name"].head(top))
        order = [n for n in order if n in keep]
    if axes is None:
        _, axes = plt.subplots(1, len(labels), figsize=(6.2 * len(labels), 0.32 * len(order) + 1.6),
                               layout="constrained", sharey=True, squeeze=False)
        axes = axes[0]
    for ax, lab in zip(axes, labels):
        t = tables[lab].set_index("name").loc[order[::-1]]
        best = float(tables[lab][by].max())
        ax.axvspan(best / (1 + bands[lab]), best, color="0.85", zorder=0,
                   label=f"within ±{bands[lab]:.0%} of the best: a tie")
        ax.barh(range(len(t)), t[by], color=[ARCH_COLORS.get(a, "0.5") for a in t.arch],
                edgecolor="black", lw=0.5, zorder=2)
        ax.set_yticks(range(len(t)), list(t.index), fontsize=8)
        ax.set_xlabel("goodput per GPU (req/s/GPU)" if by == "goodput_per_gpu" else "requests per USD")
        ax.set_title(lab, fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        handles = [Patch(color=ARCH_COLORS[a], label=a) for a in ARCH_COLORS if a in set(t.arch)]
        handles.append(Patch(color="0.85", label=f"tie with the best (±{bands[lab]:.0%})"))
        ax.legend(handles=handles, loc="lower right", fontsize=7)
    axes[0].figure.suptitle(title)
    return axes
