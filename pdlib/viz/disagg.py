"""Plots for the real disaggregated run (chapter 07): the processes and the KV path, one run's
timeline (prefill compute, each KV message, the decode steps), and the emulated-link sweep.

The functions read :class:`pdlib.disagg.RequestResult` objects (or tables built from them) by
attribute only, so this module imports neither torch nor :mod:`pdlib.disagg`. Times come in
seconds and bandwidths in bytes/s; axes show milliseconds and MB/s. Each function returns the
matplotlib Axes (or array of Axes) it drew on.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["KV_PATHS", "plot_disagg_processes", "plot_run_timeline", "plot_link_sweep"]

#: What the KV bytes go through on each transport (``pdlib.disagg.pick_transport`` names).
KV_PATHS = {
    "gloo": "gloo socket: send → staging buffer → copy into the blocks",
    "nccl": "NCCL GPU → GPU: staging buffer → copy into the blocks",
    "shared": "written in place into the decode worker's block pool",
}

_PREFILL, _DECODE, _FRONT, _POOL = "#f6c9c4", "#c7dcf0", "0.92", "#e4d4f0"


def _box(ax, x, y, w, h, text, color, fontsize=9, weight="normal", va="center", ls="-"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01", fc=color, ec="black",
                                lw=1.2, ls=ls))
    ty = y + h / 2 if va == "center" else y + h - 0.02
    ax.text(x + w / 2, ty, text, ha="center", va=va, fontsize=fontsize, fontweight=weight)


def _arrow(ax, a, b, text="", color="black", ls="-", rad=0.0, dy=0.02, fontsize=8, lw=1.5):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=13, color=color, lw=lw,
                                 ls=ls, connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center",
                va="bottom" if dy >= 0 else "top", fontsize=fontsize, color=color)


def plot_disagg_processes(transport: str = "gloo", devices: Sequence[str] = ("cpu", "cpu"), ax=None,
                          title: str | None = None):
    """The processes of :func:`pdlib.disagg.run` and what flows between them.

    Front end (the caller's process) → decode worker: requests (a queue). The decode worker
    (block pool, engine, continuous decode loop) admits a request when its blocks are free and
    sends the prompt and block ids to the prefill worker (engine + sender thread), whose KV comes
    back over ``transport`` ("gloo", "nccl" or "shared", as returned by
    :func:`pdlib.disagg.pick_transport`, with its ``devices`` pair: the shared pool is shared
    memory on a CPU and a CUDA IPC handle on a GPU). Both workers report events (prefill, sent,
    landed, token) to the front end on one queue.
    """
    if transport not in KV_PATHS:
        raise ValueError(f"transport must be one of {', '.join(map(repr, KV_PATHS))} (resolve 'auto' "
                         f"with pdlib.disagg.pick_transport first), got {transport!r}")
    devices = tuple(devices)
    if len(devices) != 2 or not all(isinstance(d, str) for d in devices):
        raise ValueError(f"devices must be a (prefill device, decode device) pair of names such as "
                         f"('cpu', 'cpu') or ('cuda:0', 'cuda:1'), got {devices!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 5.2))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    gpu = devices[1].startswith("cuda")
    shared = transport == "shared"
    # the three processes
    _box(ax, 0.01, 0.36, 0.2, 0.3, "front end\n(your process)\n\ndisagg.run:\nsubmit requests,\ncollect events",
         _FRONT)
    _box(ax, 0.3, 0.04, 0.3, 0.38, f"prefill worker (rank 0, {devices[0]})", _PREFILL, weight="bold", va="top")
    _box(ax, 0.33, 0.2, 0.24, 0.1, "engine: prompt layer by layer", "white", fontsize=8)
    _box(ax, 0.33, 0.07, 0.24, 0.1, "sender thread: one message\nper layer, as each is done",
         "white", fontsize=8)
    _arrow(ax, (0.45, 0.2), (0.45, 0.17), lw=1.0)
    _box(ax, 0.68, 0.5, 0.31, 0.46, f"decode worker (rank 1, {devices[1]})", _DECODE, weight="bold", va="top")
    _box(ax, 0.705, 0.79, 0.26, 0.1, "admission: blocks for\nprompt + new tokens free?", "white", fontsize=8)
    _box(ax, 0.705, 0.66, 0.26, 0.1, "engine: continuous decode loop\n(one token per request per step)",
         "white", fontsize=8)
    pool_text = ("KV block pool, shared\n" + ("(CUDA IPC handle)" if gpu else "(shared memory)") if shared
                 else "KV block pool (private)")
    _box(ax, 0.705, 0.53, 0.26, 0.1, pool_text, _POOL if shared else "white", fontsize=8)
    # 1 requests, 2 block ids, 3 KV, 4 events
    _arrow(ax, (0.21, 0.62), (0.68, 0.86), rad=-0.1)
    ax.text(0.42, 0.81, "1 requests (queue)", ha="center", fontsize=8)
    _arrow(ax, (0.705, 0.82), (0.57, 0.3), color="tab:green", rad=0.25)
    ax.text(0.6, 0.5, "2 prompt +\nblock ids", ha="center", fontsize=8, color="tab:green")
    kv = KV_PATHS[transport]
    if shared:
        _arrow(ax, (0.57, 0.12), (0.79, 0.53), color="tab:purple", lw=2.2)
        ax.text(0.85, 0.2, "3 KV written in place\ninto the decode worker's block pool,\nthen a shared counter += 1",
                ha="center", va="center", fontsize=8, color="tab:purple")
    else:
        _box(ax, 0.68, 0.06, 0.31, 0.22, "", "white", ls="--")
        ax.text(0.835, 0.26, "staging buffer\n(decode side)", ha="center", va="top", fontsize=8)
        _arrow(ax, (0.57, 0.12), (0.69, 0.12), color="tab:purple", lw=2.2)
        ax.text(0.835, 0.1, f"3 KV over {transport}", ha="center", fontsize=8, color="tab:purple")
        _arrow(ax, (0.9, 0.28), (0.9, 0.53), color="tab:purple")
        ax.text(0.885, 0.4, "copy into\nthe blocks", ha="right", va="center", fontsize=8, color="tab:purple")
        ax.text(0.45, 0.0, kv, ha="center", fontsize=8, color="tab:purple")
    _arrow(ax, (0.68, 0.7), (0.21, 0.5), color="tab:blue", ls="--")
    ax.text(0.46, 0.555, "4 events: landed, token, token, …", ha="center", va="top", fontsize=8,
            color="tab:blue")
    _arrow(ax, (0.3, 0.3), (0.21, 0.4), color="tab:blue", ls="--")
    ax.text(0.29, 0.27, "events: prefill, sent", ha="right", va="top", fontsize=8, color="tab:blue")
    ax.set_title(title or f"A disaggregated run: three processes, KV over {transport!r}")
    return ax


def _check_results(results) -> list[tuple[str, object]]:
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping label -> RequestResult, got {type(results).__name__}")
    if not results:
        raise ValueError("results is empty: pass at least one finished RequestResult")
    out = []
    for label, r in results.items():
        status = getattr(r, "status", None)
        if status is None:
            raise TypeError(f"results[{label!r}] is not a RequestResult (no status), got {type(r).__name__}")
        if status != "finished":
            raise ValueError(f"results[{label!r}] did not finish ({status}: {getattr(r, 'reason', '')}); "
                             f"only finished requests have a timeline")
        if r.prefill_window is None or not r.wire or not r.token_times:
            raise ValueError(f"results[{label!r}] has no prefill report, KV messages or token times "
                             f"(the prefill worker's reports did not arrive)")
        out.append((str(label), r))
    return out


def plot_run_timeline(results: Mapping[str, object], ax=None, title: str | None = None):
    """Timeline of finished requests of a disaggregated run, three lanes each: the prefill
    worker's compute (``prefill_window``), every KV message as the sender saw it (``wire``:
    start, end, bytes), and the decode worker: a bar per decode step's engine time
    (``step_seconds``, ending at the token it made) and a tick per token (``token_times``; the
    first token, which came with the KV, as a diamond). ``results`` maps a label (e.g. "layerwise")
    to a :class:`pdlib.disagg.RequestResult`; times are seconds since submission, shown in ms.
    """
    rows = _check_results(results)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 1.1 + 1.1 * len(rows)), layout="constrained")
    seen: set[str] = set()

    def label(name: str) -> str | None:
        if name in seen:
            return None
        seen.add(name)
        return name

    ticks, names = [], []
    for k, (name, r) in enumerate(rows):
        base = k * 4
        lanes = {"prefill": base + 2, "link": base + 1, "decode": base}
        p0, p1 = r.prefill_window
        ax.barh(lanes["prefill"], (p1 - p0) * 1e3, left=p0 * 1e3, height=0.7, color="tab:red",
                label=label("prefill compute"))
        for a, b, _n in r.wire:
            ax.barh(lanes["link"], max(b - a, 0.0) * 1e3, left=a * 1e3, height=0.7, color="tab:purple",
                    edgecolor="white", lw=0.8, label=label("KV message on the link"))
        times = np.asarray(r.token_times)
        steps = np.asarray(r.step_seconds)
        if len(steps):
            ends = times[len(times) - len(steps):]
            ax.barh(np.full(len(steps), lanes["decode"]), steps * 1e3, left=(ends - steps) * 1e3,
                    height=0.7, color="tab:blue", alpha=0.6, edgecolor="white", lw=0.5,
                    label=label("decode step (engine time)"))
        ax.plot(times[1:] * 1e3, np.full(len(times) - 1, lanes["decode"]), "|", color="black", ms=12,
                label=label("token"))
        ax.plot([times[0] * 1e3], [lanes["decode"]], "D", color="black", ms=6,
                label=label("first token (KV landed)"))
        ticks += [lanes["prefill"], lanes["link"], lanes["decode"]]
        names += [f"{name}: prefill", f"{name}: KV link", f"{name}: decode"]
    ax.set_yticks(ticks, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time since the request was submitted (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.18 if len(rows) > 1 else -0.3))
    ax.set_title(title or "Prefill compute, KV messages and decode steps of one request")
    return ax


_SWEEP_COLUMNS = ("bandwidth", "mode", "ttft", "exposed", "predicted_exposed", "predicted_ttft")


def plot_link_sweep(table: pd.DataFrame, emission_rate: float | None = None, axes=None,
                    title: str | None = None):
    """Two panels against the emulated link's bandwidth (MB/s, log scale): the exposed transfer
    (KV still on the wire after the prefill ended) and the TTFT, measured (markers) and predicted
    by :func:`pdlib.kv_transfer_time` (lines), one colour per ``mode`` ("layerwise", "whole").
    ``table`` has columns bandwidth (bytes/s), mode, ttft, exposed, predicted_exposed,
    predicted_ttft (seconds). ``emission_rate`` (bytes/s: KV bytes / prefill seconds), when given,
    is drawn as a vertical line: the bandwidth below which layer-by-layer sending can no longer
    keep up with the prefill.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in _SWEEP_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; needs {list(_SWEEP_COLUMNS)}")
    if table.empty:
        raise ValueError("table is empty: nothing to plot")
    if (table.bandwidth <= 0).any():
        raise ValueError("bandwidth must be > 0 bytes/s in every row")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    colors = {"layerwise": "tab:purple", "whole": "tab:orange"}
    for mode, g in table.groupby("mode", sort=False):
        g = g.sort_values("bandwidth")
        c = colors.get(mode, None)
        x = g.bandwidth / 1e6
        for ax, meas, pred in ((axes[0], "exposed", "predicted_exposed"), (axes[1], "ttft", "predicted_ttft")):
            ax.plot(x, g[meas] * 1e3, "o", color=c, label=f"{mode}, measured")
            ax.plot(x, g[pred] * 1e3, "-", color=c, alpha=0.7, label=f"{mode}, kv_transfer_time")
    for ax, ylabel in ((axes[0], "exposed transfer (ms)"), (axes[1], "TTFT (ms)")):
        if emission_rate is not None:
            ax.axvline(emission_rate / 1e6, color="black", ls=":", lw=1.2,
                       label="KV emission rate (KV bytes / prefill s)")
        ax.set_xscale("log")
        ticks = np.sort(table.bandwidth.unique()) / 1e6
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("emulated link bandwidth (MB/s, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_title("KV still on the wire when the prefill ends")
    axes[1].set_title("Time to first token")
    axes[1].legend(fontsize=8)
    if title:
        plt.gcf().suptitle(title)
    return axes
