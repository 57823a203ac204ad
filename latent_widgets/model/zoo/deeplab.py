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

``backbone="xception"`` / ``"mobilenetv2"`` build the study's network
instead, in the layout of the widely used Keras port of DeepLabv3+: images
scaled to -1..1 inside the model; the port's Xception (entry flow, 16 middle
blocks, atrous exit flow) or an atrous MobileNetV2 (inverted residual blocks,
strides beyond the output stride turned into dilations); ASPP of image
pooling and a 1x1 branch, plus three atrous separable branches with
Xception; a 1x1 projection with batch norm and ReLU, the ``"latent"``; then
dropout 0.1. With Xception the decoder concatenates the 1/4 features of the
second entry block (projected to 48 channels: the one skip) and refines with
two separable convolutions; with MobileNetV2, as in the port, there is no
decoder skip: class scores are upsampled straight from the ASPP output.
Deviations: ``"same"`` padding for strided convolutions; output stride 16
by default with both backbones (the port runs MobileNetV2 at 8: pass
``output_stride=8``); and MobileNetV2's
batch norm at Keras' default momentum (0.99, not 0.999) so that the moving
statistics follow a network trained from scratch.

Examples
--------
>>> model = deeplabv3_plus(12, (96, 128, 3), backbone_width=0.25)  # doctest: +SKIP
>>> model.get_layer("latent").output.shape[1:]  # doctest: +SKIP
(6, 8, 64)
"""

from __future__ import annotations

from collections.abc import Sequence

from .sizing import check_input_shape, scaled_filters

__all__ = ["BACKBONES", "deeplabv3_plus"]

#: Backbones of :func:`deeplabv3_plus`: this module's own, and the two of the Keras port the study used.
BACKBONES: tuple[str, ...] = ("resnet", "xception", "mobilenetv2")


def deeplabv3_plus(
    n_classes: int = 12,
    input_shape: tuple[int, int, int] = (288, 384, 3),
    backbone_width: float = 1.0,
    *,
    backbone: str = "resnet",
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
    backbone : {"resnet", "xception", "mobilenetv2"}
        ``"resnet"`` (default): this module's small residual backbone and
        head. ``"xception"`` and ``"mobilenetv2"``: the study's network, the
        widely used Keras port of DeepLabv3+ (see
        :mod:`latent_widgets.model.zoo.deeplab_port`).
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
    >>> study = deeplabv3_plus(12, (96, 128, 3), backbone="mobilenetv2")  # doctest: +SKIP
    """
    if backbone not in BACKBONES:
        raise ValueError(f"deeplabv3_plus: backbone must be one of {BACKBONES}, got {backbone!r}.")
    if backbone != "resnet":
        return _port(
            n_classes,
            input_shape,
            backbone_width,
            backbone=backbone,
            output_stride=output_stride,
            atrous_rates=atrous_rates,
            name=name,
        )
    import keras
    from keras import layers

    if output_stride not in (8, 16):
        raise ValueError(f"deeplabv3_plus: output_stride must be 8 or 16, got {output_stride}.")
    h, w, c = check_input_shape(input_shape, output_stride, "deeplabv3_plus")
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

    f = lambda n: scaled_filters(n, backbone_width)  # noqa: E731

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
    low = conv_bn(low_level, scaled_filters(48, backbone_width), 1, "low_level_proj")
    x = layers.UpSampling2D(output_stride // 4, interpolation="bilinear", name="decoder_up")(x)
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = conv_bn(x, aspp, 3, "decoder1")
    x = conv_bn(x, aspp, 3, "decoder2")
    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    x = layers.UpSampling2D(4, interpolation="bilinear", name="logits_up")(x)
    outputs = layers.Softmax(axis=-1, name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _make_divisible(v: float, divisor: int = 8) -> int:
    # MobileNetV2's rounding of channel counts (keeps them multiples of 8, never 10% below v).
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _port(
    n_classes: int,
    input_shape: tuple[int, int, int],
    width: float,
    *,
    backbone: str,
    output_stride: int,
    atrous_rates: Sequence[int] | None,
    name: str,
):
    """DeepLabv3+ in the layout of the Keras port the study used (Xception or MobileNetV2 backbone)."""
    import keras
    from keras import layers

    if output_stride not in (8, 16):
        raise ValueError(f"deeplabv3_plus: output_stride must be 8 or 16, got {output_stride}.")
    h, w, c = check_input_shape(input_shape, output_stride, "deeplabv3_plus")
    if n_classes < 1:
        raise ValueError(f"deeplabv3_plus: n_classes must be >= 1, got {n_classes}.")
    if not width > 0:
        raise ValueError(f"deeplabv3_plus: backbone_width must be > 0, got {width}.")
    rates = tuple(atrous_rates) if atrous_rates is not None else ((6, 12, 18) if output_stride == 16 else (12, 24, 36))
    if len(rates) != 3:
        raise ValueError(f"deeplabv3_plus: atrous_rates must hold 3 rates, got {rates!r}.")
    f = lambda n: scaled_filters(n, width)  # noqa: E731

    def bn(x, name):
        return layers.BatchNormalization(epsilon=1e-5, name=name)(x)

    def sep_conv_bn(x, filters, prefix, stride=1, rate=1, depth_activation=False):
        # The port's SepConv_BN: ReLU before the block, or after each of its convolutions.
        if not depth_activation:
            x = layers.ReLU(name=f"{prefix}_relu_in")(x)
        x = layers.DepthwiseConv2D(
            3, strides=stride, dilation_rate=rate, padding="same", use_bias=False, name=f"{prefix}_depthwise"
        )(x)
        x = bn(x, f"{prefix}_depthwise_BN")
        if depth_activation:
            x = layers.ReLU(name=f"{prefix}_depthwise_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_pointwise")(x)
        x = bn(x, f"{prefix}_pointwise_BN")
        if depth_activation:
            x = layers.ReLU(name=f"{prefix}_pointwise_relu")(x)
        return x

    def xception_block(x, depths, prefix, shortcut, stride=1, rate=1, depth_activation=False):
        y, skip = x, None
        for i, d in enumerate(depths):
            y = sep_conv_bn(y, d, f"{prefix}_separable_conv{i + 1}", stride if i == 2 else 1, rate, depth_activation)
            if i == 1:
                skip = y
        if shortcut == "conv":
            s = layers.Conv2D(depths[-1], 1, strides=stride, use_bias=False, name=f"{prefix}_shortcut")(x)
            y = layers.Add(name=f"{prefix}_add")([bn(s, f"{prefix}_shortcut_BN"), y])
        elif shortcut == "sum":
            y = layers.Add(name=f"{prefix}_add")([x, y])
        return y, skip

    inputs = keras.Input((h, w, c), name="image")
    # The port's preprocessing maps 0..255 to -1..1; zoo models take 0..1 images.
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
    low_level = None
    if backbone == "xception":
        os16 = output_stride == 16
        x = layers.Conv2D(f(32), 3, strides=2, padding="same", use_bias=False, name="entry_flow_conv1_1")(x)
        x = layers.ReLU(name="entry_flow_conv1_1_relu")(bn(x, "entry_flow_conv1_1_BN"))
        x = layers.Conv2D(f(64), 3, padding="same", use_bias=False, name="entry_flow_conv1_2")(x)
        x = layers.ReLU(name="entry_flow_conv1_2_relu")(bn(x, "entry_flow_conv1_2_BN"))
        x, _ = xception_block(x, [f(128)] * 3, "entry_flow_block1", "conv", stride=2)
        x, low_level = xception_block(x, [f(256)] * 3, "entry_flow_block2", "conv", stride=2)  # skip at 1/4
        x, _ = xception_block(x, [f(728)] * 3, "entry_flow_block3", "conv", stride=2 if os16 else 1)
        for i in range(16):
            x, _ = xception_block(x, [f(728)] * 3, f"middle_flow_unit_{i + 1}", "sum", rate=1 if os16 else 2)
        x, _ = xception_block(x, [f(728), f(1024), f(1024)], "exit_flow_block1", "conv", rate=1 if os16 else 2)
        x, _ = xception_block(
            x, [f(1536), f(1536), f(2048)], "exit_flow_block2", "none", rate=2 if os16 else 4, depth_activation=True
        )
    else:  # mobilenetv2
        # Batch norm at Keras' default momentum (0.99), not MobileNetV2's 0.999: trained from scratch for a few
        # hundred steps, 0.999 leaves the moving statistics near their initial values (val mIoU ~0).
        x = layers.Conv2D(_make_divisible(32 * width), 3, strides=2, padding="same", use_bias=False, name="Conv")(x)
        x = layers.ReLU(6.0, name="Conv_Relu6")(layers.BatchNormalization(name="Conv_BN")(x))
        # (filters, stride, expansion) of MobileNetV2's inverted residual blocks 0-16.
        blocks = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6)]
        blocks += [(64, 1, 6)] * 3 + [(96, 1, 6)] * 3 + [(160, 2, 6)] + [(160, 1, 6)] * 2 + [(320, 1, 6)]
        current, rate = 2, 1
        for block_id, (filters, stride, expansion) in enumerate(blocks):
            # Past the output stride, strides become dilations (the port's atrous MobileNetV2).
            block_rate = rate
            if current * stride > output_stride:
                rate, stride = rate * stride, 1
            else:
                current *= stride
            prefix = f"expanded_conv_{block_id}" if block_id else "expanded_conv"
            in_ch, out_ch = x.shape[-1], _make_divisible(filters * width)
            y = x
            if block_id:
                y = layers.Conv2D(expansion * in_ch, 1, use_bias=False, name=f"{prefix}_expand")(y)
                y = layers.BatchNormalization(name=f"{prefix}_expand_BN")(y)
                y = layers.ReLU(6.0, name=f"{prefix}_expand_relu")(y)
            y = layers.DepthwiseConv2D(
                3, strides=stride, dilation_rate=block_rate, padding="same", use_bias=False, name=f"{prefix}_depthwise"
            )(y)
            y = layers.BatchNormalization(name=f"{prefix}_depthwise_BN")(y)
            y = layers.ReLU(6.0, name=f"{prefix}_depthwise_relu")(y)
            y = layers.Conv2D(out_ch, 1, use_bias=False, name=f"{prefix}_project")(y)
            y = layers.BatchNormalization(name=f"{prefix}_project_BN")(y)
            x = layers.Add(name=f"{prefix}_add")([x, y]) if stride == 1 and in_ch == out_ch and block_id else y

    # ASPP: image pooling and a 1x1 branch; with Xception also three atrous separable branches.
    aspp = f(256)
    fh, fw = h // output_stride, w // output_stride
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling_avg")(x)
    pooled = layers.Conv2D(aspp, 1, use_bias=False, name="image_pooling")(pooled)
    pooled = layers.ReLU(name="image_pooling_relu")(bn(pooled, "image_pooling_BN"))
    branches = [layers.UpSampling2D((fh, fw), name="image_pooling_up")(pooled)]
    b0 = layers.Conv2D(aspp, 1, use_bias=False, name="aspp0")(x)
    branches.append(layers.ReLU(name="aspp0_activation")(bn(b0, "aspp0_BN")))
    if backbone == "xception":
        for k, r in enumerate(rates, start=1):
            branches.append(sep_conv_bn(x, aspp, f"aspp{k}", rate=r, depth_activation=True))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = layers.Conv2D(aspp, 1, use_bias=False, name="concat_projection")(x)
    x = layers.ReLU(name="latent")(bn(x, "concat_projection_BN"))
    x = layers.Dropout(0.1, name="aspp_dropout")(x)

    if low_level is not None:
        # The decoder of the port (Xception only): one low-level skip at 1/4.
        x = layers.UpSampling2D(output_stride // 4, interpolation="bilinear", name="decoder_up")(x)
        skip = layers.Conv2D(f(48), 1, use_bias=False, name="feature_projection0")(low_level)
        skip = layers.ReLU(name="feature_projection0_relu")(bn(skip, "feature_projection0_BN"))
        x = layers.Concatenate(name="decoder_concat")([x, skip])
        x = sep_conv_bn(x, aspp, "decoder_conv0", depth_activation=True)
        x = sep_conv_bn(x, aspp, "decoder_conv1", depth_activation=True)
        up = 4
    else:
        up = output_stride
    x = layers.Conv2D(n_classes, 1, name="logits")(x)
    x = layers.UpSampling2D(up, interpolation="bilinear", name="logits_up")(x)
    outputs = layers.Softmax(axis=-1, name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
