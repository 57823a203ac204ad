"""The t-SNE map of the latents (openTSNE), and openTSNE's placement of new latents on it.

Examples
--------
>>> import numpy as np
>>> z = np.random.default_rng(0).normal(size=(25, 5))
>>> TSNEProjection(max_iter=300).fit(z).embedding_.shape
(25, 2)
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from .neighbor_placement import NeighborPlacement
from .projection_base import is_int, is_positive

__all__ = ["TSNE_THREADS_MIN_SAMPLES", "TSNEProjection"]

#: t-SNE's ``n_jobs=None`` runs one thread below this many latents, all cores above.
TSNE_THREADS_MIN_SAMPLES: int = 5000


class TSNEProjection(NeighborPlacement):
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
        As for every projection (see :mod:`latent_widgets.analysis.projection`).
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
        features: Literal["flatten", "pooled"] = "flatten",
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
        if not is_positive(self.transform_perplexity):
            raise ValueError(f"transform_perplexity must be a number > 0 (e.g. 5), got {self.transform_perplexity!r}")
        if self.perplexity is not None and not is_positive(self.perplexity):
            raise ValueError(
                f"perplexity must be a number > 0 (e.g. 30) or None for automatic, got {self.perplexity!r}"
            )
        early = (self.method_kwargs or {}).get("early_exaggeration_iter", 250)
        self._require_int(
            "max_iter", early + 1, f"(more than the {early} steps of early exaggeration) or None for 750", optional=True
        )
        if not (self.n_jobs is None or (is_int(self.n_jobs) and self.n_jobs != 0)):
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
