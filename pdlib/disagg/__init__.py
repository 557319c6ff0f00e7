"""A real disaggregated run: a prefill process and a decode process, KV moved between them.

* :mod:`.transport` — the KV channel: torch.distributed point-to-point (gloo on CPU, nccl across
  two GPUs), an emulated slower link, the raw-bandwidth reference measurement
* :mod:`.workers` — the prefill and decode worker loops, each with its own engine
* :mod:`.frontend` — :func:`run`: start both, feed requests, collect :class:`RequestResult` s

Importing this package imports torch (``import pdlib`` alone does not)::

    from pdlib import disagg, engine
    m = engine.load("tiny", dtype=torch.float64)
    res = disagg.run(m, [[1, 2, 3], [4, 5]], max_new_tokens=8)
    res[0].tokens, res[0].ttft, res[0].status
"""
from __future__ import annotations

from .frontend import RequestResult, run
from .transport import DistTransport, EmulatedLink, Transport, raw_bandwidth
from .workers import kv_message_bytes, prefill_layers

__all__ = [
           "DistTransport",
           "EmulatedLink",
           "RequestResult",
           "Transport",
           "kv_message_bytes",
           "prefill_layers",
           "raw_bandwidth",
           "run",
]
