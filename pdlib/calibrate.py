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

Published real-GPU measurements (A100, H100) calibrate the cost model's measured terms — per-step
and per-layer fixed costs, GEMM efficiency by shard size, attention efficiency, the per-cached-token
cost and the all-reduce — through :func:`from_published` (``source`` "splitwise", "vidur" or
"sarathi", listed with citations by :func:`published_sources`); the machinery is
:mod:`pdlib.published` (tables, fit and test rows, errors) and :mod:`pdlib.fitting`
(:func:`fit_terms`, :func:`fit_allreduce`, which work on any measurements).

η_W is a fraction of the *memory* bandwidth only when a step's weights come from memory; a model
whose weights fit in the processor's last-level cache (a CPU's L3, a GPU's L2) is read from that
cache. And every step of one model reads the same weights, so a fit that also fits the fixed
overhead per step can trade the two against each other and leave one at a bound of its range
(:func:`knobs_at_bounds`). Calibrating bandwidth therefore takes two models:
:func:`overhead_spec` (the same kernels with next to no work) measures the overhead, and
:func:`calibration_spec` (weights several times :func:`last_level_cache`) gives η_F and η_W with
that overhead held fixed, ``calibrate(cm.with_(overhead=o), steps, fit_overhead=False)``;
:func:`memcpy_bandwidth` is the memory rate to set the result against.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import microbench
from .cost import CostModel
from .fitting import Measurement, fit_allreduce, fit_terms
from .hardware import GPU
from .models import ModelSpec
from .published import from_published, published_sources

__all__ = ["calibrate", "predict", "relative_errors", "measure_steps", "device_as_gpu",
           "EngineTimes", "calibrate_with_context", "decode_context_sweep", "knobs_at_bounds",
           "CacheInfo", "last_level_cache", "read_sysfs_cache", "parse_cache_size", "DEFAULT_LLC_BYTES",
           "SYSFS_CPU", "calibration_spec", "overhead_spec", "memcpy_bandwidth", "from_published",
           "published_sources", "fit_terms", "fit_allreduce", "Measurement"]

Items = Sequence[tuple[int, int]]

_ETA_MIN = 1e-4          # lower end of the η range the fits search (the upper end is 1)


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
    lo, hi = np.log(_ETA_MIN), 0.0                   # log η range: 1e-4 .. 1
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


def knobs_at_bounds(fit: CostModel, rel: float = 1e-6) -> tuple[str, ...]:
    """Names of the fitted knobs that sit at an edge of the range :func:`calibrate` searches:
    ``"η_F = 1"``, ``"η_W = 1"``, ``"η_F = 1e-4"``, ``"η_W = 1e-4"`` (within ``rel``) or
    ``"overhead = 0"``. A knob at a bound is one the data could not place inside its range —
    for η_W, typically a model read from cache rather than memory, or steps whose memory time
    is too small beside their fixed overhead to be told apart from it. Empty when none is."""
    out = []
    for sym, v in (("η_F", fit.flops_efficiency), ("η_W", fit.bw_efficiency)):
        if v >= 1.0 - rel:
            out.append(f"{sym} = 1")
        elif v <= _ETA_MIN * (1 + rel):
            out.append(f"{sym} = 1e-4")
    if fit.overhead <= 0.0:
        out.append("overhead = 0")
    return tuple(out)


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
    lo, hi = np.log(_ETA_MIN), 0.0
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


# ---------------------------------------------------------------------- a model larger than the cache
#: Where Linux describes each CPU's caches: ``cpu<N>/cache/index<i>/`` holds ``level``, ``type``
#: (Data, Instruction, Unified), ``size`` ("32768K") and ``shared_cpu_list`` ("0-7": the CPUs
#: sharing that cache) — the Linux kernel's Documentation/ABI/testing/sysfs-devices-system-cpu,
#: entry "/sys/devices/system/cpu/cpu*/cache/index*/<set_of_attributes_mentioned_below>".
SYSFS_CPU = "/sys/devices/system/cpu"

#: Last-level cache assumed where none can be read (Windows; a Linux without the sysfs files;
#: a torch without ``L2_cache_size``): 32 MiB, the L3 of one AMD Zen 3 or Zen 4 core complex
#: (EPYC 7003 and 9004: 32 MB of L3 per CCD). A guess, named as such in :attr:`CacheInfo.source`.
DEFAULT_LLC_BYTES = 32 * 2**20


@dataclass(frozen=True)
class CacheInfo:
    """The last-level cache a device's threads can hold data in: ``bytes`` (the total over
    ``instances`` separate caches of that level, e.g. one L3 per core complex of a many-core CPU),
    ``level`` (3 for an L3, 2 for a GPU's L2; 0 when unknown) and ``source`` (where the size was
    read, or ``"default"``)."""
    bytes: int
    level: int
    source: str
    instances: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.bytes, (int, np.integer)) or self.bytes <= 0 or self.level < 0 \
                or self.instances < 1:
            raise ValueError(f"need a positive integer cache size, level >= 0 and instances >= 1, got "
                             f"{self.bytes!r}, {self.level!r}, {self.instances!r}")

    @property
    def mib(self) -> float:
        """Size in MiB (2^20 bytes)."""
        return self.bytes / 2**20


def parse_cache_size(text: str) -> int:
    """Bytes in a cache size as sysfs writes it: ``"32768K"`` → 33,554,432. Suffixes K, M, G
    (powers of 1,024, as sysfs and lscpu mean them), optional "iB"/"B", or a plain byte count."""
    t = str(text).strip().upper().replace("IB", "").rstrip("B").strip()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}
    try:
        if t and t[-1] in scale:
            return int(float(t[:-1]) * scale[t[-1]])
        return int(t)
    except ValueError:
        raise ValueError(f"cannot read a cache size from {text!r}; expected e.g. '32768K', "
                         f"'1M' or a byte count") from None


def _cpu_caches(folder: Path, cpu: int):
    """``(level, size, shared_cpu_list, size file)`` of each data or unified cache in ``folder``."""
    out = []
    for d in sorted(folder.glob("index*")) if folder.is_dir() else ():
        try:
            level = int((d / "level").read_text().strip())
            kind = (d / "type").read_text().strip()
            size = parse_cache_size((d / "size").read_text())
        except (OSError, ValueError):
            continue
        try:
            shared = (d / "shared_cpu_list").read_text().strip()
        except OSError:
            shared = f"cpu{cpu} alone"
        if kind.lower() != "instruction" and size > 0:
            out.append((level, size, shared, str(d / "size")))
    return out


def read_sysfs_cache(root: str | os.PathLike = SYSFS_CPU,
                     cpus: Sequence[int] | None = None) -> CacheInfo | None:
    """The last-level cache of ``cpus`` (default: the CPUs this process may run on, from
    ``os.sched_getaffinity``) as Linux lists it under ``root`` (:data:`SYSFS_CPU`; tests pass a
    fake one), or None where it lists none.

    Per CPU, the highest-level data or unified cache counts (instruction caches are skipped);
    caches that several CPUs share (same ``shared_cpu_list``) count once, and the separate ones
    add up, since threads on different core complexes each keep their part of the weights in
    their own L3."""
    root = Path(root)
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    found = {}                                          # shared list -> (level, size, size file)
    for cpu in cpus:
        caches = _cpu_caches(root / f"cpu{int(cpu)}" / "cache", int(cpu))
        if caches:
            level, size, shared, where = max(caches, key=lambda c: (c[0], c[1]))
            found.setdefault(shared, (level, size, where))
    if not found:
        return None
    top = max(level for level, _, _ in found.values())
    tops = [(size, where) for level, size, where in found.values() if level == top]
    more = f" and {len(tops) - 1} more" if len(tops) > 1 else ""
    return CacheInfo(int(sum(size for size, _ in tops)), top, tops[0][1] + more, instances=len(tops))


def _sysctl_cache() -> CacheInfo | None:
    """macOS: ``sysctl -n hw.l3cachesize`` (or ``hw.l2cachesize``, Apple silicon has no L3 entry)."""
    for level, key in ((3, "hw.l3cachesize"), (2, "hw.l2cachesize")):
        try:
            out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
            size = int(out.stdout.strip()) if out.returncode == 0 else 0
        except (OSError, ValueError, subprocess.SubprocessError):
            size = 0
        if size > 0:
            return CacheInfo(size, level, f"sysctl {key}")
    return None


def last_level_cache(device: str = "cpu", sysfs: str | os.PathLike = SYSFS_CPU,
                     default: int = DEFAULT_LLC_BYTES, cpus: Sequence[int] | None = None) -> CacheInfo:
    """Size of ``device``'s last-level cache.

    CUDA: the GPU's L2 (``torch.cuda.get_device_properties(device).L2_cache_size``). CPU: the
    sysfs files under ``sysfs`` for ``cpus`` (:func:`read_sysfs_cache`; Linux, Colab), else
    ``sysctl`` (macOS), else ``default`` bytes (:data:`DEFAULT_LLC_BYTES`) with
    ``source="default"`` and ``level=0``.
    """
    if str(device).startswith("cuda"):
        import torch
        size = int(getattr(torch.cuda.get_device_properties(torch.device(device)), "L2_cache_size", 0) or 0)
        if size > 0:
            return CacheInfo(size, 2, "torch.cuda.get_device_properties().L2_cache_size")
        return CacheInfo(int(default), 0, "default")
    if str(device) != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {device!r}")
    found = read_sysfs_cache(sysfs, cpus)
    if found is None and sys.platform == "darwin":
        found = _sysctl_cache()
    return found if found is not None else CacheInfo(int(default), 0, "default")


def calibration_spec(cache_bytes: int | CacheInfo, factor: float = 4.0, dtype: str = "fp32",
                     n_layers: int = 4, max_hidden: int = 2048) -> ModelSpec:
    """A Llama-shaped test model whose decode step reads at least ``factor`` × ``cache_bytes``
    of weights in ``dtype``, so that every step streams them from memory, not from cache.

    The shape is :func:`pdlib.engine.tiny_spec`'s (``n_layers`` layers, 8 query heads sharing 2
    KV heads, ``ffn = 2·hidden``, a 1,000-token vocabulary) with the smallest ``hidden``, a
    multiple of 128, for which ``spec.step_weight_bytes(1, dtype) ≥ factor · cache_bytes``
    (≈ ``(34·hidden² + 1000·hidden) · bytes`` for 4 layers: ``8.5·hidden²`` weights a layer).
    Widening rather than deepening keeps the per-step overhead (kernel calls per layer) of the
    chapter's 4-layer model. ``hidden`` stops at ``max_hidden`` (2,048: 147 M parameters, 0.59 GB
    in fp32), so on a device whose cache is above ``step bytes / factor`` the model falls short
    of ``factor``; compare ``spec.step_weight_bytes(1, dtype) / cache_bytes`` with it.
    """
    size = cache_bytes.bytes if isinstance(cache_bytes, CacheInfo) else cache_bytes
    if not size > 0 or not factor > 0 or n_layers < 1 or max_hidden < 256:
        raise ValueError(f"need cache_bytes > 0, factor > 0, n_layers >= 1, max_hidden >= 256; got "
                         f"{size!r}, {factor!r}, {n_layers!r}, {max_hidden!r}")

    def spec(h: int) -> ModelSpec:
        return ModelSpec(name=f"calib-{h}", n_layers=n_layers, hidden=h, n_heads=8, n_kv_heads=2,
                         head_dim=h // 8, ffn=2 * h, vocab=1000, max_context=2048,
                         rope_theta=10000.0, qkv_bias=False, tied_embeddings=False,
                         source=f"pdlib.calibrate.calibration_spec ({factor:g} x a "
                                f"{size / 2**20:.0f} MiB cache, a made-up test model)")
    h = 256
    while h < max_hidden and spec(h).step_weight_bytes(1, dtype) < factor * size:
        h += 128
    return spec(min(h, max_hidden))


def overhead_spec(spec: ModelSpec, head_dim: int = 8) -> ModelSpec:
    """``spec`` shrunk to next to no work: the same layers, heads and options, each head
    ``head_dim`` wide (``hidden = n_heads · head_dim``, ``ffn = 2·hidden``, at most 1,000 vocabulary
    rows). The engine runs the same kernels in the same order for it, so its step time is the
    engine's fixed cost per step (Python, kernel calls, the cache bookkeeping): for the
    4-layer models of :func:`calibration_spec`, 0.27 M parameters (1.1 MB in fp32) against their
    tens of millions. The ``overhead`` to hold fixed when fitting η_F and η_W on the full model."""
    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be an even number >= 2 (rotary embeddings pair the "
                         f"dimensions), got {head_dim!r}")
    h = spec.n_heads * head_dim
    return dataclasses.replace(spec, name=f"{spec.name}-overhead", hidden=h, head_dim=head_dim, ffn=2 * h,
                               vocab=min(spec.vocab, 1000),
                               source=f"pdlib.calibrate.overhead_spec({spec.name}): {head_dim}-wide heads")


def memcpy_bandwidth(device: str = "cpu", nbytes: int | None = None, repeats: int = 3):
    """A plain memory copy's rate on ``device``: :func:`pdlib.microbench.copy` of an ``nbytes``
    buffer (default 4 × :func:`last_level_cache`, so source and destination both live in
    memory), in float32 on CPU (bfloat16/float16 on GPUs). Returns the
    :class:`~pdlib.microbench.Measurement`; its ``bytes_per_s`` counts bytes read plus written
    (``2 · nbytes / seconds``), as STREAM's copy does — the memory roof a calibrated η_W is set
    against."""
    import torch

    dev = microbench.pick_device(device)
    size = 4 * last_level_cache(dev).bytes if nbytes is None else int(nbytes)
    dt = microbench.default_dtype(dev)
    elems = size // torch.empty((), dtype=dt).element_size()
    return microbench.copy(max(elems, 1), dev, dt, repeats=repeats)
