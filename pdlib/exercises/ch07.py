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


def chapter_timing_spec():
    """The chapter's 8-layer timing model (``big`` in the notebook, which builds it with this
    function): hidden 256, 8 heads, 4 KV heads of 32 dims, so 8,192 bytes of KV per token in
    float32. :func:`pdlib.engine.tiny_spec` is imported here, so loading the exercises stays
    torch-free."""
    from .. import engine
    return engine.tiny_spec(n_layers=8, hidden=256, n_heads=8, n_kv_heads=4, ffn=512, vocab=1000,
                            max_context=1024)


def slowest_hidden_link(spec, tokens: int, prefill_time: float, dtype: str = "fp32",
                        latency: float = 1e-9, layers: float = 1.0) -> float:
    """Smallest bandwidth (bytes/s) at which :func:`pdlib.kv_transfer_time` in layerwise mode
    exposes no more than ``layers`` layers' messages (``layers · wire / n_layers`` + latency,
    wire = KV bytes / bandwidth), by bisection on the log of the bandwidth (60 halvings between
    1 B/s and 1e15 B/s). Solving ``wire − prefill + prefill/l <= layers · wire/l`` gives the
    closed form ``KV bytes / prefill_time · (l − layers) / (l − 1)``: with ``layers = 1`` the link
    that moves the KV exactly as fast as the prefill makes it."""
    if not 1 <= layers < spec.n_layers:
        raise ValueError(f"layers must be in [1, {spec.n_layers}) for a {spec.n_layers}-layer model, "
                         f"got {layers!r}")
    from .. import kv_transfer_time
    from ..hardware import Link
    nbytes = float(spec.kv_bytes(tokens, dtype))

    def hidden(bw: float) -> bool:
        link = Link("exercise", bw, latency, "network", source="made-up link for the exercise")
        exposed = kv_transfer_time(spec, tokens, link, dtype=dtype, mode="layerwise",
                                   prefill_time=prefill_time)
        return exposed <= layers * (nbytes / bw) / spec.n_layers * (1 + 1e-9) + latency

    lo, hi = 0.0, 15.0                                  # log10 bytes/s; hidden(1e15) holds
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if hidden(10 ** mid) else (mid, hi)
    return 10 ** hi


@exercise("ch07.knee_bandwidth", "The chapter's 8-layer float32 model (8,192 bytes of KV per token) "
          "prefills a 1,024-token prompt in 0.2 s. Sent layer by layer, what is the slowest link, in "
          "MB/s (1e6 bytes/s), on which the transfer adds no more than one layer's message time to "
          "the TTFT?")
def knee_bandwidth() -> Expected:
    bw = slowest_hidden_link(chapter_timing_spec(), 1024, 0.2)
    return Expected(bw / 1e6, rel=0.02, unit="MB/s",
                    hint="exposed = max(wire/l, wire − prefill + prefill/l): the second term takes over "
                         "when the wire time exceeds the prefill time. The knee is the link that moves "
                         "KV exactly as fast as the prefill makes it: KV bytes / prefill seconds.")
