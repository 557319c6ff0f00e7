"""The decoder: a Llama/Qwen2/Mistral-style dense model built from a :class:`~pdlib.models.ModelSpec`.

Parameter names follow Hugging Face's ``LlamaForCausalLM`` (``model.layers.0.self_attn.q_proj.weight``
…), so a ``state_dict`` is a Hugging Face checkpoint and the other way round.
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import ModelSpec
from .layers import Attention, RMSNorm, SwiGLU, apply_rope, causal_attention, rope_cos_sin

__all__ = ["Decoder", "DecoderLayer", "check_supported", "check_dtype", "init_random"]


def check_supported(spec: ModelSpec) -> None:
    """Raise NotImplementedError unless ``spec`` is a dense RoPE/RMSNorm/SwiGLU decoder."""
    problems = []
    if spec.is_moe:
        problems.append(f"mixture of experts ({spec.n_experts} experts)")
    if spec.attention == "mla":
        problems.append("multi-head latent attention (MLA)")
    if spec.learned_positions:
        problems.append("learned position embeddings (GPT-2/OPT)")
    if spec.mlp != "swiglu":
        problems.append(f"mlp={spec.mlp!r} (only 'swiglu')")
    if spec.norm != "rmsnorm":
        problems.append(f"norm={spec.norm!r} (only 'rmsnorm')")
    if spec.linear_bias:
        problems.append("biases on every linear layer (GPT-2/OPT)")
    if spec.head_dim % 2:
        problems.append(f"head_dim={spec.head_dim} (RoPE rotates pairs: needs an even head_dim)")
    act = (spec.hf_config or {}).get("hidden_act", "silu")
    if act != "silu":
        problems.append(f"hidden_act={act!r} (only 'silu')")
    rope = (spec.hf_config or {}).get("rope_scaling") or (spec.hf_config or {}).get("rope_parameters") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        problems.append(f"rope scaling {rope.get('rope_type', rope.get('type'))!r} (only plain RoPE)")
    if problems:
        raise NotImplementedError(
            f"{spec.name}: the engine runs Llama/Qwen2/Mistral-style dense models only; "
            f"unsupported: {'; '.join(problems)}")


def check_dtype(dtype: torch.dtype, device: torch.device) -> None:
    """Raise ValueError when ``device`` cannot run ``dtype``.

    CPU: float32, float64, bfloat16. CUDA: float16, float32, float64, and bfloat16 on GPUs that
    support it (Ampere and newer; a T4 does not).
    """
    if device.type == "cpu":
        allowed = (torch.float32, torch.float64, torch.bfloat16)
    elif device.type == "cuda":
        allowed = (torch.float16, torch.float32, torch.float64)
        if torch.cuda.is_bf16_supported():
            allowed += (torch.bfloat16,)
    else:
        raise ValueError(f"device {device} is not supported; use 'cpu' or 'cuda'")
    if dtype not in allowed:
        raise ValueError(f"dtype {dtype} cannot run on {device}"
                         f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}; "
                         f"allowed: {', '.join(str(d).replace('torch.', '') for d in allowed)}")


def _rms_eps(spec: ModelSpec) -> float:
    return float((spec.hf_config or {}).get("rms_norm_eps", 1e-6))


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        eps = _rms_eps(spec)
        self.input_layernorm = RMSNorm(spec.hidden, eps)
        self.self_attn = Attention(spec.hidden, spec.n_heads, spec.n_kv_heads, spec.head_dim,
                                   spec.qkv_bias)
        self.post_attention_layernorm = RMSNorm(spec.hidden, eps)
        self.mlp = SwiGLU(spec.hidden, spec.ffn)


class _Body(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.embed_tokens = nn.Embedding(spec.vocab, spec.hidden)
        self.layers = nn.ModuleList(DecoderLayer(spec) for _ in range(spec.n_layers))
        self.norm = RMSNorm(spec.hidden, _rms_eps(spec))


class Decoder(nn.Module):
    """Token ids -> logits. ``spec`` says the shape; ``model``/``lm_head`` hold the weights.

    :meth:`forward` is the reference path (one sequence, no cache); the runner drives the layers
    itself to read and write the block KV cache.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        check_supported(spec)
        self.spec = spec
        self.model = _Body(spec)
        self.lm_head = nn.Linear(spec.hidden, spec.vocab, bias=False)
        if spec.tied_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def rope(self, positions: torch.Tensor):
        """cos, sin tables [T, D] for ``positions`` [T]."""
        return rope_cos_sin(positions, self.spec.head_dim, self.spec.rope_theta, self.dtype)

    @torch.inference_mode()
    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Logits [T, vocab] at every position of one sequence ``token_ids`` [T] (no cache)."""
        window = self.spec.sliding_window
        if window is not None and token_ids.shape[0] > window:
            raise NotImplementedError(f"{self.spec.name}: sequences longer than the sliding window "
                                      f"({window} tokens) are not supported")
        cos, sin = self.rope(torch.arange(token_ids.shape[0], device=self.device))
        x = self.model.embed_tokens(token_ids)
        for layer in self.model.layers:
            q, k, v = layer.self_attn.qkv(layer.input_layernorm(x))
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            x = x + layer.self_attn.o_proj(causal_attention(q, k, v))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.lm_head(self.model.norm(x))


@torch.no_grad()
def init_random(model: Decoder, seed: int = 0) -> Decoder:
    """Fill ``model`` with seeded random weights (in place; returns it).

    Linear weights ~ N(0, 1/fan_in) (so activations keep their scale), embeddings ~ N(0, 1),
    biases ~ N(0, 0.1²), norm weights ~ 1 + N(0, 0.1²) (not all ones, so tests see them used).
    Drawn in float64 on the CPU, then cast, so every dtype/device gets the same numbers.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            t = 1 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
        elif name.endswith("bias"):
            t = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
        elif "embed_tokens" in name:
            t = torch.randn(p.shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(p.shape, generator=g, dtype=torch.float64) / p.shape[1] ** 0.5
        p.copy_(t.to(p.dtype))
    return model
