"""The study's networks: vgg_segnet (no batch norm before the latent, half-size output), the port's DeepLabv3+."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from float_checks import assert_argmax_up_to_ties, near_ties  # noqa: E402

from latent_widgets.model.latent_model import LatentModel  # noqa: E402
from latent_widgets.model.zoo import BACKBONES, LATENT_LAYER, VGG_MEAN_RGB, deeplabv3_plus, vgg_segnet  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (48, 64, 3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, *SHAPE), dtype=np.float32)


def _layers_before_and_after(model: keras.Model, name: str) -> tuple[list, list]:
    """Layers the split layer depends on, and layers that depend on it (walking the graph, not the list order)."""
    target = model.get_layer(name)
    before, frontier = set(), [target]
    while frontier:
        layer = frontier.pop()
        for node in layer._inbound_nodes:
            for t in node.input_tensors:
                parent = t._keras_history.operation
                if parent not in before:
                    before.add(parent)
                    frontier.append(parent)
    after = [layer for layer in model.layers if layer is not target and layer not in before]
    return list(before), after


def test_vgg_segnet_study_setting_latent_and_batch_norm_placement() -> None:
    model = vgg_segnet(12, (288, 384, 3))
    assert model.get_layer(LATENT_LAYER).output.shape[1:] == (18, 24, 512)  # 221,184 floats
    assert model.output.shape[1:] == (144, 192, 12)  # half resolution, as in image-segmentation-keras
    before, after = _layers_before_and_after(model, LATENT_LAYER)
    bn = keras.layers.BatchNormalization
    assert not [layer.name for layer in before if isinstance(layer, bn)]
    assert sum(isinstance(layer, bn) for layer in after) == 4
    # VGG16's conv layers, with VGG16's names (ImageNet weights load by name) and ReLU.
    convs = [layer for layer in before if isinstance(layer, keras.layers.Conv2D)]
    assert sorted(c.name for c in convs) == sorted(
        f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3)) for i in range(1, n + 1)
    )
    assert all(c.activation.__name__ == "relu" and c.use_bias for c in convs)
    # The decoder: zero padding + valid conv + batch norm, no activation.
    assert all(
        model.get_layer(f"decoder{d}_conv").activation.__name__ == "linear"
        and model.get_layer(f"decoder{d}_conv").padding == "valid"
        for d in range(1, 5)
    )


def test_vgg_segnet_subtracts_channel_means_from_0_255(images: np.ndarray) -> None:
    model = vgg_segnet(3, SHAPE, width=0.125)
    got = np.asarray(model.get_layer("sub_mean")(images))
    expected = images * 255.0 - np.array(VGG_MEAN_RGB, np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_vgg_segnet_latent_model_resizes_half_resolution_probabilities(images: np.ndarray) -> None:
    keras.utils.set_random_seed(0)  # the same weights in every run, whatever ran before
    model = vgg_segnet(5, SHAPE, width=0.125)
    lm = LatentModel.from_model(model)
    assert lm.latent_shape == (3, 4, 64) and not lm.has_skips and lm.n_classes == 5
    enc = lm.encode(images)
    probs = lm.decode(enc.latents, enc.skips)
    assert probs.shape == (2, 48, 64, 5)
    reference = tf.image.resize(model(images, training=False), SHAPE[:2], method="bilinear").numpy()
    np.testing.assert_allclose(probs, reference, atol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    # Compiled against eager: the same argmax but at near-ties (an untrained network's probabilities are
    # near uniform; over 8 seeds the two best classes of some pixel came within 7e-6).
    assert_argmax_up_to_ties(lm.predict_masks(images), reference)


def test_train_and_evaluate_a_half_resolution_network(synthetic_small) -> None:
    from latent_widgets.model.training import evaluate, train

    tr, va = synthetic_small[:8], synthetic_small[8:12]
    result = train(
        vgg_segnet(tr.n_classes, SHAPE, width=0.0625), tr, va, epochs=1, batch_size=4, progress=False, cache=False
    )
    assert result.history.epochs == 1 and np.isfinite(result.history.loss[0])
    ev = evaluate(result.model, va)
    up = tf.image.resize(result.model(va.images, training=False), SHAPE[:2], method="bilinear").numpy()
    # Brute-force pixel accuracy at the masks' (full) resolution. evaluate runs the network compiled, this
    # eagerly: a pixel whose two best classes are within float_checks.TIE may be predicted either way (this
    # one-epoch network has about 14 of the 12,288; the nearest came within 6e-7 of a tie), so it is right
    # in one count and wrong in the other. Without such pixels the bounds meet: the exact accuracy.
    correct, ties = up.argmax(-1) == va.masks, near_ties(up)
    low, high = float((correct & ~ties).mean()), float((correct | ties).mean())
    assert low - 1e-12 <= ev["pixel_accuracy"] <= high + 1e-12, (low, ev["pixel_accuracy"], high)


def test_vgg_segnet_loads_a_local_vgg16_weight_file(tmp_path) -> None:
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    vgg.save_weights(path)
    model = vgg_segnet(4, (32, 32, 3), weights=path)
    for name in ("block1_conv1", "block4_conv3"):
        for got, want in zip(model.get_layer(name).get_weights(), vgg.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": "imagenet"}, "never does"),
        ({"weights": "/nonexistent/vgg16.h5"}, "is not a file"),
        ({"weights": __file__, "width": 0.5}, "width=1.0 only"),
        ({"width": 0}, "width must be > 0"),
    ],
)
def test_vgg_segnet_bad_arguments_say_what_to_do(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vgg_segnet(3, (32, 32, 3), **kwargs)


def test_vgg_segnet_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        vgg_segnet(3, (50, 64, 3))
    with pytest.raises(ValueError, match="3 channels"):
        vgg_segnet(3, (48, 64, 1))


def test_deeplab_mobilenetv2_port_layout(images: np.ndarray) -> None:
    model = deeplabv3_plus(6, SHAPE, backbone="mobilenetv2", backbone_width=0.35)
    assert model.get_layer(LATENT_LAYER).output.shape[1:] == (3, 4, 90)  # ASPP: 256 * 0.35 at stride 16
    assert model.output.shape[1:] == (48, 64, 6)
    # The port's MobileNetV2 head: image pooling + 1x1 only, no atrous branches, no low-level skip.
    names = {layer.name for layer in model.layers}
    assert {"image_pooling", "aspp0", "concat_projection"} <= names and "aspp1" not in names
    lm = LatentModel.from_model(model)
    assert not lm.has_skips
    enc = lm.encode(images)
    np.testing.assert_allclose(lm.decode(enc.latents), model(images, training=False), atol=1e-5)


@pytest.mark.slow
def test_deeplab_xception_port_layout_has_one_skip_at_quarter(images: np.ndarray) -> None:
    # Seeded: the skip's effect below is a property of the weights (1.4e-4 with these; 3e-5 to 1.4e-4
    # over 8 seeds, against the 1e-5 it must exceed), not of what ran before in the session.
    keras.utils.set_random_seed(0)
    model = deeplabv3_plus(6, SHAPE, backbone="xception", backbone_width=0.0625)
    assert model.get_layer(LATENT_LAYER).output.shape[1:] == (3, 4, 16)
    assert {f"aspp{k}_depthwise" for k in (1, 2, 3)} <= {layer.name for layer in model.layers}
    assert model.get_layer("aspp2_depthwise").dilation_rate == (12, 12)
    assert len([layer for layer in model.layers if layer.name.startswith("middle_flow_unit_")]) > 16
    lm = LatentModel.from_model(model)
    assert lm.skip_shapes == ((12, 16, 4),)  # the 1x1-projected low-level features at 1/4
    enc = lm.encode(images)
    np.testing.assert_allclose(lm.decode(enc.latents, enc.skips), model(images, training=False), atol=1e-5)
    other = lm.decode(enc.latents, [np.zeros_like(enc.skips[0])])
    assert np.abs(other - lm.decode(enc.latents, enc.skips)).max() > 1e-5


def test_deeplab_output_stride_8_dilates_instead_of_striding() -> None:
    model = deeplabv3_plus(3, SHAPE, backbone="mobilenetv2", backbone_width=0.35, output_stride=8)
    assert model.get_layer(LATENT_LAYER).output.shape[1:3] == (6, 8)
    assert model.get_layer("expanded_conv_16_depthwise").dilation_rate == (4, 4)


def test_deeplab_rejects_unknown_backbone() -> None:
    assert BACKBONES == ("resnet", "xception", "mobilenetv2")
    with pytest.raises(ValueError, match="backbone must be one of"):
        deeplabv3_plus(3, SHAPE, backbone="resnet50")
