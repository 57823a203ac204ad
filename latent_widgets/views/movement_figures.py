"""Static matplotlib figures of how a path's latent cells move, for papers and reports.

- :func:`cell_movement_figure`: how much each latent cell moves along an
  interpolation path, as a heatmap over the image (summed or one step);
- :func:`cell_movement_strip`: one such heatmap per step, in a row, on one
  colour scale.

Like :mod:`latent_widgets.views.figures`, they are built on
:class:`~latent_widgets.views.figures.PaperFigure` without ``pyplot``.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.latents.cells import cell_movement
>>> fig = cell_movement_strip(cell_movement(np.zeros((3, 2, 2, 4))))
>>> len(fig.axes)  # two steps and the colour bar
3
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..latents import cells
from . import render
from .figures import PaperFigure

__all__ = ["cell_movement_figure", "cell_movement_strip"]

# Above this many cells the per-cell numbers no longer fit in the cells.
_ANNOTATE_LIMIT = 64


def _movement_values(movement: Any, step: int | None) -> tuple[np.ndarray, str]:
    """The (h, w) values to draw, and what they are, from a CellMovement or an array."""
    if isinstance(movement, cells.CellMovement):
        if step is None:
            return np.asarray(movement.total, float), "summed L2 movement per cell"
        per_step = movement.per_step
    else:
        arr = np.asarray(movement, dtype=float)
        if arr.ndim == 2 and step is None:
            return arr, "L2 movement per cell"
        if arr.ndim != 3:
            raise ValueError(
                f"movement must be a CellMovement, an (h, w) grid or (steps, h, w) per-step grids, got {arr.shape}"
            )
        if step is None:
            return arr.sum(axis=0), "summed L2 movement per cell"
        per_step = arr
    n = len(per_step)
    if not -n <= int(step) < n:
        raise IndexError(f"step {step} is outside the path's {n} steps (0..{n - 1})")
    s = int(step) % n
    return np.asarray(per_step[s], float), f"L2 movement per cell, step {s}→{s + 1}"


def cell_movement_figure(
    image: np.ndarray | None,
    movement: Any,
    *,
    step: int | None = None,
    ax: Any = None,
    alpha: float = 0.5,
    vmax: float | None = None,
    cmap: str = "magma",
    colorbar: bool = True,
    annotate: bool | None = None,
    title: str | None = None,
) -> Figure:
    """How much each latent cell moves, as a heatmap upsampled over the image.

    Each cell's value covers exactly the pixels the cell covers
    (:func:`latent_widgets.latents.cells.upsample_cells`), so the heatmap lines up
    with the image regions whose classes the cells carry.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) or (H, W), or None
        Drawn under the heatmap (e.g. the path's start image); ``None`` draws
        the heatmap alone, one square per cell.
    movement : CellMovement or ndarray
        From :func:`latent_widgets.latents.cells.cell_movement`, an ``(h, w)`` grid of
        values, or ``(steps, h, w)`` per-step grids.
    step : int, optional
        Draw the movement from step ``step`` to ``step + 1``; default the
        sum over the path.
    ax : matplotlib Axes, optional
        Draw into it (its figure is returned); default a new figure.
    alpha : float
        Opacity of the heatmap over the image.
    vmax : float, optional
        Top of the colour scale (share it between panels to compare them);
        default the largest value drawn. The scale starts at 0.
    cmap : str
        A matplotlib colour map.
    colorbar : bool
        Add a colour bar beside the axes.
    annotate : bool, optional
        Write each cell's value in it; default when the grid has at most 64
        cells.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from latent_widgets.latents.cells import cell_movement
    >>> z = np.random.default_rng(0).normal(size=(4, 3, 4, 8))
    >>> fig = cell_movement_figure(np.zeros((24, 32, 3)), cell_movement(z))
    >>> len(fig.axes), len(fig.axes[0].texts)  # the image axes and its colour bar; a number per cell
    (2, 12)
    """
    values, what = _movement_values(movement, step)
    if ax is None:
        fig: Any = PaperFigure(figsize=(3.6, 2.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    h, w = values.shape
    if image is not None:
        pixels = np.asarray(image)
        size = pixels.shape[:2]
        ax.imshow(render.as_uint8(pixels) if pixels.ndim == 3 else pixels, cmap="gray", interpolation="nearest")
        heat = cells.upsample_cells(values, size)
    else:
        size = (h, w)
        heat = values
    top = float(np.nanmax(values)) if vmax is None else float(vmax)
    im = ax.imshow(
        heat,
        cmap=cmap,
        vmin=0.0,
        vmax=top if top > 0 else 1.0,
        alpha=alpha if image is not None else 1.0,
        interpolation="nearest",
    )
    if annotate is None:
        annotate = h * w <= _ANNOTATE_LIMIT
    if annotate:
        for r in range(h):
            for c in range(w):
                y0, x0, y1, x1 = cells.cell_box((h, w), size, r, c)
                v = values[r, c]
                light = np.isfinite(v) and top > 0 and v / top > 0.6
                ax.text(
                    (x0 + x1 - 1) / 2,
                    (y0 + y1 - 1) / 2,
                    f"{v:.3g}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if light else "white",
                )
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        fig.colorbar(im, ax=ax, label=what, shrink=0.9)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def cell_movement_strip(
    movement: Any,
    *,
    backgrounds: np.ndarray | None = None,
    alphas: Sequence[float] | np.ndarray | None = None,
    alpha: float = 0.5,
    fig: Any = None,
    cmap: str = "magma",
    annotate: bool | None = None,
    title: str | None = None,
    tile_width: float = 1.1,
) -> Figure:
    """One cell-movement heatmap per step of a path, in a row, on one colour scale.

    Parameters
    ----------
    movement : CellMovement or ndarray, shape (S - 1, h, w)
        Per-step movement (:func:`latent_widgets.latents.cells.cell_movement`).
    backgrounds : ndarray, optional
        Drawn under the heatmaps: one image ``(H, W, 3)`` or ``(H, W)`` for
        every tile, or one per step ``(S - 1, H, W, 3)`` (e.g. the colourised decoded mask
        each step lands on); default the heatmaps alone.
    alphas : sequence of float, length S, optional
        The path's interpolation weights, for the captions
        (``α 0.00→0.09``); default the step numbers.
    alpha : float
        Opacity of the heatmaps over the backgrounds.
    fig : Figure or SubFigure, optional
        Draw into it (e.g. one of ``fig.subfigures``); default a new figure.
    annotate : bool, optional
        Write each cell's value; default when the grid has at most 64 cells.
    title, tile_width : optional

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into (the parent figure of a subfigure).

    Examples
    --------
    >>> from latent_widgets.latents.cells import cell_movement
    >>> m = cell_movement(np.random.default_rng(0).normal(size=(4, 2, 3, 5)))
    >>> fig = cell_movement_strip(m, alphas=np.linspace(0, 1, 4))
    >>> [ax.get_xlabel() for ax in fig.axes[:3]]
    ['α 0.00→0.33', 'α 0.33→0.67', 'α 0.67→1.00']
    """
    per_step = np.asarray(movement.per_step if isinstance(movement, cells.CellMovement) else movement, float)
    if per_step.ndim != 3:
        raise ValueError(f"per-step movement must have shape (steps, h, w), got {per_step.shape}")
    n, h, w = per_step.shape
    if alphas is not None and len(alphas) != n + 1:
        raise ValueError(f"got {len(alphas)} alphas for a path of {n + 1} steps ({n} moves)")
    bg = None if backgrounds is None else np.asarray(backgrounds)
    if bg is not None and bg.ndim == 4 and len(bg) != n:
        raise ValueError(f"got {len(bg)} backgrounds for {n} moves; pass one image or one per move")
    if fig is None:
        hh, ww = (h, w) if bg is None else bg.shape[1:3] if bg.ndim == 4 else bg.shape[:2]
        fig = PaperFigure(figsize=(tile_width * n + 0.9, tile_width * hh / ww + 0.7), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    top = float(np.nanmax(per_step)) if per_step.size else 1.0
    for s, ax in enumerate(axes):
        image = None if bg is None else (bg[s] if bg.ndim == 4 else bg)
        cell_movement_figure(
            image, per_step, step=s, ax=ax, alpha=alpha, vmax=top, cmap=cmap, colorbar=False, annotate=annotate
        )
        caption = f"{s}→{s + 1}" if alphas is None else f"α {float(alphas[s]):.2f}→{float(alphas[s + 1]):.2f}"
        ax.set_xlabel(caption, fontsize=7, labelpad=2)
    mappable = axes[0].images[-1]
    fig.colorbar(mappable, ax=list(axes), label="L2 per cell", shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig if isinstance(fig, Figure) else fig.figure
