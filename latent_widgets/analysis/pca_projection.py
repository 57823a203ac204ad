"""The PCA map of the latents: exact, scikit-learn's ``PCA`` in memory, blocked for a store.

Examples
--------
>>> import numpy as np
>>> z = np.random.default_rng(0).normal(size=(30, 4, 4, 8)).astype(np.float32)
>>> pca = PCAProjection().fit(z)
>>> pca.embedding_.shape, pca.transform(z[:2]).shape
((30, 2), (2, 2))
>>> np.allclose(pca.transform(z[:2]), pca.embedding_[:2], atol=1e-4)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocked_pca import BlockedPCA
from .features import FeatureRows
from .projection_base import Projection, pca_transform

__all__ = ["PCAProjection"]


class PCAProjection(Projection):
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
        if self._blocked_pca(f):
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
        y = pca_transform(self.pca_, f)
        if y.shape[1] < self.n_components:
            y = np.pad(y, ((0, 0), (0, self.n_components - y.shape[1])))
        return y
