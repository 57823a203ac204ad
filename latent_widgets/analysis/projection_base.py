"""What the three projections share: features, standardisation, PCA pre-reduction, the fitted state.

:class:`Projection` is the scikit-learn estimator that
:class:`~latent_widgets.analysis.pca_projection.PCAProjection`,
:class:`~latent_widgets.analysis.tsne_projection.TSNEProjection` and
:class:`~latent_widgets.analysis.umap_projection.UMAPProjection` extend: it
checks the parameters and the latents, turns the latents into the features a
map is made of (:mod:`latent_widgets.analysis.features`), standardises them,
reduces them by PCA first where ``pca_dims`` asks for it, and saves or
restores a fitted map as plain arrays (``to_state``/``from_state``). The
options are described in :mod:`latent_widgets.analysis.projection`.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.pca_projection import PCAProjection
>>> z = np.random.default_rng(0).normal(size=(30, 4, 4, 8)).astype(np.float32)
>>> isinstance(PCAProjection().fit(z), Projection)
True
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..core.arrays import BLOCK_BYTES, is_row_store, iter_row_blocks
from .blocked_pca import BlockedPCA
from .features import (
    FeatureRows,
    check_features,
    check_finite,
    check_latents,
    column_mean_std,
    latent_features,
    standardized,
)

__all__ = [
    "AUTO_PCA_DIMS",
    "AUTO_PCA_MIN_SAMPLES",
    "BLOCKED_PCA_BYTES",
    "Projection",
    "is_int",
    "is_positive",
    "pca_transform",
    "preprocessing_settings",
]

#: ``pca_dims="auto"`` (the default of t-SNE and UMAP) reduces the features to
#: ``AUTO_PCA_DIMS`` dimensions when there are more than that many features and
#: at least ``AUTO_PCA_MIN_SAMPLES`` latents (measured: see docs/analysis.md).
AUTO_PCA_DIMS: int = 50
AUTO_PCA_MIN_SAMPLES: int = 1000
#: Features above this many bytes (or read from a store) are PCA-reduced by
#: :class:`~latent_widgets.analysis.blocked_pca.BlockedPCA`, a block of rows at a time,
#: instead of scikit-learn's ``PCA``, which first makes a centred copy of them.
BLOCKED_PCA_BYTES: int = 1 << 30


def preprocessing_settings() -> dict[str, Any]:
    """The settings that ``pca_dims="auto"`` and the choice of the blocked PCA depend on: part of a map's cache key.

    Read when called, so that the key follows a changed setting.

    Examples
    --------
    >>> preprocessing_settings()["auto_pca"]
    [50, 1000]
    """
    return {"auto_pca": [AUTO_PCA_DIMS, AUTO_PCA_MIN_SAMPLES], "blocked_pca_bytes": BLOCKED_PCA_BYTES}


def pca_transform(pca: Any, f: Any) -> np.ndarray:
    """A fitted PCA (scikit-learn's or :class:`BlockedPCA`) applied to features, by row blocks for a store.

    Examples
    --------
    >>> f = np.random.default_rng(0).normal(size=(20, 5))
    >>> pca_transform(BlockedPCA(2, random_state=0).fit(f), f).shape
    (20, 2)
    """
    if isinstance(f, np.ndarray):
        return pca.transform(f)
    out = np.empty((len(f), int(pca.n_components_)), np.float64)
    for rows in iter_row_blocks(len(f), max(1, BLOCK_BYTES // (8 * max(f.shape[1], 1)))):
        out[rows] = pca.transform(f[rows])
    return out


def is_int(v: Any) -> bool:
    """True for an integer that is not a bool (a parameter check).

    Examples
    --------
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def is_positive(v: Any) -> bool:
    """True for a real number > 0 that is not a bool (a parameter check).

    Examples
    --------
    >>> is_positive(0.5), is_positive(0), is_positive(True)
    (True, False, False)
    """
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and v > 0


def _params_json(params: Mapping[str, Any]) -> str:
    # Only tells one configuration from another on restore (the cache key is
    # the real guarantee); repr stands in for values JSON cannot write.
    return json.dumps(params, sort_keys=True, default=repr)


class Projection(TransformerMixin, BaseEstimator):
    """Common part of the three projections: features, standardisation, PCA pre-reduction.

    A scikit-learn estimator: the constructor only stores its arguments, so
    ``get_params``, ``set_params`` and :func:`sklearn.base.clone` work;
    ``fit`` checks them and the latents; fitted attributes end in ``_``.
    A method (:class:`~latent_widgets.analysis.pca_projection.PCAProjection`,
    :class:`~latent_widgets.analysis.tsne_projection.TSNEProjection`,
    :class:`~latent_widgets.analysis.umap_projection.UMAPProjection`) sets
    ``method`` and implements ``_fit_embedding`` and ``_transform_prepared``
    on the prepared features.

    Examples
    --------
    >>> from latent_widgets.analysis.pca_projection import PCAProjection
    >>> PCAProjection(features="pooled").get_params()["features"]
    'pooled'
    """

    method: ClassVar[str] = ""
    # t-SNE and UMAP need their features in memory; PCA reads a store by blocks.
    _in_memory: ClassVar[bool] = True

    def __init__(
        self,
        n_components: int = 2,
        features: Literal["flatten", "pooled"] = "flatten",
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
        check_features(self.features, f"{name}: ")
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
        if (value is None and optional) or (is_int(value) and value >= low):
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
        >>> from latent_widgets.analysis.tsne_projection import TSNEProjection
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
        if is_row_store(latents):
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
            if self._blocked_pca(f):
                self.pre_pca_ = BlockedPCA(dims, random_state=self.random_state).fit(f)
                f = self.pre_pca_.transform(f)
            else:
                from sklearn.decomposition import PCA

                self.pre_pca_ = PCA(dims, random_state=self.random_state)
                f = self.pre_pca_.fit_transform(f)
        return f

    @staticmethod
    def _blocked_pca(f: Any) -> bool:
        """Whether features are PCA-reduced by :class:`BlockedPCA`: a store, or above ``BLOCKED_PCA_BYTES``."""
        return isinstance(f, FeatureRows) or f.nbytes > BLOCKED_PCA_BYTES

    @property
    def _scaling(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.mean_ is not None and self.scale_ is not None
        return self.mean_, self.scale_

    def _prepare(self, latents: Any) -> Any:
        check_is_fitted(
            self, "embedding_", msg="This %(name)s is not fitted yet: call fit(latents) first, or use fit_projection."
        )
        x = latents if is_row_store(latents) else np.asarray(latents)
        if tuple(x.shape) == self.latent_shape_:
            x = np.asarray(x)[None]
        if tuple(x.shape[1:]) != self.latent_shape_:
            raise ValueError(
                f"latents must have shape (M, {', '.join(map(str, self.latent_shape_))}) like the "
                f"fitted ones, got {tuple(x.shape)}"
            )
        if is_row_store(x):
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
            f = pca_transform(self.pre_pca_, f)
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
        >>> from latent_widgets.analysis.pca_projection import PCAProjection
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
        x = latents if is_row_store(latents) else np.asarray(latents)
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
