"""Fast step pricing for the simulator's inner loop.

:meth:`pdlib.CostModel.cost` computes, for a step with ``n`` items, ``T`` new tokens, ``ΣL``
cached tokens read, ``Σpairs`` attention pairs and ``g`` rows of logits (and, for an MLA model,
``d`` = the pairs of its single-token items and ``c`` = the cached tokens of its multi-token
items, see :func:`pdlib.cost.mla_split`)::

    compute = a(T, g) + U · c / (tp · F_mm · η_F) + (A · (Σpairs − d) + A_dec · d) / (tp · F_attn · η_A)
    memory  = (b(T) + k · ΣL) / (W · η_W)
    time    = overhead + item_seconds · n + n_layers · layer_overhead + max(compute, memory) + comm(T)
              + context_seconds · ΣL

where ``a(T, g)`` is the matmul time of the layers and the LM head — ``2·N_mm·T / (tp·F_mm·η_mm(T))
+ 2·h·V·g / (tp·F_mm·η_mm(g))`` — and ``η_A`` the attention efficiency (η_F unless set). Every
measured term of the cost model depends on ``(n, T, g)`` alone or enters linearly: the GEMM
efficiency ``η_mm`` is a function of the token counts T and g (and of the fixed tp and hidden width)
only, ``overhead`` and ``n_layers · layer_overhead`` are constants, ``item_seconds · n`` depends on n
only (constant through a decode stretch, whose batch does not change), the all-reduce time (link formula
or fitted ``latency + bytes / bandwidth``) depends on T only, and attention efficiency scales the
pair slopes. So once ``(n, T, g)`` are fixed both roofs are affine in ``(Σpairs, d, c, ΣL)``:
compute is ``compute0 + per_pair · Σpairs + per_decode_pair · d + per_chunk_context · c`` and memory
is ``memory0 + per_context · ΣL``, and the time is ``fixed + max(compute, memory) +
context_seconds · ΣL`` with ``fixed = overhead + item_seconds · n + n_layers · layer_overhead +
comm(T)``. The pricer reads the intercepts and slopes off ``CostModel.cost`` calls per ``(n, T, g)``
(three; five for MLA, whose ``per_decode_pair`` = (A_dec − A) / (tp·F_attn·η_A) and ``per_chunk_context`` =
U / (tp·F_mm·η_F) are 0 for every other model) and then prices any totals — a scalar, or a whole
decode stretch as arrays, where every pair is a decode pair and ``c = 0`` — with a few multiply-adds.
Same numbers as ``CostModel.cost`` (to rounding; the same inference of ``d`` and ``c`` when a caller
leaves them out), far fewer numpy calls.

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

from ..cost import CostModel, mla_split


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
        #: True when decode pairs and chunk context are priced apart (MLA models)
        self.mla = getattr(getattr(cm, "model", None), "attention", None) == "mla"
        table = None
        if share:
            try:
                table = _shared_table(cm)
            except TypeError:             # an unhashable stand-in for a CostModel: no sharing
                table = None
        self._coef: dict[tuple[int, int, int], tuple[float, ...]] = {} if table is None else table

    def coefficients(self, n_items: int, tokens: int, logits: int):
        """``(fixed, compute0, compute_per_pair, memory0, memory_per_context_token,
        compute_per_decode_pair, compute_per_chunk_context_token)``: the fixed part is overhead +
        item_seconds · n_items + n_layers · layer_overhead + all-reduce time; the rest are the affine
        roofs (seconds). The last two are the MLA terms
        (0 for other models): what a decode pair costs beyond a prefill pair, and what a cached
        token of a multi-token item costs to rebuild. The cost model's ``context_seconds`` (per ΣL,
        outside the roofs) is :attr:`context_seconds`."""
        key = (n_items, tokens, logits)
        c = self._coef.get(key)
        if c is None:
            cost = self.cm.cost
            zero = {"decode_pairs": 0.0, "chunk_context": 0.0} if self.mla else {}
            base = cost(n_items, tokens, 0.0, 0.0, logits, **zero)
            per_pair = cost(n_items, tokens, 0.0, 1.0, logits, **zero)
            per_ctx = cost(n_items, tokens, 1.0, 0.0, logits, **zero)
            per_dec = per_chunk = 0.0
            if self.mla:
                per_dec = float(cost(n_items, tokens, 0.0, 0.0, logits, decode_pairs=1.0,
                                     chunk_context=0.0).compute_time - base.compute_time)
                per_chunk = float(cost(n_items, tokens, 0.0, 0.0, logits, decode_pairs=0.0,
                                       chunk_context=1.0).compute_time - base.compute_time)
            c = self._coef[key] = (
                float(base.overhead + base.item_time + base.layer_time + base.comm_time),
                float(base.compute_time),
                float(per_pair.compute_time - base.compute_time), float(base.memory_time),
                float(per_ctx.memory_time - base.memory_time), per_dec, per_chunk)
        return c

    def step(self, n_items: int, tokens: int, context: float, pairs: float, logits: int,
             decode_pairs: float | None = None, chunk_context: float | None = None) -> tuple[float, str]:
        """(seconds, "compute" | "memory") of one step. ``decode_pairs`` (pairs of single-token
        items) and ``chunk_context`` (cached tokens of multi-token items) matter for MLA models
        only; left ``None`` they are inferred as :meth:`CostModel.cost` infers them
        (:func:`pdlib.cost.mla_split`: a mixed step of an MLA model needs both)."""
        fixed, c0, cp, m0, ml, cd, cc = self.coefficients(n_items, tokens, logits)
        compute, memory = c0 + cp * pairs, m0 + ml * context
        if self.mla:
            d, c = mla_split(n_items, tokens, context, pairs, decode_pairs, chunk_context)
            compute += cd * float(d) + cc * float(c)
        return (fixed + self.context_seconds * context + max(compute, memory),
                "compute" if compute >= memory else "memory")

    def decode_steps(self, batch: int, context: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, str]:
        """Seconds of decode steps of ``batch`` requests with ``context[j]`` = ΣL and ``pairs[j]``
        = Σpairs at step j, and the bound of the last step. Every pair is a decode pair (MLA:
        the absorbed form)."""
        fixed, c0, cp, m0, ml, cd, _ = self.coefficients(batch, batch, batch)
        compute = c0 + (cp + cd) * pairs
        memory = m0 + ml * context
        bound = "compute" if compute[-1] >= memory[-1] else "memory"
        return fixed + self.context_seconds * context + np.maximum(compute, memory), bound
