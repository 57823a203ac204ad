"""LatentModel: splitting arbitrary functional models, batching, loading, and every error message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from float_checks import assert_argmax_up_to_ties, assert_close_to_scale  # noqa: E402
from keras import layers  # noqa: E402

from latent_widgets import Encoding, LatentModel, LatentModelError  # noqa: E402
from latent_widgets.model.zoo import segnet  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (48, 64, 3)


def plain_unet(n_classes: int = 5) -> keras.Model:
    """A U-Net written in plain Keras: nothing in it knows about latent_widgets."""
    inp = keras.Input(SHAPE)
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(inp)
    p1 = layers.MaxPooling2D(name="pool1")(c1)
    c2 = layers.Conv2D(12, 3, padding="same", activation="relu", name="enc2")(p1)
    p2 = layers.MaxPooling2D(name="pool2")(c2)
    c3 = layers.Conv2D(16, 3, padding="same", activation="relu", name="enc3")(p2)
    p3 = layers.MaxPooling2D(name="pool3")(c3)
    b = layers.Conv2D(24, 3, padding="same", name="bottleneck_conv")(p3)
    b = layers.BatchNormalization(name="bottleneck_bn")(b)
    b = layers.Activation("relu", name="bottleneck")(b)
    x = b
    for i, skip in ((3, c3), (2, c2), (1, c1)):
        x = layers.Conv2DTranspose(skip.shape[-1], 2, strides=2, name=f"up{i}")(x)
        x = layers.Concatenate(name=f"cat{i}")([x, skip])
        x = layers.Conv2D(skip.shape[-1], 3, padding="same", activation="relu", name=f"dec{i}")(x)
    out = layers.Conv2D(n_classes, 1, activation="softmax", name="classes")(x)
    return keras.Model(inp, out, name="unet")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).random((5, *SHAPE), dtype=np.float32)


@pytest.fixture(scope="module")
def unet() -> keras.Model:
    keras.utils.set_random_seed(3)
    return plain_unet()


@pytest.fixture(scope="module")
def unet_lm(unet: keras.Model) -> LatentModel:
    return LatentModel.from_model(unet, latent_layer="bottleneck")


@pytest.fixture(scope="module")
def seg() -> LatentModel:
    keras.utils.set_random_seed(0)
    return LatentModel.from_model(segnet(4, SHAPE, width=0.125))


# ----------------------------------------------------------------------------- splitting


def test_unet_split_matches_full_model(unet: keras.Model, unet_lm: LatentModel, images: np.ndarray) -> None:
    enc = unet_lm.encode(images)
    assert isinstance(enc, Encoding)
    np.testing.assert_allclose(unet_lm.decode(enc.latents, enc.skips), unet(images, training=False), atol=1e-5)


def test_unet_skips_found_and_ordered_from_the_input(unet_lm: LatentModel, images: np.ndarray) -> None:
    # Three skips, the highest-resolution one first; latent at 1/8.
    assert unet_lm.latent_shape == (6, 8, 24)
    assert unet_lm.skip_shapes == ((48, 64, 8), (24, 32, 12), (12, 16, 16))
    assert unet_lm.has_skips and unet_lm.n_classes == 5 and unet_lm.input_shape == SHAPE
    assert [t.name for t in unet_lm.decoder.inputs] == ["latent", "skip_0", "skip_1", "skip_2"]
    enc = unet_lm.encode(images[:2])
    assert [s.shape for s in enc.skips] == [(2, 48, 64, 8), (2, 24, 32, 12), (2, 12, 16, 16)]
    assert all(s.dtype == np.float32 for s in (enc.latents, *enc.skips))


def test_split_shares_weights_with_the_model(unet: keras.Model, unet_lm: LatentModel) -> None:
    # The decoder re-applies the model's own layers: no copies of the weights.
    assert unet_lm.decoder.get_layer("classes") is unet.get_layer("classes")
    assert unet_lm.model is unet and unet_lm.latent_layer == "bottleneck"


def test_sequential_model_and_explicit_pair(images: np.ndarray) -> None:
    seq = keras.Sequential(
        [
            keras.Input(SHAPE),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(name="mid"),
            layers.UpSampling2D(),
            layers.Conv2D(3, 1, activation="softmax"),
        ]
    )
    lm = LatentModel.from_model(seq, latent_layer="mid")
    np.testing.assert_allclose(lm.decode(lm.encode(images).latents), seq(images), atol=1e-5)

    # A hand-made pair, the latent found by an explicit argument.
    enc_in = keras.Input(SHAPE)
    z = layers.Conv2D(4, 3, strides=4, padding="same")(enc_in)
    encoder = keras.Model(enc_in, z)
    dec_in = keras.Input((12, 16, 4), name="code")
    decoder = keras.Model(dec_in, layers.Softmax()(layers.UpSampling2D(4)(dec_in)))
    pair = LatentModel(encoder, decoder, latent_input="code")
    assert pair.latent_shape == (12, 16, 4) and pair.n_classes == 4
    assert pair.decode(pair.encode(images[:2]).latents).shape == (2, 48, 64, 4)


def test_logit_output_gets_a_softmax(images: np.ndarray) -> None:
    inp = keras.Input(SHAPE)
    z = layers.Conv2D(4, 3, strides=2, padding="same", name="z")(inp)
    logits = layers.Conv2D(3, 1, name="logits")(layers.UpSampling2D()(z))
    model = keras.Model(inp, logits)
    lm = LatentModel.from_model(model, "z")
    probs = lm.decode(lm.encode(images[:2]).latents)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, keras.ops.softmax(model(images[:2]), axis=-1), atol=1e-5)


# ----------------------------------------------------------------------------- batching


def test_encode_batches_equal_one_big_batch(unet_lm: LatentModel, images: np.ndarray) -> None:
    one = unet_lm.encode(images, batch_size=len(images))
    small = unet_lm.encode(images, batch_size=2, progress=True)
    # To 1e-5 of the scale, not 1e-6 absolute (8 units in the last place of these skips, up to 1.5): on
    # another CPU a convolution may sum in another order for another batch size (float_checks).
    assert_close_to_scale(small.latents, one.latents)
    for a, b in zip(small.skips, one.skips, strict=False):
        assert_close_to_scale(a, b)
    probs_big = unet_lm.decode(one.latents, one.skips, batch_size=len(images))
    probs_small = unet_lm.decode(one.latents, one.skips, batch_size=2)
    np.testing.assert_allclose(probs_small, probs_big, atol=1e-6)


def test_decode_single_latent_without_batch_axis(seg: LatentModel, images: np.ndarray) -> None:
    enc = seg.encode(images)
    one = seg.decode(enc.latents[2])
    assert one.shape == (1, *SHAPE[:2], 4) and one.dtype == np.float32
    np.testing.assert_allclose(one[0], seg.decode(enc.latents)[2], atol=1e-6)


def test_decode_single_latent_with_its_skips(unet_lm: LatentModel, images: np.ndarray) -> None:
    enc = unet_lm.encode(images)
    one = unet_lm.decode(enc.latents[1], [s[1] for s in enc.skips])
    np.testing.assert_allclose(one[0], unet_lm.decode(enc.latents, enc.skips)[1], atol=1e-6)
    # One sample's skips serve a whole path of latents.
    path = unet_lm.decode(enc.latents[:3], [s[1] for s in enc.skips])
    assert path.shape == (3, *SHAPE[:2], 5)
    np.testing.assert_allclose(path[1], one[0], atol=1e-6)


def test_predict_masks_is_argmax_of_the_model(seg: LatentModel, images: np.ndarray) -> None:
    masks = seg.predict_masks(images, batch_size=2)
    assert masks.shape == (5, *SHAPE[:2]) and np.issubdtype(masks.dtype, np.integer)
    # The compiled batches of 2 against the eager model: the same argmax but at near-ties (this untrained
    # SegNet's probabilities are near uniform: 16 pixels within 1e-7 of a tie, where the paths may differ).
    assert_argmax_up_to_ties(masks, np.asarray(seg.model(images, training=False)))
    # uint8 images are scaled to 0..1.
    as_uint8 = (images * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(seg.predict_masks(as_uint8), seg.predict_masks(as_uint8.astype(np.float32) / 255))


def test_decode_with_masks_is_decode_and_argmax(seg: LatentModel, unet_lm: LatentModel, images: np.ndarray) -> None:
    for lm in (seg, unet_lm):
        enc = lm.encode(images)
        probs, masks = lm.decode_with_masks(enc.latents, enc.skips, batch_size=2)  # several batches
        np.testing.assert_allclose(probs, lm.decode(enc.latents, enc.skips), atol=1e-6)
        np.testing.assert_array_equal(masks, probs.argmax(-1))
        assert masks.shape == (len(images), *lm.input_shape[:2])


def test_decode_accepts_what_encode_returns(seg: LatentModel, unet_lm: LatentModel, images: np.ndarray) -> None:
    for lm in (seg, unet_lm):  # without and with skips
        enc = lm.encode(images)
        np.testing.assert_array_equal(lm.decode(enc), lm.decode(enc.latents, enc.skips))
        np.testing.assert_array_equal(lm.decode(enc, batch_size=2), lm.decode(enc.latents, enc.skips, batch_size=2))
        probs, masks = lm.decode_with_masks(enc)
        want_probs, want_masks = lm.decode_with_masks(enc.latents, enc.skips)
        np.testing.assert_array_equal(probs, want_probs)
        np.testing.assert_array_equal(masks, want_masks)
        with pytest.raises(LatentModelError, match=r"an Encoding already carries its skips"):
            lm.decode(enc, enc.skips)
        with pytest.raises(LatentModelError, match=r"an Encoding already carries its skips"):
            lm.decode_with_masks(enc, skips=enc.skips)
    assert unet_lm.has_skips and not seg.has_skips


def test_decode_does_not_retrace(seg: LatentModel) -> None:
    z = np.zeros(seg.latent_shape, np.float32)
    seg.decode(z)
    before = dict(seg._decode_fns)
    for k in range(5):
        seg.decode(z + k)
    # One compiled function per batch size, reused: no new traces.
    assert seg._decode_fns == before


def test_encode_dataset_is_cached(seg: LatentModel, synthetic_small) -> None:
    ds = synthetic_small[:6]
    first = seg.encode_dataset(ds)
    np.testing.assert_allclose(first.latents, seg.encode(ds.images).latents, atol=1e-6)
    calls = []
    original = seg.encode
    seg.encode = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore[method-assign]
    try:
        again = seg.encode_dataset(ds)
    finally:
        del seg.encode
    assert calls == []  # from the disk cache
    np.testing.assert_array_equal(again.latents, first.latents)


@pytest.mark.parametrize("store", [False, True])
def test_encode_dataset_calls_its_batch_hook(seg: LatentModel, synthetic_small, tmp_path, monkeypatch, store) -> None:
    monkeypatch.setenv("LATENT_WIDGETS_CACHE_DIR", str(tmp_path))
    ds = synthetic_small[:7]
    calls: list[tuple[int, int]] = []
    enc = seg.encode_dataset(ds, batch_size=3, store=store, on_batch=lambda done, n: calls.append((done, n)))
    assert calls == [(0, 7), (3, 7), (6, 7), (7, 7)]  # before the first batch, then after each
    np.testing.assert_allclose(np.asarray(enc.latents[:]), seg.encode(ds.images).latents, atol=1e-5)
    calls.clear()
    again = seg.encode_dataset(ds, batch_size=3, store=store, on_batch=lambda done, n: calls.append((done, n)))
    assert calls == []  # a cache hit encodes no batch
    np.testing.assert_array_equal(np.asarray(again.latents[:]), np.asarray(enc.latents[:]))


# ----------------------------------------------------------------------------- saving and loading


def test_load_full_model_with_safe_mode(tmp_path: Path, unet: keras.Model, images: np.ndarray) -> None:
    path = tmp_path / "unet.keras"
    unet.save(path)
    lm = LatentModel.load(path, latent_layer="bottleneck")
    np.testing.assert_allclose(lm.decode(*lm.encode(images)), unet(images, training=False), atol=1e-5)


def test_save_and_load_roundtrip(tmp_path: Path, unet_lm: LatentModel, images: np.ndarray) -> None:
    path = unet_lm.save(tmp_path / "pair.keras")
    back = LatentModel.load(path)  # no latent_layer: the file holds the pair
    assert back.latent_shape == unet_lm.latent_shape and back.skip_shapes == unet_lm.skip_shapes
    np.testing.assert_allclose(back.decode(*back.encode(images)), unet_lm.decode(*unet_lm.encode(images)), atol=1e-5)


def test_load_refuses_lambda_by_default(tmp_path: Path, images: np.ndarray) -> None:
    inp = keras.Input(SHAPE)
    z = layers.Conv2D(4, 3, strides=2, padding="same", name="latent")(inp)
    x = layers.Lambda(lambda t: t * 2.0, name="double")(z)
    out = layers.Softmax()(layers.UpSampling2D()(x))
    model = keras.Model(inp, out)
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(LatentModelError, match=r"Lambda.*safe_mode=True.*safe_mode=False"):
        LatentModel.load(path)
    lm = LatentModel.load(path, safe_mode=False)
    np.testing.assert_allclose(lm.decode(lm.encode(images[:1]).latents), model(images[:1]), atol=1e-5)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(LatentModelError, match="does not exist"):
        LatentModel.load(tmp_path / "missing.keras")
    with pytest.raises(LatentModelError, match=r"not a \.keras file"):
        LatentModel.load(tmp_path / "model.h5")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(LatentModelError, match="cannot load"):
        LatentModel.load(broken)


# ----------------------------------------------------------------------------- errors


def test_error_not_a_keras_model() -> None:
    with pytest.raises(LatentModelError, match=r"must be a Keras 3 model \(keras.Model\), got builtins.str"):
        LatentModel.from_model("segnet.keras")  # type: ignore[arg-type]
    with pytest.raises(LatentModelError, match="encoder must be a Keras 3 model"):
        LatentModel(object(), object())  # type: ignore[arg-type]


def test_error_subclassed_model_has_no_graph() -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = layers.Conv2D(3, 1)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(LatentModelError, match=r"no layer graph.*LatentModel\(encoder, decoder\)"):
        LatentModel.from_model(Net())


def test_error_layer_name_does_not_exist(unet: keras.Model) -> None:
    with pytest.raises(LatentModelError, match=r"no layer named 'botleneck'.*Did you mean 'bottleneck'"):
        LatentModel.from_model(unet, latent_layer="botleneck")
    # No argument on a non-zoo model: the default name is explained.
    with pytest.raises(LatentModelError, match=r"no layer named 'latent'.*latent_layer=<layer name>"):
        LatentModel.from_model(unet)


def test_error_layer_not_between_input_and_output(unet: keras.Model) -> None:
    with pytest.raises(LatentModelError, match="is the model output"):
        LatentModel.from_model(unet, latent_layer="classes")


def test_error_encoder_output_the_decoder_does_not_accept() -> None:
    enc_in = keras.Input(SHAPE)
    encoder = keras.Model(enc_in, layers.Conv2D(8, 3, strides=4, padding="same")(enc_in))
    dec_in = keras.Input((12, 16, 6), name="latent")
    decoder = keras.Model(dec_in, layers.Softmax()(layers.UpSampling2D(4)(dec_in)))
    msg = r"encoder output shape \(12, 16, 8\) does not fit the decoder's latent input of shape \(12, 16, 6\)"
    with pytest.raises(LatentModelError, match=msg):
        LatentModel(encoder, decoder)
    two = keras.Model([dec_in, keras.Input((4,), name="skip_0")], decoder.outputs)
    with pytest.raises(LatentModelError, match=r"encoder has 1 output.*decoder takes 2 input"):
        LatentModel(encoder, two)


def test_error_nan_or_inf_latent(seg: LatentModel) -> None:
    z = np.zeros((3, *seg.latent_shape), np.float32)
    z[1, 0, 0, 0] = np.nan
    with pytest.raises(LatentModelError, match=r"latent 1 contains NaN or Inf"):
        seg.decode(z)
    z[1, 0, 0, 0] = np.inf
    with pytest.raises(LatentModelError, match=r"latent 1 contains NaN or Inf"):
        seg.decode(z)


def test_error_wrong_latent_shape_or_missing_skips(seg: LatentModel, unet_lm: LatentModel) -> None:
    with pytest.raises(LatentModelError, match=r"latents must have shape \(N, 3, 4, 64\)"):
        seg.decode(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(LatentModelError, match=r"needs 3 skip feature array\(s\).*skips=encode\(images\)\.skips"):
        unet_lm.decode(np.zeros(unet_lm.latent_shape, np.float32))
    with pytest.raises(LatentModelError, match="takes no skip features"):
        seg.decode(np.zeros(seg.latent_shape, np.float32), skips=[np.zeros(3)])


def test_error_wrong_image_size_or_channels(seg: LatentModel) -> None:
    with pytest.raises(
        LatentModelError, match=r"images are 32x32 \(HxW\) but the model expects 48x64.*size=\(48, 64\)"
    ):
        seg.encode(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(LatentModelError, match=r"images have 1 channel\(s\) but the model expects 3.*RGB"):
        seg.encode(np.zeros((2, 48, 64, 1), np.float32))
    with pytest.raises(LatentModelError, match=r"images have 4 channel\(s\)"):
        seg.predict_masks(np.zeros((48, 64, 4), np.float32))
    with pytest.raises(LatentModelError, match=r"images must have shape \(N, 48, 64, 3\)"):
        seg.encode(np.zeros((48, 64), np.float32))
