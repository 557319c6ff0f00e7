"""Self-checks for the chapters' exercises.

Each exercise is a function registered under an id such as ``"ch01.ridge_h100"``; it computes the
expected answer with pdlib (never a typed-in number) and returns an :class:`Expected`. Readers call
``check(id, answer)`` and get feedback that says what was expected, how far off the answer is, and
a hint, never just "wrong"::

    from pdlib.exercises import check
    check("ch01.ridge_h100", 295)

An unanswered exercise (``answer=None`` or ``...``) reports "not answered yet" instead of failing,
so a notebook with blank answers still runs top to bottom. Every call is recorded in
:func:`results`, which a grading script can read after executing a notebook.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Expected", "Feedback", "check", "exercise", "describe", "ids", "results", "reset"]


@dataclass(frozen=True)
class Expected:
    """What an exercise expects: a number with a relative tolerance, or an exact value."""

    value: Any
    rel: float = 0.02                 # relative tolerance for numbers
    unit: str = ""                    # shown in feedback ("ms", "GB", "FLOP/B")
    hint: str = ""                    # shown when the answer is off
    choices: tuple = ()               # for multiple choice: the allowed answers


@dataclass(frozen=True)
class Feedback:
    """Result of one check: ``ok`` and a message meant for the reader."""

    exercise: str
    ok: bool | None                   # None: not answered yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.ok)

    def __str__(self) -> str:
        mark = {True: "✅", False: "❌", None: "✍️"}[self.ok]
        return f"{mark} {self.exercise}: {self.message}"

    def _repr_markdown_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return str(self)


@dataclass
class _Exercise:
    id: str
    question: str
    expected: Callable[[], Expected]


_REGISTRY: dict[str, _Exercise] = {}
_RESULTS: list[Feedback] = []


def exercise(id: str, question: str):
    """Decorator registering ``fn() -> Expected`` as the checker of exercise ``id``."""
    def wrap(fn: Callable[[], Expected]):
        _REGISTRY[id] = _Exercise(id, question, fn)
        return fn
    return wrap


def _load_all() -> None:
    # every chNN module of this package registers its chapter's exercises when imported
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{mod.name}")


def ids() -> list[str]:
    """Ids of all registered exercises."""
    _load_all()
    return sorted(_REGISTRY)


def describe(id: str) -> str:
    """The question of exercise ``id``."""
    return _lookup(id).question


def _lookup(id: str) -> _Exercise:
    _load_all()
    if id not in _REGISTRY:
        raise KeyError(f"unknown exercise {id!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[id]


def _fmt(x: float, unit: str) -> str:
    return f"{x:.4g}{' ' + unit if unit else ''}"


def _judge(exp: Expected, answer: Any) -> tuple[bool, str]:
    if exp.choices:
        norm = str(answer).strip().lower()
        allowed = [str(c).lower() for c in exp.choices]
        if norm not in allowed:
            return False, (f"{answer!r} is not one of the allowed answers "
                           f"{', '.join(repr(c) for c in exp.choices)}.")
        if norm == str(exp.value).lower():
            return True, f"correct: {exp.value!r}."
        return False, f"you chose {answer!r}; that is not it."
    if isinstance(exp.value, (int, float)):
        try:
            a = float(answer)
        except (TypeError, ValueError):
            return False, f"expected a number ({exp.unit or 'no unit'}), got {answer!r}."
        want = float(exp.value)
        if math.isclose(a, want, rel_tol=exp.rel, abs_tol=1e-12):
            return True, f"correct: {_fmt(a, exp.unit)} (expected {_fmt(want, exp.unit)} ± {exp.rel:.0%})."
        ratio = a / want if want else math.inf
        hint = ""
        for factor, what in ((8, "bits vs bytes?"), (1e3, "a unit prefix (ms vs s, GB vs MB)?"),
                             (1e6, "a unit prefix?"), (2, "a factor of 2 (K and V? 2 FLOPs per MAC?)")):
            if math.isclose(ratio, factor, rel_tol=0.05) or math.isclose(ratio, 1 / factor, rel_tol=0.05):
                hint = f" Off by a factor of {factor:g}: {what}"
                break
        return False, (f"you gave {_fmt(a, exp.unit)}, expected {_fmt(want, exp.unit)} ± {exp.rel:.0%} "
                       f"(yours is {ratio:.3g}× that).{hint}")
    if answer == exp.value:
        return True, f"correct: {exp.value!r}."
    return False, f"expected {exp.value!r}, got {answer!r}."


def check(id: str, answer: Any) -> Feedback:
    """Check ``answer`` to exercise ``id`` and return (and record) feedback for the reader."""
    ex = _lookup(id)
    if answer is None or answer is Ellipsis:
        fb = Feedback(id, None, f"not answered yet. {ex.question}")
    else:
        exp = ex.expected()
        ok, msg = _judge(exp, answer)
        if not ok and exp.hint:
            msg += f" Hint: {exp.hint}"
        fb = Feedback(id, ok, msg)
    _RESULTS.append(fb)
    return fb


def results() -> list[Feedback]:
    """Every feedback given in this Python session, in order (for graders)."""
    return list(_RESULTS)


def reset() -> None:
    """Forget recorded results."""
    _RESULTS.clear()
