"""The Colab install cell: every chapter starts with it, and on a machine without pdlib it installs
the repository (whose own dependencies leave Colab's torch alone) and nothing else."""
from __future__ import annotations

import builtins
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO = "https://github.com/pdbook/split-or-share"

# The standard first code cell, exactly as the team brief prescribes it.
INSTALL_CELL = '''\
# Make pdlib importable (on Colab: install it from the book's repository, leaving Colab's torch alone)
try:
    import pdlib
except ImportError:
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/pdbook/split-or-share"], check=True)
    import pdlib
print(pdlib.device_info())'''


def _first_code_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code")


def _run_cell(source: str, monkeypatch, pdlib_installed: bool) -> list:
    """Execute ``source`` with ``import pdlib`` failing until the (faked) pip install ran.
    Returns the recorded ``subprocess.run`` calls as (args, kwargs)."""
    calls: list = []
    state = {"installed": pdlib_installed}
    stub = types.SimpleNamespace(device_info=lambda: "stub device")
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "pdlib" or name.startswith("pdlib."):
            if not state["installed"]:
                raise ImportError("No module named 'pdlib'")
            return stub
        return real_import(name, *args, **kwargs)

    def fake_run(*args, **kwargs):
        calls.append((args, kwargs))
        state["installed"] = True
        return subprocess.CompletedProcess(args[0], 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    exec(compile(source, "<install cell>", "exec"),
         {"__builtins__": {**vars(builtins), "__import__": fake_import}})
    return calls


def test_chapters_exist():
    assert NOTEBOOKS, "no chapters found under notebooks/"
    assert NOTEBOOKS[0].name == "01_two_phases.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_the_install_cell(path):
    cell = _first_code_cell(path)
    assert cell.source.rstrip("\n") == INSTALL_CELL
    assert "hide-input" in cell.metadata.get("tags", [])


def test_install_cell_installs_the_repository_only(monkeypatch, capsys):
    calls = _run_cell(INSTALL_CELL, monkeypatch, pdlib_installed=False)
    assert calls == [(([sys.executable, "-m", "pip", "install", "-q", f"git+{REPO}"],), {"check": True})]
    cmd = " ".join(calls[0][0][0])
    assert "torch" not in cmd
    for flag in ("-U", "--upgrade", "--force-reinstall", "--no-deps", "-r"):
        assert flag not in calls[0][0][0]                # never touches what Colab has installed
    assert capsys.readouterr().out == "stub device\n"


def test_install_cell_installs_nothing_when_pdlib_is_there(monkeypatch, capsys):
    assert _run_cell(INSTALL_CELL, monkeypatch, pdlib_installed=True) == []
    assert capsys.readouterr().out == "stub device\n"


def test_repository_install_does_not_pull_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [d.lower() for d in project["dependencies"]]
    assert deps, "pyproject.toml lists no dependencies"
    for heavy in ("torch", "transformers", "safetensors", "jax", "tensorflow"):
        assert not any(d.startswith(heavy) for d in deps), f"{heavy} is a core dependency: {deps}"
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["engine"])


def test_install_url_is_the_books_repository_and_colab_is_configured():
    import pdlib

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPO == pdlib.REPO_URL
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert f"git+{config['repository']['url']}" in INSTALL_CELL
