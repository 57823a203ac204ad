"""The UMAP map of the latents (umap-learn, seeded), and UMAP's own placement of new latents on it.

umap-learn is imported without TensorFlow and with numba's disk cache
(:mod:`latent_widgets.analysis.umap_runtime`); a fit waits for a warm-up
under way (:mod:`latent_widgets.analysis.warm_up`) rather than compile twice.

Examples
--------
>>> import numpy as np
>>> z = np.random.default_rng(0).normal(size=(30, 5))
>>> UMAPProjection().fit_transform(z).shape  # doctest: +SKIP
(30, 2)
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from .neighbor_placement import NeighborPlacement
from .umap_runtime import import_umap, wait_for_the_warm_up

__all__ = ["UMAPProjection"]


class UMAPProjection(NeighborPlacement):
    """UMAP of the latents (``umap-learn``, seeded, hence single-threaded).

    ``transform`` is UMAP's own out-of-sample embedding.

    Parameters
    ----------
    n_components, features, standardize, pca_dims, random_state
        As for every projection (see :mod:`latent_widgets.analysis.projection`).
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
        features: Literal["flatten", "pooled"] = "flatten",
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
