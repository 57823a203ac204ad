"""Segmentation and path metrics on hand-computed masks (latent_widgets.analysis.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from latent_widgets.analysis.metrics import (
    class_fractions,
    confusion_matrix,
    consecutive_iou,
    entropy,
    iou_per_class,
    mean_iou,
    path_metrics,
    per_sample_iou,
    per_sample_mean_iou,
    pixel_accuracy,
)
from latent_widgets.analysis.neighbors import LatentIndex, path_neighbors

TRUE = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1]])
# class 0: inter 3, union 4; class 1: inter 4, union 7; class 2: inter 2, union 4; class 3: absent


def test_iou_hand_computed():
    iou = iou_per_class(PRED, TRUE, 4)
    np.testing.assert_allclose(iou[:3], [3 / 4, 4 / 7, 2 / 4])
    assert np.isnan(iou[3])
    assert mean_iou(PRED, TRUE, 4) == pytest.approx((3 / 4 + 4 / 7 + 2 / 4) / 3)
    assert pixel_accuracy(PRED, TRUE) == pytest.approx(9 / 12)
    cm = confusion_matrix(PRED, TRUE, 4)
    assert cm.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]]


def test_iou_matches_sklearn_jaccard(rng):
    from sklearn.metrics import jaccard_score

    t = rng.integers(0, 5, (3, 20, 20))
    p = np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 5, t.shape))
    want = jaccard_score(t.ravel(), p.ravel(), labels=list(range(5)), average=None)
    np.testing.assert_allclose(iou_per_class(p, t, 5), want)  # a batch counts as one big image


def test_ignore_index():
    iou = iou_per_class(PRED, TRUE, 4, ignore_index=2)
    # the bottom row is left out: class 1 loses its two false positives there
    np.testing.assert_allclose(iou[:2], [3 / 4, 4 / 5])
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert pixel_accuracy(PRED, TRUE, ignore_index=2) == pytest.approx(7 / 8)


def test_per_sample_and_batches(rng):
    t = rng.integers(0, 3, (5, 6, 7))
    p = rng.integers(0, 3, (5, 6, 7))
    per = per_sample_iou(p, t, 3)
    assert per.shape == (5, 3)
    for i in range(5):
        np.testing.assert_allclose(per[i], iou_per_class(p[i], t[i], 3))
    np.testing.assert_allclose(per_sample_mean_iou(p, t, 3), np.nanmean(per, axis=1))
    per_ignored = per_sample_iou(p, t, 3, ignore_index=0)
    for i in range(5):
        np.testing.assert_allclose(per_ignored[i], iou_per_class(p[i], t[i], 3, ignore_index=0))


def test_class_fractions(synthetic_small):
    ds = synthetic_small
    np.testing.assert_allclose(class_fractions(ds.masks, ds.n_classes), ds.class_fractions())
    assert class_fractions(TRUE, 3).tolist() == [4 / 12, 4 / 12, 4 / 12]
    with pytest.raises(ValueError, match="n_classes"):
        class_fractions(TRUE, 2)
    with pytest.raises(ValueError, match="integer"):
        class_fractions(TRUE.astype(float), 3)


def test_consecutive_iou_and_entropy():
    masks = np.stack([TRUE, TRUE, PRED])
    np.testing.assert_allclose(consecutive_iou(masks, 4), [1.0, mean_iou(PRED, TRUE, 4)])
    assert consecutive_iou(masks[:1], 4).shape == (0,)
    probs = np.zeros((2, 2, 2, 4))
    probs[0, ..., 1] = 1.0  # certain
    probs[1] = 0.25  # uniform over 4 classes
    np.testing.assert_allclose(entropy(probs), [0.0, np.log(4)])
    np.testing.assert_allclose(entropy(probs, normalize=True), [0.0, 1.0])
    mixed = np.array([[[[0.5, 0.5, 0.0]], [[1.0, 0.0, 0.0]]]])  # two pixels
    np.testing.assert_allclose(entropy(mixed), [np.log(2) / 2])


def test_path_metrics(rng):
    probs = rng.dirichlet(np.ones(3), size=(6, 4, 5)).astype(np.float32)
    data = rng.normal(size=(20, 2, 3)).astype(np.float32)
    path = np.linspace(0, 1, 6)[:, None, None] * (data[1] - data[0]) + data[0]
    m = path_metrics(probs, path, data, relative=True)
    masks = probs.argmax(-1)
    np.testing.assert_allclose(m.fractions, class_fractions(masks, 3))
    np.testing.assert_allclose(m.soft_fractions, probs.mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(m.smoothness, consecutive_iou(masks, 3))
    np.testing.assert_allclose(m.entropy, entropy(probs))
    pn = path_neighbors(path, data)
    assert m.nn_index.tolist() == pn.indices.tolist() and m.n_distinct == pn.n_distinct
    np.testing.assert_allclose(m.nn_distance, pn.distances)
    scale = LatentIndex().fit(data).nn_distance_scale()
    np.testing.assert_allclose(m.nn_distance_ratio, pn.distances / scale)
    assert m.nn_index[0] == 0 and m.nn_index[-1] == 1
    bare = path_metrics(probs)
    assert bare.nn_index is None and bare.n_distinct is None and set(bare.as_dict()) >= {"entropy"}
    with pytest.raises(ValueError, match="both"):
        path_metrics(probs, path)
