"""Plots of simulator results: engine timelines, token gaps, latency CDFs.

Everything here reads a :class:`pdlib.sim.Result` (or its ``timeline`` DataFrame) and draws it;
nothing is simulated or priced. Inputs and tables are in SI units (seconds, tokens); plots show
seconds or milliseconds for readability and say so on their axes.

* :func:`plot_timeline` — Gantt chart of engine steps per instance, coloured by what a step
  holds (prefill only, prefill + decodes, decodes only); a decode *stretch* (``steps`` identical
  decode steps, see :mod:`pdlib.sim.instance`) is one bar labelled with its step count.
* :func:`plot_timeline_series` / :func:`plot_kv_usage` — a timeline column (batch size, KV tokens
  held) over time.
* :func:`plot_token_gaps` / :func:`plot_token_progress` — the token stream of chosen requests:
  a stall is a spike in the gap to the previous token, or a flat stretch of the token count.
* :func:`plot_cdfs` and :func:`summary_table` — several results side by side.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

__all__ = ["STEP_KINDS", "METRICS", "step_kind", "rows_in_window", "plot_timeline", "plot_timeline_series",
           "plot_kv_usage", "plot_token_gaps", "plot_token_progress", "metric_values", "plot_cdfs",
           "summary_table"]

#: What an engine step holds, and the colour it is drawn in.
STEP_KINDS = {"prefill": "tab:red", "mixed": "tab:purple", "decode": "tab:blue"}

#: Per-request metrics :func:`metric_values` knows (seconds); "tbt" is every token gap.
METRICS = ("ttft", "tpot", "tbt", "e2e", "max_tbt", "p99_tbt", "queue_delay")

_METRIC_LABEL = {"ttft": "TTFT", "tpot": "TPOT", "tbt": "TBT (every token gap)", "e2e": "E2E latency",
                 "max_tbt": "largest token gap per request", "p99_tbt": "P99 token gap per request",
                 "queue_delay": "queueing delay"}


def step_kind(timeline: pd.DataFrame) -> pd.Series:
    """For each timeline row: "prefill" (prefill tokens, no decodes), "mixed" (prefill tokens and
    decodes in one step, as chunked prefill schedules) or "decode" (decodes only)."""
    pre = timeline["n_prefill_tokens"].to_numpy() > 0
    dec = timeline["n_decode"].to_numpy() > 0
    kind = np.where(pre & dec, "mixed", np.where(pre, "prefill", "decode"))
    return pd.Series(kind, index=timeline.index, name="kind")


def _check_window(window) -> tuple[float, float] | None:
    if window is None:
        return None
    t0, t1 = (float(x) for x in window)
    if not t1 > t0:
        raise ValueError(f"window must be (start, end) seconds with end > start, got {window!r}")
    return t0, t1


def rows_in_window(timeline: pd.DataFrame, window: tuple[float, float] | None = None,
                   instances: Sequence[int] | int | None = None) -> pd.DataFrame:
    """Timeline rows of ``instances`` (default all) that overlap ``window`` = (start, end) seconds
    (default: all rows), i.e. rows with ``row.end > start`` and ``row.start < end``."""
    tl = timeline
    if instances is not None:
        keep = [instances] if np.isscalar(instances) else list(instances)
        known = sorted(int(i) for i in tl["instance"].unique())
        missing = [i for i in keep if i not in known]
        if missing:
            raise KeyError(f"instance(s) {missing} not in the timeline; known instances: {known}")
        tl = tl[tl["instance"].isin(keep)]
    w = _check_window(window)
    if w is not None:
        tl = tl[(tl["end"] > w[0]) & (tl["start"] < w[1])]
    return tl


def plot_timeline(timeline: pd.DataFrame, *, window: tuple[float, float] | None = None,
                  instances: Sequence[int] | int | None = None, ax=None, label_min: float = 0.08,
                  title: str = "Engine steps over time"):
    """Gantt chart of engine steps: one lane per instance, one bar per timeline row in ``window``
    (seconds; default the whole run), coloured by :func:`step_kind`.

    Bars at least ``label_min`` of the visible time span wide are labelled: a decode stretch with
    its step count ("×72 steps"), a step holding prefill with its prefill tokens ("10,000 tok").
    Gaps between bars are idle time. Returns the matplotlib Axes.
    """
    rows = rows_in_window(timeline, window, instances)
    if ax is None:
        n_lanes = max(1, rows["instance"].nunique())
        _, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * n_lanes), layout="constrained")
    lanes = sorted(rows["instance"].unique())
    lane_of = {inst: k for k, inst in enumerate(lanes)}
    kinds = step_kind(rows)
    for kind, color in STEP_KINDS.items():
        sel = rows[kinds == kind]
        if len(sel):
            ax.barh([lane_of[i] for i in sel["instance"]], sel["end"] - sel["start"], left=sel["start"],
                    height=0.6, color=color, edgecolor="white", linewidth=0.6, label=f"{kind} step")
    w = _check_window(window)
    if w is None and len(rows):
        w = (float(rows["start"].min()), float(rows["end"].max()))
    if w is not None:
        ax.set_xlim(*w)
        span = w[1] - w[0]
        for (_, r), kind in zip(rows.iterrows(), kinds):
            lo, hi = max(r["start"], w[0]), min(r["end"], w[1])
            if hi - lo < label_min * span:
                continue
            text = f"{int(r['n_prefill_tokens']):,} tok" if kind != "decode" else f"×{int(r['steps'])} steps"
            ax.text((lo + hi) / 2, lane_of[r["instance"]], text, ha="center", va="center",
                    color="white", fontsize=8, clip_on=True)
    roles = rows.groupby("instance")["role"].first() if len(rows) else {}
    ax.set_yticks(range(len(lanes)), [f"instance {i} ({roles[i]})" for i in lanes])
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    if len(rows):
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


def _piecewise(rows: pd.DataFrame, column: str, idle: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a piecewise-constant curve: each row's value over [start, end]; between rows
    the value is 0 (``idle="zero"``) or the previous row's value (``idle="hold"``)."""
    if idle not in ("zero", "hold"):
        raise ValueError(f"idle must be 'zero' or 'hold', got {idle!r}")
    xs, ys = [], []
    prev_end = prev_v = None
    for s, e, v in zip(rows["start"].to_numpy(), rows["end"].to_numpy(), rows[column].to_numpy()):
        if prev_end is not None and s > prev_end:
            xs += [prev_end, s]
            ys += [0, 0] if idle == "zero" else [prev_v, prev_v]
        xs += [s, e]
        ys += [v, v]
        prev_end, prev_v = e, v
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def plot_timeline_series(timeline: pd.DataFrame, column: str = "batch", *, instance: int = 0,
                         window: tuple[float, float] | None = None, ax=None, label: str | None = None,
                         ylabel: str | None = None, title: str | None = None, idle: str = "zero",
                         **line_kw):
    """A timeline column of one instance over time, drawn piecewise constant: each row's value
    over its [start, end] (for a decode stretch ``kv_tokens_used`` is the stretch's peak). Between
    rows (the instance idle, or rows filtered out by the caller) the curve is 0 (``idle="zero"``)
    or holds the previous value (``idle="hold"``). ``column`` e.g. "batch" (requests in the
    step), "n_decode", "kv_tokens_used" (tokens). Returns the matplotlib Axes."""
    if column not in timeline.columns:
        raise KeyError(f"unknown timeline column {column!r}; known: {', '.join(timeline.columns)}")
    rows = rows_in_window(timeline, window, instance).sort_values("start")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3), layout="constrained")
    x, y = _piecewise(rows, column, idle)
    ax.plot(x, y, label=label, **line_kw)
    w = _check_window(window)
    if w is not None:
        ax.set_xlim(*w)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel or column)
    ax.set_title(title or f"{column} of instance {instance} over time")
    ax.grid(True, alpha=0.3)
    return ax


def plot_kv_usage(timeline: pd.DataFrame, *, instance: int = 0,
                  window: tuple[float, float] | None = None, ax=None, label: str | None = None,
                  title: str | None = None, **line_kw):
    """KV cache held by one instance over time (thousands of tokens), with its capacity as a
    dashed line of the same colour. Returns the matplotlib Axes."""
    rows = rows_in_window(timeline, window, instance)
    if not len(rows):
        raise ValueError(f"no timeline rows for instance {instance} in window {window!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3), layout="constrained")
    scaled = rows.assign(kv_k=rows["kv_tokens_used"] / 1e3)
    plot_timeline_series(scaled, "kv_k", instance=instance, window=window, ax=ax, label=label,
                         ylabel="KV cache held (thousand tokens)",
                         title=title or f"KV cache of instance {instance} over time", **line_kw)
    color = ax.lines[-1].get_color()
    cap = float(rows["kv_capacity"].iloc[0]) / 1e3
    ax.axhline(cap, color=color, ls="--", lw=1,
               label=f"capacity{' (' + label + ')' if label else ''}: {cap:,.0f}k tokens")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return ax


def plot_token_gaps(result, ids: Sequence[int], *, window: tuple[float, float] | None = None,
                    marks: Mapping[str, float] | None = None, ax=None,
                    title: str = "Time between tokens of chosen requests"):
    """For each request in ``ids``: its token gaps (TBT, ms) over time (s). Gap i is drawn as a
    flat segment spanning the interval it measures, from token i to token i+1, so a stall is a
    wide, tall plateau. ``marks`` = {label: time in seconds} draws labelled vertical lines (e.g.
    when a long prompt arrives). Returns the matplotlib Axes (one line per request)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    for i in ids:
        t = result.token_times(int(i))
        ax.step(t, np.r_[np.nan, np.diff(t) * 1e3], where="pre", lw=1.5, label=f"request {int(i)}")
    _marks(ax, marks)
    w = _check_window(window)
    if w is not None:
        ax.set_xlim(*w)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("gap to previous token (ms)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_token_progress(result, ids: Sequence[int], *, window: tuple[float, float] | None = None,
                        marks: Mapping[str, float] | None = None, ax=None,
                        title: str = "Tokens produced over time"):
    """For each request in ``ids``: output tokens produced so far against time (s), a staircase
    starting at the request's arrival; a stall is a flat stretch. ``marks`` as in
    :func:`plot_token_gaps`. Returns the matplotlib Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    arrival = result.requests["arrival"].to_numpy()
    for i in ids:
        t = result.token_times(int(i))
        ax.step(np.r_[arrival[int(i)], t], np.arange(len(t) + 1), where="post", label=f"request {int(i)}")
    _marks(ax, marks)
    w = _check_window(window)
    if w is not None:
        ax.set_xlim(*w)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("output tokens produced")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _marks(ax, marks: Mapping[str, float] | None) -> None:
    for label, t in (marks or {}).items():
        ax.axvline(t, color="black", ls=":", lw=1)
        ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", ha="left", va="top", fontsize=8)


def metric_values(result, metric: str) -> np.ndarray:
    """Values of ``metric`` (seconds) over the finished requests of ``result``, NaNs dropped:
    a per-request column ("ttft", "tpot", "e2e", "max_tbt", "p99_tbt", "queue_delay"), or "tbt"
    for every token gap of every finished request."""
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if metric == "tbt":
        return np.asarray(result.tbt, dtype=float)
    df = result.requests
    v = df.loc[df["status"] == "finished", metric].to_numpy(dtype=float)
    return v[~np.isnan(v)]


def plot_cdfs(results: Mapping[str, object], metrics: Sequence[str] = ("ttft", "tpot"), *,
              log: bool | str = "auto", fig=None, title: str | None = None):
    """Empirical CDFs of ``metrics`` (one panel each, x in seconds) for several results, one line
    per ``{label: Result}``. ``log``: True or False for every panel, or "auto" (default): a log
    x axis where a panel's values span more than a factor of 20 (latencies often span decades).
    Returns the matplotlib Figure."""
    if log not in (True, False, "auto"):
        raise ValueError(f"log must be True, False or 'auto', got {log!r}")
    if not results:
        raise ValueError("plot_cdfs needs at least one result")
    if not metrics:
        raise ValueError(f"plot_cdfs needs at least one metric; known: {', '.join(METRICS)}")
    if fig is None:
        fig = plt.figure(figsize=(5 * len(metrics), 3.8), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        values = {label: np.sort(metric_values(res, metric)) for label, res in results.items()}
        for label, v in values.items():
            ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=label)
        pooled = np.concatenate(list(values.values()))
        pooled = pooled[pooled > 0]
        use_log = log if log != "auto" else bool(len(pooled) and pooled.max() > 20 * pooled.min())
        if use_log:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_xlabel(f"{_METRIC_LABEL[metric]} (s{', log scale' if use_log else ''})")
        ax.set_ylabel("fraction of requests" if metric != "tbt" else "fraction of token gaps")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"CDF of {_METRIC_LABEL[metric]}")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def summary_table(results: Mapping[str, object], percentiles: Sequence[int] = (50, 99)):
    """One row per ``{label: Result}``: finished requests, throughput (req/s and output tok/s),
    TTFT and TPOT percentiles (ms, for display) and preemptions, from ``Result.summary()``
    (whose percentiles are 50, 90 and 99)."""
    rows = {}
    for label, res in results.items():
        s = res.summary()
        row = {"finished": s["finished"], "throughput (req/s)": s["throughput_rps"],
               "output tok/s": s["throughput_tok_s"]}
        for m in ("ttft", "tpot"):
            for p in percentiles:
                key = f"{m}_p{p}"
                if key not in s:
                    raise KeyError(f"percentile {p} not in Result.summary(); use 50, 90 or 99")
                row[f"{m.upper()} P{p} (ms)"] = s[key] * 1e3
        row["preemptions"] = s["preemptions"]
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")
