"""VGG-style SegNet, after the ``vgg_segnet`` of ``image-segmentation-keras``.

The encoder is the first four blocks of VGG16 (conv 3x3 + batch norm + ReLU,
2x2 max pooling after each block); its output at 1/16 of the input size is
the latent, a layer named ``"latent"``. The decoder mirrors it with
conv + batch norm + ReLU blocks and 2x nearest upsampling, back to the full
input resolution, and ends with a 3x3 convolution and a per-pixel softmax.

Differences from ``image-segmentation-keras`` (on purpose):

- the output is at the input resolution (the framework stops at 1/2), so
  that masks align with the images pixel for pixel;
- the decoder convolutions have a ReLU after batch norm (the framework's
  are linear), and the encoder has batch norm as in the SegNet paper: both
  make training from scratch in a few epochs reliable.

Examples
--------
>>> model = segnet(n_classes=12, input_shape=(288, 384, 3))  # doctest: +SKIP
>>> model.get_layer("latent").output.shape  # doctest: +SKIP
(None, 18, 24, 512)
"""

from __future__ import annotations

from .sizing import check_input_shape, scaled_filters

__all__ = ["segnet"]

# (filters, convolutions) of VGG16 blocks 1-4; block 5 is not used by SegNet.
_VGG_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3))
# Filters of the decoder blocks, from the latent (1/16) up to 1/2 resolution.
_DECODER_FILTERS: tuple[int, ...] = (512, 256, 128, 64)


def segnet(
    n_classes: int = 12,
    input_shape: tuple[int, int, int] = (288, 384, 3),
    width: float = 1.0,
    *,
    name: str = "segnet",
):
    """Build a VGG-style SegNet whose split layer is named ``"latent"``.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    input_shape : (H, W, C)
        Input size; H and W must be multiples of 16.
    width : float
        Channel multiplier (1.0 = VGG16's 64..512 channels). 0.25 trains on a
        CPU; the latent then has 128 channels.
    name : str
        Name of the Keras model.

    Returns
    -------
    keras.Model
        Maps ``(N, H, W, C)`` images in 0..1 to ``(N, H, W, n_classes)``
        per-pixel class probabilities. The latent is ``(H/16, W/16, 512*width)``.

    Examples
    --------
    >>> model = segnet(12, (96, 128, 3), width=0.25)  # doctest: +SKIP
    >>> model.get_layer("latent").output.shape[1:]  # doctest: +SKIP
    (6, 8, 128)
    """
    import keras
    from keras import layers

    h, w, c = check_input_shape(input_shape, 16, "segnet")
    if n_classes < 1:
        raise ValueError(f"segnet: n_classes must be >= 1, got {n_classes}.")
    if not width > 0:
        raise ValueError(f"segnet: width must be > 0, got {width}.")

    inputs = keras.Input((h, w, c), name="image")
    x = inputs
    for b, (filters, n_conv) in enumerate(_VGG_BLOCKS, start=1):
        for i in range(1, n_conv + 1):
            x = layers.Conv2D(
                scaled_filters(filters, width), 3, padding="same", use_bias=False, name=f"block{b}_conv{i}"
            )(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{i}")(x)
            x = layers.ReLU(name=f"block{b}_relu{i}")(x)
        # The last pooling is the split point: the widgets explore this tensor.
        pool_name = "latent" if b == len(_VGG_BLOCKS) else f"block{b}_pool"
        x = layers.MaxPooling2D(2, name=pool_name)(x)

    for d, filters in enumerate(_DECODER_FILTERS, start=1):
        x = layers.Conv2D(scaled_filters(filters, width), 3, padding="same", use_bias=False, name=f"decoder{d}_conv")(x)
        x = layers.BatchNormalization(name=f"decoder{d}_bn")(x)
        x = layers.ReLU(name=f"decoder{d}_relu")(x)
        x = layers.UpSampling2D(2, name=f"decoder{d}_up")(x)
    x = layers.Conv2D(n_classes, 3, padding="same", name="logits")(x)
    outputs = layers.Softmax(axis=-1, name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
