"""Hugging Face checkpoints: ``config.json`` + ``model.safetensors`` in a folder, both ways.

Works for Llama, Qwen2 and Mistral-style dense checkpoints (the parameter names of
``LlamaForCausalLM``). Sharded checkpoints (``model.safetensors.index.json``) are read too.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models import ModelSpec, from_hf_config
from .model import Decoder, check_dtype

__all__ = ["hf_config", "save", "load_folder"]

_ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}


def hf_config(spec: ModelSpec, model_type: str | None = None) -> dict:
    """A Hugging Face ``config.json`` dictionary for ``spec``.

    ``model_type`` defaults to "qwen2" when the spec has QKV biases, "mistral" with a sliding
    window, else "llama".
    """
    mt = model_type or ("qwen2" if spec.qkv_bias else "mistral" if spec.sliding_window else "llama")
    if mt not in _ARCH:
        raise ValueError(f"model_type must be one of {', '.join(_ARCH)}, got {mt!r}")
    if mt != "qwen2" and spec.qkv_bias:
        raise ValueError(f"{mt} checkpoints have no q/k/v-only biases; use model_type='qwen2'")
    if mt == "qwen2" and not spec.qkv_bias:
        raise ValueError("Qwen2 checkpoints always have q/k/v biases; this spec has none")
    extra = {"attention_bias": False, "mlp_bias": False} if mt == "llama" else {}
    base = dict(spec.hf_config or {})
    cfg = {
        "architectures": [_ARCH[mt]], "model_type": mt, "vocab_size": spec.vocab,
        "hidden_size": spec.hidden, "intermediate_size": spec.ffn,
        "num_hidden_layers": spec.n_layers, "num_attention_heads": spec.n_heads,
        "num_key_value_heads": spec.n_kv_heads, "head_dim": spec.head_dim, "hidden_act": "silu",
        "max_position_embeddings": spec.max_context,
        "rms_norm_eps": float(base.get("rms_norm_eps", 1e-6)),
        "rope_theta": spec.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": spec.rope_theta},
        "tie_word_embeddings": spec.tied_embeddings, **extra,
    }
    if mt == "mistral":
        cfg["sliding_window"] = spec.sliding_window
    if mt == "qwen2":
        cfg["use_sliding_window"] = False
    return cfg


def save(model: Decoder, folder: str | Path, model_type: str | None = None) -> Path:
    """Write ``model`` as ``folder/config.json`` + ``folder/model.safetensors``; returns the folder.

    Weights are saved in the model's dtype; a tied LM head is stored once (as the embedding).
    """
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_config(model.spec, model_type)
    cfg["torch_dtype"] = str(model.dtype).replace("torch.", "")
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if model.spec.tied_embeddings:
        state.pop("lm_head.weight")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json (expected a Hugging Face model folder)")
    cfg = json.loads(path.read_text())
    rope = cfg.get("rope_parameters") or {}
    if cfg.get("rope_theta") is None and "rope_theta" in rope:      # transformers ≥ 5 layout
        cfg["rope_theta"] = rope["rope_theta"]
    return cfg


def _read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{folder} has no model.safetensors (nor a sharded index)")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(folder / f)))
    return tensors


def load_folder(folder: str | Path, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> Decoder:
    """Build a :class:`Decoder` from a Hugging Face folder (config.json + safetensors).

    Raises ValueError naming every missing, unexpected or wrongly shaped tensor.
    """
    folder = Path(folder)
    device = torch.device(device)
    check_dtype(dtype, device)
    cfg = read_config(folder)
    spec = from_hf_config(cfg, name=cfg.get("_name_or_path") or folder.name, source=str(folder))
    model = Decoder(spec)
    tensors = _read_tensors(folder)
    expected = model.state_dict()
    if spec.tied_embeddings:
        tensors.pop("lm_head.weight", None)
        expected = {k: v for k, v in expected.items() if k != "lm_head.weight"}
    tensors = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(v.shape)}"
             for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{folder}: checkpoint does not match its config.json — "
                         f"missing: {missing[:8]}{'…' if len(missing) > 8 else ''}; "
                         f"unexpected: {unexpected[:8]}{'…' if len(unexpected) > 8 else ''}; "
                         f"wrong shapes: {wrong[:8]}")
    model.load_state_dict(tensors, strict=False)
    return model.to(device=device, dtype=dtype).eval()
