"""Run engine steps: a mixed batch of prefill chunks and decode tokens over the block KV cache.

A step takes work items ``(request_id, new_token_ids)``; the cache knows each request's context,
so every item is the book's ``(new_tokens, context_tokens)`` pair. All tokens of the step go
through the linear layers together (one ``[Σn, h]`` matmul per weight); attention gathers each
item's cached prefix from its blocks and applies the causal mask of its own chunk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .kv_cache import KVCache, blocks_for_all
from .layers import apply_rope
from .model import Decoder

__all__ = ["Runner", "StepRecord", "generate", "forward_logits"]


@dataclass(frozen=True)
class StepRecord:
    """One executed step: its ``(new_tokens, context_tokens)`` items and wall time in seconds."""
    items: tuple[tuple[int, int], ...]
    seconds: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_logits(model: Decoder, token_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Reference path: logits [T, vocab] at every position of one sequence, no KV cache."""
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=model.device)
    if ids.ndim != 1 or ids.numel() == 0:
        raise ValueError(f"token_ids must be a non-empty 1-D sequence, got shape {tuple(ids.shape)}")
    return model(ids)


class Runner:
    """A model plus its block KV cache; :meth:`step` runs one batch of work items.

    ``n_blocks`` blocks of ``block_size`` tokens (default: enough for ``max_context`` tokens
    of 4 requests). ``history`` keeps a :class:`StepRecord` per step when ``record`` is true.
    """

    def __init__(self, model: Decoder, n_blocks: int | None = None, block_size: int = 16,
                 record: bool = True):
        spec = model.spec
        if n_blocks is None:
            n_blocks = 4 * -(-spec.max_context // block_size)
        self.model = model
        self.cache = KVCache(spec.n_layers, spec.n_kv_heads, spec.head_dim, n_blocks, block_size,
                             spec.max_context, model.dtype, model.device)
        self.record = record
        self.history: list[StepRecord] = []

    def free(self, request_id) -> None:
        """End ``request_id``: its KV blocks return to the free pool."""
        self.cache.free(request_id)

    def _attention_groups(self, ids, ctx, n, dev):
        """Split a step's items into attention calls without padded queries: all decodes
        (one new token each) together, padded only along their keys, and each prefill chunk alone.

        Each group is ``(rows, read_slots, mask)``: rows [g·q] of the step's flat tokens,
        read_slots [g, T] cache slots of every key, mask [g, 1, q, T] (True = attend): key j is
        visible to new token i of an item with context L when ``j ≤ L + i``.
        """
        starts = [0]
        for k in n[:-1]:
            starts.append(starts[-1] + k)
        decodes = [b for b, k in enumerate(n) if k == 1]
        members = ([decodes] if decodes else []) + [[b] for b, k in enumerate(n) if k > 1]
        groups = []
        for mem in members:
            total = [ctx[b] + n[b] for b in mem]
            T, qn = max(total), n[mem[0]]
            read = torch.zeros(len(mem), T, dtype=torch.long)
            for row, b in enumerate(mem):
                read[row, :total[row]] = self.cache.slots(ids[b], 0, total[row])
            rows = torch.cat([torch.arange(starts[b], starts[b] + n[b]) for b in mem])
            q_pos = torch.tensor([ctx[b] for b in mem])[:, None] + torch.arange(qn)    # [g, q]
            mask = torch.arange(T)[None, None, :] <= q_pos[:, :, None]                 # [g, q, T]
            groups.append((rows.to(dev), read.to(dev), mask[:, None].to(dev)))
        return groups

    @torch.inference_mode()
    def step(self, items: Sequence[tuple[object, Sequence[int]]]) -> torch.Tensor:
        """Run one step; ``items`` are ``(request_id, new_token_ids)`` with distinct ids.

        Returns logits [len(items), vocab] at the last new position of each item. The new tokens'
        keys and values are appended to each request's cache.
        """
        if not items:
            raise ValueError("a step needs at least one (request_id, new_token_ids) item")
        ids = [rid for rid, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"a request may appear once per step, got ids {ids}")
        news = [list(t) for _, t in items]
        if any(len(t) == 0 for t in news):
            raise ValueError("every item needs at least one new token")
        model, cache, spec = self.model, self.cache, self.model.spec
        dev = model.device
        _sync(dev)
        t0 = time.perf_counter()
        ctx = [cache.context(r) for r in ids]
        window = spec.sliding_window
        if window is not None and max(c + len(t) for c, t in zip(ctx, news)) > window:
            raise NotImplementedError(f"{spec.name}: contexts longer than the sliding window "
                                      f"({window} tokens) are not supported")
        cache.reserve({r: len(t) for r, t in zip(ids, news)})

        # index tensors shared by all layers
        n = [len(t) for t in news]
        tokens = torch.tensor([x for t in news for x in t], dtype=torch.long, device=dev)
        positions = torch.cat([torch.arange(c, c + k) for c, k in zip(ctx, n)]).to(dev)
        write_slots = torch.cat([cache.slots(r, c, c + k) for r, c, k in zip(ids, ctx, n)]).to(dev)
        groups = self._attention_groups(ids, ctx, n, dev)
        cos, sin = model.rope(positions)

        x = model.model.embed_tokens(tokens)                                                # [Σn, h]
        H, D = spec.n_heads, spec.head_dim
        gqa = H != spec.n_kv_heads
        for li, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            q, k, v = attn.qkv(layer.input_layernorm(x))
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            cache.k[li, write_slots] = k
            cache.v[li, write_slots] = v
            out = torch.empty_like(q)                                                       # [Σn, H, D]
            for rows, read, mask in groups:
                g, qn = read.shape[0], rows.numel() // read.shape[0]
                keys = cache.k[li][read].transpose(1, 2)                                    # [g, K, T, D]
                values = cache.v[li][read].transpose(1, 2)
                qg = q[rows].view(g, qn, H, D).transpose(1, 2)                              # [g, H, qn, D]
                og = F.scaled_dot_product_attention(qg, keys, values, attn_mask=mask, enable_gqa=gqa)
                out[rows] = og.transpose(1, 2).reshape(-1, H, D)
            x = x + attn.o_proj(out.view(-1, H * D))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        last = torch.tensor(n, device=dev).cumsum(0) - 1
        logits = model.lm_head(model.model.norm(x[last]))
        for r, k in zip(ids, n):
            cache.advance(r, k)
        _sync(dev)
        if self.record:
            self.history.append(StepRecord(tuple(zip(n, ctx)), time.perf_counter() - t0))
        return logits

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                 chunk_size: int | None = None, token_budget: int | None = None,
                 arrival_steps: Sequence[int] | None = None, eos_id: int | None = None,
                 on_token: Callable[[int, int], None] | None = None) -> list[list[int]]:
        """Greedy generation with continuous batching and (optionally) chunked prefill.

        Each step first gives every running request one decode token, then spends what is left
        of ``token_budget`` (new tokens per step; None = unlimited) on prefill chunks of at most
        ``chunk_size`` prompt tokens (None = whole prompt), oldest request first (Sarathi-Serve's
        stall-free batching). Request i may start at step ``arrival_steps[i]`` (default 0). A
        request starts only when the blocks for its prompt plus ``max_new_tokens`` are free.
        Returns the generated tokens (without the prompt) of each request, in prompt order.
        ``on_token(i, token)``, when given, is called for every token as soon as the step that
        made it has finished (request index ``i`` in prompt order), e.g. to time each token
        (:func:`pdlib.engine.serve`).
        """
        prompts = [list(p) for p in prompts]
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        for name, v in (("chunk_size", chunk_size), ("token_budget", token_budget)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if on_token is not None and not callable(on_token):
            raise TypeError(f"on_token must be a callable on_token(i, token) or None, got {on_token!r}")
        arrivals = list(arrival_steps) if arrival_steps is not None else [0] * len(prompts)
        if len(arrivals) != len(prompts):
            raise ValueError(f"{len(arrivals)} arrival steps for {len(prompts)} prompts")
        cache = self.cache
        for i, p in enumerate(prompts):
            # the last generated token is never fed back, so it needs no KV
            cache.check_fits(len(p) + max_new_tokens - 1,
                             f"prompt {i} ({len(p)} tokens + {max_new_tokens} new)")
        rids = [("gen", id(self), i) for i in range(len(prompts))]
        outs: list[list[int]] = [[] for _ in prompts]
        done_prefill = [0] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: (arrivals[i], i))
        waiting, admitted, finished = list(order), [], set()
        reserved = 0
        step_no = 0
        while len(finished) < len(prompts):
            # admit arrived requests whose whole lifetime fits in the blocks not yet promised
            while waiting and arrivals[waiting[0]] <= step_no:
                i = waiting[0]
                need = cache.blocks_for(len(prompts[i]) + max_new_tokens - 1)
                if reserved + need > cache.n_blocks:
                    break
                reserved += need
                admitted.append(waiting.pop(0))
            budget = float("inf") if token_budget is None else token_budget
            items, kinds = [], []
            for i in admitted:
                if done_prefill[i] == len(prompts[i]):
                    items.append((rids[i], [outs[i][-1]]))
                    kinds.append(i)
                    budget -= 1
            for i in admitted:
                left = len(prompts[i]) - done_prefill[i]
                if left == 0:
                    continue
                c = int(min(left, chunk_size or left, budget))
                if c <= 0:
                    break
                items.append((rids[i], prompts[i][done_prefill[i]:done_prefill[i] + c]))
                kinds.append(i)
                done_prefill[i] += c
                budget -= c
            step_no += 1
            if not items:
                continue
            next_tokens = self.step(items).argmax(dim=-1).tolist()
            for i, tok in zip(kinds, next_tokens):
                if done_prefill[i] < len(prompts[i]):
                    continue                              # mid-prompt chunk: no token yet
                outs[i].append(tok)
                if on_token is not None:
                    on_token(i, tok)
                if len(outs[i]) == max_new_tokens or tok == eos_id:
                    finished.add(i)
                    admitted.remove(i)
                    reserved -= cache.blocks_for(len(prompts[i]) + max_new_tokens - 1)
                    self.free(rids[i])
        return outs


def generate(model: Decoder, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             chunk_size: int | None = None, token_budget: int | None = None,
             arrival_steps: Sequence[int] | None = None, eos_id: int | None = None,
             n_blocks: int | None = None, block_size: int = 16,
             return_steps: bool = False):
    """Greedy tokens of each prompt (see :meth:`Runner.generate` for the scheduling).

    The cache gets ``n_blocks`` blocks (default: enough for every request at once). With
    ``return_steps`` the result is ``(tokens, steps)``, steps being the :class:`StepRecord` list.
    """
    if n_blocks is None:
        n_blocks = blocks_for_all(prompts, max_new_tokens, block_size)
    runner = Runner(model, n_blocks=n_blocks, block_size=block_size)
    tokens = runner.generate(prompts, max_new_tokens, chunk_size, token_budget, arrival_steps, eos_id)
    return (tokens, runner.history) if return_steps else tokens
