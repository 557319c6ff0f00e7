"""Fit the cost model's efficiency knobs to step times measured on a real engine.

The roofline model prices a step as ``time = overhead + max(C / η_F, M / η_W)`` where C and M are
the step's compute and memory times at peak (``η = 1``; see :mod:`pdlib.cost`). Given measured
``(items, seconds)`` pairs, :func:`calibrate` finds η_F, η_W (in (0, 1]) and overhead (≥ 0 s) that
minimise the squared *relative* error ``Σ ((pred − t) / t)²``:

* for fixed (η_F, η_W) the best overhead is closed-form (a weighted mean of ``t − max(...)``,
  clipped at 0);
* (η_F, η_W) are searched on a log-spaced grid, then the grid is zoomed around the best point
  until it is finer than 1e-7 (numpy only, no scipy).

:func:`measure_steps` produces the measurements by running :mod:`pdlib.engine` on batch shapes,
and :func:`device_as_gpu` describes the device (a CPU, too) as a :class:`~pdlib.hardware.GPU` from a
quick roofline microbenchmark. torch is imported only inside those two functions.

The roofline has one bandwidth efficiency for weights and KV alike. A real engine often reads
the context less efficiently than it streams weights (the tiny engine gathers each request's KV
blocks into a copy before attending), so long-context decode steps come out slower than the
calibrated roofline says. :func:`calibrate_with_context` fits, from decode steps swept over context
lengths (:func:`decode_context_sweep`), an explicit extra ``context_seconds`` per cached token per
step, and returns an :class:`EngineTimes`: the calibrated CostModel plus that term and a
measured serving-loop overhead per step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .cost import CostModel
from .hardware import GPU

__all__ = ["calibrate", "predict", "relative_errors", "measure_steps", "device_as_gpu",
           "EngineTimes", "calibrate_with_context", "decode_context_sweep"]

Items = Sequence[tuple[int, int]]


def _peak_times(cm: CostModel, measurements) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute and memory seconds at η = 1 (no overhead), and measured seconds, per step."""
    if cm.context_seconds:
        raise ValueError(f"calibrate a cost model with context_seconds=0 (got {cm.context_seconds!r}): "
                         f"the fit would keep it on top of what it finds; use calibrate_with_context "
                         f"to fit the context term")
    ideal = cm.with_(flops_efficiency=1.0, bw_efficiency=1.0, overhead=0.0)
    costs = [ideal.step(items) for items, _ in measurements]
    C = np.array([c.compute_time for c in costs])
    M = np.array([c.memory_time for c in costs])
    t = np.array([s for _, s in measurements], dtype=np.float64)
    if len(t) == 0 or np.any(t <= 0):
        raise ValueError("need at least one measurement, all with positive seconds")
    return C, M, t


def _best_overhead(roof: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Overhead minimising Σ((o + roof − t)/t)² over the last axis, clipped at 0."""
    w = 1.0 / t ** 2
    return np.clip(((t - roof) * w).sum(-1) / w.sum(), 0.0, None)


def calibrate(cost_model: CostModel, measurements: Sequence[tuple[Items, float]],
              fit_overhead: bool = True) -> CostModel:
    """``cost_model`` with ``flops_efficiency``, ``bw_efficiency`` and ``overhead`` fitted to
    ``measurements``: ``(items, seconds)`` pairs, items being ``(new_tokens, context_tokens)``.

    Knobs the data cannot pin down (η_F when every step is memory-bound, say) keep the largest
    value consistent with the data. With ``fit_overhead=False`` the overhead is left as it is.
    """
    C, M, t = _peak_times(cost_model, measurements)
    lo, hi = np.log(1e-4), 0.0                       # log η range: 1e-4 .. 1
    box = [(lo, hi), (lo, hi)]
    best = None
    for _ in range(40):
        gf = np.linspace(*box[0], 41)
        gw = np.linspace(*box[1], 41)
        ef, ew = np.exp(gf)[:, None, None], np.exp(gw)[None, :, None]
        roof = np.maximum(C / ef, M / ew)                                    # [41, 41, N]
        o = _best_overhead(roof, t) if fit_overhead else np.full(roof.shape[:2], cost_model.overhead)
        err = (((o[..., None] + roof - t) / t) ** 2).sum(-1)
        # prefer the largest η among ties (unidentified knobs)
        err = err - 1e-15 * (gf[:, None] + gw[None, :])
        i, j = np.unravel_index(np.argmin(err), err.shape)
        best = (gf[i], gw[j], float(o[i, j]))
        sf, sw = (box[0][1] - box[0][0]) / 40, (box[1][1] - box[1][0]) / 40
        if max(sf, sw) < 1e-9:
            break
        box = [(max(lo, gf[i] - 2 * sf), min(hi, gf[i] + 2 * sf)),
               (max(lo, gw[j] - 2 * sw), min(hi, gw[j] + 2 * sw))]
    return cost_model.with_(flops_efficiency=float(np.exp(best[0])),
                            bw_efficiency=float(np.exp(best[1])), overhead=best[2])


def predict(cost_model: CostModel, measurements) -> np.ndarray:
    """Predicted seconds of each measured step."""
    return np.array([cost_model.step(items).time for items, _ in measurements])


def relative_errors(cost_model: CostModel, measurements) -> np.ndarray:
    """``|predicted − measured| / measured`` per step."""
    t = np.array([s for _, s in measurements], dtype=np.float64)
    return np.abs(predict(cost_model, measurements) - t) / t


def device_as_gpu(device: str = "cpu", dtype=None, repeats: int = 3) -> GPU:
    """The device described as a :class:`~pdlib.hardware.GPU`, peaks measured on the spot.

    ``flops`` = best matmul FLOP/s and ``mem_bw`` = best matvec/copy bytes/s from
    :func:`pdlib.microbench.measure_roofline` (in ``dtype``: float32 on CPU by default), so
    efficiencies fitted against it are fractions of what this machine reaches in a plain
    matmul or copy. ``mem_bytes``: the machine's RAM for a CPU, the card's memory for CUDA.
    """
    import torch
    from .microbench import measure_roofline
    roof = measure_roofline(device, dtype, repeats=repeats)
    if device.startswith("cuda"):
        mem = float(torch.cuda.get_device_properties(torch.device(device)).total_memory)
        link = "PCIe-Gen4-x16"
    else:
        mem = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        link = "PCIe-Gen4-x16"     # unused at tp=1; a GPU needs a scale-up link name
    return GPU(name=roof.device, flops=roof.peak_flops, mem_bytes=mem, mem_bw=roof.peak_bw,
               mem_type="DDR" if not device.startswith("cuda") else "device memory",
               scaleup=link, source=f"measured by pdlib.microbench.measure_roofline ({roof.dtype})")


def measure_steps(model, shapes: Sequence[Items], device: str | None = None, repeats: int = 5,
                  block_size: int = 16, stat: str = "min") -> list[tuple[tuple[tuple[int, int], ...], float]]:
    """Run ``model`` (a :class:`pdlib.engine.Decoder`) on each batch shape and time it.

    Each shape is a list of ``(new_tokens, context_tokens)`` items. Every item's context is first
    prefilled (untimed); then the step is timed ``repeats`` times (after one warm-up), the
    cache being truncated back to the context in between. Returns ``(items, seconds)`` with, per
    ``stat``, the fastest repeat (``"min"``: other processes on the machine can only add time to a
    step, so this is the engine's own speed) or the median repeat (``"median"``: the typical step
    under the machine's load, the like-for-like reference for a mean over many steps measured
    under the same load, such as a TPOT). Calls
    :func:`pdlib.engine.steady_allocator` first, so steps are timed as a serving loop's steady
    state runs them (no freshly mapped pages per step), as the disaggregated workers run.
    """
    from . import engine
    engine.steady_allocator()
    if device is not None and str(model.device) != str(device) and \
            not (device == "cuda" and model.device.type == "cuda"):
        raise ValueError(f"model lives on {model.device}, not {device}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    if stat not in ("min", "median"):
        raise ValueError(f"stat must be 'min' or 'median', got {stat!r}")
    pick = min if stat == "min" else (lambda xs: float(np.median(xs)))
    out = []
    for shape in shapes:
        items = tuple((int(n), int(L)) for n, L in shape)
        blocks = sum(-(-(n + L) // block_size) for n, L in items)
        runner = engine.Runner(model, n_blocks=max(blocks, 1), block_size=block_size, record=True)
        vocab = model.spec.vocab
        prefix = [(i, [(7 * i + p) % vocab for p in range(L)]) for i, (_, L) in enumerate(items) if L]
        if prefix:
            runner.step(prefix)
        work = [(i, [(3 * i + p + 1) % vocab for p in range(n)]) for i, (n, _) in enumerate(items)]
        times = []
        for k in range(repeats + 1):
            runner.step(work)
            if k:
                times.append(runner.history[-1].seconds)
            for i, (_, L) in enumerate(items):
                runner.cache.truncate(i, L)
        out.append((items, pick(times)))
    return out


# ---------------------------------------------------------------------- context-aware fit
@dataclass(frozen=True)
class EngineTimes:
    """A calibrated :class:`~pdlib.cost.CostModel` plus two measured terms it has no knob for.

    ``step_time(items) = cost_model.step(items).time + context_seconds · ΣL + loop_overhead``

    * ``context_seconds`` (seconds per cached token per step): what reading the context costs
      *beyond* the roofline's ``kv_bytes · L / (η_W · bandwidth)``. The roofline charges each cached
      token's K and V once, at the weights' streaming efficiency; an engine that gathers the
      context's blocks into a contiguous copy before attending (as :mod:`pdlib.engine` does) moves
      those bytes several times, in small strided pieces. Fitted from decode steps swept over
      context lengths (:func:`calibrate_with_context`); 0 for an engine that attends in place at
      full bandwidth.
    * ``loop_overhead`` (seconds per step): time a serving loop spends per decode step outside the
      engine step (polling queues, sending tokens to the front end), measured on that loop —
      for :mod:`pdlib.disagg`, ``mean(tpot − mean(step_seconds))`` of a probe run. 0 for the bare
      engine.
    """
    cost_model: CostModel
    context_seconds: float = 0.0
    loop_overhead: float = 0.0

    def __post_init__(self) -> None:
        if self.context_seconds < 0 or self.loop_overhead < 0:
            raise ValueError(f"context_seconds and loop_overhead must be >= 0 seconds, got "
                             f"{self.context_seconds!r}, {self.loop_overhead!r}")

    def step_time(self, items: Items) -> float:
        """Seconds of one step of ``(new_tokens, context_tokens)`` items (formula above)."""
        items = list(items)
        context = float(sum(L for _, L in items))
        return float(self.cost_model.step(items).time) + self.context_seconds * context + self.loop_overhead

    def prefill_time(self, tokens: int) -> float:
        """Seconds to prefill one ``tokens``-token prompt alone (no context, so only the roofline
        and the loop overhead)."""
        return self.step_time([(tokens, 0)])

    def decode_time(self, batch: int, context: int) -> float:
        """Seconds of a decode step of ``batch`` requests with ``context`` cached tokens each."""
        return self.step_time([(1, context)] * batch)

    def as_cost_model(self) -> CostModel:
        """The same step times as one :class:`~pdlib.cost.CostModel` (``context_seconds`` set,
        the loop overhead added to ``overhead``), e.g. for :mod:`pdlib.sim`:
        ``as_cost_model().step(items).time == step_time(items)``."""
        cm = self.cost_model
        return cm.with_(context_seconds=cm.context_seconds + self.context_seconds,
                        overhead=cm.overhead + self.loop_overhead)

    def with_(self, **changes) -> "EngineTimes":
        """A copy with some fields changed, e.g. ``t.with_(loop_overhead=1e-3)``."""
        from dataclasses import replace
        return replace(self, **changes)


def decode_context_sweep(contexts: Sequence[int] = (64, 256, 512, 1024, 2048), batch: int = 1):
    """Batch shapes for :func:`measure_steps`: one decode step of ``batch`` requests per context
    length — the sweep that pins down :attr:`EngineTimes.context_seconds`."""
    if batch < 1 or any(int(L) < 0 for L in contexts):
        raise ValueError(f"need batch >= 1 and contexts >= 0, got {batch!r}, {list(contexts)!r}")
    return [[(1, int(L))] * batch for L in contexts]


def _best_overhead_and_context(roof: np.ndarray, t: np.ndarray, ctx: np.ndarray):
    """``(o, c) ≥ 0`` minimising ``Σ((o + c·ctx + roof − t)/t)²`` over the last axis of ``roof``.

    A convex quadratic in two variables with ``o, c ≥ 0``: the optimum is the unconstrained
    least-squares point when feasible, else the best of the two edges (o = 0 or c = 0) and the
    corner (0, 0); all are closed-form, evaluated for every grid point at once."""
    w = 1.0 / t ** 2
    r = t - roof                                           # what o + c·ctx must explain
    s_w, s_x, s_xx = w.sum(), (w * ctx).sum(), (w * ctx * ctx).sum()
    s_r, s_xr = (w * r).sum(-1), (w * ctx * r).sum(-1)
    det = s_w * s_xx - s_x ** 2
    cands = []
    if det > 0:
        o = (s_xx * s_r - s_x * s_xr) / det
        c = (s_w * s_xr - s_x * s_r) / det
        ok = (o >= 0) & (c >= 0)
        cands.append((np.where(ok, o, 0.0), np.where(ok, c, 0.0), ok))
    if s_xx > 0:
        c = np.clip(s_xr / s_xx, 0.0, None)
        cands.append((np.zeros_like(c), c, np.ones_like(c, dtype=bool)))
    o = np.clip(s_r / s_w, 0.0, None)
    cands.append((o, np.zeros_like(o), np.ones_like(o, dtype=bool)))
    best_o, best_c, best_err = None, None, None
    for o, c, ok in cands:
        err = (((o[..., None] + c[..., None] * ctx + roof - t) / t) ** 2).sum(-1)
        err = np.where(ok, err, np.inf)
        if best_err is None:
            best_o, best_c, best_err = o, c, err
        else:
            better = err < best_err
            best_o, best_c = np.where(better, o, best_o), np.where(better, c, best_c)
            best_err = np.minimum(err, best_err)
    return best_o, best_c


def calibrate_with_context(cost_model: CostModel, measurements: Sequence[tuple[Items, float]],
                           loop_overhead: float = 0.0) -> EngineTimes:
    """Fit η_F, η_W, the per-step overhead *and* :attr:`EngineTimes.context_seconds` to
    ``measurements`` (``(items, seconds)`` pairs), minimising ``Σ((pred − t)/t)²`` as
    :func:`calibrate` does: for each (η_F, η_W) on the zooming log grid, the best
    ``(overhead, context_seconds) ≥ 0`` is closed-form. Include decode steps at several context
    lengths (:func:`decode_context_sweep`), or the context term is not identified (it then fits
    0 and the result equals :func:`calibrate`'s). ``loop_overhead`` (seconds, measured on the
    serving loop) is carried into the result unchanged."""
    C, M, t = _peak_times(cost_model, measurements)
    ctx = np.array([float(sum(L for _, L in items)) for items, _ in measurements])
    lo, hi = np.log(1e-4), 0.0
    box = [(lo, hi), (lo, hi)]
    best = None
    for _ in range(120):
        gf = np.linspace(*box[0], 41)
        gw = np.linspace(*box[1], 41)
        ef, ew = np.exp(gf)[:, None, None], np.exp(gw)[None, :, None]
        roof = np.maximum(C / ef, M / ew)                                    # [41, 41, N]
        o, c = _best_overhead_and_context(roof, t, ctx)
        err = (((o[..., None] + c[..., None] * ctx + roof - t) / t) ** 2).sum(-1)
        err = err - 1e-15 * (gf[:, None] + gw[None, :])                      # ties: largest η
        i, j = np.unravel_index(np.argmin(err), err.shape)
        best = (gf[i], gw[j], float(o[i, j]), float(c[i, j]))
        sf, sw = (box[0][1] - box[0][0]) / 40, (box[1][1] - box[1][0]) / 40
        if max(sf, sw) < 1e-9:
            break
        # zoom gently (to a quarter of the box): η_W and the context term trade off along a
        # shallow valley, and a faster zoom can settle beside the optimum
        box = [(max(lo, gf[i] - 5 * sf), min(hi, gf[i] + 5 * sf)),
               (max(lo, gw[j] - 5 * sw), min(hi, gw[j] + 5 * sw))]
    cm = cost_model.with_(flops_efficiency=float(np.exp(best[0])), bw_efficiency=float(np.exp(best[1])),
                          overhead=best[2])
    return EngineTimes(cm, context_seconds=best[3], loop_overhead=float(loop_overhead))
