"""Real-GPU measurements published by three projects, the cost model fitted to each, and its errors.

Three public measurement sets, each shipped with pdlib as a small table (``pdlib/data/*.csv``, headed
by its source, commit, licence and the rows kept; Sarathi-Serve's numbers live in
:mod:`pdlib.measurements`):

* ``"splitwise"`` — SplitwiseSim's engine profiles of Llama-2-70B at tensor parallelism 2 on a
  DGX-A100 and a DGX-H100: whole prefill steps (a batch of equal prompts) and mean decode steps.
* ``"vidur"`` — Vidur's per-operator kernel times of one decoder layer (every linear layer, norm,
  rotary, activation, residual add) at 1–32,768 tokens and tp 1/2/4/8, for 8 models on A100 80GB
  and H100 80GB, and its NCCL all-reduce times on DGX nodes and NVLink-bridged PCIe pairs.
* ``"sarathi"`` — Sarathi-Serve's Yi-34B at tp 2 on two A100 80GB PCIe cards: prefill and decode
  steps, the three specimen batches of its table 2 and the chunked-prefill times of its
  "figure 9" experiment.

**How a table maps to the cost model.** An end-to-end step row (Splitwise, Sarathi) is a
:meth:`pdlib.CostModel.step` of its items: a prefill of ``b`` prompts of ``p`` tokens is ``b``
items ``(p, 0)``; a decode step of batch ``b`` is ``b`` items ``(1, L)`` with ``L`` the mean context
over the run (Splitwise: prompt + (output − 1)/2; Sarathi's figure 2: 1,021, its requests holding
1,020 prompt and 4 output tokens); a chunked prefill is the sum of its chunks' steps. A Vidur row
is *not* a step: it is one layer's non-attention kernels on one GPU, without communication or any
CPU time, so it maps to :meth:`pdlib.CostModel.layer_kernel_time` (the GEMMs at η_mm(n), the
weight and activation bytes at η_W, plus ``layer_overhead``) — the per-operator table fits the
GEMM efficiency (η_F, T½, s½), η_W and the per-layer fixed cost; it cannot see a per-step
overhead, attention or a per-cached-token cost, so a Vidur-calibrated model has none of those
(attention at η_F). The all-reduce of every calibrated model is the latency + bandwidth fit to
Vidur's all-reduce table of the node the source ran on (the only measured collectives here; the
two end-to-end sets do not separate them): DGX-A100 / DGX-H100 for Splitwise and Vidur, the
NVLink-bridged A100 PCIe node for Sarathi.

**What each fit can identify.** Vidur measured kernels, not engines: its fit gives the GEMM
efficiency (η_F, T½, s½), η_W and the per-layer cost, and nothing per step (``overhead``,
``item_seconds`` and ``context_seconds`` 0, attention at η_F), so a Vidur model underprices an engine by the engine's
CPU time per step. The end-to-end sets measured one model at one tp, which leaves three terms
unidentified (:data:`KERNEL_TERMS`): η_W trades one for one with the per-step overhead (their fit
errors are the same to four digits for any η_W from 0.6 to 0.9), a per-layer cost cannot be told
from a per-step one, and the narrow-shard width s½ is never varied. Those three are held at Vidur's
kernel fit of the same GPU (the PCIe A100 takes the SXM A100's: same chip, same HBM2e), and the
source fits the rest — η_F, T½, η_A, the per-step overhead, the per-item cost and, where its rows
can tell it from the per-item cost, the per-cached-token cost. So a "splitwise" or "sarathi" model
is that engine's measurements plus Vidur's kernel bandwidth, per-layer latency and shard-width
terms, and Vidur's all-reduce; :attr:`PublishedSource.held_terms` names them.

**Per request or per cached token?** A decode step of b requests at L cached tokens each grows
with b for two reasons the roofline leaves out: work per request (``item_seconds``: sampling,
block tables, attention metadata, the scheduler's per-sequence bookkeeping) and work per cached
token beyond the KV read the roofline already prices (``context_seconds``). Rows that vary the batch
at one context cannot separate them — ΣL = L·b moves with b — and Sarathi-Serve's figure-2 decodes
(batch 1–128, every request at ~1,021 cached tokens) are such rows: a least-squares split between
the two would be arbitrary, and putting the batch slope on every cached token makes a model that
prices a long context as if it were many requests (a 2,048-token request as two of 1,024). What
the shipped rows do say about the per-token cost comes from Splitwise, whose batch-1 decodes run at
contexts 192 to 8,256: on H100 the step grows ~70 ns per cached token, about the 56 ns the
roofline already charges to read that token's KV per GPU. So :func:`identified_terms` frees
``context_seconds`` only where the fit rows hold decode steps at two contexts with the same batch
(Splitwise, both splits) and holds it at 0 otherwise (Sarathi-Serve), where the per-item term takes
the batch slope: the physically conservative reading, since a per-request cost does not grow with
the context while the only measured context sweep shows no per-token cost beyond the KV read.

**Fit and test rows.** Each source's rows carry ``split`` = "fit" or "test"; :func:`from_published`
fits on the "fit" rows only, so every error reported on a "test" row is out of sample:

* splitwise (per GPU): fit on the configurations (prompt, batch, output) = (128, 512, 2048 and
  8192 tokens at batch 1, 128 output) and (512 tokens at batch 2, 8, 32), prefill and decode of
  each; test on the rest (prompts 256, 1024, 4096; batches 4, 16; 256 and 512 output tokens).
* vidur (per GPU): fit on Llama-2-7B, Llama-2-70B and InternLM-20B at tp 1 and 2; test on every
  other row: those models at tp 4 and 8 and the other five models at every tp.
* sarathi: fit on prefills of 128, 512, 2,048, 8,192 tokens, decodes of batch 1, 4, 16, 64 and
  the chunked prefills of the 2,047- and 8,191-token prompts; test on prefills of 1,024, 4,096,
  16,384, decodes of 2, 8, 32, 128, table 2's three batches and the chunked prefills of the 4,095-
  and 16,383-token prompts.

Interleaving (rather than fitting short prompts and testing long ones) keeps every term seen in
the fit part: a fit on short prompts alone cannot see attention's efficiency and one on small
batches cannot see the per-cached-token cost, so those splits test the split, not the model
(:func:`split_of` gives that "extrapolation" split, for the record).

Rows dropped as broken (and why) are listed in each table's header and in :data:`DROPPED`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import resources
from typing import Callable

import numpy as np
import pandas as pd

from . import hardware as hw
from . import measurements as ms
from . import models as mdl
from .cost import CostModel
from . import fitting as ft
from .fitting import Measurement, fit_allreduce, fit_terms

__all__ = ["PublishedSource", "SOURCES", "DROPPED", "published_sources", "table", "rows",
           "from_published", "fitted_terms", "allreduce_fit", "NODES", "predict_rows", "error_table",
           "split_of", "SPLITS", "validate", "table_header", "Row", "ENGINE_ROWS", "PHASES",
           "model_error", "calibrated_cluster", "identified_terms", "context_varies_at_fixed_batch"]


@dataclass(frozen=True)
class PublishedSource:
    """One published measurement set: ``citation`` (paper and repository), ``engine`` (what ran the
    steps), ``hardware`` (in words), ``gpus`` (pdlib GPU name → Vidur network node its collectives
    come from), ``models`` (pdlib catalog names measured), ``tps`` (degrees measured), ``terms``
    (the cost-model terms fitted to it), ``tables`` (shipped files) and ``licence``."""
    name: str
    citation: str
    engine: str
    hardware: str
    gpus: dict
    models: tuple
    tps: tuple
    terms: tuple
    tables: tuple
    licence: str
    kernel_gpus: dict | None = None

    @property
    def held_terms(self) -> tuple:
        """Terms this source cannot identify and takes from Vidur's kernel fit of the same GPU
        (:data:`KERNEL_TERMS`; empty for Vidur itself)."""
        return KERNEL_TERMS if self.kernel_gpus else ()


_END_TO_END_TERMS = ("flops_efficiency", "gemm_half_tokens", "attention_efficiency", "overhead",
                     "item_seconds", "context_seconds")
#: Terms an end-to-end source (one model at one tp) cannot separate from others, held at the values
#: Vidur's per-operator kernel table gives for the same GPU: η_W (it trades one for one with the
#: per-step overhead: Splitwise's and Sarathi's fit errors are the same to 4 digits for any η_W from
#: 0.6 to 0.9), the narrow-shard width s½ (one tp only) and the per-layer cost (one model only, so
#: not separable from the per-step one).
KERNEL_TERMS = ("bw_efficiency", "gemm_half_width", "layer_overhead")

SOURCES: dict[str, PublishedSource] = {
    "splitwise": PublishedSource(
        "splitwise",
        "Patel et al., Splitwise: Efficient Generative LLM Inference Using Phase Splitting, ISCA 2024; "
        "github.com/Mutinifni/splitwise-sim data/perf_model.csv @ 3780880",
        "the Splitwise authors' vLLM-based engine (whole steps: prefill of a batch of prompts, mean "
        "decode step)",
        "DGX-A100 (A100 80GB SXM) and DGX-H100 (H100 80GB SXM), tensor parallel 2",
        {"A100-80GB": "a100_dgx", "H100-SXM": "h100_dgx"}, ("Llama-2-70B",), (2,), _END_TO_END_TERMS,
        ("splitwise_llama2_70b_tp2.csv", "vidur_allreduce.csv"), "MIT",
        {"A100-80GB": "A100-80GB", "H100-SXM": "H100-SXM"}),
    "vidur": PublishedSource(
        "vidur",
        "Agrawal et al., Vidur: A Large-Scale Simulation Framework for LLM Inference, MLSys 2024; "
        "github.com/microsoft/vidur data/profiling/ @ 683364e",
        "Sarathi-Serve's model layers profiled one operator at a time (CUPTI/Kineto kernel times; no "
        "engine, no CPU time)",
        "A100 80GB and H100 80GB (SXM, DGX nodes); NCCL all-reduce on DGX-A100, DGX-H100 and "
        "NVLink-bridged PCIe pairs",
        {"A100-80GB": "a100_dgx", "H100-SXM": "h100_dgx"},
        ("Llama-2-7B", "Llama-2-70B", "Llama-3-8B", "Llama-3-70B", "CodeLlama-34B", "Qwen-72B",
         "InternLM-20B", "phi-2"), (1, 2, 4, 8),
        ("flops_efficiency", "bw_efficiency", "gemm_half_tokens", "gemm_half_width", "layer_overhead"),
        ("vidur_layers.csv", "vidur_models.csv", "vidur_allreduce.csv"), "MIT"),
    "sarathi": PublishedSource(
        "sarathi",
        "Agrawal et al., Taming Throughput-Latency Tradeoff in LLM Inference with Sarathi-Serve, OSDI "
        "2024; github.com/microsoft/sarathi-serve osdi-experiments/ @ 02d2567",
        "Sarathi-Serve (whole steps; figure 2, table 2 and the chunking-overhead experiment)",
        "2 × A100 80GB PCIe joined by an NVLink bridge (Azure NC96ads A100 v4), tensor parallel 2",
        {"A100-PCIe-80GB": "a100_pairwise_nvlink"}, ("Yi-34B",), (2,), _END_TO_END_TERMS,
        ("pdlib.measurements (Sarathi-Serve tables)", "vidur_allreduce.csv"), "Apache-2.0",
        {"A100-PCIe-80GB": "A100-80GB"}),
}

#: Vidur network nodes: what they are, and the tensor-parallel degrees measured inside one node.
NODES = {"a100_dgx": ("DGX A100, NVSwitch", (2, 4, 8)), "h100_dgx": ("DGX H100, NVSwitch", (2, 4, 8)),
         "a100_pairwise_nvlink": ("A100 PCIe, NVLink-bridged pairs", (2, 4)),
         "h100_pairwise_nvlink": ("H100 PCIe, NVLink-bridged pairs", (2, 4))}

#: Rows left out of the fits and tests, and why (the shipped tables' headers say the same).
DROPPED = {
    "splitwise": "batch_size 64 rows (a 64 × 512-token prefill reported faster than 32 × 512: "
                 "794 vs 6,633 ms on A100; the decode step faster than at batch 32) and token_size ≥ "
                 "1,024 rows (their e2e_time shows the runs stopped after ~320–580 tokens, so the "
                 "decode context is unknown); 20 exact duplicate rows merged",
    "vidur": "none (the shipped table keeps a log-spaced subset of token counts)",
    "sarathi": "figure 2's 256-token prefill (0.121 s, slower than the 512-token one's 0.106 s; it is "
               "the run's first batch, Batch Id 0, with no inter-batch delay recorded: a warm-up)",
}

_VIDUR_GPU = {"a100": "A100-80GB", "h100": "H100-SXM"}
_SPLITWISE_GPU = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}


def published_sources() -> pd.DataFrame:
    """One row per source: ``source``, ``citation``, ``engine``, ``hardware``, ``gpus``, ``models``,
    ``tp``, ``terms`` fitted to it (:func:`identified_terms` of its GPUs), ``held_from_vidur`` (terms it cannot identify, taken from Vidur's
    kernel fit of the same GPU), ``fit_rows`` / ``test_rows`` (all GPUs), ``dropped`` and ``licence``."""
    out = []
    for s in SOURCES.values():
        r = rows(s.name)
        out.append({"source": s.name, "citation": s.citation, "engine": s.engine, "hardware": s.hardware,
                    "gpus": ", ".join(s.gpus), "models": ", ".join(s.models),
                    "tp": ", ".join(map(str, s.tps)),
                    "terms": ", ".join(t for t in s.terms if any(t in identified_terms(s.name, g) for g in s.gpus)),
                    "held_from_vidur": ", ".join(s.held_terms),
                    "fit_rows": sum(x.split == "fit" for x in r), "test_rows": sum(x.split == "test" for x in r),
                    "dropped": DROPPED[s.name], "licence": s.licence})
    return pd.DataFrame(out)


def _check_source(source: str) -> PublishedSource:
    if source not in SOURCES:
        listing = "; ".join(f"{k!r} ({v.hardware})" for k, v in SOURCES.items())
        raise ValueError(f"unknown source {source!r}; allowed: {listing}")
    return SOURCES[source]


def table(name: str) -> pd.DataFrame:
    """A shipped table (``pdlib/data/<name>``, e.g. ``"vidur_layers.csv"``) as a new DataFrame; its
    ``#`` header lines (source, commit, licence, rows kept) are skipped — read them with
    :func:`table_header`. Unknown names raise ValueError listing the shipped tables."""
    return _table(name).copy()


@functools.lru_cache(maxsize=None)
def _table(name: str) -> pd.DataFrame:
    files = sorted(p.name for p in resources.files("pdlib").joinpath("data").iterdir() if p.name.endswith(".csv"))
    if name not in files:
        raise ValueError(f"unknown table {name!r}; shipped: {', '.join(files)}")
    with resources.files("pdlib").joinpath("data", name).open("r") as f:
        return pd.read_csv(f, comment="#")


def table_header(name: str) -> list[str]:
    """The ``#`` lines heading a shipped table (source, commit, licence, rows kept), without the ``#``."""
    table(name)                                                   # validates the name
    with resources.files("pdlib").joinpath("data", name).open("r") as f:
        return [line[2:].rstrip("\n") for line in f if line.startswith("#")]


# ---------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One published measurement as the cost model sees it: ``measurement`` (a
    :class:`pdlib.fitting.Measurement`), where it was taken (``source``, ``gpu``, ``model``, ``tp``),
    ``phase`` ("prefill", "decode", "mixed", "chunked" or "layer"), ``split`` ("fit"/"test"),
    ``x`` (the row's size: tokens, batch, or prompt for chunking) and ``where`` (file and row)."""
    source: str
    gpu: str
    model: str
    tp: int
    phase: str
    split: str
    measurement: Measurement
    x: int
    where: str

    @property
    def seconds(self) -> float:
        return self.measurement.seconds


_SPLITWISE_FIT = {(128, 1, 128), (512, 1, 128), (2048, 1, 128), (8192, 1, 128), (512, 2, 128), (512, 8, 128),
                  (512, 32, 128)}


def _splitwise_rows() -> list[Row]:
    d = table("splitwise_llama2_70b_tp2.csv")
    g = d.groupby(["hardware", "prompt_size", "batch_size", "token_size"], as_index=False)[
        ["prompt_time_ms", "token_time_ms"]].median()
    out = []
    for r in g.itertuples(index=False):
        gpu = _SPLITWISE_GPU[r.hardware]
        key = (int(r.prompt_size), int(r.batch_size), int(r.token_size))
        split = "fit" if key in _SPLITWISE_FIT else "test"
        where = (f"splitwise-sim data/perf_model.csv, llama2-70b {r.hardware} prompt {key[0]} batch {key[1]} "
                 f"tokens {key[2]} (median of the repeats)")
        P, B, O = key
        out.append(Row("splitwise", gpu, "Llama-2-70B", 2, "prefill", split,
                       Measurement.step([(P, 0)] * B, r.prompt_time_ms / 1e3), P * B, where + ", prompt_time"))
        ctx = int(round(P + (O - 1) / 2))
        out.append(Row("splitwise", gpu, "Llama-2-70B", 2, "decode", split,
                       Measurement.step([(1, ctx)] * B, r.token_time_ms / 1e3), B, where + ", token_time"))
    return out


_VIDUR_FIT_MODELS = ("Llama-2-7B", "Llama-2-70B", "InternLM-20B")


def _vidur_rows() -> list[Row]:
    d = table("vidur_layers.csv")
    out = []
    for r in d.itertuples(index=False):
        split = "fit" if (r.model in _VIDUR_FIT_MODELS and r.tp <= 2) else "test"
        out.append(Row("vidur", _VIDUR_GPU[r.gpu], r.model, int(r.tp), "layer", split,
                       Measurement.layer(int(r.tokens), r.layer_ms / 1e3), int(r.tokens),
                       f"vidur data/profiling/compute/{r.gpu}/…/{r.model} mlp.csv, num_tokens {r.tokens}, "
                       f"tp {r.tp} (sum of the per-layer operator medians)"))
    return out


_SARATHI_FIT_PREFILL = (128, 512, 2048, 8192)
_SARATHI_FIT_DECODE = (1, 4, 16, 64)
_SARATHI_FIT_CHUNKED = (2047, 8191)
#: Figure 2's decodes: requests of 1,024 tokens split 255:1 (1,020 prompt + 4 output), so every
#: decode step reads 1,020–1,023 cached tokens per request.
SARATHI_DECODE_CONTEXT = 1021
#: Table 2's requests: 1,024 prompt + 16 output tokens; decodes at ~1,032 cached tokens.
SARATHI_TABLE2_CONTEXT = 1032


def _chunk_steps(prompt: int, chunk: int | None) -> list[list[tuple[int, int]]]:
    if chunk is None or chunk >= prompt:
        return [[(prompt, 0)]]
    steps, done = [], 0
    while done < prompt:
        c = min(chunk, prompt - done)
        steps.append([(c, done)])
        done += c
    return steps


def _sarathi_rows() -> list[Row]:
    gpu, model, src = "A100-PCIe-80GB", "Yi-34B", "sarathi-serve osdi-experiments"
    out = []
    for t, s in ms._PREFILL:
        if t == 256:
            continue                                              # DROPPED["sarathi"]
        out.append(Row("sarathi", gpu, model, 2, "prefill", "fit" if t in _SARATHI_FIT_PREFILL else "test",
                       Measurement.step([(t, 0)], s), t, f"{src}/figure-2/prefill.csv, {t} tokens"))
    for b, s in ms._DECODE:
        out.append(Row("sarathi", gpu, model, 2, "decode", "fit" if b in _SARATHI_FIT_DECODE else "test",
                       Measurement.step([(1, SARATHI_DECODE_CONTEXT)] * b, s), b,
                       f"{src}/figure-2/decode.csv, batch {b}"))
    for p, d, req, step_ms, _, _ in ms._MIXED:
        items = ([(p, 0)] if p else []) + [(1, SARATHI_TABLE2_CONTEXT)] * d
        phase = "mixed" if p and d else ("prefill" if p else "decode")
        out.append(Row("sarathi", gpu, model, 2, phase, "test", Measurement.step(items, step_ms / 1e3), p + d,
                       f"{src}/table-2/results.csv, {p} prefill + {d} decode tokens (an op-level "
                       f"instrumented run)"))
    for prompt, chunk, t_ms, _ in ms._CHUNKING:
        c = None if chunk >= 16384 else chunk
        out.append(Row("sarathi", gpu, model, 2, "chunked", "fit" if prompt in _SARATHI_FIT_CHUNKED else "test",
                       Measurement.steps(_chunk_steps(prompt, c), t_ms / 1e3), prompt,
                       f"{src}/figure-9/chunking-overhead.csv, prompt {prompt}, chunk {chunk}"))
    return out


@functools.lru_cache(maxsize=None)
def _all_rows(source: str) -> tuple:
    return tuple({"splitwise": _splitwise_rows, "vidur": _vidur_rows, "sarathi": _sarathi_rows}[source]())


def rows(source: str, gpu: str | None = None, split: str | None = None) -> list[Row]:
    """The kept rows of ``source`` (optionally of one ``gpu`` and one ``split``, "fit" or "test"),
    as :class:`Row` objects. Unknown names raise ValueError listing the allowed ones."""
    _check_source(source)
    if split not in (None, "fit", "test"):
        raise ValueError(f"split must be 'fit', 'test' or None, got {split!r}")
    out = list(_all_rows(source))
    if gpu is not None:
        g = _gpu_name(source, gpu)
        out = [r for r in out if r.gpu == g]
    return [r for r in out if split is None or r.split == split]


def _gpu_name(source: str, gpu) -> str:
    s = _check_source(source)
    name = (hw.gpu(gpu) if isinstance(gpu, str) else gpu).name
    if name not in s.gpus:
        raise ValueError(f"source {source!r} measured {', '.join(s.gpus)}, not {name}; its fitted hardware "
                         f"terms belong to those GPUs")
    return name


#: The two ways of cutting each source into fit and test rows (module docstring).
SPLITS = ("interleaved", "extrapolation")


def split_of(row: Row, split: str = "interleaved") -> str:
    """"fit" or "test": ``row.split`` for the interleaved split (the one :func:`from_published`
    fits on); for the harder "extrapolation" split, "fit" holds only the short and small rows —
    Splitwise and Sarathi: prefills of ≤ 2,048 tokens and decodes of ≤ 16 requests at ≤ 2,048
    cached tokens from figure 2 / the batch sweeps; Vidur: Llama-2-7B, Llama-2-70B, InternLM-20B at
    tp ≤ 2 and ≤ 1,024 tokens — and everything else is "test". Terms the fit part then cannot see
    (attention efficiency, the per-cached-token cost) are guessed, not measured."""
    if split == "interleaved":
        return row.split
    if split != "extrapolation":
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if row.source == "vidur":
        return "fit" if (row.model in _VIDUR_FIT_MODELS and row.tp <= 2 and row.x <= 1024) else "test"
    if "table-2" in row.where or row.phase in ("mixed", "chunked"):
        return "test"
    items = row.measurement.steps[0]
    context = max(L for _, L in items)
    if row.phase == "prefill":
        return "fit" if row.x <= 2048 else "test"
    return "fit" if (row.x <= 16 and context <= 2048) else "test"


# ---------------------------------------------------------------------- fits
@functools.lru_cache(maxsize=None)
def allreduce_fit(node: str, n_gpus: int) -> tuple[float, float]:
    """``(latency_s, bandwidth_Bps)`` of one all-reduce among ``n_gpus`` GPUs of a Vidur network
    ``node`` (:data:`NODES`), fitted by :func:`pdlib.fitting.fit_allreduce` to every shipped row of
    that group (vidur_allreduce.csv). ValueError for a node or group size not measured."""
    if node not in NODES:
        raise ValueError(f"unknown node {node!r}; measured: {', '.join(NODES)}")
    d = table("vidur_allreduce.csv")
    g = d[(d.node == node) & (d.n_gpus == n_gpus)]
    if g.empty:
        raise ValueError(f"node {node!r} measured all-reduces among {list(NODES[node][1])} GPUs, not {n_gpus}")
    return fit_allreduce(g["bytes"].to_numpy(), g["ms"].to_numpy() / 1e3)


def _base_model(source: str, gpu: str, model, tp: int, layers_only: bool = False, **knobs) -> CostModel:
    """The cost model of ``model`` at ``tp`` on ``gpu`` with the source node's all-reduce fit.
    ``layers_only``: for Vidur's single-layer rows, the GPU's capacity check is lifted (a 70B model
    at tp 1 does not fit an 80 GB card whole, but Vidur profiled one of its layers on one)."""
    node = SOURCES[source].gpus[gpu]
    g = hw.gpu(gpu)
    if layers_only:
        need = mdl.get(model).weight_bytes(knobs.get("dtype", "bf16")) / tp * 1.25
        g = replace(g, mem_bytes=max(g.mem_bytes, need))
    extra = {}
    if tp > 1:
        if tp not in NODES[node][1]:
            raise ValueError(f"{gpu} on a {NODES[node][0]} node: tp must be one of "
                             f"{[1, *NODES[node][1]]} (the group sizes whose all-reduce was measured), got {tp}")
        lat, bw = allreduce_fit(node, tp)
        extra = {"allreduce_latency": lat, "allreduce_bandwidth": bw}
    return CostModel(model, g, tp=tp, **extra, **knobs)


@functools.lru_cache(maxsize=None)
def fitted_terms(source: str, gpu: str, split: str = "interleaved") -> dict:
    """The terms of ``source`` (:attr:`PublishedSource.terms`) fitted to its "fit" rows on ``gpu``
    (:func:`pdlib.fitting.fit_terms`; ``split`` as in :func:`split_of`), as a dict; the other
    terms stay the pure roofline's (0 / None). Only the terms :func:`identified_terms` names are
    fitted: ``context_seconds`` is left out (0) where the fit rows cannot tell it from the per-item
    cost. Cached: a fit takes about a second at most."""
    s = _check_source(source)
    gpu = _gpu_name(source, gpu)
    fit = [r for r in rows(source, gpu) if split_of(r, split) == "fit"]
    terms = identified_terms(source, gpu, split)
    groups: dict = {}
    for r in fit:
        groups.setdefault((r.model, r.tp), []).append(r.measurement)
    # rows of several models and tp degrees (Vidur) share the terms: one joint problem, each
    # group's features from its own cost model
    held = {}
    if s.kernel_gpus:
        kernel = fitted_terms("vidur", s.kernel_gpus[gpu], split)
        held = {k: kernel[k] for k in s.held_terms}
    probs = [ft._Problem(_base_model(source, gpu, m, tp, layers_only=source == "vidur", **held), meas)
             for (m, tp), meas in sorted(groups.items())]
    start = _base_model(source, gpu, fit[0].model, fit[0].tp, layers_only=source == "vidur", **held)
    return {**held, **ft._fit_problem(_JointProblem(probs), start, terms)}


def context_varies_at_fixed_batch(row_list) -> bool:
    """True when ``row_list`` (:class:`Row` objects) holds two decode steps (one step whose items
    all have one new token) with the same batch and different mean contexts: the only rows that
    separate a per-cached-token cost from a per-request one (module docstring)."""
    seen: dict = {}
    for r in row_list:
        m = r.measurement
        if m.kind != "step" or any(n != 1 for n, _ in m.steps[0]):
            continue
        items = m.steps[0]
        seen.setdefault(len(items), set()).add(sum(L for _, L in items) / len(items))
    return any(len(contexts) > 1 for contexts in seen.values())


def identified_terms(source: str, gpu, split: str = "interleaved") -> tuple:
    """The terms :func:`fitted_terms` fits for ``source`` on ``gpu`` (``split`` as in
    :func:`split_of`): :attr:`PublishedSource.terms`, less ``context_seconds`` when the fit rows do
    not vary the decode context at a fixed batch (:func:`context_varies_at_fixed_batch`) — then the
    batch slope of the decode steps is a per-item cost (``item_seconds``) and the per-cached-token
    cost stays 0, the KV read the roofline prices (module docstring, "Per request or per cached
    token?")."""
    s = _check_source(source)
    g = _gpu_name(source, gpu)
    if "context_seconds" not in s.terms:
        return s.terms
    fit = [r for r in rows(source, g) if split_of(r, split) == "fit"]
    if context_varies_at_fixed_batch(fit):
        return s.terms
    return tuple(t for t in s.terms if t != "context_seconds")


class _JointProblem:
    """Several :class:`pdlib.fitting._Problem` (one per model and tp) seen as one."""

    def __init__(self, probs) -> None:
        self.probs = probs
        self.t = np.concatenate([p.t for p in probs])
        self.X = np.concatenate([p.X for p in probs])

    def shape_part(self, *v) -> np.ndarray:
        return np.concatenate([p.shape_part(*v) for p in self.probs])


def _calibrated(model, gpu: str, tp: int, source: str, split: str = "interleaved",
                layers_only: bool = False, **knobs) -> CostModel:
    s = SOURCES[source]
    terms = dict(fitted_terms(source, gpu, split))
    terms.update(knobs)
    held = f"; {', '.join(s.held_terms)} from Vidur's kernel fit of {s.kernel_gpus[gpu]}" if s.kernel_gpus else ""
    terms.setdefault("calibration", f"{source} on {gpu} ({s.citation.split(';')[0]}): fitted on the "
                                    f"{split} split's fit rows{held}; all-reduce fitted to Vidur's "
                                    f"{s.gpus[gpu]} collectives")
    return _base_model(source, gpu, model, int(tp), layers_only=layers_only, **terms)


def from_published(model, gpu, tp: int = 1, source: str = "splitwise", **knobs) -> CostModel:
    """A :class:`~pdlib.CostModel` of ``model`` on ``tp`` × ``gpu`` with the terms fitted to one
    published measurement set (``source``: "splitwise", "vidur" or "sarathi"; see
    :func:`published_sources`), fitted on that source's "fit" rows only.

    The fitted terms are properties of the GPU and the engine that was measured, so any model and
    any tp get them — a model or tp the source never measured is priced by the same physics, not
    refused. The all-reduce is the latency + bandwidth fit to the measured collectives of the
    source's node at this ``tp`` (tp must be a group size measured there: 1, 2, 4, 8 on DGX nodes;
    1, 2, 4 on the PCIe pairs). ``knobs`` go to the CostModel (e.g. ``dtype``); a GPU the source did
    not measure, an unknown source or tp raises ValueError naming the allowed values."""
    _check_source(source)
    g = _gpu_name(source, gpu)
    if not isinstance(tp, (int, np.integer)) or isinstance(tp, bool) or tp < 1:
        raise ValueError(f"tp must be a positive integer, got {tp!r}")
    return _calibrated(model, g, int(tp), source, **knobs)


# ---------------------------------------------------------------------- errors
def predict_rows(row_list, make: Callable[[str, int], CostModel]) -> np.ndarray:
    """Predicted seconds of each row, by the cost model ``make(model, tp)`` returns."""
    cache: dict = {}
    out = []
    for r in row_list:
        key = (r.model, r.tp)
        if key not in cache:
            cache[key] = make(r.model, r.tp)
        out.append(r.measurement.predict(cache[key]))
    return np.array(out)


def validate(source: str, gpu, row_list=None, model_source: str | None = None,
             split: str = "interleaved", model_gpu=None) -> pd.DataFrame:
    """One line per row of ``source`` on ``gpu`` (or the given ``row_list``, rows of that GPU): where
    it comes from, ``phase``, ``split`` (of ``split``, :func:`split_of`), ``measured_s``,
    ``calibrated_s``, ``roofline_s`` and their signed relative errors ``calibrated_err``,
    ``roofline_err``.

    ``calibrated_s``: the terms :func:`fitted_terms` gives ``model_source`` (default ``source``) on
    ``model_gpu`` (default ``gpu``) for ``split``, priced with ``gpu``'s peaks and the all-reduce
    fit of the node the rows were measured on — so ``validate("splitwise", "H100-SXM",
    model_source="vidur")`` prices Splitwise's rows with Vidur's kernel terms. ``roofline_s``: the
    default :class:`~pdlib.CostModel` (η_F 0.6, η_W 0.8, link formula, no measured term)."""
    g = (hw.gpu(gpu) if isinstance(gpu, str) else gpu).name
    rl = rows(source, g) if row_list is None else list(row_list)
    ms_ = model_source or source
    terms = dict(fitted_terms(ms_, _gpu_name(ms_, g if model_gpu is None else model_gpu), split))
    layers = source == "vidur"

    def calibrated(m, tp):
        return _base_model(source, g, m, tp, layers_only=layers, **terms)

    def roofline(m, tp):
        cm = _base_model(source, g, m, tp, layers_only=layers)
        return CostModel(cm.model, cm.gpu, tp=tp)
    cal = predict_rows(rl, calibrated)
    roof = predict_rows(rl, roofline)
    t = np.array([r.seconds for r in rl])
    return pd.DataFrame({"source": [r.source for r in rl], "gpu": [r.gpu for r in rl],
                         "model": [r.model for r in rl], "tp": [r.tp for r in rl],
                         "phase": [r.phase for r in rl], "x": [r.x for r in rl],
                         "split": [split_of(r, split) for r in rl], "measured_s": t, "calibrated_s": cal,
                         "roofline_s": roof, "calibrated_err": cal / t - 1, "roofline_err": roof / t - 1,
                         "where": [r.where for r in rl]})


def error_table(df: pd.DataFrame, by=("split", "phase")) -> pd.DataFrame:
    """Median and 90th-percentile absolute relative error of the calibrated and the roofline predictions
    in ``df`` (from :func:`validate`), grouped ``by``; with the number of rows."""
    g = df.assign(cal=df.calibrated_err.abs(), roof=df.roofline_err.abs()).groupby(list(by))
    return pd.DataFrame({"rows": g.size(), "calibrated_median": g.cal.median(),
                         "calibrated_p90": g.cal.quantile(0.9), "roofline_median": g.roof.median(),
                         "roofline_p90": g.roof.quantile(0.9)})


# ---------------------------------------------------------------------- the error a comparison carries
#: The whole-step (engine) measurements of each GPU: where a model's prefill and decode error is
#: measured when its own source has no such rows (Vidur measured kernels, the roofline nothing).
ENGINE_ROWS = {"A100-80GB": "splitwise", "H100-SXM": "splitwise", "A100-PCIe-80GB": "sarathi"}

#: Phases a row can have (:class:`Row`); "layer" is Vidur's one-layer kernel sum.
PHASES = ("prefill", "decode", "mixed", "chunked", "layer")


@functools.lru_cache(maxsize=None)
def model_error(source: str, phase: str, gpu=None, stat: str = "median") -> float:
    """Out-of-sample absolute relative error of the cost model ``source`` prices ``phase`` steps with, on
    ``gpu`` (None: the rows of every GPU the source measured, pooled): the ``stat`` ("median" or
    "p90") of ``|predicted / measured − 1|`` over rows it was not fitted on.

    ``source``: "splitwise", "sarathi", "vidur" (:func:`from_published`) or "roofline" (the default
    :class:`~pdlib.CostModel`). The rows: ``source``'s own "test" rows of ``phase`` where it has
    some (:func:`validate`); otherwise the whole-step measurements of the GPU (:data:`ENGINE_ROWS`:
    Splitwise's on A100-80GB and H100-SXM, Sarathi-Serve's on A100-PCIe-80GB), every row of which
    is out of sample for a model that was not fitted on them — so Vidur's prefill or decode error is
    the error of its kernel-only model on an engine's steps, and the roofline's is its error on all
    of them (``"layer"`` rows of the roofline: Vidur's). A ``gpu`` the source did not measure
    raises ValueError, as :func:`from_published` does; so do unknown sources, phases and a phase
    with no measured row there. Cached."""
    if stat not in ("median", "p90"):
        raise ValueError(f"stat must be 'median' or 'p90', got {stat!r}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if source != "roofline" and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; allowed: 'roofline', {', '.join(map(repr, SOURCES))}")
    if gpu is None:
        gpus = list(SOURCES[source].gpus if source != "roofline" else ENGINE_ROWS)
    else:
        gpus = [(hw.gpu(gpu) if isinstance(gpu, str) else gpu).name]
        if source != "roofline":
            _gpu_name(source, gpus[0])                    # a GPU the source measured, or ValueError
    errs = []
    for g in gpus:
        own = source != "roofline" and any(r.phase == phase for r in rows(source, g))
        if own:
            df = validate(source, g)
            df = df[(df.split == "test") & (df.phase == phase)]
            errs.append(df.calibrated_err.abs().to_numpy())
            continue
        rows_of = "vidur" if phase == "layer" else ENGINE_ROWS.get(g)
        if rows_of is None or (source == "vidur" and phase == "layer"):
            raise ValueError(f"no measured {phase} step on {g}; engine steps were measured on "
                             f"{', '.join(ENGINE_ROWS)}")
        if source == "roofline":
            df = validate(rows_of, g)
            col = "roofline_err"
        else:
            df = validate(rows_of, g, model_source=source)
            col = "calibrated_err"
        df = df[df.phase == phase]
        if df.empty:
            raise ValueError(f"{rows_of} measured no {phase} step on {g}")
        errs.append(df[col].abs().to_numpy())
    e = np.concatenate(errs)
    return float(np.median(e) if stat == "median" else np.quantile(e, 0.9))


def calibrated_cluster(cluster, source: str | None):
    """``cluster`` (a :func:`pdlib.sim.colocated` or :func:`pdlib.sim.disaggregated` cluster) with
    each of its cost models given the terms :func:`from_published` fits to ``source`` for that
    model, GPU and tp — each pool its own, so a prefill pool at tp 2 and a decode pool at tp 8 each
    get the all-reduce measured at their own tp (``sim.disaggregated``'s one ``cost_kwargs`` cannot
    do that). Everything else (dtypes, KV capacity, schedulers) is kept. ``source`` None returns
    ``cluster`` unchanged (the roofline)."""
    if source is None:
        return cluster

    def cal(cm: CostModel) -> CostModel:
        return replace(cm, **from_published(cm.model, cm.gpu.name, cm.tp, source).knobs())
    if isinstance(getattr(cluster, "decode_cost", None), CostModel):
        return replace(cluster, prefill_cost=cal(cluster.prefill_cost), decode_cost=cal(cluster.decode_cost))
    if isinstance(getattr(cluster, "cost", None), CostModel):
        return replace(cluster, cost=cal(cluster.cost))
    raise TypeError(f"expected a simulator cluster (pdlib.sim.colocated / disaggregated), got "
                    f"{type(cluster).__name__}")
