"""Moving KV tensors between the prefill and the decode process.

One small interface, :class:`Transport`, used by both worker loops:

* prefill side: ``send_kv(message, dest)`` ships one KV message — a contiguous byte buffer from
  :func:`new_message` holding ``[n_layers_in_message, 2, blocks · block_size, K, D]`` keys and
  values padded to whole decode-side blocks, and, in a request's last message, a 24-byte trailer
  (request id, prompt length, first token); ``dest`` (:class:`KVDest`) names the layers and the
  decode-side block ids it belongs to. It blocks until the bytes have left (or, for shared memory,
  are written) and is called from the prefill's sender thread.
* decode side: ``recv_kv(dest, shape, dtype, device) -> Pending`` posts a receive, non-blocking;
  the decode loop polls ``Pending.done()`` between decode steps. A :class:`Pending` with a
  ``buffer`` is a staging copy the decode side still scatters into its blocks; ``buffer is None``
  means the KV already sits in the blocks (zero-copy). ``Pending.meta`` is the trailer.
* ``send(tensor)`` / ``recv(tensor)``: plain messages (the raw-bandwidth reference, tests).

Messages arrive in the order they were sent, so a request's messages need no headers: the decode
side knows what it asked for.

Transports:

* :class:`DistTransport` — ``torch.distributed`` point-to-point: backend ``"gloo"`` between CPU
  processes (tested), ``"nccl"`` between two GPUs (written for, untested here). The receiver
  lands each message in a staging buffer and copies it into its blocks.
* :class:`SharedTransport` — one machine, no network stack: the decode worker's KV block pool
  lives in memory both processes map (POSIX shared memory on CPU, CUDA IPC on one GPU); the
  prefill worker writes each message straight into the named blocks and then bumps a shared
  counter, which is the decode side's "layer landed" signal. This is the transport for one GPU,
  where NCCL refuses two ranks on the same device.
* :class:`EmulatedLink` — wraps a transport and holds each message back until a link of
  ``bandwidth`` bytes/s (plus ``latency`` seconds per message) would have delivered it, so that
  over any busy period ``bytes delivered / elapsed seconds ≤ bandwidth``.

Reference measurements (the ceilings the KV path is compared with):

* :func:`raw_bandwidth` — bytes/s of one plain ``dist.send`` of a contiguous tensor between two
  processes, best of ``repeats`` after ``warmup`` unmeasured sends.
* :func:`raw_copy_bandwidth` — bytes/s of one contiguous ``copy_`` of the same bytes into a
  shared-memory tensor, best of ``repeats`` after a warm-up: the memcpy ceiling of
  :class:`SharedTransport`.
"""
from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

__all__ = ["block_runs", "on_side_stream", "ready_event", "DistTransport", "EmulatedLink", "KVDest", "META", "Pending", "new_message", "SharedTransport", "Transport",
           "init_group", "raw_bandwidth", "raw_copy_bandwidth", "TRANSPORTS", "worker_context"]

TRANSPORTS = ("auto", "gloo", "nccl", "shared")


def init_group(backend: str, init_file: str, rank: int, world_size: int = 2,
               timeout: float = 60.0) -> None:
    """Join the two-process group through a shared file (``file://`` rendezvous, no free port
    needed). ``timeout`` (seconds) bounds the rendezvous and blocking collectives."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=timedelta(seconds=timeout))
    dist.barrier()                          # open the pair's connection before any KV moves


@dataclass(frozen=True)
class KVDest:
    """Where a KV message belongs on the decode side: ``layers`` (layer indices, in the
    message's order) and ``blocks`` (decode-side block ids, in token order); ``meta``: the
    message also carries the request's :data:`META` trailer (the last message of a request)."""
    layers: tuple[int, ...]
    blocks: tuple[int, ...]
    meta: bool = False


META = 3       # int64 trailer of a request's last KV message: request id, prompt length, first token


def new_message(shape: tuple[int, ...], dtype: torch.dtype, device, meta: bool):
    """One KV message as a single contiguous byte buffer: ``(message, kv, trailer)``.

    ``message`` is uint8 ``[kv bytes + 8·META if meta]``; ``kv`` views its head as ``dtype`` of
    ``shape`` (``[layers, 2, slots, K, D]``); ``trailer`` views the last ``8·META`` bytes as int64
    (None without ``meta``). Zero-filled, so padding slots are zeros and the buffer is touched
    before any transfer. Carrying the first token in the KV message saves a second message per
    request (a whole round through the transport for 24 bytes)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    kv_bytes = itemsize
    for n in shape:
        kv_bytes *= n
    if meta and kv_bytes % 8:
        raise ValueError(f"KV part of {kv_bytes} bytes is not a multiple of 8: cannot append an int64 trailer")
    msg = torch.zeros(kv_bytes + (8 * META if meta else 0), dtype=torch.uint8, device=device)
    kv = msg[:kv_bytes].view(dtype).view(shape)
    return msg, kv, (msg[kv_bytes:].view(torch.int64) if meta else None)


class Pending:
    """A posted receive. :meth:`done` is true once its bytes have landed; ``error`` holds the
    exception if the receive failed; ``buffer`` is the staging KV ``[layers, 2, slots, K, D]`` the
    bytes land in (None when they land straight in the decode-side blocks); ``meta`` the
    request's :data:`META` trailer once landed (None if the message has none)."""

    def __init__(self, is_done: Callable[[], bool] | None = None, buffer: torch.Tensor | None = None):
        self.landed = threading.Event()
        self.error: BaseException | None = None
        self.buffer = buffer
        self.meta: torch.Tensor | None = None
        self._is_done = is_done

    def done(self) -> bool:
        if self.landed.is_set():
            return True
        if self._is_done is not None and self._is_done():
            self.landed.set()
            return True
        return False


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class Transport:
    """KV channel to one peer process (see the module docstring for the protocol)."""

    def send(self, tensor: torch.Tensor) -> None:
        """Send a small plain message ``tensor`` (contiguous) to the peer; returns once sent."""
        raise NotImplementedError

    def recv(self, tensor: torch.Tensor) -> Pending:
        """Post a receive of a plain message into ``tensor`` (right shape and dtype)."""
        raise NotImplementedError

    def send_kv(self, message: torch.Tensor, dest: KVDest) -> None:
        """Ship one KV message built by :func:`new_message` (KV of ``[len(dest.layers), 2,
        len(dest.blocks) · block_size, K, D]``, plus the trailer if ``dest.meta``). Default: one
        plain message; the receiver knows ``dest`` from its own posting order."""
        self.send(message)

    def recv_kv(self, dest: KVDest, shape: tuple[int, ...], dtype: torch.dtype,
                device) -> Pending:
        """Post the receive of one KV message whose KV part has ``shape``. Default: into a fresh
        staging message (zero-filled now, so the receive does not page-fault); its KV part is
        ``Pending.buffer``, for the caller to scatter into its blocks, and its trailer
        ``Pending.meta``."""
        msg, kv, meta = new_message(shape, dtype, device, dest.meta)
        pending = self.recv(msg)
        pending.buffer, pending.meta = kv, meta
        return pending


def _wait_for_stream(tensor: torch.Tensor) -> None:
    """Block this thread until ``tensor``'s device has finished what this thread queued on its
    *current* stream (inside ``torch.cuda.stream(side)``: the side stream). A no-op on the CPU.

    With NCCL, ``dist.send``/``dist.recv`` return once the transfer is *queued*: the current CUDA
    stream then waits for it, the host does not. Without this the sender's clock would time
    the queueing and the decode side would call a transfer landed before its bytes had.
    (Written for GPUs, **untested here**.)"""
    if tensor.is_cuda:
        torch.cuda.current_stream(tensor.device).synchronize()


def ready_event(device) -> "torch.cuda.Event | None":
    """On a GPU: an event recorded now on this thread's current stream of ``device``, marking
    that the kernels queued so far (e.g. those filling a KV message) are done once it fires;
    None on the CPU. The thread that moves the message waits for it on its own stream
    (:func:`on_side_stream`), so the transfer neither starts before the data exists nor waits
    behind compute queued later."""
    if torch.device(device).type != "cuda":
        return None
    ev = torch.cuda.Event()
    ev.record(torch.cuda.current_stream(device))
    return ev


def on_side_stream(side, ready, tensor: torch.Tensor, op) -> None:
    """Run ``op()`` (a send, a receive or copies touching ``tensor``) on the CUDA stream ``side``
    after the event ``ready`` fired (on the device; a caller that times ``op`` calls
    ``ready.synchronize()`` first, so its clock starts when the bytes exist), and return when it
    has finished there; plain ``op()`` when ``side`` is None (CPU). A side stream per transfer thread keeps transfers off the default
    stream, where they would queue behind, and block, the engine's own kernels."""
    if side is None:
        op()
        return
    if ready is not None:
        side.wait_event(ready)
    with torch.cuda.stream(side):
        op()
        tensor.record_stream(side)     # the caching allocator must not hand this memory out early
    side.synchronize()


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
        _wait_for_stream(tensor)

    def recv(self, tensor: torch.Tensor) -> Pending:
        if self._thread is None:
            self._thread = threading.Thread(target=self._receive, daemon=True)
            self._thread.start()
        pending = Pending()
        # on a GPU the buffer's zero-fill was queued on this thread's stream: the receive,
        # on the receiver thread's own stream, must not overwrite it before it is done
        self._posted.put((tensor, pending, ready_event(tensor.device)))
        return pending

    def _receive(self) -> None:
        side = None
        while True:
            tensor, pending, ready = self._posted.get()
            try:
                if tensor.is_cuda and side is None:
                    torch.cuda.set_device(tensor.device)      # this thread started on cuda:0
                    side = torch.cuda.Stream(tensor.device)
                # on a GPU the receive runs on this thread's own stream: on the default stream
                # NCCL would make every decode step queued after it wait for this layer
                on_side_stream(side, ready, tensor, lambda: dist.recv(tensor, self.peer))
            except RuntimeError as e:         # a timed-out or broken group: report, stop receiving
                pending.error = e
                return
            pending.landed.set()


class SharedTransport(Transport):
    """KV written straight into the decode worker's block pool, shared between the processes.

    Start-up (see :func:`share_pool` / :func:`open_pool`): the decode worker puts its cache's
    ``k`` and ``v`` tensors (``[layers, blocks · block_size, K, D]``) on a multiprocessing queue;
    torch.multiprocessing hands CPU tensors over as POSIX shared memory and CUDA tensors as CUDA
    IPC handles, so the prefill worker gets *the same memory*, not a copy.

    Per KV message the prefill side copies the message's KV part into the named blocks of every
    named layer (for K and for V one layer-strided copy per run of consecutive blocks, or one
    indexed copy when there are more than :data:`MAX_RUNS` runs; the message itself was filled
    during the prefill, as for every transport), then increments ``counter`` (a ``multiprocessing.Value``) under its lock; the decode side
    polls the value without the lock and takes the lock once when the count is reached, which
    orders the writes before its reads on any CPU. The decode side's n-th posted KV receive is done once
    ``counter ≥ n``: messages are written in the order the decode side posted them. A trailer
    goes into the next slot of a shared int64 mailbox (a ring with more slots than requests can
    be in flight) before the counter moves. Plain messages (``send``) travel as Python lists on
    ``messages`` (a multiprocessing queue).

    CUDA (written for, **untested on a GPU here**): the copies are queued on the prefill
    process's CUDA stream, so :meth:`send_kv` synchronizes that stream before bumping the
    counter — otherwise the decode worker could read blocks the copy kernel has not written yet.
    The receiver (prefill) keeps the IPC tensors alive for its whole life; the producer (decode)
    must not free its cache while the prefill worker may still write into it (the cache lives
    as long as the decode worker, which only stops after every posted transfer has landed or
    failed).
    """

    def __init__(self, counter, messages, pool: tuple | None = None, block_size: int = 16):
        self.counter, self.messages = counter, messages
        self.block_size = block_size
        # pool: (k, v, mailbox): the decode cache's tensors and a shared int64 [slots, META]
        # ring for the trailers (slots > the number of requests that can be in flight)
        self.pool = pool
        self._posted_kv = 0                       # decode side: KV messages posted so far
        self._metas = 0                           # trailers written (prefill) / posted (decode)
        self._posted_msgs: list[tuple[torch.Tensor, Pending]] = []

    # -- prefill side -------------------------------------------------------------------------
    def send(self, tensor: torch.Tensor) -> None:
        self.messages.put(tensor.detach().cpu().tolist())

    def send_kv(self, message: torch.Tensor, dest: KVDest) -> None:
        if self.pool is None:
            raise RuntimeError("this SharedTransport has no KV pool: only the decode side's "
                               "shared tensors can be written into")
        k_pool, v_pool, mailbox = self.pool
        bs, nb, nl = self.block_size, len(dest.blocks), len(dest.layers)
        shape = (nl, 2, nb * bs) + tuple(k_pool.shape[2:])
        n_kv = k_pool.element_size()
        for n in shape:
            n_kv *= n
        if message.dtype != torch.uint8 or message.numel() != n_kv + (8 * META if dest.meta else 0):
            raise ValueError(f"KV message of {message.numel()} {message.dtype} does not fit {nl} layers × "
                             f"{nb} blocks of {bs} tokens{' + trailer' if dest.meta else ''}: expected "
                             f"{n_kv + (8 * META if dest.meta else 0)} uint8")
        kv = message[:n_kv].view(k_pool.dtype).view(shape)
        l0 = dest.layers[0]
        if list(dest.layers) != list(range(l0, l0 + nl)):
            raise ValueError(f"a KV message's layers must be consecutive, got {dest.layers}")
        k_dst, v_dst = k_pool[l0:l0 + nl], v_pool[l0:l0 + nl]      # views: [nl, slots, K, D]
        runs = block_runs(dest.blocks)
        if len(runs) <= MAX_RUNS:
            # each run of consecutive blocks is one contiguous range of slots in every layer, so
            # K and V are each one (layer-strided) copy per run: measured as fast as one flat
            # memcpy of the same bytes, where a copy per layer was 15-20 % slower at 4 MB
            t = 0
            for b, n in runs:
                k_dst[:, b * bs:(b + n) * bs].copy_(kv[:, 0, t:t + n * bs])
                v_dst[:, b * bs:(b + n) * bs].copy_(kv[:, 1, t:t + n * bs])
                t += n * bs
        else:                                     # scattered blocks: one indexed copy each
            idx = torch.tensor(dest.blocks, dtype=torch.long, device=k_pool.device)
            n_pool = k_pool.shape[1] // bs
            k_dst.view(nl, n_pool, -1).index_copy_(1, idx, kv[:, 0].reshape(nl, nb, -1))
            v_dst.view(nl, n_pool, -1).index_copy_(1, idx, kv[:, 1].reshape(nl, nb, -1))
        if dest.meta:
            mailbox[self._metas % mailbox.shape[0]].copy_(message[n_kv:].view(torch.int64))
            self._metas += 1
        _wait_for_stream(k_pool)                  # GPU (untested here): bytes written before the signal
        with self.counter.get_lock():             # the lock orders our writes before the signal
            self.counter.value += 1

    # -- decode side --------------------------------------------------------------------------
    def recv(self, tensor: torch.Tensor) -> Pending:
        pending = Pending(is_done=lambda: self._drain(pending))
        self._posted_msgs.append((tensor, pending))
        return pending

    def _drain(self, pending: Pending) -> bool:
        """Fill posted plain receives, in order, from the message queue; has ``pending`` landed?"""
        while self._posted_msgs and not pending.landed.is_set():
            try:
                data = self.messages.get_nowait()
            except queue.Empty:
                break
            tensor, p = self._posted_msgs.pop(0)
            tensor.copy_(torch.tensor(data, dtype=tensor.dtype))
            p.landed.set()
        return pending.landed.is_set()

    def recv_kv(self, dest: KVDest, shape, dtype, device) -> Pending:
        self._posted_kv += 1
        seq, slot = self._posted_kv, None
        if dest.meta:
            slot, self._metas = self._metas % self.pool[2].shape[0], self._metas + 1
        pending = Pending(buffer=None)

        def landed() -> bool:
            # poll without the lock (a plain 8-byte read), so the writer never waits for a
            # poller that was descheduled holding it; once the count is reached, take the lock
            # once: acquiring it after the writer released it orders its block writes before
            # our reads on any CPU
            if self.counter.get_obj().value < seq:
                return False
            with self.counter.get_lock():
                pass
            if slot is not None:
                pending.meta = self.pool[2][slot].clone()
            return True
        pending._is_done = landed
        return pending


MAX_RUNS = 4    # chosen: above this many runs of consecutive blocks, one indexed copy per tensor
                # (a copy per run costs a dispatch each; the indexed copy ran at 55-70 % of a flat
                # memcpy in an ad-hoc measurement, a strided run copy at about 100 %)


def block_runs(blocks) -> list[tuple[int, int]]:
    """Maximal runs of consecutive block ids, in order, as ``(first block, number of blocks)``:
    ``[4, 5, 6, 1, 2]`` → ``[(4, 3), (1, 2)]``."""
    runs: list[list[int]] = []
    for b in blocks:
        if runs and b == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([b, 1])
    return [(b, n) for b, n in runs]


def share_pool(k: torch.Tensor, v: torch.Tensor, max_requests: int, setup_q):
    """Decode side, start-up: move the cache's ``k``/``v`` storage to shared memory (CPU; in
    place, so the cache keeps using the same tensors; a CUDA tensor is shareable as it is), add a
    shared int64 mailbox of ``max_requests + 1`` trailers (CPU), hand all three to the prefill
    worker through ``setup_q``, and return them (the decode side's pool)."""
    if not k.is_cuda:
        k.share_memory_()
        v.share_memory_()
    mailbox = torch.zeros(max_requests + 1, META, dtype=torch.int64).share_memory_()
    setup_q.put((k, v, mailbox))
    return k, v, mailbox


def open_pool(setup_q, timeout: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prefill side, start-up: receive the decode worker's shared ``(k, v, mailbox)``. On CPU
    every page is touched once here (zeros, as the cache already holds), so later KV writes do
    not pay this process's first-touch page faults inside the timed transfer."""
    k, v, mailbox = setup_q.get(timeout=timeout)
    if not k.is_cuda:
        k.zero_()
        v.zero_()
    return k, v, mailbox


class EmulatedLink(Transport):
    """A slower link in software: ``inner``'s sends throttled to ``bandwidth`` bytes/s.

    The link is a single server: message i may be delivered no earlier than
    ``free_at = max(start_i, free_at) + latency + bytes_i / bandwidth``; the sender holds it
    until then and only then hands it to ``inner``, so the receiver sees it when a real link
    would deliver it. Hence over any busy stretch, bytes / elapsed ≤ bandwidth. Works over any
    transport. The emulated link sits *in series* with ``inner``: a message takes its wire time
    plus ``inner``'s own transfer time (small next to it when ``bandwidth`` is well below the
    inner transport's), so the effective bandwidth is a little below ``bandwidth``.
    """

    def __init__(self, inner: Transport, bandwidth: float, latency: float = 0.0):
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s, got {bandwidth!r}")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        self.inner, self.bandwidth, self.latency = inner, float(bandwidth), float(latency)
        self._free_at = 0.0

    def _throttled(self, nbytes: int, op) -> None:
        # hold the message until the link would have delivered it, then hand it over: the
        # receiver sees it no earlier than a real link of this bandwidth would deliver it
        # (sleeping after a fast inner send would delay only the sender's clock, not the bytes)
        start = time.perf_counter()
        self._free_at = max(start, self._free_at) + self.latency + nbytes / self.bandwidth
        left = self._free_at - time.perf_counter()
        if left > 0:
            time.sleep(left)
        op()

    def send(self, tensor: torch.Tensor) -> None:
        self._throttled(_nbytes(tensor), lambda: self.inner.send(tensor))

    def send_kv(self, message: torch.Tensor, dest: KVDest) -> None:
        self._throttled(_nbytes(message), lambda: self.inner.send_kv(message, dest))

    def recv(self, tensor: torch.Tensor) -> Pending:
        return self.inner.recv(tensor)

    def recv_kv(self, dest, shape, dtype, device) -> Pending:
        return self.inner.recv_kv(dest, shape, dtype, device)


def worker_context():
    """The multiprocessing context the workers start from: ``"forkserver"`` with pdlib's worker
    module (and so torch) imported once in the server, so each worker is a cheap fork of an
    already-initialised interpreter instead of a fresh one importing torch (seconds on a busy
    2-core machine); ``"spawn"`` where there is no forkserver. Neither forks a process that has
    touched CUDA. The fork server is a helper like multiprocessing's resource tracker: idle
    between runs, gone when this process ends."""
    import torch.multiprocessing as mp
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["pdlib.disagg.workers"])
    return ctx


def _raw_worker(rank: int, init_file: str, nbytes: int, repeats: int, warmup: int, idle: float,
                evict_bytes: int, out, backend: str = "gloo") -> None:
    torch.set_num_threads(1)
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device(f"cuda:{rank}")
        torch.cuda.set_device(device)
    init_group(backend, init_file, rank)
    buf = torch.zeros(nbytes // 8, dtype=torch.float64, device=device)
    scratch = torch.zeros(evict_bytes // 8, dtype=torch.float64, device=device) if evict_bytes else None
    try:
        dist.barrier()
        times = []
        for k in range(warmup + repeats):
            if scratch is not None:
                scratch.fill_(k)                  # push buf out of this core's caches
            _wait_for_stream(buf)
            dist.barrier()
            if idle:
                time.sleep(idle)
            t0 = time.perf_counter()
            if rank == 0:
                dist.send(buf, 1)
            else:
                dist.recv(buf, 0)
            _wait_for_stream(buf)                 # NCCL: until the bytes moved, not queued
            times.append(time.perf_counter() - t0)
        if rank == 0:
            out.put(times)
    finally:
        dist.destroy_process_group()


def raw_bandwidth(nbytes: int, repeats: int = 3, timeout: float = 60.0, warmup: int = 1,
                  all_times: bool = False, idle: float = 0.0, evict_bytes: int = 0,
                  backend: str = "gloo"):
    """Bytes/s of the best of ``repeats`` plain ``send``/``recv`` of ONE contiguous ``nbytes``
    tensor between two fresh processes (1 torch thread each) — over gloo between CPU processes,
    or over NCCL between ``cuda:0`` and ``cuda:1`` with ``backend="nccl"`` (written for two GPUs,
    **untested here**) — after ``warmup``
    unmeasured sends of the same tensor, timed on the sender (call → return) like the KV path's
    ``transfer_seconds``. ``all_times=True`` returns the seconds of every send instead
    (warm-up ones first).

    ``idle`` (seconds): both sides wait that long before each send. Back-to-back sends
    (``idle=0``) keep the loopback TCP connection's congestion window open; a KV transfer comes
    after a whole prefill of silence, and Linux shrinks the window of a connection idle for
    longer than its retransmission timeout (``net.ipv4.tcp_slow_start_after_idle``, on by
    default), so a transfer after ``idle`` = the prefill time is the like-for-like reference.

    ``evict_bytes``: both sides write that much scratch memory before each send, so the tensor
    is not in their caches — as a KV message filled during a prefill (which streams the weights
    through the caches after every layer) is not. With ``idle`` = the prefill time and
    ``evict_bytes`` = :data:`EVICT_BYTES` the raw send sees what the KV path sees; with the
    defaults it is the warm, back-to-back ceiling."""
    if nbytes < 8:
        raise ValueError(f"nbytes must be >= 8, got {nbytes!r}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats!r}, {warmup!r}")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl" and (not torch.cuda.is_available() or torch.cuda.device_count() < 2):
        raise ValueError("backend='nccl' needs two GPUs (NCCL refuses two ranks on one GPU)")
    ctx = worker_context()
    out = ctx.Queue()
    init_file = os.path.join(tempfile.mkdtemp(prefix="pdlib_raw_"), "rendezvous")
    procs = [ctx.Process(target=_raw_worker, args=(r, init_file, nbytes, repeats, warmup, idle,
                                                   evict_bytes, out, backend),
                         daemon=True) for r in range(2)]
    try:
        for p in procs:
            p.start()
        times = out.get(timeout=timeout + (warmup + repeats) * idle)
        if all_times:
            return times
        return (nbytes // 8 * 8) / min(times[warmup:])
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()


EVICT_BYTES = 64 << 20     # written between copies: twice the 32 MiB L3 of the machine measured


def raw_copy_bandwidth(nbytes: int, repeats: int = 3, warmup: int = 1, threads: int = 1,
                       evict_bytes: int = EVICT_BYTES, device: str = "cpu") -> float:
    """Bytes/s of the best of ``repeats`` single ``dst.copy_(src)`` of ``nbytes`` contiguous
    bytes from private memory into a shared-memory tensor, after ``warmup`` unmeasured copies,
    with ``threads`` torch threads: the memcpy ceiling that :class:`SharedTransport` (a copy into
    the peer's shared blocks plus a signal) is compared with.

    Conditions mirror the whole-request KV path's: before each copy ``src`` is rewritten and
    then ``evict_bytes`` of scratch memory are written, so neither ``src`` nor ``dst`` is in the
    caches — as the decode worker's blocks are not, and as a message filled layer by layer during
    a prefill (whose weights stream through the caches after each layer) is not. Without the
    eviction a copy of a few MB that fits in the last-level cache measures cache, not memory,
    bandwidth.

    ``device="cuda"`` (or ``"cuda:N"``): the same on a GPU, a device-to-device copy timed from
    a synchronized start to a synchronized end (the ceiling of the CUDA-IPC shared pool, whose
    peer memory is the same device memory; written for a GPU, **untested here**)."""
    if nbytes < 8:
        raise ValueError(f"nbytes must be >= 8, got {nbytes!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
        src = torch.ones(nbytes // 8, dtype=torch.float64, device=dev)
        dst = torch.zeros(nbytes // 8, dtype=torch.float64, device=dev)
        if not dst.is_cuda:
            dst.share_memory_()
        scratch = torch.zeros(max(1, evict_bytes // 8), dtype=torch.float64, device=dev)
        times = []
        for k in range(warmup + repeats):
            src.fill_(k + 1)
            scratch.fill_(k)
            _wait_for_stream(dst)
            t0 = time.perf_counter()
            dst.copy_(src)
            _wait_for_stream(dst)
            times.append(time.perf_counter() - t0)
        return (nbytes // 8 * 8) / min(times[warmup:])
    finally:
        torch.set_num_threads(before)
