"""`import pdlib` and every torch-free module must not import torch: the cost-model, simulator
and plotting chapters run where torch is absent. Only pdlib.engine (and what builds on it) and
the microbenchmark's timing functions import torch, lazily."""
import pkgutil
import subprocess
import sys

import pdlib

TORCH_MODULES = {"pdlib.engine", "pdlib.disagg", "pdlib.calibrate"}


def test_no_torch_without_the_engine():
    mods = sorted(m.name for m in pkgutil.walk_packages(pdlib.__path__, "pdlib.")
                  if not any(m.name == t or m.name.startswith(t + ".") for t in TORCH_MODULES))
    assert {"pdlib.cost", "pdlib.sim", "pdlib.workload", "pdlib.microbench", "pdlib.widgets"} <= set(mods)
    code = (f"import sys, importlib\nfor m in {mods!r}: importlib.import_module(m)\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
