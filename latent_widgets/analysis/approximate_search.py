"""The approximate k-nearest-neighbour searches of :class:`~latent_widgets.analysis.neighbors.LatentIndex`.

Both find ``n_candidates`` per query cheaply, then (by default, where rows
are cheap to fetch) re-measure them exactly against the true latents and
re-rank them:

- ``"svd"``: an exact search in a truncated-SVD sketch of the data
  (scikit-learn, fitted on at most 20 000 sampled rows; no compilation, fine
  for very wide latents);
- ``"pynndescent"``: an NN-descent graph (numba; the first build in a process
  compiles for a minute or more) over the same sketch, or over the raw
  features (in memory only).

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.approximate_search import ApproximateSearch, fit_sketch
>>> from latent_widgets.analysis.exact_search import ExactSearch
>>> from latent_widgets.analysis.latent_rows import LatentRows
>>> rows = LatentRows(np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32))
>>> components = fit_sketch(rows, 8)
>>> sq_norms, sketch = rows.sq_norms_and_sketch(components)
>>> exact = ExactSearch(rows, "euclidean", sq_norms)
>>> search = ApproximateSearch(exact, "svd", components, sketch, rerank=True)
>>> search.query(rows.take(np.array([3, 7])), 1)[0].ravel().tolist()
[3, 7]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..core.arrays import iter_row_blocks
from .exact_search import ExactSearch, sorted_top
from .latent_rows import LatentRows

__all__ = ["SKETCH_FIT_ROWS", "ApproximateSearch", "fit_sketch"]

#: Rows the SVD sketch is fitted on: its components barely change beyond.
SKETCH_FIT_ROWS: int = 20_000


def fit_sketch(rows: LatentRows, dims: int, random_state: int = 0) -> np.ndarray:
    """Right singular vectors of (a row sample of) the rows, shape ``(r, D)`` with ``r <= dims``.

    Uncentred (:class:`sklearn.decomposition.TruncatedSVD`), so the mean
    direction is kept and inner products (hence both metrics) are preserved
    in the sketch's subspace.

    Examples
    --------
    >>> fit_sketch(LatentRows(np.random.default_rng(0).normal(size=(30, 5))), 3).shape
    (3, 5)
    """
    from sklearn.decomposition import TruncatedSVD

    n, d = rows.shape
    rng = np.random.default_rng(random_state)
    sample = np.arange(n) if n <= SKETCH_FIT_ROWS else np.sort(rng.choice(n, SKETCH_FIT_ROWS, replace=False))
    x = rows.take(sample)
    r = int(max(1, min(dims, len(sample) - 1, d - 1)))
    svd = TruncatedSVD(r, algorithm="randomized", random_state=random_state)
    svd.fit(x)
    return np.ascontiguousarray(svd.components_, dtype=rows.dtype)


class ApproximateSearch:
    """Candidates from a sketch or a graph, re-ranked exactly (or not), nearest first.

    Parameters
    ----------
    exact : ExactSearch
        The exact search of the same rows: it re-ranks the candidates and
        answers the queries for which the graph found fewer than ``k``.
    algorithm : {"svd", "pynndescent"}
    components : ndarray (r, D) or None
        The sketch's directions (:func:`fit_sketch`); None for a graph over
        the raw features (``"pynndescent"`` on in-memory rows only).
    sketch : ndarray (N, r) or None
        The rows projected on ``components``
        (:meth:`~latent_widgets.analysis.latent_rows.LatentRows.sq_norms_and_sketch`).
    n_candidates : int, optional
        Candidates per query (default ``max(10 k, 64)``).
    rerank : bool
        Re-measure the candidates exactly against the true rows; else the
        distances and order are those of the sketch or graph.
    random_state : int
        Seed of the graph.

    Attributes
    ----------
    components : ndarray (r, D) or None
    """

    def __init__(
        self,
        exact: ExactSearch,
        algorithm: Literal["svd", "pynndescent"],
        components: np.ndarray | None,
        sketch: np.ndarray | None,
        *,
        n_candidates: int | None = None,
        rerank: bool = True,
        random_state: int = 0,
    ) -> None:
        self.exact = exact
        self.rows = exact.rows
        self.metric = exact.metric
        self.algorithm = algorithm
        self.components = components
        self.n_candidates = n_candidates
        self.rerank = rerank
        self._nnd: Any = None
        if algorithm == "svd":
            # Candidates only need ranking, not exact values: float32 keys
            # (||s||^2 - 2 q.s, or -cos on unit rows) suffice.
            sq = np.einsum("ij,ij->i", sketch, sketch)
            if self.metric == "cosine":
                norm = np.sqrt(sq)
                sketch = np.divide(sketch, norm[:, None], out=np.zeros_like(sketch), where=norm[:, None] > 0)
            self._sketch, self._sketch_sq = sketch, sq
            return
        import pynndescent

        points = sketch if sketch is not None else self.rows.data
        self._nnd = pynndescent.NNDescent(
            points, metric=self.metric, random_state=random_state, low_memory=True, n_jobs=None
        )
        self._nnd.prepare()

    def _candidates(self, q: np.ndarray, c: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``c`` candidates per query (-1 where fewer) and their sketch or graph distances."""
        qs = q.astype(self.rows.dtype, copy=False)
        if self.components is not None:
            qs = qs @ self.components.T
        if self.algorithm == "svd":
            return self._sketch_candidates(qs, c, exclude)
        extra = 0 if exclude is None else 1
        cand, cd = self._nnd.query(qs.astype(np.float32, copy=False), k=min(c + extra, self.rows.n_samples))
        cand, cd = np.asarray(cand, np.int64), np.asarray(cd, np.float64)
        if exclude is not None:
            cand[cand == exclude[:, None]] = -1
        cd[cand < 0] = np.inf
        if self.metric == "euclidean":
            cd **= 2  # keys are squared distances
        return cand, cd

    def _sketch_candidates(self, qs: np.ndarray, c: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``c`` nearest sketch rows of each sketched query, nearest first, and their sketch keys."""
        m, n = len(qs), self.rows.n_samples
        cand = np.empty((m, c), np.int64)
        keys = np.empty((m, c), np.float64)
        q_sq = np.einsum("ij,ij->i", qs, qs)
        if self.metric == "cosine":
            qn = np.sqrt(q_sq)
            qs = np.divide(qs, qn[:, None], out=np.zeros_like(qs), where=qn[:, None] > 0)
        for b in iter_row_blocks(m, self.rows.block_bytes // (8 * n)):
            key = (self._sketch @ qs[b].T).T
            if self.metric == "euclidean":
                key *= -2.0
                key += self._sketch_sq[None, :]
            else:
                np.negative(key, out=key)
            if exclude is not None:
                rows = np.flatnonzero(exclude[b] >= 0)
                key[rows, exclude[b][rows]] = np.inf
            part = np.argpartition(key, c - 1, axis=1)[:, :c] if c < n else np.tile(np.arange(n), (len(key), 1))
            pk = np.take_along_axis(key, part, 1)
            order = np.argsort(pk, axis=1, kind="stable")
            cand[b] = np.take_along_axis(part, order, 1)
            pk = np.take_along_axis(pk, order, 1).astype(np.float64)
            keys[b] = np.maximum(pk + q_sq[b, None], 0.0) if self.metric == "euclidean" else np.clip(1.0 + pk, 0, 2)
        return cand, keys

    def query(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The approximate ``k`` nearest rows of each float query row of ``q`` (M, D), as :meth:`ExactSearch.query`."""
        n = self.rows.n_samples
        c = self.n_candidates or max(10 * k, 64)
        c = max(k, min(c, n - (1 if exclude is not None else 0)))
        idx = np.empty((len(q), k), np.int64)
        dist = np.empty((len(q), k), np.float64)
        # Bound the candidate rows fetched for re-ranking at once.
        step = max(1, self.rows.block_bytes // (c * self.rows.n_features * self.rows.dtype.itemsize))
        for b in iter_row_blocks(len(q), step):
            cand, keys = self._candidates(q[b], c, None if exclude is None else exclude[b])
            if self.rerank:
                keys = self.exact.candidate_keys(q[b], cand)
            keys[cand < 0] = np.inf
            cand = np.where(cand < 0, np.iinfo(np.int64).max, cand)
            idx[b], dist[b] = sorted_top(keys, cand, k, self.metric)
        short = np.flatnonzero(~np.isfinite(dist[:, -1]))
        if len(short):  # a tiny graph can return fewer than k: search those exactly
            idx[short], dist[short] = self.exact.query(q[short], k, None if exclude is None else exclude[short])
        return idx, dist
