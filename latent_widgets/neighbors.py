"""Nearest neighbours of latents among a dataset's latents.

:class:`LatentIndex` is built once per dataset and queried many times (the
widgets query it on every slider move). The exact search is one matrix
product per batch of queries, by the identity

    ||q - x||^2 = ||q||^2 + ||x||^2 - 2 q.x

with the dataset's squared norms precomputed in float64. The product runs in
the data's dtype (float32 for latents), so a 325 MB latent set is never
copied to float64; its rounding error is bounded per pair, and every point
that the bound cannot rule out of the top ``k`` is re-measured exactly in
float64 (``sum((x - q)^2)``, no cancellation) and re-ranked, ties broken by
the lower index. The result is the exact float64 k-NN at about the cost of
the matrix product alone.

Above a size threshold (``approximate="auto"``) the index searches
approximately: by default in a 64-dimensional truncated-SVD sketch of the
data (scikit-learn) whose best candidates are re-ranked exactly, or with
``backend="pynndescent"``. The recall of an approximate index against the
exact search is measured when it is built (``LatentIndex.recall_``).

Examples
--------
>>> import numpy as np
>>> from latent_widgets.neighbors import LatentIndex, path_neighbors
>>> data = np.eye(4, dtype=np.float32)
>>> index = LatentIndex(data)
>>> idx, dist = index.query(np.array([[0.9, 0.1, 0, 0]], np.float32), k=2)
>>> idx.tolist(), dist.round(3).tolist()
([[0, 1]], [[0.141, 1.273]])
>>> path_neighbors(data[[0, 0, 3]], index).n_distinct
2
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal, NamedTuple

import numpy as np

from .arrays import iter_row_blocks

__all__ = [
    "BACKENDS",
    "DEFAULT_THRESHOLD",
    "METRICS",
    "LatentIndex",
    "PathNeighbors",
    "knn",
    "pairwise_distances",
    "path_neighbors",
    "recall_at_k",
]

#: Distance metrics of :class:`LatentIndex`.
METRICS: tuple[str, ...] = ("euclidean", "cosine")
#: Approximate-search backends of :class:`LatentIndex`.
BACKENDS: tuple[str, ...] = ("svd", "pynndescent")
#: ``approximate="auto"`` searches approximately when samples x features
#: exceeds this (2 GB of float32: an exact query then reads > 0.25 s of memory).
DEFAULT_THRESHOLD: int = 500_000_000

# Bound on the rounding error of a dot product q.x computed in a dtype with
# machine epsilon eps: |err| <= _ERR_FACTOR * eps * sqrt(D) * |q| |x|. Blocked
# BLAS summation grows like a random walk; on float32 data of 100 to 221184
# features the observed maximum is below 0.2 of this bound with factor 1.
_ERR_FACTOR = 2.0
# Bytes of the float64 temporaries one step may allocate.
_BLOCK_BYTES = 1 << 26


class PathNeighbors(NamedTuple):
    """Nearest real latent of each step of a path.

    Attributes
    ----------
    indices : ndarray, int64, shape (S,)
        Index of each step's nearest dataset latent.
    distances : ndarray, float64, shape (S,)
        Its distance.
    n_distinct : int
        How many different dataset latents are nearest along the path (the
        study found 2, the endpoints, for SegNet over 12 steps).
    """

    indices: np.ndarray
    distances: np.ndarray
    n_distinct: int


def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with one latent per row, got {arr.shape}")
    flat = arr.reshape(len(arr), -1)  # a view when the latents are contiguous
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float32)
    return flat


def _row_sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared row norms in float64, converting a bounded block at a time."""
    out = np.empty(len(x), np.float64)
    for rows in iter_row_blocks(len(x), _BLOCK_BYTES // (8 * max(x.shape[1], 1))):
        block = x[rows].astype(np.float64, copy=False)
        out[rows] = np.einsum("ij,ij->i", block, block)
    return out


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that an approximate search found.

    Parameters
    ----------
    approx_idx, exact_idx : ndarray of int, shape (M, k)

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> recall_at_k(np.array([[0, 1], [2, 5]]), np.array([[1, 0], [2, 3]]))
    0.75
    """
    a, e = np.asarray(approx_idx), np.asarray(exact_idx)
    if a.ndim == 1:
        a, e = a[:, None], e[:, None]
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"got {a.shape[0]} approximate rows and {e.shape[0]} exact rows")
    if e.size == 0:
        return float("nan")
    hits = (a[:, :, None] == e[:, None, :]).any(axis=1)
    return float(hits.mean())


class LatentIndex:
    """k-nearest-neighbour search among a fixed set of latents.

    Parameters
    ----------
    data : ndarray, shape (N, *latent_shape)
        The dataset latents, any rank; they are flattened to (N, D) without a
        copy when contiguous. Kept by reference: do not modify them afterwards.
        Building an index only checks its arguments; the norms, the float
        copy of non-float data, the sketch or graph and the recall
        measurement are prepared by :meth:`fit`, which the first query (or
        reading ``recall_`` / ``build_seconds``) calls.
    metric : {"euclidean", "cosine"}
        Cosine distance is ``1 - cos``; a zero vector has cosine 0 to anything.
    approximate : {"auto", True, False}
        ``"auto"``: approximate when ``N * D > threshold``.
    threshold : int
        Size (samples x features) above which ``"auto"`` goes approximate.
    backend : {"svd", "pynndescent"}
        Approximate search: ``"svd"`` finds ``n_candidates`` per query in a
        truncated-SVD sketch (scikit-learn, no compilation, fine for very wide
        latents) and re-ranks them exactly; ``"pynndescent"`` builds an
        NN-descent graph (numba; the first build in a process compiles for
        a minute or more).
    sketch_dims : int
        Dimensions of the SVD sketch.
    n_candidates : int, optional
        Candidates re-ranked per query by the SVD backend (default ``max(10 k, 64)``).
    random_state : int
        Seed of the approximate backends and of the recall sample.
    recall_queries, recall_k : int
        The recall of an approximate index is measured on this many dataset
        points (each excluded from its own search) at this ``k``.

    Attributes
    ----------
    data : ndarray, shape (N, D)
    sample_shape : tuple
        Shape of one latent as given.
    approximate : bool
        Whether queries are approximate.
    recall_ : float or None
        Measured recall@``recall_k`` of the approximate search (None if exact);
        reading it fits the index.
    build_seconds : float
        Time :meth:`fit` spent (norms, sketch or graph, recall measurement);
        reading it fits the index.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = rng.normal(size=(100, 4, 4, 8)).astype(np.float32)
    >>> index = LatentIndex(data)
    >>> idx, dist = index.query(data[:3] + 0.01, k=1)
    >>> idx[:, 0].tolist()
    [0, 1, 2]
    """

    def __init__(
        self,
        data: np.ndarray,
        metric: Literal["euclidean", "cosine"] = "euclidean",
        approximate: Literal["auto"] | bool = "auto",
        threshold: int = DEFAULT_THRESHOLD,
        *,
        backend: Literal["svd", "pynndescent"] = "svd",
        sketch_dims: int = 64,
        n_candidates: int | None = None,
        random_state: int = 0,
        recall_queries: int = 200,
        recall_k: int = 10,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if approximate not in ("auto", True, False):
            raise ValueError(f"approximate must be 'auto', True or False, got {approximate!r}")
        arr = np.asarray(data)
        if arr.ndim < 2:
            raise ValueError(f"data must have shape (N, ...) with one latent per row, got {arr.shape}")
        if len(arr) == 0:
            raise ValueError("data is empty; an index needs at least one latent")
        # Widgets build an index per dataset but may never query it: keep
        # construction to these checks and defer the O(N D) work to fit().
        self._source = arr
        self._data: np.ndarray | None = None
        self.sample_shape: tuple[int, ...] = tuple(arr.shape[1:])
        self._shape = (len(arr), math.prod(self.sample_shape))
        self.metric = metric
        self.backend = backend
        self.random_state = random_state
        self.n_candidates = n_candidates
        n, d = self._shape
        self.approximate = bool(n * d > threshold) if approximate == "auto" else bool(approximate)
        self._sketch_dims = sketch_dims
        self._recall_queries = recall_queries
        self._recall_k = recall_k
        self._recall: float | None = None
        self._build_seconds = 0.0
        self._fitted = False
        self._nn_scale: float | None = None

    def fit(self) -> LatentIndex:
        """Prepare the search: norms, then the sketch or graph and its recall (once).

        Queries call it; call it yourself to pay the cost up front (e.g.
        before a widget shows). Returns the index.

        Examples
        --------
        >>> LatentIndex(np.eye(3)).fit().build_seconds >= 0
        True
        """
        if self._fitted:
            return self
        t0 = time.perf_counter()
        x = self.data
        self._sq_norms = _row_sq_norms(x)
        self._norms = np.sqrt(self._sq_norms)
        self._eps = float(np.finfo(x.dtype).eps)
        self._rtol = _ERR_FACTOR * self._eps * math.sqrt(self.n_features)
        if self.approximate:
            self._build_approximate(self._sketch_dims)
        # Fitted from here on: measuring the recall queries the index.
        self._fitted = True
        if self.approximate:
            try:
                self.measure_recall(self._recall_queries, self._recall_k)
            except BaseException:
                self._fitted = False
                raise
        self._build_seconds = time.perf_counter() - t0
        return self

    # ------------------------------------------------------------------ basics

    @property
    def data(self) -> np.ndarray:
        """The latents as float rows, shape ``(N, D)`` (a view of the input when possible)."""
        if self._data is None:
            self._data = _as_2d(self._source, "data")
        return self._data

    @property
    def recall_(self) -> float | None:
        """Measured recall of the approximate search, None for an exact index (fits the index)."""
        self.fit()
        return self._recall

    @recall_.setter
    def recall_(self, value: float | None) -> None:
        self._recall = value

    @property
    def build_seconds(self) -> float:
        """Seconds :meth:`fit` took (fits the index)."""
        self.fit()
        return self._build_seconds

    @property
    def n_samples(self) -> int:
        """Number of latents in the index."""
        return int(self._shape[0])

    @property
    def n_features(self) -> int:
        """Length of one flattened latent."""
        return int(self._shape[1])

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        # No fit() here: a repr must stay cheap.
        recall = "not measured yet" if self._recall is None else f"{self._recall:.3f}"
        kind = f"approximate ({self.backend}, recall {recall})" if self.approximate else "exact"
        return f"LatentIndex({self.n_samples} x {self.n_features} {self.data.dtype}, {self.metric}, {kind})"

    def _queries(self, queries: Any) -> np.ndarray:
        q = np.asarray(queries)
        if q.shape == self.sample_shape:  # one latent, not a batch
            q = q[None]
        q = _as_2d(q, "queries")
        if q.shape[1] != self.n_features:
            raise ValueError(
                f"queries have {q.shape[1]} features per latent but the index has {self.n_features} "
                f"(latent shape {self.sample_shape}); encode them with the same model."
            )
        return q

    def _check_k(self, k: int, excluding: bool) -> int:
        k = int(k)
        limit = self.n_samples - (1 if excluding else 0)
        if not 1 <= k <= limit:
            raise ValueError(f"k must be in 1..{limit} for an index of {self.n_samples} latents, got {k}")
        return k

    # ------------------------------------------------------------------ query

    def query(
        self,
        queries: np.ndarray,
        k: int = 1,
        *,
        exclude: np.ndarray | None = None,
        exact: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest dataset latents of each query.

        Parameters
        ----------
        queries : ndarray, shape (M, *latent_shape), (M, D) or one latent
        k : int
        exclude : ndarray of int, shape (M,), optional
            A dataset index to leave out of each query's result (its own
            index when the queries are dataset points); -1 for none.
        exact : bool, optional
            Force the exact search on an approximate index.

        Returns
        -------
        indices : ndarray, int64, shape (M, k)
            Nearest first; equal distances in index order.
        distances : ndarray, float64, shape (M, k)

        Examples
        --------
        >>> index = LatentIndex(np.array([[0.0], [2.0], [1.0], [2.0]]))
        >>> index.query(np.array([[2.0]]), k=3)[0].tolist()   # tie 1 vs 3: index order
        [[1, 3, 2]]
        """
        self.fit()
        q = self._queries(queries)
        excl = None
        if exclude is not None:
            excl = np.asarray(exclude, np.int64).reshape(-1)
            if excl.shape != (len(q),):
                raise ValueError(f"exclude must have one index per query ({len(q)}), got {excl.shape}")
        k = self._check_k(k, excl is not None and bool((excl >= 0).any()))
        if self.approximate and not exact:
            return self._query_approximate(q, k, excl)
        return self._query_exact(q, k, excl)

    def _refine(self, q64: np.ndarray, qnorm: float, cand: np.ndarray) -> np.ndarray:
        """Exact float64 distances from one query to the candidate rows."""
        x = self.data
        out = np.empty(len(cand), np.float64)
        for block in iter_row_blocks(len(cand), _BLOCK_BYTES // (8 * max(self.n_features, 1))):
            ids = cand[block]
            if len(ids) == 1:  # a slice is a view: one conversion instead of two copies
                i = int(ids[0])
                rows = x[i : i + 1].astype(np.float64)
            else:
                rows = x[ids].astype(np.float64, copy=False)
            if self.metric == "euclidean":
                rows -= q64
                out[block] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
            else:
                denom = self._norms[ids] * qnorm
                dots = np.einsum("ij,j->i", rows, q64)  # BLAS dgemv threads contend on busy machines
                cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
                out[block] = np.clip(1.0 - cos, 0.0, 2.0)
        return out

    def _rerank(self, q: np.ndarray, cand_rows: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        m = len(cand_rows)
        idx = np.empty((m, k), np.int64)
        dist = np.empty((m, k), np.float64)
        for r, cand in enumerate(cand_rows):
            q64 = q[r].astype(np.float64)
            qnorm = math.sqrt(float(q64 @ q64)) if self.metric == "cosine" else 0.0
            d = self._refine(q64, qnorm, cand)
            order = np.lexsort((cand, d))[:k]
            idx[r], dist[r] = cand[order], d[order]
        return idx, dist

    def _query_exact(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        x = self.data
        n = self.n_samples
        # One GEMM per block of queries, in the data's dtype (no float64 copy of x).
        qc = q if q.dtype == x.dtype else q.astype(x.dtype)
        # ||q||^2 shifts a whole row of distances (and ||q|| scales a row of
        # cosines) equally, so it cannot change the candidates: the data's
        # precision is enough here; the refinement recomputes exact values.
        q_sq = np.einsum("ij,ij->i", qc, qc).astype(np.float64)
        q_norm = np.sqrt(q_sq)
        cand_rows: list[np.ndarray] = []
        for b in iter_row_blocks(len(q), _BLOCK_BYTES // (8 * 3 * n)):
            # (x @ q.T).T, not q @ x.T: OpenBLAS is several times faster with
            # the tall data matrix on the left when there are few queries.
            g = (x @ qc[b].T).T
            bound = self._norms[None, :] * (self._rtol * q_norm[b, None])
            if q.dtype != x.dtype:  # the queries were rounded to the data's dtype too
                bound *= 2.0
            if self.metric == "euclidean":
                approx = g.astype(np.float64)
                approx *= -2.0
                approx += self._sq_norms[None, :]
                approx += q_sq[b, None]
                bound *= 2.0
            else:
                denom = q_norm[b, None] * self._norms[None, :]
                cos = np.divide(g, denom, out=np.zeros(g.shape, np.float64), where=denom > 0)
                approx = 1.0 - cos
                bound = np.divide(bound, denom, out=np.zeros_like(bound), where=denom > 0)
            # Absolute slack for the float64 arithmetic above.
            bound += 1e-12 * (np.abs(approx) + 1.0)
            if exclude is not None:
                rows = np.flatnonzero(exclude[b] >= 0)
                approx[rows, exclude[b][rows]] = np.inf
            upper = approx + bound
            kth_upper = np.partition(upper, k - 1, axis=1)[:, k - 1]
            # Every point whose lower bound is within the k-th upper bound may be
            # in the true top k; refine them all (usually k of them).
            maybe = (approx - bound) <= kth_upper[:, None]
            cand_rows.extend(np.flatnonzero(row) for row in maybe)
        return self._rerank(q, cand_rows, k)

    # ------------------------------------------------------------------ approximate

    def _build_approximate(self, sketch_dims: int) -> None:
        if self.backend == "svd":
            from sklearn.decomposition import TruncatedSVD

            n, d = self.data.shape
            r = int(max(1, min(sketch_dims, n - 1, d - 1)))
            # Uncentred SVD keeps the mean direction, so inner products (and
            # hence both metrics) are preserved in the sketch's subspace.
            svd = TruncatedSVD(r, algorithm="randomized", random_state=self.random_state)
            svd.fit(self.data)
            self._components = np.ascontiguousarray(svd.components_, dtype=self.data.dtype)
            self._sketch = LatentIndex(self.data @ self._components.T, self.metric, approximate=False)
        else:
            import pynndescent

            self._nnd = pynndescent.NNDescent(
                self.data, metric=self.metric, random_state=self.random_state, low_memory=True
            )
            self._nnd.prepare()

    def _query_approximate(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if self.backend == "svd":
            c = self.n_candidates or max(10 * k, 64)
            c = min(c, self.n_samples - (1 if exclude is not None else 0))
            qs = q.astype(self.data.dtype, copy=False) @ self._components.T
            cand, _ = self._sketch.query(qs, max(c, k), exclude=exclude)
            return self._rerank(q, list(cand), k)
        extra = 0 if exclude is None else 1
        cand, _ = self._nnd.query(q.astype(np.float32, copy=False), k=k + extra)
        cand = np.asarray(cand, np.int64)
        rows = []
        for r in range(len(q)):
            row = cand[r][cand[r] >= 0]
            if exclude is not None:
                row = row[row != exclude[r]]
            rows.append(row[: k + extra])
        short = [r for r, row in enumerate(rows) if len(row) < k]
        for r, row in enumerate(rows):
            if len(row) < k:  # a tiny graph can return fewer than k: pad, fixed below
                rows[r] = np.arange(k, dtype=np.int64)
        idx, dist = self._rerank(q, rows, k)
        if short:
            sel = np.array(short)
            idx[sel], dist[sel] = self._query_exact(q[sel], k, None if exclude is None else exclude[sel])
        return idx, dist

    def measure_recall(self, n_queries: int = 200, k: int = 10) -> float:
        """Recall@k of this index's search against the exact one.

        Dataset points are the queries, each excluded from its own result.
        Sets and returns ``recall_`` (1.0 for an exact index); fits the
        index first.

        Examples
        --------
        >>> LatentIndex(np.random.default_rng(0).normal(size=(50, 3))).measure_recall()
        1.0
        """
        self.fit()
        k = min(k, self.n_samples - 1)
        if k < 1:
            self.recall_ = 1.0
            return 1.0
        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(self.n_samples, min(n_queries, self.n_samples), replace=False))
        q = self.data[sample]
        got, _ = self.query(q, k, exclude=sample)
        want, _ = self.query(q, k, exclude=sample, exact=True)
        self.recall_ = recall_at_k(got, want)
        return self.recall_

    # ------------------------------------------------------------------ helpers

    def self_query(self, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other latents of every dataset latent.

        Returns
        -------
        indices : ndarray, int64, shape (N, k)
        distances : ndarray, float64, shape (N, k)

        Examples
        --------
        >>> LatentIndex(np.array([[0.0], [1.0], [3.0]])).self_query(1)[0].ravel().tolist()
        [1, 0, 1]
        """
        return self.query(self.data, k, exclude=np.arange(self.n_samples))

    def nn_distance_scale(self) -> float:
        """Median distance of a dataset latent to its nearest other latent (cached).

        The typical spacing of the data: a path step much farther than this
        from every real latent has left the data.
        """
        if self._nn_scale is None:
            if self.n_samples < 2:
                self._nn_scale = float("nan")
            else:
                self._nn_scale = float(np.median(self.self_query(1)[1][:, 0]))
        return self._nn_scale


def knn(
    queries: np.ndarray,
    data: np.ndarray,
    k: int = 1,
    metric: Literal["euclidean", "cosine"] = "euclidean",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN of ``queries`` among ``data`` (a one-off :class:`LatentIndex`).

    Returns
    -------
    indices : ndarray, int64, shape (M, k)
    distances : ndarray, float64, shape (M, k)

    Examples
    --------
    >>> knn(np.array([[0.1, 0.0]]), np.array([[0.0, 0.0], [1.0, 0.0]]), k=2)[0].tolist()
    [[0, 1]]
    """
    return LatentIndex(data, metric, approximate=False).query(queries, k)


def path_neighbors(
    path_latents: np.ndarray,
    data_or_index: np.ndarray | LatentIndex,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
) -> PathNeighbors:
    """Nearest real latent of each step of a path.

    Parameters
    ----------
    path_latents : ndarray, shape (S, *latent_shape)
    data_or_index : ndarray (N, *latent_shape) or LatentIndex
        Pass an index when calling repeatedly: it is built once.
    metric : {"euclidean", "cosine"}
        Only used when ``data_or_index`` is an array.

    Returns
    -------
    PathNeighbors

    Examples
    --------
    >>> data = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 0.2]])
    >>> steps = np.linspace(0, 1, 5)[:, None] * np.array([10.0, 0.0])
    >>> pn = path_neighbors(steps, data)
    >>> pn.indices.tolist(), pn.n_distinct
    ([0, 0, 2, 1, 1], 3)
    """
    index = data_or_index if isinstance(data_or_index, LatentIndex) else LatentIndex(data_or_index, metric)
    idx, dist = index.query(path_latents, k=1)
    return PathNeighbors(idx[:, 0], dist[:, 0], len(np.unique(idx[:, 0])))


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
    a = _as_2d(x, "x")
    b = a if y is None else _as_2d(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x has {a.shape[1]} features per row and y has {b.shape[1]}")
    n, m, d = len(a), len(b), a.shape[1]
    gram = np.zeros((n, m), np.float64)
    for cols in iter_row_blocks(d, _BLOCK_BYTES // (8 * max(n + m, 1))):
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
