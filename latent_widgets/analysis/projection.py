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
- ``pca_dims="auto"`` (default): for t-SNE and UMAP, a PCA reduction to
  ``AUTO_PCA_DIMS`` (50) dimensions when there are more features than that
  and at least ``AUTO_PCA_MIN_SAMPLES`` (1000) latents, the standard
  practice for speed; ``pca_dims=k`` always reduces to ``k``, ``None``
  never. It keeps the ``k`` directions of largest variance, so
  neighbourhoods are computed in that subspace: noise in the discarded
  directions is dropped (often helping t-SNE), but structure that lives in
  low-variance directions is lost too, and the map then shows the
  neighbourhoods of the reduced data rather than of the latents.

Latents may also be a row-indexable store too big for memory (a Zarr array,
a ``np.memmap``): features, statistics and PCA
(:class:`~latent_widgets.analysis.blocked_pca.BlockedPCA`) are then computed a block
of rows at a time.

All seeds are fixed (``random_state=0``): the same input gives the same map.

Placing new latents (interpolation steps, arithmetic results) on a fitted
map with ``transform``: exact for PCA; UMAP's own ``transform``; for t-SNE
(openTSNE), openTSNE's ``transform``, which starts each new point at the
median map position of its nearest training latents and optimises it
against the fixed map. For t-SNE and UMAP a new latent equal to a training
latent lands exactly on that latent's point, so an interpolation path
starts and ends on its endpoints.

The first UMAP of a process compiles umap-learn's numba code; this module
turns on numba's disk cache for it, so that only the first process on a
machine pays (see :func:`~latent_widgets.analysis.warm_up.warm_up_projections` to do it in the background).

How good a map is (trustworthiness, k-NN preservation, spread, group
separation) is measured in :mod:`latent_widgets.analysis.map_quality`.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.projection import PCAProjection
>>> z = np.random.default_rng(0).normal(size=(30, 4, 4, 8)).astype(np.float32)
>>> pca = PCAProjection().fit(z)
>>> pca.embedding_.shape, pca.transform(z[:2]).shape
((30, 2), (2, 2))
>>> np.allclose(pca.transform(z[:2]), pca.embedding_[:2], atol=1e-4)
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import time
import warnings
from collections.abc import Mapping
from importlib import metadata
from typing import Any, ClassVar, Literal, Self

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..core.arrays import iter_row_blocks
from ..core.cache import cache_dir, content_hash
from .blocked_pca import BlockedPCA
from .features import (
    FEATURES,
    FeatureRows,
    check_finite,
    check_latents,
    column_mean_std,
    latent_block_rows,
    latent_features,
    out_of_core,
    standardized,
)
from .umap_runtime import import_umap, wait_for_the_warm_up

__all__ = [
    "AUTO_PCA_DIMS",
    "AUTO_PCA_MIN_SAMPLES",
    "BLOCKED_PCA_BYTES",
    "METHODS",
    "TSNE_THREADS_MIN_SAMPLES",
    "PCAProjection",
    "TSNEProjection",
    "UMAPProjection",
    "fit_cached",
    "fit_projection",
    "make_projection",
    "project",
]

#: Projection methods of :func:`make_projection` and :func:`project`.
METHODS: tuple[str, ...] = ("pca", "tsne", "umap")

#: ``pca_dims="auto"`` (the default of t-SNE and UMAP) reduces the features to
#: ``AUTO_PCA_DIMS`` dimensions when there are more than that many features and
#: at least ``AUTO_PCA_MIN_SAMPLES`` latents (measured: see docs/analysis.md).
AUTO_PCA_DIMS: int = 50
AUTO_PCA_MIN_SAMPLES: int = 1000
#: Features above this many bytes (or read from a store) are PCA-reduced by
#: :class:`~latent_widgets.analysis.blocked_pca.BlockedPCA`, a block of rows at a time,
#: instead of scikit-learn's ``PCA``, which first makes a centred copy of them.
BLOCKED_PCA_BYTES: int = 1 << 30
#: t-SNE's ``n_jobs=None`` runs one thread below this many latents, all cores above.
TSNE_THREADS_MIN_SAMPLES: int = 5000

_CACHE_NS = "projections"
_CACHE_VERSION = "projection-v3"  # v3: openTSNE, pca_dims="auto", blocked PCA
_BLOCK_BYTES = 1 << 26


# ----------------------------------------------------------------------------
# features


def _pca_transform(pca: Any, f: Any) -> np.ndarray:
    """A fitted PCA (scikit-learn's or :class:`BlockedPCA`) applied by row blocks."""
    if isinstance(f, np.ndarray):
        return pca.transform(f)
    out = np.empty((len(f), int(pca.n_components_)), np.float64)
    for rows in iter_row_blocks(len(f), max(1, _BLOCK_BYTES // (8 * max(f.shape[1], 1)))):
        out[rows] = pca.transform(f[rows])
    return out


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


class _Projection(TransformerMixin, BaseEstimator):
    """Common part of the three projections: features, standardisation, PCA pre-reduction.

    A scikit-learn estimator: the constructor only stores its arguments, so
    ``get_params``, ``set_params`` and :func:`sklearn.base.clone` work;
    ``fit`` checks them and the latents; fitted attributes end in ``_``.
    """

    method: ClassVar[str] = ""
    # t-SNE and UMAP need their features in memory; PCA reads a store by blocks.
    _in_memory: ClassVar[bool] = True

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | Literal["auto"] | None = "auto",
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
        if self.pca_dims != "auto":
            self._require_int("pca_dims", 1, "(e.g. 50), 'auto' or None for no pre-reduction", optional=True)
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

    def pre_pca_dims(self, n_samples: int, n_features: int) -> int:
        """Dimensions of the PCA pre-reduction for ``n_samples`` x ``n_features`` features; 0 for none.

        ``pca_dims=None``: none; ``k``: ``min(k, n_samples, n_features)``,
        none when that keeps every feature; ``"auto"``: ``AUTO_PCA_DIMS``
        when there are more features than that and at least
        ``AUTO_PCA_MIN_SAMPLES`` samples (never for PCA itself: PCA after PCA
        is PCA).

        Examples
        --------
        >>> TSNEProjection().pre_pca_dims(5000, 6144), TSNEProjection().pre_pca_dims(300, 6144)
        (50, 0)
        >>> TSNEProjection(pca_dims=None).pre_pca_dims(5000, 6144), TSNEProjection(pca_dims=20).pre_pca_dims(10, 6144)
        (0, 10)
        """
        if self.pca_dims is None:
            return 0
        if self.pca_dims == "auto":
            auto = self.method != "pca" and n_features > AUTO_PCA_DIMS and n_samples >= AUTO_PCA_MIN_SAMPLES
            return min(AUTO_PCA_DIMS, n_samples) if auto else 0
        dims = min(int(self.pca_dims), n_samples, n_features)
        return dims if dims < n_features else 0

    def _fit_prepare(self, latents: Any) -> Any:
        """Check parameters and latents, fit the preprocessing; the features the map starts from.

        An ndarray of features, or for a store (and no pre-reduction) the
        :class:`FeatureRows` view that reads them by blocks.
        """
        self._check_params()
        if out_of_core(latents):
            x = latents
            check_latents(tuple(x.shape), x.dtype)
            f: Any = FeatureRows(x, self.features)
            f.check_finite()
        else:
            x = np.asarray(latents)
            check_latents(x.shape, x.dtype)
            f = latent_features(x, self.features)
            check_finite(f)
        if len(f) < 2:
            raise ValueError(f"a map needs at least 2 latents, got {len(f)}")
        self.latent_shape_ = tuple(int(v) for v in x.shape[1:])
        self.n_features_in_ = int(f.shape[1])
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.pre_pca_: Any = None
        if self.standardize:
            self.mean_, self.scale_ = column_mean_std(f)
            f = f.scaled(*self._scaling) if isinstance(f, FeatureRows) else standardized(f, *self._scaling)
        dims = self.pre_pca_dims(*f.shape)
        if dims:
            if isinstance(f, FeatureRows) or f.nbytes > BLOCKED_PCA_BYTES:
                self.pre_pca_ = BlockedPCA(dims, random_state=self.random_state).fit(f)
                f = self.pre_pca_.transform(f)
            else:
                from sklearn.decomposition import PCA

                self.pre_pca_ = PCA(dims, random_state=self.random_state)
                f = self.pre_pca_.fit_transform(f)
        return f

    @property
    def _scaling(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.mean_ is not None and self.scale_ is not None
        return self.mean_, self.scale_

    def _prepare(self, latents: Any) -> Any:
        check_is_fitted(
            self, "embedding_", msg="This %(name)s is not fitted yet: call fit(latents) first, or use fit_projection."
        )
        x = latents if out_of_core(latents) else np.asarray(latents)
        if tuple(x.shape) == self.latent_shape_:
            x = np.asarray(x)[None]
        if tuple(x.shape[1:]) != self.latent_shape_:
            raise ValueError(
                f"latents must have shape (M, {', '.join(map(str, self.latent_shape_))}) like the "
                f"fitted ones, got {tuple(x.shape)}"
            )
        if out_of_core(x):
            f: Any = FeatureRows(x, self.features)
            f.check_finite()
            if self.mean_ is not None:
                f = f.scaled(*self._scaling)
        else:
            f = latent_features(x, self.features)
            check_finite(f)
            if self.mean_ is not None:
                f = standardized(f, *self._scaling)
        if self.pre_pca_ is not None:
            f = _pca_transform(self.pre_pca_, f)
        return f

    # --------------------------------------------------------------- API

    def fit(self, latents: Any, y: Any = None) -> Self:
        """Fit the map to ``latents`` (N, *latent_shape); sets ``embedding_``.

        ``latents`` may be an ndarray or a row-indexable store (Zarr array,
        ``np.memmap``): features, standardisation and the PCA pre-reduction
        are then computed a block of rows at a time.

        Raises ValueError naming the parameter or input at fault (and the fix).
        """
        f = self._prepared_for_fit(latents)
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
        x = latents if out_of_core(latents) else np.asarray(latents)
        if tuple(x.shape) != (len(emb), *shape):
            raise ValueError(
                f"the state's map is of {len(emb)} latents of shape {shape}, got latents {tuple(x.shape)}; "
                "pass the latents it was fitted on"
            )
        f = self._prepared_for_fit(latents)
        self._restore_model(f)
        self.embedding_ = emb
        self._after_fit(f)
        return self

    def _prepared_for_fit(self, latents: Any) -> Any:
        f = self._fit_prepare(latents)
        return f.to_array() if self._in_memory and isinstance(f, FeatureRows) else f

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
    """Principal component analysis of the latents (scikit-learn ``PCA``, or blocked at scale).

    ``transform`` is exact (the fitted linear map), a block of rows at a time
    for a store. Latents in memory whose features take at most
    ``BLOCKED_PCA_BYTES`` go to :class:`sklearn.decomposition.PCA`, with
    ``method_kwargs`` (e.g. ``{"svd_solver": "full"}``; the default "auto"
    uses the seeded randomized solver on wide data). Larger ones, and stores
    too big for memory (a Zarr array, a ``np.memmap``), go to
    :class:`~latent_widgets.analysis.blocked_pca.BlockedPCA` (randomized SVD reading
    row blocks, scikit-learn's answer on data with a clear spectrum), which
    takes ``method_kwargs`` ``iterated_power`` and ``n_oversamples``.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6))
    >>> PCAProjection().fit_transform(z).shape
    (20, 2)
    """

    method = "pca"
    _in_memory = False

    def _fit_embedding(self, f: Any) -> np.ndarray:
        n = min(self.n_components, f.shape[0], f.shape[1])
        kw = dict(self.method_kwargs or {})
        if isinstance(f, FeatureRows) or f.nbytes > BLOCKED_PCA_BYTES:
            other = sorted(set(kw) - {"iterated_power", "n_oversamples"})
            if other:
                raise ValueError(
                    f"PCAProjection: method_kwargs {other} are scikit-learn PCA's, but these latents "
                    f"({'a store' if isinstance(f, FeatureRows) else f'{f.nbytes / 2**30:.1f} GiB of features'}) "
                    "are fitted by BlockedPCA, which takes only 'iterated_power' and 'n_oversamples'"
                )
            self.pca_: Any = BlockedPCA(
                n,
                n_iter=int(kw.get("iterated_power", 4)),
                n_oversamples=int(kw.get("n_oversamples", 10)),
                random_state=self.random_state,
            ).fit(f)
            y = self.pca_.transform(f)
        else:
            from sklearn.decomposition import PCA

            self.pca_ = PCA(n, random_state=self.random_state, **kw)
            y = self.pca_.fit_transform(f)
        if n < self.n_components:  # fewer samples/features than components: pad with zeros
            y = np.pad(y, ((0, 0), (0, self.n_components - n)))
        return y

    def _restore_model(self, f: Any) -> None:
        # transform needs the linear map; refitting it is cheap and exact.
        self._fit_embedding(f)

    def _transform_prepared(self, f: Any) -> np.ndarray:
        y = _pca_transform(self.pca_, f)
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

            self._index = LatentIndex().fit(self.train_features_)
        return self._index.query(f, k=min(k, len(self.train_features_)))

    def _snap(self, y: np.ndarray, f: np.ndarray) -> np.ndarray:
        # A new latent equal to a training latent (a path endpoint) lands on its
        # point. "Equal" allows for float32 rounding in the feature pipeline
        # (a PCA pre-reduction of one row vs. of the whole set differs in the
        # last bits): 1e-4 of the latent's norm, far below the step of any path.
        idx, dist = self._nearest(f, 2)
        ref = self._index.norms[idx[:, 0]]
        second = dist[:, -1] if dist.shape[1] > 1 else np.zeros(len(dist))
        same = (dist[:, 0] <= 1e-4 * ref) | (dist[:, 0] <= 1e-6 * second)
        y = np.array(y, np.float64)
        y[same] = self.embedding_[idx[same, 0]]
        return y


class TSNEProjection(_NeighbourPlacement):
    """t-SNE of the latents (openTSNE: FFT-accelerated at scale, multithreaded, seeded).

    The map is ``openTSNE.TSNE(...).fit`` of the prepared features, the
    same as raw openTSNE with the same settings; openTSNE's
    ``negative_gradient_method="auto"`` uses Barnes-Hut below 10 000 points
    and FFT interpolation above. Results do not depend on ``n_jobs``.
    ``transform`` is openTSNE's ``TSNEEmbedding.transform``: each new point
    starts at the median map position of its ``transform_neighbors`` nearest
    training latents and is then optimised against the fixed map, so it does
    not stay stranded between two islands as a neighbour average would.

    Parameters
    ----------
    n_components, features, standardize, pca_dims, random_state
        As for every projection (see the module docstring).
    transform_neighbors : int
        Training latents each new one is attracted to (openTSNE's ``k``).
    transform_perplexity : float
        Perplexity of those attractions (openTSNE's default for ``transform``).
    perplexity : float, optional
        t-SNE's; None means ``min(30, (N - 1) / 3)``, so that small sets work.
    max_iter : int, optional
        All optimisation steps, the 250 of early exaggeration included (as in
        scikit-learn); None means openTSNE's default (750).
    n_jobs : int, optional
        Threads (-1: all cores). None: one below ``TSNE_THREADS_MIN_SAMPLES``
        latents, where threads cost more in synchronisation than they save
        (on a busy 2-core machine, 60 points took 20 s on 2 threads, 1 s on
        one), all cores from there on.
    method_kwargs : dict, optional
        Other arguments of :class:`openTSNE.TSNE` (e.g. ``{"exaggeration": 2}``).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(25, 5))
    >>> tsne = TSNEProjection(max_iter=300).fit(z)
    >>> bool(np.allclose(tsne.transform(z[3]), tsne.embedding_[3]))
    True
    """

    method = "tsne"

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "gap"] = "flatten",
        standardize: bool = False,
        pca_dims: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        transform_neighbors: int = 25,
        transform_perplexity: float = 5.0,
        *,
        perplexity: float | None = None,
        max_iter: int | None = None,
        n_jobs: int | None = None,
        method_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(n_components, features, standardize, pca_dims, random_state, method_kwargs=method_kwargs)
        self.transform_neighbors = transform_neighbors
        self.transform_perplexity = transform_perplexity
        self.perplexity = perplexity
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def _check_method_params(self) -> None:
        self._require_int("transform_neighbors", 1, "(e.g. 25)")
        if not _is_positive(self.transform_perplexity):
            raise ValueError(f"transform_perplexity must be a number > 0 (e.g. 5), got {self.transform_perplexity!r}")
        if self.perplexity is not None and not _is_positive(self.perplexity):
            raise ValueError(
                f"perplexity must be a number > 0 (e.g. 30) or None for automatic, got {self.perplexity!r}"
            )
        early = (self.method_kwargs or {}).get("early_exaggeration_iter", 250)
        self._require_int(
            "max_iter", early + 1, f"(more than the {early} steps of early exaggeration) or None for 750", optional=True
        )
        if not (self.n_jobs is None or (_is_int(self.n_jobs) and self.n_jobs != 0)):
            raise ValueError(
                f"TSNEProjection: n_jobs must be a non-zero int (-1: all cores) or None, got {self.n_jobs!r}"
            )

    def openTSNE_params(self, n_samples: int) -> dict[str, Any]:
        """The arguments of :class:`openTSNE.TSNE` this projection uses for ``n_samples`` latents.

        Examples
        --------
        >>> p = TSNEProjection(max_iter=1000, method_kwargs={"exaggeration": 2}).openTSNE_params(367)
        >>> p["perplexity"], p["early_exaggeration_iter"], p["n_iter"], p["exaggeration"]
        (30.0, 250, 750, 2)
        """
        kw = dict(self.method_kwargs or {})
        early = int(kw.pop("early_exaggeration_iter", 250))
        perplexity = self.perplexity if self.perplexity is not None else min(30.0, max(1.0, (n_samples - 1) / 3.0))
        n_iter = kw.pop("n_iter", 500) if self.max_iter is None else max(int(self.max_iter) - early, 0)
        return {
            "n_components": self.n_components,
            "perplexity": float(perplexity),
            "early_exaggeration_iter": early,
            "n_iter": n_iter,
            "n_jobs": self.n_jobs if self.n_jobs is not None else (-1 if n_samples >= TSNE_THREADS_MIN_SAMPLES else 1),
            "random_state": self.random_state,
            **kw,
        }

    def _fit_embedding(self, f: np.ndarray) -> np.ndarray:
        from openTSNE import TSNE

        self.tsne_ = TSNE(**self.openTSNE_params(len(f)))
        emb = self.tsne_.fit(f)
        self._affinities: Any = emb.affinities  # the k-NN index new points are placed with
        return np.array(emb, np.float64)

    def _restore_model(self, f: np.ndarray) -> None:
        # The affinities (a k-NN index) are rebuilt on the first transform, not
        # here: a cached map is shown without waiting for them.
        self._affinities = None

    def _after_fit(self, f: np.ndarray) -> None:
        super()._after_fit(f)
        self._placement: Any = None  # openTSNE's TSNEEmbedding, built on the first transform

    def _placement_model(self) -> tuple[Any, np.ndarray]:
        """openTSNE's embedding object for ``transform``, and the shift back to ``embedding_``."""
        if self._placement is None:
            from openTSNE import TSNE

            # transform centres the reference map in place: give it a centred
            # copy (so that is a no-op) and shift its answers back.
            centre = (self.embedding_.max(axis=0) + self.embedding_.min(axis=0)) / 2
            tsne = TSNE(**self.openTSNE_params(len(self.embedding_)))
            log = logging.getLogger("openTSNE")
            level = log.level
            log.setLevel(logging.ERROR)  # "initial embedding has a large variance": it is the final map
            try:
                if self._affinities is None:  # restored from the cache: openTSNE's own k-NN, same settings
                    model = tsne.prepare_initial(self.train_features_, initialization=self.embedding_ - centre)
                else:
                    model = tsne.prepare_initial(affinities=self._affinities, initialization=self.embedding_ - centre)
            finally:
                log.setLevel(level)
            self._placement = (model, centre)
        return self._placement

    def _transform_prepared(self, f: np.ndarray) -> np.ndarray:
        model, centre = self._placement_model()
        k = min(self.transform_neighbors, len(self.embedding_) - 1)
        y = np.asarray(model.transform(f, perplexity=min(self.transform_perplexity, k / 3.0), k=k)) + centre
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
        pca_dims: int | Literal["auto"] | None = "auto",
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
        wait_for_the_warm_up()
        umap = import_umap()
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


def _latents_digest(latents: Any) -> Any:
    """What the cache key hashes for the latents: the array, or for a store a digest of its blocks."""
    if not out_of_core(latents):
        return np.asarray(latents)
    h = hashlib.sha256(f"{np.dtype(latents.dtype).str}{tuple(latents.shape)}".encode())
    for rows in iter_row_blocks(int(latents.shape[0]), latent_block_rows(tuple(latents.shape))):
        h.update(np.ascontiguousarray(latents[rows]).tobytes())
    return "store:" + h.hexdigest()


def _cache_key(latents: Any, proj: _Projection) -> str:
    versions = {"sklearn": _version("scikit-learn"), "numpy": np.__version__}
    if proj.method == "umap":
        versions["umap"] = _version("umap-learn")
    if proj.method == "tsne":
        versions["openTSNE"] = _version("openTSNE")
    # What pca_dims="auto" and the blocked PCA resolve to depends on these too.
    settings = {"auto_pca": [AUTO_PCA_DIMS, AUTO_PCA_MIN_SAMPLES], "blocked_pca_bytes": BLOCKED_PCA_BYTES}
    return content_hash(_CACHE_VERSION, _latents_digest(latents), proj.method, proj.get_params(), versions, settings)


def fit_cached(
    latents: Any, method: str, cache: bool, progress: bool, kw: dict[str, Any], need_model: bool
) -> tuple[_Projection | None, np.ndarray, float]:
    """A map of ``latents`` through the disk cache: (fitted projection or None, embedding, fit seconds).

    What :func:`project` and :func:`fit_projection` share, and what
    :func:`~latent_widgets.analysis.map_quality.quality_table` times its
    maps with: the fit's seconds are stored with the map, so a map read
    from the cache reports the time its fit took.

    Parameters
    ----------
    latents : ndarray or row-indexable store, shape (N, *latent_shape)
    method : {"pca", "tsne", "umap"}
    cache, progress : bool
        As in :func:`project`.
    kw : dict
        Projection parameters (see :func:`make_projection`).
    need_model : bool
        Also restore the projection of a cached map (for ``transform``);
        without it a cached map comes back with None in its place.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    >>> _, emb, seconds = fit_cached(z, "pca", False, False, {}, need_model=False)
    >>> emb.shape, seconds >= 0
    ((20, 2), True)
    """
    from ..core.cache import load_arrays, save_arrays

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

    n = int(latents.shape[0]) if out_of_core(latents) else len(latents)
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
    _, emb, _ = fit_cached(latents, method, cache, progress, kw, need_model=False)
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
    proj, _, _ = fit_cached(latents, method, cache, progress, kw, need_model=True)
    assert proj is not None
    return proj
