"""pdlib: the library behind the book "Split or share?".

Roofline cost models (:mod:`pdlib.hardware`, :mod:`pdlib.models`, :mod:`pdlib.cost`), request
workloads (:mod:`pdlib.workload`), plots (:mod:`pdlib.viz`), interactive explorers
(:mod:`pdlib.widgets`) and classroom self-checks (:mod:`pdlib.exercises`).

``import pdlib`` never imports torch; the engine modules do, when imported themselves.
"""
from __future__ import annotations

import importlib

from . import cost, hardware, models
from .cost import CostModel, StepCost, kv_emission_rate, kv_transfer_time

__version__ = "0.1.0"

#: Where the book and pdlib live (the notebooks' first cell installs from here on Colab).
REPO_URL = "https://github.com/pdbook/split-or-share"

_LAZY = ("workload", "viz", "widgets", "exercises", "sim", "engine", "disagg", "planner", "reproduce",
         "verdict", "measurements")

__all__ = ["CostModel", "StepCost", "kv_transfer_time", "kv_emission_rate", "hardware", "models",
           "cost", "REPO_URL", "device_info", "simulate", *_LAZY]


def __getattr__(name: str):
    # Submodules load on first use, so `import pdlib` stays light (and torch-free).
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name == "simulate":
        return importlib.import_module(".sim", __name__).simulate
    raise AttributeError(f"module 'pdlib' has no attribute {name!r}")


def device_info() -> str:
    """One line naming the compute device a chapter will use: the CUDA GPU when torch sees one,
    otherwise the CPU (and whether torch is installed at all)."""
    import platform
    try:
        import torch
    except ImportError:
        return f"CPU ({platform.processor() or platform.machine()}); torch not installed"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"CUDA GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB (torch {torch.__version__})"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; torch {torch.__version__})"
