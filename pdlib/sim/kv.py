"""KV-cache memory of one instance, in fixed-size blocks (vLLM's paged attention).

An instance holds ``capacity`` blocks of ``block_size`` tokens each. A request whose KV cache has
``n`` tokens needs ``ceil(n / block_size)`` blocks. The pool only counts blocks (which block holds
what does not change any time in the simulator).
"""
from __future__ import annotations

from dataclasses import dataclass


def blocks_for(tokens: int, block_size: int) -> int:
    """Blocks needed by ``tokens`` KV tokens: ``ceil(tokens / block_size)``."""
    return -(-tokens // block_size)


@dataclass
class BlockPool:
    """Counts free and used KV blocks. ``alloc`` refuses to go above ``capacity``."""

    capacity: int          # blocks
    block_size: int        # tokens per block
    used: int = 0          # blocks

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1 token, got {self.block_size}")
        if self.capacity < 1:
            raise ValueError(f"KV capacity must be at least one block, got {self.capacity} blocks")

    @property
    def free(self) -> int:
        return self.capacity - self.used

    @property
    def capacity_tokens(self) -> int:
        return self.capacity * self.block_size

    def blocks_for(self, tokens: int) -> int:
        return blocks_for(tokens, self.block_size)

    def alloc(self, n: int) -> None:
        if n > self.free:
            raise RuntimeError(f"KV pool overflow: asked {n} blocks, {self.free} free")
        self.used += n

    def release(self, n: int) -> None:
        if n > self.used:
            raise RuntimeError(f"KV pool underflow: releasing {n} blocks, {self.used} used")
        self.used -= n
