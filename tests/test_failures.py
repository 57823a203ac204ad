"""The failures of a selection against scikit-learn and brute-force loops (latent_widgets.analysis.failures)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from toy import iou_loop

from latent_widgets.analysis.failures import SelectionReport, per_class_sample_iou, selection_report
from latent_widgets.analysis.metrics import per_sample_iou

C = 4


def _masks(rng: np.random.Generator, n: int = 12, shape: tuple[int, int] = (6, 7)) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.integers(0, C, size=(n, *shape))
    # Predictions mostly right, so IoUs spread over (0, 1) instead of sitting near chance.
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(0, C, size=truth.shape))
    return truth, pred


@pytest.mark.parametrize("ignore", [None, 3, 255])
def test_confusion_equals_sklearn_over_the_selected_pixels(rng, ignore):
    truth, pred = _masks(rng)
    if ignore is not None:
        truth[rng.random(truth.shape) < 0.2] = ignore
    sel = [9, 2, 5, 2, 11]  # unsorted, with a duplicate
    r = selection_report(truth, pred, sel, C, ignore_index=ignore)
    assert r.indices.tolist() == [2, 5, 9, 11]
    t, p = truth[r.indices].ravel(), pred[r.indices].ravel()
    if ignore is not None:
        t, p = t[t != ignore], p[t != ignore]
    want = sk_confusion(t, p, labels=list(range(C)))
    np.testing.assert_array_equal(r.confusion, want)
    assert r.confusion.dtype == np.int64
    # the pooled IoU is that of the selected pixels, class by class
    np.testing.assert_allclose(r.iou, iou_loop(truth[r.indices], pred[r.indices], C, ignore), equal_nan=True)
    if ignore == 3:
        assert np.isnan(r.iou[3])
    assert r.mean_iou == pytest.approx(np.nanmean(iou_loop(truth[r.indices], pred[r.indices], C, ignore)))


def test_sample_iou_and_worst_order_against_a_loop(rng):
    truth, pred = _masks(rng, n=15)
    truth[4] = 0
    pred[4] = 0  # a perfect sample: IoU 1
    sel = np.array([1, 3, 4, 7, 8, 10, 14])
    r = selection_report(truth, pred, sel, C)
    want = np.array([np.nanmean(iou_loop(truth[i], pred[i], C)) for i in sel])
    np.testing.assert_allclose(r.sample_iou, want)
    loop_order = sorted(sel.tolist(), key=lambda i: (np.nanmean(iou_loop(truth[i], pred[i], C)), i))
    assert r.worst.tolist() == loop_order
    assert r.worst[-1] == 4
    # and the figures are those of metrics.per_sample_iou
    np.testing.assert_allclose(r.sample_iou, np.nanmean(per_sample_iou(pred[sel], truth[sel], C), axis=1))


def test_a_sample_with_nothing_scored_ranks_last(rng):
    truth, pred = _masks(rng, n=4)
    truth[1] = 255  # every pixel ignored
    r = selection_report(truth, pred, [0, 1, 2], C, ignore_index=255)
    assert np.isnan(r.sample_iou[1])
    assert r.worst[-1] == 1


def test_mean_iou_all_with_and_without_reference(rng):
    truth, pred = _masks(rng)
    everything = selection_report(truth, pred, np.arange(len(truth)), C)
    want_all = np.nanmean(iou_loop(truth, pred, C))
    assert everything.mean_iou == pytest.approx(want_all)
    assert everything.mean_iou_all == everything.mean_iou  # the whole set is its own reference
    bare = selection_report(truth, pred, [0, 3], C)
    assert np.isnan(bare.mean_iou_all)
    by_report = selection_report(truth, pred, [0, 3], C, reference=everything)
    by_matrix = selection_report(truth, pred, [0, 3], C, reference=everything.confusion)
    assert by_report.mean_iou_all == pytest.approx(want_all)
    assert by_matrix.mean_iou_all == pytest.approx(want_all)
    assert by_report.mean_iou == bare.mean_iou
    # with ignore_index the reference matrix scores as the selection does (ignored class NaN)
    ref = selection_report(truth, pred, np.arange(len(truth)), C, ignore_index=2)
    r = selection_report(truth, pred, [1], C, ignore_index=2, reference=ref.confusion)
    assert r.mean_iou_all == pytest.approx(np.nanmean(iou_loop(truth, pred, C, 2)))
    with pytest.raises(ValueError, match=r"\(4, 4\) confusion matrix"):
        selection_report(truth, pred, [1], C, reference=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="reference report has 4 classes"):
        selection_report(truth, pred, [1], 5, reference=everything)


def test_normalized_and_to_dict(rng):
    truth, pred = _masks(rng)
    truth[truth == 2] = 0  # class 2 absent from the truth: a NaN row
    r = selection_report(truth, pred, [0, 1, 2], C, class_names=("road", "car", "sky", "tree"))
    norm = r.normalized()
    np.testing.assert_allclose(norm[[0, 1, 3]].sum(axis=1), 1.0)
    assert np.isnan(norm[2]).all()
    np.testing.assert_allclose(norm[0], r.confusion[0] / r.confusion[0].sum())
    d = r.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["class_names"] == ["road", "car", "sky", "tree"]
    assert d["mean_iou_all"] is None
    assert d["worst"] == r.worst.tolist()
    assert d["confusion"] == r.confusion.tolist()


def test_the_report_is_immutable(rng):
    truth, pred = _masks(rng)
    r = selection_report(truth, pred, [0, 1], C)
    assert isinstance(r, SelectionReport)
    with pytest.raises(AttributeError):
        r.mean_iou = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        r.confusion[0, 0] = 7


def test_a_boolean_mask_selects_too(rng):
    truth, pred = _masks(rng)
    mask = np.zeros(len(truth), bool)
    mask[[2, 7]] = True
    assert selection_report(truth, pred, mask, C).indices.tolist() == [2, 7]


class _RowsOnly:
    """Masks that record which rows are read and refuse to be read whole."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key):
        rows = np.arange(len(self.data))[key]
        self.read.extend(np.atleast_1d(rows).tolist())
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def test_only_the_selected_rows_are_read_in_blocks(rng, monkeypatch):
    import latent_widgets.analysis.failures as F

    truth, pred = _masks(rng, n=40)
    monkeypatch.setattr(F, "CHUNK_PIXELS", 3 * 42)  # 3 samples of 6 x 7 per block
    t, p = _RowsOnly(truth), _RowsOnly(pred)
    sel = [3, 4, 5, 17, 30, 31, 39]
    r = selection_report(t, p, sel, C)
    assert sorted(t.read) == sel and sorted(p.read) == sel
    np.testing.assert_array_equal(r.confusion, selection_report(truth, pred, sel, C).confusion)


def test_lazy_dataset_masks(rng):
    from latent_widgets import synthetic_road_scenes

    lazy = synthetic_road_scenes(10, size=(24, 32), seed=3, lazy=True)
    eager = synthetic_road_scenes(10, size=(24, 32), seed=3, lazy=False)
    n = eager.n_classes
    pred = np.asarray(eager.masks).copy()
    pred[:, :6] = 0  # the model misses the sky
    r_lazy = selection_report(lazy.masks, pred, [1, 4, 8], n, class_names=lazy.class_names)
    r_eager = selection_report(eager.masks, pred, [1, 4, 8], n, class_names=eager.class_names)
    np.testing.assert_array_equal(r_lazy.confusion, r_eager.confusion)
    np.testing.assert_array_equal(r_lazy.worst, r_eager.worst)
    assert r_lazy.class_names == tuple(eager.class_names)
    t = np.asarray(eager.masks)[[1, 4, 8]].ravel()
    np.testing.assert_array_equal(r_lazy.confusion, sk_confusion(t, pred[[1, 4, 8]].ravel(), labels=list(range(n))))
    got = per_class_sample_iou(lazy.masks, pred, n, 0)
    np.testing.assert_allclose(got, per_sample_iou(pred, np.asarray(eager.masks), n)[:, 0], equal_nan=True)


def test_zarr_masks(rng, tmp_path):
    import zarr

    truth, pred = _masks(rng, n=20)
    zt = zarr.create_array(tmp_path / "t.zarr", shape=truth.shape, chunks=(4, 6, 7), dtype="uint8")
    zp = zarr.create_array(tmp_path / "p.zarr", shape=pred.shape, chunks=(4, 6, 7), dtype="uint8")
    zt[:], zp[:] = truth, pred
    sel = [0, 1, 2, 9, 13, 19]
    r = selection_report(zt, zp, sel, C)
    want = selection_report(truth, pred, sel, C)
    np.testing.assert_array_equal(r.confusion, want.confusion)
    np.testing.assert_array_equal(r.worst, want.worst)
    np.testing.assert_allclose(r.sample_iou, want.sample_iou)
    np.testing.assert_allclose(
        per_class_sample_iou(zt, zp, C, 2), per_class_sample_iou(truth, pred, C, 2), equal_nan=True
    )


@pytest.mark.parametrize("ignore", [None, 0])
def test_per_class_sample_iou_against_a_loop(rng, ignore):
    truth, pred = _masks(rng, n=10)
    truth[3] = 1
    pred[3] = 1  # class 3 absent from sample 3: NaN
    got = per_class_sample_iou(truth, pred, C, 3, ignore_index=ignore)
    want = [iou_loop(truth[i], pred[i], C, ignore)[3] for i in range(len(truth))]
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isnan(got[3])
    with pytest.raises(ValueError, match=r"cls must be a class id in 0\.\.3"):
        per_class_sample_iou(truth, pred, C, 4)
    with pytest.raises(ValueError, match="ignore_index"):
        per_class_sample_iou(truth, pred, C, 0, ignore_index=0)


def test_errors_name_the_problem(rng):
    truth, pred = _masks(rng)
    with pytest.raises(ValueError, match=r"index 12 is out of range.*0\.\.11"):
        selection_report(truth, pred, [3, 12], C)
    with pytest.raises(ValueError, match="index -1 is out of range"):
        selection_report(truth, pred, [-1], C)
    with pytest.raises(ValueError, match="selection is empty"):
        selection_report(truth, pred, [], C)
    with pytest.raises(ValueError, match="one entry per sample"):
        selection_report(truth, pred, np.ones(3, bool), C)
    with pytest.raises(ValueError, match="integers"):
        selection_report(truth, pred, [0.5], C)
    with pytest.raises(ValueError, match=r"same samples.*resolution \(6, 7\)"):
        selection_report(truth, pred[:, :5], [0], C)
    with pytest.raises(ValueError, match=r"argmax"):
        selection_report(truth, np.zeros((*truth.shape, C)), [0], C)
    with pytest.raises(ValueError, match="integer class ids"):
        selection_report(truth, pred.astype(np.float32), [0], C)
    bad = truth.copy()
    bad[5, 0, 0] = 7
    with pytest.raises(ValueError, match=r"truth has class ids in \[0, 7\].*n_classes=4"):
        selection_report(bad, pred, [5], C)
    selection_report(bad, pred, [4], C)  # only the selected rows are read, so only they are checked
    with pytest.raises(ValueError, match=r"pred has class ids"):
        selection_report(truth, bad, [5], C)
    with pytest.raises(ValueError, match=r"truth has class ids"):  # ignore_index excuses only its own id
        selection_report(bad, pred, [5], C, ignore_index=255)
    with pytest.raises(ValueError, match="3 class names for n_classes=4"):
        selection_report(truth, pred, [0], C, class_names=("a", "b", "c"))


def test_pred_of_the_selected_samples_only(rng):
    truth, pred = _masks(rng)
    sel = [7, 1, 4]
    full = selection_report(truth, pred, sel, C)
    only = selection_report(truth, pred[[1, 4, 7]], sel, C)  # in the order of the sorted selection
    np.testing.assert_array_equal(only.confusion, full.confusion)
    np.testing.assert_array_equal(only.worst, full.worst)
    np.testing.assert_array_equal(only.indices, [1, 4, 7])
    with pytest.raises(ValueError, match="all 12 samples, or the 3 selected samples only"):
        selection_report(truth, pred[:5], sel, C)
