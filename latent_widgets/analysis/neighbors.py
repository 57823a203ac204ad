"""Nearest neighbours of latents among a dataset's latents.

:class:`LatentIndex` is built once per dataset and queried many times (the
widgets query it on every slider move). It is a scikit-learn style
estimator: the constructor takes the search's settings,
:meth:`LatentIndex.fit` the latents, and it delegates the work to the parts
of the search, one module each:

- :mod:`~latent_widgets.analysis.latent_rows`: the latents as float rows, an
  ndarray or a store too big for memory (a Zarr array, an ``np.memmap``,
  anything whose row slices are arrays) read in row blocks of bounded size;
- :mod:`~latent_widgets.analysis.exact_search`: the exact float64 k-NN at
  about the cost of one matrix product in the data's dtype (candidates
  bounded by the rounding error, re-measured exactly, ties by lower index);
- :mod:`~latent_widgets.analysis.approximate_search`: candidates from a
  truncated-SVD sketch or an NN-descent graph, re-ranked exactly;
- :mod:`~latent_widgets.analysis.recall`: the recall@k of an approximate
  search against the exact one.

``algorithm`` picks the search: ``"exact"``; ``"svd"``, an exact search in a
64-dimensional truncated-SVD sketch of the data (scikit-learn) whose best
candidates are re-ranked exactly; ``"pynndescent"``, an NN-descent graph; or
``"auto"`` (the default), exact up to :data:`DEFAULT_THRESHOLD` samples x
features and :data:`AUTO_ALGORITHM` above. The recall@10 of an approximate
index against the exact search is measured when it is fitted
(``LatentIndex.recall_``) and shown by its ``repr``.

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

import time
from typing import Any, Literal, NamedTuple

import numpy as np

from ..core.arrays import BLOCK_BYTES, iter_row_blocks
from .approximate_search import ApproximateSearch, fit_sketch
from .distances import METRICS
from .exact_search import ExactSearch
from .latent_rows import LatentRows
from .recall import measure_recall

__all__ = [
    "ALGORITHMS",
    "APPROXIMATE_ALGORITHMS",
    "AUTO_ALGORITHM",
    "DEFAULT_THRESHOLD",
    "LatentIndex",
    "PathNeighbors",
    "knn",
    "path_neighbors",
]

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
    rows_ : LatentRows
        The latents as rows (:class:`~latent_widgets.analysis.latent_rows.LatentRows`).
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
        block_bytes: int = BLOCK_BYTES,
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
        rows = LatentRows(X, self.block_bytes)
        n, d = rows.shape
        if self.algorithm == "auto":
            algorithm = AUTO_ALGORITHM if n * d > self.threshold else "exact"
        else:
            algorithm = self.algorithm
        if algorithm == "pynndescent" and self.sketch_dims is None and rows.streamed:
            raise ValueError(
                "algorithm='pynndescent' on raw features needs the latents in memory; pass sketch_dims "
                "(e.g. 64) to build the graph on a sketch streamed from the store, or load the store first"
            )
        self.rows_ = rows
        self.sample_shape: tuple[int, ...] = rows.sample_shape
        self.algorithm_ = algorithm
        rerank = self._rerank_param
        self.rerank = rows.cheap_take if rerank is None else bool(rerank)
        self._exact: ExactSearch | None = None
        self._approximate: ApproximateSearch | None = None
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
            components = fit_sketch(self.rows_, int(self.sketch_dims), self.random_state)
        # One pass over the rows: norms and, for an approximate index, the sketch.
        sq_norms, sketch = self.rows_.sq_norms_and_sketch(components)
        self._exact = ExactSearch(self.rows_, self.metric, sq_norms)
        if self.approximate:
            self._approximate = ApproximateSearch(
                self._exact,
                self.algorithm_,
                components,
                sketch,
                n_candidates=self.n_candidates,
                rerank=self.rerank,
                random_state=self.random_state,
            )
        # Prepared from here on: measuring the recall queries the index.
        self._prepared = True
        if self.approximate:
            try:
                self.measure_recall(self.recall_queries, self.recall_k)
            except BaseException:
                self._prepared = False
                raise
        self._build_seconds = time.perf_counter() - t0

    @property
    def approximate(self) -> bool:
        """Whether queries are approximate: ``algorithm_`` is ``"svd"`` or ``"pynndescent"``."""
        self._require_fitted()
        return self.algorithm_ != "exact"

    @property
    def data(self) -> Any:
        """The latents: float rows ``(N, D)`` (a view of an in-memory input when possible), or the store as given."""
        self._require_fitted()
        return self.rows_.data

    @property
    def dtype(self) -> np.dtype:
        """Float dtype the search computes in (float64 data stay float64, other data become float32)."""
        self._require_fitted()
        return self.rows_.dtype

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
    def norms(self) -> np.ndarray:
        """Euclidean norm of each dataset latent, float64 ``(N,)`` (prepares a lazy fit).

        Examples
        --------
        >>> LatentIndex().fit(np.array([[3.0, 4.0], [0.0, 1.0]])).norms.tolist()
        [5.0, 1.0]
        """
        self._prepare()
        assert self._exact is not None  # prepared
        return self._exact.norms

    @property
    def n_samples(self) -> int:
        """Number of latents in the index."""
        self._require_fitted()
        return self.rows_.n_samples

    @property
    def n_features(self) -> int:
        """Length of one flattened latent."""
        self._require_fitted()
        return self.rows_.n_features

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        # Nothing prepared here: a repr must stay cheap.
        if not self._bound:
            return f"LatentIndex(algorithm={self.algorithm!r}, metric={self.metric!r}, not fitted)"
        recall = "not measured yet" if self._recall is None else f"{self._recall:.3f}"
        kind = f"approximate ({self.algorithm_}, recall@{self.recall_k} {recall})" if self.approximate else "exact"
        where = f" streamed from {type(self.rows_.source).__name__}" if self.rows_.streamed else ""
        return f"LatentIndex({self.n_samples} x {self.n_features} {self.dtype}{where}, {self.metric}, {kind})"

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
        q = self.rows_.as_queries(queries)
        excl = None
        if exclude is not None:
            excl = np.asarray(exclude, np.int64).reshape(-1)
            if excl.shape != (len(q),):
                raise ValueError(f"exclude must have one index per query ({len(q)}), got {excl.shape}")
        k = self._check_k(k, excl is not None and bool((excl >= 0).any()))
        if self._approximate is not None and not exact:
            return self._approximate.query(q, k, excl)
        assert self._exact is not None  # prepared
        return self._exact.query(q, k, excl)

    def measure_recall(self, n_queries: int = 200, k: int = 10) -> float:
        """Recall@k of this index's search against the exact one.

        Dataset points are the queries, each excluded from its own result
        (:func:`~latent_widgets.analysis.recall.measure_recall`). Sets and
        returns ``recall_`` (1.0 for an exact index); prepares a lazy fit first.

        Examples
        --------
        >>> LatentIndex().fit(np.random.default_rng(0).normal(size=(50, 3))).measure_recall()
        1.0
        """
        self._prepare()
        assert self._exact is not None  # prepared
        search = self._approximate if self._approximate is not None else self._exact
        self.recall_ = measure_recall(search, self._exact, self.rows_, n_queries, k, self.random_state)
        return self.recall_

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
        if not self.rows_.streamed:
            return self.query(self.data, k, exclude=np.arange(self.n_samples))
        idx = np.empty((self.n_samples, k), np.int64)
        dist = np.empty((self.n_samples, k), np.float64)
        for rows in iter_row_blocks(self.n_samples, min(512, self.rows_.block_rows(0))):
            idx[rows], dist[rows] = self.query(self.rows_.read(rows), k, exclude=np.arange(rows.start, rows.stop))
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
