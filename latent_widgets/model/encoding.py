"""What a latent model's encode returns: the latents and the skip features, one row per image.

Examples
--------
>>> import numpy as np
>>> enc = Encoding(np.zeros((2, 3, 4, 8), np.float32), ())
>>> enc.latents.shape, enc.skips
((2, 3, 4, 8), ())
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Encoding"]


class Encoding(NamedTuple):
    """What :meth:`LatentModel.encode` and :meth:`LatentModel.encode_dataset` return.

    Attributes
    ----------
    latents : ndarray, float32, shape (N, *latent_shape)
        From ``encode_dataset`` with a store: a read-only
        :class:`~latent_widgets.latents.store.StoredArray` on disk, indexed like numpy.
    skips : tuple of ndarray
        One array ``(N, *skip_shape)`` per skip input of the decoder, in the
        decoder's order; ``()`` for a network without skips. From
        ``encode_dataset`` with a store: stored arrays, or
        :class:`~latent_widgets.latents.lazy_skips.LazySkipColumn` objects that re-encode
        the samples they are indexed with.
    """

    latents: np.ndarray
    skips: tuple[np.ndarray, ...]
