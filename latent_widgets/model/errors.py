"""The error of the model layer: a network, a file or an input that a latent model cannot use.

Raised by the Keras and the ONNX adapters alike (the split, the checks of
images, latents and skips), always with a message that says why and how to
fix it.

Examples
--------
>>> raise LatentModelError("images must be numeric arrays, got dtype <U1.")
Traceback (most recent call last):
...
latent_widgets.model.errors.LatentModelError: images must be numeric arrays, got dtype <U1.
"""

from __future__ import annotations

__all__ = ["LatentModelError"]


class LatentModelError(ValueError):
    """A model or an input that :class:`~latent_widgets.model.latent_model.LatentModel` cannot use.

    The message says why and how to fix it.

    Examples
    --------
    >>> issubclass(LatentModelError, ValueError)
    True
    """
