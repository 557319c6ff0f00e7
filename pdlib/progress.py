"""Progress bars for the sweeps that take more than a few seconds (tqdm, imported only when a bar
is shown, so a silent run needs nothing beyond numpy and pandas).

Bars belong to interactive runs. The book build sets ``TQDM_DISABLE=1`` (see the README), and then
no bar is made at all, so none is saved into a page: tqdm's own notebook bar ignores that variable.
"""
from __future__ import annotations

import os
from typing import Iterable


def enabled(show: bool) -> bool:
    """``show``, unless the environment variable ``TQDM_DISABLE`` is set to a true value
    ("1", "true", "yes"; any case)."""
    return bool(show) and os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("1", "true", "yes")


def over(items: Iterable, show: bool, desc: str) -> Iterable:
    """``items`` wrapped in a tqdm bar labelled ``desc`` when :func:`enabled` (``show``), else
    ``items`` unchanged."""
    if not enabled(show):
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, leave=False)


def counter(total: int, show: bool, desc: str):
    """A tqdm bar of ``total`` steps to ``update(1)`` by hand when :func:`enabled` (``show``), else
    None."""
    if not enabled(show):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)
