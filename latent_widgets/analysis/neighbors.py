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

The latents may be an ndarray or a store too big for memory (a Zarr array,
an ``np.memmap``, anything whose row slices are arrays): the exact search then
streams row blocks of bounded size, refining each block's candidates while
it is in memory, so each row is read once per batch of queries.

The index is a scikit-learn style estimator: the constructor takes the
search's settings, :meth:`LatentIndex.fit` the latents. ``algorithm`` picks
the search: ``"exact"``; ``"svd"``, an exact search in a 64-dimensional
truncated-SVD sketch of the data (scikit-learn) whose best candidates are
re-ranked exactly; ``"pynndescent"``, an NN-descent graph; or ``"auto"``
(the default), exact up to :data:`DEFAULT_THRESHOLD` samples x features and
:data:`AUTO_ALGORITHM` above. The recall@10 of an approximate index against
the exact search is measured when it is fitted (``LatentIndex.recall_``) and
shown by its ``repr``.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.neighbors import LatentIndex, path_neighbors
>>> data = np.eye(4, dtype=np.float32)
>>> index = LatentIndex().fit(data)
>>> idx, dist = index.query(np.array([[0.9, 0.1, 0, 0]], np.float32), k=2)
>>> idx.tolist(), dist.round(3).tolist()
([[0, 1]], [[0.141, 1.273]])
>>> path_neighbors(data[[0, 0, 3]], index).n_distinct
2
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

import numpy as np

from ..core.arrays import iter_row_blocks

__all__ = [
    "ALGORITHMS",
    "APPROXIMATE_ALGORITHMS",
    "AUTO_ALGORITHM",
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
#: Values of ``LatentIndex(algorithm=...)``.
ALGORITHMS: tuple[str, ...] = ("auto", "exact", "svd", "pynndescent")
#: The approximate ones.
APPROXIMATE_ALGORITHMS: tuple[str, ...] = ("svd", "pynndescent")
#: What ``algorithm="auto"`` uses above :data:`DEFAULT_THRESHOLD` (see docs/analysis.md,
#: "Neighbours at scale": builds in seconds where NN-descent takes minutes, at equal recall).
AUTO_ALGORITHM: str = "svd"
#: ``algorithm="auto"`` searches approximately when samples x features
#: exceeds this: from 100k x 1024 float32 (400 MB) an exact query of a
#: 12-step path reads the whole array (0.25 s to 1 s on 2 cores) where the SVD
#: sketch answers in a sixth of that at recall@10 0.99 (docs/analysis.md);
#: the study's 367 x 221184 latents (8.1e7) stay exact.
DEFAULT_THRESHOLD: int = 100_000_000

# Rows the SVD sketch is fitted on: its components barely change beyond.
_SKETCH_FIT_ROWS = 20_000
# Bound on the rounding error of a dot product q.x computed in a dtype with
# machine epsilon eps: |err| <= _ERR_FACTOR * eps * sqrt(D) * |q| |x|. Blocked
# BLAS summation grows like a random walk; on float32 data of 100 to 221184
# features the observed maximum is below 0.2 of this bound with factor 1.
_ERR_FACTOR = 2.0
# Bytes of one block read from a store, and of the float64 temporaries of one step.
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


def _is_store(x: Any) -> bool:
    """Row-indexable latents that are not (or should not be) one array in memory."""
    if isinstance(x, np.ndarray):
        return isinstance(x, np.memmap)
    return hasattr(x, "shape") and hasattr(x, "__getitem__") and not isinstance(x, (list, tuple))


def _float_dtype(dtype: Any) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


class LatentIndex:
    """k-nearest-neighbour search among a fixed set of latents (a scikit-learn style estimator).

    ``LatentIndex(algorithm=..., metric=...)`` holds the settings;
    :meth:`fit` takes the latents and prepares the search; :meth:`query`
    answers.

    Parameters
    ----------
    algorithm : {"auto", "exact", "svd", "pynndescent"}
        ``"exact"``: the exact search. ``"svd"`` finds ``n_candidates`` per
        query by an exact search in a ``sketch_dims``-dimensional
        truncated-SVD sketch (no compilation, fine for very wide latents).
        ``"pynndescent"`` finds them in an NN-descent graph (numba; the
        first build in a process compiles for a minute or more) over the
        sketch, or over the raw features with ``sketch_dims=None``
        (in-memory data only). ``"auto"``: exact when ``N * D <= threshold``,
        else :data:`AUTO_ALGORITHM`.
    metric : {"euclidean", "cosine"}
        Cosine distance is ``1 - cos``; a zero vector has cosine 0 to anything.
    threshold : int
        Size (samples x features) above which ``"auto"`` goes approximate.
    sketch_dims : int or None
        Dimensions of the SVD sketch (fitted on at most 20000 sampled rows).
    n_candidates : int, optional
        Candidates re-ranked per query (default ``max(10 k, 64)``).
    rerank : bool, optional
        Re-measure the approximate candidates exactly against the true
        latents and re-rank them. Default: when rows can be fetched cheaply
        (in-memory data or a memmap); for a chunked store the candidates'
        chunks would be read on every query, so by default the distances and
        order are then those of the sketch or graph (approximate).
    random_state : int
        Seed of the approximate search and of the recall sample.
    recall_queries, recall_k : int
        The recall of an approximate index is measured on this many dataset
        points (each excluded from its own search) at this ``k``.
    block_bytes : int
        Bound on the bytes of one block of rows read from a store, and of the
        float64 temporaries of one step of the exact search.

    Attributes
    ----------
    data : ndarray (N, D), or the store as given
    sample_shape : tuple
        Shape of one latent as given.
    algorithm_ : str
        ``"exact"``, ``"svd"`` or ``"pynndescent"``: the search queries use
        (``algorithm`` resolved against the data's size).
    approximate : bool
        Whether queries are approximate (``algorithm_ != "exact"``).
    recall_ : float or None
        Measured recall@``recall_k`` of the approximate search (None if exact).
    build_seconds : float
        Time the preparation took (norms, sketch or graph, recall measurement).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = rng.normal(size=(100, 4, 4, 8)).astype(np.float32)
    >>> index = LatentIndex().fit(data)
    >>> idx, dist = index.query(data[:3] + 0.01, k=1)
    >>> idx[:, 0].tolist()
    [0, 1, 2]

    A store on disk is streamed in blocks, with the same results:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "latents.f32")
    >>> mm = np.memmap(path, np.float32, "w+", shape=data.shape)
    >>> mm[:] = data
    >>> LatentIndex(block_bytes=4096).fit(mm).query(data[:3] + 0.01, k=1)[0][:, 0].tolist()
    [0, 1, 2]
    """

    def __init__(
        self,
        algorithm: Literal["auto", "exact", "svd", "pynndescent"] = "auto",
        metric: Literal["euclidean", "cosine"] = "euclidean",
        *,
        threshold: int = DEFAULT_THRESHOLD,
        sketch_dims: int | None = 64,
        n_candidates: int | None = None,
        rerank: bool | None = None,
        random_state: int = 0,
        recall_queries: int = 200,
        recall_k: int = 10,
        block_bytes: int = _BLOCK_BYTES,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}: 'exact' for the exact search, "
                f"{APPROXIMATE_ALGORITHMS} for an approximate one, 'auto' to choose by size"
            )
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if sketch_dims is not None and int(sketch_dims) < 1:
            raise ValueError(f"sketch_dims must be a positive int or None, got {sketch_dims!r}")
        if n_candidates is not None and int(n_candidates) < 1:
            raise ValueError(f"n_candidates must be a positive int or None, got {n_candidates!r}")
        self.algorithm = algorithm
        self.metric = metric
        self.threshold = int(threshold)
        self.sketch_dims = sketch_dims
        self.n_candidates = n_candidates
        self.random_state = random_state
        self.recall_queries = recall_queries
        self.recall_k = recall_k
        self.block_bytes = int(block_bytes)
        self._rerank_param = rerank
        self._bound = False

    def fit(self, X: Any, y: Any = None, *, lazy: bool = False) -> LatentIndex:
        """Index the latents ``X`` and prepare the search: norms, then the sketch or graph and its recall.

        Parameters
        ----------
        X : ndarray or row-indexable store, shape (N, *latent_shape)
            The dataset latents, any rank. An ndarray is flattened to (N, D)
            without a copy when contiguous. Anything else with a ``shape``
            whose slices ``X[a:b]`` are arrays (a Zarr array, an
            ``np.memmap``, a latent store) is never loaded whole: it is read
            in row blocks of about ``block_bytes``, once here (twice with a
            sketch: a row sample, then everything). Kept by reference: do not
            modify them afterwards.
        y : ignored
            scikit-learn's signature.
        lazy : bool
            Only check ``X`` now and prepare on the first query (or on
            reading ``recall_`` / ``build_seconds``): for a widget that
            builds an index per dataset but may never query it.

        Returns
        -------
        LatentIndex
            This index.

        Raises
        ------
        ValueError
            ``X`` is not ``(N, ...)`` with ``N >= 1``, or ``"pynndescent"`` on
            raw features (``sketch_dims=None``) of a store.

        Examples
        --------
        >>> LatentIndex().fit(np.eye(3)).build_seconds >= 0
        True
        """
        store = _is_store(X)
        src = X if store else np.asarray(X)
        shape = tuple(int(s) for s in src.shape)
        if len(shape) < 2:
            raise ValueError(f"data must have shape (N, ...) with one latent per row, got {shape}")
        if shape[0] == 0:
            raise ValueError("data is empty; an index needs at least one latent")
        n, d = shape[0], math.prod(shape[1:])
        if self.algorithm == "auto":
            algorithm = AUTO_ALGORITHM if n * d > self.threshold else "exact"
        else:
            algorithm = self.algorithm
        if algorithm == "pynndescent" and self.sketch_dims is None and store:
            raise ValueError(
                "algorithm='pynndescent' on raw features needs the latents in memory; pass sketch_dims "
                "(e.g. 64) to build the graph on a sketch streamed from the store, or load the store first"
            )
        self._store = store
        self._source = src
        self._data: np.ndarray | None = None
        self.sample_shape: tuple[int, ...] = shape[1:]
        self._shape = (n, d)
        self._dtype = _float_dtype(getattr(src, "dtype", np.float32))
        self.algorithm_ = algorithm
        # Fetching scattered rows is cheap from memory or a memmap, not from a
        # compressed chunked store (each row costs a chunk).
        rerank = self._rerank_param
        self.rerank = (not store or isinstance(src, np.ndarray)) if rerank is None else bool(rerank)
        self._recall: float | None = None
        self._build_seconds = 0.0
        self._prepared = False
        self._nn_scale: float | None = None
        self._bound = True
        if not lazy:
            self._prepare()
        return self

    def _require_fitted(self) -> None:
        if not self._bound:
            from sklearn.exceptions import NotFittedError  # a ValueError and an AttributeError

            raise NotFittedError("this LatentIndex has no latents yet: call index.fit(latents) first")

    def _prepare(self) -> None:
        """The O(N D) work of :meth:`fit`, once: norms, the sketch or graph, the recall."""
        self._require_fitted()
        if self._prepared:
            return
        t0 = time.perf_counter()
        components = None
        if self.approximate and self.sketch_dims is not None:
            components = self._fit_sketch(int(self.sketch_dims))
        n = self.n_samples
        self._sq_norms = np.empty(n, np.float64)
        sketch = None if components is None else np.empty((n, len(components)), self._dtype)
        # One pass over the rows: norms in float64 (a bounded block at a
        # time) and, for an approximate index, the sketch.
        for rows in self._read_blocks(8):
            xb = self._read(rows)
            for sub in iter_row_blocks(len(xb), self.block_bytes // (8 * max(self.n_features, 1))):
                b64 = xb[sub].astype(np.float64, copy=False)
                self._sq_norms[rows.start + sub.start : rows.start + sub.stop] = np.einsum("ij,ij->i", b64, b64)
            if sketch is not None:
                sketch[rows] = xb @ components.T
        self._norms = np.sqrt(self._sq_norms)
        self._eps = float(np.finfo(self._dtype).eps)
        self._rtol = _ERR_FACTOR * self._eps * math.sqrt(self.n_features)
        if self.approximate:
            self._build_approximate(components, sketch)
        # Prepared from here on: measuring the recall queries the index.
        self._prepared = True
        if self.approximate:
            try:
                self.measure_recall(self.recall_queries, self.recall_k)
            except BaseException:
                self._prepared = False
                raise
        self._build_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ basics

    @property
    def approximate(self) -> bool:
        """Whether queries are approximate: ``algorithm_`` is ``"svd"`` or ``"pynndescent"``."""
        self._require_fitted()
        return self.algorithm_ != "exact"

    @property
    def data(self) -> Any:
        """The latents: float rows ``(N, D)`` (a view of an in-memory input when possible), or the store as given."""
        self._require_fitted()
        if self._store:
            return self._source
        if self._data is None:
            self._data = _as_2d(self._source, "data")
        return self._data

    @property
    def dtype(self) -> np.dtype:
        """Float dtype the search computes in (float64 data stay float64, other data become float32)."""
        return self.data.dtype if not self._store else self._dtype

    @property
    def recall_(self) -> float | None:
        """Measured recall of the approximate search, None for an exact index (prepares a lazy fit)."""
        self._prepare()
        return self._recall

    @recall_.setter
    def recall_(self, value: float | None) -> None:
        self._recall = value

    @property
    def build_seconds(self) -> float:
        """Seconds the preparation of :meth:`fit` took (prepares a lazy fit)."""
        self._prepare()
        return self._build_seconds

    @property
    def n_samples(self) -> int:
        """Number of latents in the index."""
        self._require_fitted()
        return int(self._shape[0])

    @property
    def n_features(self) -> int:
        """Length of one flattened latent."""
        self._require_fitted()
        return int(self._shape[1])

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        # Nothing prepared here: a repr must stay cheap.
        if not self._bound:
            return f"LatentIndex(algorithm={self.algorithm!r}, metric={self.metric!r}, not fitted)"
        recall = "not measured yet" if self._recall is None else f"{self._recall:.3f}"
        kind = f"approximate ({self.algorithm_}, recall@{self.recall_k} {recall})" if self.approximate else "exact"
        where = f" streamed from {type(self._source).__name__}" if self._store else ""
        return f"LatentIndex({self.n_samples} x {self.n_features} {self.dtype}{where}, {self.metric}, {kind})"

    # ------------------------------------------------------------------ reading rows

    def _block_rows(self, temp_bytes_per_row: int) -> int:
        """Rows per block: bounded by the block bytes (stores) and the temporaries per row."""
        rows = max(1, self.block_bytes // max(temp_bytes_per_row, 1))
        if self._store:
            rows = min(rows, max(1, self.block_bytes // (self.n_features * self._dtype.itemsize)))
            chunk = getattr(self._source, "chunks", None)
            if isinstance(chunk, tuple) and chunk and isinstance(chunk[0], int) and 0 < chunk[0] <= rows:
                rows -= rows % chunk[0]  # whole chunks: each is decompressed once
        return rows

    def _read_blocks(self, temp_bytes_per_row: int) -> Iterator[slice]:
        return iter_row_blocks(self.n_samples, self._block_rows(temp_bytes_per_row))

    def _read(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` as float ``(B, D)``: a view of in-memory data, a copy read from a store."""
        if not self._store:
            return self.data[rows]
        block = np.asarray(self._source[rows])
        block = block.reshape(len(block), -1)
        return block if block.dtype == self._dtype else block.astype(self._dtype)

    def _take(self, ids: np.ndarray) -> np.ndarray:
        """Rows at sorted unique ``ids`` as float ``(len(ids), D)``."""
        if not self._store:
            return self.data[ids]
        if isinstance(self._source, np.ndarray):  # memmap: fancy indexing reads only the pages needed
            block = np.asarray(self._source[ids]).reshape(len(ids), -1)
            return block if block.dtype == self._dtype else block.astype(self._dtype)
        out = np.empty((len(ids), self.n_features), self._dtype)
        chunk = getattr(self._source, "chunks", None)
        # Rows are grouped by chunk (or block): one read per group holding any id.
        step = self._block_rows(0)
        if isinstance(chunk, tuple) and chunk and isinstance(chunk[0], int) and chunk[0] > 0:
            step = min(step, chunk[0])
        groups = ids // step
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ids)], strict=True):
            first, last = int(ids[lo]), int(ids[hi - 1])
            out[lo:hi] = self._read(slice(first, last + 1))[ids[lo:hi] - first]
        return out

    # ------------------------------------------------------------------ queries

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
        >>> index = LatentIndex().fit(np.array([[0.0], [2.0], [1.0], [2.0]]))
        >>> index.query(np.array([[2.0]]), k=3)[0].tolist()   # tie 1 vs 3: index order
        [[1, 3, 2]]
        """
        self._prepare()
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

    def _pair_keys(
        self, q64: np.ndarray, qnorm: np.ndarray, qsel: np.ndarray, x: np.ndarray, xsel: np.ndarray, xnorm: np.ndarray
    ) -> np.ndarray:
        """Exact float64 keys of the pairs (query ``qsel[p]``, row ``xsel[p]`` of ``x``), ``qsel`` sorted.

        Squared distance for euclidean (no cancellation: the difference is
        formed first), ``1 - cos`` for cosine.
        """
        out = np.empty(len(qsel), np.float64)
        step = max(1, self.block_bytes // (8 * max(self.n_features, 1)))
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

    def _final(self, keys: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances from keys, each row sorted by (distance, index), first ``k``."""
        dist = np.sqrt(keys) if self.metric == "euclidean" else keys
        order = np.lexsort((idx, dist), axis=1)[:, :k]
        return np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)

    def _query_exact(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        idx = np.empty((len(q), k), np.int64)
        dist = np.empty((len(q), k), np.float64)
        # A store is read once per chunk of queries; memory is read at BLAS speed.
        q_chunk = 512 if self._store else 2048
        for b in iter_row_blocks(len(q), q_chunk):
            idx[b], dist[b] = self._query_exact_chunk(q[b], k, None if exclude is None else exclude[b])
        return idx, dist

    def _query_exact_chunk(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        m = len(q)
        dtype = self.dtype
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
        for rows in self._read_blocks(8 * 4 * m):
            xb = self._read(rows)
            g = (xb @ qc.T).T  # tall matrix on the left: several times faster in OpenBLAS for few queries
            norms = self._norms[rows]
            bound = norms[None, :] * (self._rtol * q_norm[:, None])
            if q.dtype != dtype:  # the queries were rounded to the data's dtype too
                bound *= 2.0
            if self.metric == "euclidean":
                approx = g.astype(np.float64)
                approx *= -2.0
                approx += self._sq_norms[None, rows]
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
            keys = self._pair_keys(q64, q64_norm, r, xb, c, norms[c])
            _merge_top(best, best_i, r, keys, c + rows.start)
        return self._final(best, best_i, k)

    # ------------------------------------------------------------------ approximate

    def _fit_sketch(self, dims: int) -> np.ndarray:
        """Right singular vectors of (a row sample of) the data, rows of shape (r, D)."""
        from sklearn.decomposition import TruncatedSVD

        n, d = self._shape
        rng = np.random.default_rng(self.random_state)
        sample = np.arange(n) if n <= _SKETCH_FIT_ROWS else np.sort(rng.choice(n, _SKETCH_FIT_ROWS, replace=False))
        x = self._take(sample)
        r = int(max(1, min(dims, len(sample) - 1, d - 1)))
        # Uncentred SVD keeps the mean direction, so inner products (and
        # hence both metrics) are preserved in the sketch's subspace.
        svd = TruncatedSVD(r, algorithm="randomized", random_state=self.random_state)
        svd.fit(x)
        return np.ascontiguousarray(svd.components_, dtype=self._dtype)

    def _build_approximate(self, components: np.ndarray | None, sketch: np.ndarray | None) -> None:
        self._components = components
        if self.algorithm_ == "svd":
            # Candidates only need ranking, not exact values: float32 keys
            # (||s||^2 - 2 q.s, or -cos on unit rows) suffice.
            sq = np.einsum("ij,ij->i", sketch, sketch)
            if self.metric == "cosine":
                norm = np.sqrt(sq)
                sketch = np.divide(sketch, norm[:, None], out=np.zeros_like(sketch), where=norm[:, None] > 0)
            self._sketch, self._sketch_sq = sketch, sq
            return
        import pynndescent

        points = sketch if sketch is not None else self.data
        self._nnd = pynndescent.NNDescent(
            points, metric=self.metric, random_state=self.random_state, low_memory=True, n_jobs=None
        )
        self._nnd.prepare()

    def _candidates(self, q: np.ndarray, c: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``c`` candidates per query (-1 where fewer) and their sketch or graph distances."""
        qs = q.astype(self.dtype, copy=False)
        if self._components is not None:
            qs = qs @ self._components.T
        if self.algorithm_ == "svd":
            return self._sketch_candidates(qs, c, exclude)
        extra = 0 if exclude is None else 1
        cand, cd = self._nnd.query(qs.astype(np.float32, copy=False), k=min(c + extra, self.n_samples))
        cand, cd = np.asarray(cand, np.int64), np.asarray(cd, np.float64)
        if exclude is not None:
            cand[cand == exclude[:, None]] = -1
        cd[cand < 0] = np.inf
        if self.metric == "euclidean":
            cd **= 2  # keys are squared distances
        return cand, cd

    def _sketch_candidates(self, qs: np.ndarray, c: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The ``c`` nearest sketch rows of each sketched query, nearest first, and their sketch keys."""
        m, n = len(qs), self.n_samples
        cand = np.empty((m, c), np.int64)
        keys = np.empty((m, c), np.float64)
        q_sq = np.einsum("ij,ij->i", qs, qs)
        if self.metric == "cosine":
            qn = np.sqrt(q_sq)
            qs = np.divide(qs, qn[:, None], out=np.zeros_like(qs), where=qn[:, None] > 0)
        for b in iter_row_blocks(m, self.block_bytes // (8 * n)):
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

    def _query_approximate(self, q: np.ndarray, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        c = self.n_candidates or max(10 * k, 64)
        c = max(k, min(c, self.n_samples - (1 if exclude is not None else 0)))
        idx = np.empty((len(q), k), np.int64)
        dist = np.empty((len(q), k), np.float64)
        # Bound the candidate rows fetched for re-ranking at once.
        step = max(1, self.block_bytes // (c * self.n_features * self.dtype.itemsize))
        for b in iter_row_blocks(len(q), step):
            cand, keys = self._candidates(q[b], c, None if exclude is None else exclude[b])
            if self.rerank:
                keys = self._rerank_keys(q[b], cand)
            keys[cand < 0] = np.inf
            cand = np.where(cand < 0, np.iinfo(np.int64).max, cand)
            idx[b], dist[b] = self._final(keys, cand, k)
        short = np.flatnonzero(~np.isfinite(dist[:, -1]))
        if len(short):  # a tiny graph can return fewer than k: search those exactly
            idx[short], dist[short] = self._query_exact(q[short], k, None if exclude is None else exclude[short])
        return idx, dist

    def _rerank_keys(self, q: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Exact keys of every (query, candidate) pair; inf where no candidate."""
        keys = np.full(cand.shape, np.inf)
        r, j = np.nonzero(cand >= 0)
        ids = cand[r, j]
        uniq, inv = np.unique(ids, return_inverse=True)
        q64 = q.astype(np.float64)
        q64_norm = np.sqrt(np.einsum("ij,ij->i", q64, q64))
        keys[r, j] = self._pair_keys(q64, q64_norm, r, self._take(uniq), inv, self._norms[ids])
        return keys

    def measure_recall(self, n_queries: int = 200, k: int = 10) -> float:
        """Recall@k of this index's search against the exact one.

        Dataset points are the queries, each excluded from its own result.
        Sets and returns ``recall_`` (1.0 for an exact index); prepares a
        lazy fit first.

        Examples
        --------
        >>> LatentIndex().fit(np.random.default_rng(0).normal(size=(50, 3))).measure_recall()
        1.0
        """
        self._prepare()
        k = min(k, self.n_samples - 1)
        if k < 1:
            self.recall_ = 1.0
            return 1.0
        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(self.n_samples, min(n_queries, self.n_samples), replace=False))
        q = self._take(sample)
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
        >>> LatentIndex().fit(np.array([[0.0], [1.0], [3.0]])).self_query(1)[0].ravel().tolist()
        [1, 0, 1]
        """
        self._require_fitted()
        if not self._store:
            return self.query(self.data, k, exclude=np.arange(self.n_samples))
        idx = np.empty((self.n_samples, k), np.int64)
        dist = np.empty((self.n_samples, k), np.float64)
        for rows in iter_row_blocks(self.n_samples, min(512, self._block_rows(0))):
            idx[rows], dist[rows] = self.query(self._read(rows), k, exclude=np.arange(rows.start, rows.stop))
        return idx, dist

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
    return LatentIndex("exact", metric).fit(data).query(queries, k)


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
    index = data_or_index if isinstance(data_or_index, LatentIndex) else LatentIndex(metric=metric).fit(data_or_index)
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
