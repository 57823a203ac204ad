"""Latent cells drawn over images: an outlined cell, a heatmap of one value per cell.

Plain numpy on uint8 RGB arrays (no matplotlib figure per tile), so that a
strip of a dozen tiles is redrawn in milliseconds.

Examples
--------
>>> import numpy as np
>>> rgb = outline_box(np.zeros((6, 8, 3), np.uint8), (1, 2, 5, 7), width=1)
>>> int((rgb.any(axis=2)).sum())  # the border of a 4 x 5 box
14
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data import colors
from ..latents.cells import upsample_cells

__all__ = ["CELL_OUTLINE", "MOVEMENT_ALPHA", "MOVEMENT_CMAP", "movement_overlay", "outline_box"]

#: Colour of the outline of the selected cell (magenta: no class palette uses it for a common class).
CELL_OUTLINE: tuple[int, int, int] = (255, 0, 255)
#: The colormap of the cell-movement heatmap and its opacity over the image.
MOVEMENT_CMAP = "magma"
MOVEMENT_ALPHA = 0.6


def outline_box(
    rgb: np.ndarray, box: Sequence[int], colour: Sequence[int] = CELL_OUTLINE, width: int = 2
) -> np.ndarray:
    """A copy of ``rgb`` with the border of ``box`` painted ``width`` px thick, inside the box.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    box : (y0, x0, y1, x1)
        Ends exclusive (:func:`~latent_widgets.latents.cells.cell_box`).
    colour : (r, g, b)
    width : int
        Border thickness in px (thinner boxes are filled).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    y0, x0, y1, x1 = (int(v) for v in box)
    out = np.array(rgb, np.uint8, copy=True)
    border = np.zeros(out.shape[:2], bool)
    border[y0:y1, x0:x1] = True
    border[y0 + width : y1 - width, x0 + width : x1 - width] = False
    out[border] = np.asarray(colour, np.uint8)
    return out


def movement_overlay(
    rgb: np.ndarray,
    values: np.ndarray,
    *,
    vmax: float | None = None,
    alpha: float = MOVEMENT_ALPHA,
    cmap: str = MOVEMENT_CMAP,
) -> np.ndarray:
    """A heatmap of one value per latent cell blended over an image.

    Each cell's block of pixels (:func:`~latent_widgets.latents.cells.upsample_cells`)
    becomes ``(1 - alpha) * rgb + alpha * cmap(value / vmax)``, rounded.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    values : ndarray, shape (h, w)
        E.g. a cell's L2 movement along a path (:class:`~latent_widgets.latents.cells.CellMovement`).
    vmax : float, optional
        The value drawn at the top of the colormap (default: the largest value);
        values are clipped to ``0 .. vmax``.
    alpha : float
    cmap : str
        A matplotlib colormap.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Examples
    --------
    >>> out = movement_overlay(np.zeros((4, 4, 3), np.uint8), np.array([[0.0, 1.0]]), alpha=1.0)
    >>> out[0, 3].tolist() == colors.colormap_rgb("magma", [1.0])[0].tolist()
    True
    """
    rgb = np.asarray(rgb, np.uint8)
    values = np.asarray(values, np.float64)
    top = float(np.nanmax(values)) if vmax is None else float(vmax)
    t = np.clip(np.nan_to_num(values / top if top > 0 else np.zeros_like(values)), 0.0, 1.0)
    cell_rgb = colors.colormap_rgb(cmap, t.ravel()).reshape(*t.shape, 3).astype(np.float64)
    heat = upsample_cells(np.moveaxis(cell_rgb, -1, 0), rgb.shape[:2])  # (3, H, W)
    blended = (1.0 - alpha) * rgb.astype(np.float64) + alpha * np.moveaxis(heat, 0, -1)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
