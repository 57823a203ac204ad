"""The session's part that keeps the predicted masks known so far (``session.predictions``), alone.

Reference: each sample's mean IoU counted pixel by pixel (``toy.iou_loop``).
"""

from __future__ import annotations

import numpy as np
import pytest
from toy import iou_loop

from latent_widgets.session.predictions import ASIDE, PredictedMasks


def noisy(ds, rng: np.random.Generator, rows: slice) -> np.ndarray:
    """The true masks of ``rows`` with a fifth of their pixels set to random classes."""
    masks = np.array(ds.masks[rows])
    flip = rng.random(masks.shape) < 0.2
    masks[flip] = rng.integers(0, ds.n_classes, int(flip.sum()))
    return masks


@pytest.mark.parametrize("ignore", [None, 11])
def test_blocks_stored_in_any_order_are_kept_and_scored_like_a_pixel_loop(ds, rng, ignore) -> None:
    known = PredictedMasks(ds, ignore_index=ignore)
    assert known.count == 0 and not known.complete and np.isnan(known.mean_iou()).all()
    preds = noisy(ds, rng, slice(0, len(ds)))
    for rows in (slice(10, 24), slice(0, 3), slice(3, 10)):
        known.store(rows, preds[rows])
        assert known.count == sum(known.done)
    assert known.complete and known.masks.dtype == np.uint8
    np.testing.assert_array_equal(known.masks, preds)
    expected = [np.nanmean(iou_loop(ds.masks[i], preds[i], ds.n_classes, ignore)) for i in range(len(ds))]
    np.testing.assert_allclose(known.mean_iou(), expected, rtol=1e-12)


def test_an_unknown_sample_is_none_and_its_score_nan(ds, rng) -> None:
    known = PredictedMasks(ds)
    known.store(slice(5, 6), noisy(ds, rng, slice(5, 6)))
    assert known.get(4) is None and known.get(5) is not None
    scores = known.mean_iou()
    assert np.isfinite(scores[5]) and np.isnan(np.delete(scores, 5)).all()


def test_samples_put_aside_keep_the_newest_few(ds, rng) -> None:
    known = PredictedMasks(ds)
    mask = noisy(ds, rng, slice(0, 1))[0].astype(np.int64)
    for k in range(ASIDE + 5):
        known.put_aside(k % len(ds) if k < len(ds) else 1000 + k, mask)
    assert known.count == ASIDE and known.done is None
    assert known.get(0) is None  # among the oldest: dropped
    assert known.get(1000 + ASIDE + 4).dtype == np.uint8  # the newest, in uint8 ids


def test_the_disk_cache_round_trips_and_a_cache_of_other_masks_is_not_used(ds, rng, tmp_path) -> None:
    known = PredictedMasks(ds)
    preds = noisy(ds, rng, slice(0, len(ds)))
    known.store(slice(0, len(ds)), preds)
    known.save(tmp_path / "p.npz")
    again = PredictedMasks(ds)
    assert again.load(tmp_path / "p.npz") and again.complete
    np.testing.assert_array_equal(again.masks, preds)
    assert np.isnan(again.mean_iou()).all()  # scored block by block when stored again, not at load
    np.savez(tmp_path / "other.npz", masks=preds[:3])
    other = PredictedMasks(ds)
    assert not other.load(tmp_path / "other.npz") and not other.load(tmp_path / "missing.npz")
    assert other.count == 0 and not other.load(None)
