"""All distances between two small sets of latents, exact in float64.

:func:`pairwise_distances` is the dense matrix the map-quality figures
rank neighbours by (hundreds to a few thousand latents); searching the
nearest neighbours of a few queries among many latents is
:class:`~latent_widgets.analysis.neighbors.LatentIndex`'s job.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.distances import pairwise_distances
>>> pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]), metric="euclidean", squared=True).tolist()
[[0.0, 25.0], [25.0, 0.0]]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core.arrays import BLOCK_BYTES, as_float_rows, iter_row_blocks

__all__ = ["METRICS", "pairwise_distances"]

#: Distance metrics of :func:`pairwise_distances` and of
#: :class:`~latent_widgets.analysis.neighbors.LatentIndex`.
METRICS: tuple[str, ...] = ("euclidean", "cosine")


def _row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared row norms in float64, converting a bounded block at a time."""
    out = np.empty(len(x), np.float64)
    for rows in iter_row_blocks(len(x), BLOCK_BYTES // (8 * max(x.shape[1], 1))):
        block = x[rows].astype(np.float64, copy=False)
        out[rows] = np.einsum("ij,ij->i", block, block)
    return out


def pairwise_distances(
    x: np.ndarray,
    y: np.ndarray | None = None,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    *,
    squared: bool = False,
) -> np.ndarray:
    """All distances between the rows of ``x`` and ``y`` (default ``x``), in float64.

    The Gram matrix is accumulated in float64 over blocks of features, so a
    wide float32 array is converted a block at a time, never as a whole.
    Costs one ``N x D x M`` product; meant for the quality figures of
    hundreds to a few thousand latents.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : ndarray, shape (M, ...), optional
    metric : {"euclidean", "cosine"}
    squared : bool
        Squared euclidean distances.

    Returns
    -------
    ndarray, float64, shape (N, M)
        With ``y=None`` the diagonal is exactly 0 and the matrix symmetric.

    Examples
    --------
    >>> pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]])).tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a = as_float_rows(x, "x")
    b = a if y is None else as_float_rows(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} features per row and y has {b.shape[1]}")
    n, m, d = len(a), len(b), a.shape[1]
    gram = np.zeros((n, m), np.float64)
    for cols in iter_row_blocks(d, BLOCK_BYTES // (8 * max(n + m, 1))):
        ab = a[:, cols].astype(np.float64)
        if y is None:
            gram += ab @ ab.T  # numpy uses the symmetric rank-k update here
        else:
            gram += ab @ b[:, cols].astype(np.float64).T
    na = np.diagonal(gram).copy() if y is None else _row_sq_norms(a)
    nb = na if y is None else _row_sq_norms(b)
    if metric == "euclidean":
        out = na[:, None] + nb[None, :] - 2.0 * gram
        np.maximum(out, 0.0, out=out)
        if y is None:
            np.fill_diagonal(out, 0.0)
            out = (out + out.T) / 2.0
        return out if squared else np.sqrt(out, out=out)
    denom = np.sqrt(na)[:, None] * np.sqrt(nb)[None, :]
    cos = np.divide(gram, denom, out=np.zeros_like(gram), where=denom > 0)
    out = np.clip(1.0 - cos, 0.0, 2.0)
    if y is None:
        np.fill_diagonal(out, np.where(na > 0, 0.0, 1.0))
    return out
