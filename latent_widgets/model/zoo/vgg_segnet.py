"""The study's SegNet: ``vgg_segnet`` of ``image-segmentation-keras``, as it is.

Unlike :func:`latent_widgets.model.zoo.segnet` (batch norm in the encoder, full
resolution output), this is the network the study trained:

- preprocessing inside the model: images in 0..1 are scaled to 0..255 and
  the ImageNet channel means (R, G, B = 123.68, 116.779, 103.939) are
  subtracted, the library's ``"sub_mean"`` normalisation;
- encoder: VGG16 blocks 1-4 (3x3 convolutions with bias and ReLU, *no* batch
  normalisation, 2x2 max pooling), layer names as in
  ``keras.applications.VGG16`` so that ImageNet weights load by name; the
  fourth pooling is the latent (a layer named ``"latent"``), 1/16 of the
  input size, 512 channels;
- decoder (the library's ``segnet_decoder`` with ``n_up=3``): zero padding +
  3x3 valid convolution + batch norm (no activation) at 512, 256, 128 and 64
  channels with a 2x nearest upsampling before the last three, a 3x3
  convolution to class scores and a softmax. The output is at *half* the
  input resolution; :class:`latent_widgets.LatentModel` resizes the
  probabilities to the image size, :func:`latent_widgets.model.training.train`
  does the same for the loss and the metrics.

Without batch norm, the encoder's activations are not rescaled: from 0..255
inputs they grow through the ReLU layers, so the latent's scale is set by
the weights (ImageNet's, or those training reaches) rather than kept near
unit variance.

Examples
--------
>>> model = vgg_segnet(12, (288, 384, 3))  # doctest: +SKIP
>>> model.get_layer("latent").output.shape, model.output.shape  # doctest: +SKIP
((None, 18, 24, 512), (None, 144, 192, 12))
"""

from __future__ import annotations

import os
from pathlib import Path

from .sizing import check_input_shape, scaled_filters

__all__ = ["VGG_MEAN_RGB", "vgg_segnet"]

#: ImageNet channel means on the 0..255 scale, in RGB order, that the
#: library subtracts (its ``sub_mean`` normalisation; images are RGB after it).
VGG_MEAN_RGB: tuple[float, float, float] = (123.68, 116.779, 103.939)

# (filters, convolutions) of VGG16 blocks 1-4.
_VGG_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3))
# Decoder convolutions, from the latent (1/16) to the output (1/2).
_DECODER_FILTERS: tuple[int, ...] = (512, 256, 128, 64)


def _load_vgg_weights(model, path: str | os.PathLike[str], input_shape: tuple[int, int, int]) -> None:
    """Copy the convolution weights of a local VGG16 weight file into ``model``'s encoder."""
    import keras

    file = Path(path)
    if not file.is_file():
        raise ValueError(
            f"vgg_segnet: weights={str(path)!r} is not a file. Pass a local VGG16 weight file (e.g. "
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5) or weights=None to train from scratch; "
            "nothing is downloaded."
        )
    try:
        vgg = keras.applications.VGG16(include_top=False, weights=str(file), input_shape=input_shape)
    except Exception as exc:  # a wrong file gives a deep h5py / Keras trace: say what it means
        raise ValueError(
            f"vgg_segnet: cannot load {file} as VGG16 weights without the top "
            f"({type(exc).__name__}: {str(exc)[:300]}); use the '_notop' VGG16 weight file."
        ) from exc
    for b, (_, n_conv) in enumerate(_VGG_BLOCKS, start=1):
        for i in range(1, n_conv + 1):
            name = f"block{b}_conv{i}"
            model.get_layer(name).set_weights(vgg.get_layer(name).get_weights())


def vgg_segnet(
    n_classes: int = 12,
    input_shape: tuple[int, int, int] = (288, 384, 3),
    width: float = 1.0,
    *,
    weights: str | os.PathLike[str] | None = None,
    name: str = "vgg_segnet",
):
    """Build the study's SegNet (``vgg_segnet``) with its split layer named ``"latent"``.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    input_shape : (H, W, C)
        Input size; H and W must be multiples of 16, C must be 3.
    width : float
        Channel multiplier (1.0 = VGG16's 64..512 channels, the study's
        network). Below 1 the network trains faster on a CPU; the latent
        then has ``512 * width`` channels.
    weights : path, optional
        A local VGG16 weight file without the top (Keras' ``..._notop.h5``)
        loaded into the encoder; only with ``width=1.0``. None (default):
        random weights, trained from scratch. Nothing is downloaded;
        ``"imagenet"`` is refused for that reason. To keep loaded weights
        when training, call ``train(..., reinitialize=False)``.
    name : str
        Name of the Keras model.

    Returns
    -------
    keras.Model
        Maps ``(N, H, W, 3)`` images in 0..1 to ``(N, H/2, W/2, n_classes)``
        per-pixel class probabilities. The latent is
        ``(H/16, W/16, 512*width)``.

    Examples
    --------
    >>> model = vgg_segnet(12, (96, 128, 3), width=0.25)  # doctest: +SKIP
    >>> model.get_layer("latent").output.shape[1:], model.output.shape[1:]  # doctest: +SKIP
    ((6, 8, 128), (48, 64, 12))
    """
    import keras
    from keras import layers

    h, w, c = check_input_shape(input_shape, 16, "vgg_segnet")
    if c != 3:
        raise ValueError(
            f"vgg_segnet: the study's network takes RGB images (3 channels, one mean each), got {c} channels."
        )
    if n_classes < 1:
        raise ValueError(f"vgg_segnet: n_classes must be >= 1, got {n_classes}.")
    if not width > 0:
        raise ValueError(f"vgg_segnet: width must be > 0, got {width}.")
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            "vgg_segnet: weights='imagenet' would download the weights, which this library never does. "
            "Download vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 yourself and pass its path, "
            "or use weights=None."
        )
    if weights is not None and width != 1.0:
        raise ValueError(f"vgg_segnet: VGG16 weights fit width=1.0 only, got width={width}; use width=1.0.")

    inputs = keras.Input((h, w, c), name="image")
    # 0..1 -> 0..255 minus the channel means, inside the model: every zoo model takes 0..1 images.
    offset = [-m for m in VGG_MEAN_RGB]
    x = layers.Rescaling(255.0, offset=offset, name="sub_mean")(inputs)
    for b, (filters, n_conv) in enumerate(_VGG_BLOCKS, start=1):
        for i in range(1, n_conv + 1):
            x = layers.Conv2D(
                scaled_filters(filters, width), 3, padding="same", activation="relu", name=f"block{b}_conv{i}"
            )(x)
        x = layers.MaxPooling2D(2, name="latent" if b == len(_VGG_BLOCKS) else f"block{b}_pool")(x)

    for d, filters in enumerate(_DECODER_FILTERS, start=1):
        if d > 1:
            x = layers.UpSampling2D(2, name=f"decoder{d}_up")(x)
        x = layers.ZeroPadding2D(1, name=f"decoder{d}_pad")(x)
        x = layers.Conv2D(scaled_filters(filters, width), 3, padding="valid", name=f"decoder{d}_conv")(x)
        x = layers.BatchNormalization(name=f"decoder{d}_bn")(x)
    x = layers.Conv2D(n_classes, 3, padding="same", name="logits")(x)
    outputs = layers.Softmax(axis=-1, name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name)
    if weights is not None:
        _load_vgg_weights(model, weights, (h, w, c))
    return model
