"""Fit the cost model's measured terms to measured times (numpy only).

:mod:`pdlib.cost` prices a step as ::

    time = overhead + item_seconds·k + n_layers·layer_overhead
           + max(B/η_mm(n) + H/η_mm(g) + U/η_F + A/η_A, M/η_W) + comm + context_seconds·ΣL
    η_mm(n) = η_F · n/(n + T½) · s/(s + s½)

where B, H, U, A are the step's layer-matmul, LM-head, MLA up-projection and attention seconds
at peak, M its memory seconds at full bandwidth, comm its all-reduce seconds, k its number of
items and ΣL its cached tokens (all read off :meth:`pdlib.CostModel.cost` of the same model with
every knob at its ideal). :func:`fit_terms` chooses the named terms minimising the squared
*relative* error ``Σ ((pred − t) / t)²`` over the measurements, each of which is one of

* ``Measurement.step(items, seconds)`` — one engine step of ``(new_tokens, context_tokens)`` items;
* ``Measurement.steps(list_of_items, seconds)`` — several steps whose times add up (a prompt
  prefilled in chunks);
* ``Measurement.layer(tokens, seconds)`` — one decoder layer's non-attention kernels at
  ``tokens`` tokens (:meth:`pdlib.CostModel.layer_kernel_time`; what Vidur profiles).

How: the time is linear in the four additive terms ``overhead``, ``layer_overhead``,
``context_seconds`` and ``item_seconds`` (design columns: steps, layers, cached tokens, items of
each measurement; a layer measurement has one layer and no step, item or cached token), so for any
value of the other five (the *shape* terms η_F, η_W, T½, s½, η_A) the best additive terms ≥ 0 are a
small non-negative least-squares problem solved exactly (every subset of the free ones, closed
form). Two additive columns are told apart only by measurements in which they do not move together:
``context_seconds`` and ``item_seconds`` need decode steps at more than one context for some batch
(a batch sweep at one context makes ΣL = L·k, and the least-squares split between them is
arbitrary); leave one out of ``terms`` when the measurements cannot separate them. The shape
terms are found by Levenberg–Marquardt on that reduced problem (η's through a logistic, T½ and s½ through a log, so every value stays in its
range), started from a fixed grid of points so the result is deterministic. A term left out of
``terms`` keeps the value the given cost model has.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import models as mdl
from .cost import CostModel

__all__ = ["Measurement", "fit_terms", "predict", "relative_errors", "SHAPE_TERMS", "ADDITIVE_TERMS",
           "TERMS", "fit_allreduce"]

#: Terms that set the roofs' shape (searched by Levenberg–Marquardt).
SHAPE_TERMS = ("flops_efficiency", "bw_efficiency", "gemm_half_tokens", "gemm_half_width",
               "attention_efficiency")
#: Terms the time is linear in (solved exactly, ≥ 0): seconds per step, per layer, per cached token,
#: per item (the columns of the additive design, in this order).
ADDITIVE_TERMS = ("overhead", "layer_overhead", "context_seconds", "item_seconds")
#: Every term :func:`fit_terms` can fit.
TERMS = SHAPE_TERMS + ADDITIVE_TERMS

_HALF_RANGE = (1e-6, 1e6)       # the range T½ (tokens) and s½ (elements) are searched in


@dataclass(frozen=True)
class Measurement:
    """One measured time: ``kind`` "step" (``steps`` holds one step), "steps" (several steps whose
    times add up) or "layer" (one decoder layer's non-attention kernels at ``tokens`` tokens);
    ``seconds`` > 0. Build with :meth:`step`, :meth:`steps` or :meth:`layer`."""
    kind: str
    seconds: float
    steps: tuple = ()
    tokens: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("step", "steps", "layer"):
            raise ValueError(f"kind must be 'step', 'steps' or 'layer', got {self.kind!r}")
        if not (np.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"seconds must be > 0, got {self.seconds!r}")
        if self.kind == "layer" and self.tokens < 1:
            raise ValueError(f"a layer measurement needs tokens >= 1, got {self.tokens!r}")
        if self.kind != "layer" and not self.steps:
            raise ValueError("a step measurement needs at least one step of items")

    @classmethod
    def step(cls, items, seconds: float) -> "Measurement":
        return cls("step", float(seconds), (_items(items),))

    @classmethod
    def steps(cls, steps, seconds: float) -> "Measurement":
        return cls("steps", float(seconds), tuple(_items(s) for s in steps))

    @classmethod
    def layer(cls, tokens: int, seconds: float) -> "Measurement":
        return cls("layer", float(seconds), (), int(tokens))

    def predict(self, cm: CostModel) -> float:
        """Seconds ``cm`` predicts for this measurement."""
        if self.kind == "layer":
            return float(cm.layer_kernel_time(self.tokens))
        return float(sum(cm.step(items).time for items in self.steps))


def _items(items) -> tuple:
    out = tuple((int(n), int(L)) for n, L in items)
    if not out:
        raise ValueError("a step needs at least one (new_tokens, context_tokens) item")
    return out


def predict(cm: CostModel, measurements: Sequence[Measurement]) -> np.ndarray:
    """Predicted seconds of each measurement."""
    return np.array([m.predict(cm) for m in measurements])


def relative_errors(cm: CostModel, measurements: Sequence[Measurement]) -> np.ndarray:
    """Signed relative errors ``(predicted − measured) / measured``."""
    t = np.array([m.seconds for m in measurements])
    return predict(cm, measurements) / t - 1.0


# ---------------------------------------------------------------------- features
def _ideal(cm: CostModel) -> CostModel:
    return cm.with_(flops_efficiency=1.0, bw_efficiency=1.0, overhead=0.0, layer_overhead=0.0,
                    gemm_half_tokens=0.0, gemm_half_width=0.0, attention_efficiency=None,
                    context_seconds=0.0, item_seconds=0.0)


def _step_features(ideal: CostModel, items) -> np.ndarray:
    """[B, H, U, A, M, comm, n, g, layers, ΣL] of one step (seconds at peak; n, g tokens/rows)."""
    a = np.asarray(items, dtype=np.float64)
    n, L = a[:, 0], a[:, 1]
    pairs = mdl.attention_pairs(n, L, ideal.model.sliding_window)
    single = n == 1
    k, T, SL, P = len(a), n.sum(), L.sum(), pairs.sum()
    d, c = pairs[single].sum(), L[~single].sum()
    full = ideal.cost(k, T, SL, P, k, decode_pairs=d, chunk_context=c)
    no_attn = ideal.cost(k, T, SL, 0.0, k, decode_pairs=0.0, chunk_context=c).compute_time
    no_head = ideal.cost(k, T, SL, 0.0, 0, decode_pairs=0.0, chunk_context=c).compute_time
    body = ideal.cost(k, T, SL, 0.0, 0, decode_pairs=0.0, chunk_context=0.0).compute_time
    return np.array([body, no_attn - no_head, no_head - body, full.compute_time - no_attn,
                     full.memory_time, full.comm_time, T, k, ideal.model.n_layers, SL])


def _layer_features(ideal: CostModel, tokens: int) -> np.ndarray:
    """[B, M, n] of one decoder layer at ``tokens`` tokens (seconds at peak), as
    :meth:`CostModel.layer_kernel_time` prices it."""
    m, tp = ideal.model, ideal.tp
    per = m.matmul_params / m.n_layers
    B = 2.0 * per * tokens / (tp * ideal.matmul_peak)
    M = ((per * mdl.dtype_bytes(ideal.dtype) + m.activation_bytes_per_token(ideal.dtype) / m.n_layers * tokens)
         / (tp * ideal.gpu.mem_bw))
    return np.array([B, M, float(tokens)])


class _Problem:
    """The measurements as arrays, and the model's prediction for any term values."""

    def __init__(self, cm: CostModel, measurements: Sequence[Measurement]) -> None:
        ideal = _ideal(cm)
        self.s = cm.model.hidden / cm.tp
        self.t = np.array([m.seconds for m in measurements], dtype=np.float64)
        steps, owner, layers, lowner = [], [], [], []
        for i, m in enumerate(measurements):
            if m.kind == "layer":
                layers.append(_layer_features(ideal, m.tokens))
                lowner.append(i)
            else:
                for items in m.steps:
                    steps.append(_step_features(ideal, items))
                    owner.append(i)
        self.S = np.array(steps).reshape(-1, 10)
        self.owner = np.array(owner, dtype=np.int64)
        self.Lf = np.array(layers).reshape(-1, 3)
        self.lowner = np.array(lowner, dtype=np.int64)
        N = len(self.t)
        # additive design (ADDITIVE_TERMS): [steps, layers (per layer of every step; 1 per layer
        # measurement), ΣL, items]
        X = np.zeros((N, 4))
        np.add.at(X[:, 0], self.owner, 1.0)
        np.add.at(X[:, 1], self.owner, self.S[:, 8])
        np.add.at(X[:, 2], self.owner, self.S[:, 9])
        np.add.at(X[:, 3], self.owner, self.S[:, 7])
        np.add.at(X[:, 1], self.lowner, 1.0)
        self.X = X

    def shape_part(self, eF, eW, th, sh, eA) -> np.ndarray:
        """Seconds of each measurement without the additive terms."""
        out = np.zeros(len(self.t))
        wide = self.s / (self.s + sh)
        if len(self.S):
            B, H, U, A, M, comm, n, g = (self.S[:, j] for j in range(8))
            eta = lambda x: eF * x / (x + th) * wide  # noqa: E731
            compute = B / eta(np.maximum(n, 1.0)) + H / eta(np.maximum(g, 1.0)) + U / eF + A / eA
            np.add.at(out, self.owner, np.maximum(compute, M / eW) + comm)
        if len(self.Lf):
            B, M, n = self.Lf[:, 0], self.Lf[:, 1], self.Lf[:, 2]
            np.add.at(out, self.lowner, np.maximum(B / (eF * n / (n + th) * wide), M / eW))
        return out


def _nnls_small(a: np.ndarray, X: np.ndarray, t: np.ndarray, free: Sequence[int], fixed: np.ndarray):
    """Best β ≥ 0 on the ``free`` columns (others at ``fixed``) for Σ((a + Xβ − t)/t)²: every subset
    of the free columns solved in closed form, the best feasible one kept."""
    base = a + X @ fixed
    w = 1.0 / t
    best_beta, best_err = fixed.copy(), np.sum(((base - t) * w) ** 2)
    for k in range(1, len(free) + 1):
        for cols in itertools.combinations(free, k):
            A = X[:, cols] * w[:, None]
            b = (t - base) * w
            sol, *_ = np.linalg.lstsq(A, b, rcond=None)
            if np.any(sol < 0):
                continue
            beta = fixed.copy()
            beta[list(cols)] = sol
            err = np.sum(((base + X[:, list(cols)] @ sol - t) * w) ** 2)
            if err < best_err:
                best_beta, best_err = beta, err
    return best_beta, best_err


def fit_terms(cost_model: CostModel, measurements: Sequence[Measurement],
              terms: Sequence[str] = TERMS, calibration: str | None = None) -> CostModel:
    """``cost_model`` with the named ``terms`` (see :data:`TERMS`) fitted to ``measurements``
    (:class:`Measurement`), minimising Σ((pred − t)/t)² (module docstring). Terms not named keep
    ``cost_model``'s values; the all-reduce, dtype, tp and model are the cost model's. Raises
    ValueError for an unknown term (listing the allowed ones) or when there are fewer measurements
    than terms. ``calibration``: the note the result carries (default: the cost model's)."""
    unknown = [x for x in terms if x not in TERMS]
    if unknown:
        raise ValueError(f"unknown term(s) {unknown}; allowed: {', '.join(TERMS)}")
    if len(measurements) < len(terms):
        raise ValueError(f"{len(measurements)} measurements cannot fit {len(terms)} terms")
    out = _fit_problem(_Problem(cost_model, measurements), cost_model, terms)
    if calibration is not None:
        out["calibration"] = calibration
    return cost_model.with_(**out)


def _fit_problem(prob, cm: CostModel, terms: Sequence[str]) -> dict:
    """The fitted values of ``terms`` for a problem (anything with ``t``, ``X`` and
    ``shape_part``), starting from and defaulting to ``cm``'s values."""
    eA0 = cm.flops_efficiency if cm.attention_efficiency is None else cm.attention_efficiency
    start = {"flops_efficiency": cm.flops_efficiency, "bw_efficiency": cm.bw_efficiency,
             "gemm_half_tokens": cm.gemm_half_tokens, "gemm_half_width": cm.gemm_half_width,
             "attention_efficiency": eA0}
    shape_free = [x for x in SHAPE_TERMS if x in terms]
    add_free = [ADDITIVE_TERMS.index(x) for x in ADDITIVE_TERMS if x in terms]
    fixed_beta = np.array([getattr(cm, k) for k in ADDITIVE_TERMS], dtype=np.float64)
    attention_tied = "attention_efficiency" not in terms and cm.attention_efficiency is None

    def unpack(u: np.ndarray) -> dict:
        v = dict(start)
        for name, x in zip(shape_free, u):
            if name.endswith("efficiency"):
                v[name] = float(1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0))))
            else:
                v[name] = float(np.exp(np.clip(x, *np.log(_HALF_RANGE))))
        if attention_tied:
            v["attention_efficiency"] = v["flops_efficiency"]
        return v

    def residual(u: np.ndarray):
        v = unpack(u)
        a = prob.shape_part(v["flops_efficiency"], v["bw_efficiency"], v["gemm_half_tokens"],
                            v["gemm_half_width"], v["attention_efficiency"])
        beta, _ = _nnls_small(a, prob.X, prob.t, add_free, fixed_beta)
        return (a + prob.X @ beta) / prob.t - 1.0, beta

    def to_u(name, value):
        if name.endswith("efficiency"):
            value = min(max(value, 1e-4), 1 - 1e-4)
            return np.log(value / (1 - value))
        return np.log(np.clip(value, *_HALF_RANGE))

    grids = {"flops_efficiency": (0.5, 0.8), "bw_efficiency": (0.5, 0.9), "gemm_half_tokens": (10.0, 200.0),
             "gemm_half_width": (30.0, 300.0), "attention_efficiency": (0.2, 0.6)}
    best = None
    for combo in itertools.product(*(grids[x] for x in shape_free)):
        u = np.array([to_u(x, v) for x, v in zip(shape_free, combo)], dtype=np.float64)
        u, err = _levenberg_marquardt(lambda z: residual(z)[0], u)
        if best is None or err < best[1] - 1e-15:
            best = (u, err)
    v = unpack(best[0])
    _, beta = residual(best[0])
    out = {k: v[k] for k in shape_free}
    for j, name in enumerate(ADDITIVE_TERMS):
        if name in terms:
            out[name] = float(beta[j])
    return out


def _levenberg_marquardt(f, u: np.ndarray, iters: int = 100, tol: float = 1e-12):
    """Minimise Σ f(u)² from ``u`` (forward-difference Jacobian, adaptive damping)."""
    if u.size == 0:
        r = f(u)
        return u, float(r @ r)
    r = f(u)
    err = float(r @ r)
    lam = 1e-2
    for _ in range(iters):
        J = np.empty((r.size, u.size))
        for j in range(u.size):
            h = 1e-6 * max(1.0, abs(u[j]))
            du = u.copy()
            du[j] += h
            J[:, j] = (f(du) - r) / h
        g = J.T @ r
        Hm = J.T @ J
        improved = False
        for _ in range(20):
            step = np.linalg.solve(Hm + lam * np.diag(np.diag(Hm) + 1e-12), -g)
            un = u + step
            rn = f(un)
            en = float(rn @ rn)
            if en < err:
                improved = True
                done = err - en < tol * max(err, 1e-30)
                u, r, err = un, rn, en
                lam = max(lam / 3, 1e-9)
                break
            lam *= 4
        if not improved or done:
            break
    return u, err


# ---------------------------------------------------------------------- collectives
def fit_allreduce(nbytes, seconds) -> tuple[float, float]:
    """``(latency_s, bandwidth_Bps)`` of ``seconds ≈ latency + nbytes / bandwidth`` minimising the
    squared relative error over measured all-reduces (closed-form weighted least squares in
    ``(latency, 1/bandwidth)``, both kept ≥ 0; a zero slope raises ValueError)."""
    s = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    if s.shape != t.shape or s.size < 2 or np.any(t <= 0) or np.any(s < 0):
        raise ValueError("need at least two (bytes >= 0, seconds > 0) pairs of the same length")
    X = np.stack([np.ones_like(s), s], axis=1)
    beta, _ = _nnls_small(np.zeros_like(t), X, t, [0, 1], np.zeros(2))
    if beta[1] <= 0:
        raise ValueError("the all-reduce times do not grow with the message size: no bandwidth to fit")
    return float(beta[0]), float(1.0 / beta[1])
