"""Splitting models with nested models inside: paths, skips, candidate cuts, keras-hub segmenters.

Every split is checked against the whole model's output at inference
(``training=False``): the encoder and decoder re-use the model's own layers,
so the two agree to float rounding (1e-5 leaves room for the order of
operations in the compiled call).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from latent_widgets import LatentModel, LatentModelError  # noqa: E402
from latent_widgets.model.keras_cut import candidate_cuts  # noqa: E402
from latent_widgets.model.keras_graph import ends_with_softmax, layer_paths  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SIZE = 64
DOWN_STACK = ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu"]


def tutorial_unet(n_classes: int = 3) -> keras.Model:
    """TensorFlow's segmentation tutorial U-Net, small: a MobileNetV2 down_stack with 5 outputs, pix2pix upsampling."""
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None)
    down_stack = keras.Model(
        base.input, [base.get_layer(n).output for n in [*DOWN_STACK, "block_16_project"]], name="down_stack"
    )

    def upsample(filters: int) -> keras.Sequential:
        return keras.Sequential(
            [
                layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False),
                layers.BatchNormalization(),
                layers.ReLU(),
            ]
        )

    inputs = keras.Input((SIZE, SIZE, 3))
    skips = down_stack(inputs)
    x = skips[-1]
    for up, skip in zip([upsample(32), upsample(16), upsample(16), upsample(8)], reversed(skips[:-1]), strict=True):
        x = layers.Concatenate()([up(x), skip])
    # Logits, as in the tutorial (its loss is from_logits=True).
    return keras.Model(inputs, layers.Conv2DTranspose(n_classes, 3, strides=2, padding="same")(x))


def three_levels() -> keras.Model:
    """outer > middle > inner, the lowest resolution in inner, skips from middle and from outer."""
    i_in = keras.Input((8, 8, 8))
    deep = layers.Conv2D(8, 3, padding="same", name="deep")(layers.MaxPooling2D(name="inner_pool")(i_in))
    inner = keras.Model(i_in, layers.UpSampling2D(name="inner_up")(deep), name="inner")
    m_in = keras.Input((16, 16, 4))
    a = layers.Conv2D(8, 3, padding="same", name="mid_conv")(layers.MaxPooling2D(name="mid_pool")(m_in))
    middle = keras.Model(m_in, layers.Concatenate(name="mid_cat")([inner(a), a]), name="middle")
    image = keras.Input((32, 32, 3))
    c = layers.Conv2D(4, 3, padding="same", activation="relu", name="outer_conv")(image)
    x = layers.UpSampling2D(4, name="outer_up")(middle(layers.MaxPooling2D(name="outer_pool")(c)))
    x = layers.Concatenate(name="outer_cat")([x, c])
    return keras.Model(image, layers.Conv2D(3, 1, activation="softmax", name="classes")(x), name="outer")


def block(name: str) -> keras.Model:
    i = keras.Input((16, 16, 4))
    return keras.Model(i, layers.Conv2D(4, 3, padding="same", name="conv")(i), name=name)


def head(x):
    return layers.Conv2D(3, 1, activation="softmax", name="classes")(x)


def scores(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's per-pixel probabilities at inference (softmax of its logits)."""
    return np.asarray(keras.ops.softmax(model(x, training=False), axis=-1))


def assert_split_matches(lm: LatentModel, want: np.ndarray, x: np.ndarray) -> None:
    np.testing.assert_allclose(lm.decode(lm.encode(x)), want, atol=1e-5)


def images(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def tutorial() -> tuple[keras.Model, LatentModel]:
    """The tutorial U-Net and its split at the layer the tutorial takes (a bare name inside down_stack)."""
    keras.utils.set_random_seed(7)
    unet = tutorial_unet()
    return unet, LatentModel.from_model(unet, latent_layer="block_16_project")


# ----------------------------------------------------------------------------- the tutorial U-Net


def test_tutorial_unet_splits_inside_its_down_stack(tutorial: tuple) -> None:
    unet, unet_lm = tutorial
    x = images(3)
    assert unet_lm.latent_layer == "down_stack/block_16_project"
    assert unet_lm.latent_shape == (2, 2, 320)
    # The four other down_stack outputs are the skips, the highest resolution first.
    assert unet_lm.skip_shapes == ((32, 32, 96), (16, 16, 144), (8, 8, 192), (4, 4, 576))
    assert unet_lm.apply_softmax  # the tutorial's model outputs logits
    assert_split_matches(unet_lm, scores(unet, x), x)
    by_path = LatentModel.from_model(unet, latent_layer="down_stack/block_16_project")
    assert by_path.latent_layer == unet_lm.latent_layer and by_path.skip_shapes == unet_lm.skip_shapes
    np.testing.assert_allclose(by_path.decode(by_path.encode(x)), unet_lm.decode(unet_lm.encode(x)), atol=1e-6)


def test_split_keeps_the_models_layers(tutorial: tuple) -> None:
    unet, unet_lm = tutorial
    # The decoder re-uses the up_stack Sequentials themselves (shared weights), not copies.
    nested = [layer for layer in unet.layers if isinstance(layer, keras.Sequential)]
    assert all(unet_lm.decoder.get_layer(s.name) is s for s in nested)
    base_layer = unet.get_layer("down_stack").get_layer("block_16_project")
    assert unet_lm.encoder.get_layer("block_16_project") is base_layer


def test_nested_model_with_several_outputs_names_them(tutorial: tuple) -> None:
    unet = tutorial[0]
    msg = r"'down_stack' is a nested model with 5 outputs.*'down_stack/block_1_expand_relu'.*'down_stack/block_16_pro"
    with pytest.raises(LatentModelError, match=msg):
        LatentModel.from_model(unet, latent_layer="down_stack")


def test_candidate_cuts_of_the_tutorial_unet(tutorial: tuple) -> None:
    unet = tutorial[0]
    cuts = candidate_cuts(unet)
    assert cuts[0].name == "down_stack/block_16_project" and cuts[0].shape == (2, 2, 320) and cuts[0].n_skips == 4
    assert cuts[0].op == "Conv2D"
    # All at the lowest resolution of the main path (2x2), fewest skips first; none on a skip connection.
    assert {c.shape[:2] for c in cuts} == {(2, 2)}
    assert [c.n_skips for c in cuts] == sorted(c.n_skips for c in cuts)
    assert all(c.name.startswith("down_stack/block_1") for c in cuts)
    # Each count is what the split makes (inside a residual block the shortcut is one more skip).
    inside = next(c for c in cuts if c.n_skips == 5)
    assert len(LatentModel.from_model(unet, inside.name).skip_shapes) == 5
    with pytest.raises(
        LatentModelError, match=r"no layer named 'latent'.*'down_stack/block_16_project' \(2, 2, 320\), 4 skips"
    ):
        LatentModel.from_model(unet)


def test_split_from_a_nested_model_saves_and_loads(tmp_path: Path, tutorial: tuple) -> None:
    unet_lm = tutorial[1]
    x = images(2, seed=1)
    back = LatentModel.load(unet_lm.save(tmp_path / "pair.keras"))
    assert back.skip_shapes == unet_lm.skip_shapes
    np.testing.assert_allclose(back.decode(back.encode(x)), unet_lm.decode(unet_lm.encode(x)), atol=1e-5)


# ----------------------------------------------------------------------------- toy nestings


def test_three_levels_of_nesting() -> None:
    keras.utils.set_random_seed(1)
    model = three_levels()
    x = images(3, 32)
    want = np.asarray(model(x, training=False))
    for name in ("deep", "middle/inner/deep"):
        lm = LatentModel.from_model(model, name)
        assert lm.latent_layer == "middle/inner/deep" and lm.latent_shape == (4, 4, 8)
        # outer_conv's output (outer level) and mid_conv's (middle level), nearest the input first.
        assert lm.skip_shapes == ((32, 32, 4), (8, 8, 8))
        assert not lm.apply_softmax
        assert_split_matches(lm, want, x)
    # A nested model's name stands for its one output; so does a path to a layer at the middle level.
    assert LatentModel.from_model(model, "middle").latent_shape == (8, 8, 16)
    assert_split_matches(LatentModel.from_model(model, "middle/mid_conv"), want, x)
    assert [c.name for c in candidate_cuts(model)] == ["middle/inner/deep", "middle/inner/inner_pool"]
    assert "middle/inner/inner_up" in layer_paths(model)


def test_bare_name_in_two_nested_models_is_ambiguous() -> None:
    keras.utils.set_random_seed(2)
    image = keras.Input((16, 16, 4))
    model = keras.Model(image, head(block("right")(block("left")(image))))
    with pytest.raises(LatentModelError, match=r"2 layers .* are named 'conv'.*'left/conv', 'right/conv'"):
        LatentModel.from_model(model, "conv")
    x = np.random.default_rng(3).random((2, 16, 16, 4), dtype=np.float32)
    lm = LatentModel.from_model(model, "right/conv")
    assert_split_matches(lm, np.asarray(model(x)), x)


def test_errors_name_what_is_true_of_the_layer() -> None:
    image = keras.Input((16, 16, 4))
    shared = block("shared")
    model = keras.Model(image, head(shared(shared(image))))
    for name in ("conv", "shared/conv", "shared"):
        with pytest.raises(LatentModelError, match=r"'shared(/conv)?' is called 2 times"):
            LatentModel.from_model(model, name)
    with pytest.raises(LatentModelError, match=r"is the model's input layer"):
        LatentModel.from_model(model, model.layers[0].name)
    with pytest.raises(LatentModelError, match=r"no layer named 'cnv'.*Did you mean 'conv'.*named by path"):
        LatentModel.from_model(model, "cnv")

    # A model with its own call is one layer: the split does not look into it.
    class Doubled(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="doubled")
            self.conv = layers.Conv2D(4, 1, name="inner_conv")

        def call(self, x):
            return 2.0 * self.conv(x)

    model = keras.Model(image, head(Doubled()(image)))
    with pytest.raises(LatentModelError, match=r"'inner_conv' is inside 'doubled', a nested model the split cannot"):
        LatentModel.from_model(model, "inner_conv")
    x = np.random.default_rng(4).random((2, 16, 16, 4), dtype=np.float32)
    assert_split_matches(LatentModel.from_model(model, "doubled"), np.asarray(model(x)), x)
    # A nested model's output that the model does not use.
    i = keras.Input((16, 16, 4))
    two = keras.Model(i, [layers.Conv2D(4, 1, name="used")(i), layers.Conv2D(4, 1, name="unused")(i)], name="two")
    model = keras.Model(image, head(two(image)[0]))
    with pytest.raises(LatentModelError, match=r"model output does not depend on layer 'two/unused'"):
        LatentModel.from_model(model, "unused")


def test_ends_with_softmax_looks_through_resampling() -> None:
    image = keras.Input((16, 16, 3))
    logits = layers.Conv2D(3, 1, name="logits")(image)
    probs = layers.Conv2D(3, 1, activation="softmax", name="probs")(image)
    assert ends_with_softmax(keras.Model(image, layers.Resizing(32, 32)(layers.Dropout(0.1)(logits)))) is False
    assert ends_with_softmax(keras.Model(image, layers.UpSampling2D()(probs))) is True
    nested = keras.Model(image, probs)
    outer_in = keras.Input((16, 16, 3))
    assert ends_with_softmax(keras.Model(outer_in, layers.Reshape((16, 16, 3))(nested(outer_in)))) is True
    assert ends_with_softmax(keras.Model(image, layers.ReLU()(logits))) is None


# ----------------------------------------------------------------------------- keras-hub segmenters


@pytest.fixture(scope="module")
def keras_hub():
    # ImportError too: keras-hub installed without a dependency it imports fails with one.
    return pytest.importorskip(
        "keras_hub",
        reason="keras-hub does not import; make installs it with --no-deps (see pyproject.toml)",
        exc_type=ImportError,
    )


def deeplab(keras_hub, preprocessor: bool = False):
    """DeepLabV3+ on a tiny ResNet: ASPP on P4 (1/16), low-level features from P2 (1/4)."""
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 8, 16, 16],  # keras-hub requires 64 first
        stackwise_num_blocks=[1, 1, 1, 1],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder,
        spatial_pyramid_pooling_key="P4",
        upsampling_size=4,
        dilation_rates=[2, 4],
        low_level_feature_key="P2",
        projection_filters=8,
        image_shape=(SIZE, SIZE, 3),
    )
    pre = None
    if preprocessor:
        converter = keras_hub.layers.DeepLabV3ImageConverter(
            image_size=(SIZE, SIZE),
            scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
            offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
        )
        pre = keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(image_converter=converter)
    return keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=4, preprocessor=pre)


def segformer(keras_hub):
    """SegFormer on a two-stage MiT (1/4 and 1/8), output resized to the image."""
    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1],
        num_layers=2,
        layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.0,
        layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2],
        hidden_dims=[8, 16],
        image_shape=(SIZE, SIZE, 3),
    )
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=8)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=4)


@pytest.fixture(scope="module")
def hub_models(keras_hub) -> dict:
    keras.utils.set_random_seed(5)
    return {"deeplab": deeplab(keras_hub), "segformer": segformer(keras_hub)}


@pytest.mark.parametrize(
    ("which", "inside", "latent_shape", "n_skips"),
    [("deeplab", "stack2_block0_out", (4, 4, 16), 1), ("segformer", "output_level_1", (8, 8, 16), 1)],
)
def test_keras_hub_segmenters_split_inside_and_at_the_backbone(
    hub_models: dict, which: str, inside: str, latent_shape: tuple, n_skips: int
) -> None:
    model = hub_models[which]
    x = images(2, seed=2)
    want = scores(model, x)  # keras-hub segmenters output logits
    lm = LatentModel.from_model(model, inside)
    assert lm.latent_layer.startswith(model.backbone.name + "/") and lm.latent_layer.endswith("/" + inside)
    assert lm.latent_shape == latent_shape and len(lm.skip_shapes) == n_skips
    assert lm.apply_softmax and lm.preprocessor is None
    assert_split_matches(lm, want, x)
    at_backbone = LatentModel.from_model(model, model.backbone.name)
    assert not at_backbone.has_skips
    assert_split_matches(at_backbone, want, x)
    best = candidate_cuts(model)[0]
    assert_split_matches(LatentModel.from_model(model, best.name), want, x)


def test_keras_hub_candidate_cuts(hub_models: dict) -> None:
    deeplab_cuts = candidate_cuts(hub_models["deeplab"])
    # The ASPP output, not its image-pooling branch; the low-level features are its one skip.
    assert deeplab_cuts[0].name.endswith("/spatial_pyramid_pooling") and deeplab_cuts[0].shape == (4, 4, 256)
    assert deeplab_cuts[0].n_skips == 1
    assert {c.shape[:2] for c in deeplab_cuts} == {(4, 4)}
    with pytest.raises(LatentModelError, match=r"Candidate cuts.*/spatial_pyramid_pooling' \(4, 4, 256\), 1 skip;"):
        LatentModel.from_model(hub_models["deeplab"])
    segformer_cuts = candidate_cuts(hub_models["segformer"])
    assert all(c.shape[0] in (8, 64) for c in segformer_cuts)  # 8x8 maps, or their 64-token sequences
    assert any(c.name.endswith("/output_level_1") for c in segformer_cuts)
    # P5 is an output of DeepLab's feature model that nothing uses: a true message, not "not on the path".
    with pytest.raises(LatentModelError, match=r"model output does not depend on layer '.*/stack3_block0_out'"):
        LatentModel.from_model(hub_models["deeplab"], "stack3_block0_out")


def test_keras_hub_preprocessor_goes_in_the_encoder(keras_hub) -> None:
    keras.utils.set_random_seed(6)
    model = deeplab(keras_hub, preprocessor=True)
    x = images(2, seed=4)
    lm = LatentModel.from_model(model, "stack2_block0_out")
    assert lm.preprocessor is model.preprocessor.image_converter
    # encode takes 0..1 images; the converter gets the 0..255 pixels it expects.
    want = scores(model, np.asarray(model.preprocessor(255 * x)))
    assert_split_matches(lm, want, x)
    np.testing.assert_array_equal(lm.predict_masks(x), want.argmax(-1))
    raw = LatentModel.from_model(model, "stack2_block0_out", preprocess=False)
    assert raw.preprocessor is None
    assert_split_matches(raw, scores(model, x), x)
    with pytest.raises(LatentModelError, match=r"preprocess=True, but model .* has no preprocessor"):
        LatentModel.from_model(segformer(keras_hub), "output_level_1", preprocess=True)


def test_keras_hub_full_model_saves_and_splits_on_load(tmp_path: Path, hub_models: dict) -> None:
    # keras-hub models load through their own configs; LatentModel.load splits the loaded one.
    model = hub_models["deeplab"]
    path = tmp_path / "deeplab.keras"
    model.save(path)
    lm = LatentModel.load(path, latent_layer="stack2_block0_out")
    x = images(2, seed=5)
    assert_split_matches(lm, scores(model, x), x)
    # Cut at the backbone's output, the backbone stays whole and the pair itself saves and loads.
    at_backbone = LatentModel.from_model(model, model.backbone.name)
    back = LatentModel.load(at_backbone.save(tmp_path / "pair.keras"))
    assert_split_matches(back, scores(model, x), x)
