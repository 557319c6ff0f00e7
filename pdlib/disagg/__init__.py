"""A real disaggregated run: a prefill process and a decode process, KV moved between them.

* :mod:`.transport` — the KV channel: torch.distributed point-to-point (gloo on CPU, nccl across
  two GPUs), shared memory / CUDA IPC on one machine or one GPU, an emulated slower link, and
  the reference measurements (raw send, raw copy) the KV path is compared with
* :mod:`.workers` — the prefill and decode worker loops, each with its own engine
* :mod:`.frontend` — :func:`run`: start both, feed requests, collect :class:`RequestResult` s

Importing this package imports torch (``import pdlib`` alone does not)::

    from pdlib import disagg, engine
    m = engine.load("tiny", dtype=torch.float64)
    res = disagg.run(m, [[1, 2, 3], [4, 5]], max_new_tokens=8)
    res[0].tokens, res[0].ttft, res[0].status
"""
from __future__ import annotations

from .frontend import RequestResult, hidden_fraction, pick_transport, run
from .transport import (block_runs, META, DistTransport, EmulatedLink, KVDest, SharedTransport, Transport, new_message,
                        raw_bandwidth, raw_copy_bandwidth)
from .workers import kv_message_bytes, prefill_layers

__all__ = [
           "block_runs",
           "DistTransport",
           "EmulatedLink",
           "hidden_fraction",
           "KVDest",
           "META",
           "new_message",
           "RequestResult",
           "Transport",
           "kv_message_bytes",
           "pick_transport",
           "prefill_layers",
           "raw_bandwidth",
           "raw_copy_bandwidth",
           "run",
           "SharedTransport",
]
