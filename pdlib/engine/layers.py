"""The building blocks of a Llama-family decoder layer, in plain PyTorch.

Shapes use T = tokens in the step, h = hidden width, H = query heads, K = KV heads, D = head_dim.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """``y = w · x / sqrt(mean(x²) + eps)``, computed in float32 (or float64) and cast back."""

    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:        # [T, h] -> [T, h]
        dtype = x.dtype
        x = x.to(torch.float64 if dtype == torch.float64 else torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """Rotary-embedding tables for token ``positions`` [T]: cos, sin of shape [T, D].

    Frequencies ``θ^(−2i/D)`` for i < D/2, angle = position × frequency, duplicated over the two
    halves of the head (the "rotate half" layout Hugging Face Llama checkpoints use).
    """
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64,
                                       device=positions.device) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]     # [T, D/2]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [T, heads, D] by the angles in cos/sin [T, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


class Attention(nn.Module):
    """Grouped-query attention projections: q [T, H, D], k and v [T, K, D], output [T, h].

    The attention itself (over cached keys or a plain causal sequence) is done by the caller,
    which knows where each token's context lives.
    """

    def __init__(self, hidden: int, n_heads: int, n_kv_heads: int, head_dim: int, qkv_bias: bool):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, head_dim
        self.q_proj = nn.Linear(hidden, n_heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden, n_kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden, n_kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(n_heads * head_dim, hidden, bias=False)

    def qkv(self, x: torch.Tensor):
        T = x.shape[0]
        return (self.q_proj(x).view(T, self.n_heads, self.head_dim),
                self.k_proj(x).view(T, self.n_kv_heads, self.head_dim),
                self.v_proj(x).view(T, self.n_kv_heads, self.head_dim))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) · up(x))``: [T, h] -> [T, ffn] -> [T, h]."""

    def __init__(self, hidden: int, ffn: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, ffn, bias=False)
        self.up_proj = nn.Linear(hidden, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Plain causal self-attention of one sequence: q [T, H, D], k/v [T, K, D] -> [T, H·D]."""
    T = q.shape[0]
    out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                         v.transpose(0, 1)[None], is_causal=True,
                                         enable_gqa=q.shape[1] != k.shape[1])
    return out[0].transpose(0, 1).reshape(T, -1)
