"""Placing new latents on a t-SNE or UMAP map: the training features kept, equal latents snapped to their point.

:class:`NeighborPlacement` is the common part of
:class:`~latent_widgets.analysis.tsne_projection.TSNEProjection` and
:class:`~latent_widgets.analysis.umap_projection.UMAPProjection`: after a
fit it keeps the features the map was made of, and a new latent whose
nearest training latent is the same one lands exactly on that latent's
point, so that an interpolation path starts and ends on its endpoints.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.tsne_projection import TSNEProjection
>>> z = np.random.default_rng(0).normal(size=(25, 5))
>>> tsne = TSNEProjection(max_iter=300).fit(z)
>>> isinstance(tsne, NeighborPlacement), bool(np.allclose(tsne.transform(z[3]), tsne.embedding_[3]))
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .projection_base import Projection

__all__ = ["NeighborPlacement"]


class NeighborPlacement(Projection):
    """A projection that keeps the prepared training features for placing new points.

    A new latent equal to a training latent (a path endpoint) lands on that
    latent's point (``_snap``), whatever the method's own placement gives.
    """

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
