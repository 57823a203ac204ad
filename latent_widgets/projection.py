"""2-D maps of a latent set (PCA, t-SNE, UMAP), disk-cached.

Projections
-----------
:class:`PCAProjection`, :class:`TSNEProjection` and :class:`UMAPProjection`
are scikit-learn estimators (``get_params``/``set_params``,
:func:`sklearn.base.clone`, ``fit``, ``fit_transform``, ``transform``,
``embedding_``; ``to_state``/``from_state`` for the disk cache) and take the
latents as they come, ``(N, *latent_shape)``. Features are computed inside:

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

import json
import numbers
import sys
import time
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any, ClassVar, Literal, Self

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .arrays import iter_row_blocks
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
_CACHE_VERSION = "projection-v2"  # v2: explicit parameters, to_state arrays
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
    for rows in iter_row_blocks(n, step):
        total += f[rows].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(d, np.float64)
    for rows in iter_row_blocks(n, step):
        block = f[rows].astype(np.float64)
        block -= mean
        sq += np.einsum("ij,ij->j", block, block)
    std = np.sqrt(sq / n)
    std[std == 0] = 1.0  # constant features become 0, not NaN
    return mean, std


def _standardized(f: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out = np.empty(f.shape, np.float32)
    step = max(1, _BLOCK_BYTES // (8 * max(f.shape[1], 1)))
    for rows in iter_row_blocks(len(f), step):
        out[rows] = (f[rows] - mean) / std
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


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_positive(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and v > 0


def _params_json(params: Mapping[str, Any]) -> str:
    # Only tells one configuration from another on restore (the cache key is
    # the real guarantee); repr stands in for values JSON cannot write.
    return json.dumps(params, sort_keys=True, default=repr)


def _check_finite(f: np.ndarray) -> None:
    # A float64-accumulated sum is non-finite exactly when an entry is: one
    # pass, without an N x d boolean mask the size of the latents.
    if not np.isfinite(f.sum(dtype=np.float64)):
        raise ValueError(
            "latents contain NaN or infinity; drop those samples or replace the values (np.nan_to_num) first"
        )


class _Projection(TransformerMixin, BaseEstimator):
    """Common part of the three projections: features, standardisation, PCA pre-reduction.

    A scikit-learn estimator: the constructor only stores its arguments, so
    ``get_params``, ``set_params`` and :func:`sklearn.base.clone` work;
    ``fit`` checks them and the latents; fitted attributes end in ``_``.
    """

    method: ClassVar[str] = ""

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | None = None,
        random_state: int = 0,
        *,
        method_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.n_components = n_components
        self.features = features
        self.standardize = standardize
        self.pca_dims = pca_dims
        self.random_state = random_state
        self.method_kwargs = method_kwargs

    # --------------------------------------------------------------- checks

    def _check_params(self) -> None:
        name = type(self).__name__
        if self.features not in FEATURES:
            raise ValueError(f"{name}: features must be one of {FEATURES}, got {self.features!r}")
        self._require_int("n_components", 1, "(2 for a map)")
        self._require_int("pca_dims", 1, "(e.g. 50) or None for no pre-reduction", optional=True)
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"{name}: standardize must be True or False, got {self.standardize!r}")
        if self.method_kwargs is not None:
            if not isinstance(self.method_kwargs, Mapping):
                raise ValueError(
                    f"{name}: method_kwargs must be a dict of keyword arguments for the library, or None; "
                    f"got {type(self.method_kwargs).__name__}"
                )
            clash = sorted(set(self.method_kwargs) & set(self.get_params()))
            if clash:
                raise ValueError(
                    f"{name}: method_kwargs repeats {clash}, parameters of {name} itself; "
                    f"set them directly, e.g. {name}({clash[0]}=...)"
                )
        self._check_method_params()

    def _check_method_params(self) -> None:
        pass

    def _require_int(self, param: str, low: int, hint: str, optional: bool = False) -> None:
        value = getattr(self, param)
        if (value is None and optional) or (_is_int(value) and value >= low):
            return
        raise ValueError(f"{type(self).__name__}: {param} must be an int >= {low} {hint}, got {value!r}")

    def _fit_prepare(self, latents: np.ndarray) -> np.ndarray:
        """Check parameters and latents, fit the preprocessing; the features the map starts from."""
        self._check_params()
        x = np.asarray(latents)
        if x.dtype.kind not in "biuf":
            raise ValueError(
                f"latents must be real numbers, got dtype {x.dtype}; convert them with np.asarray(z, float)"
            )
        f = latent_features(x, self.features)
        if len(f) < 2:
            raise ValueError(f"a map needs at least 2 latents, got {len(f)}")
        _check_finite(f)
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
        check_is_fitted(
            self, "embedding_", msg="This %(name)s is not fitted yet: call fit(latents) first, or use fit_projection."
        )
        x = np.asarray(latents)
        if x.shape == self.latent_shape_:
            x = x[None]
        if x.shape[1:] != self.latent_shape_:
            raise ValueError(
                f"latents must have shape (M, {', '.join(map(str, self.latent_shape_))}) like the "
                f"fitted ones, got {x.shape}"
            )
        f = latent_features(x, self.features)
        _check_finite(f)
        if self.mean_ is not None:
            f = _standardized(f, self.mean_, self.scale_)
        if self.pre_pca_ is not None:
            f = self.pre_pca_.transform(f)
        return f

    # --------------------------------------------------------------- API

    def fit(self, latents: np.ndarray, y: Any = None) -> Self:
        """Fit the map to ``latents`` (N, *latent_shape); sets ``embedding_``.

        Raises ValueError naming the parameter or input at fault (and the fix).
        """
        f = self._fit_prepare(latents)
        self.embedding_ = np.asarray(self._fit_embedding(f), np.float64)
        self._after_fit(f)
        return self

    def fit_transform(self, latents: np.ndarray, y: Any = None) -> np.ndarray:
        """Fit and return the map, shape ``(N, n_components)``, float64."""
        return self.fit(latents).embedding_

    def transform(self, latents: np.ndarray) -> np.ndarray:
        """Place new latents on the fitted map, shape ``(M, n_components)``, float64.

        One latent (``latent_shape``) gives shape ``(1, n_components)``.
        Before ``fit`` it raises :class:`sklearn.exceptions.NotFittedError`.
        """
        f = self._prepare(latents)
        return np.asarray(self._transform_prepared(f), np.float64)

    def to_state(self) -> dict[str, np.ndarray]:
        """The fitted map as plain arrays, for ``np.savez`` (loadable with ``allow_pickle=False``).

        The method, the parameters (JSON, checked on restore), the latent
        shape and ``embedding_``. The latents are not stored (they can be
        hundreds of MB): :meth:`from_state` takes them again.

        Examples
        --------
        >>> z = np.random.default_rng(0).normal(size=(20, 6))
        >>> state = PCAProjection().fit(z).to_state()
        >>> sorted(state)
        ['embedding', 'latent_shape', 'method', 'params']
        >>> restored = PCAProjection().from_state(state, z)
        >>> bool(np.allclose(restored.transform(z[:3]), state["embedding"][:3]))
        True
        """
        check_is_fitted(self, "embedding_")
        return {
            "method": np.array(self.method),
            "params": np.array(_params_json(self.get_params())),
            "latent_shape": np.array(self.latent_shape_, np.int64),
            "embedding": np.asarray(self.embedding_, np.float64),
        }

    def from_state(self, state: Mapping[str, np.ndarray], latents: np.ndarray) -> Self:
        """Restore a fit saved by :meth:`to_state` on this estimator (same parameters).

        The map comes from ``state``; the preprocessing (standardisation, PCA
        pre-reduction: seeded, so the same) is refitted on ``latents``, the
        ones the map was fitted on, for ``transform``. PCA refits its exact
        linear map. UMAP's ``transform`` needs the fitted ``umap.UMAP``,
        which is not arrays: it is refitted (seeded, so the same model) on
        the first ``transform``, not here, so a cached map shows at once.

        Raises
        ------
        ValueError
            When ``state`` is of another method, other parameters or other
            latents.
        """
        missing = sorted({"method", "params", "latent_shape", "embedding"} - set(state))
        if missing:
            raise ValueError(f"state lacks {missing}; pass what to_state() returned (or np.load of its .npz)")
        if str(state["method"]) != self.method or str(state["params"]) != _params_json(self.get_params()):
            raise ValueError(
                f"the state is a {state['method']} map with parameters {state['params']}, not one of {self!r}; "
                "use an estimator with the same parameters (set_params)"
            )
        emb = np.asarray(state["embedding"], np.float64)
        shape = tuple(int(v) for v in np.asarray(state["latent_shape"]))
        x = np.asarray(latents)
        if x.shape != (len(emb), *shape):
            raise ValueError(
                f"the state's map is of {len(emb)} latents of shape {shape}, got latents {x.shape}; "
                "pass the latents it was fitted on"
            )
        f = self._fit_prepare(x)
        self._restore_model(f)
        self.embedding_ = emb
        self._after_fit(f)
        return self

    # subclasses
    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _after_fit(self, f: np.ndarray) -> None:
        pass

    def _restore_model(self, f: np.ndarray) -> None:
        pass

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class PCAProjection(_Projection):
    """Principal component analysis of the latents (scikit-learn ``PCA``).

    ``transform`` is exact (the fitted linear map). ``method_kwargs`` go to
    :class:`sklearn.decomposition.PCA` (e.g. ``{"svd_solver": "full"}``; the
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
        self.pca_ = PCA(n, random_state=self.random_state, **(self.method_kwargs or {}))
        y = self.pca_.fit_transform(f)
        if n < self.n_components:  # fewer samples/features than components: pad with zeros
            y = np.pad(y, ((0, 0), (0, self.n_components - n)))
        return y

    def _restore_model(self, f: np.ndarray) -> None:
        # transform needs the linear map; refitting it is cheap and exact.
        self._fit_embedding(f)

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        y = self.pca_.transform(f)
        if y.shape[1] < self.n_components:
            y = np.pad(y, ((0, 0), (0, self.n_components - y.shape[1])))
        return y


class _NeighbourPlacement(_Projection):
    """Keeps the prepared training features for placing new points."""

    def _after_fit(self, f: np.ndarray) -> None:
        self.train_features_ = f  # a view of the latents for flatten features
        self._index: Any = None  # built on the first transform

    def _nearest(self, f: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            from .neighbors import LatentIndex

            self._index = LatentIndex(self.train_features_, approximate="auto")
        return self._index.query(f, k=min(k, len(self.train_features_)))

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
    n_components, features, standardize, pca_dims, random_state
        As for every projection (see the module docstring).
    transform_neighbors : int
        Training latents used to place a new one (see the module docstring).
    transform_perplexity : float
        Perplexity of the placement weights over those neighbours (openTSNE's
        default for its ``transform`` is 5).
    perplexity : float, optional
        t-SNE's; None means ``min(30, (N - 1) / 3)``, so that small sets work.
    max_iter : int, optional
        t-SNE's optimisation steps; None means scikit-learn's default.
    method_kwargs : dict, optional
        Other arguments of :class:`sklearn.manifold.TSNE`.

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
        *,
        perplexity: float | None = None,
        max_iter: int | None = None,
        method_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(n_components, features, standardize, pca_dims, random_state, method_kwargs=method_kwargs)
        self.transform_neighbors = transform_neighbors
        self.transform_perplexity = transform_perplexity
        self.perplexity = perplexity
        self.max_iter = max_iter

    def _check_method_params(self) -> None:
        self._require_int("transform_neighbors", 1, "(e.g. 10)")
        if not _is_positive(self.transform_perplexity):
            raise ValueError(f"transform_perplexity must be a number > 0 (e.g. 5), got {self.transform_perplexity!r}")
        if self.perplexity is not None and not _is_positive(self.perplexity):
            raise ValueError(
                f"perplexity must be a number > 0 (e.g. 30) or None for automatic, got {self.perplexity!r}"
            )
        self._require_int("max_iter", 250, "(t-SNE's minimum) or None for its default", optional=True)

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        from sklearn.manifold import TSNE

        kw = dict(self.method_kwargs or {})
        if self.max_iter is not None:
            kw["max_iter"] = self.max_iter
        perplexity = self.perplexity if self.perplexity is not None else min(30.0, max(1.0, (len(f) - 1) / 3.0))
        self.tsne_ = TSNE(
            n_components=self.n_components, perplexity=float(perplexity), random_state=self.random_state, **kw
        )
        return self.tsne_.fit_transform(f)

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        idx, dist = self._nearest(f, self.transform_neighbors)
        w = _perplexity_weights(dist, self.transform_perplexity)
        y = np.einsum("mk,mkc->mc", w, self.embedding_[idx])
        return self._snap(y, f)


class UMAPProjection(_NeighbourPlacement):
    """UMAP of the latents (``umap-learn``, seeded, hence single-threaded).

    ``transform`` is UMAP's own out-of-sample embedding.

    Parameters
    ----------
    n_components, features, standardize, pca_dims, random_state
        As for every projection (see the module docstring).
    n_neighbors : int, optional
        UMAP's; None means ``min(15, N - 1)``.
    n_epochs : int, optional
        UMAP's optimisation epochs; None means its default.
    method_kwargs : dict, optional
        Other arguments of :class:`umap.UMAP` (e.g. ``{"min_dist": 0.5}``).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(30, 5))
    >>> UMAPProjection().fit_transform(z).shape  # doctest: +SKIP
    (30, 2)
    """

    method = "umap"

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | None = None,
        random_state: int = 0,
        *,
        n_neighbors: int | None = None,
        n_epochs: int | None = None,
        method_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(n_components, features, standardize, pca_dims, random_state, method_kwargs=method_kwargs)
        self.n_neighbors = n_neighbors
        self.n_epochs = n_epochs

    def _check_method_params(self) -> None:
        self._require_int("n_neighbors", 2, "(e.g. 15) or None for automatic", optional=True)
        self._require_int("n_epochs", 1, "or None for UMAP's default", optional=True)

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        umap = _import_umap()
        n_neighbors = self.n_neighbors if self.n_neighbors is not None else int(min(15, len(f) - 1))
        self.umap_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            n_epochs=self.n_epochs,
            random_state=self.random_state,
            **(self.method_kwargs or {}),
        )
        with warnings.catch_warnings():
            # "n_jobs value 1 overridden to 1 by setting random_state": intended.
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            warnings.filterwarnings("ignore", message=".*spectral initialisation failed.*")
            # Separate groups (e.g. video sequences) give a disconnected graph;
            # UMAP lays the components out separately, nothing to act on.
            warnings.filterwarnings("ignore", message=".*not fully connected.*")
            return self.umap_.fit_transform(f)

    def _restore_model(self, f: np.ndarray) -> None:
        # The model is refitted on the first transform (seconds, the first
        # time numba compiles): a cached map is shown without waiting for it.
        self.umap_ = None

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        if self.umap_ is None:
            self._fit_embedding(self.train_features_)  # seeded: the model the cached map came from
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
        Parameters of the class (``n_components``, ``features``,
        ``standardize``, ``pca_dims``, ``random_state``, its own such as
        ``perplexity``); any other keyword is the library's and goes into
        ``method_kwargs`` (e.g. ``learning_rate`` of t-SNE).

    Examples
    --------
    >>> make_projection("tsne", pca_dims=50).get_params()["pca_dims"]
    50
    >>> make_projection("tsne", early_exaggeration=8).method_kwargs
    {'early_exaggeration': 8}
    """
    cls = _CLASSES.get(str(method).lower())
    if cls is None:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    own = cls().get_params()
    extra = {k: kw.pop(k) for k in list(kw) if k not in own}
    if extra:
        kw["method_kwargs"] = {**(kw.get("method_kwargs") or {}), **extra}
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
    if hit is not None and not {"embedding", "params"} <= hit.keys():
        hit = None  # not one of ours: recompute and overwrite
    if hit is not None:
        seconds = float(hit["seconds"]) if "seconds" in hit else float("nan")
        if need_model:  # the map from the cache, only the cheap preprocessing refitted
            proj.from_state(hit, latents)
        return (proj if need_model else None), hit["embedding"], seconds
    from tqdm.auto import tqdm

    n = len(np.asarray(latents))
    with tqdm(total=1, desc=f"{method.upper()} map of {n} latents", disable=not progress, leave=False) as bar:
        t0 = time.perf_counter()
        proj.fit(latents)
        seconds = time.perf_counter() - t0
        bar.update(1)
    if path is not None:
        save_arrays(path, {**proj.to_state(), "seconds": np.float64(seconds)})
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
