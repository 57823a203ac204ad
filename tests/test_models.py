"""The model zoo: shapes, the named split layer, and split equivalence."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from latent_widgets.model.latent_model import LatentModel  # noqa: E402
from latent_widgets.model.zoo import LATENT_LAYER, deeplabv3_plus, segnet  # noqa: E402

SHAPE = (48, 64, 3)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)


def test_segnet_full_width_latent_is_18x24x512() -> None:
    model = segnet(12, (288, 384, 3), width=1.0)
    assert model.get_layer(LATENT_LAYER).output.shape[1:] == (18, 24, 512)
    # Full input resolution, so masks align with images.
    assert model.output.shape[1:] == (288, 384, 12)


def test_segnet_width_shrinks_channels() -> None:
    small = segnet(5, (96, 128, 3), width=0.25)
    assert small.get_layer("latent").output.shape[1:] == (6, 8, 128)
    assert small.output.shape[1:] == (96, 128, 5)


def test_deeplab_shapes_and_one_skip() -> None:
    model = deeplabv3_plus(7, (96, 128, 3), backbone_width=0.25)
    assert model.get_layer("latent").output.shape[1:] == (6, 8, 64)
    assert model.output.shape[1:] == (96, 128, 7)
    lm = LatentModel.from_model(model)
    # DeepLabv3+: the one skip is the projected low-level features at 1/4.
    assert lm.skip_shapes == ((24, 32, 12),)
    os8 = deeplabv3_plus(3, (48, 64, 3), backbone_width=0.125, output_stride=8)
    assert os8.get_layer("latent").output.shape[1:3] == (6, 8)


@pytest.mark.parametrize("bad", [(50, 64, 3), (48, 60, 3), (48, 64)])
def test_zoo_rejects_bad_input_shape(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"multiples of 16|height, width, channels"):
        segnet(3, bad)
    with pytest.raises(ValueError, match=r"multiples of 16|height, width, channels"):
        deeplabv3_plus(3, bad)


def test_segnet_split_matches_full_model(images: np.ndarray) -> None:
    model = segnet(6, SHAPE, width=0.125)
    lm = LatentModel.from_model(model)  # zoo models need no latent_layer
    assert lm.latent_shape == (3, 4, 64) and not lm.has_skips and lm.n_classes == 6
    enc = lm.encode(images)
    np.testing.assert_allclose(lm.decode(enc.latents, enc.skips), model(images, training=False), atol=1e-5)


def test_deeplab_split_matches_full_model(images: np.ndarray) -> None:
    model = deeplabv3_plus(6, SHAPE, backbone_width=0.125)
    lm = LatentModel.from_model(model)
    assert lm.has_skips and len(lm.skip_shapes) == 1
    enc = lm.encode(images)
    np.testing.assert_allclose(lm.decode(enc.latents, enc.skips), model(images, training=False), atol=1e-5)
    # The skip really matters: decoding with zeroed low-level features differs.
    other = lm.decode(enc.latents, [np.zeros_like(enc.skips[0])])
    assert np.abs(other - lm.decode(enc.latents, enc.skips)).max() > 1e-4
