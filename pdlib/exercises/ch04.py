"""Checkers for chapter 04, "Chunked prefill". Every expected value is computed with pdlib (cost
model and :mod:`pdlib.chunking`), never typed in."""
from __future__ import annotations

from .. import chunking as ch
from ..cost import CostModel
from . import Expected, exercise

#: The chapter's running example: Llama-3.1-70B on 8×H100-SXM, a 10,000-token prompt cut into
#: 1,000-token chunks while 32 requests with 1,000 cached tokens each are decoding.
RUNNING = dict(model="Llama-3.1-70B", gpu="H100-SXM", tp=8, prompt=10_000, chunk=1_000,
               decode_batch=32, decode_context=1_000)


def running_cost_model() -> CostModel:
    """CostModel of :data:`RUNNING`'s deployment."""
    return CostModel(RUNNING["model"], RUNNING["gpu"], tp=RUNNING["tp"])


@exercise("ch04.chunked_total", "Llama-3.1-70B on 8×H100-SXM (tp = 8), default cost model: a "
          "10,000-token prompt is prefilled in 1,000-token chunks, and every chunk step also carries "
          "32 decodes with 1,000 cached tokens each. How many seconds pass from the start of the "
          "first chunk step to the end of the last one?")
def chunked_total() -> Expected:
    cm = running_cost_model()
    t = ch.chunked_prefill_time(cm, RUNNING["prompt"], RUNNING["chunk"], RUNNING["decode_batch"],
                                RUNNING["decode_context"])
    return Expected(t, rel=0.02, unit="s",
                    hint="10 steps; step i holds the chunk (1000, 1000·i) and 32 items (1, 1000). "
                         "Sum cm.step(items).time over the 10 steps, or call "
                         "pdlib.chunking.chunked_prefill_time.")


@exercise("ch04.overhead_70b", "Same deployment (Llama-3.1-70B, 8×H100-SXM), no decodes: a "
          "4,096-token prompt prefilled in 256-token chunks takes how many times as long as the "
          "same prompt prefilled in one step? (a ratio, e.g. 1.05)")
def overhead_70b() -> Expected:
    return Expected(ch.chunk_overhead(running_cost_model(), 4096, 256), rel=0.01, unit="×",
                    hint="16 steps of (256, 256·i); compare their summed time with "
                         "cm.prefill(4096).time. Small chunks cannot hide the weight reads (and "
                         "the all-reduce latencies) under their compute.")


@exercise("ch04.largest_chunk", "Mistral-7B-v0.1 on one A100-80GB (default cost model) is decoding "
          "64 requests with 2,000 cached tokens each. What is the largest prefill chunk (tokens, "
          "for a prompt with nothing cached yet) that keeps the step, and so every running "
          "request's token gap, within 50 ms?")
def largest_chunk() -> Expected:
    cm = CostModel("Mistral-7B-v0.1", "A100-80GB")
    return Expected(ch.largest_chunk_within(cm, 0.050, decode_batch=64, decode_context=2000),
                    rel=0.02, unit="tokens",
                    hint="the step is [(c, 0)] + 64 × (1, 2000); its time grows with c. Bisect on c, "
                         "or call pdlib.chunking.largest_chunk_within.")
