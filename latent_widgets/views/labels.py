"""Where the map's index labels go: their screen boxes, and which of them fit without overlapping.

Pure geometry in screen pixels (y down), the same for the SVG and WebGL maps.

Examples
--------
>>> import numpy as np
>>> b = label_boxes(np.array([[0, 0], [3, 2], [100, 0]]), ["10", "11", "12"])
>>> place_labels(b, forced=[1]).tolist()
[False, True, True]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["label_boxes", "place_labels"]

# Index labels: bqplot draws them in the SVG's 11px sans-serif, offset
# (4, 4) px from the point (right of it, baseline below its centre).
# Chromium's box of "21" there is 14 x 13 px: the estimate must not be smaller.
_LABEL_CHAR_PX = 7.0
_LABEL_HEIGHT_PX = 13.0
_LABEL_OFFSET_PX = (4.0, 4.0)


def label_boxes(xy: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Screen boxes ``(x0, y0, x1, y1)`` of the index labels of points at ``xy`` (px, y down)."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    widths = np.array([_LABEL_CHAR_PX * len(t) + 1.0 for t in texts], np.float64).reshape(-1)
    x0 = xy[:, 0] + _LABEL_OFFSET_PX[0]
    y1 = xy[:, 1] + _LABEL_OFFSET_PX[1] + 3.0  # descent below the baseline
    return np.stack([x0, y1 - _LABEL_HEIGHT_PX, x0 + widths, y1], axis=1)


def place_labels(
    boxes: np.ndarray,
    forced: Sequence[int] | np.ndarray = (),
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Which labels to show: a greedy pass that keeps labels that overlap none kept before.

    Forced labels (the selected point, the endpoints, the path's
    neighbours) are always shown and placed first; then the others, in
    index order, each only if its box overlaps no shown box. A spatial grid
    of cells as large as the largest box keeps it linear in the number of
    points (2000 points take a few ms).

    Parameters
    ----------
    boxes : ndarray (N, 4)
        ``x0, y0, x1, y1`` of each label in screen px (:func:`label_boxes`).
    forced : sequence of int
        Labels shown whatever they overlap.
    visible : ndarray of bool (N,), optional
        Points inside the plot area; labels of the others are not shown
        (forced ones are).

    Returns
    -------
    ndarray of bool (N,)

    Examples
    --------
    >>> b = label_boxes(np.array([[0, 0], [3, 2], [100, 0]]), ["10", "11", "12"])
    >>> place_labels(b, forced=[1]).tolist()
    [False, True, True]
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    shown = np.zeros(n, bool)
    if n == 0:
        return shown
    cw = max(float(np.max(boxes[:, 2] - boxes[:, 0])), 1.0)
    ch = max(float(np.max(boxes[:, 3] - boxes[:, 1])), 1.0)
    cells: dict[tuple[int, int], list[int]] = {}
    forced_idx = [int(i) for i in dict.fromkeys(int(i) for i in np.asarray(forced, int).reshape(-1)) if 0 <= i < n]

    def add(i: int) -> None:
        shown[i] = True
        cells.setdefault((int(boxes[i, 0] // cw), int(boxes[i, 1] // ch)), []).append(i)

    def free(i: int) -> bool:
        x0, y0, x1, y1 = boxes[i]
        cx, cy = int(x0 // cw), int(y0 // ch)
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                for j in cells.get((gx, gy), ()):
                    b = boxes[j]
                    if x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1:
                        return False
        return True

    for i in forced_idx:
        add(i)
    candidates = np.flatnonzero(~shown if visible is None else (~shown & np.asarray(visible, bool)))
    finite = np.isfinite(boxes[candidates]).all(axis=1)
    for i in candidates[finite].tolist():
        if free(i):
            add(i)
    return shown
