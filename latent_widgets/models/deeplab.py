"""A small DeepLabv3+ (Chen et al., 2018) for CPU use.

- Backbone: a stem and four residual blocks of 3x3 convolutions with batch
  norm, downsampling to 1/4 (the low-level features), then to the output
  stride (8 or 16); the last block is atrous (dilation 2) instead of
  downsampling further.
- ASPP: a 1x1 convolution, three atrous 3x3 convolutions and image pooling,
  concatenated and projected by a 1x1 convolution. That projection is the
  latent (a layer named ``"latent"``).
- Decoder: the ASPP features, bilinearly upsampled to 1/4, are concatenated
  with the 1x1-projected low-level features, refined by two 3x3
  convolutions, mapped to class scores, upsampled to the input size and
  passed through a softmax.

Split at ``"latent"``, the decoder has one skip input: the projected
low-level features.

Examples
--------
>>> model = deeplabv3_plus(12, (96, 128, 3), backbone_width=0.25)  # doctest: +SKIP
>>> model.get_layer("latent").output.shape[1:]  # doctest: +SKIP
(6, 8, 64)
"""

from __future__ import annotations

from collections.abc import Sequence

from .segnet import _check_shape, _scaled

__all__ = ["deeplabv3_plus"]


def deeplabv3_plus(
    n_classes: int = 12,
    input_shape: tuple[int, int, int] = (288, 384, 3),
    backbone_width: float = 1.0,
    *,
    output_stride: int = 16,
    atrous_rates: Sequence[int] | None = None,
    name: str = "deeplabv3_plus",
):
    """Build a DeepLabv3+ whose ASPP output layer is named ``"latent"``.

    Parameters
    ----------
    n_classes : int
        Number of output classes.
    input_shape : (H, W, C)
        Input size; H and W must be multiples of ``output_stride``.
    backbone_width : float
        Channel multiplier of the backbone, ASPP (256 channels at 1.0) and
        decoder. 0.25 trains on a CPU.
    output_stride : {8, 16}
        Input size / size of the ASPP features.
    atrous_rates : sequence of 3 ints, optional
        Dilation rates of the ASPP 3x3 branches; (6, 12, 18) for output
        stride 16 and (12, 24, 36) for 8, as in the paper.
    name : str
        Name of the Keras model.

    Returns
    -------
    keras.Model
        Maps ``(N, H, W, C)`` images in 0..1 to ``(N, H, W, n_classes)``
        per-pixel class probabilities.

    Examples
    --------
    >>> model = deeplabv3_plus(12, (96, 128, 3), backbone_width=0.25)  # doctest: +SKIP
    """
    import keras
    from keras import layers

    if output_stride not in (8, 16):
        raise ValueError(f"deeplabv3_plus: output_stride must be 8 or 16, got {output_stride}.")
    h, w, c = _check_shape(input_shape, output_stride, "deeplabv3_plus")
    if n_classes < 1:
        raise ValueError(f"deeplabv3_plus: n_classes must be >= 1, got {n_classes}.")
    if not backbone_width > 0:
        raise ValueError(f"deeplabv3_plus: backbone_width must be > 0, got {backbone_width}.")
    rates = tuple(atrous_rates) if atrous_rates is not None else ((6, 12, 18) if output_stride == 16 else (12, 24, 36))
    if len(rates) != 3:
        raise ValueError(f"deeplabv3_plus: atrous_rates must hold 3 rates, got {rates!r}.")

    def conv_bn(x, filters, kernel, name, strides=1, dilation=1):
        x = layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            dilation_rate=dilation,
            padding="same",
            use_bias=False,
            name=f"{name}_conv",
        )(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def res_block(x, filters, name, strides=1, dilation=1):
        # A basic ResNet block; a 1x1 projection when the shape changes.
        y = conv_bn(x, filters, 3, f"{name}_a", strides=strides, dilation=1 if strides > 1 else dilation)
        y = layers.Conv2D(filters, 3, dilation_rate=dilation, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
        y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
        if strides > 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj_conv")(x)
            x = layers.BatchNormalization(name=f"{name}_proj_bn")(x)
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))

    f = lambda n: _scaled(n, backbone_width)  # noqa: E731

    inputs = keras.Input((h, w, c), name="image")
    x = conv_bn(inputs, f(32), 3, "stem", strides=2)  # 1/2
    x = res_block(x, f(64), "block1", strides=2)  # 1/4
    low_level = x
    x = res_block(x, f(128), "block2", strides=2)  # 1/8
    if output_stride == 16:
        x = res_block(x, f(256), "block3", strides=2)  # 1/16
        x = res_block(x, f(256), "block4", dilation=2)
    else:
        x = res_block(x, f(256), "block3", dilation=2)
        x = res_block(x, f(256), "block4", dilation=4)

    # ASPP
    aspp = f(256)
    fh, fw = h // output_stride, w // output_stride
    branches = [conv_bn(x, aspp, 1, "aspp_1x1")]
    for r in rates:
        branches.append(conv_bn(x, aspp, 3, f"aspp_rate{r}", dilation=r))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = conv_bn(pooled, aspp, 1, "aspp_pool_proj")
    # Broadcast the 1x1 image-level features back to the feature-map size.
    branches.append(layers.UpSampling2D((fh, fw), name="aspp_pool_up")(pooled))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = layers.Conv2D(aspp, 1, use_bias=False, name="aspp_proj_conv")(x)
    x = layers.BatchNormalization(name="aspp_proj_bn")(x)
    x = layers.ReLU(name="latent")(x)

    # Decoder
    low = conv_bn(low_level, _scaled(48, backbone_width), 1, "low_level_proj")
    x = layers.UpSampling2D(output_stride // 4, interpolation="bilinear", name="decoder_up")(x)
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn(x, aspp, 3, "decoder1")
    x = conv_bn(x, aspp, 3, "decoder2")
    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="logits_up")(x)
    outputs = layers.Softmax(axis=-1, name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
