"""Requests and workloads: arrival processes, length distributions, named workloads, trace loaders.

A request arrives at ``arrival`` seconds with a ``prompt`` of P tokens and asks for ``output`` = O
tokens (the first comes out of the prefill, the other O − 1 out of decode steps). A
:class:`Workload` holds many requests *column-wise* — three numpy arrays sorted by arrival —
because the simulator reads 10,000 requests in a fraction of a second; :class:`Request` is the
one-row view for readers and small examples (``workload[i]``, ``for r in workload``).

Arrival processes (``n`` arrival times in seconds, the first at 0 s):

* :func:`poisson_arrivals` — exponential gaps of mean ``1/rate``: the memoryless textbook case.
* :func:`gamma_arrivals` — Gamma gaps of mean ``1/rate`` and coefficient of variation ``cv``
  (std/mean of the gaps): ``cv = 1`` is Poisson, ``cv > 1`` bursty, ``cv < 1`` regular.
  Shape ``k = 1/cv²`` and scale ``θ = cv²/rate`` give mean ``kθ = 1/rate`` and std ``√k·θ = cv/rate``.
* :func:`fixed_arrivals` — one request every ``1/rate`` seconds.
* :func:`trace_arrivals` — replay recorded timestamps, shifted to start at 0.

Length distributions (:class:`LengthDist`, tokens; samples rounded to integers, clipped to
``[1, max]``): :func:`fixed`, :func:`uniform`, :func:`lognormal` (set by its median and P90, the
numbers trace papers report) and :func:`empirical` (a piecewise-linear inverse CDF through given
quantiles). :func:`poisson` and :func:`gamma` combine an arrival process with two length
distributions; :func:`named` does so with the length distributions of six public traces
(:func:`named_workloads`, :func:`trace_info`), stored below as numbers with their source, so no
trace file is needed. :func:`load_azure_csv`, :func:`load_mooncake_jsonl` and
:func:`load_lengths_csv` read the trace files themselves.

Every generator is a pure function of its arguments: the same ``seed`` gives the same workload.
"""
from __future__ import annotations

import json
import math
import operator
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["Request", "Workload", "merge",
           "poisson_arrivals", "gamma_arrivals", "fixed_arrivals", "trace_arrivals",
           "LengthDist", "Fixed", "Uniform", "LogNormal", "Empirical",
           "fixed", "uniform", "lognormal", "empirical", "poisson", "gamma",
           "LengthStats", "TraceInfo", "TRACE_LEVELS", "named", "named_workloads", "trace_info",
           "load_azure_csv", "load_mooncake_jsonl", "load_lengths_csv",
           "MOONCAKE_BLOCK_TOKENS", "prefix_hits", "with_prefix_cache", "with_cached_fraction"]

#: z such that P(N(0,1) <= z) = 0.9 (the standard normal's 90th percentile), used by :func:`lognormal`.
Z90 = 1.2815515655446004


# ---------------------------------------------------------------- requests and workloads
@dataclass(frozen=True)
class Request:
    """One request: arrives at ``arrival`` seconds with ``prompt`` tokens and generates ``output``
    tokens. ``prefix_blocks``: ids of its prompt's KV blocks for prefix caching (Mooncake traces:
    one id per 512-token block; two requests sharing an id share that block's KV). ``cached``:
    tokens at the start of the prompt whose KV is already cached (a prefix-cache hit), so its
    prefill computes only ``prompt - cached`` tokens (0 <= cached <= prompt - 1)."""
    id: int
    arrival: float
    prompt: int
    output: int
    prefix_blocks: tuple[int, ...] = ()
    cached: int = 0


def _check_sorted(a: np.ndarray, label: str) -> None:
    """ValueError naming the first entry of ``a`` smaller than the one before it."""
    bad = np.flatnonzero(np.diff(a) < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(f"{label} must be sorted (non-decreasing); {label}[{i}] = {a[i]!r} < "
                         f"{label}[{i - 1}] = {a[i - 1]!r}")


def _tokens(values, label: str) -> np.ndarray:
    """``values`` as an int64 array, or ValueError naming the first entry that is not a whole number."""
    a = np.asarray(values)
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{label} must hold whole token counts; {label}[{i}] = {a[i]!r}")
    elif a.size and a.dtype.kind not in "iu":
        raise ValueError(f"{label} must hold integer token counts, got dtype {a.dtype}")
    return a.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests column-wise, sorted by arrival: request ``i`` arrives at ``arrival[i]`` seconds
    (float64, non-decreasing, >= 0) with ``prompt[i]`` tokens and asks for ``output[i]`` tokens
    (int64, >= 1). Its id is its row ``i``. ``prefix_blocks``, when given, holds one tuple of
    prefix-cache block ids per request. ``cached[i]`` (int64 tokens, default all 0) is the length
    of the prompt prefix whose KV is already in a prefix cache: the simulator prefills only
    ``prompt[i] - cached[i]`` tokens, continuing from context ``cached[i]``. It must satisfy
    ``0 <= cached[i] <= prompt[i] - 1`` (the last prompt token is always computed: it yields the
    first output token). Set it with :meth:`with_cached`, :func:`with_prefix_cache` or
    :func:`with_cached_fraction`.

    The arrays are copied and made read-only, so a Workload never changes; :meth:`scale_rate`,
    :meth:`head` and :func:`merge` return new ones. Invalid input raises ValueError naming the
    problem and the first bad index. Equality is identity (compare the arrays to compare contents).
    """
    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    name: str = ""
    prefix_blocks: tuple[tuple[int, ...], ...] | None = None
    cached: np.ndarray | None = None

    def __post_init__(self):
        arrival = np.array(self.arrival, dtype=np.float64)
        prompt, output = _tokens(self.prompt, "prompt"), _tokens(self.output, "output")
        for label, a in (("arrival", arrival), ("prompt", prompt), ("output", output)):
            if a.ndim != 1:
                raise ValueError(f"{label} must be a 1-D array, got shape {a.shape}")
        if not len(arrival) == len(prompt) == len(output):
            raise ValueError(f"arrival, prompt and output must have the same length, got "
                             f"{len(arrival)}, {len(prompt)} and {len(output)}")
        bad = np.flatnonzero(~np.isfinite(arrival) | (arrival < 0))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"arrival times must be finite and >= 0 s; arrival[{i}] = {arrival[i]!r}")
        _check_sorted(arrival, "arrival")
        for label, a in (("prompt", prompt), ("output", output)):
            bad = np.flatnonzero(a < 1)
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"{label} must be >= 1 token; {label}[{i}] = {int(a[i])}")
        blocks = self.prefix_blocks
        if blocks is not None:
            blocks = tuple(tuple(int(b) for b in row) for row in blocks)
            if len(blocks) != len(arrival):
                raise ValueError(f"prefix_blocks must have one entry per request: got {len(blocks)} "
                                 f"for {len(arrival)} requests")
        if self.cached is None:
            cached = np.zeros(len(arrival), dtype=np.int64)
        else:
            cached = _tokens(self.cached, "cached")
            if cached.ndim != 1 or len(cached) != len(arrival):
                raise ValueError(f"cached must be a 1-D array with one entry per request: got shape "
                                 f"{cached.shape} for {len(arrival)} requests")
            bad = np.flatnonzero((cached < 0) | (cached > prompt - 1))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"cached tokens must satisfy 0 <= cached <= prompt - 1; cached[{i}] = "
                                 f"{int(cached[i])} with prompt[{i}] = {int(prompt[i])}")
        for a in (arrival, prompt, output, cached):
            a.setflags(write=False)
        object.__setattr__(self, "cached", cached)
        object.__setattr__(self, "arrival", arrival)
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "prefix_blocks", blocks)

    @classmethod
    def from_requests(cls, requests: Sequence[Request], name: str = "") -> Workload:
        """A Workload from Request objects, sorted by arrival (stable); ids become row numbers."""
        reqs = sorted(requests, key=lambda r: r.arrival)
        blocks = tuple(r.prefix_blocks for r in reqs) if any(r.prefix_blocks for r in reqs) else None
        return cls(np.array([r.arrival for r in reqs], dtype=np.float64),
                   np.array([r.prompt for r in reqs], dtype=np.int64),
                   np.array([r.output for r in reqs], dtype=np.int64), name=name, prefix_blocks=blocks,
                   cached=np.array([r.cached for r in reqs], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.arrival)

    def __getitem__(self, i):
        """``w[i]`` -> :class:`Request` ``i`` (negative counts from the end); ``w[a:b]`` -> Workload."""
        if isinstance(i, slice):
            return self._take(i)
        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"request index {i} out of range for a workload of {n} requests")
        i %= n
        return Request(i, float(self.arrival[i]), int(self.prompt[i]), int(self.output[i]),
                       self.prefix_blocks[i] if self.prefix_blocks is not None else (),
                       int(self.cached[i]))

    def __iter__(self) -> Iterator[Request]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        if not len(self):
            return f"Workload({self.name!r}, n=0)"
        return (f"Workload({self.name!r}, n={len(self)}, rate={self.rate:.3g} req/s, "
                f"prompt median {np.median(self.prompt):g} tokens, "
                f"output median {np.median(self.output):g} tokens)")

    def _take(self, index) -> Workload:
        blocks = None
        if self.prefix_blocks is not None:
            blocks = tuple(self.prefix_blocks[int(j)] for j in np.arange(len(self))[index])
        return Workload(self.arrival[index], self.prompt[index], self.output[index], self.name, blocks,
                        self.cached[index])

    def requests(self) -> list[Request]:
        """Every request as a :class:`Request` (slow for big workloads; the simulator reads arrays)."""
        return list(self)

    def head(self, n: int) -> Workload:
        """The first ``n`` requests (by arrival)."""
        if n < 0:
            raise ValueError(f"head needs n >= 0, got {n}")
        return self._take(slice(0, n))

    def to_frame(self) -> pd.DataFrame:
        """One row per request: ``id``, ``arrival`` (s), ``prompt``, ``output`` (tokens), plus
        ``prefix_blocks`` when the workload has them and ``cached`` (tokens) when any is > 0."""
        df = pd.DataFrame({"id": np.arange(len(self)), "arrival": self.arrival,
                           "prompt": self.prompt, "output": self.output})
        if self.prefix_blocks is not None:
            df["prefix_blocks"] = list(self.prefix_blocks)
        if self.cached.any():
            df["cached"] = self.cached
        return df

    def with_cached(self, cached) -> Workload:
        """The same requests with ``cached`` prefix-cache hit tokens: one int for every request, or
        one entry per request (``0 <= cached <= prompt - 1``, checked)."""
        c = np.full(len(self), cached) if np.ndim(cached) == 0 else cached
        return Workload(self.arrival, self.prompt, self.output, self.name, self.prefix_blocks, c)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last arrival (0 for fewer than 2 requests)."""
        return float(self.arrival[-1] - self.arrival[0]) if len(self) > 1 else 0.0

    @property
    def rate(self) -> float:
        """Mean arrival rate (req/s) = 1 / mean gap = ``(n − 1) / (last − first arrival)``;
        NaN for fewer than 2 requests, inf when they all arrive at once."""
        if len(self) < 2:
            return math.nan
        return (len(self) - 1) / self.duration if self.duration > 0 else math.inf

    def describe(self) -> dict[str, float]:
        """Summary numbers: ``n``, ``duration`` (s), ``rate`` (req/s) and the median, mean and P90
        (numpy's default linear interpolation) of prompt and output lengths (tokens)."""
        if not len(self):
            raise ValueError("describe() needs a non-empty workload")
        out: dict[str, float] = {"n": len(self), "duration": self.duration, "rate": self.rate}
        for label, a in (("prompt", self.prompt), ("output", self.output)):
            out[f"{label}_median"] = float(np.median(a))
            out[f"{label}_mean"] = float(a.mean())
            out[f"{label}_p90"] = float(np.percentile(a, 90))
        return out

    def scale_rate(self, factor: float) -> Workload:
        """The same requests arriving ``factor`` times as fast: arrival times divided by ``factor``
        (so the rate is multiplied by it). Used to sweep load in a goodput search."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale_rate needs a finite factor > 0, got {factor!r}")
        return Workload(self.arrival / factor, self.prompt, self.output, self.name, self.prefix_blocks,
                        self.cached)

    def with_rate(self, rate: float) -> Workload:
        """The same requests with arrival times rescaled so that :attr:`rate` equals ``rate`` (req/s)."""
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"with_rate needs a finite rate > 0 req/s, got {rate!r}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"with_rate needs at least 2 requests spread over > 0 s; this workload "
                             f"has n={len(self)}, duration={self.duration} s")
        return self.scale_rate(rate / self.rate)


def merge(*workloads: Workload, name: str | None = None) -> Workload:
    """All requests of ``workloads`` in one Workload, sorted by arrival (stable: ties keep argument
    order) and renumbered 0..n−1. Prefix-block ids are kept as they are (ids of different traces may
    coincide and then share cache blocks); requests without them get ``()``. ``cached`` tokens are
    carried over. ``name`` defaults to the names joined by ``+``."""
    if not workloads:
        raise ValueError("merge needs at least one workload")
    arrival = np.concatenate([w.arrival for w in workloads])
    order = np.argsort(arrival, kind="stable")
    blocks = None
    if any(w.prefix_blocks is not None for w in workloads):
        flat = [row for w in workloads for row in (w.prefix_blocks or ((),) * len(w))]
        blocks = tuple(flat[int(j)] for j in order)
    return Workload(arrival[order], np.concatenate([w.prompt for w in workloads])[order],
                    np.concatenate([w.output for w in workloads])[order],
                    name if name is not None else "+".join(w.name for w in workloads), blocks,
                    np.concatenate([w.cached for w in workloads])[order])


# ---------------------------------------------------------------- arrival processes
def _check_rate_n(rate: float, n: int) -> None:
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number of requests per second > 0, got {rate!r}")
    if operator.index(n) < 1:
        raise ValueError(f"n (number of requests) must be >= 1, got {n!r}")


def _from_gaps(gaps: np.ndarray) -> np.ndarray:
    """Arrival times from the n − 1 gaps between n requests, the first arriving at 0 s."""
    return np.concatenate([[0.0], np.cumsum(gaps)])


def poisson_arrivals(rate: float, n: int, seed: int = 0) -> np.ndarray:
    """``n`` arrival times (s) of a Poisson process of ``rate`` req/s: the first at 0 s, then
    ``n − 1`` independent exponential gaps of mean ``1/rate`` (coefficient of variation 1).
    The gaps are ``standard_exponential / rate``, so the same seed at another rate gives the same
    arrivals rescaled."""
    _check_rate_n(rate, n)
    return _from_gaps(np.random.default_rng(seed).exponential(1.0 / rate, n - 1))


def gamma_arrivals(rate: float, n: int, cv: float, seed: int = 0) -> np.ndarray:
    """``n`` arrival times (s), the first at 0 s, with Gamma-distributed gaps of mean ``1/rate``
    and coefficient of variation ``cv`` = std/mean: shape ``1/cv²``, scale ``cv²/rate``.
    ``cv = 1`` is a Poisson process (same law as :func:`poisson_arrivals`, other draws); ``cv > 1``
    is bursty (many short gaps, a few long ones), ``cv < 1`` more regular."""
    _check_rate_n(rate, n)
    if not (math.isfinite(cv) and cv > 0):
        raise ValueError(f"cv (coefficient of variation of the gaps) must be finite and > 0, got {cv!r}")
    return _from_gaps(np.random.default_rng(seed).gamma(1.0 / cv**2, cv**2 / rate, n - 1))


def fixed_arrivals(rate: float, n: int) -> np.ndarray:
    """``n`` evenly spaced arrival times (s): request i arrives at ``i / rate``."""
    _check_rate_n(rate, n)
    return np.arange(n) / rate


def trace_arrivals(timestamps) -> np.ndarray:
    """Recorded arrival timestamps (seconds, sorted) replayed from 0: ``t − t[0]``.
    Unsorted or non-finite timestamps raise ValueError naming the first bad index (sort the rows
    of a trace, lengths included, before calling)."""
    t = np.array(timestamps, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"timestamps must be 1-D, got shape {t.shape}")
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise ValueError(f"timestamps must be finite; timestamps[{bad[0]}] = {t[bad[0]]!r}")
    _check_sorted(t, "timestamps")
    return t - t[0] if t.size else t


# ---------------------------------------------------------------- length distributions
class LengthDist:
    """A distribution of token counts. :meth:`sample` draws ``n`` values, rounds them to the
    nearest integer and clips them to ``[1, max]`` (``max = None``: no upper clip)."""
    max: int | None = None

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator | int = 0) -> np.ndarray:
        """``n`` lengths (int64 tokens, >= 1). ``rng``: a numpy Generator or an int seed."""
        x = np.rint(self._draw(n, np.random.default_rng(rng)))
        return np.clip(x, 1, self.max if self.max is not None else np.inf).astype(np.int64)


def _check_max(max_: int | None) -> None:
    if max_ is not None and not max_ >= 1:
        raise ValueError(f"max must be None or >= 1 token, got {max_!r}")


def _max_repr(max_: int | None) -> str:
    return "" if max_ is None else f", max={max_}"


@dataclass(frozen=True, repr=False)
class Fixed(LengthDist):
    """Every request has ``value`` tokens."""
    value: int

    def __post_init__(self):
        if not (isinstance(self.value, (int, np.integer)) and self.value >= 1):
            raise ValueError(f"fixed length must be an integer >= 1 token, got {self.value!r}")

    def _draw(self, n, rng):
        return np.full(n, self.value, dtype=np.float64)

    def __repr__(self):
        return f"fixed({self.value})"


@dataclass(frozen=True, repr=False)
class Uniform(LengthDist):
    """Integers from ``lo`` to ``hi`` tokens inclusive, each equally likely (mean ``(lo + hi)/2``)."""
    lo: int
    hi: int

    def __post_init__(self):
        if not 1 <= self.lo <= self.hi:
            raise ValueError(f"uniform needs 1 <= lo <= hi tokens, got lo={self.lo!r}, hi={self.hi!r}")

    def _draw(self, n, rng):
        return rng.integers(self.lo, self.hi, size=n, endpoint=True).astype(np.float64)

    def __repr__(self):
        return f"uniform({self.lo}, {self.hi})"


@dataclass(frozen=True, repr=False)
class LogNormal(LengthDist):
    """Lognormal lengths set by their ``median`` and 90th percentile ``p90`` (tokens):
    ``ln L ~ N(mu, sigma²)`` with ``mu = ln(median)`` and ``sigma = ln(p90 / median) / z90``,
    z90 = 1.2816 the standard normal's 90th percentile. Mean ``= median · exp(sigma²/2)``."""
    median: float
    p90: float
    max: int | None = None

    def __post_init__(self):
        if not (self.median > 0 and self.p90 > self.median and math.isfinite(self.p90)):
            raise ValueError(f"lognormal needs 0 < median < p90 (tokens), got median={self.median!r}, "
                             f"p90={self.p90!r}; use fixed() for a constant length")
        _check_max(self.max)

    @property
    def mu(self) -> float:
        """Mean of ln L."""
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        """Standard deviation of ln L."""
        return math.log(self.p90 / self.median) / Z90

    def _draw(self, n, rng):
        return rng.lognormal(self.mu, self.sigma, n)

    def __repr__(self):
        return f"lognormal(median={self.median:g}, p90={self.p90:g}{_max_repr(self.max)})"


@dataclass(frozen=True, repr=False)
class Empirical(LengthDist):
    """Lengths from a piecewise-linear inverse CDF: a uniform ``u`` in [0, 1) maps to
    ``np.interp(u, levels, values)``, so the ``levels[k]`` quantile is ``values[k]`` and lengths
    between two knots are spread evenly. ``levels`` rise from 0 (the minimum) to 1 (the maximum);
    ``values`` never decrease."""
    levels: tuple[float, ...]
    values: tuple[float, ...]
    max: int | None = None

    def __post_init__(self):
        lv, va = np.asarray(self.levels, float), np.asarray(self.values, float)
        if lv.ndim != 1 or lv.shape != va.shape or lv.size < 2:
            raise ValueError(f"empirical needs >= 2 (level, value) knots of equal count, got "
                             f"{lv.size} levels and {va.size} values")
        if lv[0] != 0 or lv[-1] != 1:
            raise ValueError(f"empirical quantile levels must start at 0 (the minimum) and end at 1 "
                             f"(the maximum), got {lv[0]:g} … {lv[-1]:g}")
        bad = np.flatnonzero(np.diff(lv) <= 0)
        if bad.size:
            raise ValueError(f"empirical quantile levels must increase; level {lv[bad[0] + 1]:g} "
                             f"follows {lv[bad[0]]:g}")
        bad = np.flatnonzero(~np.isfinite(va) | (va < 0))
        if bad.size:
            raise ValueError(f"empirical values must be finite and >= 0 tokens; the value at level "
                             f"{lv[bad[0]]:g} is {va[bad[0]]!r}")
        bad = np.flatnonzero(np.diff(va) < 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"empirical values must not decrease with the level; P{100 * lv[i]:g} = "
                             f"{va[i]:g} < P{100 * lv[i - 1]:g} = {va[i - 1]:g}")
        _check_max(self.max)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 <= q <= 1) of the interpolated distribution, in tokens."""
        return float(np.interp(q, self.levels, self.values))

    def _draw(self, n, rng):
        return np.interp(rng.random(n), self.levels, self.values)

    def __repr__(self):
        return (f"empirical(min={self.values[0]:g}, P50={self.quantile(0.5):g}, P90={self.quantile(0.9):g}, "
                f"max={self.values[-1]:g}, {len(self.levels)} knots{_max_repr(self.max)})")


def fixed(value: int) -> Fixed:
    """Every request has ``value`` tokens."""
    return Fixed(value)


def uniform(lo: int, hi: int) -> Uniform:
    """Integer lengths uniform on ``lo … hi`` tokens (both included)."""
    return Uniform(lo, hi)


def lognormal(median: float, p90: float, max: int | None = None) -> LogNormal:
    """Lognormal lengths with the given ``median`` and ``p90`` (tokens), clipped to ``max`` if given.
    Example: ``lognormal(512, 2048)`` has sigma = ln 4 / 1.2816 = 1.082 and mean 512·e^(sigma²/2) = 918."""
    return LogNormal(median, p90, max)


def empirical(quantiles: Mapping[float, float] | Sequence[float] | np.ndarray,
              max: int | None = None) -> Empirical:
    """A piecewise-linear inverse CDF (:class:`Empirical`) from either

    * a mapping ``{level: tokens}`` of quantiles, levels in [0, 1] including 0 (min) and 1 (max),
      e.g. ``{0: 10, 0.5: 100, 0.9: 400, 1: 1000}``; or
    * a sequence of observed lengths (at least 2): their sorted values placed at evenly spaced
      levels, so sampling resamples the observations, smoothed between neighbours.
    """
    if isinstance(quantiles, Mapping):
        knots = sorted((float(q), float(v)) for q, v in quantiles.items())
        return Empirical(tuple(q for q, _ in knots), tuple(v for _, v in knots), max)
    values = np.sort(np.asarray(quantiles, dtype=np.float64))
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"empirical needs a 1-D sequence of at least 2 lengths, got shape {values.shape}")
    return Empirical(tuple(np.linspace(0.0, 1.0, values.size).tolist()), tuple(values.tolist()), max)


def _as_dist(x: int | LengthDist, label: str) -> LengthDist:
    if isinstance(x, LengthDist):
        return x
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return Fixed(int(x))
    raise TypeError(f"{label} must be an int (a fixed length in tokens) or a LengthDist "
                    f"(fixed, uniform, lognormal, empirical), got {x!r}")


def _with_lengths(arrival: np.ndarray, prompt: int | LengthDist, output: int | LengthDist,
                  seed: int, name: str) -> Workload:
    # Separate streams, so changing one distribution leaves the other draws unchanged.
    p = _as_dist(prompt, "prompt").sample(len(arrival), np.random.default_rng([seed, 1]))
    o = _as_dist(output, "output").sample(len(arrival), np.random.default_rng([seed, 2]))
    return Workload(arrival, p, o, name)


def poisson(rate: float, n: int, prompt: int | LengthDist, output: int | LengthDist,
            seed: int = 0, name: str = "poisson") -> Workload:
    """``n`` requests arriving as a Poisson process of ``rate`` req/s (:func:`poisson_arrivals`,
    first at 0 s) with ``prompt`` and ``output`` lengths: an int (tokens, every request) or a
    :class:`LengthDist`. Arrivals draw from ``default_rng(seed)``, prompts from
    ``default_rng([seed, 1])``, outputs from ``default_rng([seed, 2])``.

    >>> poisson(rate=4.0, n=10_000, prompt=512, output=128, seed=0).rate   # about 4 req/s
    """
    return _with_lengths(poisson_arrivals(rate, n, seed), prompt, output, seed, name)


def gamma(rate: float, n: int, cv: float, prompt: int | LengthDist, output: int | LengthDist,
          seed: int = 0, name: str = "gamma") -> Workload:
    """Like :func:`poisson` with Gamma gaps of coefficient of variation ``cv`` (:func:`gamma_arrivals`)."""
    return _with_lengths(gamma_arrivals(rate, n, cv, seed), prompt, output, seed, name)


# ---------------------------------------------------------------- named workloads (trace statistics)
class LengthStats(NamedTuple):
    """Median, mean and 90th percentile of a trace's lengths (tokens)."""
    median: float
    mean: float
    p90: float


@dataclass(frozen=True)
class TraceInfo:
    """What pdlib keeps of one public trace: its ``file`` and ``source`` (origin and licence),
    ``rows``, mean arrival ``rate`` (req/s, ``(rows − 1) / (last − first timestamp)``; None when the
    trace has no timestamps), ``cv`` of its inter-arrival gaps, the published length statistics
    (``prompt_stats``, ``output_stats``) and the length distributions (``prompt``, ``output``:
    :class:`Empirical` through the trace's quantiles at :data:`TRACE_LEVELS`) and, for traces with
    prefix-block ids, ``block_reuse``: the fraction of prompt blocks whose id appeared earlier in the
    trace (the hit rate of an unbounded prefix cache)."""
    name: str
    file: str
    source: str
    rows: int
    rate: float | None
    cv: float | None
    prompt_stats: LengthStats
    output_stats: LengthStats
    prompt: Empirical
    output: Empirical
    block_reuse: float | None = None
    note: str = ""


#: Quantile levels at which the traces' lengths are stored (0 = min, 1 = max); dense in the upper
#: tail so the piecewise-linear distributions keep each trace's mean within ~5%.
TRACE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995,
                0.999, 1.0)

_VIDUR = "https://github.com/microsoft/vidur/tree/main/data/processed_traces"
_AZURE = ("Azure LLM inference trace 2023 (Azure public dataset, data CC-BY 4.0, "
          "https://github.com/Azure/AzurePublicDataset), as packaged in microsoft/vidur "
          f"data/processed_traces (MIT), {_VIDUR}")
_MOONCAKE = ("Kimi (Moonshot AI) trace released with the Mooncake FAST'25 paper, kvcache-ai/Mooncake "
             "FAST25-release/traces (Apache-2.0), "
             "https://github.com/kvcache-ai/Mooncake/tree/main/FAST25-release/traces")


def _trace(name, file, source, rows, rate, cv, prompt_stats, output_stats, prompt_q, output_q,
           block_reuse=None, note="") -> TraceInfo:
    return TraceInfo(name, file, source, rows, rate, cv, LengthStats(*prompt_stats),
                     LengthStats(*output_stats), Empirical(TRACE_LEVELS, prompt_q),
                     Empirical(TRACE_LEVELS, output_q), block_reuse, note)


# Numbers computed once from each file (prompt = num_prefill_tokens / input_length, output =
# num_decode_tokens / output_length): the quantile tuples are
# numpy.quantile(lengths, TRACE_LEVELS, method="inverted_cdf") (each one an observed length); the
# stats are median / mean (rounded) / P90 (method="inverted_cdf"); rate and cv (std/mean of the
# gaps between consecutive timestamps) from the sorted timestamps; block_reuse from hash_ids.
_TRACES: dict[str, TraceInfo] = {t.name: t for t in (
    _trace("azure-code", "splitwise_code.csv",
           f"{_AZURE}; coding service (the Splitwise paper's 'coding' trace)",
           8_819, 2.566, 13.15, (1469, 2048, 5194), (13, 28, 55),
           (3, 17, 75, 147, 385, 770, 1075, 1469, 1909, 2433, 3193, 5194, 7315, 7436, 7436, 7436, 7437, 7437),
           (6, 6, 6, 7, 8, 9, 11, 13, 16, 20, 29, 55, 90, 172, 252, 361, 831, 1899),
           note="very bursty: 17% of gaps are under 1 ms, the longest is 217 s (cv 13)"),
    _trace("azure-conv", "splitwise_conv.csv",
           f"{_AZURE}; conversation service (the Splitwise paper's 'conversation' trace)",
           19_366, 5.530, 1.094, (1020, 1155, 2735), (129, 211, 424),
           (2, 29, 181, 207, 387, 403, 703, 1020, 1071, 1130, 1315, 2735, 4083, 4098, 4142, 4831, 6212, 14050),
           (7, 16, 41, 54, 77, 91, 103, 129, 177, 384, 400, 424, 451, 540, 601, 644, 954, 1000)),
    _trace("sharegpt", "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
           "ShareGPT conversations of <= 8k tokens, Llama-2 tokenizer, as used by Sarathi-Serve: "
           "microsoft/sarathi-serve data/processed_traces (MIT), "
           "https://github.com/microsoft/sarathi-serve/tree/main/data/processed_traces",
           30_731, None, None, (1730, 2340, 5696), (415, 439, 834),
           (1, 12, 29, 74, 382, 777, 1203, 1730, 2401, 3235, 4278, 5696, 6563, 7164, 7434, 7622, 7855, 8141),
           (2, 6, 44, 84, 181, 271, 346, 415, 493, 581, 683, 834, 920, 975, 998, 1010, 1021, 1024),
           note="lengths only, no timestamps"),
    _trace("arxiv-summarization", "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
           f"arXiv summarization of <= 4k tokens, Llama-2 tokenizer: microsoft/vidur "
           f"data/processed_traces (MIT), {_VIDUR}",
           28_257, None, None, (2730, 2588, 3702), (167, 291, 372),
           (1, 73, 747, 1242, 1802, 2150, 2453, 2730, 2996, 3249, 3490, 3702, 3813, 3892, 3934, 3963, 4012, 4054),
           (5, 36, 60, 78, 104, 125, 145, 167, 192, 222, 268, 372, 737, 2775, 3273, 3583, 3845, 4056),
           note="lengths only, no timestamps"),
    _trace("mooncake-conversation", "mooncake_conversation_trace.jsonl", f"{_MOONCAKE}; conversation trace",
           12_031, 3.401, 3.03, (6909, 12035, 27367), (350, 343, 597),
           (891, 894, 901, 964, 1662, 3263, 4993, 6909, 9570, 13196, 17869, 27367, 39552, 66484, 85401,
            100886, 121301, 126195),
           (1, 3, 10, 24, 100, 213, 291, 350, 399, 447, 504, 597, 698, 893, 1120, 1570, 2000, 2000),
           block_reuse=0.366,
           note="timestamps come in batches about 3 s apart (90% of gaps are 0), hence cv 3"),
    _trace("mooncake-synthetic", "mooncake_synthetic_trace.jsonl", f"{_MOONCAKE}; synthetic long-context trace",
           3_993, 3.906, 1.011, (11587, 15325, 38615), (69, 149, 389),
           (13, 16, 22, 30, 88, 912, 4365, 11587, 16289, 19411, 28430, 38615, 49009, 56631, 66458, 76328,
            191374, 191378),
           (1, 2, 2, 4, 8, 16, 32, 69, 126, 211, 289, 389, 519, 693, 769, 782, 825, 893),
           block_reuse=0.640),
)}


def named_workloads() -> list[str]:
    """Names accepted by :func:`named` and :func:`trace_info`."""
    return list(_TRACES)


def trace_info(name: str) -> TraceInfo:
    """The stored statistics and source of trace ``name``; unknown name -> KeyError listing the names."""
    try:
        return _TRACES[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(_TRACES)}") from None


def named(name: str, n: int, rate: float | None = None, *, cv: float | str = 1.0,
          seed: int = 0) -> Workload:
    """``n`` synthetic requests with the prompt and output length distributions of trace ``name``
    (see :func:`named_workloads`; lengths drawn from :attr:`TraceInfo.prompt` / ``.output``).

    ``rate`` (req/s) defaults to the trace's own rate; traces without timestamps (``sharegpt``,
    ``arxiv-summarization``) need one. ``cv = 1`` gives Poisson arrivals (exactly
    :func:`poisson_arrivals`), any other number Gamma gaps with that coefficient of variation, and
    ``cv="trace"`` the trace's measured cv. Seeds as in :func:`poisson`."""
    info = trace_info(name)
    if rate is None:
        if info.rate is None:
            raise ValueError(f"workload {name!r} has no timestamps ({info.file} lists lengths only): "
                             f"pass rate= in req/s")
        rate = info.rate
    if cv == "trace":
        if info.cv is None:
            raise ValueError(f"workload {name!r} has no timestamps, so no measured cv: pass a number")
        cv = info.cv
    if isinstance(cv, str):
        raise ValueError(f"cv must be a number > 0 or 'trace', got {cv!r}")
    arrival = poisson_arrivals(rate, n, seed) if cv == 1 else gamma_arrivals(rate, n, cv, seed)
    return _with_lengths(arrival, info.prompt, info.output, seed, name)


# ---------------------------------------------------------------- trace loaders
# A row with 0 prompt or output tokens is kept and counted as 1 token: every served request
# produces its first token from the prefill, and dropping rows would change the arrival process.
# (None of the six traces has such a row; the clip is for other files in the same formats.)
def _clip_tokens(values, column: str, path) -> np.ndarray:
    a = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(a) | (a < 0) | (a != np.round(a)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{path}: column {column!r} must hold whole token counts >= 0; data row {i} "
                         f"has {values[i]!r}")
    return np.maximum(a, 1).astype(np.int64)


def _read_csv(path, columns: tuple[str, ...], kind: str) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; a {kind} needs "
                         f"{', '.join(columns)}; the file has {', '.join(map(str, df.columns))}")
    return df


def load_azure_csv(path: str | Path, name: str | None = None) -> Workload:
    """An Azure/Splitwise trace as packaged by Vidur: a CSV with columns ``arrived_at`` (seconds),
    ``num_prefill_tokens`` and ``num_decode_tokens``. Rows are sorted by arrival (stable) and
    replayed from 0 s (:func:`trace_arrivals`); 0-token entries count as 1 token."""
    cols = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
    df = _read_csv(path, cols, "Azure/Splitwise trace")
    t = pd.to_numeric(df["arrived_at"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise ValueError(f"{path}: column 'arrived_at' must hold seconds; data row {bad[0]} has "
                         f"{df['arrived_at'].iloc[bad[0]]!r}")
    p = _clip_tokens(df["num_prefill_tokens"].to_numpy(), "num_prefill_tokens", path)
    o = _clip_tokens(df["num_decode_tokens"].to_numpy(), "num_decode_tokens", path)
    order = np.argsort(t, kind="stable")
    return Workload(trace_arrivals(t[order]), p[order], o[order], name or Path(path).stem)


def load_mooncake_jsonl(path: str | Path, name: str | None = None) -> Workload:
    """A Mooncake trace: one JSON object per line with ``timestamp`` (milliseconds),
    ``input_length`` and ``output_length`` (tokens) and optionally ``hash_ids`` (one id per
    512-token prompt block; equal ids = shared prefix), which become ``prefix_blocks``. Rows are
    sorted by timestamp (stable) and replayed from 0 s; 0-token entries count as 1 token."""
    keys = ("timestamp", "input_length", "output_length")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
            missing = [k for k in keys if k not in rec]
            if missing:
                raise ValueError(f"{path}, line {lineno}: missing field(s) {', '.join(missing)}; a "
                                 f"Mooncake trace needs {', '.join(keys)} (and optionally hash_ids)")
            rows.append(rec)
    t = np.array([r["timestamp"] for r in rows], dtype=np.float64) / 1000.0
    p = _clip_tokens([r["input_length"] for r in rows], "input_length", path)
    o = _clip_tokens([r["output_length"] for r in rows], "output_length", path)
    order = np.argsort(t, kind="stable")
    blocks = None
    if any("hash_ids" in r for r in rows):
        blocks = tuple(tuple(rows[int(j)].get("hash_ids", ())) for j in order)
    return Workload(trace_arrivals(t[order]), p[order], o[order], name or Path(path).stem, blocks)


def load_lengths_csv(path: str | Path, rate: float, seed: int = 0, name: str | None = None) -> Workload:
    """A lengths-only trace (the ShareGPT and arXiv CSVs of Sarathi-Serve/Vidur: columns
    ``num_prefill_tokens``, ``num_decode_tokens``) in file order, arriving as a Poisson process of
    ``rate`` req/s (:func:`poisson_arrivals` with ``seed``); 0-token entries count as 1 token."""
    cols = ("num_prefill_tokens", "num_decode_tokens")
    df = _read_csv(path, cols, "lengths trace")
    p = _clip_tokens(df["num_prefill_tokens"].to_numpy(), "num_prefill_tokens", path)
    o = _clip_tokens(df["num_decode_tokens"].to_numpy(), "num_decode_tokens", path)
    if not len(df):
        raise ValueError(f"{path}: no rows")
    return Workload(poisson_arrivals(rate, len(df), seed), p, o, name or Path(path).stem)


# ---------------------------------------------------------------- prefix caching
#: Tokens per prefix-cache block id in the Mooncake traces: "hash_ids" holds one id per 512-token
#: block of the prompt (kvcache-ai/Mooncake FAST25-release/traces README; the traces' row lengths
#: confirm it: len(hash_ids) = ceil(input_length / 512) on every row).
MOONCAKE_BLOCK_TOKENS = 512


def _leading_run(blocks: Sequence[int], store) -> int:
    """How many of ``blocks``, counted from the first, are in ``store`` before one is missing."""
    k = 0
    for b in blocks:
        if b not in store:
            break
        k += 1
    return k


def prefix_hits(prefix_blocks: Sequence[Sequence[int]], block_tokens: int = MOONCAKE_BLOCK_TOKENS,
                cache_blocks: int | None = None, prompt=None) -> np.ndarray:
    """Prefix-cache hit tokens of each request (int64 array, in the given order = arrival order),
    replaying a shared KV store that keeps the blocks it has seen (Mooncake's global KV pool).

    Request i's hit is the longest run of its *leading* block ids already in the store when it
    arrives, times ``block_tokens``; capped at ``prompt[i] − 1`` when ``prompt`` is given (the last
    prompt token is always computed, and the last block may be partial). After the lookup, all of
    request i's blocks are stored (hits refreshed).

    ``cache_blocks``: store capacity in blocks (None: unbounded; 0: nothing is kept). When full,
    the least recently used block is evicted. The blocks of one request count as used at the same
    moment, and among them the one deepest in the prompt is evicted first (vLLM's tie-break), so a
    stored prefix loses its tail before its head: a request's blocks are touched from last to first.

    Example, ``cache_blocks=2``: ``[(1, 2), (1, 3), (2,)]`` hits ``[0, 1, 0]`` blocks: request 1
    finds block 1; afterwards the store holds 1 (newest) and 3, so block 2 was evicted.
    """
    if isinstance(block_tokens, bool) or not isinstance(block_tokens, (int, np.integer)) or block_tokens < 1:
        raise ValueError(f"block_tokens must be a positive integer (tokens per block), got {block_tokens!r}")
    if cache_blocks is not None and (isinstance(cache_blocks, bool) or
                                     not isinstance(cache_blocks, (int, np.integer)) or cache_blocks < 0):
        raise ValueError(f"cache_blocks must be None (unbounded) or an integer >= 0 blocks, got {cache_blocks!r}")
    n = len(prefix_blocks)
    if prompt is not None:
        prompt = _tokens(prompt, "prompt")
        if prompt.shape != (n,):
            raise ValueError(f"prompt must have one entry per request: got shape {prompt.shape} for {n} requests")
    hits = np.zeros(n, dtype=np.int64)
    store: OrderedDict = OrderedDict()                    # block id -> None, least recent first
    for i, blocks in enumerate(prefix_blocks):
        hits[i] = _leading_run(blocks, store)
        if cache_blocks is None:
            store.update(dict.fromkeys(blocks))
            continue
        for b in reversed(tuple(blocks)):                 # the leading block ends most recent
            store[b] = None
            store.move_to_end(b)
        while len(store) > cache_blocks:
            store.popitem(last=False)
    hits *= int(block_tokens)
    if prompt is not None:
        np.minimum(hits, prompt - 1, out=hits)
    return hits


def with_prefix_cache(w: Workload, block_tokens: int = MOONCAKE_BLOCK_TOKENS,
                      cache_blocks: int | None = None) -> Workload:
    """``w`` with ``cached`` set by :func:`prefix_hits` over its ``prefix_blocks`` (replayed in
    arrival order, capped at prompt − 1). The token hit rate is ``cached.sum() / prompt.sum()``.
    A workload without block ids raises ValueError (use :func:`with_cached_fraction`)."""
    if w.prefix_blocks is None:
        raise ValueError(f"workload {w.name!r} has no prefix_blocks (block ids, e.g. a Mooncake trace's "
                         f"hash_ids); use with_cached_fraction(w, fraction) for a synthetic hit rate")
    return w.with_cached(prefix_hits(w.prefix_blocks, block_tokens, cache_blocks, w.prompt))


def with_cached_fraction(w: Workload, fraction: float) -> Workload:
    """``w`` with a synthetic prefix-cache hit on every request: ``cached = min(floor(fraction ·
    prompt), prompt − 1)`` tokens, ``0 <= fraction <= 1`` (e.g. a shared system prompt)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must be a number in [0, 1] (share of each prompt already cached), "
                         f"got {fraction!r}")
    cached = np.minimum(np.floor(fraction * w.prompt).astype(np.int64), w.prompt - 1)
    return w.with_cached(cached)
