"""Transformer model shapes, and the parameter, byte and FLOP counts that follow from them.

A :class:`ModelSpec` holds what a model's Hugging Face ``config.json`` says (layers, widths, heads,
experts, latent ranks); everything else is computed from those fields:

* parameters (total and active per token for mixture-of-experts models),
* weight bytes, and the weight bytes one engine step actually reads,
* KV-cache bytes per token: ``2 · layers · kv_heads · head_dim · b`` for MHA/GQA and
  ``layers · (kv_lora_rank + rope_dim) · b`` for MLA (DeepSeek's compressed latent cache),
* FLOPs: ``2`` FLOPs per matmul weight per token, plus attention, whose cost depends on how many
  (query, key) pairs a chunk of new tokens touches and, for MLA, on which of its two forms runs
  (see :meth:`ModelSpec.attention_flops_per_pair` and :meth:`ModelSpec.flops`).

The catalog is built from the config.json fields of each model, with the config's address as the
source, so the numbers can be checked against the real files.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

__all__ = [
    "DTYPE_BYTES", "ModelSpec", "dtype_bytes", "from_hf_config", "get", "names", "register",
    "attention_pairs", "attention_pairs_scalar",
]

#: Bytes per element of each supported storage type.
DTYPE_BYTES: dict[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype`` ("fp32", "bf16", "fp16", "fp8", "int8", "int4")."""
    try:
        return DTYPE_BYTES[str(dtype).lower()]
    except KeyError:
        raise KeyError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


def attention_pairs(new_tokens, context, window: int | None = None):
    """Number of (query, key) pairs attended when ``new_tokens`` follow ``context`` cached tokens.

    Causal attention: new token i (1-based) sees the ``context`` cached tokens and the first i new
    ones, so the count is ``n·L + n(n+1)/2``. With a sliding window w each query sees at most w keys:
    ``Σ_{p=L+1}^{L+n} min(p, w)``. Works elementwise on numpy arrays.
    """
    n = np.asarray(new_tokens, dtype=np.float64)
    L = np.asarray(context, dtype=np.float64)
    full = n * L + n * (n + 1) / 2
    if window is None:
        return full
    w = float(window)
    # positions p = L+1 .. L+n ; those <= w contribute p, the rest contribute w
    hi = np.minimum(L + n, w)                       # last position still inside the window
    inside = np.clip(hi - L, 0, None)               # how many positions are <= w
    sum_inside = inside * (L + 1 + hi) / 2          # arithmetic series L+1 .. hi
    return np.where(L + n <= w, full, sum_inside + (n - inside) * w)


def attention_pairs_scalar(new_tokens: int, context: int, window: int | None = None) -> float:
    """:func:`attention_pairs` for one item, in plain Python: the simulator calls it once per
    item per step, and the numpy version costs ~50× more per call (~25 µs against ~0.5 µs).

    Same definition, same float64 operations in the same order, so the result is bit-identical
    to ``float(attention_pairs(new_tokens, context, window))``: ``n·L + n(n+1)/2`` pairs while
    the last position ``L+n`` ≤ w; otherwise ``Σ_{p=L+1}^{w} p`` for the positions still inside
    the window (none when ``L ≥ w``) plus ``w`` for each of the others.
    """
    n, L = float(new_tokens), float(context)
    if window is None or L + n <= window:
        return n * L + n * (n + 1) / 2
    w = float(window)
    inside = w - L if L < w else 0.0               # positions L+1 .. w, each <= w
    return inside * (L + 1 + w) / 2 + (n - inside) * w


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer, as its ``config.json`` gives it.

    Widths are in elements; ``ffn`` is the MLP's intermediate size (per expert for MoE layers).
    ``attention`` is "mha" (kv_heads == heads), "gqa" (fewer KV heads) or "mla" (DeepSeek's
    multi-head latent attention, which caches a ``kv_lora_rank + qk_rope_dim`` latent per token).
    """

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    mlp: str = "swiglu"                 # "swiglu" (gate, up, down) or "gelu"/"relu" (up, down)
    norm: str = "rmsnorm"               # "rmsnorm" (weight) or "layernorm" (weight + bias)
    tied_embeddings: bool = False
    qkv_bias: bool = False              # Qwen2 has biases on q, k, v
    linear_bias: bool = False           # GPT-2 / OPT: biases on every linear layer
    learned_positions: int = 0          # rows of a learned position table (GPT-2, OPT); 0 = RoPE
    max_context: int = 4096             # tokens the model was trained to handle
    rope_theta: float = 10000.0
    sliding_window: int | None = None   # Mistral-7B-v0.1: 4,096
    # mixture of experts (0 experts = dense)
    n_experts: int = 0
    experts_per_token: int = 0
    n_shared_experts: int = 0
    moe_ffn: int = 0                    # intermediate size of one expert (Mixtral: = ffn)
    first_dense_layers: int = 0         # DeepSeek-V3: the first 3 layers are dense
    # multi-head latent attention (DeepSeek-V2/V3)
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_dim: int = 0
    qk_nope_dim: int = 0
    v_head_dim: int = 0
    source: str = ""
    hf_config: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{self.name}: {f} must be a positive integer, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"{self.name}: n_heads={self.n_heads} is not a multiple of "
                             f"n_kv_heads={self.n_kv_heads}")
        if self.mlp not in ("swiglu", "gelu", "relu"):
            raise ValueError(f"{self.name}: mlp must be 'swiglu', 'gelu' or 'relu', got {self.mlp!r}")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"{self.name}: norm must be 'rmsnorm' or 'layernorm', got {self.norm!r}")
        if self.n_experts and not (0 < self.experts_per_token <= self.n_experts and self.moe_ffn > 0):
            raise ValueError(f"{self.name}: MoE needs 0 < experts_per_token <= n_experts and moe_ffn > 0")

    # ----------------------------------------------------------------- shape helpers
    @property
    def attention(self) -> str:
        """"mla", "mha" or "gqa"."""
        if self.kv_lora_rank:
            return "mla"
        return "mha" if self.n_kv_heads == self.n_heads else "gqa"

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def qk_dim(self) -> int:
        """Width of one head's query/key dot product (MLA: nope + rope part)."""
        return self.qk_nope_dim + self.qk_rope_dim if self.attention == "mla" else self.head_dim

    @property
    def v_dim(self) -> int:
        """Width of one head's value vector."""
        return self.v_head_dim if self.attention == "mla" else self.head_dim

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.first_dense_layers if self.is_moe else 0

    # ----------------------------------------------------------------- parameters
    def _attention_params(self) -> int:
        h, H = self.hidden, self.n_heads
        if self.attention == "mla":
            q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * H * self.qk_dim
                 if self.q_lora_rank else h * H * self.qk_dim)
            kv = (h * (self.kv_lora_rank + self.qk_rope_dim) + self.kv_lora_rank
                  + self.kv_lora_rank * H * (self.qk_nope_dim + self.v_head_dim))
            return q + kv + H * self.v_head_dim * h
        q_out, kv_out = H * self.head_dim, self.n_kv_heads * self.head_dim
        p = h * (q_out + 2 * kv_out) + q_out * h
        if self.qkv_bias or self.linear_bias:
            p += q_out + 2 * kv_out
        if self.linear_bias:
            p += h
        return p

    def _mlp_params(self, inter: int) -> int:
        mats = 3 if self.mlp == "swiglu" else 2
        p = mats * self.hidden * inter
        if self.linear_bias:
            p += inter + self.hidden
        return p

    def _norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    @property
    def embedding_params(self) -> int:
        """Token embedding table plus any learned position table."""
        return self.vocab * self.hidden + self.learned_positions * self.hidden

    @property
    def lm_head_params(self) -> int:
        """Output projection; 0 extra parameters when tied to the embedding."""
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    def _layer_mlp_params(self, active: bool) -> tuple[int, int]:
        """(MLP params of one dense layer, of one MoE layer), counting only routed experts used
        per token when ``active``."""
        dense = self._mlp_params(self.ffn)
        if not self.is_moe:
            return dense, 0
        routed = self.experts_per_token if active else self.n_experts
        moe = ((routed + self.n_shared_experts) * self._mlp_params(self.moe_ffn)
               + self.hidden * self.n_experts)                     # router
        return dense, moe

    def _params(self, active: bool) -> int:
        dense_mlp, moe_mlp = self._layer_mlp_params(active)
        n_dense = self.n_layers - self.n_moe_layers
        per_layer = self._attention_params() + 2 * self._norm_params()
        body = self.n_layers * per_layer + n_dense * dense_mlp + self.n_moe_layers * moe_mlp
        return body + self.embedding_params + self.lm_head_params + self._norm_params()

    @property
    def params(self) -> int:
        """Total parameters (all experts)."""
        return self._params(active=False)

    @property
    def active_params(self) -> int:
        """Parameters one token passes through (routed top-k plus shared experts for MoE)."""
        return self._params(active=True)

    @property
    def matmul_params(self) -> int:
        """Active weights every token multiplies by: all layers' linear weights, without the
        embedding lookup and without the LM head (which only the last position of a request needs).
        Linear FLOPs per token = 2 × this."""
        dense_mlp, moe_mlp = self._layer_mlp_params(active=True)
        n_dense = self.n_layers - self.n_moe_layers
        return (self.n_layers * self._attention_params() + n_dense * dense_mlp
                + self.n_moe_layers * moe_mlp)

    # ----------------------------------------------------------------- bytes
    def weight_bytes(self, dtype: str = "bf16") -> float:
        """Bytes to hold all weights in ``dtype``: ``params × bytes/element``."""
        return self.params * dtype_bytes(dtype)

    def step_weight_bytes(self, tokens, dtype: str = "bf16"):
        """Weight bytes one forward step reads for ``tokens`` new tokens (array-friendly).

        Dense models read every weight once per step, however many tokens it holds (the embedding
        table is only gathered, so it is left out; the LM head is read). An MoE layer reads only the
        experts some token was routed to: with uniform routing of T tokens, each picking k of E
        experts, the expected number of distinct experts is ``E · (1 − (1 − k/E)^T)``.
        """
        b = dtype_bytes(dtype)
        head = self.vocab * self.hidden
        if not self.is_moe:
            return np.asarray((self.params - self.embedding_params + (self.lm_head_params == 0) * head)
                              * b * np.ones_like(np.asarray(tokens, dtype=np.float64)))
        T = np.asarray(tokens, dtype=np.float64)
        E, k = self.n_experts, self.experts_per_token
        touched = E * (1 - (1 - k / E) ** T)
        expert = self._mlp_params(self.moe_ffn)
        all_routed = self.n_moe_layers * E * expert
        rest = self.params - self.embedding_params + (self.lm_head_params == 0) * head - all_routed
        return (rest + self.n_moe_layers * touched * expert) * b

    def kv_bytes_per_token(self, dtype: str = "bf16") -> int | float:
        """KV-cache bytes one token occupies, over all layers.

        MHA/GQA: ``2 (K and V) · layers · kv_heads · head_dim · b``.
        MLA: ``layers · (kv_lora_rank + qk_rope_dim) · b`` (one shared latent, no separate K/V).
        """
        b = dtype_bytes(dtype)
        if self.attention == "mla":
            n = self.n_layers * (self.kv_lora_rank + self.qk_rope_dim) * b
        else:
            n = 2 * self.n_layers * self.n_kv_heads * self.head_dim * b
        return int(n) if float(n).is_integer() else n

    def kv_bytes(self, tokens, dtype: str = "bf16"):
        """KV-cache bytes of ``tokens`` tokens (array-friendly)."""
        return np.asarray(tokens, dtype=np.float64) * self.kv_bytes_per_token(dtype)

    def activation_bytes_per_token(self, dtype: str = "bf16") -> float:
        """Bytes of activations each new token moves through HBM in one step (read + write of the
        inputs and outputs of each layer's matmuls): per layer ``4h + 2·q + 2·kv + 3·f`` elements,
        with q = heads·qk_dim, kv = kv_heads·head_dim (MLA: the latent), f the active MLP width.
        Small next to weights and KV except for big prefill chunks; kept so no byte is free."""
        q = self.n_heads * self.qk_dim
        kv = (self.kv_lora_rank + self.qk_rope_dim) if self.attention == "mla" \
            else self.n_kv_heads * self.head_dim
        f = self.ffn if not self.is_moe else (self.experts_per_token + self.n_shared_experts) * self.moe_ffn
        return self.n_layers * (4 * self.hidden + 2 * q + 2 * kv + 3 * f) * dtype_bytes(dtype)

    # ----------------------------------------------------------------- FLOPs
    @property
    def attention_flops_per_pair(self) -> int:
        """FLOPs for one (query, key) pair over all layers in the form a prefill runs:
        ``2 · heads · (qk_dim + v_dim) · layers`` (the q·k dot product and the weighted sum of v,
        2 FLOPs per multiply-add). DeepSeek-V3: 2 · 128 · (192 + 128) · 61 = 5.0 MFLOP.

        For MLA this is the *non-absorbed* ("compute-friendly") form: keys and values are
        up-projected from the latent, then attention runs per head at the small head widths.
        Decode runs the absorbed form instead: :attr:`decode_attention_flops_per_pair`."""
        return 2 * self.n_heads * (self.qk_dim + self.v_dim) * self.n_layers

    @property
    def decode_attention_flops_per_pair(self) -> int:
        """FLOPs for one (query, key) pair over all layers in the form a decode runs.

        MHA/GQA: the same as :attr:`attention_flops_per_pair`. MLA: the *weight-absorbed* form,
        ``2 · heads · (kv_lora_rank + qk_rope_dim + kv_lora_rank) · layers``: W_UK is folded into
        the query and W_UV applied after attention, so every head attends directly over the cached
        latent (scores over the 576-wide latent plus rope part, values over the 512-wide latent),
        never rebuilding per-head keys and values for the whole context. DeepSeek-V3:
        2 · 128 · (512 + 64 + 512) · 61 = 17.0 MFLOP per pair, 3.4× the 5.0 of the prefill form,
        against 70,272 bytes of KV read per cached token (BF16): ~242 FLOP/B for the attention
        alone, near an H100's ridge. Source: DeepSeek-V2 (arXiv:2405.04434) §2.1.2–2.1.3 on
        absorbing W_UK and W_UV; vLLM's MLA backend runs decode this way
        (vllm/v1/attention/backends/mla/common.py, "Data-Movement Friendly Approach"), as does
        FlashMLA (github.com/deepseek-ai/FlashMLA)."""
        if self.attention != "mla":
            return self.attention_flops_per_pair
        r = self.kv_lora_rank
        return 2 * self.n_heads * (r + self.qk_rope_dim + r) * self.n_layers

    @property
    def context_upprojection_flops_per_token(self) -> int:
        """FLOPs a multi-token chunk of an MLA model spends per *cached* token to rebuild that
        token's per-head keys (nope part) and values from its latent before attending in the
        non-absorbed form: ``2 · kv_lora_rank · heads · (qk_nope_dim + v_head_dim) · layers``
        (the kv_b_proj matmul over the context). DeepSeek-V3: 2 · 512 · 128 · 256 · 61 =
        2.05 GFLOP per cached token. 0 for MHA/GQA, whose cache holds the keys and values.

        This is how vLLM computes a prefill chunk's attention to its context
        (vllm/v1/attention/backends/mla/common.py, "Chunked Prefill": ``cache_kv_c_chunk @
        W_UK`` and ``@ W_UV`` per context chunk); a decode never pays it."""
        if self.attention != "mla":
            return 0
        return (2 * self.kv_lora_rank * self.n_heads * (self.qk_nope_dim + self.v_head_dim)
                * self.n_layers)

    def decode_attention_intensity(self, kv_dtype: str = "bf16") -> float:
        """FLOP per byte of a decode's attention alone: :attr:`decode_attention_flops_per_pair`
        ÷ :meth:`kv_bytes_per_token` (each cached token is one pair and is read once). The limit
        a decode step's intensity approaches when the batch is large enough that weight reads no
        longer count and the context long enough that the matmuls do not either. GQA models sit
        at a few FLOP/B (Llama-3.1-70B: 8); MLA at hundreds (DeepSeek-V3, BF16 cache: 242)."""
        return self.decode_attention_flops_per_pair / self.kv_bytes_per_token(kv_dtype)

    def decode_intensity_limit(self, context, dtype: str = "bf16", kv_dtype: str | None = None):
        """FLOP per byte a decode approaches when its batch is so large that reading the weights
        no longer counts: one request's :meth:`flops` ``(1, context)`` over the bytes it alone
        moves, ``kv_bytes_per_token · (context + 1) + activation_bytes_per_token`` (array-friendly).
        Per GPU this holds when each GPU runs whole requests' attention (data-parallel attention,
        as DeepSeek deploys MLA); splitting heads over tp GPUs that each read the whole latent
        divides the attention's share by tp. It falls towards
        :meth:`decode_attention_intensity` as the context grows."""
        kd = dtype if kv_dtype is None else kv_dtype
        L = np.asarray(context, dtype=np.float64)
        return (self.flops(1, L) / (self.kv_bytes_per_token(kd) * (L + 1)
                                    + self.activation_bytes_per_token(dtype)))[()]

    def attention_flops(self, new_tokens, context=0):
        """Attention FLOPs of one item of ``new_tokens`` new tokens after ``context`` cached ones
        (array-friendly), in the form a serving engine runs for that item:

        * a decode item (``new_tokens == 1``): ``decode_attention_flops_per_pair · pairs`` (MLA:
          weight-absorbed);
        * a prefill or a prefill chunk (``new_tokens > 1``): ``attention_flops_per_pair · pairs``
          plus, for MLA, ``context_upprojection_flops_per_token · context`` (the chunk's cached
          context rebuilt into keys and values, then attended in the non-absorbed form).

        The split follows vLLM, which sends single-token queries to the absorbed decode kernel and
        everything longer to the prefill path (vllm/v1/attention/backends/mla/common.py). For a
        small chunk after a long context the absorbed form would be cheaper (per cached token
        ``17.0 MFLOP · c`` against ``5.0 MFLOP · c + 2.05 GFLOP`` for DeepSeek-V3: below
        c ≈ 171 tokens); vLLM's comment notes this as future work and pdlib prices what it does.
        """
        n = np.asarray(new_tokens, dtype=np.float64)
        L = np.asarray(context, dtype=np.float64)
        pairs = attention_pairs(n, L, self.sliding_window)
        chunk = self.attention_flops_per_pair * pairs + self.context_upprojection_flops_per_token * L
        return np.where(n == 1, self.decode_attention_flops_per_pair * pairs, chunk)[()]

    def flops(self, new_tokens, context=0, logits: int | np.ndarray = 1):
        """FLOPs to run ``new_tokens`` tokens of one request whose first ``context`` tokens are cached.

        ``2 · matmul_params · n  +  attention_flops(n, L)  +  2 · h · V · logits``
        where ``logits`` is how many positions need output logits (1 for a prefill or a decode step,
        0 for a prefill chunk that is not the last), and :meth:`attention_flops` prices the pairs
        in the form the item runs (MLA: absorbed for a decode, non-absorbed for a prefill).
        Works elementwise on arrays.
        """
        n = np.asarray(new_tokens, dtype=np.float64)
        return (2.0 * self.matmul_params * n + self.attention_flops(n, context)
                + 2.0 * self.hidden * self.vocab * np.asarray(logits, dtype=np.float64))

    def prefill_flops(self, prompt):
        """FLOPs of one whole prefill of ``prompt`` tokens (with its one row of logits)."""
        return self.flops(prompt, 0, 1)

    def with_(self, **changes) -> "ModelSpec":
        """A copy with some fields changed, e.g. ``spec.with_(n_layers=2, name="small")``."""
        return replace(self, **changes)

    def summary(self) -> dict:
        """Headline numbers for tables: params, active params, KV bytes/token (bf16), attention."""
        return {"model": self.name, "attention": self.attention, "params": self.params,
                "active_params": self.active_params, "layers": self.n_layers,
                "kv_heads": self.n_kv_heads if self.attention != "mla" else None,
                "kv_bytes_per_token_bf16": self.kv_bytes_per_token("bf16")}


# --------------------------------------------------------------------- Hugging Face configs
def _get(cfg: Mapping[str, Any], *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def from_hf_config(cfg: Mapping[str, Any], name: str | None = None, source: str = "") -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` dictionary.

    Understands the ``model_type`` values llama, mistral, mixtral, qwen (v1), qwen2, qwen3,
    deepseek_v2, deepseek_v3, gpt2, opt, bloom, phi and internlm; other Llama-like configs work when
    they use the Llama field names. Approximations: phi's one LayerNorm per (parallel) block is
    counted as two, BLOOM's embedding LayerNorm and phi's LM-head bias are left out (each under
    0.01% of the parameters); ALiBi (BLOOM) and partial rotary (phi) do not change a step's cost.
    """
    mt = str(cfg.get("model_type", "llama")).lower()
    name = name or cfg.get("_name_or_path") or mt
    if mt == "gpt2":
        h = cfg["n_embd"]
        return ModelSpec(name=name, n_layers=cfg["n_layer"], hidden=h, n_heads=cfg["n_head"],
                         n_kv_heads=cfg["n_head"], head_dim=h // cfg["n_head"],
                         ffn=_get(cfg, "n_inner", default=4 * h), vocab=cfg["vocab_size"],
                         mlp="gelu", norm="layernorm", tied_embeddings=True, linear_bias=True,
                         learned_positions=cfg["n_positions"], max_context=cfg["n_positions"],
                         source=source, hf_config=dict(cfg))
    if mt == "opt":
        h = cfg["hidden_size"]
        if _get(cfg, "word_embed_proj_dim", default=h) != h:
            raise ValueError(f"{name}: OPT configs with word_embed_proj_dim != hidden_size "
                             "(OPT-350m) are not supported")
        pos = cfg["max_position_embeddings"]
        return ModelSpec(name=name, n_layers=cfg["num_hidden_layers"], hidden=h,
                         n_heads=cfg["num_attention_heads"], n_kv_heads=cfg["num_attention_heads"],
                         head_dim=h // cfg["num_attention_heads"], ffn=cfg["ffn_dim"],
                         vocab=cfg["vocab_size"], mlp="relu", norm="layernorm",
                         tied_embeddings=bool(_get(cfg, "tie_word_embeddings", default=True)),
                         linear_bias=True, learned_positions=pos + 2,   # OPT offsets positions by 2
                         max_context=pos, source=source, hf_config=dict(cfg))
    if mt == "bloom":
        h, heads = cfg["hidden_size"], cfg["n_head"]
        return ModelSpec(name=name, n_layers=cfg["n_layer"], hidden=h, n_heads=heads, n_kv_heads=heads,
                         head_dim=h // heads, ffn=4 * h, vocab=cfg["vocab_size"], mlp="gelu",
                         norm="layernorm", tied_embeddings=bool(_get(cfg, "tie_word_embeddings", default=True)),
                         linear_bias=True, max_context=_get(cfg, "seq_length", default=2048),
                         source=source, hf_config=dict(cfg))
    if mt == "qwen":                       # Qwen (v1): fused w1/w2, so intermediate_size = 2 · ffn
        h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        return ModelSpec(name=name, n_layers=cfg["num_hidden_layers"], hidden=h, n_heads=heads,
                         n_kv_heads=heads, head_dim=_get(cfg, "kv_channels", default=h // heads),
                         ffn=cfg["intermediate_size"] // 2, vocab=cfg["vocab_size"], qkv_bias=True,
                         tied_embeddings=bool(_get(cfg, "tie_word_embeddings", default=False)),
                         max_context=_get(cfg, "seq_length", "max_position_embeddings", default=8192),
                         rope_theta=float(_get(cfg, "rotary_emb_base", default=10000.0)),
                         source=source, hf_config=dict(cfg))
    heads = cfg["num_attention_heads"]
    h = cfg["hidden_size"]
    common = dict(
        name=name, n_layers=cfg["num_hidden_layers"], hidden=h, n_heads=heads,
        n_kv_heads=_get(cfg, "num_key_value_heads", default=heads),
        head_dim=_get(cfg, "head_dim", default=h // heads), ffn=cfg["intermediate_size"],
        vocab=cfg["vocab_size"], tied_embeddings=bool(_get(cfg, "tie_word_embeddings", default=False)),
        max_context=_get(cfg, "max_position_embeddings", default=4096),
        rope_theta=float(_get(cfg, "rope_theta", default=10000.0)), source=source,
        hf_config=dict(cfg),
    )
    if mt in ("qwen2", "qwen2_moe"):
        common["qkv_bias"] = True
    elif cfg.get("attention_bias") or (mt == "internlm" and cfg.get("bias")):
        common["qkv_bias"] = True
    if mt == "phi":                        # phi-2: GELU MLP (fc1, fc2), LayerNorm, biases everywhere
        common.update(mlp="gelu", norm="layernorm", linear_bias=True)
    if mt in ("mistral", "mixtral", "qwen2") and cfg.get("sliding_window") and \
            not (mt == "qwen2" and not cfg.get("use_sliding_window", False)):
        common["sliding_window"] = int(cfg["sliding_window"])
    if mt == "mixtral":
        common.update(n_experts=cfg["num_local_experts"], experts_per_token=cfg["num_experts_per_tok"],
                      moe_ffn=cfg["intermediate_size"])
    if mt in ("deepseek_v2", "deepseek_v3"):
        common.update(
            n_kv_heads=heads, head_dim=cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"],
            n_experts=cfg["n_routed_experts"], experts_per_token=cfg["num_experts_per_tok"],
            n_shared_experts=_get(cfg, "n_shared_experts", default=0),
            moe_ffn=cfg["moe_intermediate_size"],
            first_dense_layers=_get(cfg, "first_k_dense_replace", default=0),
            kv_lora_rank=cfg["kv_lora_rank"], q_lora_rank=_get(cfg, "q_lora_rank", default=0),
            qk_rope_dim=cfg["qk_rope_head_dim"], qk_nope_dim=cfg["qk_nope_head_dim"],
            v_head_dim=cfg["v_head_dim"])
    return ModelSpec(**common)


# --------------------------------------------------------------------- catalog
# Each entry: the config.json fields that matter, and where the file is.
def _llama(layers, hidden, heads, kv, ffn, vocab, theta=10000.0, ctx=4096, **extra):
    return dict(model_type="llama", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=ffn,
                vocab_size=vocab, rope_theta=theta, max_position_embeddings=ctx, **extra)


def _opt(layers, hidden, heads):
    return dict(model_type="opt", num_hidden_layers=layers, hidden_size=hidden,
                num_attention_heads=heads, ffn_dim=4 * hidden, vocab_size=50272,
                max_position_embeddings=2048, word_embed_proj_dim=hidden)


_HF = "https://huggingface.co/{}/blob/main/config.json"

_CATALOG_CONFIGS: dict[str, tuple[dict, str]] = {
    "GPT-2": (dict(model_type="gpt2", n_layer=12, n_embd=768, n_head=12, vocab_size=50257,
                   n_positions=1024), _HF.format("openai-community/gpt2")),
    "Llama-2-7B": (_llama(32, 4096, 32, 32, 11008, 32000), _HF.format("meta-llama/Llama-2-7b-hf")),
    "Llama-2-13B": (_llama(40, 5120, 40, 40, 13824, 32000), _HF.format("meta-llama/Llama-2-13b-hf")),
    "Llama-2-70B": (_llama(80, 8192, 64, 8, 28672, 32000), _HF.format("meta-llama/Llama-2-70b-hf")),
    "Llama-3.1-8B": (_llama(32, 4096, 32, 8, 14336, 128256, 5e5, 131072),
                     _HF.format("meta-llama/Llama-3.1-8B")),
    "Llama-3.1-70B": (_llama(80, 8192, 64, 8, 28672, 128256, 5e5, 131072),
                      _HF.format("meta-llama/Llama-3.1-70B")),
    "Llama-3.1-405B": (_llama(126, 16384, 128, 8, 53248, 128256, 5e5, 131072),
                       _HF.format("meta-llama/Llama-3.1-405B")),
    "Mistral-7B-v0.1": (dict(_llama(32, 4096, 32, 8, 14336, 32000, 10000.0, 32768),
                             model_type="mistral", sliding_window=4096),
                        _HF.format("mistralai/Mistral-7B-v0.1")),
    "Mixtral-8x7B": (dict(_llama(32, 4096, 32, 8, 14336, 32000, 1e6, 32768), model_type="mixtral",
                          num_local_experts=8, num_experts_per_tok=2),
                     _HF.format("mistralai/Mixtral-8x7B-v0.1")),
    "Qwen2.5-7B": (dict(_llama(28, 3584, 28, 4, 18944, 152064, 1e6, 131072), model_type="qwen2"),
                   _HF.format("Qwen/Qwen2.5-7B")),
    "Qwen2.5-72B": (dict(_llama(80, 8192, 64, 8, 29568, 152064, 1e6, 131072), model_type="qwen2"),
                    _HF.format("Qwen/Qwen2.5-72B")),
    "DeepSeek-V3": (dict(model_type="deepseek_v3", num_hidden_layers=61, hidden_size=7168,
                         num_attention_heads=128, num_key_value_heads=128, intermediate_size=18432,
                         vocab_size=129280, moe_intermediate_size=2048, n_routed_experts=256,
                         n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=3,
                         kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64,
                         qk_nope_head_dim=128, v_head_dim=128, rope_theta=10000.0,
                         max_position_embeddings=163840),
                    _HF.format("deepseek-ai/DeepSeek-V3")),
    "Yi-34B": (_llama(60, 7168, 56, 8, 20480, 64000, 5e6, 4096), _HF.format("01-ai/Yi-34B")),
    # models of the published measurement sets (pdlib.calibrate.from_published)
    "Llama-3-8B": (_llama(32, 4096, 32, 8, 14336, 128256, 5e5, 8192),
                   _HF.format("meta-llama/Meta-Llama-3-8B") + "; shape as Vidur profiled it "
                   "(data/profiling/compute/*/meta-llama/Meta-Llama-3-8B/mlp.csv); rope_theta 5e5 and "
                   "8,192 positions from Meta's model card, the config.json itself not read here"),
    "Llama-3-70B": (_llama(80, 8192, 64, 8, 28672, 128256, 5e5, 8192),
                    _HF.format("meta-llama/Meta-Llama-3-70B") + "; shape as Vidur profiled it; "
                    "rope_theta 5e5 and 8,192 positions from Meta's model card, the config.json itself "
                    "not read here"),
    "CodeLlama-34B": (_llama(48, 8192, 64, 8, 22016, 32000, 1e6, 16384),
                      _HF.format("codellama/CodeLlama-34b-Instruct-hf") + "; layers, heads, KV heads, "
                      "hidden and intermediate size as in Vidur's CodeLlama34BModelConfig "
                      "(vidur/config/model_config.py) and profile; vocab 32,000, rope_theta 1e6 and "
                      "16,384 positions from the Code Llama paper (arXiv:2308.12950), not confirmed "
                      "against the config.json here"),
    "Qwen-72B": (dict(model_type="qwen", num_hidden_layers=80, hidden_size=8192, num_attention_heads=64,
                      intermediate_size=49152, vocab_size=152064, kv_channels=128, seq_length=32768,
                      rotary_emb_base=1000000),
                 _HF.format("Qwen/Qwen-72B") + "; fields as in Vidur's Qwen72BModelConfig "
                 "(vidur/config/model_config.py: 80 layers, 64 query and 64 KV heads, 8,192 wide, MLP "
                 "24,576, vocab 152,064, bias on QKV) and profile; intermediate_size 49,152 = 2 × 24,576 "
                 "as Qwen v1 configs count their fused w1/w2, seq_length and rotary_emb_base not "
                 "confirmed against the config.json here"),
    "InternLM-20B": (dict(_llama(60, 5120, 40, 40, 13824, 103168, 10000.0, 4096), model_type="internlm",
                          bias=False),
                     _HF.format("internlm/internlm-20b") + " (fields as quoted from it: 60 layers, "
                     "5,120 wide, 40 heads, intermediate 13,824, vocab 103,168, bias false; shapes match "
                     "Vidur's profile)"),
    "phi-2": (dict(_llama(32, 2560, 32, 32, 10240, 51200, 10000.0, 2048), model_type="phi",
                   partial_rotary_factor=0.4, hidden_act="gelu_new"),
              _HF.format("microsoft/phi-2")),
    "BLOOM-176B": (dict(model_type="bloom", n_layer=70, hidden_size=14336, n_head=112, vocab_size=250880,
                        seq_length=2048),
                   _HF.format("bigscience/bloom") + " (n_layer 70, hidden_size 14,336, n_head 112, vocab "
                   "250,880; MLP 4 × hidden, tied embeddings, ALiBi: the BLOOM architecture); Splitwise's "
                   "other profiled model"),
    "OPT-13B": (_opt(40, 5120, 40), _HF.format("facebook/opt-13b")),
    "OPT-66B": (_opt(64, 9216, 72), _HF.format("facebook/opt-66b")),
    "OPT-175B": (_opt(96, 12288, 96), "Zhang et al. 2022, OPT: Open Pre-trained Transformer "
                 "Language Models, table 1 (https://arxiv.org/abs/2205.01068)"),
}

_CATALOG: dict[str, ModelSpec] = {
    n: from_hf_config(cfg, name=n, source=src) for n, (cfg, src) in _CATALOG_CONFIGS.items()
}

#: Official parameter counts, for tests and tables (model card or paper).
OFFICIAL_PARAMS: dict[str, float] = {
    "GPT-2": 124e6, "Llama-2-7B": 6.74e9, "Llama-2-13B": 13.0e9, "Llama-2-70B": 69.0e9,
    "Llama-3.1-8B": 8.03e9, "Llama-3.1-70B": 70.6e9, "Llama-3.1-405B": 405.9e9,
    "Mistral-7B-v0.1": 7.24e9, "Mixtral-8x7B": 46.7e9, "Qwen2.5-7B": 7.62e9, "Qwen2.5-72B": 72.7e9,
    "Yi-34B": 34.4e9,
    "Llama-3-8B": 8.03e9, "Llama-3-70B": 70.6e9, "CodeLlama-34B": 33.7e9, "Qwen-72B": 72e9,
    "InternLM-20B": 20e9, "phi-2": 2.78e9, "BLOOM-176B": 176.247e9,
    "DeepSeek-V3": 671e9, "OPT-13B": 13e9, "OPT-66B": 66e9, "OPT-175B": 175e9,
}


def names() -> list[str]:
    """Names of the catalog's models, sorted."""
    return sorted(_CATALOG)


def get(name: str | ModelSpec) -> ModelSpec:
    """The catalog's :class:`ModelSpec` called ``name`` (case-insensitive); a ModelSpec passes
    through. Unknown names raise KeyError listing the known ones."""
    if isinstance(name, ModelSpec):
        return name
    for key, spec in _CATALOG.items():
        if key.lower() == str(name).lower():
            return spec
    raise KeyError(f"unknown model {name!r}; known: {', '.join(names())}")


def register(spec: ModelSpec, overwrite: bool = False) -> ModelSpec:
    """Add ``spec`` to the catalog under ``spec.name`` so ``get`` finds it."""
    if not overwrite and any(k.lower() == spec.name.lower() for k in _CATALOG):
        raise ValueError(f"model {spec.name!r} already in the catalog (pass overwrite=True)")
    _CATALOG[spec.name] = spec
    return spec
