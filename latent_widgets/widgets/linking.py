"""``link_explorers``: two explorers of the same data, selection and hover mirrored.

Two models side by side: select samples (lasso, brush, Python) or hover a
point in one explorer and the same samples are highlighted in the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["link_explorers"]


def link_explorers(a: Any, b: Any) -> Callable[[], None]:
    """Mirror the selection and the hovered sample between two explorers over the same dataset.

    Parameters
    ----------
    a, b : LatentExplorer
        (or anything with ``.session`` and ``.scatter``); their datasets
        must hold the same samples in the same order.

    Returns
    -------
    callable
        Call it to unlink.

    Raises
    ------
    ValueError
        The datasets differ in length or content.

    Examples
    --------
    >>> unlink = link_explorers(explorer_a, explorer_b)  # doctest: +SKIP
    >>> explorer_a.session.selection = [3, 4]; explorer_b.session.selection.tolist()  # doctest: +SKIP
    [3, 4]
    >>> unlink()  # doctest: +SKIP
    """
    from ..session.identity import data_hash

    da, db = a.session.dataset, b.session.dataset
    if len(da) != len(db):
        raise ValueError(
            f"cannot link explorers of different datasets: {len(da)} and {len(db)} samples "
            "(the selection is a list of sample indices: both must show the same samples)"
        )
    if da is not db and data_hash(da) != data_hash(db):
        raise ValueError(
            "cannot link explorers of different datasets: same length, different content "
            "(the selection is a list of sample indices: both must show the same samples in the same order)"
        )

    def mirror(src: Any, dst: Any) -> Callable[[], None]:
        # Not traitlets.link: it compares the arrays with `!=`. An equal selection is not set again
        # (the session's trait ignores it), so the two observers do not loop.
        def selection(change: Any) -> None:
            dst.session.selection = change["new"]

        def hovered(change: Any) -> None:
            dst.scatter.linked_hover = change["new"]

        src.session.observe(selection, "selection")
        src.scatter.observe(hovered, "hovered")

        def swapped(old: Any, new: Any) -> None:
            # The explorer swapped its map (samples <-> cells across the WebGL threshold): follow the new one.
            old.unobserve(hovered, "hovered")
            new.observe(hovered, "hovered")

        hooks = getattr(src, "map_swap_hooks", None)
        if hooks is not None:
            hooks.append(swapped)

        def undo() -> None:
            src.session.unobserve(selection, "selection")
            src.scatter.unobserve(hovered, "hovered")
            if hooks is not None and swapped in hooks:
                hooks.remove(swapped)

        return undo

    undo = [mirror(a, b), mirror(b, a)]

    def unlink() -> None:
        for fn in undo:
            fn()
        a.scatter.linked_hover = b.scatter.linked_hover = None

    return unlink
