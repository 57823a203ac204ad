"""How far generated latents (path steps, attribute edits) lie from the real ones.

:func:`off_manifold` measures it in units of the data's own spacing, so
that one threshold reads the same for every model: 0 on a real latent,
about 1 as close to the data as real samples are to each other, well above
1 off the data (a latent the decoder never saw the like of). How good a 2-D
map of the latents is, is :mod:`latent_widgets.analysis.map_quality`.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.off_manifold import off_manifold
>>> data = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
>>> off_manifold(np.array([[0.5, 0.0]]), data).tolist()
[0.5]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .neighbors import LatentIndex

__all__ = ["off_manifold"]


def off_manifold(points: np.ndarray, latents: Any, *, index: LatentIndex | None = None) -> np.ndarray:
    """How far generated latents lie from the data, in units of the data's own spacing.

    Each point's distance to its nearest real latent, divided by the
    typical nearest-neighbour distance of the data: the median over the real
    latents of each one's distance to its nearest other latent
    (:meth:`LatentIndex.nn_distance_scale`). A real latent scores 0; around
    1 a point is as close to the data as real samples are to each other;
    well above 1 it has left the data (a path step or attribute edit the
    decoder never saw the like of).

    Parameters
    ----------
    points : ndarray, shape (M, *latent_shape), or one latent
        Generated latents (path steps, edited latents).
    latents : ndarray or row-indexable store, shape (N, *latent_shape)
        The real latents, N >= 2.
    index : LatentIndex, optional
        An index of ``latents`` (built once, reused: its distances, metric
        and cached scale). Without it an exact euclidean index is built,
        which streams a store in row blocks.

    Returns
    -------
    ndarray, float64, shape (M,)

    Examples
    --------
    >>> data = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])  # spacings 1, 1, 2: median 1
    >>> off_manifold(np.array([[1.0, 0.0], [1.0, 2.0], [10.0, 0.0]]), data).tolist()
    [0.0, 2.0, 7.0]
    """
    n = int(np.shape(latents)[0])
    if index is None:
        index = LatentIndex("exact").fit(latents)
    elif index.n_samples != n:
        raise ValueError(
            f"index holds {index.n_samples} latents but latents has {n}; pass the index built on these latents"
        )
    if n < 2:
        raise ValueError(f"off_manifold needs at least 2 real latents to measure their spacing, got {n}")
    q = np.asarray(points)
    if q.ndim and q.shape != index.sample_shape and q.shape[0] == 0:
        return np.zeros(0, np.float64)
    scale = index.nn_distance_scale()
    if not scale > 0:
        raise ValueError(
            "the real latents' median nearest-neighbour distance is 0 (over half of them duplicate another), "
            "so no distance can be measured against it; remove the duplicates"
        )
    return index.query(q, k=1)[1][:, 0] / scale
