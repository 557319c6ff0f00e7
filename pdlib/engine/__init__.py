"""A tiny real serving engine for Llama/Qwen2/Mistral-style dense models, in plain PyTorch.

* :mod:`.layers` — RMSNorm, RoPE, grouped-query attention projections, SwiGLU MLP
* :mod:`.model` — the decoder built from a :class:`~pdlib.models.ModelSpec`, seeded random init
* :mod:`.kv_cache` — the paged KV cache: blocks, block tables, free-block allocator
* :mod:`.runner` — mixed prefill/decode steps (:class:`Runner`), greedy :func:`generate`
* :mod:`.serve` — :func:`serve`: one colocated engine, every token timed (TTFT, TPOT)
* :mod:`.weights` — Hugging Face ``config.json`` + ``model.safetensors`` save/load
* :mod:`.allocator` — :func:`steady_allocator`: no fresh pages per step (timing hygiene)

Importing this package imports torch (``import pdlib`` alone does not)::

    from pdlib import engine
    m = engine.load("tiny", dtype=torch.float32, device="cpu", seed=0)
    engine.forward_logits(m, [1, 2, 3])                # [3, vocab]
    engine.generate(m, [[1, 2, 3], [4, 5]], max_new_tokens=8, chunk_size=2)
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..models import ModelSpec
from .allocator import steady_allocator
from .kv_cache import BlockAllocator, KVCache, OutOfBlocks
from .model import Decoder, check_dtype, check_supported, init_random
from .runner import Runner, StepRecord, forward_logits, generate
from .serve import Served, serve
from .weights import hf_config, load_folder, save

__all__ = ["tiny_spec", "load", "Decoder", "Runner", "StepRecord", "KVCache", "BlockAllocator",
           "OutOfBlocks", "forward_logits", "generate", "serve", "Served", "save", "load_folder", "hf_config",
           "init_random", "check_dtype", "check_supported", "steady_allocator"]


def tiny_spec(n_layers: int = 4, hidden: int = 256, n_heads: int = 8, n_kv_heads: int = 2,
              ffn: int = 512, vocab: int = 1000, max_context: int = 2048,
              rope_theta: float = 10000.0, qkv_bias: bool = False, head_dim: int | None = None,
              tied_embeddings: bool = False, name: str = "tiny") -> ModelSpec:
    """A small Llama-shaped :class:`ModelSpec` for CPU experiments (default ≈ 2.6 M parameters).

    ``head_dim`` defaults to ``hidden // n_heads``; ``qkv_bias=True`` gives a Qwen2-style model.
    """
    return ModelSpec(name=name, n_layers=n_layers, hidden=hidden, n_heads=n_heads,
                     n_kv_heads=n_kv_heads, head_dim=head_dim or hidden // n_heads, ffn=ffn,
                     vocab=vocab, max_context=max_context, rope_theta=rope_theta,
                     qkv_bias=qkv_bias, tied_embeddings=tied_embeddings,
                     source="pdlib.engine.tiny_spec (a made-up test model)")


def load(model: str | ModelSpec | Path, dtype: torch.dtype = torch.float32,
         device: str | torch.device = "cpu", seed: int = 0) -> Decoder:
    """A ready-to-run :class:`Decoder` (eval mode) on ``device`` in ``dtype``.

    ``model``: "tiny" (:func:`tiny_spec`), a :class:`ModelSpec` or pdlib catalog name (random
    weights drawn with ``seed``), or a Hugging Face folder path (its weights).
    Raises ValueError when ``device`` cannot run ``dtype``, NotImplementedError for model kinds
    the engine does not cover (MoE, MLA, GPT-2/OPT), KeyError for unknown names.
    """
    device = torch.device(device)
    check_dtype(dtype, device)
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        return load_folder(model, dtype, device)
    if isinstance(model, str):
        from .. import models
        spec = tiny_spec() if model == "tiny" else models.get(model)
    elif isinstance(model, ModelSpec):
        spec = model
    else:
        raise TypeError(f"model must be 'tiny', a catalog name, a ModelSpec or a folder path, "
                        f"got {type(model).__name__}")
    m = init_random(Decoder(spec).to(torch.float64), seed)
    return m.to(device=device, dtype=dtype).eval()
