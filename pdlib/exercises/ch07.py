"""Checkers for chapter 07, "A real disaggregated run". Expected values come from pdlib
(torch is imported inside the checkers that need it, so loading the exercises stays torch-free)."""
from __future__ import annotations

from . import Expected, exercise


@exercise("ch07.wire_bytes", "The chapter's float64 model (2 layers, 2 KV heads of 16 dims) sends a "
          "37-token prompt's KV to a decode worker with 16-token blocks. How many bytes go over the "
          "wire, counting the padding to whole blocks and the 24-byte first-token trailer?")
def wire_bytes() -> Expected:
    from .. import disagg, engine
    spec = engine.tiny_spec(n_layers=2, hidden=64, n_heads=4, n_kv_heads=2, ffn=128, vocab=300,
                            max_context=512)
    return Expected(disagg.kv_message_bytes(spec, 37, block_size=16, element_bytes=8), rel=0,
                    unit="bytes", hint="37 tokens fill ceil(37/16) = 3 blocks = 48 slots; per layer "
                                       "K and V: 2 · 48 · 2 heads · 16 dims · 8 bytes.")


@exercise("ch07.exposed_layerwise", "A prefill of 0.4 s over 8 layers produces KV whose transfer "
          "takes 0.6 s on the link (latency negligible, 1 µs). Sent layer by layer, how many seconds "
          "of transfer remain after the prefill ends?")
def exposed_layerwise() -> Expected:
    from dataclasses import replace

    from .. import kv_transfer_time, models
    from ..hardware import Link
    spec = replace(models.get("Llama-3.1-8B"), n_layers=8)
    tokens, wire = 1000, 0.6                        # a link on which these KV bytes take 0.6 s
    link = Link("exercise", float(spec.kv_bytes(tokens, "bf16")) / wire, 1e-6, "network",
                source="made-up link for the exercise")
    return Expected(kv_transfer_time(spec, tokens, link, mode="layerwise", prefill_time=0.4),
                    rel=0.01, unit="s", hint="The last layer can leave only when the prefill ends; "
                    "exposed = max(wire/l, wire − prefill + prefill/l).")
