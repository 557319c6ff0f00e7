"""Plots for prefill and decode pools (chapter 05): the architecture, one request's path through
a disaggregated cluster, goodput of xPyD configurations, pool sizing heat maps, and decode on
different cards.

Every function takes SI units (seconds, req/s, bytes/s) and converts only for display
(milliseconds on time axes). Each returns the matplotlib Axes (or array of Axes) it drew on.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from .. import hardware as hw

__all__ = ["plot_architecture", "request_phases", "plot_request_path", "plot_goodput_configs",
           "plot_ratio_sweep", "plot_pool_growth", "plot_decode_tpot", "plot_hardware"]

_PHASE_COLOR = {"queue": "0.85", "prefill": "tab:red", "KV transfer": "tab:purple",
                "decode": "tab:blue"}


def _box(ax, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="black", lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def _arrow(ax, a: tuple[float, float], b: tuple[float, float], text: str = "", color: str = "black",
           lw: float = 1.5) -> None:
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color=color, lw=lw))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.035, text, ha="center", va="bottom",
                fontsize=8, color=color)


def plot_architecture(n_prefill: int = 2, n_decode: int = 1, link: str = "KV link", ax=None,
                      title: str | None = None):
    """Box-and-arrow diagram of an xPyD deployment: a router sends each request to a prefill
    instance; the KV cache crosses ``link`` to a decode instance, which streams tokens 2… back.
    ``link`` is only a label."""
    if n_prefill < 1 or n_decode < 1:
        raise ValueError(f"need at least one prefill and one decode instance, got {n_prefill}, {n_decode}")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.2))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    _box(ax, 0.01, 0.42, 0.13, 0.16, "clients", "0.95")
    _box(ax, 0.2, 0.42, 0.12, 0.16, "router", "0.9")
    _arrow(ax, (0.14, 0.52), (0.2, 0.52), "prompt")

    def column(n: int, x: float, label: str, color: str) -> list[float]:
        h = min(0.16, 0.7 / n)
        ys = [0.5 + (n - 1) * 0.5 * (h + 0.06) - i * (h + 0.06) - h / 2 for i in range(n)]
        for i, y in enumerate(ys):
            _box(ax, x, y, 0.16, h, f"{label} {i}\n1 GPU", color)
        ax.text(x + 0.08, max(ys) + h + 0.04, f"{label} pool ({n})", ha="center", fontsize=9,
                fontweight="bold")
        return [y + h / 2 for y in ys]

    py = column(n_prefill, 0.4, "prefill", "#f6c9c4")
    dy = column(n_decode, 0.74, "decode", "#c7dcf0")
    for y in py:
        _arrow(ax, (0.32, 0.5), (0.4, y))
    for i, y in enumerate(py):
        for j, z in enumerate(dy):
            _arrow(ax, (0.56, y), (0.74, z), f"KV over {link}" if i == j == 0 else "", color="tab:purple")
    ax.add_patch(FancyArrowPatch((0.82, min(dy) - 0.09), (0.07, 0.4), connectionstyle="arc3,rad=-0.25",
                                 arrowstyle="-|>", mutation_scale=14, color="tab:blue", lw=1.5))
    ax.text(0.45, 0.03, "tokens 1, 2, 3, … stream back to the client", ha="center", fontsize=8,
            color="tab:blue")
    ax.set_title(title or f"{n_prefill}P{n_decode}D: prefill and decode on separate GPUs, joined by a KV link")
    return ax


def request_phases(result, i: int) -> pd.DataFrame:
    """Phases of request ``i`` in a disaggregated :class:`~pdlib.sim.Result`, as rows
    ``phase, start, end`` (seconds since the run began):

    * queue: arrival → its first prefill step starts;
    * prefill: → prefill end (the prefill also computes token 1);
    * KV transfer: prefill end → KV landed on the decode instance (includes any wait for decode
      memory: the simulator's ``transfer_time``);
    * decode: KV landed → last token.

    Prefill end = t₁ − transfer when token 1 is delivered with the KV (``first_token="decode"``),
    t₁ otherwise (``"prefill"``)."""
    row = result.requests.loc[i]
    if row.status != "finished":
        raise ValueError(f"request {i} did not finish ({row.reason}); pick a finished request")
    if not np.isfinite(row.transfer_time):
        raise ValueError("request_phases needs a disaggregated result (no KV transfer recorded)")
    t1 = row.arrival + row.ttft
    with_kv = getattr(result.cluster, "first_token", "decode") == "decode"
    pre_end = t1 - row.transfer_time if with_kv else t1
    landed = pre_end + row.transfer_time
    start = row.arrival + row.queue_delay
    return pd.DataFrame({"phase": ["queue", "prefill", "KV transfer", "decode"],
                         "start": [row.arrival, start, pre_end, landed],
                         "end": [start, pre_end, landed, row.arrival + row.e2e]})


def plot_request_path(result, ids: Sequence[int], ax=None, title: str | None = None):
    """Gantt chart of requests ``ids`` of a disaggregated run: one row per request, coloured by
    phase (:func:`request_phases`), token times as ticks. Time axis in milliseconds."""
    ids = list(ids)
    if not ids:
        raise ValueError("plot_request_path needs at least one request id")
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.55 * len(ids) + 2.0), layout="constrained")
    t0 = min(float(result.requests.arrival[i]) for i in ids)
    seen = set()
    for row, i in enumerate(ids):
        ph = request_phases(result, i)
        for p in ph.itertuples():
            if p.end > p.start:
                ax.barh(row, (p.end - p.start) * 1e3, left=(p.start - t0) * 1e3, height=0.5,
                        color=_PHASE_COLOR[p.phase], label=None if p.phase in seen else p.phase)
                seen.add(p.phase)
        tt = result.token_times(i)
        ax.plot((tt - t0) * 1e3, np.full(len(tt), row), "|", color="black", ms=9,
                label=None if "token" in seen else "token")
        seen.add("token")
    ax.set_yticks(range(len(ids)), [f"request {i}" for i in ids])
    ax.invert_yaxis()
    ax.set_xlabel("time since the first of these arrivals (ms)")
    ax.set_title(title or "The path of a request: prefill instance → KV link → decode instance")
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.grid(True, axis="x", alpha=0.3)
    return ax


def plot_goodput_configs(table: pd.DataFrame, colocated_per_gpu: float, paper: dict | None = None,
                         ax=None, title: str | None = None):
    """Goodput per GPU (req/s/GPU) of each xPyD row of ``table`` (columns config, per_gpu) as bars,
    the colocated goodput per GPU as a dashed line, and, when ``paper`` is given, DistServe's
    published colocated and disaggregated values as dotted lines."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5))
    best = table.per_gpu.idxmax()
    colors = ["tab:green" if k == best else "tab:gray" for k in table.index]
    xs = np.arange(len(table))
    ax.bar(xs, table.per_gpu, color=colors)
    ax.set_xticks(xs, table.config)
    for x, v in zip(xs, table.per_gpu):
        ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(colocated_per_gpu, color="black", ls="--", lw=1.5,
               label=f"colocated, ours: {colocated_per_gpu:.1f}")
    if paper:
        ax.axhline(paper["colocated_per_gpu"], color="tab:orange", ls=":", lw=1.5,
                   label=f"colocated, DistServe: {paper['colocated_per_gpu']:g}")
        ax.axhline(paper["disaggregated_per_gpu"], color="tab:green", ls=":", lw=1.5,
                   label=f"{paper['best_config']}, DistServe: {paper['disaggregated_per_gpu']:g}")
    ax.set_xlabel("configuration (x prefill + y decode GPUs)")
    ax.set_ylabel("goodput per GPU (req/s/GPU)")
    ax.set_title(title or "Goodput per GPU at 90% SLO attainment (best in green)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def plot_ratio_sweep(df: pd.DataFrame, ax=None, title: str | None = None):
    """Goodput per GPU against the configuration, one line per prompt/output shape (columns shape,
    config, per_gpu, pd_ratio, best of :func:`pdlib.reproduce.pd_ratio_sweep`). Configurations
    are ordered by their P:D ratio; each shape's best is circled."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5))
    order = (df.drop_duplicates("config").sort_values(["pd_ratio", "n_prefill"]).config.tolist())
    x = {c: k for k, c in enumerate(order)}
    for shape, g in df.groupby("shape", sort=False):
        g = g.assign(_x=g.config.map(x)).sort_values("_x")
        line, = ax.plot(g._x, g.per_gpu, "o-", label=f"prompt/output = {shape}")
        b = g[g.best]
        ax.plot(b._x, b.per_gpu, "o", ms=16, mfc="none", mec=line.get_color(), mew=2)
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel("configuration, ordered by P:D ratio →")
    ax.set_ylabel("goodput per GPU (req/s/GPU)")
    ax.set_title(title or "The best P:D ratio moves with the prompt:output shape (best circled)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return ax


def plot_pool_growth(df: pd.DataFrame, ax=None, title: str | None = None):
    """Heat map of SLO attainment over prefill (rows) × decode (columns) pool sizes (columns
    n_prefill, n_decode, attainment, meets, cheapest of :func:`pdlib.reproduce.pool_growth`);
    cells meeting 90% are outlined, the cheapest starred."""
    grid = df.pivot(index="n_prefill", columns="n_decode", values="attainment")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(grid.to_numpy(), cmap="RdYlGn", vmin=0, vmax=1, origin="lower", aspect="auto")
    for r in df.itertuples():
        yi, xi = grid.index.get_loc(r.n_prefill), grid.columns.get_loc(r.n_decode)
        ax.text(xi, yi, f"{r.attainment:.2f}" + (" ★" if r.cheapest else ""), ha="center",
                va="center", fontsize=9, fontweight="bold" if r.meets else "normal")
        if r.meets:
            ax.add_patch(plt.Rectangle((xi - 0.5, yi - 0.5), 1, 1, fill=False, ec="black", lw=1.5))
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_yticks(range(len(grid.index)), grid.index)
    ax.set_xlabel("decode instances")
    ax.set_ylabel("prefill instances")
    ax.set_title(title or "SLO attainment by pool sizes\n(outlined: ≥ 90%; ★ fewest GPUs)")
    plt.colorbar(im, ax=ax, label="fraction of requests meeting the SLO")
    return ax


def plot_decode_tpot(df: pd.DataFrame, tpot_slo: float | None = None, ax=None, title: str | None = None):
    """Decode step time (≈ TPOT, in ms) against batch size for each GPU (columns gpu, mem_type,
    mem_bw, batch, step_s of :func:`pdlib.reproduce.decode_tpot_table`); GDDR cards dashed. A
    horizontal line marks ``tpot_slo`` (seconds) when given."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    for gpu, g in df.groupby("gpu", sort=False):
        mt, bw = g.mem_type.iloc[0], g.mem_bw.iloc[0]
        ax.plot(g.batch, g.step_s * 1e3, marker="o", ls="--" if mt.upper().startswith("GDDR") else "-",
                label=f"{gpu} ({mt}, {bw / 1e9:,.0f} GB/s)")
    if tpot_slo is not None:
        ax.axhline(tpot_slo * 1e3, color="black", ls=":", label=f"TPOT SLO {tpot_slo * 1e3:g} ms")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(df.batch.unique()), [str(b) for b in sorted(df.batch.unique())])
    ax.set_xlabel("decode batch size (requests, log scale)")
    ax.set_ylabel("decode step time ≈ TPOT (ms)")
    ax.set_title(title or "Decode speed is memory bandwidth: step time per card")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return ax


def plot_hardware(df: pd.DataFrame, axes=None, title: str | None = None):
    """Two panels for prefill/decode GPU pairs (columns prefill_gpu, decode_gpu, config, per_gpu,
    req_per_usd of :func:`pdlib.reproduce.decode_hardware`): goodput per GPU (req/s/GPU) and
    requests per dollar (the catalog's dated on-demand prices), each bar labelled with its
    configuration; pairs that decode on an L40S in orange, pairs that prefill on one in green."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    labels = [f"P {p}\nD {d}" for p, d in zip(df.prefill_gpu, df.decode_gpu)]
    colors = ["tab:orange" if "L40S" in d else "tab:green" if "L40S" in p else "tab:blue"
              for p, d in zip(df.prefill_gpu, df.decode_gpu)]
    dates = sorted({hw.gpu(g).price_date for g in set(df.prefill_gpu) | set(df.decode_gpu)} - {""})
    priced = f"prices read {', '.join(dates)}" if dates else "catalog prices"
    for ax, col, ylabel in ((axes[0], "per_gpu", "goodput per GPU (req/s/GPU)"),
                            (axes[1], "req_per_usd", f"requests per dollar ({priced})")):
        ax.bar(np.arange(len(df)), df[col], color=colors)
        ax.set_xticks(np.arange(len(df)), labels)
        for x, (v, c) in enumerate(zip(df[col], df.config)):
            ax.text(x, v, f"{v:,.1f}\n{c}" if col == "per_gpu" else f"{v:,.0f}\n{c}", ha="center",
                    va="bottom", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, df[col].max() * 1.25)
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_title("Goodput per GPU (xPyD with the most requests per dollar)")
    axes[1].set_title("Goodput per dollar (orange: L40S decode; green: L40S prefill)")
    if title:
        plt.gcf().suptitle(title)
    return axes
