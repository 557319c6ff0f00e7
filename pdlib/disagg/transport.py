"""Moving KV tensors between the prefill and the decode process.

One small interface, :class:`Transport`: ``send(tensor)`` (blocking, called from the prefill side's
sender thread) and ``recv(tensor) -> Pending`` (non-blocking, the decode side polls
``Pending.done()`` between decode steps). Messages between one pair of ranks arrive in the order
they were sent, so a request's layers need no headers: the decode side knows what it asked for.

* :class:`DistTransport` — ``torch.distributed`` point-to-point: backend ``"gloo"`` between CPU
  processes (tested), ``"nccl"`` between two GPUs (written for, untested here).
* :class:`EmulatedLink` — wraps a transport and sleeps so that, over any busy period,
  ``bytes sent / elapsed seconds ≤ bandwidth`` (bytes/s), plus ``latency`` seconds per message.
* :func:`raw_bandwidth` — bytes/s of one plain ``dist.send`` of a contiguous tensor between two
  fresh processes: the ceiling the KV path is compared with.
"""
from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistTransport", "EmulatedLink", "Pending", "Transport", "init_group", "raw_bandwidth"]


def init_group(backend: str, init_file: str, rank: int, world_size: int = 2,
               timeout: float = 60.0) -> None:
    """Join the two-process group through a shared file (``file://`` rendezvous, no free port
    needed). ``timeout`` (seconds) bounds the rendezvous and blocking collectives."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout))
    dist.barrier()                          # open the pair's connection before any KV moves


@dataclass
class Pending:
    """A posted receive; :meth:`done` is true once its bytes have landed in the buffer
    (``error`` holds the exception if the receive failed)."""
    landed: threading.Event
    error: BaseException | None = None

    def done(self) -> bool:
        return self.landed.is_set()


class Transport:
    """Point-to-point tensor channel to one peer rank."""

    def send(self, tensor: torch.Tensor) -> None:
        """Send ``tensor`` (contiguous) to the peer; returns once the bytes have left."""
        raise NotImplementedError

    def recv(self, tensor: torch.Tensor) -> Pending:
        """Post a receive into ``tensor`` (contiguous, right shape and dtype)."""
        raise NotImplementedError


class DistTransport(Transport):
    """``torch.distributed`` send/recv to rank ``peer`` of an initialised group
    (gloo on CPU; nccl for tensors on two different GPUs — NCCL refuses two ranks on one GPU).

    Receives run in order on one background thread doing blocking ``dist.recv`` (a gloo
    ``irecv`` handle reports ``is_completed() == False`` until someone ``wait()`` s on it, so it
    cannot be polled); the decode loop polls the :class:`Pending` flags instead."""

    def __init__(self, peer: int):
        self.peer = peer
        self._posted: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def send(self, tensor: torch.Tensor) -> None:
        dist.send(tensor, self.peer)

    def recv(self, tensor: torch.Tensor) -> Pending:
        if self._thread is None:
            self._thread = threading.Thread(target=self._receive, daemon=True)
            self._thread.start()
        pending = Pending(threading.Event())
        self._posted.put((tensor, pending))
        return pending

    def _receive(self) -> None:
        while True:
            tensor, pending = self._posted.get()
            try:
                dist.recv(tensor, self.peer)
            except RuntimeError as e:         # a timed-out or broken group: report, stop receiving
                pending.error = e
                return
            pending.landed.set()


class EmulatedLink(Transport):
    """A slower link in software: ``inner``'s sends throttled to ``bandwidth`` bytes/s.

    The link is a single server: message i may finish no earlier than
    ``free_at = max(start_i, free_at) + latency + bytes_i / bandwidth``; the sender sleeps until
    then. Hence over any busy stretch, bytes / elapsed ≤ bandwidth.
    """

    def __init__(self, inner: Transport, bandwidth: float, latency: float = 0.0):
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s, got {bandwidth!r}")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.inner, self.bandwidth, self.latency = inner, float(bandwidth), float(latency)
        self._free_at = 0.0

    def send(self, tensor: torch.Tensor) -> None:
        start = time.perf_counter()
        self._free_at = max(start, self._free_at) + self.latency + \
            tensor.numel() * tensor.element_size() / self.bandwidth
        self.inner.send(tensor)
        left = self._free_at - time.perf_counter()
        if left > 0:
            time.sleep(left)

    def recv(self, tensor: torch.Tensor) -> Pending:
        return self.inner.recv(tensor)


def _raw_worker(rank: int, init_file: str, nbytes: int, repeats: int, out) -> None:
    init_group("gloo", init_file, rank)
    buf = torch.zeros(nbytes // 8, dtype=torch.float64)
    try:
        dist.barrier()
        times = []
        for _ in range(repeats + 1):               # first one warms up the connection
            dist.barrier()
            t0 = time.perf_counter()
            if rank == 0:
                dist.send(buf, 1)
            else:
                dist.recv(buf, 0)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            out.put(min(times[1:]))
    finally:
        dist.destroy_process_group()


def raw_bandwidth(nbytes: int, repeats: int = 3, timeout: float = 60.0) -> float:
    """Bytes/s of the best of ``repeats`` plain gloo ``send``/``recv`` of one contiguous
    ``nbytes`` tensor between two fresh CPU processes, timed on the sender (call → return) like
    the KV path's ``transfer_seconds``."""
    import torch.multiprocessing as mp
    if nbytes < 8:
        raise ValueError(f"nbytes must be >= 8, got {nbytes!r}")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    init_file = os.path.join(tempfile.mkdtemp(prefix="pdlib_raw_"), "rendezvous")
    procs = [ctx.Process(target=_raw_worker, args=(r, init_file, nbytes, repeats, out), daemon=True)
             for r in range(2)]
    try:
        for p in procs:
            p.start()
        seconds = out.get(timeout=timeout)
        return (nbytes // 8 * 8) / seconds
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
