"""Networks through ONNX (issue 25): ``LatentModel.from_onnx`` against the Keras split and the whole ONNX model.

The zoo's SegNet and DeepLabv3+ (width 0.125, 48x64, untrained seeded
weights) are exported with Keras's own ``model.export(format="onnx")``
(tf2onnx), and a PyTorch-style variant of the SegNet is built around them:
channels-first input and output, logits, a fixed batch of 2, inputs that
expect normalised images. References: the Keras model and its
``LatentModel.from_model`` split on the same images, the whole ONNX model
run by a bare ``onnxruntime.InferenceSession``, hand-made ONNX graphs for
the errors.

Tolerances: the two runtimes sum the same float32 products in different
orders, about 1e-7 apart on these untrained nets; 1e-4 (of the latents'
scale for latents) leaves room for other CPUs. Masks are compared exactly,
except at near-ties (the reference's two best classes within 1e-4), where
rounding picks the class; those must stay rare.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from latent_widgets import LatentModel, LatentModelError, synthetic_road_scenes
from latent_widgets.model.onnx_model import OnnxLatentModel, candidate_cuts

H, W = 48, 64
# ImageNet's normalisation, as a torchvision-trained network expects it.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NEAR_TIE = 1e-4


def _export(model, path: Path, signature=None) -> Path:
    import warnings

    if signature is None:
        model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that was called
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras's numpy-2 patch of tf2onnx touches np.object
        model.export(str(path), format="onnx", verbose=False, input_signature=signature)
    return path


def decisive(model, images: np.ndarray, layer: str = "logits") -> None:
    """Scale the class layer of an untrained net so that its logits' spread is about 2.

    Untrained, the zoo's softmax is near-uniform (probabilities within 3e-4
    of 1/12): masks would be coin tosses, and a wrong output would still be
    within 1e-4 of the right one. Scaled, the weights stay seeded and untrained.
    """
    import keras

    head = model.get_layer(layer)
    spread = float(np.std(np.asarray(keras.Model(model.input, head.output)(images))))
    for w in head.weights:
        w.assign(w * (2.0 / spread))


def tensor_of(path: Path, layer: str) -> str:
    """The ONNX tensor a Keras layer's output became (tf2onnx names it ``<model>_1/<layer>_1/<op>:0``)."""
    import onnx

    graph = onnx.load(path).graph
    return [o for n in graph.node for o in n.output if f"/{layer}_1/" in o][-1]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def run_whole(path: Path, x: np.ndarray) -> np.ndarray:
    """The whole ONNX model's output on ``x`` (in the model's own layout), by a bare session."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def assert_masks_match(masks: np.ndarray, ref_probs: np.ndarray) -> None:
    """``masks`` are the argmax of ``ref_probs`` wherever its two best classes are not a near-tie."""
    top2 = np.sort(ref_probs, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > NEAR_TIE
    assert decided.mean() > 0.99, "too many near-ties for a meaningful comparison"
    np.testing.assert_array_equal(np.asarray(masks)[decided], ref_probs.argmax(-1)[decided])


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return synthetic_road_scenes(5, size=(H, W), seed=3).images[:]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, images) -> dict:
    """name -> (Keras model, its ONNX file, the ONNX tensor of its "latent" layer)."""
    import keras

    from latent_widgets.model.zoo import deeplabv3_plus, segnet

    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, build in (
        ("segnet", lambda: segnet(12, (H, W, 3), width=0.125)),
        ("deeplabv3_plus", lambda: deeplabv3_plus(12, (H, W, 3), backbone_width=0.125)),
    ):
        keras.utils.set_random_seed(0)
        model = build()
        decisive(model, images)
        path = _export(model, folder / f"{name}.onnx")
        out[name] = (model, path, tensor_of(path, "latent"))
    return out


@pytest.fixture(scope="module")
def torchlike(tmp_path_factory, images):
    """A SegNet as PyTorch exports one: NCHW in and out, logits, batch fixed to 2; and its NHWC logits model."""
    import keras
    import tensorflow as tf

    from latent_widgets.model.zoo import segnet

    keras.utils.set_random_seed(1)
    net = segnet(12, (H, W, 3), width=0.125)
    logits = keras.Model(net.input, net.get_layer("logits").output)
    decisive(net, ((images - np.float32(MEAN)) / np.float32(STD)).astype(np.float32))
    x = keras.Input((3, H, W), name="input")
    nchw = keras.Model(x, keras.layers.Permute((3, 1, 2))(logits(keras.layers.Permute((2, 3, 1))(x))))
    path = tmp_path_factory.mktemp("torchlike") / "segnet_nchw.onnx"
    _export(nchw, path, [tf.TensorSpec((2, 3, H, W), tf.float32, name="input")])
    return logits, path, tensor_of(path, "latent")


# ---------------------------------------------------------------- the split


@pytest.mark.parametrize(("name", "n_skips"), [("segnet", 0), ("deeplabv3_plus", 1)])
def test_the_split_equals_the_whole_onnx_model_and_keras(zoo, images, name, n_skips) -> None:
    keras_model, path, latent = zoo[name]
    lm = LatentModel.from_onnx(path, latent=latent)
    ref = LatentModel.from_model(keras_model)
    assert isinstance(lm, OnnxLatentModel) and lm.layout == "NHWC" and lm.batch is None
    # the skips found are the Keras split's: DeepLabv3+'s projected low-level features
    assert len(lm.skip_shapes) == len(ref.skip_shapes) == n_skips
    assert (lm.latent_shape, lm.skip_shapes, lm.n_classes, lm.input_shape) == (
        ref.latent_shape,
        ref.skip_shapes,
        12,
        (H, W, 3),
    )
    assert not lm.apply_softmax  # the zoo's output is a softmax

    enc, enc_ref = lm.encode(images), ref.encode(images)
    for got, want in zip((enc.latents, *enc.skips), (enc_ref.latents, *enc_ref.skips), strict=True):
        scale = np.abs(want).max()
        assert scale > 1e-3 and np.abs(got - want).max() <= 1e-4 * scale
    probs = lm.decode(enc)
    np.testing.assert_allclose(probs, np.asarray(keras_model(images)), rtol=0, atol=1e-4)
    np.testing.assert_allclose(probs, run_whole(path, images), rtol=0, atol=1e-4)
    p, m = lm.decode_with_masks(enc.latents[:2], [s[:2] for s in enc.skips])
    np.testing.assert_allclose(p, probs[:2], rtol=0, atol=1e-6)
    assert m.dtype == np.int32 and np.array_equal(m, p.argmax(-1))
    assert_masks_match(lm.predict_masks(images), np.asarray(keras_model(images)))
    # one latent without batch axis, uint8 images, batches smaller than the set: as LatentModel
    np.testing.assert_allclose(lm.decode(enc.latents[0], [s[0] for s in enc.skips]), probs[:1], atol=1e-6)
    u8 = (images * 255).round().astype(np.uint8)
    np.testing.assert_allclose(lm.encode(u8, batch_size=2).latents, ref.encode(u8).latents, atol=1e-4 * scale)


def test_a_pytorch_style_export_nchw_logits_fixed_batch_normalised(torchlike, images) -> None:
    logits, path, latent = torchlike
    lm = LatentModel.from_onnx(path, latent=latent, mean=MEAN, std=STD)
    assert (lm.layout, lm.batch, lm.apply_softmax) == ("NCHW", 2, True)
    normalised = ((images - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)
    ref = LatentModel.from_model(logits)  # the NHWC network inside, on normalised images
    assert lm.latent_shape == ref.latent_shape == (3, 4, 64)

    # 5 images through a batch-2 model: padded, then cut back
    enc = lm.encode(images)
    want = ref.encode(normalised).latents
    assert np.abs(enc.latents - want).max() <= 1e-4 * np.abs(want).max()
    probs = lm.decode(enc)
    np.testing.assert_allclose(probs, softmax(np.asarray(logits(normalised))), rtol=0, atol=1e-4)
    # the bare ONNX model on two normalised NCHW images, softmaxed over its class axis 1
    whole = softmax(run_whole(path, normalised[:2].transpose(0, 3, 1, 2)), axis=1).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(probs[:2], whole, rtol=0, atol=1e-4)
    # the normalisation is part of the cache key; so is a preprocess function
    plain = LatentModel.from_onnx(path, latent=latent)
    assert plain.weights_hash() != lm.weights_hash()
    pre = LatentModel.from_onnx(path, latent=latent, preprocess=lambda x: (x - np.float32(MEAN)) / np.float32(STD))
    assert pre.weights_hash() not in (plain.weights_hash(), lm.weights_hash())
    np.testing.assert_allclose(pre.encode(images).latents, enc.latents, rtol=0, atol=1e-6)


def test_an_output_smaller_than_the_image_is_softmaxed_and_resized_as_keras_does(tmp_path, images) -> None:
    import keras
    from keras import layers

    keras.utils.set_random_seed(2)
    x = keras.Input((H, W, 3), name="image")
    y = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = layers.MaxPooling2D(2, name="latent")(y)
    y = layers.UpSampling2D(2)(layers.Conv2D(8, 3, padding="same", activation="relu")(y))
    half = keras.Model(x, layers.Conv2D(5, 1, name="logits")(y))  # logits at 24x32
    path = _export(half, tmp_path / "half.onnx")
    lm = LatentModel.from_onnx(path, latent=tensor_of(path, "latent"))
    ref = LatentModel.from_model(half)
    assert lm.apply_softmax and ref.apply_softmax and lm.n_classes == 5
    probs = lm.decode(lm.encode(images))
    assert probs.shape == (5, H, W, 5)
    np.testing.assert_allclose(probs, ref.decode(ref.encode(images)), rtol=0, atol=1e-4)


# ---------------------------------------------------------------- where to cut


def test_candidate_cuts_are_the_main_path_at_the_lowest_resolution(zoo) -> None:
    _, seg_path, seg_latent = zoo["segnet"]
    found = candidate_cuts(seg_path)
    assert seg_latent in [c.name for c in found]
    assert {c.shape for c in found} == {(3, 4, 64)} and {c.n_skips for c in found} == {0}

    _, dl_path, dl_latent = zoo["deeplabv3_plus"]
    found = candidate_cuts(dl_path)
    names = [c.name for c in found]
    assert dl_latent in names and "deeplabv3_plus_1/aspp_concat_1/concat:0" in names
    assert all(c.shape[:2] == (3, 4) and c.n_skips == 1 for c in found)
    # not the parallel ASPP branches, nor the image-pooling branch (global 1x1 features): side paths
    assert not [n for n in names if "aspp_rate" in n or "aspp_1x1" in n or "aspp_pool" in n]
    assert [c.n_skips for c in found] == sorted(c.n_skips for c in found)  # fewest skips first
    # a branch cut works, but its siblings become skips at the same resolution
    branch = LatentModel.from_onnx(dl_path, latent="deeplabv3_plus_1/aspp_1x1_relu_1/Relu:0")
    assert len(branch.skip_shapes) == 5

    with pytest.raises(LatentModelError, match="name the tensor to split") as err:
        LatentModel.from_onnx(dl_path)
    assert dl_latent in str(err.value) and "1 skip" in str(err.value) and "netron" in str(err.value)


# ---------------------------------------------------------------- errors


def _graph(nodes, inputs, output_shape, inits=(), opset=13):
    """A hand-made ONNX model: float tensors, input ``x``, output ``y``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits],
    )
    return onnx.helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_bad_cuts_and_bad_models_name_the_problem(zoo, tmp_path) -> None:
    from onnx import helper

    _, path, latent = zoo["segnet"]
    with pytest.raises(LatentModelError, match=r"no tensor named 'segnet_1/latent_1/MaxPool2d'.*Did you mean.*:0"):
        LatentModel.from_onnx(path, latent=latent[:-2])
    with pytest.raises(LatentModelError, match="is the model's input"):
        LatentModel.from_onnx(path, latent="image")
    with pytest.raises(LatentModelError, match="is the model output"):
        LatentModel.from_onnx(path, latent="Identity:0")
    with pytest.raises(LatentModelError, match=r"is an ONNX file: split it with LatentModel\.from_onnx"):
        LatentModel.load(path)
    with pytest.raises(LatentModelError, match="does not exist"):
        LatentModel.from_onnx(tmp_path / "missing.onnx", latent="t")
    with pytest.raises(LatentModelError, match="layout='x': give 'NCHW'"):
        LatentModel.from_onnx(path, latent=latent, layout="x")

    # y = conv(relu(conv(x)) + x): the input reaches the output around "t"
    rng = np.random.default_rng(0)
    w3, w2 = rng.normal(size=(3, 3, 1, 1)).astype(np.float32), rng.normal(size=(2, 3, 1, 1)).astype(np.float32)
    residual = _graph(
        [
            helper.make_node("Conv", ["x", "w3"], ["c"]),
            helper.make_node("Relu", ["c"], ["t"]),
            helper.make_node("Add", ["t", "x"], ["s"]),
            helper.make_node("Conv", ["s", "w2"], ["y"]),
        ],
        [("x", ["N", 3, 8, 8])],
        ["N", 2, 8, 8],
        [("w3", w3), ("w2", w2)],
    )
    with pytest.raises(LatentModelError, match=r"'t' is not on the main path.*the model's input 'x' itself"):
        LatentModel.from_onnx(residual, latent="t")
    assert [c.name for c in candidate_cuts(residual)] == ["s"]  # after the join: every path passes there
    np.testing.assert_allclose(LatentModel.from_onnx(residual, latent="s").latent_shape, (8, 8, 3))
    with pytest.raises(LatentModelError, match="does not depend on 'c2'"):
        LatentModel.from_onnx(
            _graph(
                [helper.make_node("Conv", ["x", "w3"], ["c2"]), helper.make_node("Conv", ["x", "w2"], ["y"])],
                [("x", ["N", 3, 8, 8])],
                ["N", 2, 8, 8],
                [("w3", w3), ("w2", w2)],
            ),
            latent="c2",
        )
    two_inputs = _graph(
        [helper.make_node("Add", ["x", "x2"], ["a"]), helper.make_node("Conv", ["a", "w2"], ["y"])],
        [("x", ["N", 3, 8, 8]), ("x2", ["N", 3, 8, 8])],
        ["N", 2, 8, 8],
        [("w2", w2)],
    )
    with pytest.raises(LatentModelError, match="must take one input"):
        LatentModel.from_onnx(two_inputs, latent="a")
    dynamic = _graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Conv", ["t", "w2"], ["y"])],
        [("x", ["N", 3, "H", "W"])],
        ["N", 2, "H", "W"],
        [("w2", w2)],
    )
    with pytest.raises(LatentModelError, match=r"dynamic image size.*input_size=\(H, W\)"):
        LatentModel.from_onnx(dynamic, latent="t")
    fixed = LatentModel.from_onnx(dynamic, latent="t", input_size=(8, 12))
    assert fixed.input_shape == (8, 12, 3) and fixed.latent_shape == (8, 12, 3)
    with pytest.raises(LatentModelError, match="cannot tell the layout"):
        LatentModel.from_onnx(
            _graph([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 3, 3, 3])], [1, 3, 3, 3]), latent="y"
        )


def test_without_onnx_installed_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "from latent_widgets import LatentModel\n"
        "try:\n    LatentModel.from_onnx('m.onnx', 't')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert "pip install 'latent-widgets[onnx]'" in out and "onnx" in out


# ---------------------------------------------------------------- travelling, storing, exploring


def test_pickle_save_and_load_keep_the_model(zoo, images, tmp_path) -> None:
    _, path, latent = zoo["deeplabv3_plus"]
    lm = OnnxLatentModel.from_onnx(path, latent=latent, threads=1)
    enc = lm.encode(images)
    assert lm._sessions  # created on first use ...
    copy = pickle.loads(pickle.dumps(lm))
    assert copy._sessions == {}  # ... and never pickled: the copy makes its own
    np.testing.assert_array_equal(copy.encode(images).latents, enc.latents)
    assert copy.weights_hash() == lm.weights_hash() and copy.content_hash() == lm.content_hash()

    saved = OnnxLatentModel.load(lm.save(tmp_path / "split.onnx"))  # the split read back from the metadata
    assert (saved.latent_tensor, saved.skip_tensors) == (lm.latent_tensor, lm.skip_tensors)
    assert saved.weights_hash() == lm.weights_hash()
    np.testing.assert_array_equal(saved.decode(saved.encode(images)), lm.decode(enc))
    with pytest.raises(LatentModelError, match=r"ending in \.onnx"):
        lm.save(tmp_path / "split.keras")
    with pytest.raises(LatentModelError, match="preprocess callable, which cannot be saved"):
        OnnxLatentModel.from_onnx(path, latent=latent, preprocess=np.sqrt).save(tmp_path / "pre.onnx")


def test_encode_dataset_streams_into_a_store_checked_by_the_weights_hash(zoo, tmp_path) -> None:
    from latent_widgets.latents.store import LatentStore
    from latent_widgets.latents.store_errors import LatentStoreError

    _, path, latent = zoo["deeplabv3_plus"]
    lm = LatentModel.from_onnx(path, latent=latent)
    data = synthetic_road_scenes(20, size=(H, W), seed=1, lazy=True)
    enc = lm.encode_dataset(data, batch_size=8, store=tmp_path / "z.zarr", progress=False)
    ref = lm.encode(data.images[:])
    np.testing.assert_array_equal(enc.latents[:], ref.latents)
    np.testing.assert_array_equal(enc.skips[0][[3, 17]], ref.skips[0][[3, 17]])  # lazy skips, re-encoded
    store = LatentStore.open(tmp_path / "z.zarr", model_hash=lm.weights_hash(), data_hash=data.content_hash())
    assert store.is_complete
    other = LatentModel.from_onnx(path, latent=latent, mean=0.5, std=0.25)
    with pytest.raises(LatentStoreError):
        other.encode_dataset(data, batch_size=8, store=tmp_path / "z.zarr", progress=False)


def test_an_explorer_session_on_the_onnx_model_matches_the_keras_one(zoo, ds, tmp_path) -> None:
    from sklearn.decomposition import PCA

    from latent_widgets.analysis.interpolation import path_inputs
    from latent_widgets.session import ExplorerSession, SessionMismatchError

    keras_model, path, latent = zoo["deeplabv3_plus"]
    kw = {"index_a": 2, "index_b": 9, "asynchronous": False, "methods": ("pca",), "scrub_steps": 17}
    s = ExplorerSession(LatentModel.from_onnx(path, latent=latent), ds, **kw)
    ref_model = LatentModel.from_model(keras_model)
    ref = ExplorerSession(ref_model, ds, **kw)
    scale = np.abs(ref.latents).max()
    assert np.abs(np.asarray(s.latents) - np.asarray(ref.latents)).max() <= 1e-4 * scale
    # the map: the same PCA up to each axis's sign (scikit-learn's of the Keras latents)
    want = PCA(2, random_state=0).fit_transform(np.asarray(ref.latents, np.float64).reshape(len(ds), -1))
    extent = np.abs(want).max()
    for k in range(2):
        assert min(np.abs(s.maps["pca"][:, k] - want[:, k]).max(), np.abs(s.maps["pca"][:, k] + want[:, k]).max()) < (
            1e-3 * extent
        )
    # the strip and the scrub frames: the Keras session's masks
    assert [st.alpha for st in s.strip.steps] == [st.alpha for st in ref.strip.steps]
    for mine, theirs in zip(s.strip.steps, ref.strip.steps, strict=True):
        np.testing.assert_allclose(mine.probs, theirs.probs, rtol=0, atol=1e-4)
        assert_masks_match(mine.mask, theirs.probs)
    assert s.frames.masks.shape == ref.frames.masks.shape == (17, H, W)
    z, skips = path_inputs(ref_model, ds.images[2], ds.images[9], s.frames.alphas.astype(np.float32))
    assert_masks_match(s.frames.masks, ref_model.decode(z, skips))
    s.alpha = 0.37
    ref.alpha = 0.37
    assert_masks_match(s.current.mask, ref.current.probs)
    # the rest of the explorer takes it as it is: a map of latent cells (NHWC grid), the figures, a saved view
    s.map_points = "cells"
    assert s.grid == (3, 4) and s.points.shape == (len(ds) * 12, 2)
    s.map_points = "flatten"
    assert {p.name for p in s.export(tmp_path)} >= {"session.json", "map.png", "strip.png"}
    back = ExplorerSession.from_json(s.to_json(), s.model, ds, asynchronous=False, scrub_steps=0)
    assert (back.index_a, back.index_b, back.alpha) == (2, 9, pytest.approx(0.37))
    with pytest.raises(SessionMismatchError):
        ExplorerSession.from_json(s.to_json(), ref_model, ds, asynchronous=False, scrub_steps=0)


@pytest.mark.slow
def test_a_dask_cluster_encodes_with_the_onnx_model_as_here(zoo, tmp_path) -> None:
    from dask.distributed import Client, LocalCluster

    _, path, latent = zoo["deeplabv3_plus"]
    lm = LatentModel.from_onnx(path, latent=latent)
    data = synthetic_road_scenes(64, size=(H, W), seed=2, lazy=True)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as c,
        Client(c) as client,
    ):
        enc = lm.encode_dataset(data, batch_size=16, chunk_rows=32, store=tmp_path / "d.zarr", client=client)
    np.testing.assert_allclose(enc.latents[:], lm.encode(data.images[:]).latents, rtol=0, atol=1e-6)
