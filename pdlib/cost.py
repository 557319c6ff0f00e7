"""The roofline cost model: how long one engine step takes, from FLOPs and bytes.

An engine step runs a batch of work items, each ``(new_tokens, context_tokens)``: a decode is
``(1, L)``, a whole prefill ``(P, 0)``, a prefill chunk ``(c, done_so_far)``. For the batch::

    matmul FLOPs    = 2·N_mm·Σn + 2·h·V·(items needing logits) + U·ΣL_chunks
    attention FLOPs = A·Σpairs_chunks + A_dec·Σpairs_decodes
    bytes  = weights read + KV read (Σ L·k) + KV written (Σ n·k) + activations (Σ n·a)
    compute_time = matmul FLOPs / (tp · F_mm · η_F) + attention FLOPs / (tp · F_attn · η_F)
    memory_time  = bytes_per_GPU / (W · η_W)
    comm_time    = 2 all-reduces per layer of Σn·h·b bytes over the scale-up link (tp > 1)
    time = overhead + max(compute_time, memory_time) + comm_time + context_seconds · ΣL

(and ``item_seconds`` per item, below) with N_mm the matmul weights a token passes through, A
the attention FLOPs per (query, key) pair of a prefill chunk and A_dec that of a decode (they differ for MLA only: a decode runs the
weight-absorbed form, a chunk the non-absorbed one plus U FLOPs per cached token to rebuild its
keys and values), k the KV bytes per token and a the activation bytes per token (see
:mod:`pdlib.models`). "Decode" means a single-token item, ``n == 1``, as in vLLM.

F_mm and F_attn are the GPU's peak FLOP/s for the matmuls and for attention: the BF16/FP16 peak
``GPU.flops``, except that FP8 weights (``dtype="fp8"``) run their matmuls at ``GPU.fp8_flops``
where the GPU has an FP8 peak (2× on Hopper), and ``attention_dtype="fp8"`` does the same for
attention. W is the memory bandwidth; η_F and η_W are the fractions of peak a real engine
reaches (documented defaults, fitted to measurements by calibration). ``context_seconds``
(default 0) is an engine's extra cost per cached token per step beyond the roofline's KV read —
e.g. an engine that copies the context before attending (see
:func:`pdlib.calibrate.calibrate_with_context`). Keep it apart from ``item_seconds`` (below), a
cost per *request* in the step: a batch of b decodes at context L reads b·L cached tokens, so
steps that vary only the batch at one context cannot tell the two apart, and only steps that vary
the context at a fixed batch can.

**Measured terms.** That is the pure roofline, and the default: every term below is off (0 or
None) unless asked for, and with all of them off the numbers are bit for bit those of the formula
above. Real engines measured on A100s and H100s (:func:`pdlib.calibrate.from_published`) need
six more, each a field of :class:`CostModel` and a named part of :attr:`StepCost.breakdown`:

* ``overhead`` (s per step): what a step costs however little it computes — the engine's CPU
  work (scheduling, Python), launches not hidden behind the GPU.
* ``item_seconds`` (s per item per step): what each request in the step adds however few tokens
  it brings — sampling its next token, building its block table and attention metadata, the
  scheduler's bookkeeping of its sequence; the step pays ``item_seconds · n_items``. Inside a
  decode stretch the batch is constant, so the term is part of the stretch's fixed cost.
* ``layer_overhead`` (s per layer per step): the fixed latency of a decoder layer's ~9 kernels
  (GEMMs, norms, rotary, activation, residual add) that no byte or FLOP explains; the step pays
  ``n_layers · layer_overhead``.
* GEMM efficiency by shard size: the matmuls of a step of n new tokens run at ::

      η_mm(n) = η_F · n / (n + T½) · s / (s + s½),      s = h / tp (the hidden width per GPU)

  ``gemm_half_tokens`` = T½ (tokens) and ``gemm_half_width`` = s½ (elements). A GEMM is computed
  in output tiles spread over the GPU's SMs: with few token rows (small n) most of each tile's
  rows are padding, and with a narrow weight shard (large tp) there are too few tiles to fill the
  SMs, so the work reaches a fraction of peak that falls as n or s shrink and saturates at η_F.
  The hyperbola is the simplest form with that shape (one parameter per cause, η_mm = η_F/2 at
  n = T½ for wide shards), and its compute time ``C · (1 + T½/n) / η_F`` is the time of n + T½
  tokens: a GEMM behaves as if it always computed T½ padding rows. The LM head runs at
  η_mm(rows of logits); MLA's context up-projection at η_F. Both default 0 (η_mm = η_F).
* ``attention_efficiency`` η_A: the fraction of ``F_attn`` attention reaches (FlashAttention and
  paged decode kernels run far from the GEMMs' fraction: Sarathi-Serve's 1,024-token Yi-34B
  prefill on two A100s spends 13.7 ms in attention for 0.45 TFLOP per GPU, 11% of the A100's peak —
  osdi-experiments/table-2/results.csv, row 3, carried as :func:`pdlib.measurements.sarathi_mixed_batch`).
  None (default): η_F, as in the pure roofline.
* all-reduce latency + bandwidth: with ``allreduce_bandwidth`` set, each of the 2·n_layers
  all-reduces of a step takes ``allreduce_latency + bytes / allreduce_bandwidth`` (fitted to NCCL
  all-reduce times measured on the node, :func:`pdlib.calibrate.fit_allreduce`) instead of the
  link formula of :func:`allreduce_time`.

With them, for n = Σn new tokens and g rows of logits::

    compute = 2·N_mm·n / (tp·F_mm·η_mm(n)) + 2·h·V·g / (tp·F_mm·η_mm(g)) + U·c / (tp·F_mm·η_F)
              + attention / (tp·F_attn·η_A)
    time    = overhead + item_seconds·n_items + n_layers·layer_overhead + max(compute, memory) + comm
              + context_seconds·ΣL

and :attr:`StepCost.breakdown` splits ``time`` into ``per_step`` (overhead), ``per_item``
(item_seconds · n_items), ``per_layer``, ``roofline`` (``max(compute at a flat η_F, memory)``),
``efficiency`` (what η_mm and η_A add on top of it), ``all_reduce`` and ``context``: seconds that
sum to ``time``.

Every public function accepts numpy arrays where it takes sizes, so sweeps are vectorized.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from . import hardware as hw
from . import models as mdl
from .hardware import GPU, Link
from .models import ModelSpec

__all__ = ["CostModel", "StepCost", "fitting_cost_model", "kv_transfer_time", "kv_emission_rate",
           "allreduce_time", "mla_split", "ATTENTION_DTYPES"]


@dataclass(frozen=True)
class StepCost:
    """Cost of one engine step (scalars, or arrays of the same shape for a sweep).

    Times are seconds on each GPU of the instance; ``flops`` and ``bytes`` are per GPU.
    :attr:`breakdown` names the seconds of each term of the cost model (module docstring); they
    sum to ``time``.
    """

    time: float | np.ndarray            # overhead + item_time + layer_time + max(compute, memory) + comm + context_time
    compute_time: float | np.ndarray    # matmul / (F_mm · η_mm) + attention / (F_attn · η_A)
    memory_time: float | np.ndarray     # bytes / (W · η_W)
    comm_time: float | np.ndarray       # tensor-parallel all-reduces
    flops: float | np.ndarray           # FLOPs per GPU
    bytes: float | np.ndarray           # HBM bytes per GPU
    new_tokens: float | np.ndarray      # Σ new tokens in the step
    overhead: float = 0.0
    context_time: float | np.ndarray = 0.0   # context_seconds · ΣL (0 for a pure roofline)
    layer_time: float = 0.0                  # n_layers · layer_overhead (0 for a pure roofline)
    efficiency_time: float | np.ndarray = 0.0  # max(compute, memory) − roofline_time
    roofline_time: float | np.ndarray = 0.0    # max(compute at a flat η_F, memory)
    item_time: float | np.ndarray = 0.0        # item_seconds · n_items (0 for a pure roofline)

    @property
    def breakdown(self) -> dict:
        """The step's seconds by term, in waterfall order; they sum to :attr:`time` (to rounding):

        ``per_step`` (overhead), ``per_item`` (item_seconds · n_items), ``per_layer``
        (n_layers · layer_overhead), ``roofline`` (``max(compute at a flat η_F, memory)``: the pure
        roofline at this model's η_F and η_W), ``efficiency`` (what GEMM efficiency by shard size and
        attention efficiency add to it), ``all_reduce`` (tensor-parallel communication) and
        ``context`` (context_seconds · ΣL). Scalars or arrays, as the step's times are."""
        return {"per_step": self.overhead, "per_item": self.item_time, "per_layer": self.layer_time,
                "roofline": self.roofline_time, "efficiency": self.efficiency_time, "all_reduce": self.comm_time,
                "context": self.context_time}

    @property
    def bound(self):
        """"compute" or "memory": which roof the step sits under (array of str for sweeps)."""
        b = np.where(np.asarray(self.compute_time) >= np.asarray(self.memory_time), "compute", "memory")
        return str(b) if b.ndim == 0 else b

    @property
    def intensity(self):
        """Arithmetic intensity of the step, FLOP per byte."""
        return np.asarray(self.flops) / np.asarray(self.bytes)

    @property
    def time_per_token(self):
        """Seconds per new token (step time / Σ new tokens)."""
        return np.asarray(self.time) / np.asarray(self.new_tokens)

    def __repr__(self) -> str:
        if np.ndim(self.time) == 0:
            return (f"StepCost(time={self.time * 1e3:.3f} ms, compute={self.compute_time * 1e3:.3f} ms, "
                    f"memory={self.memory_time * 1e3:.3f} ms, comm={self.comm_time * 1e3:.3f} ms, "
                    f"bound={self.bound!r}, tokens={int(self.new_tokens)})")
        return f"StepCost(<{np.shape(self.time)} array of steps>)"


def _positive(name: str, value) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return a


def _non_negative(name: str, value) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return a


def allreduce_time(nbytes, n_gpus: int, link: Link):
    """Seconds for an all-reduce of ``nbytes`` among ``n_gpus`` over ``link``.

    Bandwidth term of a ring: each GPU sends and receives ``2·(n−1)/n · nbytes``. Latency term of a
    tree (what libraries switch to for the small messages of decode): ``2·⌈log2 n⌉`` hops::

        time = 2(n−1)/n · nbytes / bandwidth + 2·⌈log2 n⌉ · latency      (0 for one GPU)

    ``bandwidth`` and ``latency`` are those of the link the group really uses
    (:meth:`~pdlib.hardware.Link.group_bandwidth`): on a full mesh (MI300X's Infinity Fabric) a
    group of n reaches n − 1 of the peer links; an NVLink bridge joins pairs, so tp 4 on PCIe cards
    pays PCIe.
    """
    if n_gpus <= 1:
        return np.zeros_like(np.asarray(nbytes, dtype=np.float64))
    n = n_gpus
    ln = link.group_link(n)
    hops = 2 * int(np.ceil(np.log2(n)))
    return 2 * (n - 1) / n * np.asarray(nbytes, dtype=np.float64) / ln.group_bandwidth(n) + hops * ln.latency


@dataclass(frozen=True)
class CostModel:
    """Roofline time of engine steps for ``model`` served on ``tp`` GPUs of type ``gpu``.

    Parameters
    ----------
    model, gpu:
        A :class:`~pdlib.models.ModelSpec` / :class:`~pdlib.hardware.GPU` or a catalog name.
    tp:
        Tensor-parallel degree: weights, heads and FLOPs are split over ``tp`` GPUs, and every
        layer pays two all-reduces of the step's activations over ``comm_link``.
    dtype, kv_dtype:
        Storage type of weights/activations and of the KV cache ("bf16", "fp16", "fp8", ...).
        ``dtype`` also sets the matmuls' math: "fp8" runs them at the GPU's FP8 peak
        (``GPU.fp8_flops``: 2× the BF16 peak on H100/H200/B200, L40S, L4, MI300X) — weights and
        activations in FP8, as in DeepSeek-V3's FP8 inference or vLLM's FP8 W8A8 path. On a GPU
        without an FP8 peak (A100, A10G, T4) FP8 weights are *weight-only* quantization: the
        bytes halve, the matmuls dequantize and run at the BF16 peak (vLLM's FP8 Marlin kernel on
        Ampere). "int8" and "int4" are always taken as weight-only (W8A16, W4A16): fewer bytes,
        BF16 math.
    attention_dtype:
        Math type of attention (the score and value products): "bf16" (default) or "fp16" at
        ``GPU.flops``, or "fp8" at ``GPU.fp8_flops`` where the GPU has one (the BF16 peak
        otherwise). The default is the common FP8-weights path, which keeps attention in BF16
        (FlashAttention-2/3 and FlashMLA's BF16 kernels); "fp8" is FlashAttention-3's FP8 mode.
        Independent of ``kv_dtype``, which only sets the bytes read.
    flops_efficiency:
        η_F, fraction of peak FLOP/s the step's FLOPs reach (MFU), matmuls and attention alike.
        Default 0.6, between the two fractions Sarathi-Serve measured for a 1,024-token Yi-34B
        prefill on two A100s: 0.68 of peak in the linear layers and 0.51 over the whole step
        (github.com/microsoft/sarathi-serve, osdi-experiments/table-2/results.csv, row 3;
        carried as :func:`pdlib.measurements.sarathi_mixed_batch`). Fitted by calibration on a
        real device.
    bw_efficiency:
        η_W, fraction of peak memory bandwidth reached by weight and KV streaming. Default 0.8.
    overhead:
        Fixed seconds per step (scheduling, kernel launches). Default 0: pure roofline.
    comm_link:
        Link for tensor-parallel all-reduces; default the GPU's scale-up link (NVLink, or PCIe).
    mem_utilization:
        Fraction of GPU memory the engine may use for weights + KV (vLLM's default is 0.9).
    context_seconds:
        Extra seconds per cached token per step, outside the roofline: what an engine pays to
        reach its context beyond streaming the KV bytes once (a gather copy, small strided
        reads). Default 0 (attention reads the cache in place at η_W); fitted by
        :func:`pdlib.calibrate.calibrate_with_context` and :func:`pdlib.calibrate.from_published`
        (the latter only where its rows vary the context at a fixed batch).
    item_seconds:
        Fixed seconds per item (request) per step: sampling, block-table and attention-metadata
        building, the scheduler's per-sequence work; the step pays ``item_seconds · n_items``.
        Default 0; fitted by :func:`pdlib.calibrate.from_published` to the end-to-end sources.
    layer_overhead:
        Fixed seconds per decoder layer per step (the layer's kernel latencies); the step pays
        ``n_layers · layer_overhead``. Default 0.
    gemm_half_tokens, gemm_half_width:
        T½ (tokens) and s½ (elements of hidden width per GPU) of the GEMM efficiency
        ``η_mm(n) = η_F · n/(n + T½) · s/(s + s½)`` with ``s = hidden / tp`` (module docstring).
        Default 0 and 0: every matmul at η_F.
    attention_efficiency:
        η_A in (0, 1], the fraction of the attention peak attention reaches; None (default): η_F.
    allreduce_latency, allreduce_bandwidth:
        Seconds and bytes/s of one all-reduce fitted to measured collectives,
        ``time = latency + bytes / bandwidth`` for the ``tp`` GPUs of the instance (see
        :func:`pdlib.calibrate.fit_allreduce`). None (default): the link formula of
        :func:`allreduce_time` over ``comm_link``. A latency needs a bandwidth.
    calibration:
        Where the measured terms come from, in words (set by :func:`pdlib.calibrate.from_published`);
        "" for a hand-set or pure roofline model. Not compared: two models with the same terms
        are equal whatever their note.
    """

    model: ModelSpec
    gpu: GPU
    tp: int = 1
    dtype: str = "bf16"
    kv_dtype: str | None = None
    flops_efficiency: float = 0.6
    bw_efficiency: float = 0.8
    overhead: float = 0.0
    comm_link: Link | None = None
    mem_utilization: float = 0.9
    context_seconds: float = 0.0
    attention_dtype: str = "bf16"
    layer_overhead: float = 0.0
    gemm_half_tokens: float = 0.0
    gemm_half_width: float = 0.0
    attention_efficiency: float | None = None
    allreduce_latency: float | None = None
    allreduce_bandwidth: float | None = None
    item_seconds: float = 0.0
    calibration: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", mdl.get(self.model))
        object.__setattr__(self, "gpu", hw.gpu(self.gpu) if isinstance(self.gpu, str) else self.gpu)
        if isinstance(self.comm_link, str):
            object.__setattr__(self, "comm_link", hw.link(self.comm_link))
        if self.comm_link is None:
            object.__setattr__(self, "comm_link", self.gpu.scaleup_link)
        if self.kv_dtype is None:
            object.__setattr__(self, "kv_dtype", self.dtype)
        mdl.dtype_bytes(self.dtype), mdl.dtype_bytes(self.kv_dtype)        # validate names
        if str(self.attention_dtype).lower() not in ATTENTION_DTYPES:
            raise ValueError(f"attention_dtype must be one of {', '.join(map(repr, ATTENTION_DTYPES))}, "
                             f"got {self.attention_dtype!r}")
        m = self.model
        if not isinstance(self.tp, (int, np.integer)) or self.tp < 1:
            raise ValueError(f"tp must be a positive integer, got {self.tp!r}")
        if m.n_heads % self.tp:
            raise ValueError(f"tp={self.tp} does not divide {m.name}'s {m.n_heads} attention heads; "
                             f"allowed: {[d for d in range(1, m.n_heads + 1) if m.n_heads % d == 0]}")
        for knob in ("flops_efficiency", "bw_efficiency", "mem_utilization"):
            v = getattr(self, knob)
            if not 0 < v <= 1:
                raise ValueError(f"{knob} must be in (0, 1], got {v!r}")
        if self.overhead < 0:
            raise ValueError(f"overhead must be >= 0 seconds, got {self.overhead!r}")
        if not self.context_seconds >= 0:
            raise ValueError(f"context_seconds must be >= 0 seconds per cached token, got "
                             f"{self.context_seconds!r}")
        for knob, unit in (("layer_overhead", "seconds per layer"), ("gemm_half_tokens", "tokens"),
                           ("gemm_half_width", "elements"), ("item_seconds", "seconds per item")):
            v = getattr(self, knob)
            if not (isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{knob} must be >= 0 {unit} and finite, got {v!r}")
        if self.attention_efficiency is not None and not 0 < self.attention_efficiency <= 1:
            raise ValueError(f"attention_efficiency must be in (0, 1] or None, got "
                             f"{self.attention_efficiency!r}")
        if self.allreduce_bandwidth is None:
            if self.allreduce_latency is not None:
                raise ValueError("allreduce_latency needs allreduce_bandwidth (bytes/s): a fitted "
                                 "all-reduce is latency + bytes / bandwidth")
        else:
            if not (np.isfinite(self.allreduce_bandwidth) and self.allreduce_bandwidth > 0):
                raise ValueError(f"allreduce_bandwidth must be > 0 bytes/s, got {self.allreduce_bandwidth!r}")
            lat = 0.0 if self.allreduce_latency is None else self.allreduce_latency
            if not (np.isfinite(lat) and lat >= 0):
                raise ValueError(f"allreduce_latency must be >= 0 seconds, got {self.allreduce_latency!r}")
        if self.free_kv_bytes <= 0:
            raise ValueError(
                f"{m.name} does not fit: {self.weight_bytes_per_gpu / 1e9:.1f} GB of {self.dtype} "
                f"weights per GPU at tp={self.tp}, but a {self.gpu.name} offers "
                f"{self.gpu.mem_bytes * self.mem_utilization / 1e9:.1f} GB "
                f"({self.mem_utilization:.0%} of {self.gpu.mem_bytes / 1e9:.0f} GB); raise tp or use a "
                f"smaller dtype")

    # ------------------------------------------------------------------ memory capacity
    @property
    def kv_shards(self) -> int:
        """How many ways the KV cache is split over the tp GPUs: by KV head for MHA/GQA (heads
        are replicated once tp exceeds them), not at all for MLA's single latent."""
        if self.model.attention == "mla":
            return 1
        return min(self.tp, self.model.n_kv_heads)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes one token occupies on each GPU of the instance."""
        return self.model.kv_bytes_per_token(self.kv_dtype) / self.kv_shards

    @property
    def weight_bytes_per_gpu(self) -> float:
        return self.model.weight_bytes(self.dtype) / self.tp

    @property
    def free_kv_bytes(self) -> float:
        """Bytes per GPU left for the KV cache: ``mem_utilization · memory − weights / tp``."""
        return self.gpu.mem_bytes * self.mem_utilization - self.weight_bytes_per_gpu

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV the instance can hold: free KV bytes / KV bytes per token (per GPU)."""
        return int(self.free_kv_bytes // self.kv_bytes_per_token)

    def max_decode_batch(self, context) -> np.ndarray:
        """Largest number of requests of ``context`` tokens whose KV fits at once."""
        return np.floor(self.kv_capacity_tokens / _positive("context", context)).astype(np.int64)

    # ------------------------------------------------------------------ peaks
    @property
    def matmul_peak(self) -> float:
        """Peak FLOP/s per GPU of the weight matmuls: ``GPU.fp8_flops`` for FP8 weights on a GPU
        with an FP8 peak, ``GPU.flops`` (BF16/FP16) otherwise (weight-only quantization)."""
        if str(self.dtype).lower() == "fp8" and self.gpu.fp8_flops:
            return self.gpu.fp8_flops
        return self.gpu.flops

    @property
    def attention_peak(self) -> float:
        """Peak FLOP/s per GPU of attention: ``GPU.fp8_flops`` when ``attention_dtype="fp8"`` and
        the GPU has an FP8 peak, ``GPU.flops`` otherwise."""
        if str(self.attention_dtype).lower() == "fp8" and self.gpu.fp8_flops:
            return self.gpu.fp8_flops
        return self.gpu.flops

    @property
    def ridge(self) -> float:
        """Ridge point of the roof this model's matmuls run under, ``matmul_peak / W`` (FLOP/B):
        the GPU's :attr:`~pdlib.hardware.GPU.ridge` in BF16, twice it for FP8 on Hopper."""
        return self.matmul_peak / self.gpu.mem_bw

    # ------------------------------------------------------------------ the core formula
    def cost(self, n_items, new_tokens, context_tokens, attn_pairs, logits=None, *,
             decode_pairs=None, chunk_context=None) -> StepCost:
        """Price a step from batch totals (all array-friendly).

        ``n_items`` requests in the step, ``new_tokens`` = Σn, ``context_tokens`` = ΣL (cached
        tokens read), ``attn_pairs`` = Σ pairs(n, L), ``logits`` rows of output (default n_items).
        For an MLA model the attention FLOPs also depend on which items are decodes:
        ``decode_pairs`` = the part of ``attn_pairs`` that single-token items form (priced at the
        absorbed A_dec), ``chunk_context`` = ΣL over the multi-token items (each cached token
        rebuilt at U FLOPs). Left ``None`` they are inferred where the totals decide them — every
        item a decode (``new_tokens == n_items``) or a single multi-token item — and a mixed step
        of an MLA model without them raises ValueError (:func:`mla_split`). Other models ignore
        both. With ``d`` = decode_pairs and ``c`` = chunk_context::

            matmul    = 2·N_mm·Σn + 2·h·V·logits + U·c
            attention = A·(Σpairs − d) + A_dec·d
            compute   = matmul / (tp·F_mm·η_F) + attention / (tp·F_attn·η_F)
            memory    = ((weights read(Σn) + a·Σn) / tp + k·(ΣL + Σn)) / (W·η_W)
            time      = overhead + max(compute, memory) + comm(Σn) + context_seconds·ΣL

        With measured terms (module docstring) the matmuls run at η_mm, attention at η_A, and
        the step adds ``n_layers · layer_overhead`` and ``item_seconds · n_items``; comm(Σn) is the
        fitted all-reduce when set.
        """
        m, tp = self.model, self.tp
        T = np.asarray(new_tokens, dtype=np.float64)
        L = np.asarray(context_tokens, dtype=np.float64)
        pairs = np.asarray(attn_pairs, dtype=np.float64)
        logits = np.asarray(n_items if logits is None else logits, dtype=np.float64)
        body = 2.0 * m.matmul_params * T
        head = 2.0 * m.hidden * m.vocab * logits
        matmul = body + head
        attention = m.attention_flops_per_pair * pairs
        upproj = 0.0
        if m.attention == "mla":
            d, c = mla_split(n_items, T, L, pairs, decode_pairs, chunk_context)
            upproj = m.context_upprojection_flops_per_token * c
            matmul = matmul + upproj
            attention = attention + (m.decode_attention_flops_per_pair - m.attention_flops_per_pair) * d
        flops = (matmul + attention) / tp
        kv = self.kv_bytes_per_token
        bytes_ = (m.step_weight_bytes(T, self.dtype) / tp
                  + kv * (L + T)
                  + m.activation_bytes_per_token(self.dtype) * T / tp)
        flat = (matmul / (tp * self.matmul_peak * self.flops_efficiency)
                + attention / (tp * self.attention_peak * self.flops_efficiency))
        memory = bytes_ / (self.gpu.mem_bw * self.bw_efficiency)
        roof = np.maximum(flat, memory)
        if self.is_pure_compute:
            compute, efficiency = flat, 0.0
        else:
            mm = tp * self.matmul_peak
            eta_a = self.flops_efficiency if self.attention_efficiency is None else self.attention_efficiency
            compute = (body / (mm * self.gemm_efficiency(np.maximum(T, 1.0)))
                       + head / (mm * self.gemm_efficiency(np.maximum(logits, 1.0)))
                       + upproj / (mm * self.flops_efficiency)
                       + attention / (tp * self.attention_peak * eta_a))
            efficiency = np.maximum(compute, memory) - roof
        msg = T * m.hidden * mdl.dtype_bytes(self.dtype)
        comm = 2 * m.n_layers * self.allreduce_seconds(msg)
        context = self.context_seconds * L
        layers = m.n_layers * self.layer_overhead
        time = self.overhead + layers + roof + efficiency + comm + context
        per_item = 0.0
        if self.item_seconds:                 # left out at 0: the pure roofline's sum, bit for bit
            per_item = self.item_seconds * np.asarray(n_items, dtype=np.float64)
            time = time + per_item
        return StepCost(time=_scalar(time), compute_time=_scalar(compute), memory_time=_scalar(memory),
                        comm_time=_scalar(comm), flops=_scalar(flops), bytes=_scalar(bytes_),
                        new_tokens=_scalar(T), overhead=self.overhead, context_time=_scalar(context),
                        layer_time=float(layers), efficiency_time=_scalar(efficiency),
                        roofline_time=_scalar(roof), item_time=_scalar(per_item))

    # ------------------------------------------------------------------ measured terms
    @property
    def is_pure_compute(self) -> bool:
        """True when every matmul runs at η_F and attention too (``gemm_half_tokens``,
        ``gemm_half_width`` 0 and ``attention_efficiency`` None): the compute roof is the pure
        roofline's, computed by the very same expression."""
        return (self.gemm_half_tokens == 0 and self.gemm_half_width == 0
                and self.attention_efficiency is None)

    def gemm_efficiency(self, tokens):
        """η_mm(n) = η_F · n/(n + T½) · s/(s + s½), s = hidden / tp: the fraction of the matmul peak
        a GEMM over ``tokens`` rows reaches on one GPU's shard (array-friendly; η_F when T½ = s½ = 0)."""
        n = np.asarray(tokens, dtype=np.float64)
        s = self.model.hidden / self.tp
        return _scalar(self.flops_efficiency * n / (n + self.gemm_half_tokens)
                       * (s / (s + self.gemm_half_width)))

    def allreduce_seconds(self, nbytes):
        """Seconds of one all-reduce of ``nbytes`` among the instance's ``tp`` GPUs: 0 at tp = 1;
        ``allreduce_latency + nbytes / allreduce_bandwidth`` when fitted; otherwise
        :func:`allreduce_time` over ``comm_link``."""
        if self.allreduce_bandwidth is None or self.tp <= 1:
            return allreduce_time(nbytes, self.tp, self.comm_link)
        lat = 0.0 if self.allreduce_latency is None else self.allreduce_latency
        return lat + np.asarray(nbytes, dtype=np.float64) / self.allreduce_bandwidth

    def layer_kernel_time(self, tokens):
        """Seconds of one decoder layer's kernels other than attention's core — the QKV, output
        and MLP GEMMs, norms, rotary embedding, activation and residual add — on one GPU of the
        instance, for a step of ``tokens`` new tokens (array-friendly)::

            layer_overhead + max(2·N_l·n / (tp·F_mm·η_mm(n)), (b·N_l + a_l·n) / (tp·W·η_W))

        with N_l = ``matmul_params / n_layers`` (the mean layer), a_l the activation bytes per
        token of one layer and b the bytes per weight. This is the quantity Vidur profiles per
        operator (the sum of its per-layer operator times); the same terms, times ``n_layers``,
        are the layers' share of :meth:`cost` (which adds the LM head, attention, KV bytes,
        all-reduces and the per-step overhead)."""
        m, tp = self.model, self.tp
        n = _positive("tokens", tokens)
        per = m.matmul_params / m.n_layers
        compute = 2.0 * per * n / (tp * self.matmul_peak * self.gemm_efficiency(n))
        memory = ((per * mdl.dtype_bytes(self.dtype) + m.activation_bytes_per_token(self.dtype) / m.n_layers * n)
                  / (tp * self.gpu.mem_bw * self.bw_efficiency))
        return _scalar(self.layer_overhead + np.maximum(compute, memory))

    # ------------------------------------------------------------------ convenient forms
    def step(self, items: Iterable[Sequence[int]] | np.ndarray) -> StepCost:
        """Cost of one step running ``items``, a list (or ``(k, 2)`` array) of
        ``(new_tokens, context_tokens)``, e.g. ``[(512, 0), (1, 1000), (1, 2000)]``."""
        a = np.asarray(list(items) if not isinstance(items, np.ndarray) else items, dtype=np.float64)
        if a.size == 0:
            raise ValueError("a step needs at least one (new_tokens, context_tokens) item")
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"items must be (new_tokens, context_tokens) pairs, got shape {a.shape}")
        n, L = a[:, 0], a[:, 1]
        _positive("new_tokens", n), _non_negative("context_tokens", L)
        pairs = mdl.attention_pairs(n, L, self.model.sliding_window)
        single = n == 1
        return self.cost(len(a), n.sum(), L.sum(), pairs.sum(), decode_pairs=pairs[single].sum(),
                         chunk_context=L[~single].sum())

    def prefill(self, tokens, context=0, batch=1) -> StepCost:
        """A step of ``batch`` identical prefill chunks of ``tokens`` new tokens after ``context``
        cached ones (``context=0``: whole prompts). Array-friendly. A one-token chunk is priced
        as a decode (``n == 1``), as engines run it."""
        n, L = _positive("tokens", tokens), _non_negative("context", context)
        B = _positive("batch", batch)
        pairs = B * mdl.attention_pairs(n, L, self.model.sliding_window)
        single = n == 1
        return self.cost(B, B * n, B * L, pairs, decode_pairs=np.where(single, pairs, 0.0),
                         chunk_context=np.where(single, 0.0, B * L))

    def decode(self, batch, context) -> StepCost:
        """A decode step of ``batch`` requests, each with ``context`` cached tokens (mean context
        for a mixed batch: the cost is linear in ΣL). Array-friendly."""
        B, L = _positive("batch", batch), _non_negative("context", context)
        pairs = B * mdl.attention_pairs(1, L, self.model.sliding_window)
        return self.cost(B, B, B * L, pairs, decode_pairs=pairs, chunk_context=0.0)

    def prefill_time(self, prompt) -> np.ndarray | float:
        """Seconds to prefill one prompt of ``prompt`` tokens alone (shortcut for ``prefill().time``)."""
        return self.prefill(prompt).time

    def decode_ridge_batch(self, context: float = 0.0) -> float:
        """Decode batch size at which compute time equals memory time (the batch where decode would
        turn compute-bound if KV memory allowed it), found by bisection on the continuous batch."""
        return _memory_bound_edge(lambda b: self.decode(b, context).bound == "memory")

    def prefill_ridge_tokens(self, context: float = 0.0) -> float:
        """Prompt length (new tokens in one prefill step) above which the prefill is compute-bound;
        shorter prefills — short prompts, the few uncached tokens a prefix-cache hit leaves — are
        memory-bound, reading every weight for few tokens. Found by bisection on the continuous
        token count, like :meth:`decode_ridge_batch`; ``context`` cached tokens precede the chunk.

        Every GPU of a tp instance sees all the step's tokens and holds 1/tp of the weights, so
        the threshold is also the count per GPU and barely moves with tp. By hand, for a dense
        model at context 0 (attention, LM head and activations left out):
        ``P* ≈ (η_F·F_mm / (η_W·W)) · b·N_read / (2·N_mm)``, about ``ridge · η_F/η_W`` in BF16
        (295 · 0.6/0.8 ≈ 221 tokens for Llama-3.1-8B on an H100-SXM). FP8 on Hopper doubles F_mm
        and halves b: the same threshold. FP8 weight-only (A100) halves it."""
        L = float(_non_negative("context", context))
        return _memory_bound_edge(lambda n: self.prefill(n, L).bound == "memory")

    def with_(self, **changes) -> "CostModel":
        """A copy with some knobs changed, e.g. ``cm.with_(tp=8, flops_efficiency=0.5)``.

        A fitted all-reduce (``allreduce_latency``, ``allreduce_bandwidth``) belongs to the tp it
        was measured at and is kept as it is; for another tp of a published calibration ask
        :func:`pdlib.calibrate.from_published` again."""
        return replace(self, **changes)

    #: The fields :meth:`knobs` returns: everything but the model, GPU, tp and dtypes.
    KNOBS = ("flops_efficiency", "bw_efficiency", "overhead", "item_seconds", "context_seconds",
             "layer_overhead", "gemm_half_tokens", "gemm_half_width", "attention_efficiency",
             "allreduce_latency", "allreduce_bandwidth", "calibration")

    def knobs(self) -> dict:
        """The efficiency and measured-term fields as a dict (:attr:`KNOBS`), e.g. to give the
        simulator a calibrated model's terms: ``pdlib.sim.colocated(..., cost_kwargs=cm.knobs())``
        (same tp, so the fitted all-reduce still applies)."""
        return {k: getattr(self, k) for k in self.KNOBS}

    def __repr__(self) -> str:
        extra = (f", context={self.context_seconds * 1e9:g} ns/token" if self.context_seconds else "")
        if str(self.attention_dtype).lower() != "bf16":
            extra += f", attention in {self.attention_dtype}"
        if self.item_seconds:
            extra += f", per item={self.item_seconds * 1e6:.3g} µs"
        if self.layer_overhead:
            extra += f", per layer={self.layer_overhead * 1e6:.3g} µs"
        if self.gemm_half_tokens or self.gemm_half_width:
            extra += f", GEMM T½={self.gemm_half_tokens:.3g} tokens s½={self.gemm_half_width:.3g}"
        if self.attention_efficiency is not None:
            extra += f", η_A={self.attention_efficiency:.3g}"
        if self.allreduce_bandwidth is not None:
            extra += (f", all-reduce {(self.allreduce_latency or 0) * 1e6:.3g} µs + bytes/"
                      f"{self.allreduce_bandwidth / 1e9:.3g} GB/s")
        return (f"CostModel({self.model.name} on {self.tp}×{self.gpu.name}, {self.dtype}, "
                f"η_F={self.flops_efficiency}, η_W={self.bw_efficiency}, overhead={self.overhead * 1e3:g} ms"
                f"{extra})")


#: Allowed values of ``CostModel.attention_dtype``.
ATTENTION_DTYPES = ("bf16", "fp16", "fp8")


def mla_split(n_items, new_tokens, context_tokens, attn_pairs, decode_pairs=None,
              chunk_context=None):
    """``(decode_pairs, chunk_context)`` of a step of an MLA model, from batch totals.

    Given values pass through. A missing one is inferred where the totals decide it: a step whose
    ``new_tokens`` equal its ``n_items`` holds only single-token items (decodes: every pair
    absorbed, no context rebuilt); a step of one item with more new tokens is one prefill chunk
    (no decode pairs, its whole context rebuilt). Any other step mixes the two kinds and needs
    both values; ValueError otherwise. Shared by :meth:`CostModel.cost` and the simulator's
    :class:`pdlib.sim.pricing.StepPricer`, so they agree."""
    if decode_pairs is not None and chunk_context is not None:
        return decode_pairs, chunk_context
    N = np.asarray(n_items, dtype=np.float64)
    T = np.asarray(new_tokens, dtype=np.float64)
    all_decode = T == N
    if np.any(~all_decode & (N != 1)):
        raise ValueError("a step that mixes decodes with prefill chunks of an MLA model needs "
                         "decode_pairs (Σ pairs of its single-token items) and chunk_context "
                         "(Σ cached tokens of its multi-token items): the absorbed decode and the "
                         "non-absorbed prefill cost different FLOPs per pair")
    if decode_pairs is None:
        decode_pairs = np.where(all_decode, attn_pairs, 0.0)[()]
    if chunk_context is None:
        chunk_context = np.where(all_decode, 0.0, context_tokens)[()]
    return decode_pairs, chunk_context


def fitting_cost_model(model, gpu, tp: int = 1, max_tp: int = 8, **knobs) -> tuple[CostModel, str]:
    """A :class:`~pdlib.cost.CostModel` for ``model`` on ``gpu`` at tensor-parallel degree ``tp``;
    when the weights do not fit, tp is raised through the powers of two that divide the model's
    heads, up to ``max_tp`` (8: one node). ``knobs`` go to CostModel (efficiencies, dtype, ...).

    Returns ``(cost_model, note)``: ``note`` is "" when ``tp`` worked, otherwise a sentence saying
    why tp was raised. Raises ValueError (with the cost model's reason) when no degree fits.
    """
    spec = mdl.get(model)
    degrees = [tp] + [d for d in (2 ** k for k in range(11))
                      if tp < d <= max_tp and spec.n_heads % d == 0]
    first_error = None
    for d in degrees:
        try:
            cm = CostModel(spec, gpu, tp=d, **knobs)
        except ValueError as e:
            first_error = first_error or e
            continue
        note = "" if d == tp else f"{first_error}. Using tp={d} instead."
        return cm, note
    raise ValueError(f"{first_error}. No tensor-parallel degree up to {degrees[-1]} fits either "
                     f"(one node holds 8 GPUs): use a smaller dtype (fp8) or a bigger GPU.")


def _memory_bound_edge(memory_bound, limit: float = 1e9) -> float:
    """The size x ≥ 1 (batch or tokens, continuous) where ``memory_bound(x)`` turns False: doubling
    from 1 brackets it, 60 bisections pin it. ``inf`` when it stays memory-bound up to ``limit``."""
    lo, hi = 1.0, 1.0
    while memory_bound(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return float("inf")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if memory_bound(mid) else (lo, mid)
    return hi


def _scalar(x):
    a = np.asarray(x, dtype=np.float64)
    return float(a) if a.ndim == 0 else a


# ---------------------------------------------------------------------- KV transfer
def kv_transfer_time(model: ModelSpec | str, tokens, link: Link | str, *, dtype: str = "bf16",
                     parallel_links: int = 1, mode: str = "whole", prefill_time=None):
    """Seconds to move the KV cache of ``tokens`` tokens over ``link``.

    ``mode="whole"``: the whole cache is sent after prefill ends:
    ``bytes / (parallel_links · bandwidth) + latency``. With tensor parallelism each rank sends its
    own shard over its own NIC, so pass ``parallel_links=tp`` (8 NICs for an 8-GPU node).

    ``mode="layerwise"``: layer i is sent as soon as the prefill has computed it, overlapping
    transfer with compute; pass the prefill's ``prefill_time``. With l layers, a = prefill/l and
    b = transfer/l, the last layer lands ``max(b, transfer − prefill + a)`` after the prefill ends;
    that *exposed* time (plus latency) is what is returned.
    """
    spec = mdl.get(model)
    ln = hw.link(link) if isinstance(link, str) else link
    n = _non_negative("tokens", tokens)
    if parallel_links < 1:
        raise ValueError(f"parallel_links must be >= 1, got {parallel_links}")
    wire = spec.kv_bytes(n, dtype) / (parallel_links * ln.bandwidth)
    if mode == "whole":
        return _scalar(wire + ln.latency)
    if mode != "layerwise":
        raise ValueError(f"mode must be 'whole' or 'layerwise', got {mode!r}")
    if prefill_time is None:
        raise ValueError("mode='layerwise' needs prefill_time (seconds) to overlap with")
    P = _non_negative("prefill_time", prefill_time)
    layers = spec.n_layers
    exposed = np.maximum(wire / layers, wire - P + P / layers)
    return _scalar(exposed + ln.latency)


def kv_emission_rate(model: ModelSpec | str, gpu: GPU | str, *, mfu: float = 0.5, prompt=None,
                     dtype: str = "bf16"):
    """Bytes/s of KV cache a GPU produces while prefilling at ``mfu`` of its peak FLOP/s (the BF16
    peak ``GPU.flops``; an FP8 prefill on a GPU with FP8 tensor cores runs its matmuls, and so
    emits, up to twice as fast).

    rate = KV bytes per token / (prefill FLOPs per token / (F · mfu)). Compare with a link's
    bandwidth: when the link is faster than this rate, layer-by-layer transfer keeps up with
    prefill and the network adds almost nothing to TTFT. ``prompt=None`` counts only the matmul
    FLOPs (2·N_mm per token: the short-prompt limit, and an upper bound on the rate); a prompt
    length adds attention and the one LM-head row, which lower the rate for long prompts.
    """
    spec = mdl.get(model)
    g = hw.gpu(gpu) if isinstance(gpu, str) else gpu
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu!r}")
    if prompt is None:
        flops_per_token = 2.0 * spec.matmul_params
    else:
        P = _positive("prompt", prompt)
        flops_per_token = spec.prefill_flops(P) / P
    return _scalar(spec.kv_bytes_per_token(dtype) * g.flops * mfu / flops_per_token)
