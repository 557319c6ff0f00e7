"""Cluster shapes: colocated instances behind a router, or disaggregated prefill and decode pools
joined by a KV link.

Colocated: every instance prefills and decodes with the same scheduler. An arrival goes to one
instance (``router``: "round_robin", "least_loaded" = fewest queued + running requests, ties to the
lowest index, or "random" with the run's seed).

Disaggregated (DistServe / Splitwise style):

1. an arrival goes to the least-loaded prefill instance, which runs prefill-only steps (whole
   prompts FCFS within a token budget, or chunks of ``prefill_chunk`` tokens). The prefill computes
   the first output token. When the client sees it is a convention (``first_token``): "decode"
   (default) delivers it with the KV, when the KV has landed on the decode instance — what a
   client of vLLM, Dynamo or Mooncake-style systems observes, and why their TTFT grows on a slow
   network; "prefill" delivers it at prefill end (DistServe's convention, TTFT blind to the link);
2. the request is then assigned to the least-loaded decode instance and waits there (``pending``)
   until that instance has free blocks for its KV; meanwhile the prefill instance keeps the KV in
   its own memory (a full prefill instance stops admitting);
3. the decode instance reserves the blocks and *pulls* the KV over the link (see "The link"
   below). In ``"whole"`` mode (default) the transfer starts after the prefill; in
   ``"layerwise"`` mode a transfer pulled the moment the prefill ends is taken to have streamed
   its layers during the prefill: it may start once the first layer is done
   (``prefill_start + prefill_time / layers``) and cannot land before
   ``prefill_end + wire / layers`` (+ latency). With an idle link either mode is exactly
   :func:`pdlib.kv_transfer_time` in that mode; a layerwise transfer that had to wait for decode
   memory is sent whole;
4. when the KV lands, the prefill instance frees its copy and the request joins the decode batch
   at the next step boundary (``transfer_time`` = landing − prefill end). Tokens 2.. come from the
   decode instance, so the gap between tokens 1 and 2 includes the transfer.

Which systems move the KV which way (``transfer``):

* ``"whole"``, after the prefill (the default): vLLM's NixlConnector, the connector llm-d deploys
  by default and the one Dynamo's vLLM workers use. The prefill instance keeps a finished
  request's blocks and hands their ids to the decode instance, which reads them all in one
  asynchronous pull (vllm-project/vllm, ``vllm/distributed/kv_transfer/kv_connector/v1/
  nixl_connector.py``: ``request_finished`` delays freeing the blocks, ``get_num_new_matched_tokens``
  pulls all prompt blocks, ``wait_for_layer_load``: "NixlConnector does not do layerwise saving";
  llm-d, ``guides/pd-disaggregation/README.md``, "Supported KV Transfer Backends": NixlConnector,
  "Default"; NVIDIA Dynamo design docs, "Disaggregated Serving": the prefill engine computes the
  KV, then transfers it, then the decode engine runs,
  https://docs.nvidia.com/dynamo/v-0-9-1/design-docs/disaggregated-serving). SGLang's PD sends a
  request's KV after each prefill forward pass (per chunk when the prompt is chunked, else all of
  it at the prefill's end: sgl-project/sglang, ``python/sglang/srt/disaggregation/prefill.py``,
  ``process_batch_result_disagg_prefill`` → ``send_kv_chunk``). DistServe's decoding instances
  pull a finished prefill's KV (Zhong et al., OSDI 2024, "combat burstiness" in its online
  scheduling: the prefill GPUs' memory is the queue).
* ``"layerwise"``, streamed while the prefill computes: Mooncake (Qin et al., FAST 2025, arXiv
  2407.00079: the KVCache transfer overlaps the incremental prefill, streaming each layer's
  KVCache to the decoding node) and Splitwise (Patel et al., ISCA 2024: layer-wise KV-cache
  transfer overlapped with the prompt phase).

The link. Each prefill instance sends over one NIC of ``parallel_links`` lanes and each decode
instance receives over one of ``decode_links`` lanes (default: as many as a prefill instance
sends on), ``link.bandwidth`` bytes/s per lane and direction. A transfer runs at
``rate = min(parallel_links, decode_links) · bandwidth`` and takes ``wire = bytes / rate``; it
needs its prefill instance's egress (one transfer at a time) and one of its decode instance's
ingress *slots*, ``slots = max(1, floor(decode_links / parallel_links))`` (a receiver with twice
the lanes of a sender takes two senders at full speed). Both are served FIFO in the order the
decode instances pull: a transfer starts when its egress and an ingress slot are both free, holds
both for ``wire`` seconds and lands ``latency`` later. So in xPyD with x > y several prefill
instances share one decode NIC: two transfers pulled at once into a one-slot receiver land
``wire`` and ``2 · wire`` after they start (fair sharing would land both at ``2 · wire``: the same
last landing, a slightly later mean). With ``decode_links`` not a multiple of ``parallel_links``
the leftover ingress lanes idle (a conservative rounding).

What the link model leaves out, and why it does not move results here: a transfer's DMA reads
(on the sender) and writes (on the receiver) take no HBM or PCIe bandwidth from the engines'
steps. Two bounds say how much they would take. (a) Per byte: the transfer moves each KV byte
once out of the prefill GPU's HBM and once into the decode GPU's, while the decode instance then
reads it on every one of the request's O − 1 decode steps, so transfers add at most 1 / (O − 1)
to the decode instance's KV traffic (1.6% for 64-token answers; weights, read every step, not
counted). The prefill instance is compute-bound (chapter 01), so the extra read of what it has
just written does not lengthen its steps. (b) Per second: one 400 Gb/s NIC (``IB-NDR-400G``,
50 GB/s) uses 50e9 / 3.35e12 = 1.5% of an H100-SXM's HBM bandwidth while a transfer is in flight
(A100-80GB 2.5%, H200 1.0%). Only NVLink (450 GB/s, 13% of an H100's HBM) is fast enough to
matter, and it is busy only ``wire`` = bytes / 450 GB/s per request. GPUDirect RDMA carries the
KV between NIC and GPU over the PCIe switch beside the GPU (Gen5 x16: 64 GB/s per direction, above
the NIC's 50 GB/s), a path the engine's steps do not use once the weights are resident.
Congestion in the network core (switch oversubscription, incast beyond one receiver's NIC) is not
modelled: the fabric is taken as non-blocking.

A decode instance that runs out of blocks preempts (recompute) like any vLLM engine: the victim
re-prefills on the decode instance itself.

Conditional disaggregation: NVIDIA Dynamo prefills a request on its decode engine when the
prefill is short or mostly a prefix-cache hit (Dynamo 0.2 design notes, "Dynamo Disaggregation",
https://docs.nvidia.com/dynamo/archive/0.2.0/architecture/disagg_serving.html). With ``local_prefill``
= N tokens, a request whose prefill work — prompt minus its prefix-cache hit, ``P − cached`` — is
at most N skips the prefill pool: it goes straight to the least-loaded decode instance, which
prefills it there (no KV transfer: ``transfer_time`` = 0, token 1 at that prefill's end). Longer
prefills take the path above. Decode instances then run the chunked (Sarathi-Serve) scheduler with
a token budget of ``decode_chunk`` per step, so local prefills ride along with the decodes.
``local_prefill=None`` (pure disaggregation) and ``local_prefill=0`` (no prefill is that short,
since ``P − cached ≥ 1``) keep the decode instances on their decode-only continuous policy,
exactly as without the option. Each request's ``prefill_site`` says where its first prefill ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import hardware as hw
from .. import models as mdl
from ..cost import CostModel
from .events import Runtime
from .instance import Instance
from .request_state import RequestTable
from .schedulers import Continuous, make_policy

ROUTERS = ("round_robin", "least_loaded", "random")


def _check_router(router: str) -> None:
    if router not in ROUTERS:
        raise KeyError(f"unknown router {router!r}; known: {', '.join(ROUTERS)}")


def _positive_int(name: str, v) -> int:
    if not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Colocated:
    """``instances`` identical engines of ``tp`` GPUs each, prefill and decode on the same GPUs."""
    cost: CostModel
    scheduler: str = "continuous"
    max_batch: int = 256
    chunk_size: int | None = None        # token budget per step (None: policy default)
    instances: int = 1
    router: str = "round_robin"
    block_size: int = 16
    kv_tokens: int | None = None         # override KV capacity per instance (tokens)
    max_stretch: int = 1024              # decode steps per fast-path stretch (1: step by step)

    @property
    def n_gpus(self) -> int:
        return self.instances * self.cost.tp

    def build(self, reqs: RequestTable, seed: int = 0) -> "_ColocatedRun":
        policy = make_policy(self.scheduler, self.max_batch, self.chunk_size)
        insts = [Instance(i, self.cost, policy, reqs, role="both", block_size=self.block_size,
                          kv_tokens=self.kv_tokens, max_stretch=self.max_stretch) for i in range(self.instances)]
        return _ColocatedRun(reqs, insts, self.router, seed)


@dataclass(frozen=True)
class Disaggregated:
    """``n_prefill`` prefill instances and ``n_decode`` decode instances joined by ``link``."""
    prefill_cost: CostModel
    decode_cost: CostModel
    link: hw.Link
    n_prefill: int = 1
    n_decode: int = 1
    transfer: str = "whole"              # "whole" after the prefill (vLLM NIXL), or "layerwise"
    parallel_links: int = 1              # NIC lanes per prefill instance (its egress)
    prefill_chunk: int | None = None     # None: whole prompts, batched within prefill_budget tokens
    prefill_budget: int = 8192
    max_batch: int = 256
    block_size: int = 16
    prefill_kv_tokens: int | None = None
    decode_kv_tokens: int | None = None
    max_stretch: int = 1024              # decode steps per fast-path stretch (1: step by step)
    first_token: str = "decode"          # when the client gets token 1: KV landed, or prefill end
    local_prefill: int | None = None     # prefill work (P − cached tokens) ≤ this: prefill on decode
    decode_chunk: int = 512              # decode instances' chunked token budget when local_prefill ≥ 1
    decode_links: int | None = None      # NIC lanes per decode instance (its ingress); None: parallel_links

    @property
    def ingress_lanes(self) -> int:
        """NIC lanes of each decode instance (``decode_links``, or ``parallel_links`` when None)."""
        return self.parallel_links if self.decode_links is None else self.decode_links

    @property
    def prefills_locally(self) -> bool:
        """True when some request may be prefilled on a decode instance (``local_prefill`` ≥ 1)."""
        return self.local_prefill is not None and self.local_prefill >= 1

    @property
    def n_gpus(self) -> int:
        return self.n_prefill * self.prefill_cost.tp + self.n_decode * self.decode_cost.tp

    def build(self, reqs: RequestTable, seed: int = 0) -> "_DisaggRun":
        pol = (make_policy("chunked", self.max_batch, self.prefill_chunk) if self.prefill_chunk
               else Continuous(self.max_batch, self.prefill_budget))
        pre = [Instance(i, self.prefill_cost, pol, reqs, role="prefill", block_size=self.block_size,
                        kv_tokens=self.prefill_kv_tokens, max_stretch=self.max_stretch) for i in range(self.n_prefill)]
        dpol = (make_policy("chunked", self.max_batch, self.decode_chunk) if self.prefills_locally
                else Continuous(self.max_batch))
        dec = [Instance(self.n_prefill + i, self.decode_cost, dpol, reqs,
                        role="decode", block_size=self.block_size, kv_tokens=self.decode_kv_tokens,
                        max_stretch=self.max_stretch)
               for i in range(self.n_decode)]
        return _DisaggRun(reqs, pre, dec, self)


def _cost(model, gpu, tp: int, cost_kwargs: dict | None) -> CostModel:
    return CostModel(mdl.get(model), hw.gpu(gpu) if isinstance(gpu, str) else gpu, tp=tp,
                     **(cost_kwargs or {}))


def colocated(*, model, gpu, scheduler: str = "continuous", max_batch: int = 256,
              chunk_size: int | None = None, instances: int = 1, tp: int = 1,
              router: str = "round_robin", block_size: int = 16, kv_tokens: int | None = None,
              cost_kwargs: dict | None = None) -> Colocated:
    """A colocated cluster: ``instances`` engines of ``tp`` × ``gpu`` each serving ``model``.

    ``scheduler``: "static", "continuous" or "chunked"; ``chunk_size``: the token budget of a step
    (chunked: default 512; continuous: default 8192). ``kv_tokens`` overrides each instance's KV
    capacity (tokens; default ``CostModel.kv_capacity_tokens``). ``cost_kwargs`` go to
    :class:`~pdlib.CostModel` (``flops_efficiency``, ``bw_efficiency``, ``overhead``, ...).
    Model and GPU may be catalog names or objects.
    """
    make_policy(scheduler, max_batch, chunk_size)                  # validate early
    _check_router(router)
    _positive_int("instances", instances), _positive_int("block_size", block_size)
    return Colocated(_cost(model, gpu, tp, cost_kwargs), scheduler, max_batch, chunk_size,
                     instances, router, block_size, kv_tokens)


def disaggregated(*, model, prefill_gpu, decode_gpu, link, n_prefill: int = 1, n_decode: int = 1,
                  prefill_tp: int = 1, decode_tp: int = 1, transfer: str = "whole",
                  parallel_links: int = 1, decode_links: int | None = None, prefill_chunk: int | None = None,
                  prefill_budget: int = 8192, max_batch: int = 256, block_size: int = 16,
                  prefill_kv_tokens: int | None = None, decode_kv_tokens: int | None = None,
                  first_token: str = "decode", local_prefill: int | None = None,
                  decode_chunk: int = 512, cost_kwargs: dict | None = None) -> Disaggregated:
    """A disaggregated cluster (see the module docstring for the request's path).

    ``link``: a :class:`~pdlib.hardware.Link` or catalog name ("IB-NDR-400G", "100GbE", ...);
    its bandwidth must be > 0 bytes/s. ``transfer``: "whole" (default: the KV moves after the
    prefill, as vLLM's NixlConnector, llm-d, Dynamo's vLLM path, SGLang and DistServe do) or
    "layerwise" (streamed during the prefill, as Mooncake and Splitwise do); see the module
    docstring for sources. ``parallel_links``: NIC lanes per prefill instance (e.g. its tp: one NIC
    per GPU); ``decode_links``: NIC lanes per decode instance, its ingress (None: the same as
    ``parallel_links``), shared by the transfers of every prefill instance that sends into it.
    ``prefill_chunk``: chunk size for chunked
    prefill on the prefill instances (None: whole prompts, up to ``prefill_budget`` tokens per step).
    ``first_token``: "decode" (token 1 reaches the client when the KV has landed, so TTFT includes
    the transfer) or "prefill" (DistServe's convention: TTFT ends with the prefill).
    ``local_prefill``: conditional disaggregation threshold in tokens (an int ≥ 0, or None for pure
    disaggregation): a request whose prefill work ``prompt − cached`` is ≤ ``local_prefill`` is
    prefilled on the least-loaded decode instance, with no KV transfer. ``decode_chunk``: the
    token budget per step (decodes included) of the decode instances' chunked scheduler, used when
    ``local_prefill`` ≥ 1.
    """
    ln = hw.link(link) if isinstance(link, str) else link
    if not getattr(ln, "bandwidth", 0) > 0:
        raise ValueError(f"link bandwidth must be > 0 bytes/s, got {getattr(ln, 'bandwidth', None)!r}")
    if transfer not in ("layerwise", "whole"):
        raise ValueError(f"transfer must be 'layerwise' or 'whole', got {transfer!r}")
    if first_token not in ("decode", "prefill"):
        raise ValueError(f"first_token must be 'decode' or 'prefill', got {first_token!r}")
    for name, v in (("n_prefill", n_prefill), ("n_decode", n_decode), ("parallel_links", parallel_links),
                    ("max_batch", max_batch), ("block_size", block_size), ("prefill_budget", prefill_budget)):
        _positive_int(name, v)
    if prefill_chunk is not None:
        _positive_int("prefill_chunk", prefill_chunk)
    if local_prefill is not None and (isinstance(local_prefill, bool) or
                                      not isinstance(local_prefill, (int, np.integer)) or local_prefill < 0):
        raise ValueError(f"local_prefill must be None (pure disaggregation) or an integer >= 0 tokens "
                         f"(prefill work at or below it runs on a decode instance), got {local_prefill!r}")
    _positive_int("decode_chunk", decode_chunk)
    if decode_links is not None:
        _positive_int("decode_links", decode_links)
    return Disaggregated(_cost(model, prefill_gpu, prefill_tp, cost_kwargs),
                         _cost(model, decode_gpu, decode_tp, cost_kwargs), ln, n_prefill, n_decode,
                         transfer, parallel_links, prefill_chunk, prefill_budget, max_batch, block_size,
                         prefill_kv_tokens, decode_kv_tokens, first_token=first_token,
                         local_prefill=None if local_prefill is None else int(local_prefill),
                         decode_chunk=int(decode_chunk),
                         decode_links=None if decode_links is None else int(decode_links))


def _least_loaded(insts: list[Instance]) -> Instance:
    return min(insts, key=lambda i: (i.load, i.idx))


def _queue_prefill(run: Runtime, r: int, inst: Instance, site: str, holder: str, now: float) -> bool:
    """Route request r to ``inst`` for its prefill (``site``: the role recorded in
    ``prefill_site``), or reject it when its whole KV (prompt + output tokens) can never fit there;
    ``holder`` names who lacks the room in that reason. True when queued."""
    q = run.reqs
    q.instance[r] = inst.idx
    need = q.prompt[r] + q.output[r]
    if not inst.fits_ever(need):
        run.reject(r, f"needs KV for {need} tokens (prompt+output); {holder} {inst.pool.capacity_tokens}")
        return False
    q.site[r] = site
    inst.waiting.append(r)
    run.wake(inst, now)
    return True


class _ColocatedRun(Runtime):
    def __init__(self, reqs, insts, router, seed):
        super().__init__(reqs, insts)
        self.router = router
        self.rng = np.random.default_rng(seed)
        self.rr = 0

    def on_arrival(self, r: int, now: float) -> None:
        if self.router == "round_robin":
            inst = self.instances[self.rr % len(self.instances)]
            self.rr += 1
        elif self.router == "least_loaded":
            inst = _least_loaded(self.instances)
        else:
            inst = self.instances[int(self.rng.integers(len(self.instances)))]
        _queue_prefill(self, r, inst, "both", f"instance {inst.idx} holds", now)


class _DisaggRun(Runtime):
    def __init__(self, reqs, pre, dec, spec: Disaggregated):
        super().__init__(reqs, pre + dec)
        self.pre, self.dec, self.spec = pre, dec, spec
        self.link_free = [0.0] * len(pre)                 # when each prefill NIC's egress is free
        out, inn = spec.parallel_links, spec.ingress_lanes
        slots = max(1, inn // out)                        # transfers a decode NIC takes at full rate
        self.ingress_free = [[0.0] * slots for _ in dec]  # when each decode NIC's slots are free
        self.rate = min(out, inn) * spec.link.bandwidth   # bytes/s of one transfer
        self.hold: dict[int, tuple[int, int]] = {}        # r -> (prefill instance, blocks held there)
        self.prefill_span: dict[int, tuple[float, float]] = {}
        model = spec.prefill_cost.model
        self.kv_bytes = model.kv_bytes_per_token(spec.prefill_cost.kv_dtype)
        self.layers = model.n_layers
        self.local = spec.local_prefill if spec.prefills_locally else None

    def on_arrival(self, r: int, now: float) -> None:
        q = self.reqs
        if self.local is not None and q.prompt[r] - q.cached[r] <= self.local:
            return self.prefill_on_decode(r, now)
        p = _least_loaded(self.pre)
        q.instance[r] = p.idx
        P, need = q.prompt[r], q.prompt[r] + q.output[r]
        if not p.fits_ever(P):
            return self.reject(r, f"prompt of {P} tokens exceeds prefill instance KV capacity "
                                  f"of {p.pool.capacity_tokens} tokens")
        if not self.dec[0].fits_ever(need):
            return self.reject(r, f"needs KV for {need} tokens (prompt+output); decode instances "
                                  f"hold {self.dec[0].pool.capacity_tokens}")
        q.site[r] = "prefill"
        p.waiting.append(r)
        self.wake(p, now)

    def prefill_on_decode(self, r: int, now: float) -> None:
        """Conditional disaggregation: a short prefill joins the least-loaded decode instance's
        waiting queue and is prefilled there; nothing crosses the link."""
        if _queue_prefill(self, r, _least_loaded(self.dec), "decode", "decode instances hold", now):
            self.reqs.transfer[r] = 0.0

    def after_step(self, inst: Instance, finished: list[int], handed: list[int], now: float) -> None:
        if inst.role == "prefill":
            start = inst.timeline[-1][2] if handed else now        # start of the step that just ended
            for r in handed:
                d = _least_loaded(self.dec)
                self.prefill_span[r] = (start, now)
                d.pending.append((r, inst.idx))
                self.pull(d, now)
        else:
            self.pull(inst, now)

    def after_plan(self, inst: Instance, now: float) -> None:
        if inst.role == "decode" and inst.pending:       # preemption while planning frees blocks
            self.pull(inst, now)

    def pull(self, d: Instance, now: float) -> None:
        """Decode instance ``d`` reserves blocks and starts KV transfers, FCFS, while it can."""
        q, spec = self.reqs, self.spec
        while d.pending:
            r, p = d.pending[0]
            need = d.pool.blocks_for(q.kv[r])
            if need > d.pool.free:
                # a stretch holds blocks for steps not yet started: cut it to the step in progress
                t = d.cut(now)
                if t is not None:
                    d.version += 1
                    self.push(t, 1, "step", d.idx, d.version)
                if need > d.pool.free:
                    return
            d.pending.popleft()
            d.pool.alloc(need)
            self.hold[r] = (p, q.blocks[r])
            q.blocks[r] = need
            ps, pe = self.prefill_span.pop(r)
            wire = q.kv[r] * self.kv_bytes / self.rate
            slots = self.ingress_free[d.idx - len(self.pre)]
            k = 0 if len(slots) == 1 else min(range(len(slots)), key=slots.__getitem__)
            free = max(self.link_free[p], slots[k])       # egress (p indexes the prefill NICs) and a slot
            if spec.transfer == "layerwise" and now == pe:
                start = max(ps + (pe - ps) / self.layers, free)
                done = max(start + wire, pe + wire / self.layers)
            else:
                start = max(now, free)
                done = start + wire
            self.link_free[p] = slots[k] = done
            land = done + spec.link.latency
            q.transfer[r] = land - pe
            self.push(land, 0, "xfer", r, d.idx)

    def on_transfer(self, r: int, dst: int, now: float) -> None:
        p, blocks = self.hold.pop(r)
        if self.spec.first_token == "decode":            # token 1 reaches the client with the KV
            self.reqs.token_time[self.reqs.off[r]] = now
        pre = self.instances[p]
        pre.pool.release(blocks)
        self.wake(pre, now)
        d = self.instances[dst]
        d.ready.append(r)
        self.wake(d, now)
