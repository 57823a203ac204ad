"""How big the zoo's networks are: their channel counts scaled by a width, their input sizes checked.

Every zoo builder (:func:`~latent_widgets.model.zoo.segnet`,
:func:`~latent_widgets.model.zoo.vgg_segnet`,
:func:`~latent_widgets.model.zoo.deeplabv3_plus`) checks its input shape
against the network's downsampling factor and scales its filters with
``width``, the same way.

Examples
--------
>>> scaled_filters(512, 0.25), scaled_filters(8, 0.1)
(128, 4)
>>> check_input_shape((96, 128, 3), 16, "segnet")
(96, 128, 3)
"""

from __future__ import annotations

__all__ = ["check_input_shape", "scaled_filters"]


def scaled_filters(filters: int, width: float) -> int:
    """``filters`` times ``width``, rounded, and at least 4 (a layer of fewer channels learns little).

    Examples
    --------
    >>> scaled_filters(64, 0.5)
    32
    """
    return max(4, round(filters * width))


def check_input_shape(input_shape: tuple[int, int, int], factor: int, name: str) -> tuple[int, int, int]:
    """``input_shape`` as ints, or a ValueError naming ``name`` and a size the network can take.

    Parameters
    ----------
    input_shape : (H, W, C)
    factor : int
        How many times the network downsamples: H and W must be multiples of it.
    name : str
        The builder, for the message.

    Examples
    --------
    >>> check_input_shape((100, 128, 3), 16, "segnet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: segnet: height and width must be positive multiples of 16 ... resize the images, e.g. to 96x128.
    """
    if len(input_shape) != 3:
        raise ValueError(f"{name}: input_shape must be (height, width, channels), got {input_shape!r}.")
    h, w, c = (int(v) for v in input_shape)
    if h % factor or w % factor or h <= 0 or w <= 0 or c <= 0:
        raise ValueError(
            f"{name}: height and width must be positive multiples of {factor} (the network "
            f"downsamples {factor}x), got {h}x{w}; resize the images, e.g. to "
            f"{max(factor, h // factor * factor)}x{max(factor, w // factor * factor)}."
        )
    return h, w, c
