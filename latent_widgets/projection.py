"""2-D maps of a latent set (PCA, t-SNE, UMAP) and how good they are.

Projections
-----------
:class:`PCAProjection`, :class:`TSNEProjection` and :class:`UMAPProjection`
are scikit-learn style (``fit``, ``fit_transform``, ``transform``,
``embedding_``) and take the latents as they come, ``(N, *latent_shape)``.
Features are computed inside:

- ``features="flatten"`` (default, as the study did): one vector per
  latent, a view of the array when it is contiguous (no copy);
- ``features="gap"``: global average pooling over the spatial axes, one
  value per channel (C numbers instead of H x W x C; positions are lost);
- ``standardize=True``: zero mean, unit variance per feature (one float32
  copy of the features);
- ``pca_dims=k``: a PCA reduction to ``k`` dimensions before t-SNE or UMAP,
  the standard practice for speed. It keeps the ``k`` directions of largest
  variance, so neighbourhoods are computed in that subspace: noise in the
  discarded directions is dropped (often helping t-SNE), but structure that
  lives in low-variance directions is lost too, and the map then shows the
  neighbourhoods of the reduced data rather than of the latents.

All seeds are fixed (``random_state=0``): the same input gives the same map.

Placing new latents (interpolation steps, arithmetic results) on a fitted
map with ``transform``: exact for PCA; UMAP's own ``transform``; for t-SNE,
which has no out-of-sample mapping, a neighbour-weighted placement: the new
point goes to the weighted mean of the map positions of its ``k`` nearest
training latents (feature space), with Gaussian weights whose width is set
per point so that their perplexity is ``transform_perplexity`` (openTSNE's
``transform`` starts from the same weighted mean, then optimises). For
t-SNE and UMAP a new latent equal to a training latent lands exactly on that
latent's point, so an interpolation path starts and ends on its endpoints.

Quality
-------
:func:`trustworthiness` (equal to :func:`sklearn.manifold.trustworthiness`),
:func:`knn_preservation`, :func:`coordinate_ranges`, :func:`spread` (mean
nearest-neighbour distance over median pairwise distance: scale-free),
:func:`group_separation` (silhouette and k-NN group agreement) and
:func:`quality_table`, which computes them all for several methods in one
call.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.projection import PCAProjection, project, trustworthiness
>>> z = np.random.default_rng(0).normal(size=(30, 4, 4, 8)).astype(np.float32)
>>> pca = PCAProjection().fit(z)
>>> pca.embedding_.shape, pca.transform(z[:2]).shape
((30, 2), (2, 2))
>>> np.allclose(pca.transform(z[:2]), pca.embedding_[:2], atol=1e-4)
True
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any, ClassVar, Literal

import numpy as np

from .cache import content_hash

__all__ = [
    "FEATURES",
    "METHODS",
    "PCAProjection",
    "TSNEProjection",
    "UMAPProjection",
    "coordinate_ranges",
    "fit_projection",
    "format_table",
    "group_separation",
    "knn_preservation",
    "latent_features",
    "make_projection",
    "project",
    "quality_table",
    "spread",
    "trustworthiness",
]

#: Projection methods of :func:`make_projection` and :func:`project`.
METHODS: tuple[str, ...] = ("pca", "tsne", "umap")
#: Feature options of the projections.
FEATURES: tuple[str, ...] = ("flatten", "gap")

_CACHE_NS = "projections"
_CACHE_VERSION = "projection-v1"
_BLOCK_BYTES = 1 << 26


# ----------------------------------------------------------------------------
# features


def latent_features(latents: np.ndarray, features: Literal["flatten", "gap"] = "flatten") -> np.ndarray:
    """One feature vector per latent.

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    features : {"flatten", "gap"}
        ``"flatten"``: ``(N, prod(latent_shape))``, a view when contiguous.
        ``"gap"``: mean over every axis but the first and the last (the
        spatial axes of ``(N, H, W, C)``), shape ``(N, C)``.

    Returns
    -------
    ndarray, float32 or float64, shape (N, d)

    Examples
    --------
    >>> latent_features(np.ones((2, 3, 3, 4), np.float32), "gap").shape
    (2, 4)
    """
    x = np.asarray(latents)
    if x.ndim < 2:
        raise ValueError(f"latents must have shape (N, ...) with one latent per row, got {x.shape}")
    if features == "flatten":
        f = x.reshape(len(x), -1)
    elif features == "gap":
        if x.ndim < 3:
            raise ValueError(
                f"features='gap' pools spatial latents (N, H, W, C); these are vectors {x.shape}. "
                "Use features='flatten'."
            )
        f = x.mean(axis=tuple(range(1, x.ndim - 1)), dtype=np.float64)
    else:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if f.dtype not in (np.float32, np.float64):
        f = f.astype(np.float32)
    return f


def _column_mean_std(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std in float64, a bounded block of rows at a time."""
    n, d = f.shape
    step = max(1, _BLOCK_BYTES // (8 * max(d, 1)))
    total = np.zeros(d, np.float64)
    for s in range(0, n, step):
        total += f[s : s + step].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(d, np.float64)
    for s in range(0, n, step):
        block = f[s : s + step].astype(np.float64)
        block -= mean
        sq += np.einsum("ij,ij->j", block, block)
    std = np.sqrt(sq / n)
    std[std == 0] = 1.0  # constant features become 0, not NaN
    return mean, std


def _standardized(f: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out = np.empty(f.shape, np.float32)
    step = max(1, _BLOCK_BYTES // (8 * max(f.shape[1], 1)))
    for s in range(0, len(f), step):
        out[s : s + step] = (f[s : s + step] - mean) / std
    return out


def _import_umap() -> Any:
    # umap's __init__ imports TensorFlow for ParametricUMAP when it can (seconds
    # and hundreds of MB). When TensorFlow is not loaded yet, hide it for the
    # duration of the import: UMAP itself does not need it.
    if "umap" in sys.modules or "tensorflow" in sys.modules:
        import umap

        return umap
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            import umap
    finally:
        del sys.modules["tensorflow"]
    return umap


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


# ----------------------------------------------------------------------------
# projections


class _Projection:
    """Common part of the three projections: features, standardisation, PCA pre-reduction."""

    method: ClassVar[str] = ""

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | None = None,
        random_state: int = 0,
        **method_kwargs: Any,
    ) -> None:
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if int(n_components) < 1:
            raise ValueError(f"n_components must be at least 1, got {n_components}")
        if pca_dims is not None and int(pca_dims) < 1:
            raise ValueError(f"pca_dims must be a positive int or None, got {pca_dims}")
        self.n_components = int(n_components)
        self.features = features
        self.standardize = bool(standardize)
        self.pca_dims = None if pca_dims is None else int(pca_dims)
        self.random_state = random_state
        self.method_kwargs = dict(method_kwargs)

    def get_params(self) -> dict[str, Any]:
        """All parameters, defaults included (the cache key of :func:`project`)."""
        return dict(
            n_components=self.n_components,
            features=self.features,
            standardize=self.standardize,
            pca_dims=self.pca_dims,
            random_state=self.random_state,
            **self.method_kwargs,
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # --------------------------------------------------------------- preprocessing

    def _fit_prepare(self, latents: np.ndarray) -> np.ndarray:
        x = np.asarray(latents)
        f = latent_features(x, self.features)
        self.latent_shape_ = tuple(x.shape[1:])
        self.n_features_in_ = int(f.shape[1])
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.pre_pca_: Any = None
        if self.standardize:
            self.mean_, self.scale_ = _column_mean_std(f)
            f = _standardized(f, self.mean_, self.scale_)
        if self.pca_dims is not None:
            dims = min(self.pca_dims, f.shape[0], f.shape[1])
            if dims < f.shape[1]:
                from sklearn.decomposition import PCA

                self.pre_pca_ = PCA(dims, random_state=self.random_state)
                f = self.pre_pca_.fit_transform(f)
        return f

    def _prepare(self, latents: np.ndarray) -> np.ndarray:
        self._check_fitted()
        x = np.asarray(latents)
        if x.shape == self.latent_shape_:
            x = x[None]
        if x.shape[1:] != self.latent_shape_:
            raise ValueError(
                f"latents must have shape (M, {', '.join(map(str, self.latent_shape_))}) like the "
                f"fitted ones, got {x.shape}"
            )
        f = latent_features(x, self.features)
        if self.mean_ is not None:
            f = _standardized(f, self.mean_, self.scale_)
        if self.pre_pca_ is not None:
            f = self.pre_pca_.transform(f)
        return f

    def _check_fitted(self) -> None:
        if not hasattr(self, "embedding_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(latents) first")

    # --------------------------------------------------------------- API

    def fit(self, latents: np.ndarray, y: Any = None) -> _Projection:
        """Fit the map to ``latents`` (N, *latent_shape); sets ``embedding_``."""
        f = self._fit_prepare(latents)
        if len(f) < 2:
            raise ValueError(f"a map needs at least 2 latents, got {len(f)}")
        self.embedding_ = np.asarray(self._fit_embedding(f), np.float64)
        self._after_fit(f)
        return self

    def fit_transform(self, latents: np.ndarray, y: Any = None) -> np.ndarray:
        """Fit and return the map, shape ``(N, n_components)``, float64."""
        return self.fit(latents).embedding_

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Place new latents on the fitted map, shape ``(M, n_components)``, float64.

        One latent (``latent_shape``) gives shape ``(1, n_components)``.
        """
        f = self._prepare(latents)
        return np.asarray(self._transform_prepared(f), np.float64)

    # subclasses
    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_fit(self, f: np.ndarray) -> None:
        pass

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class PCAProjection(_Projection):
    """Principal component analysis of the latents (scikit-learn ``PCA``).

    ``transform`` is exact (the fitted linear map). ``method_kwargs`` go to
    :class:`sklearn.decomposition.PCA` (e.g. ``svd_solver="full"``; the
    default "auto" uses the seeded randomized solver on wide data).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6))
    >>> PCAProjection().fit_transform(z).shape
    (20, 2)
    """

    method = "pca"

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        n = min(self.n_components, f.shape[0], f.shape[1])
        self.pca_ = PCA(n, random_state=self.random_state, **self.method_kwargs)
        y = self.pca_.fit_transform(f)
        if n < self.n_components:  # fewer samples/features than components: pad with zeros
            y = np.pad(y, ((0, 0), (0, self.n_components - n)))
        return y

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        y = self.pca_.transform(f)
        if y.shape[1] < self.n_components:
            y = np.pad(y, ((0, 0), (0, self.n_components - y.shape[1])))
        return y


class _NeighbourPlacement(_Projection):
    """Keeps the prepared training features for placing new points."""

    def _after_fit(self, f: np.ndarray) -> None:
        self._train_features = f  # a view of the latents for flatten features
        self._index: Any = None

    def _nearest(self, f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            from .neighbors import LatentIndex

            self._index = LatentIndex(self._train_features, approximate="auto")
        return self._index.query(f, k=min(k, len(self._train_features)))

    def _snap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        # A new latent equal to a training latent (a path endpoint) lands on its
        # point. "Equal" allows for float32 rounding in the feature pipeline
        # (a PCA pre-reduction of one row vs. of the whole set differs in the
        # last bits): 1e-4 of the latent's norm, far below the step of any path.
        idx, dist = self._nearest(f, 2)
        ref = self._index._norms[idx[:, 0]]
        second = dist[:, -1] if dist.shape[1] > 1 else np.zeros(len(dist))
        same = (dist[:, 0] <= 1e-4 * ref) | (dist[:, 0] <= 1e-6 * second)
        y = np.array(y, np.float64)
        y[same] = self.embedding_[idx[same, 0]]
        return y


def _perplexity_weights(dist: np.ndarray, perplexity: float, n_steps: int = 64) -> np.ndarray:
    """Gaussian weights over each row of neighbour distances with a given perplexity.

    The precision ``beta`` of ``exp(-beta (d^2 - d_min^2))`` is bisected per
    row (in log space) until the entropy of the weights is ``log(perplexity)``,
    as t-SNE does for its input affinities.
    """
    d2 = dist.astype(np.float64) ** 2
    d2 -= d2[:, :1]
    k = d2.shape[1]
    target = np.log(min(max(perplexity, 1.0), k))
    lo = np.full(len(d2), -50.0)
    hi = np.full(len(d2), 50.0)
    scale = np.maximum(d2[:, -1:], np.finfo(np.float64).tiny)
    d2n = d2 / scale  # scale-free: beta is relative to the farthest neighbour
    for _ in range(n_steps):
        mid = (lo + hi) / 2.0
        w = np.exp(-np.exp(mid)[:, None] * d2n)
        p = w / w.sum(axis=1, keepdims=True)
        h = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1)
        too_flat = h > target  # entropy too high: sharpen (larger beta)
        lo = np.where(too_flat, mid, lo)
        hi = np.where(too_flat, hi, mid)
    w = np.exp(-np.exp((lo + hi) / 2.0)[:, None] * d2n)
    return w / w.sum(axis=1, keepdims=True)


class TSNEProjection(_NeighbourPlacement):
    """t-SNE of the latents (scikit-learn ``TSNE``, Barnes-Hut, seeded).

    Parameters
    ----------
    transform_neighbors : int
        Training latents used to place a new one (see the module docstring).
    transform_perplexity : float
        Perplexity of the placement weights over those neighbours (openTSNE's
        default for its ``transform`` is 5).
    **method_kwargs
        Passed to :class:`sklearn.manifold.TSNE`; ``perplexity`` defaults to
        ``min(30, (N - 1) / 3)`` so that small sets work.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(25, 5))
    >>> tsne = TSNEProjection(max_iter=250).fit(z)
    >>> bool(np.allclose(tsne.transform(z[3]), tsne.embedding_[3]))
    True
    """

    method = "tsne"

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | None = None,
        random_state: int = 0,
        transform_neighbors: int = 10,
        transform_perplexity: float = 5.0,
        **method_kwargs: Any,
    ) -> None:
        super().__init__(n_components, features, standardize, pca_dims, random_state, **method_kwargs)
        self.transform_neighbors = int(transform_neighbors)
        self.transform_perplexity = float(transform_perplexity)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.update(transform_neighbors=self.transform_neighbors, transform_perplexity=self.transform_perplexity)
        return params

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        from sklearn.manifold import TSNE

        kw = dict(self.method_kwargs)
        kw.setdefault("perplexity", float(min(30.0, max(1.0, (len(f) - 1) / 3.0))))
        self.tsne_ = TSNE(n_components=self.n_components, random_state=self.random_state, **kw)
        return self.tsne_.fit_transform(f)

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        idx, dist = self._nearest(f, self.transform_neighbors)
        w = _perplexity_weights(dist, self.transform_perplexity)
        y = np.einsum("mk,mkc->mc", w, self.embedding_[idx])
        return self._snap(y, f)


class UMAPProjection(_NeighbourPlacement):
    """UMAP of the latents (``umap-learn``, seeded, hence single-threaded).

    ``transform`` is UMAP's own out-of-sample embedding. ``method_kwargs``
    go to :class:`umap.UMAP`; ``n_neighbors`` defaults to ``min(15, N - 1)``.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(30, 5))
    >>> UMAPProjection().fit_transform(z).shape  # doctest: +SKIP
    (30, 2)
    """

    method = "umap"

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        umap = _import_umap()
        kw = dict(self.method_kwargs)
        kw.setdefault("n_neighbors", int(min(15, len(f) - 1)))
        self.umap_ = umap.UMAP(n_components=self.n_components, random_state=self.random_state, **kw)
        with warnings.catch_warnings():
            # "n_jobs value 1 overridden to 1 by setting random_state": intended.
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            warnings.filterwarnings("ignore", message=".*spectral initialisation failed.*")
            # Separate groups (e.g. video sequences) give a disconnected graph;
            # UMAP lays the components out separately, nothing to act on.
            warnings.filterwarnings("ignore", message=".*not fully connected.*")
            return self.umap_.fit_transform(f)

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            y = self.umap_.transform(f)
        return self._snap(y, f)


_CLASSES: dict[str, type[_Projection]] = {
    "pca": PCAProjection,
    "tsne": TSNEProjection,
    "umap": UMAPProjection,
}


def make_projection(method: str, **kw: Any) -> _Projection:
    """A projection object by name.

    Parameters
    ----------
    method : {"pca", "tsne", "umap"}
    **kw
        Constructor arguments (``n_components``, ``features``, ``standardize``,
        ``pca_dims``, ``random_state``, method keyword arguments).

    Examples
    --------
    >>> make_projection("tsne", pca_dims=50).get_params()["pca_dims"]
    50
    """
    cls = _CLASSES.get(str(method).lower())
    if cls is None:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    return cls(**kw)


def _cache_key(latents: np.ndarray, proj: _Projection) -> str:
    versions = {"sklearn": _version("scikit-learn"), "numpy": np.__version__}
    if proj.method == "umap":
        versions["umap"] = _version("umap-learn")
    return content_hash(_CACHE_VERSION, np.asarray(latents), proj.method, proj.get_params(), versions)


def _fit_cached(
    latents: np.ndarray, method: str, cache: bool, progress: bool, kw: dict[str, Any], need_model: bool
) -> tuple[_Projection | None, np.ndarray, float]:
    """(fitted projection or None, embedding, fit seconds) through the disk cache."""
    from .cache import cache_dir, load_arrays, save_arrays

    proj = make_projection(method, **kw)
    path = cache_dir(_CACHE_NS) / f"{_cache_key(latents, proj)}.npz" if cache else None
    hit = load_arrays(path) if path is not None else None
    if hit is not None and "embedding" not in hit:
        hit = None  # not one of ours: recompute and overwrite
    if hit is not None and not (need_model and method == "umap"):
        emb = hit["embedding"]
        seconds = float(hit["seconds"]) if "seconds" in hit else float("nan")
        if need_model:  # t-SNE placement and PCA need only the cheap preprocessing refit
            if method == "pca":
                proj.fit(latents)
            else:
                f = proj._fit_prepare(latents)
                proj.embedding_ = np.asarray(emb, np.float64)
                proj._after_fit(f)
        return (proj if need_model else None), emb, seconds
    from tqdm.auto import tqdm

    n = len(np.asarray(latents))
    with tqdm(total=1, desc=f"{method.upper()} map of {n} latents", disable=not progress, leave=False) as bar:
        t0 = time.perf_counter()
        proj.fit(latents)
        seconds = time.perf_counter() - t0
        bar.update(1)
    if path is not None:
        save_arrays(path, {"embedding": proj.embedding_, "seconds": np.float64(seconds)})
    return proj, proj.embedding_, seconds


def project(
    latents: np.ndarray,
    method: Literal["pca", "tsne", "umap"] = "pca",
    cache: bool = True,
    progress: bool = True,
    **kw: Any,
) -> np.ndarray:
    """The 2-D map of ``latents``, disk-cached by content hash.

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    method : {"pca", "tsne", "umap"}
    cache : bool
        Look up / store the map under the cache folder, keyed by a hash of
        the latents, the method, every parameter and the library versions.
    progress : bool
        Show a progress bar while fitting.
    **kw
        Projection parameters (see :func:`make_projection`).

    Returns
    -------
    ndarray, float64, shape (N, n_components)

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 3, 2)).astype(np.float32)
    >>> project(z, "pca", progress=False).shape
    (20, 2)
    """
    _, emb, _ = _fit_cached(latents, method, cache, progress, kw, need_model=False)
    return np.asarray(emb, np.float64)


def fit_projection(
    latents: np.ndarray,
    method: Literal["pca", "tsne", "umap"] = "pca",
    cache: bool = True,
    progress: bool = True,
    **kw: Any,
) -> _Projection:
    """A fitted projection (with ``transform``) whose map is shared with :func:`project`'s cache.

    A cached t-SNE map is reused as is (only the feature preprocessing is
    refitted, for ``transform``); PCA refits (it is cheap and exact); UMAP
    refits, since ``transform`` needs its model (the seeded fit gives the
    cached map again).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    >>> fit_projection(z, "pca", progress=False).transform(z[:1]).shape
    (1, 2)
    """
    proj, _, _ = _fit_cached(latents, method, cache, progress, kw, need_model=True)
    assert proj is not None
    return proj


# ----------------------------------------------------------------------------
# quality figures


def _distance_order(d: np.ndarray) -> np.ndarray:
    """Each row's other points, nearest first, ties by index (self excluded)."""
    d = np.array(d, np.float64)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, : len(d) - 1]


def _reference_order(x: np.ndarray) -> np.ndarray:
    from .neighbors import pairwise_distances

    return _distance_order(pairwise_distances(x, squared=True))


def _map_order(y: np.ndarray) -> np.ndarray:
    from .neighbors import pairwise_distances

    return _distance_order(pairwise_distances(np.asarray(y, np.float64), squared=True))


def _trust_from_orders(order_x: np.ndarray, order_y: np.ndarray, n_neighbors: int) -> float:
    n = len(order_x)
    # rank[i, j] = position (1-based) of j among i's neighbours in the latent space
    rank = np.zeros((n, n), np.int64)
    rows = np.arange(n)[:, None]
    rank[rows, order_x] = np.arange(1, n)
    ranks = rank[rows, order_y[:, :n_neighbors]] - n_neighbors
    t = float(ranks[ranks > 0].sum())
    return 1.0 - t * (2.0 / (n * n_neighbors * (2.0 * n - 3.0 * n_neighbors - 1.0)))


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from .neighbors import _as_2d

    fx, fy = _as_2d(x, "X"), _as_2d(y, "Y")
    if len(fx) != len(fy):
        raise ValueError(f"X has {len(fx)} rows and Y {len(fy)}; they must be the same points")
    return fx, fy


def trustworthiness(x: np.ndarray, y: np.ndarray, n_neighbors: int = 5) -> float:
    """How much the map's neighbourhoods are true neighbourhoods of the latents.

    Same definition and value as :func:`sklearn.manifold.trustworthiness`
    (euclidean): 1 minus a penalty for every map neighbour that is not among
    the ``n_neighbors`` nearest latents, weighted by its latent-space rank.
    Distances are exact float64 (float32 latents are converted a block of
    features at a time); equal distances rank in index order.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
        The latents (or their features).
    y : ndarray, shape (N, n_components)
        The map.
    n_neighbors : int
        Must be below ``N / 2``.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(40, 5))
    >>> trustworthiness(x, x[:, :2]) > 0.7
    True
    """
    fx, fy = _check_xy(x, y)
    n = len(fx)
    if n_neighbors >= n / 2:
        raise ValueError(f"n_neighbors ({n_neighbors}) should be less than n_samples / 2 ({n / 2})")
    return _trust_from_orders(_reference_order(fx), _map_order(fy), int(n_neighbors))


def _knn_pres_from_orders(order_x: np.ndarray, order_y: np.ndarray, k: int) -> float:
    a, b = order_x[:, :k], order_y[:, :k]
    return float((a[:, :, None] == b[:, None, :]).any(axis=2).mean())


def knn_preservation(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's ``k`` nearest latents that are also its ``k`` nearest on the map.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : ndarray, shape (N, n_components)
    k : int

    Returns
    -------
    float in [0, 1]
        1 = every neighbourhood kept; about ``k / (N - 1)`` for a random map.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(30, 2))
    >>> knn_preservation(x, 3 * x + 1, k=5)
    1.0
    """
    fx, fy = _check_xy(x, y)
    if not 1 <= k < len(fx):
        raise ValueError(f"k must be in 1..{len(fx) - 1}, got {k}")
    return _knn_pres_from_orders(_reference_order(fx), _map_order(fy), int(k))


def coordinate_ranges(y: np.ndarray) -> np.ndarray:
    """``[[xmin, xmax], [ymin, ymax]]`` of a map (one row per axis).

    The figure the study reported: SegNet's PCA coordinates spanned about
    -236000..254400, DeepLabv3+'s -9.3..10.3.

    Examples
    --------
    >>> coordinate_ranges(np.array([[0.0, 5.0], [2.0, -1.0]])).tolist()
    [[0.0, 2.0], [-1.0, 5.0]]
    """
    a = np.asarray(y, np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise ValueError(f"a map must have shape (N, n_components) with N >= 1, got {a.shape}")
    return np.stack([a.min(axis=0), a.max(axis=0)], axis=1)


def spread(y: np.ndarray, *, max_points: int = 5000, random_state: int = 0) -> float:
    """Mean nearest-neighbour distance over the median pairwise distance.

    Scale-free, so maps in very different units compare: near 0 when points
    sit in tight clumps far apart, larger when they are evenly spread.
    Above ``max_points`` points the median uses a seeded sample of them.

    Examples
    --------
    >>> g = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    >>> round(spread(g), 3) == round(spread(1000 * g + 7), 3)
    True
    """
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import pdist

    a = np.asarray(y, np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"spread needs a map of shape (N >= 2, n_components), got {a.shape}")
    nn = cKDTree(a).query(a, k=2)[0][:, 1]
    sample = a
    if len(a) > max_points:
        rng = np.random.default_rng(random_state)
        sample = a[rng.choice(len(a), max_points, replace=False)]
    med = float(np.median(pdist(sample)))
    return float(nn.mean() / med) if med > 0 else float("nan")


def _group_stats(order: np.ndarray, groups: np.ndarray, k: int) -> tuple[float, float]:
    nb = order[:, :k]
    agreement = float((groups[nb] == groups[:, None]).mean())
    _, counts = np.unique(groups, return_counts=True)
    n = len(groups)
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    return agreement, chance


def group_separation(y: np.ndarray, groups: np.ndarray, k: int = 10) -> dict[str, float]:
    """How well known groups (CamVid sequences, synthetic drives) separate on a map.

    Parameters
    ----------
    y : ndarray, shape (N, d)
        A map (or any points, e.g. latent features).
    groups : ndarray of int, shape (N,)
    k : int

    Returns
    -------
    dict
        ``silhouette``: :func:`sklearn.metrics.silhouette_score` (-1..1, NaN
        with fewer than 2 groups); ``knn_agreement``: mean fraction of each
        point's ``k`` nearest others in the same group; ``knn_chance``: that
        fraction for random neighbours (what a map without structure scores).

    Examples
    --------
    >>> y = np.r_[np.zeros((10, 2)), np.ones((10, 2))] + np.random.default_rng(0).normal(0, .05, (20, 2))
    >>> g = np.repeat([0, 1], 10)
    >>> s = group_separation(y, g, k=3)
    >>> s["knn_agreement"], round(s["knn_chance"], 3)
    (1.0, 0.474)
    """
    from sklearn.metrics import silhouette_score

    a = np.asarray(y, np.float64).reshape(len(y), -1)
    g = np.asarray(groups).reshape(-1)
    if len(g) != len(a):
        raise ValueError(f"got {len(g)} group ids for {len(a)} points")
    if not 1 <= k < len(a):
        raise ValueError(f"k must be in 1..{len(a) - 1}, got {k}")
    n_groups = len(np.unique(g))
    sil = float(silhouette_score(a, g)) if 2 <= n_groups <= len(a) - 1 else float("nan")
    agreement, chance = _group_stats(_map_order(a), g, int(k))
    return {"silhouette": sil, "knn_agreement": agreement, "knn_chance": chance}


def quality_table(
    latents: np.ndarray,
    groups: np.ndarray | None = None,
    methods: Sequence[str] = METHODS,
    *,
    n_neighbors: int = 5,
    k: int = 10,
    features: Literal["flatten", "gap"] = "flatten",
    standardize: bool = False,
    pca_dims: int | None = None,
    random_state: int = 0,
    method_kwargs: dict[str, dict[str, Any]] | None = None,
    include_latent: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Spread, quality and group separation of several maps of the same latents, in one call.

    The latent-space reference for trustworthiness and k-NN preservation is
    the features the maps start from (``features`` and ``standardize``),
    before any ``pca_dims`` reduction, so the table also shows what that
    reduction costs. Maps come from :func:`project` (disk-cached).

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    groups : ndarray of int, shape (N,), optional
        E.g. ``dataset.groups`` (CamVid sequences); adds the separation columns.
    methods : sequence of {"pca", "tsne", "umap"}
    n_neighbors : int
        Of trustworthiness.
    k : int
        Of k-NN preservation and k-NN group agreement.
    features, standardize, random_state
        For every method.
    pca_dims : int, optional
        PCA pre-reduction for t-SNE and UMAP (not PCA, where it changes nothing).
    method_kwargs : dict, optional
        Extra arguments per method, e.g. ``{"tsne": {"perplexity": 20}}``.
    include_latent : bool
        Add a row ``method="latent"`` with the group separation of the
        features themselves (a reference for the maps' columns).
    cache, progress
        As in :func:`project`.

    Returns
    -------
    list of dict
        One per method: ``method``, ``seconds`` (fit time, also when read
        from the cache), ``trustworthiness``, ``knn_preservation``,
        ``spread``, ``x_min``, ``x_max``, ``y_min``, ``y_max`` and, with
        groups, ``silhouette``, ``knn_agreement``, ``knn_chance``.
        :func:`format_table` turns it into Markdown.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(40, 3, 3, 4)).astype(np.float32)
    >>> rows = quality_table(z, np.repeat([0, 1], 20), methods=("pca",), progress=False)
    >>> sorted(rows[0])[:4]
    ['knn_agreement', 'knn_chance', 'knn_preservation', 'method']
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown projection method {m!r}; choose from {METHODS}")
    extra = method_kwargs or {}
    f = latent_features(latents, features)
    if standardize:
        f = _standardized(f, *_column_mean_std(f))
    n = len(f)
    if n_neighbors >= n / 2:
        raise ValueError(f"n_neighbors ({n_neighbors}) should be less than n_samples / 2 ({n / 2})")
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..{n - 1}, got {k}")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and len(g) != n:
        raise ValueError(f"got {len(g)} group ids for {n} latents")
    from .neighbors import pairwise_distances

    dx = pairwise_distances(f, squared=True)
    order_x = _distance_order(dx)
    rows: list[dict[str, Any]] = []
    if include_latent and g is not None:
        from sklearn.metrics import silhouette_score

        n_groups = len(np.unique(g))
        sil = float(silhouette_score(np.sqrt(dx), g, metric="precomputed")) if 2 <= n_groups <= n - 1 else float("nan")
        agreement, chance = _group_stats(order_x, g, k)
        nan = float("nan")
        rows.append(
            dict(
                method="latent",
                seconds=0.0,
                trustworthiness=1.0,
                knn_preservation=1.0,
                spread=nan,
                x_min=nan,
                x_max=nan,
                y_min=nan,
                y_max=nan,
                silhouette=sil,
                knn_agreement=agreement,
                knn_chance=chance,
            )
        )
    for m in methods:
        kw = dict(features=features, standardize=standardize, random_state=random_state)
        if m != "pca" and pca_dims is not None:
            kw["pca_dims"] = pca_dims
        kw.update(extra.get(m, {}))
        _, y, seconds = _fit_cached(latents, m, cache, progress, kw, need_model=False)
        y = np.asarray(y, np.float64)
        order_y = _map_order(y)
        ranges = coordinate_ranges(y)
        row: dict[str, Any] = dict(
            method=m,
            seconds=seconds,
            trustworthiness=_trust_from_orders(order_x, order_y, n_neighbors),
            knn_preservation=_knn_pres_from_orders(order_x, order_y, k),
            spread=spread(y),
            x_min=float(ranges[0, 0]),
            x_max=float(ranges[0, 1]),
            y_min=float(ranges[1, 0]),
            y_max=float(ranges[1, 1]) if len(ranges) > 1 else float("nan"),
        )
        if g is not None:
            row.update(group_separation(y, g, k))
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """A Markdown table of :func:`quality_table` rows.

    Examples
    --------
    >>> print(format_table([{"method": "pca", "spread": 0.12345}]))
    | method | spread |
    |---|---|
    | pca | 0.123 |
    """
    if not rows:
        return ""
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if not np.isfinite(v):
                return "–"
            # Large coordinates (SegNet's PCA spans +-2e5) read best without decimals.
            return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)
