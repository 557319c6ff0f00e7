"""The paged KV cache: fixed-size blocks, a block table per request, a free-block allocator.

Keys and values of all layers live in two tensors of shape ``[layers, blocks · block_size, K, D]``
(K = KV heads, D = head_dim); token position p of a request sits in slot
``table[p // block_size] · block_size + p % block_size``. A request takes blocks as it grows and
gives them all back when it ends.
"""
from __future__ import annotations

import math

import torch

__all__ = ["BlockAllocator", "KVCache", "OutOfBlocks", "blocks_for_all"]


def blocks_for_all(prompts, max_new_tokens: int, block_size: int) -> int:
    """Blocks for every request's whole lifetime at once (at least 1):
    ``Σ ceil((len(prompt) + max_new_tokens) / block_size)`` — the default cache of
    :func:`pdlib.engine.generate`, :func:`pdlib.engine.serve` and :func:`pdlib.disagg.run`."""
    return max(1, sum(-(-(len(p) + max_new_tokens) // block_size) for p in prompts))


class OutOfBlocks(RuntimeError):
    """Raised when a step needs more free KV blocks than the cache has left."""


class BlockAllocator:
    """Hands out block ids ``0 … n_blocks−1``; each block belongs to at most one request."""

    def __init__(self, n_blocks: int):
        if not isinstance(n_blocks, int) or n_blocks <= 0:
            raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
        self.n_blocks = n_blocks
        self._free = list(range(n_blocks - 1, -1, -1))        # pop() gives the lowest id first
        self._owner: dict[int, object] = {}

    @property
    def n_free(self) -> int:
        return len(self._free)

    def allocate(self, owner: object, n: int) -> list[int]:
        """Take ``n`` free blocks for ``owner``; OutOfBlocks if fewer are free."""
        if n > len(self._free):
            raise OutOfBlocks(f"request {owner!r} needs {n} more KV blocks but only {len(self._free)} "
                              f"of {self.n_blocks} are free")
        blocks = [self._free.pop() for _ in range(n)]
        for b in blocks:
            self._owner[b] = owner
        return blocks

    def free(self, owner: object, blocks: list[int]) -> None:
        """Give ``owner``'s ``blocks`` back. They go back in reverse, so that the next request
        of the same size gets them in the same order: a request whose blocks are consecutive
        keeps its KV in one range per layer (one copy per transfer, see
        :class:`pdlib.disagg.SharedTransport`) instead of a reversed scatter every other time."""
        for b in blocks:
            if self._owner.get(b, None) != owner:
                raise ValueError(f"block {b} is not held by request {owner!r}")
        for b in reversed(blocks):
            del self._owner[b]
            self._free.append(b)

    def owner(self, block: int):
        """The request holding ``block`` (None when free)."""
        return self._owner.get(block)


class KVCache:
    """Block storage plus, per request, its block table and how many tokens it has cached.

    ``n_blocks`` blocks of ``block_size`` tokens each; bytes used =
    ``2 · layers · n_blocks · block_size · K · D · element size``.
    """

    def __init__(self, n_layers: int, n_kv_heads: int, head_dim: int, n_blocks: int,
                 block_size: int = 16, max_context: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        if not isinstance(block_size, int) or block_size <= 0:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = block_size
        self.max_context = max_context
        self.allocator = BlockAllocator(n_blocks)
        shape = (n_layers, n_blocks * block_size, n_kv_heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.tables: dict[object, list[int]] = {}
        self.lengths: dict[object, int] = {}

    @property
    def n_blocks(self) -> int:
        return self.allocator.n_blocks

    @property
    def nbytes(self) -> int:
        """Bytes held by keys and values."""
        return self.k.numel() * self.k.element_size() * 2

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold ``tokens`` tokens: ``ceil(tokens / block_size)``."""
        return math.ceil(tokens / self.block_size)

    def context(self, request_id) -> int:
        """Tokens already cached for ``request_id`` (0 for a new request)."""
        return self.lengths.get(request_id, 0)

    def check_fits(self, tokens: int, who: str = "a request") -> None:
        """ValueError when ``tokens`` tokens could never be cached: more than the model's max
        context, or more blocks than the whole cache has."""
        if self.max_context is not None and tokens > self.max_context:
            raise ValueError(f"{who} would hold {tokens} tokens, more than the model's "
                             f"max context of {self.max_context}")
        if self.blocks_for(tokens) > self.n_blocks:
            raise ValueError(f"{who} needs {self.blocks_for(tokens)} KV blocks of "
                             f"{self.block_size} tokens but the cache has only {self.n_blocks}")

    def reserve(self, growth: dict) -> None:
        """Make room for ``growth[request_id]`` more tokens per request, all or nothing.

        Raises ValueError if a request would pass ``max_context`` or need more blocks than the cache
        has in all, OutOfBlocks if not enough are free right now.
        """
        need = {}
        for rid, n in growth.items():
            total = self.context(rid) + n
            self.check_fits(total, f"request {rid!r}")
            need[rid] = self.blocks_for(total) - len(self.tables.get(rid, []))
        if sum(need.values()) > self.allocator.n_free:
            raise OutOfBlocks(f"this step needs {sum(need.values())} more KV blocks but only "
                              f"{self.allocator.n_free} of {self.n_blocks} are free")
        for rid, n in need.items():
            self.tables.setdefault(rid, []).extend(self.allocator.allocate(rid, n) if n > 0 else [])
            self.lengths.setdefault(rid, 0)

    def advance(self, request_id, n: int) -> None:
        """Record that ``n`` more tokens of ``request_id`` have been written."""
        self.lengths[request_id] += n

    def slots(self, request_id, start: int, stop: int) -> torch.Tensor:
        """Flat slot indices [stop − start] of positions ``start … stop−1`` of a request."""
        pos = torch.arange(start, stop)
        table = torch.tensor(self.tables[request_id], dtype=torch.long)
        return table[pos // self.block_size] * self.block_size + pos % self.block_size

    def truncate(self, request_id, tokens: int) -> None:
        """Forget all but the first ``tokens`` cached tokens of a request (freeing blocks past
        them), e.g. to time the same step again."""
        if not 0 <= tokens <= self.context(request_id):
            raise ValueError(f"request {request_id!r} holds {self.context(request_id)} tokens; "
                             f"cannot truncate to {tokens}")
        table = self.tables[request_id]
        keep = self.blocks_for(tokens)
        self.allocator.free(request_id, table[keep:])
        del table[keep:]
        self.lengths[request_id] = tokens

    def free(self, request_id) -> None:
        """Give all of ``request_id``'s blocks back (no-op for an unknown id)."""
        blocks = self.tables.pop(request_id, [])
        self.lengths.pop(request_id, None)
        self.allocator.free(request_id, blocks)
