"""Training: a tiny real run, its on-disk cache, and corrupt cache entries."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from latent_widgets.model.training import (  # noqa: E402
    TrainHistory,
    TrainingError,
    class_weights,
    evaluate,
    model_cache_key,
    train,
)
from latent_widgets.model.zoo import segnet  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SETTINGS = dict(epochs=2, batch_size=8, learning_rate=2e-3, progress=False)


def tiny_model(n_classes: int) -> keras.Model:
    return segnet(n_classes, (48, 64, 3), width=0.125)


@pytest.fixture(scope="module")
def data(synthetic_small):
    return synthetic_small[:16], synthetic_small[16:24]


@pytest.fixture(scope="module")
def first_run(data):
    tr, va = data
    return train(tiny_model(tr.n_classes), tr, va, **SETTINGS)


def test_train_returns_history_with_per_class_iou(first_run, data) -> None:
    tr, va = data
    h = first_run.history
    assert not first_run.from_cache and first_run.path is not None and first_run.path.is_file()
    assert h.epochs == 2 and len(h.val_mean_iou) == 2 and len(h.seconds) == 2
    assert all(np.isfinite(h.loss)) and h.loss[1] < h.loss[0]  # it learns
    assert len(h.val_iou[-1]) == tr.n_classes
    assert 0.0 <= h.val_mean_iou[-1] <= 1.0
    assert h.val_mean_iou[-1] == pytest.approx(np.nanmean(h.val_iou[-1]))
    ev = evaluate(first_run.model, va)
    assert ev["mean_iou"] == pytest.approx(h.val_mean_iou[-1], abs=1e-9)
    assert "mean" in h.iou_table() and h.class_names[0] in h.iou_table()


def test_second_call_loads_from_cache(first_run, data) -> None:
    tr, va = data
    again = train(tiny_model(tr.n_classes), tr, va, **SETTINGS)
    assert again.from_cache and again.path == first_run.path and again.key == first_run.key
    assert again.history.val_mean_iou == first_run.history.val_mean_iou
    x = va.images[:3]
    np.testing.assert_allclose(again.model(x, training=False), first_run.model(x, training=False), atol=1e-6)


def test_cache_key_covers_data_and_settings(first_run, data) -> None:
    tr, va = data
    model = tiny_model(tr.n_classes)
    settings = dict(first_run.history.settings)
    assert model_cache_key(model, tr, va, settings) == first_run.key
    assert model_cache_key(model, tr[:8], va, settings) != first_run.key
    assert model_cache_key(model, tr, va, {**settings, "epochs": 3}) != first_run.key
    assert model_cache_key(segnet(tr.n_classes, (48, 64, 3), width=0.25), tr, va, settings) != first_run.key


def test_truncated_cache_file_is_retrained(first_run, data) -> None:
    tr, va = data
    blob = first_run.path.read_bytes()
    first_run.path.write_bytes(blob[: len(blob) // 2])
    with pytest.warns(RuntimeWarning, match="truncated or corrupt, retraining"):
        redo = train(tiny_model(tr.n_classes), tr, va, **SETTINGS)
    assert not redo.from_cache
    # Same seed, same data: the retrained model is the same model.
    assert redo.history.val_mean_iou == pytest.approx(first_run.history.val_mean_iou, abs=1e-6)
    assert redo.path.stat().st_size > len(blob) // 2  # rewritten whole
    hit = train(tiny_model(tr.n_classes), tr, va, **SETTINGS)
    assert hit.from_cache


def test_corrupt_history_file_is_not_used(first_run, tmp_path) -> None:
    from latent_widgets.model.training import _load_cached

    model_copy = tmp_path / "m.keras"
    meta_copy = tmp_path / "m.json"
    model_copy.write_bytes(first_run.path.read_bytes())
    meta_copy.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="retraining"):
        assert _load_cached(model_copy, meta_copy, first_run.key) is None
    assert not model_copy.exists() and not meta_copy.exists()  # the bad entry is removed
    # A history that belongs to another key is not used either.
    model_copy.write_bytes(first_run.path.read_bytes())
    meta_copy.write_text(json.dumps({"key": "other", "history": {}}))
    with pytest.warns(RuntimeWarning, match="another model"):
        assert _load_cached(model_copy, meta_copy, first_run.key) is None


def test_class_weights() -> None:
    from latent_widgets.data import SegmentationDataset

    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :1] = 1  # class 1: a quarter of image 0
    masks[1, :2] = 2  # class 2: half of image 1
    ds = SegmentationDataset(np.zeros((2, 4, 4, 3), np.float32), masks, ("a", "b"), ("bg", "one", "two", "void"))
    w = class_weights(ds, "balanced")
    # median frequency balancing: f = (0.625, 0.25, 0.5), median 0.5; absent class -> 0
    np.testing.assert_allclose(w, [0.8, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(class_weights(ds, None, ignore_class=0), [0.0, 1.0, 1.0, 1.0])
    with pytest.raises(TrainingError, match="'balanced' or None"):
        class_weights(ds, "inverse")


def test_history_json_roundtrip() -> None:
    h = TrainHistory(loss=[1.0], val_iou=[[0.5, float("nan")]], val_mean_iou=[0.5], class_names=["a", "b"])
    back = TrainHistory.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.loss == [1.0] and np.isnan(back.val_iou[0][1]) and back.class_names == ["a", "b"]


def test_train_rejects_data_that_does_not_fit(data) -> None:
    tr, _ = data
    with pytest.raises(TrainingError, match=r"images are 48x64x3 but the model takes \(96, 128, 3\)"):
        train(segnet(tr.n_classes, (96, 128, 3), width=0.125), tr, progress=False)
    with pytest.raises(TrainingError, match=r"outputs 3 classes.*n_classes=12"):
        train(tiny_model(3), tr, progress=False)
    with pytest.raises(TrainingError, match=r"keras\.Model"):
        train("model", tr)  # type: ignore[arg-type]


@pytest.mark.parametrize("last", ["softmax", "linear"])
def test_the_loss_reads_logits_as_logits(last: str) -> None:
    """A network ending in logits (the TF tutorial's U-Net, keras-hub's segmenters) trains on softmax cross-entropy."""
    from latent_widgets.model.training import _loss_fn

    inputs = keras.Input((4, 4, 3))
    net = keras.Model(inputs, keras.layers.Conv2D(5, 1, activation=last)(inputs))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    y = rng.integers(0, 5, size=(2, 4, 4))
    scores = keras.ops.convert_to_numpy(net(x)).astype(np.float64)
    if last == "linear":  # by hand: -log softmax(logits)[y]
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
    want = -np.log(np.take_along_axis(scores, y[..., None], -1)).mean()
    got = float(keras.ops.convert_to_numpy(_loss_fn(net)(y, net(x))))
    assert got == pytest.approx(want, rel=1e-5)
