"""Fast step pricing for the simulator's inner loop.

:meth:`pdlib.CostModel.cost` computes, for a step with ``n`` items, ``T`` new tokens, ``ΣL``
cached tokens read, ``Σpairs`` attention pairs and ``g`` rows of logits::

    compute = (a(T, g) + A · Σpairs) / (tp · F · η_F)
    memory  = (b(T) + k · ΣL) / (W · η_W)
    time    = overhead + max(compute, memory) + comm(T) + context_seconds · ΣL

so once ``(n, T, g)`` are fixed both roofs are affine in ``(Σpairs, ΣL)``. The pricer reads the
two intercepts and two slopes off three ``CostModel.cost`` calls per ``(n, T, g)`` and then
prices any ``(ΣL, Σpairs)`` — a scalar, or a whole decode stretch as arrays — with a few
multiply-adds. Same numbers as ``CostModel.cost`` (to rounding), far fewer numpy calls.

The coefficient table is shared by every pricer of an *equal* cost model: ``CostModel`` is a frozen
dataclass whose ``cost`` depends only on its fields, so two equal ones (dataclass equality: same
class, every field equal) produce the same coefficients, and a rate sweep that builds a fresh
cluster per rate reuses what the previous runs computed instead of redoing ~3 ``CostModel.cost``
calls per new ``(n, T, g)``. Unequal cost models never share a table. The tables of the
:data:`SHARED_TABLES` most recently used cost models are kept.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..cost import CostModel


#: How many cost models' coefficient tables stay cached (least recently used dropped first).
SHARED_TABLES = 16


@lru_cache(maxsize=SHARED_TABLES)
def _shared_table(cm: CostModel) -> dict:
    """The coefficient table shared by all pricers of cost models equal to ``cm`` (initially empty;
    pricers fill it). Keyed by ``cm``'s hash and dataclass equality."""
    return {}


def clear_shared_tables() -> None:
    """Forget every shared coefficient table (pricers made afterwards start empty)."""
    _shared_table.cache_clear()


class StepPricer:
    """Prices steps of one :class:`~pdlib.CostModel` from batch totals (seconds).

    ``share=True`` (default) uses the coefficient table shared by all pricers of equal cost
    models; ``share=False`` gives this pricer a table of its own."""

    def __init__(self, cm: CostModel, *, share: bool = True) -> None:
        self.cm = cm
        #: the cost model's extra seconds per cached token per step (0 for a pure roofline)
        self.context_seconds = float(getattr(cm, "context_seconds", 0.0))
        table = None
        if share:
            try:
                table = _shared_table(cm)
            except TypeError:             # an unhashable stand-in for a CostModel: no sharing
                table = None
        self._coef: dict[tuple[int, int, int], tuple[float, float, float, float, float]] = (
            {} if table is None else table)

    def coefficients(self, n_items: int, tokens: int, logits: int):
        """``(fixed, compute0, compute_per_pair, memory0, memory_per_context_token)``: the fixed
        part is overhead + all-reduce time; the rest are the two affine roofs (seconds). The
        cost model's ``context_seconds`` (per ΣL, outside the roofs) is :attr:`context_seconds`."""
        key = (n_items, tokens, logits)
        c = self._coef.get(key)
        if c is None:
            base = self.cm.cost(n_items, tokens, 0.0, 0.0, logits)
            per_pair = self.cm.cost(n_items, tokens, 0.0, 1.0, logits)
            per_ctx = self.cm.cost(n_items, tokens, 1.0, 0.0, logits)
            c = self._coef[key] = (
                float(base.overhead + base.comm_time), float(base.compute_time),
                float(per_pair.compute_time - base.compute_time), float(base.memory_time),
                float(per_ctx.memory_time - base.memory_time))
        return c

    def step(self, n_items: int, tokens: int, context: float, pairs: float, logits: int) -> tuple[float, str]:
        """(seconds, "compute" | "memory") of one step."""
        fixed, c0, cp, m0, ml = self.coefficients(n_items, tokens, logits)
        compute, memory = c0 + cp * pairs, m0 + ml * context
        return (fixed + self.context_seconds * context + max(compute, memory),
                "compute" if compute >= memory else "memory")

    def decode_steps(self, batch: int, context: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, str]:
        """Seconds of decode steps of ``batch`` requests with ``context[j]`` = ΣL and ``pairs[j]``
        = Σpairs at step j, and the bound of the last step."""
        fixed, c0, cp, m0, ml = self.coefficients(batch, batch, batch)
        compute = c0 + cp * pairs
        memory = m0 + ml * context
        bound = "compute" if compute[-1] >= memory[-1] else "memory"
        return fixed + self.context_seconds * context + np.maximum(compute, memory), bound
