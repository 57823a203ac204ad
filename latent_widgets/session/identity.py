"""What a saved session is checked against: the content hashes of its dataset, its model and its map.

Examples
--------
>>> import numpy as np
>>> model_hash(None, np.zeros((2, 3))) == model_hash(None, np.zeros((2, 3)))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.hashing import content_hash

__all__ = ["data_hash", "model_hash", "points_hash"]


def data_hash(dataset: Any) -> str:
    """The dataset's content hash (what a saved session is checked against).

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> data_hash(synthetic_road_scenes(4, size=(16, 16), seed=0)) == data_hash(
    ...     synthetic_road_scenes(4, size=(16, 16), seed=0))
    True
    """
    return str(dataset.content_hash())


def model_hash(model: Any, latents: Any = None) -> str:
    """A hash of the model's architecture and weights, encoder and decoder.

    A :class:`~latent_widgets.model.latent_model.LatentModel` hashes its
    encoder (``weights_hash``, the encoding cache's key) and its decoder's
    weights; another model object its ``content_hash()`` or
    ``fingerprint()`` when it has one, else its numpy array attributes. A
    maps-only session (``model=None``) is keyed by its latents.

    Examples
    --------
    >>> model_hash(None, np.zeros((2, 3))) == model_hash(None, np.zeros((2, 3)))
    True
    """
    if model is None:
        if latents is None:
            raise ValueError("model_hash(None) needs the latents of the maps-only session")
        return content_hash("latents", np.asarray(latents))
    for name in ("content_hash", "fingerprint"):
        fn = getattr(model, name, None)
        if callable(fn):
            return str(fn())
    if callable(getattr(model, "weights_hash", None)):
        decoder = getattr(model, "decoder", None)
        weights = [np.asarray(w) for w in decoder.get_weights()] if hasattr(decoder, "get_weights") else []
        return content_hash("latent-model", model.weights_hash(), weights)
    arrays = {k: v for k, v in sorted(vars(model).items()) if isinstance(v, np.ndarray)}
    if not arrays:
        raise TypeError(
            f"cannot hash a {type(model).__name__}: give it a content_hash() method (its weights' hash) "
            "so that a saved session can be checked against it"
        )
    return content_hash(type(model).__name__, list(arrays), list(arrays.values()))


def points_hash(points: np.ndarray) -> str:
    """The content hash of a map's points (what a saved session's map is checked against)."""
    return content_hash("map", np.asarray(points, np.float64))
