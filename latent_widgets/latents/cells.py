"""Spatial latents: every cell of an ``(h, w, C)`` latent grid as a point of its own.

An encoder-decoder's latent is a grid of ``h x w`` cells with ``C`` channels
each, and each cell sees one region of the image. Flattening the grid (one
point per sample) or averaging it (:func:`pooled`) hides *where* two samples
differ; this module keeps the cells apart:

- :func:`cell_points` and :func:`cell_ids`: one row per cell of every sample
  (sample-major, then row-major cell), and the ``(sample, row, col)`` of each
  row;
- :func:`cell_classes`: the dominant true class under each cell, read from
  the block of the mask that the cell covers at the mask's resolution;
- :func:`cell_box`: that block in pixels, to outline a cell on its image;
- :func:`cell_movement`: how far each cell moves along an interpolation path
  (L2 over the channels, per step and summed);
- :func:`pooled`: average pooling over the grid, one ``C``-vector per sample;
- :func:`upsample_cells`: a value per cell painted over the pixels it covers
  (to draw a cell heatmap over its image).

The grid covers the image evenly: cell ``(r, c)`` of an ``h x w`` grid over
an ``H x W`` mask covers rows ``floor(r H / h) .. floor((r + 1) H / h) - 1``
and the same for columns, so the blocks tile the mask exactly even when
``H`` is not a multiple of ``h``.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.latents.cells import cell_points, cell_ids, cell_classes, cell_box
>>> z = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)  # 2 samples, 2x3 grid, 4 channels
>>> cell_points(z).shape, cell_ids(2, (2, 3))[4].tolist()
((12, 4), [0, 1, 1])
>>> masks = np.zeros((1, 5, 6), int); masks[0, 3:, :] = 2  # bottom rows are class 2
>>> cell_classes(masks, (2, 3), n_classes=3)[0].tolist()
[[0, 0, 0], [2, 2, 2]]
>>> cell_box((2, 3), (5, 6), 1, 2)
(2, 4, 5, 6)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.arrays import iter_row_blocks

__all__ = [
    "CellMovement",
    "cell_box",
    "cell_classes",
    "cell_ids",
    "cell_movement",
    "cell_points",
    "pooled",
    "upsample_cells",
]

# Pixels (or latent floats) per block: bounds the temporaries whatever N is.
_BLOCK_ITEMS = 1 << 22


def _grid(grid: Sequence[int]) -> tuple[int, int]:
    """``(h, w)`` from ``(h, w)`` or a latent shape ``(h, w, C)``."""
    try:
        dims = tuple(int(g) for g in grid)
    except TypeError:
        raise TypeError(f"grid must be (h, w) or a latent shape (h, w, C), got {grid!r}") from None
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise ValueError(
            f"grid must be (h, w) or a latent shape (h, w, C) of positive sizes, got {grid!r}; "
            "a flat latent (D,) has no grid: use the flattened or pooled latents instead"
        )
    return dims[0], dims[1]


def _grid_latents_shape(latents: Any, grid: Sequence[int] | None, what: str) -> tuple[int, int, int, int]:
    """``(N, h, w, C)`` of grid latents, or of flat ones given their ``grid``."""
    shape = tuple(int(s) for s in np.shape(latents))
    if len(shape) == 4 and grid is None:
        return shape  # type: ignore[return-value]
    if len(shape) == 4:
        h, w = _grid(grid)  # type: ignore[arg-type]
        if shape[1:3] != (h, w):
            raise ValueError(f"{what} have grid {shape[1:3]} but grid={tuple(grid)!r} was given")  # type: ignore[arg-type]
        return shape  # type: ignore[return-value]
    if len(shape) == 2 and grid is not None:
        h, w = _grid(grid)
        if shape[1] % (h * w):
            raise ValueError(
                f"{what} of shape {shape} do not split into a {h}x{w} grid: {shape[1]} floats per sample "
                f"is not a multiple of {h * w} cells"
            )
        return shape[0], h, w, shape[1] // (h * w)
    if len(shape) == 2:
        raise ValueError(
            f"{what} of shape {shape} are flat (N, D) and have no spatial grid: cells need (N, h, w, C) "
            "latents (channels last). Pass grid=(h, w) if these are flattened grid latents, or use the "
            "'flatten' or 'pooled' map points instead."
        )
    raise ValueError(f"{what} must have shape (N, h, w, C) (channels last), got {shape}")


def _read_rows(x: Any, rows: slice) -> np.ndarray:
    return np.asarray(x[rows])


def cell_points(latents: Any, *, grid: Sequence[int] | None = None) -> np.ndarray:
    """Every latent cell of every sample as a row: ``(N * h * w, C)``.

    Parameters
    ----------
    latents : array, shape (N, h, w, C)
        Grid latents, channels last (Keras). A lazy row-indexable array
        (Zarr, :class:`~latent_widgets.latents.stored_array.StoredArray`) is read block by
        block. Flat ``(N, D)`` latents need ``grid``.
    grid : (h, w), optional
        The grid of flattened latents ``(N, h * w * C)`` laid out row-major,
        channels last (what ``latents.reshape(N, -1)`` gives).

    Returns
    -------
    ndarray, shape (N * h * w, C)
        Ordered sample-major, then row-major cell: row ``(n * h + r) * w + c``
        is cell ``(r, c)`` of sample ``n`` (see :func:`cell_ids`). A view of
        ``latents`` when it is already an ndarray.

    Raises
    ------
    ValueError
        For flat latents without ``grid``, or a ``grid`` that does not fit.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(3, 2, 2, 5))
    >>> p = cell_points(z)
    >>> p.shape, bool((p[1 * 4 + 1 * 2 + 0] == z[1, 1, 0]).all())
    ((12, 5), True)
    >>> cell_points(z.reshape(3, -1), grid=(2, 2)).shape
    (12, 5)
    """
    n, h, w, c = _grid_latents_shape(latents, grid, "latents")
    if isinstance(latents, np.ndarray):
        return latents.reshape(n * h * w, c)
    first = _read_rows(latents, slice(0, min(n, 1)))
    out = np.empty((n * h * w, c), first.dtype)
    for rows in iter_row_blocks(n, _BLOCK_ITEMS // max(h * w * c, 1)):
        out[rows.start * h * w : rows.stop * h * w] = _read_rows(latents, rows).reshape(-1, c)
    return out


def cell_ids(n: int, grid: Sequence[int]) -> np.ndarray:
    """``(sample, row, col)`` of each row of :func:`cell_points`.

    Parameters
    ----------
    n : int
        Number of samples.
    grid : (h, w) or (h, w, C)
        The latent grid (a latent shape is accepted as is).

    Returns
    -------
    ndarray, int64, shape (n * h * w, 3)

    Examples
    --------
    >>> cell_ids(2, (1, 2)).tolist()
    [[0, 0, 0], [0, 0, 1], [1, 0, 0], [1, 0, 1]]
    """
    h, w = _grid(grid)
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    s, r, c = np.meshgrid(np.arange(int(n)), np.arange(h), np.arange(w), indexing="ij")
    return np.stack([s.ravel(), r.ravel(), c.ravel()], axis=1).astype(np.int64)


def _edges(size: int, cells: int) -> np.ndarray:
    """Pixel edges of ``cells`` even blocks over ``size`` pixels: ``floor(k * size / cells)``."""
    return (np.arange(cells + 1, dtype=np.int64) * size) // cells


def _pixel_cells(size: int, cells: int) -> np.ndarray:
    """The cell index of each of ``size`` pixels along one axis."""
    return np.searchsorted(_edges(size, cells), np.arange(size), side="right") - 1


def cell_box(grid: Sequence[int], image_size: Sequence[int], row: int, col: int) -> tuple[int, int, int, int]:
    """The pixels cell ``(row, col)`` covers: ``(y0, x0, y1, x1)``, ends exclusive.

    Parameters
    ----------
    grid : (h, w) or (h, w, C)
    image_size : (H, W)
        The image or mask size (extra trailing dims, e.g. ``(H, W, 3)``,
        are ignored).
    row, col : int
        The cell, ``0 <= row < h`` and ``0 <= col < w``.

    Returns
    -------
    (int, int, int, int)
        ``image[y0:y1, x0:x1]`` is the cell's block.

    Examples
    --------
    >>> cell_box((3, 4), (96, 128), 0, 0), cell_box((3, 4), (100, 130), 2, 3)
    ((0, 0, 32, 32), (66, 97, 100, 130))
    """
    h, w = _grid(grid)
    size = tuple(int(s) for s in image_size)
    if len(size) < 2:
        raise ValueError(f"image_size must be (H, W), got {image_size!r}")
    big_h, big_w = size[:2]
    if not (0 <= int(row) < h and 0 <= int(col) < w):
        raise IndexError(f"cell ({row}, {col}) is outside the {h}x{w} grid")
    ys, xs = _edges(big_h, h), _edges(big_w, w)
    return int(ys[row]), int(xs[col]), int(ys[row + 1]), int(xs[col + 1])


def cell_classes(masks: Any, grid: Sequence[int], n_classes: int, *, ignore_index: int | None = None) -> np.ndarray:
    """The dominant true class under each latent cell: ``(N, h, w)``.

    Cell ``(r, c)`` takes the most frequent label of the mask block it covers
    (:func:`cell_box`), at the mask's own resolution; a tie goes to the
    lowest class id.

    Parameters
    ----------
    masks : array of int, shape (N, H, W) or (H, W)
        Label masks, or any row-indexable array (lazy, Zarr), read block by
        block over samples. One ``(H, W)`` mask gives an ``(h, w)`` result.
    grid : (h, w) or (h, w, C)
        The latent grid; no finer than the mask.
    n_classes : int
        Labels are ``0 .. n_classes - 1`` (plus ``ignore_index``).
    ignore_index : int, optional
        A label left out of the vote (e.g. "Unlabelled"); a cell whose whole
        block is that label gets ``ignore_index``.

    Returns
    -------
    ndarray, int64, shape (N, h, w)

    Raises
    ------
    ValueError
        For a grid finer than the masks, or labels outside ``0 .. n_classes - 1``.

    Examples
    --------
    >>> m = np.array([[0, 0, 1], [2, 1, 1]])  # one 2x3 mask, a 1x2 grid: blocks [:, 0:1] and [:, 1:3]
    >>> cell_classes(m, (1, 2), 3).tolist()
    [[0, 1]]
    >>> cell_classes(np.array([[3, 3], [1, 3]]), (1, 1), 4, ignore_index=3).tolist()
    [[1]]
    """
    h, w = _grid(grid)
    n_classes = int(n_classes)
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    shape = tuple(int(s) for s in np.shape(masks))
    single = len(shape) == 2
    if single:
        masks = np.asarray(masks)[None]
        shape = (1, *shape)
    if len(shape) != 3:
        raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {shape}")
    n, big_h, big_w = shape
    if h > big_h or w > big_w:
        raise ValueError(
            f"a {h}x{w} grid is finer than the {big_h}x{big_w} masks: some cells would cover no pixel; "
            "upsample the masks or use a coarser grid"
        )
    # Each pixel's cell id, shared by every sample: cell_of[y, x] = r * w + c.
    rows, cols = _pixel_cells(big_h, h), _pixel_cells(big_w, w)
    cell_of = (rows[:, None] * w + cols[None, :]).ravel()
    n_cells = h * w
    out = np.empty((n, h, w), np.int64)
    cell_bins = (cell_of * n_classes).astype(np.intp)
    bins_per_sample = n_cells * n_classes
    for block in iter_row_blocks(n, _BLOCK_ITEMS // max(big_h * big_w, 1)):
        labels = _read_rows(masks, block).reshape(block.stop - block.start, -1)
        void = labels == ignore_index if ignore_index is not None else None
        bad = (labels < 0) | (labels >= n_classes)
        if void is not None:
            bad &= ~void
        if bad.any():
            raise ValueError(
                f"mask label {int(labels[bad][0])} is outside 0..{n_classes - 1}: pass the right n_classes"
                + ("" if ignore_index is not None else ", or ignore_index for a void label")
            )
        b = len(labels)
        # One bincount per block: bin = (sample * cells + cell) * classes + label.
        keys = labels.astype(np.intp)
        keys += cell_bins
        keys += (np.arange(b, dtype=np.intp) * bins_per_sample)[:, None]
        if void is not None:
            keys[void] = b * bins_per_sample  # one spare bin collects the void pixels
        hist = np.bincount(keys.ravel(), minlength=b * bins_per_sample + 1)[: b * bins_per_sample]
        hist = hist.reshape(b, n_cells, n_classes)
        dominant = hist.argmax(axis=2)  # first maximum: ties go to the lowest class id
        if void is not None:
            dominant = np.where(hist.sum(axis=2) == 0, ignore_index, dominant)
        out[block] = dominant.reshape(b, h, w)
    return out[0] if single else out


@dataclass(frozen=True)
class CellMovement:
    """How far each latent cell moves along a path.

    Attributes
    ----------
    per_step : ndarray, shape (S - 1, h, w)
        L2 norm over the channels of ``z[s + 1] - z[s]``, for each cell.
    total : ndarray, shape (h, w)
        ``per_step.sum(0)``: the length of each cell's own path.

    Examples
    --------
    >>> m = cell_movement(np.zeros((3, 2, 2, 4)))
    >>> m.per_step.shape, m.total.shape, m.top(1)
    ((2, 2, 2), (2, 2), [(0, 0, 0.0)])
    """

    per_step: np.ndarray
    total: np.ndarray

    @property
    def grid(self) -> tuple[int, int]:
        """``(h, w)`` of the latent grid."""
        return int(self.total.shape[0]), int(self.total.shape[1])

    def top(self, k: int = 3) -> list[tuple[int, int, float]]:
        """The ``k`` cells that move most in total, as ``(row, col, total)``, largest first.

        Examples
        --------
        >>> z = np.zeros((2, 2, 3, 1)); z[1, 1, 2] = 5.0; z[1, 0, 0] = 1.0
        >>> cell_movement(z).top(2)
        [(1, 2, 5.0), (0, 0, 1.0)]
        """
        flat = self.total.ravel()
        order = np.argsort(-flat, kind="stable")[: max(0, int(k))]
        w = self.total.shape[1]
        return [(int(i // w), int(i % w), float(flat[i])) for i in order]


def cell_movement(path_latents: Any, *, grid: Sequence[int] | None = None) -> CellMovement:
    """L2 movement of each latent cell between consecutive steps of a path.

    Parameters
    ----------
    path_latents : array, shape (S, h, w, C)
        The latents of the ``S >= 2`` steps of a path (e.g.
        ``PathResult.latents``). Flat ``(S, D)`` latents need ``grid``.
    grid : (h, w), optional
        The grid of flattened latents (as in :func:`cell_points`).

    Returns
    -------
    CellMovement
        ``per_step`` ``(S - 1, h, w)`` and ``total`` ``(h, w)``, float64.

    Examples
    --------
    >>> z = np.zeros((3, 1, 2, 2)); z[1, 0, 1] = [3, 4]; z[2, 0, 1] = [3, 4]
    >>> m = cell_movement(z)
    >>> m.per_step[:, 0, 1].tolist(), m.total.tolist()
    ([5.0, 0.0], [[0.0, 5.0]])
    """
    s, h, w, c = _grid_latents_shape(path_latents, grid, "path latents")
    if s < 2:
        raise ValueError(f"a path needs at least 2 steps to move, got {s}")
    z = np.asarray(path_latents, dtype=np.float64).reshape(s, h, w, c)
    per_step = np.linalg.norm(np.diff(z, axis=0), axis=-1)
    return CellMovement(per_step=per_step, total=per_step.sum(axis=0))


def pooled(latents: Any, *, grid: Sequence[int] | None = None) -> np.ndarray:
    """Average pooling over the latent grid: one ``C``-vector per sample.

    Parameters
    ----------
    latents : array, shape (N, h, w, C)
        Grid latents, channels last; lazy arrays are read block by block.
        Flat ``(N, D)`` latents need ``grid``.
    grid : (h, w), optional
        The grid of flattened latents (as in :func:`cell_points`).

    Returns
    -------
    ndarray, shape (N, C)
        ``latents.mean(axis=(1, 2))``, in the latents' float dtype.

    Examples
    --------
    >>> z = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> pooled(z).tolist()
    [[3.0, 4.0]]
    """
    n, h, w, c = _grid_latents_shape(latents, grid, "latents")
    first = _read_rows(latents, slice(0, min(n, 1)))
    dtype = first.dtype if np.issubdtype(first.dtype, np.floating) else np.float64
    out = np.empty((n, c), dtype)
    for rows in iter_row_blocks(n, _BLOCK_ITEMS // max(h * w * c, 1)):
        out[rows] = _read_rows(latents, rows).reshape(rows.stop - rows.start, h * w, c).mean(axis=1)
    return out


def upsample_cells(values: Any, image_size: Sequence[int]) -> np.ndarray:
    """Paint a value per cell over the pixels the cell covers: ``(h, w) -> (H, W)``.

    Uses the same tiling as :func:`cell_box` and :func:`cell_classes`, so a
    heatmap drawn from it lines up with the blocks the cells' classes came
    from (nearest-cell, no smoothing across cell borders).

    Parameters
    ----------
    values : array, shape (h, w) or (..., h, w)
        One value per cell (leading axes, e.g. steps, are kept).
    image_size : (H, W)
        Extra trailing dims, e.g. ``(H, W, 3)``, are ignored.

    Returns
    -------
    ndarray, shape (..., H, W)

    Examples
    --------
    >>> upsample_cells(np.array([[1, 2]]), (2, 5)).tolist()
    [[1, 1, 2, 2, 2], [1, 1, 2, 2, 2]]
    """
    values = np.asarray(values)
    if values.ndim < 2:
        raise ValueError(f"values must have shape (h, w) (one value per cell), got {values.shape}")
    size = tuple(int(s) for s in image_size)
    if len(size) < 2:
        raise ValueError(f"image_size must be (H, W), got {image_size!r}")
    h, w = values.shape[-2:]
    if h > size[0] or w > size[1]:
        raise ValueError(f"a {h}x{w} grid is finer than the {size[0]}x{size[1]} image")
    return values[..., _pixel_cells(size[0], h)[:, None], _pixel_cells(size[1], w)[None, :]]
