"""Checkers for chapter 02, "The KV cache". Every expected value is computed with pdlib from the
catalogs, never typed in."""
from __future__ import annotations

from .. import hardware as hw
from .. import models as mdl
from ..cost import CostModel, kv_emission_rate, kv_transfer_time
from . import Expected, exercise


@exercise("ch02.kv_qwen72b", "How many bytes of KV cache does one token of Qwen2.5-72B occupy "
          "in bf16, over all layers?")
def kv_qwen72b() -> Expected:
    m = mdl.get("Qwen2.5-72B")
    return Expected(m.kv_bytes_per_token("bf16"), rel=0.01, unit="bytes",
                    hint=f"2 (K and V) × layers × KV heads × head_dim × 2 bytes, with "
                         f"layers={m.n_layers}, KV heads={m.n_kv_heads} (not the {m.n_heads} query "
                         f"heads: it is a GQA model), head_dim={m.head_dim}; "
                         "pdlib.models.get('Qwen2.5-72B').kv_bytes_per_token('bf16') checks it.")


@exercise("ch02.transfer_8b_8k_100gbe", "How many milliseconds does it take to send the bf16 KV "
          "cache of an 8,192-token Llama-3.1-8B request over one 100 GbE link, all at once?")
def transfer_8b_8k_100gbe() -> Expected:
    m, ln = mdl.get("Llama-3.1-8B"), hw.link("100GbE")
    t = kv_transfer_time(m, 8192, ln)
    return Expected(t * 1e3, rel=0.02, unit="ms",
                    hint=f"bytes = 8,192 tokens × {m.kv_bytes_per_token():,} bytes/token; 100 GbE "
                         f"carries 100e9 bits/s = {ln.bandwidth / 1e9:g}e9 bytes/s; time = bytes / "
                         "bandwidth (the latency is microseconds). Answer in ms, not s: "
                         "pdlib.kv_transfer_time('Llama-3.1-8B', 8192, '100GbE') * 1e3.")


@exercise("ch02.batch_8b_a100_4k", "How many 4,096-token requests of Llama-3.1-8B (bf16 weights "
          "and KV) can decode together on one A100-80GB, if the engine may use 90% of its memory?")
def batch_8b_a100_4k() -> Expected:
    cm = CostModel("Llama-3.1-8B", "A100-80GB")
    return Expected(int(cm.max_decode_batch(4096)), rel=0.02, unit="requests",
                    hint=f"free memory = 0.9 × {cm.gpu.mem_bytes / 1e9:.0f} GB − "
                         f"{cm.weight_bytes_per_gpu / 1e9:.2f} GB of weights; each request holds "
                         f"4,096 × {cm.kv_bytes_per_token:,.0f} bytes of KV; round down. "
                         "CostModel('Llama-3.1-8B', 'A100-80GB').max_decode_batch(4096) checks it.")


@exercise("ch02.emission_llama2_7b_h100", "At 50% MFU, at how many Gb/s (1e9 bits per second) "
          "does one H100-SXM write KV cache while prefilling Llama-2-7B (bf16)?")
def emission_llama2_7b_h100() -> Expected:
    m, g = mdl.get("Llama-2-7B"), hw.gpu("H100-SXM")
    rate = kv_emission_rate(m, g, mfu=0.5)
    return Expected(rate * 8 / 1e9, rel=0.03, unit="Gb/s",
                    hint=f"tokens/s = 0.5 × {g.flops / 1e12:.0f}e12 FLOP/s ÷ (2 × "
                         f"{m.matmul_params / 1e9:.2f}e9 matmul weights) FLOPs per token; multiply "
                         f"by {m.kv_bytes_per_token():,} KV bytes per token, then by 8 for bits. "
                         "pdlib.kv_emission_rate('Llama-2-7B', 'H100-SXM', mfu=0.5) gives bytes/s.")
