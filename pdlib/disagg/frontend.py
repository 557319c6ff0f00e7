"""The front end of a disaggregated run: start the two workers, feed requests, collect results.

Requests go to the decode worker, which owns the KV blocks: it admits a request when its blocks
are free, tells the prefill worker which block ids the KV must land in, and streams tokens back.
The front end turns the workers' event stream into one :class:`RequestResult` per request and
guarantees an end: a worker that dies, a KV transfer with no progress for ``timeout`` seconds
(the decode worker's verdict), or no event at all for ``2 · timeout + 5`` seconds ends every
unfinished request as ``"failed"`` with the reason; both processes are always stopped and reaped.
"""
from __future__ import annotations

import os
import queue
import signal
import tempfile
import time
from dataclasses import dataclass, field

import torch

from ..engine import Decoder
from ..engine.kv_cache import blocks_for_all
from ..models import ModelSpec
from .transport import TRANSPORTS, worker_context
from .workers import decode_main, prefill_main

__all__ = ["RequestResult", "hidden_fraction", "pick_transport", "run", "worker_context"]


@dataclass(frozen=True)
class RequestResult:
    """One request's outcome. Times in seconds, measured from the moment the front end submitted it.

    ``status``: "finished" | "failed" | "rejected" (``reason`` says why for the last two).
    ``ttft``: until the first token is on the decode worker (prefill + exposed KV transfer +
    queueing); ``tpot``: mean seconds per later token; ``prefill_seconds``: the prefill
    worker's compute time; ``transfer_seconds``: first KV byte leaving → last KV byte sent;
    ``prefill_window``: (start, end) of the prefill compute;
    ``exposed_transfer``: how long after the prefill ended the last KV byte was sent (0 when fully
    hidden); ``kv_bytes``: bytes on the wire (layers padded to whole blocks, plus the
    first-token message); ``kv_sent`` / ``kv_received``: per-layer digests of the prompt's KV on
    each side (empty unless ``checksums``); ``token_times``: when each token was on the decode
    worker; ``step_seconds``: the engine time (``Runner.step``) of the decode step that made each
    later token — ``tpot − mean(step_seconds)`` is the worker loop's own overhead per step;
    ``wire``: ``(start, end, bytes)`` of every KV message as the sender saw it.
    """
    index: int
    status: str
    tokens: tuple[int, ...] = ()
    reason: str = ""
    ttft: float | None = None
    tpot: float | None = None
    prefill_seconds: float | None = None
    prefill_window: tuple[float, float] | None = None
    transfer_seconds: float | None = None
    exposed_transfer: float | None = None
    kv_bytes: int = 0
    kv_sent: tuple[str, ...] = ()
    kv_received: tuple[str, ...] = ()
    token_times: tuple[float, ...] = field(default=(), repr=False)
    step_seconds: tuple[float, ...] = field(default=(), repr=False)
    wire: tuple[tuple[float, float, int], ...] = field(default=(), repr=False)


def hidden_fraction(exposed: float, kv_bytes: float, bandwidth: float) -> float:
    """Share of a KV transfer hidden behind the prefill, counted over its wire time:
    ``max(0, 1 − exposed / (kv_bytes / bandwidth))`` with ``exposed`` the seconds of transfer
    left after the prefill ended (measured, e.g. :attr:`RequestResult.exposed_transfer`, or
    predicted by :func:`pdlib.kv_transfer_time`), ``kv_bytes`` bytes and ``bandwidth`` the link's
    bytes/s. (The span from first to last send would also count the link's idle gaps between
    layers, so it is not the denominator.)"""
    if not (kv_bytes > 0 and bandwidth > 0):
        raise ValueError(f"kv_bytes and bandwidth must be > 0, got {kv_bytes!r}, {bandwidth!r}")
    return max(0.0, 1.0 - exposed / (kv_bytes / bandwidth))


def _resolve(m_or_spec, dtype, seed):
    if isinstance(m_or_spec, Decoder):
        return m_or_spec.spec, {k: v.detach().cpu() for k, v in m_or_spec.state_dict().items()}, m_or_spec.dtype
    from .. import engine
    if isinstance(m_or_spec, (ModelSpec, str)):
        m = engine.load(m_or_spec, dtype=dtype, seed=seed)
        return m.spec, m.state_dict(), dtype
    raise TypeError(f"m_or_spec must be an engine Decoder, a ModelSpec or a model name, "
                    f"got {type(m_or_spec).__name__}")


def pick_transport(transport: str = "auto", n_gpus: int | None = None) -> tuple[str, tuple[str, str]]:
    """``(transport, (prefill device, decode device))`` for a requested ``transport`` on a machine
    with ``n_gpus`` CUDA devices (default: as many as torch sees).

    ``"auto"`` picks what the hardware allows and a real system would use there:

    * two or more GPUs → ``"nccl"`` between ``cuda:0`` and ``cuda:1`` (a network-style transfer);
    * one GPU → ``"shared"`` on ``cuda:0`` (CUDA IPC; NCCL refuses two ranks on one device);
    * no GPU → ``"gloo"`` on the CPU: it keeps the KV on a socket path, one message per layer with
      a copy at each end, which is what a transfer between machines looks like (``"shared"`` is
      faster on one CPU host, but teaches less about networks; ask for it by name).

    ``"gloo"`` runs on the CPU; ``"shared"`` on ``cuda:0`` when there is a GPU, else the CPU;
    ``"nccl"`` needs two GPUs.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, got {transport!r}")
    if n_gpus is None:
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if transport == "auto":
        transport = "nccl" if n_gpus >= 2 else "shared" if n_gpus == 1 else "gloo"
    if transport == "nccl":
        if n_gpus < 2:
            raise ValueError("transport='nccl' needs two GPUs (NCCL refuses two ranks on one GPU); "
                             "use 'shared' on one GPU or 'gloo' on the CPU")
        return transport, ("cuda:0", "cuda:1")
    if transport == "shared" and n_gpus >= 1:
        return transport, ("cuda:0", "cuda:0")
    return transport, ("cpu", "cpu")


def run(m_or_spec, prompts, max_new_tokens: int, transport: str = "auto",
        link_bandwidth: float | None = None, link_latency: float = 0.0, layerwise: bool = True,
        timeout: float = 30.0, n_blocks: int | None = None, block_size: int = 16,
        dtype: torch.dtype = torch.float64, seed: int = 0, checksums: bool = True,
        threads: int = 1, faults: dict | None = None) -> list[RequestResult]:
    """Serve ``prompts`` (lists of token ids) greedily on a prefill process and a decode process.

    ``m_or_spec``: a :class:`pdlib.engine.Decoder` (its weights are shipped to both workers) or a
    ModelSpec / name (weights drawn with ``seed`` in ``dtype``). ``transport``: "gloo" (CPU
    processes, torch.distributed over loopback), "shared" (the decode worker's KV blocks in
    shared memory, written by the prefill worker directly; CUDA IPC on one GPU), "nccl" (two
    GPUs, untested here) or "auto" (see :func:`pick_transport`). ``link_bandwidth``: emulate a
    link of that many bytes/s (and ``link_latency`` seconds per message) on the KV path.
    ``layerwise``: send layer i as soon as it is computed (else all layers after the prefill).
    ``timeout``: seconds without progress after which requests fail (a stalled KV transfer, a
    silent worker). ``n_blocks``/``block_size``: the decode worker's KV cache (default: room for
    every request at once). ``threads``: torch threads per worker. ``faults`` (tests):
    ``{"kill_decode_after_tokens": n}`` SIGKILLs the decode worker after n tokens arrived,
    ``{"stall_prefill_after_layers": n}`` makes the prefill worker stop sending after n layers.
    Returns one :class:`RequestResult` per prompt, in order.
    """
    prompts = [list(map(int, p)) for p in prompts]
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    faults = dict(faults or {})
    unknown = set(faults) - {"kill_decode_after_tokens", "stall_prefill_after_layers"}
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; allowed: kill_decode_after_tokens, "
                         f"stall_prefill_after_layers")
    transport, devices = pick_transport(transport)
    spec, state, dtype = _resolve(m_or_spec, dtype, seed)
    if n_blocks is None:
        n_blocks = blocks_for_all(prompts, max_new_tokens, block_size)
    cfg = {"spec": spec, "dtype": dtype, "transport": transport, "block_size": block_size, "n_blocks": n_blocks,
               "layerwise": layerwise, "link_bandwidth": link_bandwidth, "link_latency": link_latency,
               "timeout": timeout, "checksums": checksums, "threads": threads, "faults": faults,
               "init_file": os.path.join(tempfile.mkdtemp(prefix="pdlib_disagg_"), "rendezvous")}
    ctx = worker_context()
    ctrl_q, work_q, events = ctx.Queue(), ctx.Queue(), ctx.Queue()
    # the shared transport's channels: the KV pool handed over at start-up, the count of KV
    # messages written (the per-layer "landed" signal), and plain messages
    chan = {"setup": ctx.Queue(), "counter": ctx.Value("q", 0), "messages": ctx.Queue()}
    procs = {
        "prefill": ctx.Process(target=prefill_main, name="pdlib-prefill", daemon=True,
                               args=({**cfg, "rank": 0, "device": devices[0]}, state, work_q, events, chan)),
        "decode": ctx.Process(target=decode_main, name="pdlib-decode", daemon=True,
                              args=({**cfg, "rank": 1, "device": devices[1]}, state, ctrl_q, work_q, events,
                                    chan)),
    }
    n = len(prompts)
    st = [{"status": None, "reason": "", "tokens": [], "times": [], "steps": [], "sent": [], "recv": [], "wire": [], "prefill": None}
          for _ in range(n)]
    try:
        for p in procs.values():
            p.start()
        problem = _wait_ready(procs, events, 60.0 + timeout)
        t_submit = time.perf_counter()
        if problem:
            for s in st:
                s["status"], s["reason"] = "failed", problem
            return [_result(i, s, t_submit) for i, s in enumerate(st)]
        for i, p in enumerate(prompts):
            ctrl_q.put((i, p, max_new_tokens))
        ctrl_q.put(None)
        _collect(st, procs, events, max_new_tokens, timeout, faults,
                 spec.n_layers if layerwise else 1)
    finally:
        _stop(procs, (ctrl_q, work_q, events, chan["setup"], chan["messages"]), work_q)
    return [_result(i, s, t_submit) for i, s in enumerate(st)]


def _wait_ready(procs, events, limit: float) -> str:
    """Wait until both workers have built their engines; "" or the reason they did not."""
    ready, t0 = set(), time.perf_counter()
    while len(ready) < 2:
        try:
            ready.add(events.get(timeout=0.1)[1])
        except queue.Empty:
            dead = [n for n, p in procs.items() if not p.is_alive()]
            if dead:
                return (f"{' and '.join(dead)} worker exited during start-up (exit code "
                        f"{procs[dead[0]].exitcode}){_main_guard_hint()}")
            if time.perf_counter() - t0 > limit:
                return f"workers not ready after {limit:.0f} s"
    return ""


def _main_guard_hint() -> str:
    """Workers start by importing the caller's main module (forkserver/spawn), so a script that
    calls :func:`run` at import time starts workers that fail; say so when that may be why."""
    import sys
    main = sys.modules.get("__main__")
    if getattr(main, "__file__", None):                   # a script or python -m, not a notebook
        return ("; if this is a script, put the code that calls pdlib.disagg.run under "
                "`if __name__ == \"__main__\":` (each worker imports the main module first)")
    return ""


def _collect(st, procs, events, max_new, timeout, faults, messages: int, grace: float = 2.0):
    """Apply worker events to the per-request state until every request has ended, and every
    finished one has its prefill report and all ``messages`` "sent" reports (they come from the
    prefill worker, and may arrive after the decode worker's last token; waited for at most
    ``grace`` seconds)."""
    open_ = lambda: [i for i, s in enumerate(st) if s["status"] is None]
    unreported = lambda: any(s["status"] == "finished" and (s["prefill"] is None or len(s["wire"]) < messages)
                             for s in st)
    tokens_seen, kill_after = 0, faults.get("kill_decode_after_tokens")
    last_event = time.perf_counter()
    ended_at = None
    while True:
        if not open_():
            ended_at = ended_at or time.perf_counter()
            if not unreported() or time.perf_counter() - ended_at > grace:
                return
        try:
            ev = events.get(timeout=0.05)
        except queue.Empty:
            ev = None
        now = time.perf_counter()
        if ev is not None:
            last_event = now
            kind, i = ev[0], ev[1]
            s = st[i]
            if kind == "token":
                s["tokens"].append(ev[2])
                s["times"].append(ev[3])
                if ev[4] is not None:
                    s["steps"].append(ev[4])
                tokens_seen += 1
                if len(s["tokens"]) == max_new:
                    s["status"] = "finished"
                if kill_after is not None and tokens_seen >= kill_after:
                    os.kill(procs["decode"].pid, signal.SIGKILL)
                    kill_after = None
            elif kind == "prefill":
                s["prefill"] = (ev[2], ev[3])
                s["sent"] = list(ev[5])
            elif kind == "sent":
                s["wire"].append((ev[2], ev[3], ev[4]))
            elif kind == "landed":
                s["recv"] = list(ev[3])
            elif kind in ("failed", "rejected"):
                s["status"], s["reason"] = kind, ev[2]
            continue
        dead = [name for name, p in procs.items() if not p.is_alive() and p.exitcode not in (0, None)]
        if dead:
            reason = "; ".join(f"{name} worker died (exit code {procs[name].exitcode})" for name in dead)
        elif now - last_event > 2 * timeout + 5.0:     # after the workers' own timeouts, which say more
            reason = f"no event from the workers for {now - last_event:.1f} s (timeout {timeout} s)"
        else:
            continue
        for i in open_():
            st[i]["status"], st[i]["reason"] = "failed", reason


def _stop(procs, queues, work_q, grace: float = 3.0):
    """Ask nicely (the workers end when their queues close; a None on ``work_q`` also stops a
    prefill worker whose decode worker died), then terminate, then kill; reap all."""
    try:
        work_q.put(None)
    except (OSError, ValueError):
        pass
    deadline = time.perf_counter() + grace
    for p in procs.values():
        if p.pid is not None:
            p.join(timeout=max(0.0, deadline - time.perf_counter()))
    for p in procs.values():
        if p.pid is not None and p.is_alive():
            p.terminate()
            p.join(timeout=1.0)
        if p.pid is not None and p.is_alive():
            p.kill()
            p.join()
    for q in queues:
        q.cancel_join_thread()
        q.close()


def _result(i, s, t0) -> RequestResult:
    times = [t - t0 for t in s["times"]]
    ttft = times[0] if times else None
    tpot = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None
    pre = s["prefill"]
    transfer = exposed = None
    if s["wire"]:
        start, end = min(w[0] for w in s["wire"]), max(w[1] for w in s["wire"])
        transfer = end - start
        if pre is not None:
            exposed = max(0.0, end - pre[1])
    status = s["status"] or "failed"
    return RequestResult(index=i, status=status, tokens=tuple(s["tokens"]), reason=s["reason"],
                         ttft=ttft, tpot=tpot,
                         prefill_seconds=None if pre is None else pre[1] - pre[0],
                         prefill_window=None if pre is None else (pre[0] - t0, pre[1] - t0),
                         transfer_seconds=transfer, exposed_transfer=exposed,
                         kv_bytes=sum(w[2] for w in s["wire"]), kv_sent=tuple(s["sent"]),
                         kv_received=tuple(s["recv"]), token_times=tuple(times),
                         step_seconds=tuple(s["steps"]),
                         wire=tuple((a - t0, b - t0, n) for a, b, n in s["wire"]))
