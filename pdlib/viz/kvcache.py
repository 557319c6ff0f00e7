"""KV-cache plots: bytes per token across the catalog, decode batches that fit, transfer times over
every link, and the rate at which prefill writes KV against the rates links carry.

Every function draws on a given matplotlib Axes (or a new one) and returns it. Inputs are in SI
units (bytes, seconds, bytes/s); axes show kB, ms and Gb/s for readability. The numbers come from
:mod:`pdlib.kvmath` and :mod:`pdlib.cost`.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from .. import hardware as hw
from .. import kvmath
from .. import models as mdl
from ..cost import kv_emission_rate

__all__ = ["ATTENTION_COLORS", "LINK_KIND_COLORS", "plot_kv_bytes_per_token", "plot_decode_capacity",
           "plot_transfer_times", "plot_emission_rates"]

#: Colour of each attention type in these plots.
ATTENTION_COLORS = {"mha": "tab:red", "gqa": "tab:blue", "mla": "tab:green"}
#: Colour of each link kind in these plots.
LINK_KIND_COLORS = {"network": "tab:blue", "pcie": "tab:gray", "cxl": "tab:purple",
                    "nvlink": "tab:green", "fabric": "tab:olive"}


def plot_kv_bytes_per_token(model_names: Iterable[str] | None = None,
                            dtypes: Sequence[str] = ("bf16", "fp8"), ax=None,
                            title: str = "KV-cache bytes per token"):
    """Horizontal bars of KV bytes per token (kB, log scale) for each model (default: the whole
    catalog), sorted by size and coloured by attention type (MHA red, GQA blue, MLA green); one
    bar per dtype, the first solid and the others lighter, each labelled with its value."""
    names = mdl.names() if model_names is None else list(model_names)
    if not names or not dtypes:
        raise ValueError("plot_kv_bytes_per_token needs at least one model and one dtype")
    specs = sorted((mdl.get(n) for n in names), key=lambda m: m.kv_bytes_per_token(dtypes[0]))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.25 * len(specs) * len(dtypes) + 1.5), layout="constrained")
    h = 0.8 / len(dtypes)
    y = np.arange(len(specs))
    for j, d in enumerate(dtypes):
        vals = np.array([m.kv_bytes_per_token(d) for m in specs]) / 1e3
        colors = [ATTENTION_COLORS[m.attention] for m in specs]
        pos = y + (len(dtypes) - 1) * h / 2 - j * h
        ax.barh(pos, vals, height=h, color=colors, alpha=1.0 if j == 0 else 0.4,
                edgecolor="black", lw=0.5)
        for p, v in zip(pos, vals):
            ax.text(v * 1.05, p, f"{v:,.0f}", va="center", fontsize=7)
    ax.set_yticks(y, [m.name for m in specs])
    ax.set_xscale("log")
    ax.set_xlim(right=ax.get_xlim()[1] * 3)
    ax.set_xlabel("KV bytes per token, kB (1 kB = 1,000 bytes; log scale)")
    ax.set_title(title)
    ax.grid(True, axis="x", which="major", alpha=0.3)
    handles = [Patch(color=c, label=att.upper()) for att, c in ATTENTION_COLORS.items()]
    handles += [Patch(facecolor="gray", alpha=1.0 if j == 0 else 0.4, edgecolor="black", label=d)
                for j, d in enumerate(dtypes)]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    return ax


def plot_decode_capacity(configs: Iterable[tuple], contexts: Sequence[int] = (1024, 4096, 32768),
                         ax=None, title: str = "Largest decode batch whose KV cache fits",
                         **cost_kwargs):
    """Grouped bars: for each configuration ``(model, gpu, tp[, options])`` (see
    :func:`pdlib.kvmath.capacity_table`), the largest decode batch at each context length, on a
    log axis, each bar labelled with its value."""
    df = kvmath.capacity_table(configs, contexts, **cost_kwargs)
    if df.empty:
        raise ValueError("plot_decode_capacity needs at least one configuration")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(8, 1.3 * len(df) + 2), 5), layout="constrained")
    w = 0.8 / len(contexts)
    x = np.arange(len(df))
    colors = plt.get_cmap("viridis")(np.linspace(0.1, 0.85, len(contexts)))
    for j, (L, c) in enumerate(zip(contexts, colors)):
        vals = df[f"batch @ {L:,}"].to_numpy()
        pos = x - 0.4 + w * (j + 0.5)
        ax.bar(pos, np.maximum(vals, 0.5), width=w, color=c, edgecolor="black", lw=0.5,
               label=f"{L:,}-token requests")
        for p, v in zip(pos, vals):
            ax.text(p, max(v, 0.5) * 1.08, f"{v:,}", ha="center", va="bottom", fontsize=7, rotation=90)
    labels = [f"{m}\n{g}" + (f"\n({w_} weights)" if w_ != "bf16" else "")
              for m, g, w_ in zip(df["model"], df["GPUs"], df["weights"])]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(0.7, df[[f"batch @ {L:,}" for L in contexts]].to_numpy().max() * 6)
    ax.set_ylabel("requests in the batch (log scale)")
    ax.set_title(title)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncols=len(contexts))
    return ax


def plot_transfer_times(model: str, tokens: int, links: Iterable[str] | None = None,
                        reference: Mapping[str, float] | None = None, dtype: str = "bf16", ax=None,
                        title: str | None = None):
    """Horizontal bars: milliseconds to send the ``tokens``-token KV cache of ``model`` over each
    link (default: the whole catalog) in one piece, log scale, coloured by link kind; measured
    links hatched. ``reference`` maps labels to times in seconds (e.g. the prefill time) drawn
    as vertical dashed lines."""
    df = kvmath.transfer_table(model, tokens, links, dtype)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.32 * len(df) + 1.6), layout="constrained")
    y = np.arange(len(df))
    ms = df["transfer (ms)"].to_numpy()
    ax.barh(y, ms, color=[LINK_KIND_COLORS[k] for k in df["kind"]], edgecolor="black", lw=0.5,
            hatch=["//" if m else "" for m in df["measured"]])
    for yi, v, gbs in zip(y, ms, df["Gb/s"]):
        ax.text(v * 1.05, yi, f"{v:.3g} ms  ({gbs:,.0f} Gb/s)", va="center", fontsize=7)
    ax.set_yticks(y, df.index)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(ms.min() / 2, ms.max() * 6)
    for (label, sec), ls in zip((reference or {}).items(), ("--", "-.", ":")):
        ax.axvline(sec * 1e3, color="black", ls=ls, lw=1.2, label=f"{label}: {sec * 1e3:.3g} ms")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(facecolor=c, edgecolor="black", lw=0.5, label=kind)
                for kind, c in LINK_KIND_COLORS.items() if kind in set(df["kind"])]
    if df["measured"].any():
        handles.append(Patch(facecolor="white", edgecolor="black", lw=0.5, hatch="//",
                             label="measured, not datasheet"))
    m = mdl.get(model)
    gb = float(m.kv_bytes(tokens, dtype)) / 1e9
    ax.set_xlabel("time to send the whole cache, ms (log scale)")
    ax.set_title(title or f"Sending {m.name}'s {tokens:,}-token KV cache ({gb:.3g} GB, {dtype}) "
                          "over one link")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    return ax


def plot_emission_rates(model_names: Iterable[str], gpu_names: Iterable[str],
                        links: Iterable[str] = ("100GbE", "IB-NDR-400G", "IB-XDR-800G"), *,
                        mfu: float = 0.5, dtype: str = "bf16", ax=None, title: str | None = None):
    """Grouped bars: KV bytes/s one GPU writes while prefilling each model at ``mfu`` of peak
    (:func:`pdlib.cost.kv_emission_rate`), in Gb/s on a log axis, one bar per GPU type; each
    link's bandwidth is a horizontal dashed line. A bar above a line means that link, if it
    carries only this GPU's KV, cannot keep up with the prefill."""
    models_ = [mdl.get(n) for n in model_names]
    gpus = [hw.gpu(g) for g in gpu_names]
    if not models_ or not gpus:
        raise ValueError("plot_emission_rates needs at least one model and one GPU")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(10, 1.1 * len(models_) + 4), 5.5), layout="constrained")
    w = 0.8 / len(gpus)
    x = np.arange(len(models_))
    colors = plt.get_cmap("Set2").colors
    top = 0.0
    for j, g in enumerate(gpus):
        rates = np.array([float(kv_emission_rate(m, g, mfu=mfu, dtype=dtype)) for m in models_]) * 8 / 1e9
        top = max(top, rates.max())
        ax.bar(x - 0.4 + w * (j + 0.5), rates, width=w, color=colors[j % len(colors)],
               edgecolor="black", lw=0.5, label=f"{g.name} ({g.flops / 1e12:,.0f} TFLOP/s)")
    for ln in (hw.link(n) for n in links):
        gbps = ln.bandwidth * 8 / 1e9
        top = max(top, gbps)
        ax.axhline(gbps, color="black", ls="--", lw=1)
        ax.text(len(models_) - 0.45, gbps * 1.06, f"{ln.name}: {gbps:,.0f} Gb/s", ha="right",
                va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{m.name}\n({m.attention.upper()})" for m in models_], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=top * 4)
    ax.set_ylabel("KV written during prefill, Gb/s per GPU (log scale)")
    ax.set_title(title or f"KV emission rate of one prefilling GPU at {mfu:.0%} MFU ({dtype} KV) "
                          "vs link bandwidth")
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="prefill GPU",
              title_fontsize=8)
    return ax
