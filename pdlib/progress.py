"""Progress bars for the sweeps that take more than a few seconds (tqdm, imported only when a bar
is shown, so a silent run needs nothing beyond numpy and pandas)."""
from __future__ import annotations

from typing import Iterable


def over(items: Iterable, show: bool, desc: str) -> Iterable:
    """``items`` wrapped in a tqdm bar labelled ``desc`` when ``show``, else ``items`` unchanged."""
    if not show:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, leave=False)


def counter(total: int, show: bool, desc: str):
    """A tqdm bar of ``total`` steps to ``update(1)`` by hand when ``show``, else None."""
    if not show:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)
