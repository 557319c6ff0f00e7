"""Plots and tables of chapter 08, "How good is the model?": the pure roofline and the calibrated
cost model set beside published real-GPU measurements (:mod:`pdlib.published`).

Inputs are the frames :func:`pdlib.published.validate` returns (one line per measured row:
``measured_s``, ``calibrated_s``, ``roofline_s`` and their signed relative errors) and
:class:`pdlib.CostModel` objects; every time is in seconds, and plots show milliseconds where that
reads better and say so on their axes. Nothing here fits or predicts by itself: the numbers come
from :mod:`pdlib.published`, :mod:`pdlib.cost` and :mod:`pdlib.chunking`.

* :func:`validation_frame` — :func:`pdlib.published.validate` with each row's step shape (batch,
  new tokens per item, mean context, number of steps) added for plotting.
* :func:`waterfall_table` / :func:`plot_waterfall` / :func:`plot_waterfalls` — from the pure
  roofline to the calibrated time of one step, one measured term at a time (the differences of
  :attr:`pdlib.StepCost.breakdown`), and the measured time beside it.
* :func:`plot_step_sweeps` — prefill step time against tokens and decode step time against batch:
  measured points, the roofline and the calibrated model.
* :func:`plot_error_ratios` — predicted ÷ measured for every row against its measured time.
* :func:`chunking_comparison` / :func:`plot_chunking` — Sarathi-Serve's measured chunking overhead
  against the roofline's and the calibrated model's (:func:`pdlib.chunking.overhead_vs_sarathi`).
* :func:`plot_error_summary` — median and 90th-percentile absolute relative error of the two
  models, from :func:`pdlib.published.error_table`.

Figures are sized for a book column (7.5 in wide, 120 dpi, 9-point text or larger).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .. import chunking as ch
from .. import published as pb
from ..cost import CostModel

__all__ = ["WATERFALL_TERMS", "MODEL_COLORS", "validation_frame", "waterfall_table", "plot_waterfall",
           "plot_waterfalls", "plot_step_sweeps", "plot_error_ratios", "chunking_comparison",
           "plot_chunking", "plot_error_summary"]

#: The measured terms of a waterfall, in the order it adds them to the pure roofline: the key of
#: :attr:`pdlib.StepCost.breakdown` each difference is taken from, and its label.
WATERFALL_TERMS = (("roofline", "fitted η_F, η_W"), ("efficiency", "GEMM + attention efficiency"),
                   ("all_reduce", "fitted all-reduce"), ("per_layer", "per-layer cost"),
                   ("per_step", "per-step cost"), ("per_item", "per-request cost"),
                   ("context", "per-cached-token cost"))

#: Colours of the measured values and the two models in every plot of this module.
MODEL_COLORS = {"measured": "black", "roofline": "0.55", "calibrated": "tab:blue"}
_TERM_COLORS = {"roofline": "tab:cyan", "efficiency": "tab:purple", "all_reduce": "tab:green",
                "per_layer": "tab:olive", "per_step": "tab:orange", "per_item": "tab:brown",
                "context": "tab:red"}
_WIDTH, _DPI, _FONT = 7.5, 120, 9


def _fig(nrows: int, ncols: int, height: float, **kw):
    return plt.subplots(nrows, ncols, figsize=(_WIDTH, height), dpi=_DPI, layout="constrained",
                        squeeze=False, **kw)


def _need(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} needs columns {list(cols)}; missing {missing} (have {list(df.columns)})")


# ---------------------------------------------------------------------- tables
def validation_frame(source: str, gpu, row_list=None, **validate_kw) -> pd.DataFrame:
    """:func:`pdlib.published.validate` of ``source`` on ``gpu`` (``validate_kw``: model_source,
    split, model_gpu), with each row's shape added: ``batch`` (items in its first step),
    ``new_tokens`` (new tokens of the first item: the prompt of a prefill, 1 for a decode),
    ``context`` (mean cached tokens of the first step's items) and ``steps`` (steps the measurement
    adds up; a chunked prefill has several). A Vidur layer row has batch 1, its token count as
    ``new_tokens``, context 0 and one step."""
    rl = pb.rows(source, gpu) if row_list is None else list(row_list)
    df = pb.validate(source, gpu, row_list=rl, **validate_kw)
    shape = []
    for r in rl:
        m = r.measurement
        if m.kind == "layer":
            shape.append((1, m.tokens, 0.0, 1))
        else:
            first = m.steps[0]
            shape.append((len(first), first[0][0], float(np.mean([L for _, L in first])), len(m.steps)))
    s = pd.DataFrame(shape, columns=["batch", "new_tokens", "context", "steps"], index=df.index)
    return pd.concat([df, s], axis=1)


def waterfall_table(calibrated: CostModel, items, roofline: CostModel | None = None,
                    measured: float | None = None) -> pd.DataFrame:
    """From the pure roofline to the calibrated time of the step ``items`` (``(new_tokens,
    context_tokens)`` pairs), one measured term at a time.

    ``roofline`` defaults to the pure roofline of the same deployment, ``CostModel(model, gpu,
    tp)`` (η_F 0.6, η_W 0.8, link all-reduce, no measured term). Each term's seconds are the
    difference of the two models' :attr:`~pdlib.StepCost.breakdown` entries (:data:`WATERFALL_TERMS`;
    "fitted η_F, η_W" is the change of the roofline part, negative when the fit is faster than the
    defaults), so the terms add up exactly to ``calibrated − roofline``.

    Columns: ``term`` (label), ``key`` (breakdown key, or "pure roofline", "calibrated",
    "measured"), ``kind`` ("total" or "term"), ``seconds`` (a total's value, a term's difference),
    ``start`` and ``end`` (where its bar begins and ends, seconds). With ``measured`` (seconds) a
    last total row is added."""
    roofline = roofline or CostModel(calibrated.model, calibrated.gpu, tp=calibrated.tp,
                                     dtype=calibrated.dtype, kv_dtype=calibrated.kv_dtype)
    cal, roof = calibrated.step(items), roofline.step(items)
    cb, rb = cal.breakdown, roof.breakdown
    rows = [("pure roofline", "pure roofline", "total", float(roof.time), 0.0, float(roof.time))]
    at = float(roof.time)
    for key, label in WATERFALL_TERMS:
        d = float(cb[key]) - float(rb[key])
        rows.append((label, key, "term", d, at, at + d))
        at += d
    rows.append(("calibrated", "calibrated", "total", float(cal.time), 0.0, float(cal.time)))
    if measured is not None:
        rows.append(("measured", "measured", "total", float(measured), 0.0, float(measured)))
    return pd.DataFrame(rows, columns=["term", "key", "kind", "seconds", "start", "end"])


# ---------------------------------------------------------------------- waterfalls
def _ms(seconds: float, sign: bool = False) -> str:
    """Milliseconds for a bar label: 3 significant figures, thousands separated, "0" for < 5 µs."""
    v = seconds * 1e3
    if abs(v) < 0.005:
        return "0"
    digits = max(0, 2 - int(np.floor(np.log10(abs(v)))))
    return f"{v:{'+' if sign else ''},.{digits}f}"


def plot_waterfall(table: pd.DataFrame, ax=None, title: str = "", labels: bool = True):
    """A horizontal waterfall of :func:`waterfall_table`: the pure roofline's bar, each term's bar
    from where the previous one ended (hatched when negative), the calibrated total and, when the
    table has one, the measured total with a dashed line through every row, so the gap left at each
    stage is the distance to it. Milliseconds on the x axis; each bar is labelled with its value.
    ``labels=False`` hides the y tick labels (for panels that share them). Returns the Axes."""
    _need(table, ("term", "key", "kind", "seconds", "start", "end"), "plot_waterfall")
    if ax is None:
        _, axes = _fig(1, 1, 3.4)
        ax = axes[0, 0]
    y = np.arange(len(table))[::-1]
    peak = float(np.max(table[["start", "end"]].to_numpy())) * 1e3
    for yi, r in zip(y, table.itertuples(index=False)):
        lo, hi = sorted((r.start * 1e3, r.end * 1e3))
        if r.kind == "total":
            color = MODEL_COLORS.get(r.key, MODEL_COLORS["roofline"] if r.key == "pure roofline" else "0.3")
            ax.barh(yi, hi - lo, left=lo, color=color, height=0.7)
            text = _ms(r.seconds)
        else:
            ax.barh(yi, hi - lo, left=lo, color=_TERM_COLORS.get(r.key, "0.5"), height=0.7,
                    hatch="///" if r.seconds < 0 else None, edgecolor="white" if r.seconds < 0 else None)
            text = _ms(r.seconds, sign=True)
        ax.text(hi + 0.015 * peak, yi, text, va="center", fontsize=_FONT,
                bbox=dict(fc="white", ec="none", pad=0.6, alpha=0.85))
    meas = table[table.key == "measured"]
    if len(meas):
        ax.axvline(float(meas.seconds.iloc[0]) * 1e3, color="black", ls="--", lw=1)
    ax.set_yticks(y, table.term if labels else [""] * len(table), fontsize=_FONT)
    ax.set_xlim(0, peak * 1.22)
    ax.set_xlabel("step time (ms)", fontsize=_FONT)
    ax.tick_params(axis="x", labelsize=_FONT)
    if title:
        ax.set_title(title, fontsize=_FONT + 1)
    return ax


def plot_waterfalls(tables: Mapping[str, pd.DataFrame], ncols: int = 2):
    """One :func:`plot_waterfall` panel per ``{title: table}``, ``ncols`` to a row; the y labels
    are shown on the first column only (every table has the same rows). Returns the Figure."""
    if not tables:
        raise ValueError("plot_waterfalls needs at least one table")
    n = len(tables)
    nrows = -(-n // ncols)
    fig, axes = _fig(nrows, ncols, 3.2 * nrows + 0.3)
    for i, (title, t) in enumerate(tables.items()):
        plot_waterfall(t, ax=axes.flat[i], title=title, labels=i % ncols == 0)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig


# ---------------------------------------------------------------------- sweeps and ratios
def _split_marker(ax, x, y, split, marker, label=None, **kw):
    fit = np.asarray(split) == "fit"
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ax.scatter(x[fit], y[fit], marker=marker, color=MODEL_COLORS["measured"], s=28, zorder=3, **kw)
    ax.scatter(x[~fit], y[~fit], marker=marker, facecolor="white", edgecolor=MODEL_COLORS["measured"],
               s=28, zorder=3, **kw)


def _model_lines(ax, g: pd.DataFrame, x: str) -> None:
    g = g.sort_values(x)
    ax.plot(g[x], g.roofline_s * 1e3, color=MODEL_COLORS["roofline"], ls="--", lw=1.6)
    ax.plot(g[x], g.calibrated_s * 1e3, color=MODEL_COLORS["calibrated"], lw=1.8)


def plot_step_sweeps(frames: Mapping[str, pd.DataFrame]):
    """Step time against size for each ``{title: frame}`` (frames of :func:`validation_frame` of an
    end-to-end source), one column per frame: top, prefill steps against the tokens in the step
    (circles one prompt, triangles a batch of equal prompts); bottom, decode steps against the
    batch. Filled markers are fit rows, hollow ones test rows (never seen by the fit). Lines join
    the two models' predictions: the dashed grey roofline and the solid calibrated model, through
    the one-prompt prefills and through the decodes at the most common context. Prefill on log-log
    axes; decode on a log batch axis and a linear time axis from 0, so the roofline's missing
    fixed cost shows as the gap it is. Milliseconds. Returns the Figure."""
    if not frames:
        raise ValueError("plot_step_sweeps needs at least one frame")
    fig, axes = _fig(2, len(frames), 5.4)
    for j, (title, df) in enumerate(frames.items()):
        _need(df, ("phase", "x", "split", "batch", "context", "measured_s", "calibrated_s", "roofline_s"),
              "plot_step_sweeps")
        pre, dec = df[df.phase == "prefill"], df[df.phase == "decode"]
        ax = axes[0, j]
        one, many = pre[pre.batch == 1], pre[pre.batch > 1]
        _model_lines(ax, one.drop_duplicates("x"), "x")
        _split_marker(ax, one.x, one.measured_s * 1e3, one.split, "o")
        _split_marker(ax, many.x, many.measured_s * 1e3, many.split, "^")
        ax.set_title(title, fontsize=_FONT + 1)
        ax.set_xlabel("prefill tokens in the step", fontsize=_FONT)
        ax = axes[1, j]
        if len(dec):
            ctx = dec.context.round().mode().iloc[0]
            main = dec[dec.context.round() == ctx]
            _model_lines(ax, main.drop_duplicates("batch"), "batch")
            _split_marker(ax, dec.batch, dec.measured_s * 1e3, dec.split, "s")
        ax.set_xlabel("decode batch (requests)", fontsize=_FONT)
        for a in axes[:, j]:
            a.set_xscale("log")
            a.tick_params(labelsize=_FONT)
            a.grid(True, which="major", alpha=0.3)
        axes[0, j].set_yscale("log")
        axes[1, j].set_ylim(0, None)
    axes[0, 0].set_ylabel("prefill step (ms)", fontsize=_FONT)
    axes[1, 0].set_ylabel("decode step (ms)", fontsize=_FONT)
    handles = [Line2D([], [], color=MODEL_COLORS["roofline"], ls="--", lw=1.6, label="pure roofline"),
               Line2D([], [], color=MODEL_COLORS["calibrated"], lw=1.8, label="calibrated"),
               Line2D([], [], marker="o", color="black", ls="", label="measured, fit row"),
               Line2D([], [], marker="o", markerfacecolor="white", color="black", ls="", label="measured, test row"),
               Line2D([], [], marker="^", markerfacecolor="white", color="black", ls="",
                      label="batch of prompts")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=_FONT, frameon=False)
    return fig


_PHASE_MARKER = {"prefill": "o", "decode": "s", "mixed": "D", "chunked": "v", "layer": "."}


def plot_error_ratios(frames: Mapping[str, pd.DataFrame], ncols: int = 3):
    """Predicted ÷ measured time of every row against its measured time, one panel per ``{title:
    frame}`` (frames of :func:`pdlib.published.validate`): grey hollow markers the pure roofline,
    blue filled ones the calibrated model, the marker's shape the row's phase; the band is ±10%.
    Log axes. Returns the Figure."""
    if not frames:
        raise ValueError("plot_error_ratios needs at least one frame")
    n = len(frames)
    nrows = -(-n // ncols)
    fig, axes = _fig(nrows, ncols, 2.5 * nrows + 0.6, sharey=True)
    phases = []
    for ax, (title, df) in zip(axes.flat, frames.items()):
        _need(df, ("phase", "measured_s", "calibrated_s", "roofline_s"), "plot_error_ratios")
        t = df.measured_s.to_numpy() * 1e3
        for ph, g in df.groupby("phase", sort=False):
            m = _PHASE_MARKER.get(ph, "o")
            size = 6 if ph == "layer" else 22
            ax.scatter(g.measured_s * 1e3, g.roofline_s / g.measured_s, marker=m, s=size, facecolor="none",
                       edgecolor=MODEL_COLORS["roofline"], linewidths=0.8, alpha=0.8)
            ax.scatter(g.measured_s * 1e3, g.calibrated_s / g.measured_s, marker=m, s=size,
                       color=MODEL_COLORS["calibrated"], alpha=0.8 if ph != "layer" else 0.4)
            phases.append(ph)
        ax.axhspan(0.9, 1.1, color="tab:green", alpha=0.12, lw=0)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(t.min() / 1.5, t.max() * 1.5)
        ax.set_title(title, fontsize=_FONT + 1)
        ax.set_xlabel("measured (ms)", fontsize=_FONT)
        ax.tick_params(labelsize=_FONT)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted ÷ measured", fontsize=_FONT)
    ax0 = axes[0, 0]
    ax0.set_ylim(0.12, 2.5)
    ticks = [0.2, 0.5, 1.0, 2.0]
    ax0.set_yticks(ticks, [f"{v:g}" for v in ticks])
    ax0.yaxis.set_minor_formatter(plt.NullFormatter())
    handles = [Line2D([], [], marker="o", ls="", markerfacecolor="none", color=MODEL_COLORS["roofline"],
                      label="pure roofline"),
               Line2D([], [], marker="o", ls="", color=MODEL_COLORS["calibrated"], label="calibrated"),
               Patch(color="tab:green", alpha=0.25, label="±10%")]
    handles += [Line2D([], [], marker=_PHASE_MARKER[p], ls="", color="0.3", label=p)
                for p in _PHASE_MARKER if p in phases]
    free = list(axes.flat[n:])
    for ax in free:
        ax.set_visible(False)
    if free:                                             # the legend takes the first empty panel
        free[0].set_visible(True)
        free[0].axis("off")
        free[0].legend(handles=handles, loc="center", fontsize=_FONT, frameon=False)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=_FONT, frameon=False)
    return fig


# ---------------------------------------------------------------------- chunking
def chunking_comparison(calibrated: CostModel, roofline: CostModel | None = None) -> pd.DataFrame:
    """Sarathi-Serve's measured chunking overhead (Yi-34B, tp 2, two A100 PCIe) beside the pure
    roofline's and the ``calibrated`` model's, from :func:`pdlib.chunking.overhead_vs_sarathi`:
    one row per prompt and chunk size that cuts it into more than one step, columns ``prompt``, ``chunk``, ``steps``,
    ``measured``, ``roofline``, ``calibrated`` (extra time over the unchunked prefill, each of its
    own unchunked time: 0.15 = 15% longer) and ``split`` ("fit" or "test": whether the calibrated
    model's fit saw this prompt's rows, :func:`pdlib.published.rows`)."""
    r = ch.overhead_vs_sarathi(roofline)
    c = ch.overhead_vs_sarathi(calibrated)
    split = {row.x: row.split for row in pb.rows("sarathi") if row.phase == "chunked"}
    out = pd.DataFrame({"prompt": r.prompt, "chunk": r.chunk, "steps": r.steps,
                        "measured": r.measured_relative - 1, "roofline": r.model_relative - 1,
                        "calibrated": c.model_relative - 1})
    out["split"] = out.prompt.map(split)
    return out[out.steps > 1].reset_index(drop=True)


def plot_chunking(table: pd.DataFrame, ncols: int = 4):
    """Grouped bars of :func:`chunking_comparison`: one panel per prompt, for each chunk size the
    extra prefill time (% of the unchunked prefill) by the pure roofline, by the calibrated model
    and as measured. Panel titles say whether the prompt's rows were fit or test rows. Returns the
    Figure."""
    _need(table, ("prompt", "chunk", "measured", "roofline", "calibrated", "split"), "plot_chunking")
    prompts = sorted(table.prompt.unique())
    nrows = -(-len(prompts) // ncols)
    fig, axes = _fig(nrows, ncols, 2.7 * nrows + 0.5, sharey=True)
    series = (("roofline", MODEL_COLORS["roofline"]), ("calibrated", MODEL_COLORS["calibrated"]),
              ("measured", MODEL_COLORS["measured"]))
    w = 0.27
    for ax, p in zip(axes.flat, prompts):
        g = table[table.prompt == p].sort_values("chunk")
        x = np.arange(len(g))
        for k, (col, color) in enumerate(series):
            ax.bar(x + (k - 1) * w, g[col] * 100, w, color=color, label=col)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, [f"{int(c):,}" for c in g.chunk], fontsize=_FONT)
        ax.set_title(f"{p:,}-token prompt ({g.split.iloc[0]})", fontsize=_FONT)
        ax.set_xlabel("chunk (tokens)", fontsize=_FONT)
        ax.tick_params(labelsize=_FONT)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("extra prefill time (%)", fontsize=_FONT)
    for ax in axes.flat[len(prompts):]:
        ax.set_visible(False)
    handles = [Patch(color=c, label=("pure roofline" if s == "roofline" else s)) for s, c in series]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=_FONT, frameon=False)
    return fig


# ---------------------------------------------------------------------- error summary
def _error_lines(ax, table: pd.DataFrame, target: float) -> None:
    labels = [" · ".join(str(v) for v in (k if isinstance(k, tuple) else (k,))) for k in table.index]
    y = np.arange(len(table))[::-1]
    for dy, name in ((0.15, "calibrated"), (-0.15, "roofline")):
        med, p90 = table[f"{name}_median"].to_numpy() * 100, table[f"{name}_p90"].to_numpy() * 100
        color = MODEL_COLORS[name]
        ax.hlines(y + dy, med, p90, color=color, lw=1.6)
        ax.scatter(med, y + dy, color=color if name == "calibrated" else "white", edgecolor=color, s=34,
                   zorder=3)
    ax.axvline(target * 100, color="black", ls=":", lw=1)
    ax.set_yticks(y, labels, fontsize=_FONT)
    ax.set_ylim(-0.6, len(table) - 0.4)
    ax.tick_params(axis="x", labelsize=_FONT)
    ax.grid(True, axis="x", alpha=0.3)


def plot_error_summary(tables, target: float = 0.10):
    """Median absolute relative error (dot) and 90th percentile (end of the whisker) of the
    calibrated model (blue, filled) and the pure roofline (grey, hollow), one line per row of each
    table (an
    :func:`pdlib.published.error_table`; its index, joined by " · ", labels the lines). ``tables``
    is one such table or ``{panel title: table}``, drawn as panels stacked on one x axis. A dotted
    line marks ``target`` (the out-of-sample goal, 10%). Returns the Figure."""
    if isinstance(tables, pd.DataFrame):
        tables = {"": tables}
    if not tables:
        raise ValueError("plot_error_summary needs at least one table")
    for t in tables.values():
        _need(t, ("calibrated_median", "calibrated_p90", "roofline_median", "roofline_p90"),
              "plot_error_summary")
    sizes = [len(t) for t in tables.values()]
    fig, axes = _fig(len(tables), 1, 0.27 * sum(sizes) + 0.55 * len(tables) + 0.9, sharex=True,
                     gridspec_kw={"height_ratios": [n + 0.8 for n in sizes]})
    for ax, (title, t) in zip(axes[:, 0], tables.items()):
        _error_lines(ax, t, target)
        if title:
            ax.set_title(title, fontsize=_FONT + 1, loc="left")
    axes[-1, 0].set_xlim(0, None)
    axes[-1, 0].set_xlabel("|predicted − measured| ÷ measured (%)", fontsize=_FONT)
    handles = [Line2D([], [], marker="o", color=MODEL_COLORS["calibrated"], label="calibrated"),
               Line2D([], [], marker="o", markerfacecolor="white", color=MODEL_COLORS["roofline"],
                      label="pure roofline"),
               Line2D([], [], color="black", ls=":", label=f"{target:.0%} target")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=_FONT, frameon=False,
               title="dot: median; whisker: to the 90th percentile", title_fontsize=_FONT)
    return fig
