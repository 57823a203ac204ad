"""``ExplorerSession`` driven from plain Python: no widget, no browser.

References: the interpolated latent and its mask computed by hand from the
model's own encode/decode, scikit-learn's PCA for the map, a brute-force
nearest-neighbour loop for the strip's neighbours.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import traitlets
from toy import iou_loop

from latent_widgets.analysis.interpolation import steps
from latent_widgets.session import ExplorerSession


def lerp_mask(model, ds, a: int, b: int, alpha: float) -> np.ndarray:
    """The mask at ``alpha`` on the straight line between two samples' latents, by hand."""
    z = model.encode(ds.images[[a, b]]).latents.astype(np.float64)
    zt = ((1 - alpha) * z[0] + alpha * z[1]).astype(np.float32)
    return model.decode(zt[None]).argmax(-1)[0]


def test_the_session_imports_no_widget_library() -> None:
    code = (
        "import sys, latent_widgets.session.explorer_session; "
        "bad = [m for m in ('ipywidgets', 'bqplot', 'IPython.display') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_script_drives_endpoints_alpha_and_maps(model, ds) -> None:
    s = ExplorerSession(model, ds, asynchronous=False)
    assert s.ready and s.busy == () and (s.index_a, s.index_b) == (0, len(ds) - 1)
    s.index_a, s.index_b = 3, 17
    s.alpha = 0.37
    assert s.current.alpha == pytest.approx(0.37) and not s.current.cached
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 3, 17, 0.37))
    # a strip step is served from the strip, no decode
    decodes = s.ondemand_decodes
    s.alpha = float(steps(12)[4])
    assert s.current.cached and s.ondemand_decodes == decodes
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 3, 17, float(steps(12)[4])))

    # the strip's nearest neighbours, against a brute-force loop
    data = s.latents.reshape(len(ds), -1).astype(np.float64)
    for step, j in zip(s.strip.steps, s.strip.neighbor_indices, strict=True):
        d = [np.linalg.norm(step.latent.reshape(-1) - row) for row in data]
        assert j == int(np.argmin(d))

    # the PCA map: scikit-learn's, up to the sign of each axis
    from sklearn.decomposition import PCA

    ref = PCA(2, random_state=0).fit_transform(data)
    pts = s.maps["pca"]
    for k in range(2):
        assert min(np.abs(pts[:, k] - ref[:, k]).max(), np.abs(pts[:, k] + ref[:, k]).max()) < 1e-3
    # the path on the map is the fitted projection's transform of the strip
    np.testing.assert_allclose(s.path_points, s.place(s.strip.latents, "pca"))
    s.map_method = "tsne"
    assert set(s.maps) == {"pca", "tsne"} and s.path_points.shape == (12, 2)
    np.testing.assert_allclose(s.path_points, s.place(s.strip.latents, "tsne"))


def test_the_strip_follows_the_step_count(model, ds) -> None:
    # The cache key holds the step count and the decode uses that count.
    s = ExplorerSession(model, ds, index_a=2, index_b=9, asynchronous=False)
    assert len(s.strip.steps) == 12
    s.n_steps = 5
    np.testing.assert_allclose(s.strip.alphas, steps(5))
    assert s.strip.fractions.shape == (5, 12) and s.strip.key.n_steps == 5
    s.n_steps = 12
    np.testing.assert_allclose(s.strip.alphas, steps(12))
    for step in s.strip.steps:
        np.testing.assert_array_equal(step.mask, lerp_mask(model, ds, 2, 9, step.alpha))


def test_the_scrub_frames_are_the_path_on_a_fine_grid(model, ds) -> None:
    s = ExplorerSession(model, ds, index_a=2, index_b=9, asynchronous=False, scrub_steps=33)
    f = s.frames
    assert f.key == (2, 9, "linear", "image") and f.masks.shape == (33, 48, 64) and f.masks.dtype == np.uint8
    np.testing.assert_allclose(f.alphas, np.linspace(0, 1, 33))
    for i in (0, 5, 17, 32):
        np.testing.assert_array_equal(f.masks[i], lerp_mask(model, ds, 2, 9, float(f.alphas[i])))
    assert f.frame_at(0.0) == 0 and f.frame_at(1.0) == 32 and f.frame_at(0.51) == 16
    # a new path gets its own grid; the old one is kept for a return
    s.index_b = 20
    assert s.frames.key == (2, 20, "linear", "image")
    s.index_b = 9
    assert s.frames is f
    # the step count of the strip does not change the grid
    s.n_steps = 5
    assert s.frames is f
    assert ExplorerSession(model, ds, asynchronous=False, scrub_steps=0).frames is None


def test_bad_input_names_the_problem(model, ds) -> None:
    s = ExplorerSession(model, ds, asynchronous=False)
    with pytest.raises(traitlets.TraitError, match=r"index_b=99 is out of range for 24 samples \(0\.\.23\)"):
        s.index_b = 99
    with pytest.raises(traitlets.TraitError, match="path_method 'cubic': choose one of"):
        s.path_method = "cubic"
    with pytest.raises(traitlets.TraitError, match="map_method 'mds': choose one of"):
        s.map_method = "mds"
    with pytest.raises(ValueError, match="needs a model, or latents"):
        ExplorerSession(None, ds)


# Each settable field: a value refused, and what the message must say (the field, the value, the valid range).
_INVALID = [
    ("index_a", 10_000, r"index_a=10000 is out of range for 24 samples \(0\.\.23\)"),
    ("index_a", -1, r"index_a=-1 is out of range for 24 samples \(0\.\.23\)"),
    ("index_a", True, r"index_a=True is not a sample index: pass an int in 0\.\.23"),
    ("index_b", 24, r"index_b=24 is out of range for 24 samples \(0\.\.23\)"),
    ("selected", 99, r"selected=99 is out of range for 24 samples \(0\.\.23\)"),
    ("selected", False, r"selected=False is not a sample index"),
    ("alpha", 1.5, r"alpha=1\.5 is outside \[0, 1\] \(0: sample index_a, 1: sample index_b\)"),
    ("alpha", -0.01, r"alpha=-0\.01 is outside \[0, 1\]"),
    ("alpha", float("nan"), r"alpha=nan is outside \[0, 1\]"),
    ("alpha", "0.5", r"'alpha' trait .* expected a float, not the str '0\.5'"),
    ("n_steps", 1, r"n_steps=1: the strip has 2 to 64 steps \(an int in 2\.\.64\)"),
    ("n_steps", 65, r"n_steps=65: the strip has 2 to 64 steps"),
    ("path_method", "cubic", r"path_method 'cubic': choose one of \('linear', 'spherical'\)"),
    ("skip_policy", "none", r"skip_policy 'none': choose one of \('image', 'skips', 'hold_a', 'hold_b'\)"),
    ("map_method", "mds", r"map_method 'mds': choose one of \('pca',\)"),
    ("color_by", "IoU: Unicorn", r"color_by 'IoU: Unicorn': choose one of \('group', 'dominant class'"),
    ("map_points", "grid", r"map_points 'grid': choose one of \('flatten', 'pooled', 'cells'\)"),
    ("selection", [3, 24], r"selection: indices \[24\] are out of range for 24 samples \(0\.\.23\)"),
    ("selected_cell", (0, 0), r"selected_cell=\(0, 0\): a cell is selected only on a map of cells"),
]
# On a map of cells (a 12 x 16 latent grid).
_INVALID_CELLS = [
    (
        "selected_cell",
        (12, 0),
        r"selected_cell=\(12, 0\) is outside the 12x16 latent grid \(row 0\.\.11, col 0\.\.15\)",
    ),
    ("selected_cell", (1.5, 2), r"selected_cell=\(1\.5, 2\): pass \(row, col\), two ints in 0\.\.11 and 0\.\.15"),
    ("selected_cell", 7, r"selected_cell=7: pass \(row, col\)"),
    ("color_by", "group", None),  # valid: the check below is that the cell validation does not reject it
]


@pytest.mark.parametrize(("field", "value", "message"), _INVALID + _INVALID_CELLS)
def test_each_field_is_validated_on_assignment(model, ds, field, value, message) -> None:
    kw = dict(asynchronous=False, scrub_steps=0, methods=("pca",))
    kw["map_points"] = "cells" if (field, value, message) in _INVALID_CELLS else "flatten"
    s = ExplorerSession(model, ds, **kw)
    before = getattr(s, field)
    if message is None:
        setattr(s, field, value)
        assert getattr(s, field) == value
        return
    with pytest.raises(traitlets.TraitError, match=message):
        setattr(s, field, value)
    after = getattr(s, field)
    assert np.array_equal(after, before) if field == "selection" else after == before, "the refused value was kept"
    # The same value given to the constructor is refused with the same message.
    with pytest.raises(traitlets.TraitError, match=message):
        ExplorerSession(model, ds, **{**kw, field: value})


def test_valid_values_of_other_types_are_taken_as_ints(model, ds) -> None:
    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, methods=("pca",), map_points="cells")
    s.index_a, s.selected, s.n_steps, s.selected_cell = np.int64(3), np.int32(5), np.int16(7), (np.int64(2), 4)
    assert (s.index_a, s.selected, s.n_steps, s.selected_cell) == (3, 5, 7, (2, 4))
    assert all(type(v) is int for v in (s.index_a, s.selected, s.n_steps, *s.selected_cell))
    s.alpha = np.float64(0.25)
    assert s.alpha == 0.25 and s.current.alpha == pytest.approx(0.25)


def test_from_json_reports_every_invalid_field_at_once(model, ds) -> None:
    import json

    from latent_widgets.session import SessionStateError

    doc = json.loads(ExplorerSession(model, ds, asynchronous=False, scrub_steps=0).to_json())
    doc.update(index_a=99, alpha=3, n_steps=0, color_by="x", selection=[1, 30], ignore_index=77)
    with pytest.raises(SessionStateError) as err:
        ExplorerSession.from_json(json.dumps(doc), model, ds, asynchronous=False)
    msg = str(err.value)
    assert msg.startswith("6 invalid session settings: ") and len(err.value.errors) == 6
    for part in (
        "ignore_index=77 is not a class id of this dataset (0..11)",
        "index_a=99 is out of range for 24 samples (0..23)",
        "alpha=3.0 is outside [0, 1]",
        "n_steps=0: the strip has 2 to 64 steps",
        "color_by 'x': choose one of",
        "selection: indices [30] are out of range",
    ):
        assert part in msg, part
    assert isinstance(err.value, ValueError) and isinstance(err.value, traitlets.TraitError)
    # One invalid field raises its own error; a file that lacks fields says which.
    doc = json.loads(ExplorerSession(model, ds, asynchronous=False, scrub_steps=0).to_json())
    with pytest.raises(traitlets.TraitError, match=r"index_b=24 is out of range") as err:
        ExplorerSession.from_json(json.dumps({**doc, "index_b": 24}), model, ds, asynchronous=False)
    assert not isinstance(err.value, SessionStateError)
    del doc["alpha"], doc["map"]["methods"]
    with pytest.raises(ValueError, match=r"the session file lacks \['alpha', 'map\.methods'\]"):
        ExplorerSession.from_json(json.dumps(doc), model, ds, asynchronous=False)


class StrictToy:
    """The toy model, refusing images of another size than its input (as LatentModel does)."""

    def __init__(self, model, input_shape) -> None:
        self._m, self.input_shape = model, tuple(input_shape)

    def __getattr__(self, name):
        return getattr(self._m, name)

    def encode(self, images, batch_size=32, progress=None):
        if tuple(np.shape(images)[1:]) != self.input_shape:
            raise ValueError(f"images of shape {np.shape(images)[1:]}; this model takes {self.input_shape}")
        return self._m.encode(images)


def test_wait_raises_the_startup_error_once_and_errors_keep_it(model, ds) -> None:
    strict = StrictToy(model, (32, 32, 3))
    s = ExplorerSession(strict, ds, methods=("pca",), scrub_steps=0)
    deadline = time.monotonic() + 30
    while not s.errors and time.monotonic() < deadline:  # the encode fails before wait() is called
        time.sleep(0.01)
    assert s.busy == () and not s.ready
    with pytest.raises(ValueError, match=r"images of shape \(48, 64, 3\); this model takes \(32, 32, 3\)") as err:
        s.wait()
    assert "in the session's 'encode' job" in err.value.__notes__
    assert s.errors == (err.value,)
    s.wait()  # raised once: nothing newer failed
    assert s.errors == (err.value,)  # and kept
    s.close()
    # Several failures: the first is raised, all are kept; cleared errors are not raised again.
    s = ExplorerSession(model, ds, methods=("pca",), scrub_steps=0)
    s.wait()
    s.jobs.map_lane.submit("boom 1", lambda: 1 / 0)
    s.jobs.model_lane.submit("boom 2", lambda: [][0])
    with pytest.raises((ZeroDivisionError, IndexError)) as err:
        s.wait()
    assert err.value is s.errors[0] and len(s.errors) == 2
    assert isinstance(s.jobs.model_lane.submit("boom 3", lambda: [][0]).exception(timeout=10), IndexError)
    s.clear_errors()
    s.wait()
    assert s.errors == ()
    s.close()


class SlowDecodes:
    """A model whose single-sample decodes take ``delay`` seconds (the slider's on-demand path)."""

    def __init__(self, model, delay: float = 0.2) -> None:
        self._m, self.delay, self.calls = model, delay, 0

    def __getattr__(self, name):
        return getattr(self._m, name)

    def decode_with_masks(self, latents, skips=None, batch_size=32):
        if len(latents) == 1:
            self.calls += 1
            time.sleep(self.delay)
        return self._m.decode_with_masks(latents, skips, batch_size)


def test_in_the_background_the_newest_alpha_wins(model, ds) -> None:
    slow = SlowDecodes(model)
    # (no grid, no predictions: their chunks are single decodes too, 0.2 s each in this model)
    s = ExplorerSession(slow, ds, index_a=1, index_b=17, scrub_steps=0, predict=False)
    s.wait()
    slow.calls, before = 0, s.ondemand_decodes  # (the start's single-sample decodes: the background predictions)
    seen: list[float] = []
    s.observe(lambda c: seen.append(c["new"].alpha), "current")
    for alpha in (0.11, 0.23, 0.31, 0.42, 0.57):
        s.alpha = alpha
    assert "decode" in s.busy  # the first one is running
    s.wait()
    assert s.current.alpha == pytest.approx(0.57) and s.busy == ()
    # queued requests that were no longer the newest were skipped, not decoded
    assert slow.calls < 5 and s.ondemand_decodes - before == slow.calls
    assert seen == sorted(seen)  # an older result never replaced a newer one
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 1, 17, 0.57))
    s.close()


def test_decoding_alphas_reads_each_endpoint_once_from_a_lazy_dataset(model, ds) -> None:
    from latent_widgets import synthetic_road_scenes

    lazy = synthetic_road_scenes(24, size=(48, 64), seed=0, frames_per_drive=12, lazy=True)
    source, rows_read = lazy.images.source, []
    read = source.read

    def counting_read(indices, field):
        if field == "images":
            rows_read.extend(np.asarray(indices).reshape(-1).tolist())
        return read(indices, field)

    source.read = counting_read
    s = ExplorerSession(model, lazy, index_a=1, index_b=17, asynchronous=False, scrub_steps=8, predict=False)
    rows_read.clear()  # the start: the dataset's encode, the strip and the grid
    for alpha in (0.11, 0.23, 0.31, 0.42, 0.57):
        s.alpha = alpha
        np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 1, 17, alpha))
    assert s.ondemand_decodes >= 5 and rows_read == []  # a scene rendered per alpha before: 2 reads each
    s.index_b = 9  # a new path: its endpoints are read once, for its strip, grid and slider together
    s.alpha = 0.37
    assert sorted(rows_read) == [1, 9]
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 1, 9, 0.37))
    s.close()


def test_a_given_map_places_the_path_once_the_dataset_is_encoded(model, ds) -> None:
    # The given map is drawn before the dataset is encoded, and the strip may arrive first: its path is
    # placed (among the samples' latents) once they are there, not failed in the background.
    rng = np.random.default_rng(3)
    pts = np.round(rng.normal(size=(len(ds), 2)), 3)
    s = ExplorerSession(model, ds, index_a=1, index_b=17, projections={"pca": pts}, predict=False)
    s.wait()
    assert s.ready and s.strip is not None and s.path_points is not None
    # Reference: each step at the distance-weighted mean of its 3 nearest samples, by a brute-force loop.
    z = model.encode(ds.images).latents.reshape(len(ds), -1).astype(np.float64)
    expected = []
    for step in np.asarray(s.strip.latents, np.float64).reshape(len(s.strip.latents), -1):
        d = np.sqrt(((z - step) ** 2).sum(axis=1))
        near = np.argsort(d, kind="stable")[:3]
        w = 1.0 / np.maximum(d[near], 1e-9)
        expected.append((pts[near] * w[:, None]).sum(axis=0) / w.sum())
    np.testing.assert_allclose(s.path_points, np.array(expected), rtol=1e-4, atol=1e-4)
    s.close()


def test_a_map_fit_does_not_hold_up_the_slider(model, ds, monkeypatch) -> None:
    from latent_widgets.analysis import projection

    s = ExplorerSession(model, ds, index_a=1, index_b=17)
    s.wait()
    fitting, release = threading.Event(), threading.Event()
    real_fit = projection.fit_projection

    def slow_fit(*args, **kwargs):
        fitting.set()
        release.wait(30)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(projection, "fit_projection", slow_fit)
    s.map_method = "tsne"
    assert fitting.wait(10)
    assert "map: tsne" in s.busy and s.points is None  # the new map is still being fitted
    s.alpha = 0.37
    deadline = time.monotonic() + 10
    while (s.current is None or s.current.alpha != pytest.approx(0.37)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.current.alpha == pytest.approx(0.37), "the decode waited for the map fit"
    assert "map: tsne" in s.busy
    release.set()
    s.wait(timeout=300)
    assert s.points is not None and s.busy == ()
    s.close()


def test_background_errors_are_kept_and_raised_by_wait(model, ds, monkeypatch) -> None:
    from latent_widgets.analysis import projection

    s = ExplorerSession(model, ds)
    s.wait()

    def broken(*args, **kwargs):
        raise ImportError("umap-learn is not installed")

    monkeypatch.setattr(projection, "fit_projection", broken)
    s.map_method = "umap"
    with pytest.raises(ImportError, match="umap-learn is not installed"):
        s.wait()
    assert [type(e) for e in s.errors] == [ImportError]
    assert s.map_method == "pca"  # back to the map that is drawn
    s.clear_errors()
    assert s.errors == ()
    s.close()


def test_predict_auto_predicts_all_masks_only_below_the_pixel_budget(model, ds, monkeypatch) -> None:
    import latent_widgets.session.predictor as predictor_module

    small = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert small.predictions is not None and small.predictions.dtype == np.uint8
    # against the model's own prediction, one call for all images
    np.testing.assert_array_equal(small.predictions, model.predict_masks(ds.images))

    h, w = ds.image_size
    monkeypatch.setattr(predictor_module, "PREDICT_ALL_PIXELS", len(ds) * h * w - 1)
    large = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert large.ready and large.predictions is None
    forced = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, predict=True)
    assert forced.predictions is not None
    with pytest.raises(ValueError, match="predict='yes'"):
        ExplorerSession(model, ds, asynchronous=False, predict="yes")


# ---------------------------------------------------------------------------- selection, colours, sessions


def test_the_selection_is_sorted_unique_and_range_checked(model, ds) -> None:
    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert s.selection.dtype == np.int64 and s.selection.tolist() == [] and s.report is None
    seen: list[list[int]] = []
    s.observe(lambda c: seen.append(c["new"].tolist()), "selection")
    s.selection = [9, 3, 3, 17]
    assert s.selection.tolist() == [3, 9, 17] and s.selection.dtype == np.int64
    s.selection = np.array([17, 9, 3])  # the same selection: no notification
    mask = np.zeros(len(ds), bool)
    mask[[1, 4]] = True
    s.selection = mask
    assert s.selection.tolist() == [1, 4]
    s.selection = None
    assert seen == [[3, 9, 17], [1, 4], []]
    with pytest.raises(ValueError, match="read-only"):
        s.selection[:] = 0  # only assignment changes it (and notifies)
    with pytest.raises(traitlets.TraitError, match=r"indices \[24, 99\] are out of range for 24 samples \(0\.\.23\)"):
        s.selection = [2, 24, 99]
    with pytest.raises(traitlets.TraitError, match=r"out of range"):
        s.selection = [-1]
    with pytest.raises(traitlets.TraitError, match="boolean mask needs one value per sample"):
        s.selection = np.ones(5, bool)
    with pytest.raises(traitlets.TraitError, match="expected sample indices"):
        s.selection = [1.5]
    assert s.selection.tolist() == []


def test_colour_fields_are_validated_and_computed(model, ds) -> None:
    from latent_widgets.analysis.map_quality import knn_preservation, trustworthiness
    from latent_widgets.analysis.metrics import per_sample_iou

    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert s.color_by == "group"  # the dataset has drives
    fields = s.color_fields()
    assert fields[:3] == ("group", "dominant class", "mean IoU") and "IoU: Road" in fields
    assert {"trustworthiness", "kNN preservation", "split", "none"} <= set(fields)
    with pytest.raises(traitlets.TraitError, match="color_by 'IoU: Unicorn': choose one of"):
        s.color_by = "IoU: Unicorn"
    # per-sample IoU of one class against a per-sample loop over the metric
    iou = per_sample_iou(s.predictions, ds.masks, ds.n_classes)
    road = list(ds.class_names).index("Road")
    f = s.color_values("IoU: Road")
    assert f.kind == "continuous"
    np.testing.assert_allclose(f.values, iou[:, road], equal_nan=True)
    np.testing.assert_allclose(s.color_values("mean IoU").values, np.nanmean(iou, axis=1))
    dom = s.color_values("dominant class")
    assert dom.categorical and dom.values.tolist() == ds.class_fractions().argmax(axis=1).tolist()
    # per-point trustworthiness of the current map: its mean is the global figure
    x = s.latents.reshape(len(ds), -1).astype(np.float64)
    s.color_by = "trustworthiness"
    t = s.color_values().values
    assert t.shape == (len(ds),) and np.mean(t) == pytest.approx(trustworthiness(x, s.points, 5))
    k = s.color_values("kNN preservation").values
    assert np.mean(k) == pytest.approx(knn_preservation(x, s.points, 10))
    # another map gets its own values
    s.map_method = "tsne"
    t2 = s.color_values().values
    assert np.mean(t2) == pytest.approx(trustworthiness(x, s.points, 5)) and not np.allclose(t, t2)


def test_map_quality_runs_in_the_background_and_not_above_the_size_limit(model, ds, monkeypatch) -> None:
    import latent_widgets.session.quality as quality_module

    s = ExplorerSession(model, ds, scrub_steps=0)
    s.wait()
    s.color_by = "trustworthiness"
    s.wait()
    assert set(s.quality) == {"pca"} and not s.color_values().note
    monkeypatch.setattr(quality_module, "POINT_QUALITY_MAX", len(ds) - 1)
    f = s.color_values("kNN preservation")
    assert "not available at this size" in f.note and np.isnan(f.values).all()
    s.close()


def test_the_selection_report_is_the_failures_report_and_sklearns_confusion(model, ds) -> None:
    from sklearn.metrics import confusion_matrix

    from latent_widgets.analysis.failures import selection_report

    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    s.selection = [11, 2, 5, 7]
    r = s.report
    assert r is not None and r.indices.tolist() == [2, 5, 7, 11]
    ref = selection_report(ds.masks, s.predictions, [2, 5, 7, 11], ds.n_classes, class_names=ds.class_names)
    np.testing.assert_array_equal(r.confusion, ref.confusion)
    np.testing.assert_array_equal(r.worst, ref.worst)
    assert r.mean_iou == pytest.approx(ref.mean_iou) and r.class_names == tuple(ds.class_names)
    sel = [2, 5, 7, 11]
    cm = confusion_matrix(ds.masks[sel].ravel(), s.predictions[sel].ravel(), labels=range(ds.n_classes))
    np.testing.assert_array_equal(r.confusion, cm)
    whole = confusion_matrix(ds.masks.ravel(), s.predictions.ravel(), labels=range(ds.n_classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        iou_all = np.diag(whole) / (whole.sum(0) + whole.sum(1) - np.diag(whole))
    assert r.mean_iou_all == pytest.approx(np.nanmean(iou_all))
    s.selection = []
    assert s.report is None
    with pytest.raises(ValueError, match="the selection is empty"):
        s.selection_report()
    # without predictions, the selected samples are predicted
    lazy = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, predict=False)
    assert lazy.predictions is None
    lazy.selection = sel
    pred = model.predict_masks(ds.images[sel])
    np.testing.assert_array_equal(
        lazy.report.confusion, confusion_matrix(ds.masks[sel].ravel(), pred.ravel(), labels=range(ds.n_classes))
    )
    np.testing.assert_array_equal(lazy.report.worst, r.worst)


def test_ignore_index_leaves_the_class_out_of_the_sessions_scores(model, ds) -> None:
    import dataclasses
    import json

    from sklearn.metrics import confusion_matrix

    from latent_widgets.latents.cells import cell_classes

    unlabelled = ds.class_names.index("Unlabelled")
    masks = ds.masks.copy()
    masks[3, :30] = unlabelled  # a sample mostly Unlabelled: its dominant class must be another
    data = dataclasses.replace(ds, masks=masks, ignore_index=unlabelled)  # as load_camvid sets it
    s = ExplorerSession(model, data, asynchronous=False, scrub_steps=0)
    scored = ExplorerSession(model, data, asynchronous=False, scrub_steps=0, ignore_index=None)
    assert s.ignore_index == unlabelled and scored.ignore_index is None
    sel = [2, 5, 7, 11, 20]
    assert (data.masks[sel] == unlabelled).sum() > 500  # the test means something
    s.selection = scored.selection = sel
    t, p = data.masks[sel].ravel(), s.predictions[sel].ravel()
    keep = t != unlabelled
    np.testing.assert_array_equal(s.report.confusion, confusion_matrix(t[keep], p[keep], labels=range(12)))
    np.testing.assert_array_equal(scored.report.confusion, confusion_matrix(t, p, labels=range(12)))
    assert np.isnan(s.report.iou[unlabelled]) and not np.isnan(scored.report.iou[unlabelled])
    whole = iou_loop(data.masks.ravel(), s.predictions.ravel(), 12, unlabelled)
    assert s.report.mean_iou_all == pytest.approx(np.nanmean(whole))
    # "mean IoU" and "IoU: <class>" colours, sample by sample, against the loop
    loop = np.stack([iou_loop(data.masks[i], s.predictions[i], 12, unlabelled) for i in range(len(data))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a sample with no scored class: NaN, as the session's
        mean_loop = np.nanmean(loop, axis=1)
    np.testing.assert_allclose(s.color_values("mean IoU").values, mean_loop)
    np.testing.assert_allclose(s.color_values("IoU: Car").values, loop[:, ds.class_names.index("Car")])
    assert "IoU: Unlabelled" not in s.color_fields() and "IoU: Unlabelled" in scored.color_fields()
    with pytest.raises(traitlets.TraitError, match="color_by 'IoU: Unlabelled'"):
        s.color_by = "IoU: Unlabelled"
    # "dominant class": the most frequent class among the scored ones, against a loop over the masks
    dominant = []
    for m in data.masks:
        counts = np.bincount(m.ravel(), minlength=12)
        counts[unlabelled] = -1
        dominant.append(int(np.argmax(counts)))
    assert s.color_values("dominant class").values.tolist() == dominant
    plain = scored.color_values("dominant class").values
    assert plain.tolist() == data.class_fractions().argmax(axis=1).tolist()
    assert plain[3] == unlabelled and dominant[3] != unlabelled  # the test means something
    # the cells' classes leave it out too
    s.map_points = "cells"
    np.testing.assert_array_equal(s.cell_classes(), cell_classes(data.masks, s.grid, 12, ignore_index=unlabelled))
    # saved and restored (an explicit None too, on data that has an ignore_index)
    for session in (s, scored):
        text = session.to_json()
        assert json.loads(text)["ignore_index"] == session.ignore_index
        back = ExplorerSession.from_json(text, model, data, asynchronous=False, scrub_steps=0)
        assert back.ignore_index == session.ignore_index
        np.testing.assert_array_equal(back.report.confusion, session.report.confusion)
        assert back.to_json() == text
    for bad in (12, -1, "Unlabelled", 1.5):
        with pytest.raises(ValueError, match="ignore_index"):
            ExplorerSession(model, data, asynchronous=False, ignore_index=bad)


def test_on_camvid_the_session_leaves_unlabelled_out_of_its_report(camvid_root) -> None:
    from sklearn.metrics import confusion_matrix

    from latent_widgets import load_camvid

    data = load_camvid(camvid_root, "val", size=(24, 32), progress=False)
    rng = np.random.default_rng(0)
    # predictions: the truth with a quarter of the pixels relabelled at random (Unlabelled ones included)
    pred = np.where(rng.random(data.masks.shape) < 0.25, rng.integers(0, 12, data.masks.shape), data.masks)
    s = ExplorerSession(
        None, data, latents=rng.normal(size=(len(data), 8)), predictions=pred, asynchronous=False, methods=("pca",)
    )
    assert s.ignore_index == 11 and "IoU: Unlabelled" not in s.color_fields()
    sel = np.flatnonzero((data.masks == 11).any(axis=(1, 2)))[:12]
    assert len(sel) == 12
    s.selection = sel
    t, p = data.masks[sel].ravel(), pred[sel].ravel()
    cm = confusion_matrix(t[t != 11], p[t != 11], labels=range(12))
    np.testing.assert_array_equal(s.report.confusion, cm)
    assert s.report.confusion[11].sum() == 0 and s.report.confusion[:, 11].sum() > 0  # predicted Unlabelled: wrong
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    iou[11] = np.nan
    assert s.report.mean_iou == pytest.approx(np.nanmean(iou))


def _configured(model, ds, **kwargs) -> ExplorerSession:
    s = ExplorerSession(
        model, ds, asynchronous=False, scrub_steps=0, projection_kwargs={"tsne": {"perplexity": 5.0}}, **kwargs
    )
    s.map_method = "tsne"
    s.color_by = "IoU: Car"
    s.index_a, s.index_b = 4, 19
    s.n_steps = 7
    s.path_method = "spherical"
    s.skip_policy = "hold_a"
    s.alpha = 0.41
    s.selection = [3, 8, 9, 21]
    s.selected = 8
    return s


FIELDS = (
    "map_method",
    "methods",
    "map_points",
    "color_by",
    "index_a",
    "index_b",
    "n_steps",
    "path_method",
    "skip_policy",
    "alpha",
    "selected",
    "selected_cell",
    "ignore_index",
)


def test_a_json_round_trip_reproduces_every_field_and_the_map(model, ds, tmp_path) -> None:
    import json

    s = _configured(model, ds)
    text = s.to_json()
    doc = json.loads(text)
    assert doc["format"] == "latent-widgets-session" and doc["library_version"]
    assert doc["map"]["projection_kwargs"] == {"tsne": {"perplexity": 5.0}}
    r = ExplorerSession.from_json(text, model, ds, asynchronous=False, scrub_steps=0)
    for name in FIELDS:
        assert getattr(r, name) == getattr(s, name), name
    assert r.selection.tolist() == [3, 8, 9, 21]
    assert r.map_state.projection_kwargs == s.map_state.projection_kwargs
    np.testing.assert_array_equal(r.points, s.points)  # the same t-SNE map
    np.testing.assert_array_equal(r.path_points, s.path_points)
    np.testing.assert_array_equal(r.current.mask, s.current.mask)
    np.testing.assert_array_equal(r.report.confusion, s.report.confusion)
    assert r.to_json() == text  # and saving it again gives the same file
    # a map of cells and its clicked cell too (PCA: a t-SNE of every cell takes long)
    s.map_method = "pca"
    s.map_points = "cells"
    s.click_point(s.points_of_samples([5])[2 * s.grid[1] + 3])
    cells_text = s.to_json()
    assert json.loads(cells_text)["selected_cell"] == [2, 3]
    r = ExplorerSession.from_json(cells_text, model, ds, asynchronous=False, scrub_steps=0)
    for name in FIELDS:
        assert getattr(r, name) == getattr(s, name), name
    assert (r.map_points, r.selected, r.selected_cell) == ("cells", 5, (2, 3))
    np.testing.assert_array_equal(r.points, s.points)
    assert r.to_json() == cells_text
    # a path to a session.json works too
    (tmp_path / "session.json").write_text(text)
    assert ExplorerSession.from_json(str(tmp_path / "session.json"), model, ds, asynchronous=False).selected == 8


def test_a_mismatched_model_or_dataset_is_refused(model, ds) -> None:
    from toy import ToyLatentModel

    from latent_widgets import synthetic_road_scenes
    from latent_widgets.session import SessionMismatchError

    text = _configured(model, ds).to_json()
    other_model = ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, seed=7)
    with pytest.raises(SessionMismatchError, match=r"the model differs") as err:
        ExplorerSession.from_json(text, other_model, ds, asynchronous=False)
    assert "data" not in str(err.value).split(":", 1)[1].split(".")[0]
    other_data = synthetic_road_scenes(24, size=(48, 64), seed=5, frames_per_drive=12)
    with pytest.raises(SessionMismatchError, match=r"the data differ \(saved \w+, 24 samples") as err:
        ExplorerSession.from_json(text, model, other_data, asynchronous=False)
    assert "model differs" not in str(err.value)
    with pytest.raises(ValueError, match="not a latent-widgets session file"):
        ExplorerSession.from_json('{"a": 1}', model, ds)


def test_export_writes_the_session_and_the_figures(model, ds, tmp_path) -> None:
    import xml.etree.ElementTree as ET

    from PIL import Image

    s = _configured(model, ds)
    paths = s.export(tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        ["session.json", "map.png", "map.svg", "strip.png", "strip.svg", "confusion.png", "confusion.svg"]
    )
    for p in paths:
        assert p.is_file() and p.parent == tmp_path / "out"
        if p.suffix == ".png":
            with Image.open(p) as im:
                im.load()
                assert im.size[0] > 100
        elif p.suffix == ".svg":
            assert ET.parse(p).getroot().tag.endswith("svg")
    assert (
        ExplorerSession.from_json(
            (tmp_path / "out" / "session.json").read_text(), model, ds, asynchronous=False
        ).selected
        == 8
    )
    s.selection = None
    assert "confusion.png" not in {p.name for p in s.export(tmp_path / "bare")}


def test_pooled_map_points_fit_the_grid_average(model, ds) -> None:
    from sklearn.decomposition import PCA

    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    flat = s.points
    s.map_points = "pooled"
    pooled = s.latents.reshape(len(ds), -1, s.latents.shape[-1]).mean(axis=1)
    ref = PCA(2, random_state=0).fit_transform(pooled.astype(np.float64))
    for k in range(2):
        assert min(np.abs(s.points[:, k] - ref[:, k]).max(), np.abs(s.points[:, k] + ref[:, k]).max()) < 1e-3
    assert set(s.maps) == {"pca", "pooled:pca"} and s.path_points.shape == (12, 2)
    s.map_points = "flatten"
    assert s.points is flat
    maps_only = ExplorerSession(None, ds, latents=s.latents.reshape(len(ds), -1), asynchronous=False, methods=("pca",))
    with pytest.raises(traitlets.TraitError, match=r"map_points 'cells' makes a point of each cell.*use 'flatten'"):
        maps_only.map_points = "cells"


def test_a_map_of_cells_has_a_point_per_latent_cell(model, ds) -> None:
    from sklearn.decomposition import PCA

    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, methods=("pca",))
    s.selection = [2, 3]
    s.map_points = "cells"
    n, (h, w) = len(ds), s.grid
    z = np.asarray(s.latents, np.float64)
    # every cell of every latent, sample-major then row-major (a brute-force loop), fitted by PCA
    rows = np.array([z[i, r, c] for i in range(n) for r in range(h) for c in range(w)])
    ref = PCA(2, random_state=0).fit_transform(rows)
    assert s.points.shape == (n * h * w, 2) == (s.n_points(), 2)
    for k in range(2):
        assert min(np.abs(s.points[:, k] - ref[:, k]).max(), np.abs(s.points[:, k] + ref[:, k]).max()) < 1e-3
    assert s.path_points is None  # a path step is h * w points here: not drawn
    # colours: each cell's dominant true class over its mask block, by hand; sample fields broadcast to cells
    assert s.color_by == "cell class"
    f = s.color_values()
    k = 7 * h * w + 2 * w + 5  # sample 7, cell (2, 5)
    block = ds.masks[7][2 * 48 // h : 3 * 48 // h, 5 * 64 // w : 6 * 64 // w]
    assert f.categorical and f.values.shape == (n * h * w,)
    assert f.values[k] == np.bincount(block.ravel(), minlength=ds.n_classes).argmax()
    np.testing.assert_array_equal(s.color_values("mean IoU").values[7 * h * w : 8 * h * w], s.sample_iou()[7])
    # a point is (sample, row, col); a click shows the sample and its cell; a lasso selects samples
    assert s.point_sample(k) == (7, 2, 5)
    assert s.click_point(k) == 7 and (s.selected, s.selected_cell) == (7, (2, 5))
    assert s.select_points([0, 1, k, k + 1]).tolist() == [0, 7]
    np.testing.assert_array_equal(s.points_of_samples([1]), np.arange(h * w, 2 * h * w))
    with pytest.raises(IndexError, match="no point"):
        s.point_sample(n * h * w)
    with pytest.raises(traitlets.TraitError, match="outside the"):
        s.selected_cell = (h, 0)
    # back to samples: no selected cell, the sample field of the cells' colours
    s.map_points = "flatten"
    assert s.selected_cell is None and s.color_by == "dominant class" and s.points.shape == (n, 2)
    with pytest.raises(traitlets.TraitError, match="only on a map of cells"):
        s.selected_cell = (0, 0)


def test_quality_of_a_large_map_of_cells_is_computed_on_a_sample_of_cells(model, ds, monkeypatch) -> None:
    import latent_widgets.session.quality as quality_module
    from latent_widgets.analysis.map_quality import knn_preservation, trustworthiness
    from latent_widgets.data.colors import NO_VALUE_COLOUR
    from latent_widgets.widgets.map_colors import legend_html
    from latent_widgets.widgets.scatter import ProjectionScatter

    s = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, methods=("pca",))
    s.map_points = "cells"
    n_cells = s.n_points()
    monkeypatch.setattr(quality_module, "CELL_QUALITY_SAMPLE", 300)
    monkeypatch.setattr(quality_module, "POINT_QUALITY_MAX", 200)  # a map of cells is sampled, not refused
    assert n_cells > 300
    s.color_by = "trustworthiness"
    f = s.color_values()
    rows = quality_module.quality_rows(n_cells, "cells")
    assert len(rows) == 300 and np.array_equal(rows, np.unique(rows))
    np.testing.assert_array_equal(rows, quality_module.quality_rows(n_cells, "cells"))  # the same cells each time
    assert np.isfinite(f.values[rows]).all() and np.isnan(np.delete(f.values, rows)).all()
    assert f.note == f"on 300 random cells of {n_cells:,}, neighbours among them; others grey"
    # the sampled cells' values are those of the map restricted to them
    x, y = np.asarray(s.map_latents(), np.float64)[rows], s.points[rows]
    assert f.values[rows].mean() == pytest.approx(trustworthiness(x, y, 5))
    assert s.color_values("kNN preservation").values[rows].mean() == pytest.approx(knn_preservation(x, y, 10))
    # drawn: the cells left out are grey, not the bottom of the colour scale; the legend says why
    view = ProjectionScatter(session=s)
    codes, colours, names = view.color_codes()
    left_out = np.delete(np.arange(n_cells), rows)
    assert colours[-1] == NO_VALUE_COLOUR and names[-1] == "no value" and (codes[left_out] == len(colours) - 1).all()
    assert (codes[rows] < len(colours) - 1).all()
    legend = legend_html(s.color_values("trustworthiness"), view.color_codes())
    assert "300 random cells" in legend and "linear-gradient" in legend and NO_VALUE_COLOUR not in legend
    # samples above the limit are still refused (exact, or nothing)
    s.map_points = "flatten"
    monkeypatch.setattr(quality_module, "POINT_QUALITY_MAX", len(ds) - 1)
    assert "not available at this size" in s.color_values("trustworthiness").note


def test_cell_movement_follows_the_strip(model, ds) -> None:
    s = ExplorerSession(model, ds, index_a=3, index_b=17, n_steps=5, asynchronous=False, scrub_steps=0)
    m = s.cell_movement()
    z = s.strip.latents.astype(np.float64)
    h, w = s.grid
    for step in range(4):
        for r, c in ((0, 0), (h - 1, w - 1), (3, 7)):
            assert m.per_step[step, r, c] == pytest.approx(np.sqrt(((z[step + 1, r, c] - z[step, r, c]) ** 2).sum()))
    np.testing.assert_allclose(m.total, m.per_step.sum(0))
    s.n_steps = 6
    assert s.cell_movement().per_step.shape == (5, h, w)
    flat = ExplorerSession(None, ds, latents=s.latents.reshape(len(ds), -1), asynchronous=False, methods=("pca",))
    assert flat.cell_movement() is None and flat.grid is None


# ---------------------------------------------------------------------------- interactive work first


def _poll(condition, timeout: float = 20.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_alpha_is_answered_while_the_bulk_prediction_runs(model, ds) -> None:
    from toy import SlowToyModel

    from latent_widgets.analysis.metrics import per_sample_mean_iou

    # A prediction costs 0.1 s a sample (2.4 s for the 24): the bulk work runs in chunks of ~0.25 s.
    slow = SlowToyModel(model, decode_s=0.1)
    s = ExplorerSession(slow, ds, index_a=1, index_b=17, scrub_steps=0, methods=("pca",))
    answered: list[tuple[float, bool, int]] = []
    # (at the time each mask is shown, in the worker: were the predictions still being computed?)
    s.observe(lambda c: answered.append((c["new"].alpha, s.predictions is None, s.predicted)), "current")
    _poll(lambda: "predict" in s.progress and s.progress["predict"][0] > 0, what="the bulk prediction")
    field = s.color_values("mean IoU")
    assert field.note.startswith("predicting") and np.isnan(field.values).any()
    for alpha in (0.37, 0.61):
        s.alpha = alpha
        _poll(lambda alpha=alpha: s.current.alpha == pytest.approx(alpha), what=f"alpha {alpha}")
        np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 1, 17, alpha))
    shown = {round(a, 2): (pending, n) for a, pending, n in answered}
    assert shown[0.37][0] and shown[0.61][0], shown  # both answered before the bulk prediction was done
    assert shown[0.61][1] < len(ds)
    s.wait(timeout=60)
    assert s.busy == () and s.progress == {} and s.predicted == len(ds)
    for step in s.strip.steps:  # the strip, decoded in batches of 2 with the slider's decodes between
        np.testing.assert_array_equal(step.mask, lerp_mask(model, ds, 1, 17, step.alpha))
    # the bulk prediction completed: the model's own masks, and their mean IoU colours
    np.testing.assert_array_equal(s.predictions, model.predict_masks(ds.images))
    field = s.color_values("mean IoU")
    assert not field.note
    np.testing.assert_allclose(
        field.values, per_sample_mean_iou(s.predictions, ds.masks, ds.n_classes, ignore_index=s.ignore_index)
    )
    s.close()


def test_the_first_mask_needs_only_the_endpoints_encoded(model, ds) -> None:
    from toy import SlowToyModel

    slow = SlowToyModel(model, encode_s=0.05)  # the dataset's encoding: 1.2 s
    s = ExplorerSession(slow, ds, index_a=2, index_b=9, alpha=0.4, scrub_steps=9, methods=("pca",), predict=False)
    _poll(lambda: s.current is not None, what="the first mask")
    assert s.live and not s.ready  # the dataset is still being encoded
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 2, 9, 0.4))
    _poll(lambda: s.strip is not None, what="the strip")
    assert not s.strip.has_neighbors and s.strip.n_distinct == 0  # nearest samples: once the dataset is encoded
    s.wait(timeout=60)
    assert s.ready and s.strip.has_neighbors and s.frames.complete
    data = s.latents.reshape(len(ds), -1).astype(np.float64)
    for step, j in zip(s.strip.steps, s.strip.neighbor_indices, strict=True):
        assert j == int(np.argmin([np.linalg.norm(step.latent.reshape(-1) - row) for row in data]))
    s.close()


def test_closing_a_session_stops_its_bulk_work_at_the_next_chunk(model, ds) -> None:
    from toy import SlowToyModel

    slow = SlowToyModel(model, encode_s=0.1)  # the dataset's encoding: 2.4 s, in chunks of 2 samples
    s = ExplorerSession(slow, ds, scrub_steps=0, methods=("pca",))
    _poll(lambda: s.progress.get("encode dataset", (0, 0))[0] > 0, what="the dataset's encoding")
    s.close()
    time.sleep(0.5)  # (the chunk running when it was closed ends)
    encoded = slow.encoded
    time.sleep(0.6)
    assert slow.encoded == encoded < 2 + len(ds)  # no chunk after the close: the encoding stopped
    assert not s.ready


class CountingModel:
    """The toy, hashed as the toy (the predictions cache key), counting the latents it decodes."""

    def __init__(self, model) -> None:
        self._m, self.decoded, self.predicted = model, 0, 0

    def __getattr__(self, name):
        return getattr(self._m, name)

    def content_hash(self) -> str:
        from latent_widgets.session import model_hash

        return model_hash(self._m)

    def decode_with_masks(self, latents, skips=None, batch_size=32):
        self.decoded += len(latents)
        return self._m.decode_with_masks(latents, skips, batch_size)

    def predict_masks(self, images, batch_size=32):
        self.predicted += len(images)
        return self._m.predict_masks(images, batch_size)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_predictions_are_cached_for_the_next_session(model, ds, tmp_path, monkeypatch, asynchronous) -> None:
    monkeypatch.setenv("LATENT_WIDGETS_CACHE_DIR", str(tmp_path))
    first, second = CountingModel(model), CountingModel(model)
    kw = dict(scrub_steps=0, methods=("pca",), asynchronous=asynchronous)
    s1 = ExplorerSession(first, ds, **kw)
    s1.wait()
    s2 = ExplorerSession(second, ds, **kw)
    s2.wait()
    np.testing.assert_array_equal(s1.predictions, model.predict_masks(ds.images))
    np.testing.assert_array_equal(s2.predictions, s1.predictions)
    # the first session decoded the dataset's latents (no second encoder pass); the second, only its strip
    assert first.predicted == second.predicted == 0
    assert first.decoded - second.decoded == len(ds) and second.decoded <= 12 + 1
    assert list(tmp_path.glob("predictions/*.npz"))
    # another model (weights) is another key: predicted again
    other = CountingModel(type(model)(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, seed=5))
    s3 = ExplorerSession(other, ds, **kw)
    s3.wait()
    assert other.decoded >= len(ds)
    np.testing.assert_array_equal(s3.predictions, other._m.predict_masks(ds.images))
    for s in (s1, s2, s3):
        s.close()


def test_the_scrub_grid_is_decoded_nearest_to_the_slider_first(model, ds) -> None:
    partial: list[np.ndarray] = []
    s = ExplorerSession(model, ds, index_a=2, index_b=9, alpha=0.7, asynchronous=False, scrub_steps=33, predict=False)
    f = s.frames
    assert f.complete and f.ready is None
    # a new path: its grid arrives in batches, each the missing frames nearest to alpha, as partial grids
    s.observe(lambda c: partial.append(None if c["new"] is None else c["new"]), "frames")
    s.index_b = 11
    grids = [g for g in partial if g is not None]
    assert grids[-1].complete and all(not g.complete for g in grids[:-1]) and len(grids) == 3  # 16 + 16 + 1
    final = grids[-1].masks
    seen = np.zeros(33, bool)
    batches = []
    for g in grids:
        ready = np.ones(33, bool) if g.ready is None else g.ready
        assert not (seen & ~ready).any()  # a decoded frame stays decoded
        batches.append(np.flatnonzero(ready & ~seen))
        seen = ready
        np.testing.assert_array_equal(g.masks[ready], final[ready])  # the partial grid's frames are the final ones
        assert not g.masks[~ready].any()  # the others are not shown (zeros, marked not ready)
    dist = np.abs(np.linspace(0, 1, 33) - 0.7)
    for near, far in itertools.pairwise(batches):
        assert dist[near].max() <= dist[far].min()
    assert grids[0].ready[round(0.7 * 32)]  # the frame under the slider is in the first batch
    for i in (0, 22, 32):
        np.testing.assert_array_equal(final[i], lerp_mask(model, ds, 2, 11, i / 32))
