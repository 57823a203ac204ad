"""Small numpy helpers shared by every layer of the package.

A leaf module (numpy only): the dataset container, the metrics, the nearest
neighbour index and the model adapter all process arrays in row blocks, so
that temporaries stay bounded whatever the number of samples.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.core.arrays import iter_row_blocks, row_bincount
>>> [(s.start, s.stop) for s in iter_row_blocks(5, 2)]
[(0, 2), (2, 4), (4, 5)]
>>> row_bincount(np.array([[0, 1, 1], [2, 2, 2]]), 3).tolist()
[[1, 2, 0], [0, 0, 3]]
>>> as_float_rows(np.zeros((2, 3, 4), np.int8), "x").shape, is_row_store(np.zeros(3))
((2, 12), False)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "BLOCK_BYTES",
    "as_float_rows",
    "index_rows",
    "is_row_store",
    "iter_row_blocks",
    "quiet_nanmean",
    "row_bincount",
]

#: Bytes of one block of rows that the out-of-core loops read or compute at a time (64 MiB: a few such
#: blocks and their temporaries stay small beside the data, and numpy's per-call cost is amortised).
BLOCK_BYTES = 1 << 26

# Elements per block of row_bincount: a few tens of MiB of int64 temporaries.
_BLOCK_ITEMS = 1 << 22


def iter_row_blocks(n: int, block: int) -> Iterator[slice]:
    """Consecutive slices ``[s, s + block)`` that cover ``range(n)``.

    Parameters
    ----------
    n : int
        Number of rows (or columns, or flat elements) to cover.
    block : int
        Rows per slice; values below 1 count as 1. The last slice may be
        shorter, and ``n = 0`` gives no slice.

    Examples
    --------
    >>> x = np.arange(7)
    >>> [x[s].tolist() for s in iter_row_blocks(len(x), 3)]
    [[0, 1, 2], [3, 4, 5], [6]]
    """
    step = max(1, int(block))
    for start in range(0, int(n), step):
        yield slice(start, min(start + step, int(n)))


def row_bincount(labels: np.ndarray, n_bins: int, *, block_items: int = _BLOCK_ITEMS) -> np.ndarray:
    """Count of each value in each row of a 2-D array of non-negative ints.

    One ``np.bincount`` per block of rows (each row's values offset into its
    own range of bins), instead of a Python loop over rows or classes.

    Parameters
    ----------
    labels : ndarray of int, shape (N, P)
        Values in ``0 .. n_bins - 1`` (not checked: callers validate).
    n_bins : int
    block_items : int
        Elements per bincount call, which bounds the temporaries.

    Returns
    -------
    ndarray, int64, shape (N, n_bins)

    Examples
    --------
    >>> row_bincount(np.array([[1, 1], [0, 1]]), 2).tolist()
    [[0, 2], [1, 1]]
    """
    flat = np.asarray(labels)
    n = len(flat)
    counts = np.zeros((n, n_bins), np.int64)
    for rows in iter_row_blocks(n, block_items // max(flat.shape[1], 1)):
        block = flat[rows]
        offsets = (np.arange(len(block), dtype=np.int64) * n_bins)[:, None]
        counts[rows] = np.bincount((block + offsets).ravel(), minlength=len(block) * n_bins).reshape(len(block), n_bins)
    return counts


def index_rows(key: Any, n: int) -> np.ndarray:
    """Row indices (int64, non-negative) of an int array or a boolean mask over ``n`` rows.

    Examples
    --------
    >>> index_rows(np.array([True, False, True]), 3).tolist(), index_rows([-1, 0], 3).tolist()
    ([0, 2], [2, 0])
    """
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean index of shape {idx.shape} does not match {n} rows")
        return np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        if idx.size == 0:
            return np.empty(0, np.int64)
        raise IndexError(f"rows must be ints, a slice, an int array or a boolean mask, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise IndexError(f"an int array of rows must be 1-D, got shape {idx.shape}")
    idx = idx.astype(np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"row {int(idx[bad][0])} is out of range for {n} rows")
    return np.where(idx < 0, idx + n, idx)


def as_float_rows(x: Any, name: str) -> np.ndarray:
    """``x`` as one flat float row per sample, shape ``(N, D)``: a view when it is contiguous and float.

    float32 and float64 stay as they are; any other dtype becomes float32.

    Parameters
    ----------
    x : array-like, shape (N, ...)
    name : str
        What ``x`` is, for the error message.

    Raises
    ------
    ValueError
        ``x`` has fewer than 2 dimensions.

    Examples
    --------
    >>> a = np.zeros((2, 2, 3), np.float32)
    >>> flat = as_float_rows(a, "latents")
    >>> flat.shape, flat.base is a
    ((2, 6), True)
    """
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with one latent per row, got {arr.shape}")
    flat = arr.reshape(len(arr), -1)  # a view when the latents are contiguous
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float32)
    return flat


def is_row_store(x: Any) -> bool:
    """Whether ``x`` holds rows that are not (or should not be read as) one array in memory.

    A ``np.memmap`` or anything with a ``shape`` whose items index to arrays
    (a Zarr array, a latent store), but no list or tuple: the callers then
    read it a block of rows at a time.

    Examples
    --------
    >>> is_row_store(np.zeros((3, 2))), is_row_store([[0.0, 1.0]])
    (False, False)
    >>> class Rows:
    ...     shape = (3, 2)
    ...     def __getitem__(self, rows):
    ...         return np.zeros((3, 2))[rows]
    >>> is_row_store(Rows())
    True
    """
    if isinstance(x, np.ndarray):
        return isinstance(x, np.memmap)
    return hasattr(x, "shape") and hasattr(x, "__getitem__") and not isinstance(x, (list, tuple)) and len(x.shape) >= 1


def quiet_nanmean(x: np.ndarray, axis: int | None = None) -> Any:
    """:func:`numpy.nanmean` without its RuntimeWarning: an all-NaN slice is NaN, as wanted, silently.

    Examples
    --------
    >>> quiet_nanmean(np.array([[1.0, np.nan], [np.nan, np.nan]]), axis=1).tolist()
    [1.0, nan]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)
