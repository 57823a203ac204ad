"""The model interface that the analysis functions and the widgets call.

:class:`~latent_widgets.model.latent_model.LatentModel` implements it; so can any
object with these attributes and methods (the tests use a numpy-only toy
model), which is why the analysis code is typed against these protocols and
not against the Keras adapter.

Examples
--------
>>> from latent_widgets.model.protocols import LatentCodec
>>> def n_skips(model: LatentCodec) -> int:
...     return len(model.skip_shapes)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..data.dataset import SegmentationDataset

__all__ = ["EncodingLike", "LatentCodec", "LatentModelLike"]


class EncodingLike(Protocol):
    """What ``encode`` returns: latents ``(N, *latent_shape)`` and one array per skip."""

    @property
    def latents(self) -> np.ndarray: ...

    @property
    def skips(self) -> tuple[np.ndarray, ...]: ...


class LatentCodec(Protocol):
    """Encode images to latents and decode latents to class probabilities.

    What :mod:`latent_widgets.analysis.interpolation` and
    :mod:`latent_widgets.analysis.attributes` need. ``decode`` takes the latents and
    the skips (``None`` or ``()`` for a model without skips).
    """

    latent_shape: tuple[int, ...]
    skip_shapes: tuple[tuple[int, ...], ...]
    has_skips: bool

    def encode(self, images: Any, batch_size: int = ..., progress: bool | None = ...) -> EncodingLike: ...

    def decode(self, latents: Any, skips: Sequence[Any] | None = ..., batch_size: int = ...) -> np.ndarray: ...

    def decode_with_masks(
        self, latents: Any, skips: Sequence[Any] | None = ..., batch_size: int = ...
    ) -> tuple[np.ndarray, np.ndarray]: ...


class LatentModelLike(LatentCodec, Protocol):
    """A :class:`LatentCodec` that also predicts masks and encodes whole datasets: what the widgets call."""

    input_shape: tuple[int, int, int]
    n_classes: int

    def predict_masks(self, images: Any, batch_size: int = ...) -> np.ndarray: ...

    def encode_dataset(
        self, dataset: SegmentationDataset, batch_size: int = ..., cache: bool = ...
    ) -> EncodingLike: ...
