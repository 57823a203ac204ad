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

How good a map is (trustworthiness, k-NN preservation, spread, group
separation) is measured in :mod:`latent_widgets.map_quality`.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.projection import PCAProjection
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
    "fit_projection",
    "latent_features",
    "make_projection",
    "project",
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
