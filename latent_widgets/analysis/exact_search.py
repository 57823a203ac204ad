"""The exact k-nearest-neighbour search of :class:`~latent_widgets.analysis.neighbors.LatentIndex`.

One matrix product per batch of queries and block of rows, by the identity

    ||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x

with the rows' squared norms precomputed in float64. The product runs in
the data's dtype (float32 for latents), so a 325 MB latent set is never
copied to float64; its rounding error is bounded per pair, and every point
that the bound cannot rule out of the top ``k`` is re-measured exactly in
float64 (``sum((x - q)^2)``, no cancellation) and re-ranked, ties broken by
the lower index. The result is the exact float64 k-NN at about the cost of
the matrix product alone. Rows in a store are streamed in bounded blocks,
each block's candidates refined while it is in memory, so each row is read
once per batch of queries.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.exact_search import ExactSearch
>>> from latent_widgets.analysis.latent_rows import LatentRows
>>> rows = LatentRows(np.eye(4, dtype=np.float32))
>>> search = ExactSearch(rows, "euclidean", rows.sq_norms_and_sketch()[0])
>>> idx, dist = search.query(np.array([[0.9, 0.1, 0, 0]], np.float32), 2)
>>> idx.tolist(), dist.round(3).tolist()
([[0, 1]], [[0.141, 1.273]])
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..core.arrays import iter_row_blocks
from .latent_rows import LatentRows

__all__ = ["ExactSearch", "sorted_top"]

# Bound on the rounding error of a dot product q.x computed in a dtype with
# machine epsilon eps: |err| <= _ERR_FACTOR * eps * sqrt(D) * |q| |x|. Blocked
# BLAS summation grows like a random walk; on float32 data of 100 to 221184
# features the observed maximum is below 0.2 of this bound with factor 1.
_ERR_FACTOR = 2.0


def sorted_top(
    keys: np.ndarray, idx: np.ndarray, k: int, metric: Literal["euclidean", "cosine"]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from keys (squared distances, or ``1 - cos``), each row sorted by (distance, index), first ``k``.

    Examples
    --------
    >>> i, d = sorted_top(np.array([[4.0, 1.0, 1.0]]), np.array([[0, 9, 2]]), 2, "euclidean")
    >>> i.tolist(), d.tolist()
    ([[2, 9]], [[1.0, 1.0]])
    """
    dist = np.sqrt(keys) if metric == "euclidean" else keys
    order = np.lexsort((idx, dist), axis=1)[:, :k]
    return np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)


def _merge_top(best: np.ndarray, best_i: np.ndarray, r: np.ndarray, keys: np.ndarray, ids: np.ndarray) -> None:
    """Merge the pairs (row ``r``, key, id) into each row's running top ``k``, in place.

    ``r`` is sorted (as ``np.nonzero`` returns it); ties keep the lower id.
    """
    rows, start, counts = np.unique(r, return_index=True, return_counts=True)
    width = int(counts.max())
    pos = np.arange(len(r)) - np.repeat(start, counts)
    new = np.full((len(rows), width), np.inf)
    new_i = np.full((len(rows), width), np.iinfo(np.int64).max, np.int64)
    slot = np.repeat(np.arange(len(rows)), counts)
    new[slot, pos] = keys
    new_i[slot, pos] = ids
    all_k = np.concatenate([best[rows], new], axis=1)
    all_i = np.concatenate([best_i[rows], new_i], axis=1)
    order = np.lexsort((all_i, all_k), axis=1)[:, : best.shape[1]]
    best[rows] = np.take_along_axis(all_k, order, 1)
    best_i[rows] = np.take_along_axis(all_i, order, 1)


class ExactSearch:
    """Exact float64 k-NN among :class:`~latent_widgets.analysis.latent_rows.LatentRows`.

    Parameters
    ----------
    rows : LatentRows
        The dataset latents.
    metric : {"euclidean", "cosine"}
        Cosine distance is ``1 - cos``; a zero vector has cosine 0 to anything.
    sq_norms : ndarray, float64, shape (N,)
        The rows' squared norms (:meth:`LatentRows.sq_norms_and_sketch`).

    Examples
    --------
    >>> rows = LatentRows(np.array([[0.0], [2.0], [1.0], [2.0]]))
    >>> ExactSearch(rows, "euclidean", rows.sq_norms_and_sketch()[0]).query(np.array([[2.0]]), 3)[0].tolist()
    [[1, 3, 2]]
    """

    def __init__(self, rows: LatentRows, metric: Literal["euclidean", "cosine"], sq_norms: np.ndarray) -> None:
        self.rows = rows
        self.metric = metric
        self.sq_norms = sq_norms
        self.norms = np.sqrt(sq_norms)
        self._rtol = _ERR_FACTOR * float(np.finfo(rows.dtype).eps) * math.sqrt(rows.n_features)

    def query(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each float query row of ``q`` (M, D), nearest first, ties in index order.

        ``exclude`` (M,) names a row to leave out of each query's result (-1 for none);
        ``k`` must be within what is left (the caller checks it).
        """
        idx = np.empty((len(q), k), np.int64)
        dist = np.empty((len(q), k), np.float64)
        # A store is read once per chunk of queries; memory is read at BLAS speed.
        q_chunk = 512 if self.rows.streamed else 2048
        for b in iter_row_blocks(len(q), q_chunk):
            idx[b], dist[b] = self._query_chunk(q[b], k, None if exclude is None else exclude[b])
        return idx, dist

    def _query_chunk(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        m = len(q)
        dtype = self.rows.dtype
        # One GEMM per block of rows, in the data's dtype (no float64 copy of x).
        qc = q if q.dtype == dtype else q.astype(dtype)
        # ||q||^2 shifts a whole row of distances (and ||q|| scales a row of
        # cosines) equally, so it cannot change the candidates: the data's
        # precision is enough here; the refinement recomputes exact values.
        q_sq = np.einsum("ij,ij->i", qc, qc).astype(np.float64)
        q_norm = np.sqrt(q_sq)
        q64 = q.astype(np.float64)
        q64_norm = np.sqrt(np.einsum("ij,ij->i", q64, q64))
        # Running exact top k (keys: squared distance or 1 - cos), refined as
        # the blocks stream past, so each row is read once.
        best = np.full((m, k), np.inf)
        best_i = np.full((m, k), np.iinfo(np.int64).max, np.int64)
        for rows in self.rows.blocks(8 * 4 * m):
            xb = self.rows.read(rows)
            g = (xb @ qc.T).T  # tall matrix on the left: several times faster in OpenBLAS for few queries
            norms = self.norms[rows]
            bound = norms[None, :] * (self._rtol * q_norm[:, None])
            if q.dtype != dtype:  # the queries were rounded to the data's dtype too
                bound *= 2.0
            if self.metric == "euclidean":
                approx = g.astype(np.float64)
                approx *= -2.0
                approx += self.sq_norms[None, rows]
                approx += q_sq[:, None]
                bound *= 2.0
            else:
                denom = q_norm[:, None] * norms[None, :]
                cos = np.divide(g, denom, out=np.zeros(g.shape, np.float64), where=denom > 0)
                approx = 1.0 - cos
                bound = np.divide(bound, denom, out=np.zeros_like(bound), where=denom > 0)
            # Absolute slack for the float64 arithmetic above.
            bound += 1e-12 * (np.abs(approx) + 1.0)
            hit = None
            if exclude is not None:
                local = exclude - rows.start
                hit = np.flatnonzero((local >= 0) & (local < len(xb)))
                approx[hit, local[hit]] = np.inf
            upper = approx + bound
            kth = np.partition(upper, k - 1, axis=1)[:, k - 1] if len(xb) >= k else np.full(m, np.inf)
            # Every point whose lower bound is within the k-th upper bound (of
            # this block, or the k-th exact key so far) may be in the true top
            # k; refine them all (usually about k in the first block, few after).
            approx -= bound
            maybe = approx <= np.minimum(kth, best[:, -1])[:, None]
            if hit is not None:
                maybe[hit, local[hit]] = False
            r, c = np.nonzero(maybe)
            if len(r) == 0:
                continue
            keys = self.pair_keys(q64, q64_norm, r, xb, c, norms[c])
            _merge_top(best, best_i, r, keys, c + rows.start)
        return sorted_top(best, best_i, k, self.metric)

    def pair_keys(
        self, q64: np.ndarray, qnorm: np.ndarray, qsel: np.ndarray, x: np.ndarray, xsel: np.ndarray, xnorm: np.ndarray
    ) -> np.ndarray:
        """Exact float64 keys of the pairs (query ``qsel[p]``, row ``xsel[p]`` of ``x``), ``qsel`` sorted.

        Squared distance for euclidean (no cancellation: the difference is
        formed first), ``1 - cos`` for cosine. ``q64`` are the queries in
        float64, ``qnorm`` their norms, ``xnorm[p]`` the norm of row ``xsel[p]``.
        """
        out = np.empty(len(qsel), np.float64)
        step = max(1, self.rows.block_bytes // (8 * max(self.rows.n_features, 1)))
        starts = np.r_[0, np.flatnonzero(np.diff(qsel)) + 1]
        # One query at a time (broadcast, no per-pair copy of the query), in
        # bounded blocks of its candidate rows.
        for lo, hi in zip(starts, np.r_[starts[1:], len(qsel)], strict=True):
            r = int(qsel[lo])
            for b in iter_row_blocks(hi - lo, step):
                p = slice(lo + b.start, lo + b.stop)
                if p.stop - p.start == 1:  # a slice is a view: one conversion instead of two copies
                    i = int(xsel[p.start])
                    rows = x[i : i + 1].astype(np.float64)
                else:
                    rows = x[xsel[p]].astype(np.float64, copy=False)
                if self.metric == "euclidean":
                    rows -= q64[r]
                    out[p] = np.einsum("ij,ij->i", rows, rows)
                else:
                    denom = xnorm[p] * qnorm[r]
                    dots = np.einsum("ij,j->i", rows, q64[r])  # BLAS dgemv threads contend on busy machines
                    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
                    out[p] = np.clip(1.0 - cos, 0.0, 2.0)
        return out

    def candidate_keys(self, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Exact keys of every (query ``q[i]``, row ``cand[i, j]``) pair; inf where ``cand`` is -1 (no candidate).

        Reads each distinct candidate row once (:meth:`LatentRows.take`).
        """
        keys = np.full(cand.shape, np.inf)
        r, j = np.nonzero(cand >= 0)
        ids = cand[r, j]
        uniq, inv = np.unique(ids, return_inverse=True)
        q64 = q.astype(np.float64)
        q64_norm = np.sqrt(np.einsum("ij,ij->i", q64, q64))
        keys[r, j] = self.pair_keys(q64, q64_norm, r, self.rows.take(uniq), inv, self.norms[ids])
        return keys
