"""The two worker processes of a disaggregated run, each with its own engine.

Prefill worker (rank 0): takes ``(request, prompt, block_ids)`` from the decode worker, runs the
prompt through the model one layer at a time and hands each layer's keys and values, laid out in
the decode side's blocks, to a sender thread as soon as that layer is computed (``layerwise``: one
message per layer), or all layers in one contiguous message after the last one (the
whole-request baseline). A request's last message carries a 24-byte trailer with its first token
(in layerwise mode the last layer's message waits for the logits), so no extra message is sent.

Decode worker (rank 1): admits requests in arrival order when the blocks for
``prompt + max_new_tokens − 1`` tokens are free (never-fitting ones are rejected), allocates them,
tells the prefill worker the block ids, posts a receive for every message, and between decode
steps checks which transfers have landed; a landed request joins the continuous decode batch.
With a copying transport (gloo, nccl) the KV lands in staging buffers and is copied into the
blocks; with the shared transport the prefill worker has already written it into the blocks.

The transport (``cfg["transport"]``): "gloo"/"nccl" join a two-rank ``torch.distributed`` group;
"shared" hands the decode worker's cache tensors to the prefill worker at start-up instead
(:func:`~.transport.share_pool` / :func:`~.transport.open_pool`).

Both build the same weights from the state dict the front end passes, and exit on their own
if the front end process disappears. Events go to the front
end's queue as tuples ``(kind, request, ...)`` with ``time.perf_counter()`` stamps (one clock for
all processes on a Linux machine); a token event also carries the engine seconds of the decode
step that made it.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import time

import torch

from ..engine import Decoder, Runner, steady_allocator
from ..engine.layers import apply_rope, causal_attention
from .transport import (DistTransport, EmulatedLink, KVDest, SharedTransport, init_group, new_message,
                        on_side_stream, open_pool, ready_event, share_pool)

__all__ = ["decode_main", "digest", "kv_message_bytes", "prefill_layers", "prefill_main"]

PREFILL, DECODE = 0, 1


def digest(t: torch.Tensor) -> str:
    """Short BLAKE2 hash of a tensor's bytes (equal digests ⇔ equal bits, for our purposes)."""
    return hashlib.blake2b(t.contiguous().view(torch.uint8).numpy().tobytes(), digest_size=8).hexdigest()


def kv_message_bytes(spec, prompt_tokens: int, block_size: int = 16, element_bytes: int = 4) -> int:
    """Bytes the prefill worker sends for one request: per layer one message of keys and values
    padded to whole decode-side blocks, ``2 · ceil(P / block_size) · block_size · K · D · b``,
    plus the 3 int64 (24 bytes) of the trailer (request, prompt length, first token) that the
    request's last message carries."""
    if prompt_tokens < 1 or block_size < 1 or element_bytes < 1:
        raise ValueError(f"prompt_tokens, block_size and element_bytes must be >= 1, got "
                         f"{prompt_tokens!r}, {block_size!r}, {element_bytes!r}")
    padded = -(-prompt_tokens // block_size) * block_size
    return spec.n_layers * 2 * padded * spec.n_kv_heads * spec.head_dim * element_bytes + 3 * 8


def _model(spec, state, dtype, device) -> Decoder:
    if str(device).startswith("cuda"):
        torch.cuda.set_device(device)                 # NCCL picks the current device
    m = Decoder(spec)
    m.load_state_dict(state)
    return m.to(device=device, dtype=dtype).eval()


@torch.inference_mode()
def prefill_layers(model: Decoder, prompt: list[int]):
    """Yield ``(layer, k, v)`` ([P, K, D] each, after RoPE) as each layer is computed, then
    ``(None, logits, None)`` with the logits [vocab] of the last prompt position.

    The same arithmetic as :meth:`Decoder.forward`, cut at layer boundaries so the caller can ship
    a layer's KV while the next layer computes."""
    ids = torch.as_tensor(prompt, dtype=torch.long, device=model.device)
    cos, sin = model.rope(torch.arange(ids.shape[0], device=model.device))
    x = model.model.embed_tokens(ids)
    for li, layer in enumerate(model.model.layers):
        q, k, v = layer.self_attn.qkv(layer.input_layernorm(x))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        yield li, k, v
        x = x + layer.self_attn.o_proj(causal_attention(q, k, v))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    yield None, model.lm_head(model.model.norm(x[-1])), None


WARMUP_TOKENS = 8     # a prompt this long runs through each worker's engine before it reports ready


def _warm_up(model: Decoder, runner: Runner | None = None) -> None:
    """Run the engine once, untimed, before the worker says it is ready: a fresh process's first
    prefill and first decode step pay one-off costs (on a GPU lazy module loading and library
    handles, hundreds of ms) that would otherwise land in the first request's TTFT and TPOT.
    Prefill side: one layer-by-layer prefill; decode side (``runner``): a prefill and a decode
    step on the real cache, whose blocks are then freed."""
    room = WARMUP_TOKENS + 1 if runner is None else runner.cache.n_blocks * runner.cache.block_size
    prompt = [i % model.spec.vocab for i in range(min(WARMUP_TOKENS, room - 1))]
    if not prompt:
        return                                    # a one-token cache: nothing to warm up with
    if runner is None:
        for _ in prefill_layers(model, prompt):
            pass
    else:
        runner.step([("warm-up", prompt)])
        runner.step([("warm-up", [0])])
        runner.free("warm-up")
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def _link(cfg, chan, pool=None):
    if cfg["transport"] == "shared":
        t = SharedTransport(chan["counter"], chan["messages"], pool, cfg["block_size"])
    else:
        t = DistTransport(DECODE if cfg["rank"] == PREFILL else PREFILL)
    if cfg["link_bandwidth"] is not None:
        t = EmulatedLink(t, cfg["link_bandwidth"], cfg["link_latency"])
    return t


def prefill_main(cfg: dict, state: dict, work_q, events, chan: dict) -> None:
    """Prefill worker loop (rank 0). ``work_q`` items: ``(rid, prompt, block_ids)`` or None (stop).
    ``chan``: the shared transport's start-up queue, counter and message queue."""
    torch.set_num_threads(cfg["threads"])
    steady_allocator()                            # no page faults per prefill (see engine.allocator)
    shared = cfg["transport"] == "shared"
    if not shared:
        init_group(cfg["transport"], cfg["init_file"], PREFILL, timeout=cfg["timeout"])
    model = _model(cfg["spec"], state, cfg["dtype"], cfg["device"])
    # shared: the decode worker's KV pool, written into directly (kept alive for our whole life)
    pool = open_pool(chan["setup"], 60.0 + cfg["timeout"]) if shared else None
    link = _link(cfg, chan, pool)
    _warm_up(model)
    events.put(("ready", "prefill"))
    stall_after = cfg["faults"].get("stall_prefill_after_layers")
    bs = cfg["block_size"]
    outbox: queue.Queue = queue.Queue()

    def sender():
        # sends in order; reports (rid, start, end, bytes) of every message. On a GPU it works on
        # its own stream, after each message's ready event: on the default stream a transfer
        # would wait for every layer queued since, and the layers for the transfer
        side = None
        if model.device.type == "cuda":
            torch.cuda.set_device(model.device)
            side = torch.cuda.Stream(model.device)
        while True:
            item = outbox.get()
            if item is None:
                return
            rid, messages = item
            for t, dest, ready in messages:
                if ready is not None:
                    ready.synchronize()           # the wire starts once the layer exists
                t0 = time.perf_counter()
                on_side_stream(side, ready, t, lambda: link.send_kv(t, dest))
                events.put(("sent", rid, t0, time.perf_counter(), t.numel() * t.element_size()))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    sent_layers, stalled = 0, False
    parent = os.getppid()
    while True:
        try:
            job = work_q.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:            # the front end is gone: nobody to serve
                os._exit(1)
            continue
        if job is None:
            break
        rid, prompt, blocks = job
        P, nb = len(prompt), len(blocks)
        t0 = time.perf_counter()
        L, kv_shape = model.spec.n_layers, (model.spec.n_kv_heads, model.spec.head_dim)
        dest = lambda layers: KVDest(layers, tuple(blocks), meta=L - 1 in layers)
        digests, last = [], None
        if not cfg["layerwise"]:                  # whole request: ONE message for all layers
            whole, kv_all, trailer = new_message((L, 2, nb * bs) + kv_shape, model.dtype, model.device, True)
        for li, k, v in prefill_layers(model, prompt):
            if li is None:
                logits = k
                break
            # layer li's keys and values, laid out in whole decode-side blocks (zero padding)
            if cfg["layerwise"]:
                msg, kv, meta = new_message((1, 2, nb * bs) + kv_shape, model.dtype, model.device,
                                            li == L - 1)
                kv = kv[0]
            else:
                kv = kv_all[li]
            kv[0, :P], kv[1, :P] = k, v
            if cfg["checksums"]:
                digests.append(digest(kv[:, :P].cpu()))
            stalled = stalled or (stall_after is not None and sent_layers >= stall_after)
            if stalled:
                continue                          # test hook: from here on nothing is sent
            sent_layers += 1
            if cfg["layerwise"] and li < L - 1:
                outbox.put((rid, [(msg, dest((li,)), ready_event(model.device))]))
            elif cfg["layerwise"]:
                last = (msg, meta, dest((li,)))   # goes once the first token is known
        first = int(logits.argmax())
        t1 = time.perf_counter()
        # report first, then hand over the last message: the event's pickling (queue feeder
        # thread) is then not competing with the sender thread for the GIL during the copy
        events.put(("prefill", rid, t0, t1, first, digests))
        if not stalled:
            if not cfg["layerwise"]:
                last = (whole, trailer, dest(tuple(range(L))))
            msg, meta, d = last
            meta.copy_(torch.tensor([rid, P, first], dtype=torch.long))
            outbox.put((rid, [(msg, d, ready_event(model.device))]))
    outbox.put(None)
    thread.join()
    if not shared:
        torch.distributed.destroy_process_group()
    _leave(events, chan["messages"])


def _leave(*queues) -> None:
    """Flush what this process put on ``queues``, then exit at once (interpreter teardown with
    torch loaded takes seconds on a busy machine, and nothing is left to clean up)."""
    for q in queues:
        q.close()
        q.join_thread()
    os._exit(0)


def decode_main(cfg: dict, state: dict, ctrl_q, work_q, events, chan: dict) -> None:
    """Decode worker loop (rank 1). ``ctrl_q`` items from the front end: ``(rid, prompt,
    max_new_tokens)`` or None (no more requests). ``chan``: see :func:`prefill_main`."""
    torch.set_num_threads(cfg["threads"])
    steady_allocator()                            # no page faults per decode step (engine.allocator)
    shared = cfg["transport"] == "shared"
    if not shared:
        init_group(cfg["transport"], cfg["init_file"], DECODE, timeout=cfg["timeout"])
    model = _model(cfg["spec"], state, cfg["dtype"], cfg["device"])
    spec, bs = model.spec, cfg["block_size"]
    runner = Runner(model, n_blocks=cfg["n_blocks"], block_size=bs, record=False)
    cache = runner.cache
    pool = None
    if shared:                                   # our block pool, handed to the prefill worker
        pool = share_pool(cache.k, cache.v, cfg["n_blocks"], chan["setup"])
    link = _link(cfg, chan, pool)
    _warm_up(model, runner)
    events.put(("ready", "decode"))
    waiting: list[tuple[int, list[int], int]] = []
    inflight: list[dict] = []                    # transfers in arrival order
    running: dict[int, dict] = {}
    reserved, closed, broken = 0, False, None
    kv_shape = (spec.n_kv_heads, spec.head_dim)
    parent = os.getppid()
    while True:
        if os.getppid() != parent:                # the front end is gone: nobody to serve
            os._exit(1)
        try:                                      # new requests from the front end
            while True:
                msg = ctrl_q.get_nowait() if running else ctrl_q.get(timeout=0.001 if inflight else 0.01)
                if msg is None:
                    closed = True
                    break
                waiting.append(msg)
        except queue.Empty:
            pass
        while waiting:                            # admit in order while whole lifetimes fit
            rid, prompt, max_new = waiting[0]
            need_tokens = len(prompt) + max_new - 1
            try:
                cache.check_fits(need_tokens, f"request {rid} ({len(prompt)} prompt + {max_new} new tokens)")
            except ValueError as e:
                events.put(("rejected", rid, f"does not fit on the decode worker: {e}"))
                waiting.pop(0)
                continue
            if broken:
                events.put(("failed", rid, broken))
                waiting.pop(0)
                continue
            need = cache.blocks_for(need_tokens)
            if reserved + need > cache.n_blocks:
                break                             # waits for blocks to free up
            waiting.pop(0)
            reserved += need
            cache.reserve({rid: need_tokens})
            blocks = list(cache.tables[rid])
            nb = -(-len(prompt) // bs)
            # one KV message per layer, or one for all layers in whole-request mode, the last
            # one carrying the first token; a copying transport lands KV in staging buffers, a
            # zero-copy one straight in these blocks
            layer_sets = [(li,) for li in range(spec.n_layers)] if cfg["layerwise"] else \
                [tuple(range(spec.n_layers))]
            dests = [KVDest(ls, tuple(blocks[:nb]), meta=ls is layer_sets[-1]) for ls in layer_sets]
            pend = [link.recv_kv(d, (len(d.layers), 2, nb * bs) + kv_shape, model.dtype, model.device)
                    for d in dests]
            inflight.append({"rid": rid, "P": len(prompt), "max_new": max_new, "need": need,
                             "dests": dests, "pend": pend, "blocks": blocks[:nb],
                             "got": -1})
            work_q.put((rid, prompt, blocks[:nb]))
        while inflight:                           # land finished transfers, in order
            tr = inflight[0]
            got = sum(p.done() for p in tr["pend"])
            if got > tr["got"]:                   # progress: the stall clock restarts
                tr["got"], tr["deadline"] = got, time.perf_counter() + cfg["timeout"]
            if got == len(tr["pend"]):
                inflight.pop(0)
                rid, P = tr["rid"], tr["P"]
                meta = tr["pend"][-1].meta.tolist()   # the last message's trailer
                if meta[0] != rid or meta[1] != P:
                    raise RuntimeError(f"transfer order broken: expected request {rid}, got {meta}")
                kview = cache.k.view(spec.n_layers, cache.n_blocks, bs, *cache.k.shape[2:])
                vview = cache.v.view(spec.n_layers, cache.n_blocks, bs, *cache.v.shape[2:])
                idx = torch.tensor(tr["blocks"], dtype=torch.long, device=model.device)
                nb = len(tr["blocks"])
                for d, p in zip(tr["dests"], tr["pend"]):
                    if p.buffer is None:          # zero-copy: already in our blocks
                        continue
                    for j, li in enumerate(d.layers):     # staging → blocks
                        kview[li, idx] = p.buffer[j, 0].view(nb, bs, *kv_shape)
                        vview[li, idx] = p.buffer[j, 1].view(nb, bs, *kv_shape)
                digests = []
                if cfg["checksums"]:              # what now sits in our cache, layer by layer
                    slots = cache.slots(rid, 0, P).to(model.device)
                    digests = [digest(torch.stack((cache.k[li, slots], cache.v[li, slots])).cpu())
                               for li in range(spec.n_layers)]
                cache.advance(rid, P)
                first = int(meta[2])
                now = time.perf_counter()
                events.put(("landed", rid, now, digests))
                events.put(("token", rid, first, now, None))
                running[rid] = {"last": first, "left": tr["max_new"] - 1, "need": tr["need"]}
            elif time.perf_counter() > tr["deadline"] or any(p.error for p in tr["pend"]):
                err = next((p.error for p in tr["pend"] if p.error), None)
                broken = (f"KV transfer of request {tr['rid']} broke: {err!r}" if err else
                          (f"KV transfer of request {tr['rid']} stalled: {got} of {len(tr['pend'])} "
                           f"messages ({spec.n_layers} layers{'' if cfg['layerwise'] else ' in one'}, "
                           f"the last with the first token) arrived and "
                           f"nothing more came for {cfg['timeout']:.1f} s"))
                for t in inflight:
                    events.put(("failed", t["rid"], broken if t is tr else
                                f"KV channel broken by an earlier stall ({broken})"))
                    reserved -= t["need"]
                    runner.free(t["rid"])
                inflight.clear()
                break
            else:
                break
        for rid in [r for r, s in running.items() if s["left"] == 0]:
            reserved -= running.pop(rid)["need"]
            runner.free(rid)
        if running:                               # one continuous-batching decode step
            ids = list(running)
            t_step = time.perf_counter()
            toks = runner.step([(r, [running[r]["last"]]) for r in ids]).argmax(-1).tolist()
            now = time.perf_counter()
            for r, t in zip(ids, toks):
                running[r]["last"] = t
                running[r]["left"] -= 1
                events.put(("token", r, t, now, now - t_step))
        elif closed and not waiting and not inflight:
            break
    work_q.put(None)
    if not shared and broken is None:             # (if broken, receives are still posted)
        torch.distributed.destroy_process_group()
    _leave(events, work_q, chan["setup"])
