"""pdlib.progress: bars for interactive runs only; TQDM_DISABLE (the book build) turns every one off."""
import pytest

from pdlib import progress


@pytest.mark.parametrize("value, shown", [("", True), ("0", True), ("1", False), ("true", False),
                                          ("YES", False)])
def test_tqdm_disable_turns_bars_off(monkeypatch, value, shown):
    monkeypatch.setenv("TQDM_DISABLE", value)
    items = [1, 2, 3]
    assert progress.enabled(True) is shown and progress.enabled(False) is False
    wrapped = progress.over(items, True, "x")
    assert (wrapped is items) is (not shown) and list(wrapped) == items
    bar = progress.counter(3, True, "x")
    assert (bar is None) is (not shown)
    if bar is not None:
        bar.close()


def test_book_build_command_disables_bars():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "TQDM_DISABLE=1 .venv/bin/jupyter-book build" in readme
