"""KV-cache arithmetic across the catalogs: how big the cache is, how much of it fits, how long it
takes to move, and whether moving it can keep up with the prefill that writes it.

Four questions, one function (or table) each:

* **Size.** KV bytes per token ``k = 2 · layers · kv_heads · head_dim · b`` (MHA/GQA) or
  ``layers · (kv_lora_rank + rope_dim) · b`` (MLA); :func:`mha_kv_bytes_per_token` gives what the
  same model would cache with one K and one V per query head, so :func:`kv_reduction_vs_mha` is
  the factor GQA or MLA saves. :func:`kv_bytes_table` tabulates both over the catalog.
* **Fit.** Tokens of KV a GPU holds after the weights (``CostModel.kv_capacity_tokens``) and the
  largest decode batch at a context length (``CostModel.max_decode_batch``):
  :func:`capacity_table`.
* **Move.** Seconds to send a cache over a link, ``bytes / bandwidth + latency``
  (:func:`pdlib.cost.kv_transfer_time`): :func:`transfer_table` over every link, and
  :func:`transfer_vs_prefill` set against the prefill that produced the cache (one NIC or one
  per tensor-parallel rank; all at once after prefill, or layer by layer during it).
* **Keep up.** A prefilling GPU writes KV at ``k · F · mfu / FLOPs-per-token`` bytes/s
  (:func:`pdlib.cost.kv_emission_rate`). A link faster than that hides the transfer behind the
  prefill: :func:`link_headroom` is the ratio, :func:`emission_table` the rates.

Functions return SI units (bytes, seconds, bytes/s). The ``*_table`` functions return pandas
DataFrames for display, with the display unit in each column name (kB, GB, ms, Gb/s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import hardware as hw
from . import models as mdl
from .cost import CostModel, kv_emission_rate, kv_transfer_time
from .hardware import GPU, Link
from .models import ModelSpec

__all__ = ["mha_kv_bytes_per_token", "kv_reduction_vs_mha", "kv_bytes_table", "capacity_table",
           "transfer_table", "TransferVsPrefill", "transfer_vs_prefill", "link_headroom",
           "emission_table"]


def _positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- size
def mha_kv_bytes_per_token(model: ModelSpec | str, dtype: str = "bf16") -> float:
    """KV bytes per token the model would need with plain multi-head attention: one key and one
    value vector per *query* head in every layer::

        2 · layers · heads · head_dim · b           (MHA, GQA)
        layers · heads · (qk_dim + v_dim) · b       (MLA: DeepSeek's per-head K is nope + rope wide)

    For an MHA model this equals ``model.kv_bytes_per_token(dtype)``.
    """
    m = mdl.get(model)
    b = mdl.dtype_bytes(dtype)
    return float(m.n_layers * m.n_heads * (m.qk_dim + m.v_dim) * b)


def kv_reduction_vs_mha(model: ModelSpec | str) -> float:
    """How many times smaller the model's KV cache is than its MHA equivalent (dimensionless):
    ``heads / kv_heads`` for GQA (1 for MHA), ``heads · (qk_dim + v_dim) / (kv_lora_rank +
    rope_dim)`` for MLA. Independent of the storage type."""
    m = mdl.get(model)
    return mha_kv_bytes_per_token(m, "bf16") / m.kv_bytes_per_token("bf16")


def kv_bytes_table(model_names: Iterable[str] | None = None,
                   dtypes: Sequence[str] = ("bf16", "fp8"), tokens: int = 4096):
    """One row per model (default: the whole catalog), sorted by KV bytes per token: attention
    type, layers, KV heads ("latent" for MLA), elements cached per token per layer, KV bytes per token in each of
    ``dtypes`` (column "kB/token (<dtype>)", kB = 1e3 bytes), the factor saved against MHA, and
    the cache of one ``tokens``-token request in GB (1e9 bytes, first dtype)."""
    import pandas as pd
    tokens = _positive_int("tokens", tokens)
    if not dtypes:
        raise ValueError("kv_bytes_table needs at least one dtype")
    rows = []
    for name in (mdl.names() if model_names is None else model_names):
        m = mdl.get(name)
        mla = m.attention == "mla"
        row = {"model": m.name, "attention": m.attention.upper(), "layers": m.n_layers,
               "KV heads": "latent" if mla else m.n_kv_heads,
               "elements/token/layer": (m.kv_lora_rank + m.qk_rope_dim) if mla
               else 2 * m.n_kv_heads * m.head_dim}
        for d in dtypes:
            row[f"kB/token ({d})"] = m.kv_bytes_per_token(d) / 1e3
        row["× smaller than MHA"] = kv_reduction_vs_mha(m)
        row[f"GB per {tokens:,}-token request ({dtypes[0]})"] = float(m.kv_bytes(tokens, dtypes[0])) / 1e9
        rows.append(row)
    return pd.DataFrame(rows).sort_values(f"kB/token ({dtypes[0]})").set_index("model")


# ----------------------------------------------------------------------------- fit
def capacity_table(configs: Iterable[tuple], contexts: Sequence[int] = (1024, 4096, 32768),
                   **cost_kwargs):
    """For each ``(model, gpu, tp)`` or ``(model, gpu, tp, {CostModel options})``: weight dtype,
    weights per GPU (GB), memory left for KV per GPU (GB), KV bytes per token per GPU (kB), tokens
    of KV the instance holds, and the largest decode batch whose requests all have each context
    length in ``contexts`` (column "batch @ <L>"). ``cost_kwargs`` go to every
    :class:`~pdlib.cost.CostModel` (e.g. ``kv_dtype="fp8"``, ``mem_utilization=0.9``); a
    configuration's own options override them. Weights that do not fit raise ValueError."""
    import pandas as pd
    rows = []
    for cfg in configs:
        if len(cfg) not in (3, 4):
            raise ValueError(f"a configuration is (model, gpu, tp) or (model, gpu, tp, options), "
                             f"got {cfg!r}")
        model, gpu, tp = cfg[:3]
        cm = CostModel(model, gpu, tp=tp, **{**cost_kwargs, **(cfg[3] if len(cfg) == 4 else {})})
        row = {"model": cm.model.name, "GPUs": f"{cm.tp}×{cm.gpu.name}", "weights": cm.dtype,
               "weights/GPU (GB)": cm.weight_bytes_per_gpu / 1e9,
               "free for KV/GPU (GB)": cm.free_kv_bytes / 1e9,
               "KV kB/token/GPU": cm.kv_bytes_per_token / 1e3,
               "KV tokens": cm.kv_capacity_tokens}
        for L in contexts:
            row[f"batch @ {L:,}"] = int(cm.max_decode_batch(L))
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- move
def transfer_table(model: ModelSpec | str, tokens: int, links: Iterable[str] | None = None,
                   dtype: str = "bf16"):
    """Time to send the ``tokens``-token KV cache of ``model`` over each link (default: the
    whole link catalog) in one piece: ``bytes / bandwidth + latency``. Columns: kind, whether the
    bandwidth was measured, Gb/s per direction, ms per GB, and the transfer in ms; sorted from
    slowest to fastest."""
    import pandas as pd
    tokens = _positive_int("tokens", tokens)
    rows = []
    for name in (hw.link_names() if links is None else links):
        ln = hw.link(name)
        rows.append({"link": ln.name, "kind": ln.kind, "measured": ln.measured,
                     "Gb/s": ln.bandwidth * 8 / 1e9, "ms per GB": 1e9 / ln.bandwidth * 1e3,
                     "transfer (ms)": kv_transfer_time(model, tokens, ln, dtype=dtype) * 1e3})
    return pd.DataFrame(rows).sort_values("transfer (ms)", ascending=False).set_index("link")


@dataclass(frozen=True)
class TransferVsPrefill:
    """A prefill and the KV transfer that follows it (all times in seconds, bytes in bytes).

    ``whole_*``: the cache is sent after the prefill ends; ``layerwise_*``: each layer is sent as
    soon as it is computed, and only the part still in flight when the prefill ends counts
    (exposed time). ``*_one_link``: the whole cache goes through one link; ``*_sharded``: each of
    the ``links`` tensor-parallel ranks sends its own shard over its own link.
    """

    model: str
    tokens: int
    instance: str                       # e.g. "8×H100-SXM"
    link: str
    links: int                          # parallel links in the sharded case (= KV shards)
    kv_bytes: float
    prefill_time: float
    whole_one_link: float
    whole_sharded: float
    layerwise_one_link: float
    layerwise_sharded: float

    @property
    def transfer_over_prefill(self) -> float:
        """Whole-cache transfer over one link divided by the prefill time: > 1 means a single link
        is slower than the GPUs that fill it, whatever the overlap."""
        return self.whole_one_link / self.prefill_time

    def as_dict(self) -> dict:
        """Times in ms and bytes in GB, for a table."""
        return {"model": self.model, "tokens": self.tokens, "prefill on": self.instance,
                "link": self.link, "KV (GB)": self.kv_bytes / 1e9,
                "prefill (ms)": self.prefill_time * 1e3,
                "KV shards": self.links, "whole, 1 link (ms)": self.whole_one_link * 1e3,
                "whole, 1 link per shard (ms)": self.whole_sharded * 1e3,
                "layerwise, 1 link (ms)": self.layerwise_one_link * 1e3,
                "layerwise, 1 link per shard (ms)": self.layerwise_sharded * 1e3}


def transfer_vs_prefill(model: ModelSpec | str, tokens: int, gpu: GPU | str, link: Link | str,
                        tp: int = 1, dtype: str = "bf16", **cost_kwargs) -> TransferVsPrefill:
    """Prefill ``tokens`` tokens of ``model`` on ``tp`` GPUs (``CostModel(model, gpu, tp,
    kv_dtype=dtype, **cost_kwargs).prefill(tokens).time``) and price the transfer of its
    ``dtype`` KV cache over ``link`` four ways (see :class:`TransferVsPrefill`). The sharded
    case uses one link per KV shard (``CostModel.kv_shards``: tp, capped at the KV-head count)."""
    tokens = _positive_int("tokens", tokens)
    cm = CostModel(model, gpu, tp=tp, kv_dtype=dtype, **cost_kwargs)
    ln = hw.link(link)
    P = float(cm.prefill(tokens).time)
    n = cm.kv_shards

    def t(parallel: int, mode: str) -> float:
        return float(kv_transfer_time(cm.model, tokens, ln, dtype=dtype, parallel_links=parallel,
                                      mode=mode, prefill_time=P if mode == "layerwise" else None))

    return TransferVsPrefill(
        model=cm.model.name, tokens=tokens, instance=f"{cm.tp}×{cm.gpu.name}", link=ln.name,
        links=n, kv_bytes=float(cm.model.kv_bytes(tokens, dtype)), prefill_time=P,
        whole_one_link=t(1, "whole"), whole_sharded=t(n, "whole"),
        layerwise_one_link=t(1, "layerwise"), layerwise_sharded=t(n, "layerwise"))


# ----------------------------------------------------------------------------- keep up
def link_headroom(model: ModelSpec | str, gpu: GPU | str, link: Link | str, *, mfu: float = 0.5,
                  gpus_per_link: int = 1, prompt=None, dtype: str = "bf16") -> float:
    """Link bandwidth divided by the KV bytes/s the GPUs sharing it emit while prefilling::

        headroom = link.bandwidth / (gpus_per_link · kv_emission_rate(model, gpu, mfu))

    Above 1 the link drains KV faster than prefill writes it, so a layer-by-layer transfer ends
    about one layer after the prefill: the network adds almost nothing to TTFT. Below 1 the
    prefill waits on the wire. ``gpus_per_link``: GPUs whose KV leaves through this one link
    (1 on an HGX node with a NIC per GPU; 8 if a whole node shares one NIC)."""
    ln = hw.link(link)
    n = _positive_int("gpus_per_link", gpus_per_link)
    return float(ln.bandwidth / (n * kv_emission_rate(model, gpu, mfu=mfu, prompt=prompt, dtype=dtype)))


def emission_table(model_names: Iterable[str], gpu_names: Iterable[str], *, mfu: float = 0.5,
                   prompt=None, dtype: str = "bf16"):
    """KV emission rate of one prefilling GPU, in Gb/s (1e9 bits/s, to compare with NIC speeds),
    for every model (rows) on every GPU (columns), at ``mfu`` of peak dense FLOP/s
    (:func:`pdlib.cost.kv_emission_rate`)."""
    import pandas as pd
    gpus = [hw.gpu(g).name for g in gpu_names]
    rows = {}
    for name in model_names:
        m = mdl.get(name)
        rows[m.name] = {g: float(kv_emission_rate(m, g, mfu=mfu, prompt=prompt, dtype=dtype)) * 8 / 1e9
                        for g in gpus}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")
