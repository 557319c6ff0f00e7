"""Checkers for chapter 11, "The verdict, and what comes next". Every expected value is computed
with pdlib (:mod:`pdlib.models`, :mod:`pdlib.verdict`), never typed in."""
from __future__ import annotations

from .. import models
from .. import verdict as V
from . import Expected, exercise


@exercise("ch11.kv_1m_fp8", "How many GB (1e9 bytes) of KV cache does one request with a "
          "1,048,576-token context occupy for Llama-3.1-70B when the cache is stored in fp8?")
def kv_1m_fp8() -> Expected:
    return Expected(float(models.get("Llama-3.1-70B").kv_bytes(1_048_576, "fp8")) / 1e9, rel=0.02,
                    unit="GB", hint="tokens × 2 (K and V) × layers × KV heads × head_dim × 1 byte "
                                    "(fp8); models.get(...).kv_bytes(tokens, 'fp8').")


@exercise("ch11.claim5_fp8", "Apply claim 5's rule to the same 70B, 4,096-token cache stored in "
          "fp8 instead of bf16. Which verdict does it get? Answer with one of the verdicts of "
          "pdlib.verdict.VERDICTS.")
def claim5_fp8() -> Expected:
    return Expected(V.claim5_kv_size(dtype="fp8").verdict, choices=tuple(V.VERDICTS),
                    hint="fp8 halves the bytes per element; compare the cache with the article's "
                         "100 MB–1 GB (pdlib.verdict.claim5_kv_size(dtype='fp8')).")


@exercise("ch11.prefix_load_speedup", "A 32,768-token prefix of Llama-3.1-70B sits in a KV pool. "
          "How many times faster is loading its bf16 KV over one IB-NDR-400G link than recomputing "
          "it on 8×H100-SXM (the roofline prefill)?")
def prefix_load_speedup() -> Expected:
    df = V.prefix_reload_table("Llama-3.1-70B", "H100-SXM", tp=8, prefixes=(32768,),
                               links=("IB-NDR-400G",))
    return Expected(float(df.speedup.iloc[0]), rel=0.05, unit="×",
                    hint="recompute = CostModel('Llama-3.1-70B', 'H100-SXM', tp=8).prefill(32768).time; "
                         "load = kv_transfer_time('Llama-3.1-70B', 32768, 'IB-NDR-400G'); divide.")
