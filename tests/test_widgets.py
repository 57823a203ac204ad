"""The widgets without a browser: drive traits, assert on arrays and PNG bytes."""

from __future__ import annotations

import io
import sys
import threading
import time
import types
import warnings

import bqplot as bq
import numpy as np
import pytest
import traitlets
from PIL import Image
from toy import ToyLatentModel

from latent_widgets.data import colors
from latent_widgets.views import render
from latent_widgets.views.labels import label_boxes, place_labels
from latent_widgets.widgets import (
    COLOR_FIELDS,
    ErrorSink,
    InterpolationSlider,
    LatentExplorer,
    MaskViewer,
    ProjectionScatter,
)


def png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def shown_mask_pixels(mask: np.ndarray, palette: np.ndarray, scale: int) -> np.ndarray:
    return render.upscale(render.colorize(mask, palette), scale)


@pytest.fixture()
def skip_model():
    return ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, with_skip=True, seed=2)


@pytest.fixture()
def encoding(model, ds):
    return model.encode(ds.images)


@pytest.fixture()
def predictions(model, ds):
    return model.predict_masks(ds.images)


class SlowModel:
    """Wraps a model; on-demand (batch of 1) decodes sleep, optionally raise."""

    def __init__(self, model, delay=0.15, fail=False):
        self._m, self.delay, self.fail = model, delay, fail
        self.started = threading.Event()

    def __getattr__(self, name):
        return getattr(self._m, name)

    def decode(self, latents, skips=None, batch_size=32):
        if len(latents) == 1:
            self.started.set()
            time.sleep(self.delay)
            if self.fail:
                raise RuntimeError("decoder exploded")
        return self._m.decode(latents, skips)

    def decode_with_masks(self, latents, skips=None, batch_size=32):
        probs = self.decode(latents, skips, batch_size)
        return probs, probs.argmax(-1)


# ---------------------------------------------------------------------------- ProjectionScatter


@pytest.fixture()
def scatter(encoding, ds, predictions):
    return ProjectionScatter(encoding.latents, ds, predictions=predictions, splits=["train"] * 20 + ["val"] * 4)


def test_scatter_draws_one_labelled_point_per_sample(scatter, ds):
    assert scatter.points.shape == (len(ds), 2)
    np.testing.assert_allclose(scatter.mark.x, scatter.points[:, 0])
    np.testing.assert_allclose(scatter.mark.y, scatter.points[:, 1])
    # index labels where there is room, always the selected point's
    assert all(t in ("", str(i)) for i, t in enumerate(scatter.labels)) and len(scatter.labels) == len(ds)
    assert scatter.labels[scatter.selected] == str(scatter.selected)
    assert sum(map(bool, scatter.labels)) >= len(ds) // 2
    assert scatter.show_labels and scatter.mark.display_names
    scatter.show_labels = False
    assert not scatter.mark.display_names
    assert scatter.renderer == "Scatter" and not scatter.uses_gl


def test_scatter_colour_fields(scatter, ds):
    assert scatter.color_by == "group"
    assert len(set(scatter.colors)) == 2
    scatter.color_by = "dominant class"
    dominant = ds.class_fractions().argmax(axis=1)
    assert scatter.colors == [colors.hex_colours(ds.palette)[c] for c in dominant]
    np.testing.assert_array_equal(scatter.mark.color, dominant)
    assert scatter.color_scale.colors == colors.hex_colours(ds.palette)
    assert ds.class_names[dominant[0]] in scatter.legend.value
    scatter.color_by = "mean IoU"
    assert "mean IoU" in scatter.legend.value and len(scatter.colors) == len(ds)
    scatter.color_by = "split"
    assert len(set(scatter.colors[:20])) == 1 and scatter.colors[0] != scatter.colors[-1]
    scatter.color_by = "none"
    assert len(set(scatter.colors)) == 1
    assert set(COLOR_FIELDS) == {"group", "dominant class", "mean IoU", "split", "none"}
    assert set(COLOR_FIELDS) < set(scatter.session.color_fields())
    with pytest.raises(traitlets.TraitError):
        scatter.color_by = "nonsense"


def test_scatter_mean_iou_needs_predictions(encoding, ds):
    sc = ProjectionScatter(encoding.latents, ds)
    sc.color_by = "mean IoU"  # the handler fails; the error is reported, not raised
    assert "predictions" in sc.errors.messages[-1]


def test_scatter_method_switch_reuses_cached_maps(encoding, ds, monkeypatch):
    from latent_widgets.analysis import projection

    calls = []
    real = projection.fit_projection

    def counting(latents, method="pca", **kw):
        calls.append(method)
        if method == "pca":
            return real(latents, method="pca", **kw)
        emb = np.random.default_rng(len(calls)).normal(size=(len(latents), 2))
        return types.SimpleNamespace(embedding_=emb, transform=lambda z: np.zeros((len(z), 2)))

    monkeypatch.setattr(projection, "fit_projection", counting)
    sc = ProjectionScatter(encoding.latents, ds)
    pca = sc.points.copy()
    sc.method = "tsne"
    tsne = sc.points.copy()
    assert not np.allclose(pca, tsne)
    np.testing.assert_allclose(sc.mark.x, tsne[:, 0])
    sc.method = "pca"
    sc.method = "tsne"
    assert calls == ["pca", "tsne"]
    assert sc.cached_methods == ("pca", "tsne")
    with pytest.raises(traitlets.TraitError):
        sc.method = "mds"


def test_scatter_failed_projection_keeps_the_current_map(encoding, ds, monkeypatch):
    from latent_widgets.analysis import projection

    sc = ProjectionScatter(encoding.latents, ds)
    before = sc.points.copy()

    def broken(*args, **kwargs):
        raise ImportError("umap-learn is not installed")

    monkeypatch.setattr(projection, "fit_projection", broken)
    sc.controls.method_buttons.value = "umap"  # the user clicks "UMAP"
    assert sc.method == "pca" and sc.controls.method_buttons.value == "pca"
    np.testing.assert_allclose(sc.points, before)
    assert sc.errors.messages == ["ImportError: umap-learn is not installed"]


def test_scatter_click_selects_through_element_click(scatter):
    seen = []
    scatter.observe(lambda c: seen.append(c["new"]), "selected")
    # What the browser sends on a click (bqplot's element_click message).
    scatter.mark._handle_custom_msgs(None, {"event": "element_click", "data": {"index": 5}})
    assert scatter.selected == 5 and scatter.mark.selected == [5]
    scatter.click(5)  # clicking it again still notifies
    assert seen == [5, 5]
    scatter.selected = None
    assert scatter.mark.selected is None
    with pytest.raises(IndexError):
        scatter.click(999)


def test_scatter_hover_tooltip_shows_thumbnail_and_masks(scatter, ds, predictions):
    scatter.mark._handle_custom_msgs(None, {"event": "hover", "data": {"index": 3}})
    assert scatter.hovered == 3
    assert scatter.mark.tooltip is scatter.tooltip
    pixels = png_pixels(scatter.tooltip_value)
    expected = render.hstack(
        [
            render.thumbnail(ds.images[3], ds.masks[3], ds.palette, height=80),
            render.thumbnail(render.colorize(predictions[3], ds.palette), height=80),
        ]
    )
    np.testing.assert_array_equal(pixels, expected)
    assert ds.names[3] in scatter.hover_tooltip.caption.value


def test_scatter_path_overlay_on_pca_map(scatter, encoding):
    z = encoding.latents.reshape(len(encoding.latents), -1)
    path = np.linspace(z[2], z[9], 7)
    scatter.show_path(path, neighbors=[2, 2, 2, 4, 9, 9, 9], endpoints=(2, 9))
    p = scatter.path_points
    assert p.shape == (7, 2)
    # PCA is linear: the endpoints land on the samples and the steps on a line
    np.testing.assert_allclose(p[0], scatter.points[2], atol=1e-4)
    np.testing.assert_allclose(p[-1], scatter.points[9], atol=1e-4)
    np.testing.assert_allclose(p[3], (p[0] + p[-1]) / 2, atol=1e-4)
    np.testing.assert_allclose(scatter.path_line.x, p[:, 0])
    assert scatter.neighbor_marks.visible and len(scatter.neighbor_marks.x) == 3
    np.testing.assert_allclose(scatter.endpoint_marks.x, scatter.points[[2, 9], 0])
    scatter.set_current(0.5)
    np.testing.assert_allclose(scatter.current_point, p[3], atol=1e-6)
    assert scatter.current_mark.visible
    scatter.set_current(None)
    assert scatter.current_point is None and not scatter.current_mark.visible
    scatter.show_path(None)
    assert not scatter.path_line.visible and scatter.path_points is None


def test_scatter_path_on_a_nonlinear_map_uses_neighbour_positions(encoding, ds):
    z = encoding.latents.reshape(len(ds), -1)
    maps = {
        "pca": np.random.default_rng(0).normal(size=(len(ds), 2)),
        "tsne": np.random.default_rng(1).normal(size=(len(ds), 2)),
    }
    sc = ProjectionScatter(z, ds, projections=maps, method="tsne")
    sc.show_path(z[[4, 11]])
    np.testing.assert_allclose(sc.path_points, maps["tsne"][[4, 11]], atol=1e-6)


def _overlapping_pairs(boxes: np.ndarray, shown: np.ndarray, forced: set[int]) -> list[tuple[int, int]]:
    """Brute force: pairs of shown label boxes that overlap (pairs of two forced labels may)."""
    idx = np.flatnonzero(shown)
    pairs = []
    for a_, i in enumerate(idx):
        for j in idx[a_ + 1 :]:
            if i in forced and j in forced:
                continue
            b, c = boxes[i], boxes[j]
            if b[0] < c[2] and c[0] < b[2] and b[1] < c[3] and c[1] < b[3]:
                pairs.append((int(i), int(j)))
    return pairs


@pytest.mark.parametrize("n", [367, 2000])
def test_place_labels_against_brute_force(n):
    rng = np.random.default_rng(n)
    xy = rng.uniform(0, [450, 420], (n, 2))
    xy[:5] = xy[0] + rng.normal(0, 2, (5, 2))  # a tight cluster of forced points
    forced = {0, 1, 2, 3, 4, n - 1}
    boxes = label_boxes(xy, [str(i) for i in range(n)])
    visible = xy[:, 0] < 400
    shown = place_labels(boxes, sorted(forced), visible)
    assert shown[sorted(forced)].all()
    assert _overlapping_pairs(boxes, shown, forced) == []
    assert not shown[~visible & ~np.isin(np.arange(n), list(forced))].any()
    # greedy and maximal: each hidden visible label collides with a shown one
    for i in np.flatnonzero(visible & ~shown)[:200]:
        others = boxes[shown]
        b = boxes[i]
        assert ((b[0] < others[:, 2]) & (others[:, 0] < b[2]) & (b[1] < others[:, 3]) & (others[:, 1] < b[3])).any()
    assert 0.05 * n < shown.sum() < n  # readable: many labels, not all of them


def test_scatter_labels_follow_the_zoom_and_the_path(encoding, ds):
    rng = np.random.default_rng(3)
    n = len(ds)
    # a crowded map: most labels collide at the full view
    pts = np.concatenate([rng.normal(0, 0.01, (n - 2, 2)), [[-1.0, -1.0], [1.0, 1.0]]])
    sc = ProjectionScatter(encoding.latents, ds, projections={"pca": pts}, methods=("pca",))
    full = sum(map(bool, sc.labels))
    assert full < n
    sc.show_path(None, neighbors=[5, 6, 7], endpoints=(3, 4))
    sc.selected = 9
    shown = {i for i, t in enumerate(sc.labels) if t}
    assert {3, 4, 5, 6, 7, 9} <= shown == shown | set(sc.forced_labels)
    boxes = label_boxes(sc.screen_points(), [str(i) for i in range(n)])
    assert _overlapping_pairs(boxes, np.array([bool(t) for t in sc.labels]), set(sc.forced_labels)) == []
    # zoomed into the cluster: more room, more labels; the far corners are out of view
    with sc.x_scale.hold_sync(), sc.y_scale.hold_sync():
        sc.x_scale.min, sc.x_scale.max = -0.03, 0.03
        sc.y_scale.min, sc.y_scale.max = -0.03, 0.03
    zoomed = {i for i, t in enumerate(sc.labels) if t}
    assert len(zoomed) > len(shown) and n - 2 not in zoomed and n - 1 not in zoomed
    sc.reset_view()
    assert {i for i, t in enumerate(sc.labels) if t} == shown
    sc.show_labels = False
    assert not sc.mark.display_names


def test_layout_reflows_and_the_strip_scrolls(model, ds, encoding):
    ex = LatentExplorer(model, ds, encoding=encoding, asynchronous=False)
    try:
        assert ex.widget.layout.max_width == "100%"
        row = ex.widget.children[1]
        assert row.layout.flex_flow == "row wrap" and ex.viewer.widget in row.children
        assert ex.scatter.figure.layout.max_width == "100%"
        assert ex.scatter._panzoom_button.layout.width == "auto"  # "pan/zoom", not "pan/zo..."
        strip = ex.slider.strip_box.layout
        assert strip.max_width == "100%" and strip.overflow.startswith("auto")
        assert "lw-slider-panel" in ex.slider.widget._dom_classes
        assert "lw-mask-viewer" in ex.viewer.widget._dom_classes
        assert "lw-opacity" in ex.viewer._opacity_slider._dom_classes
    finally:
        ex.close()


def test_scatter_reset_view_fits_the_map(scatter):
    scatter.x_scale.min, scatter.x_scale.max = -1000.0, 1000.0
    scatter.reset_view()
    lo, hi = scatter.points.min(0), scatter.points.max(0)
    assert scatter.x_scale.min < lo[0] < hi[0] < scatter.x_scale.max
    assert scatter.x_scale.max - scatter.x_scale.min < 1.2 * (hi[0] - lo[0])


def test_scatter_pan_zoom_is_a_mode(scatter):
    assert scatter.figure.interaction is None  # points clickable
    scatter.pan_zoom = True
    assert scatter.figure.interaction is scatter.panzoom
    scatter.pan_zoom = False
    assert scatter.figure.interaction is None


def test_scatter_gl_fallback_without_bqplot_gl(encoding, ds, monkeypatch):
    monkeypatch.setitem(sys.modules, "bqplot_gl", None)  # import fails
    with pytest.warns(RuntimeWarning, match="bqplot-gl"):
        sc = ProjectionScatter(encoding.latents, ds, gl_threshold=10)
    assert sc.renderer == "Scatter" and not sc.uses_gl
    assert not sc.show_labels or len(ds) <= 300


def test_scatter_switches_to_scatter_gl_when_installed(encoding, ds, monkeypatch):
    class ScatterGL(bq.Scatter):  # a stand-in with bqplot-gl's name
        pass

    monkeypatch.setitem(sys.modules, "bqplot_gl", types.SimpleNamespace(ScatterGL=ScatterGL))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sc = ProjectionScatter(encoding.latents, ds, gl_threshold=10)
    assert sc.renderer == "ScatterGL" and isinstance(sc.mark, ScatterGL)
    # the duplicated-d3 trap: no 'click': 'select' interaction, selection from Python
    assert "click" not in sc.mark.interactions
    assert not sc.show_labels
    sc.mark._handle_custom_msgs(None, {"event": "element_click", "data": {"index": 7}})
    assert sc.selected == 7 and sc.mark.selected == [7]
    # below the threshold the SVG scatter is used even with bqplot-gl installed
    assert ProjectionScatter(encoding.latents, ds).renderer == "Scatter"


def test_scatter_checks_its_inputs(encoding, ds):
    with pytest.raises(ValueError, match="latents"):
        ProjectionScatter(encoding.latents[:5], ds)
    with pytest.raises(ValueError, match="method"):
        ProjectionScatter(encoding.latents, ds, method="mds")
    with pytest.raises(ValueError, match="shape"):
        ProjectionScatter(encoding.latents, ds, projections={"pca": np.zeros((3, 2))})


# ---------------------------------------------------------------------------- MaskViewer


def test_mask_viewer_panes_show_the_sample(ds, model, predictions):
    from latent_widgets.analysis.metrics import iou_per_class

    viewer = MaskViewer(model, ds, predictions=predictions)
    viewer.index = 4
    s = viewer.scale
    assert s == 4  # 64 px wide masks are shown >= 256 px wide
    np.testing.assert_array_equal(png_pixels(viewer.values["image"]), render.upscale(render.as_uint8(ds.images[4]), s))
    np.testing.assert_array_equal(png_pixels(viewer.values["truth"]), shown_mask_pixels(ds.masks[4], ds.palette, s))
    np.testing.assert_array_equal(png_pixels(viewer.image_value), shown_mask_pixels(predictions[4], ds.palette, s))
    np.testing.assert_array_equal(
        png_pixels(viewer.values["errors"]),
        render.upscale(render.error_map(predictions[4], ds.masks[4], ds.images[4]), s),
    )
    np.testing.assert_allclose(viewer.iou, iou_per_class(predictions[4], ds.masks[4], ds.n_classes))
    assert ds.names[4] in viewer._title.value
    for name in ds.class_names:
        assert name in viewer.legend.value


def test_mask_viewer_opacity_redraws_the_overlay(ds, predictions):
    viewer = MaskViewer(dataset=ds, predictions=predictions, index=2, opacity=0.0)
    img = render.upscale(render.as_uint8(ds.images[2]), viewer.scale)
    np.testing.assert_array_equal(png_pixels(viewer.values["overlay"]), img)
    before = viewer.values["prediction"]
    viewer._opacity_slider.value = 1.0  # the slider drives the trait
    assert viewer.opacity == 1.0
    np.testing.assert_array_equal(
        png_pixels(viewer.values["overlay"]), shown_mask_pixels(predictions[2], ds.palette, viewer.scale)
    )
    assert viewer.values["prediction"] == before


def test_mask_viewer_predicts_with_the_model_when_needed(ds, model):
    viewer = MaskViewer(model, ds)
    viewer.show_sample(6)
    np.testing.assert_array_equal(viewer.pred_mask, model.predict_masks(ds.images[6:7])[0])
    with pytest.raises(ValueError, match="model"):
        MaskViewer(dataset=ds).predicted(0)
    with pytest.raises(ValueError, match=r"takes \(model, dataset\)"):  # the arguments swapped
        MaskViewer(ds, model)


def test_mask_viewer_shows_a_decoded_latent(ds, model, encoding):
    viewer = MaskViewer(model, ds, index=1)
    z = 0.5 * (encoding.latents[1] + encoding.latents[2])
    viewer.show_latent(z, title="midpoint")
    assert viewer.index is None and viewer.true_mask is None and viewer.iou is None
    expected = model.decode(z[None]).argmax(-1)[0]
    np.testing.assert_array_equal(viewer.pred_mask, expected)
    np.testing.assert_array_equal(png_pixels(viewer.image_value), shown_mask_pixels(expected, ds.palette, viewer.scale))
    assert "no ground truth" in viewer._captions["errors"].value and "midpoint" in viewer._title.value
    viewer.show_sample(1)  # back to a sample, even the same index as before
    assert viewer.index == 1 and viewer.true_mask is not None


def test_mask_viewer_rejects_bad_index(ds, predictions):
    viewer = MaskViewer(dataset=ds, predictions=predictions)
    viewer.index = 10_000
    assert "out of range" in viewer.errors.messages[-1]


# ---------------------------------------------------------------------------- InterpolationSlider


def expected_mask(model, encoding, ds, a, b, alpha, method="linear", policy="image"):
    from latent_widgets.analysis.interpolation import path_inputs

    Encoding = type(encoding)
    enc = lambda i: Encoding(encoding.latents[i : i + 1], tuple(s[i : i + 1] for s in encoding.skips))  # noqa: E731
    z, skips = path_inputs(
        model,
        ds.images[a],
        ds.images[b],
        np.array([alpha], np.float32),
        method=method,
        skip_policy=policy,
        encoding_a=enc(a),
        encoding_b=enc(b),
    )
    return model.decode(z, skips if model.has_skips else None).argmax(-1)[0]


@pytest.fixture()
def slider(model, ds, encoding):
    return InterpolationSlider(model, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=False)


def test_slider_decodes_the_strip_in_one_batch(model, ds, encoding):
    from latent_widgets.analysis.interpolation import steps

    before = model.decode_calls
    s = InterpolationSlider(model, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=False, scrub_steps=0)
    assert model.decode_calls - before == 1  # 12 steps, one call; alpha=0 is a strip step
    assert s.n_steps == 12 and len(s.strip_values) == 12
    np.testing.assert_allclose(s.alphas, steps(12))
    np.testing.assert_array_equal(s.current_mask, s.strip.masks[0])
    assert s.image_value == s.strip_values[0]
    assert len(s.strip_box.children) == 24  # steps over their neighbours


def test_busy_indicators_show_a_job_once_it_has_lasted_a_moment(model, ds, encoding):
    from latent_widgets.widgets import LatentExplorer
    from latent_widgets.widgets.busy_status import SHOW_AFTER_S

    ex = LatentExplorer(model, ds, encoding=encoding, index_a=1, index_b=17)
    s = ex.session
    s.wait()
    said: list[str] = []
    for html_widget in (ex.slider._status, ex.busy_indicator):
        html_widget.observe(lambda c: said.append(c["new"]), "value")
    for alpha in (0.11, 0.23, 0.31, 0.42):  # decodes of a millisecond: no "decode" flashing on and off
        s.alpha = alpha
        s.wait()
    time.sleep(2 * SHOW_AFTER_S)
    assert said == [] and s.ondemand_decodes >= 4
    # A job of a second: on both indicators once it has lasted SHOW_AFTER_S, off the moment it ends.
    t0 = time.monotonic()
    s.jobs.model_lane.submit("slow job", lambda: time.sleep(1.0))
    assert s.busy == ("slow job",) and ex.slider._status.value == ex.busy_indicator.value == ""
    deadline = time.monotonic() + 10
    while "slow job" not in ex.busy_indicator.value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.monotonic() - t0 >= SHOW_AFTER_S and "slow job" in ex.slider._status.value
    s.wait()
    assert ex.slider._status.value == ex.busy_indicator.value == "" and ex.busy_status.text == ""
    # A map's fit is the map's business: on the explorer's indicator, not the slider's.
    s.jobs.map_lane.submit("map: slow fit", lambda: time.sleep(0.6))
    time.sleep(SHOW_AFTER_S + 0.2)
    assert "map: slow fit" in ex.busy_indicator.value and ex.slider._status.value == ""
    s.wait()
    ex.close()


def test_slider_sends_the_grid_frames_to_the_browser_once(model, ds, encoding):
    s = InterpolationSlider(model, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=False)
    frames, view = s.session.frames, s.frames_view
    assert s.scrubbing and view.n_frames == 64 and (view.height, view.width) == (48, 64)
    assert view.frames == frames.masks.tobytes()
    assert view.palette[: 3 * ds.n_classes] == np.asarray(ds.palette, np.uint8).tobytes()
    # the browser links the slider to the frames: no kernel round trip per value
    assert s._frames_link.source == (s.slider, "value") and s._frames_link.target == (view, "alpha")
    assert s.image.layout.display == "none" and view.layout.display is None
    # a path without its grid yet shows the kernel's decodes again
    s.session.frames = None
    assert not s.scrubbing and s.image.layout.display is None


def test_a_partial_grid_lies_over_the_kernels_mask(model, ds, encoding):
    from latent_widgets.session import ScrubFrames

    s = InterpolationSlider(model, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=False)
    full, view = s.session.frames, s.frames_view
    ready = np.zeros(len(full.alphas), bool)
    ready[40:48] = True  # the frames nearest to alpha ~0.7 came first
    masks = np.where(ready[:, None, None], full.masks, 0).astype(np.uint8)
    s.session.frames = ScrubFrames(full.key, full.alphas, masks, ready)
    # both shown, in one grid cell: the canvas over the kernel's mask, which shows where a frame is missing
    assert s.scrubbing and s.image.layout.display is None and view.layout.display is None
    assert s.image.layout.grid_area == view.layout.grid_area == "mask"
    assert view.n_frames == 64 and view.n_ready == 8 and view.ready == ready.astype(np.uint8).tobytes()
    assert view.frames == masks.tobytes()
    # the grid completes: the canvas alone, every frame ready
    s.session.frames = full
    assert s.image.layout.display == "none" and view.ready == b"" and view.n_ready == 64
    with pytest.raises(ValueError, match="ready has 3 flags for 64 frames"):
        view.set_frames(full.masks, ready=[True, False, True])


def test_the_viewer_waits_for_its_samples_prediction_from_the_session(model, ds):
    from toy import SlowToyModel

    from latent_widgets.session import ExplorerSession

    # The bulk prediction takes 2.4 s; the shown sample's is requested ahead of it.
    session = ExplorerSession(SlowToyModel(model, decode_s=0.1), ds, index_a=5, scrub_steps=0, methods=("pca",))
    viewer = MaskViewer(session=session)
    assert "predicting…" in viewer._title.value or viewer.pred_mask is not None
    deadline = time.monotonic() + 30
    while viewer.pred_mask is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert viewer.index == 5 and session.predictions is None  # shown before the bulk prediction ended
    np.testing.assert_array_equal(viewer.pred_mask, model.predict_masks(ds.images[5:6])[0])
    session.selected = 9
    deadline = time.monotonic() + 30
    while viewer.index != 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    np.testing.assert_array_equal(viewer.pred_mask, model.predict_masks(ds.images[9:10])[0])
    session.wait()
    session.close()


def test_slider_strip_step_is_served_from_the_cache(slider, model):
    calls = model.decode_calls
    for k in (3, 7, 11):
        slider.alpha = float(slider.alphas[k])
        assert slider.image_value == slider.strip_values[k]
        np.testing.assert_array_equal(slider.current_mask, slider.strip.masks[k])
    assert model.decode_calls == calls and slider.ondemand_decodes == 0


def test_slider_decodes_any_other_alpha_on_demand(slider, model, ds, encoding):
    slider.alpha = 0.37
    assert slider.ondemand_decodes == 1 and slider.current_alpha == pytest.approx(0.37)
    expected = expected_mask(model, encoding, ds, 1, 17, 0.37)
    np.testing.assert_array_equal(slider.current_mask, expected)
    np.testing.assert_array_equal(png_pixels(slider.image_value), shown_mask_pixels(expected, ds.palette, slider.scale))
    assert slider.current_probs.shape == (48, 64, 12)
    assert slider.current_latent.shape == model.latent_shape


def test_slider_spherical_path_and_endpoints(slider, model, ds, encoding):
    slider.method = "spherical"
    slider.alpha = 0.61
    np.testing.assert_array_equal(slider.current_mask, expected_mask(model, encoding, ds, 1, 17, 0.61, "spherical"))
    with pytest.raises(traitlets.TraitError):
        slider.method = "cubic"
    with pytest.raises(traitlets.TraitError):
        slider.index_a = 99


def test_slider_strip_cache_per_path(slider, model):
    v = slider.strip_version
    first = list(slider.strip_values)
    slider.index_b = 5
    assert slider.strip_version == v + 1 and slider.strip_values != first
    calls = model.decode_calls
    slider.index_b = 17  # back to a path decoded before: no decode
    assert slider.strip_values == first and model.decode_calls == calls
    slider.n_steps = 5
    assert len(slider.strip_values) == 5 and len(slider.strip_box.children) == 10


def test_slider_fractions_and_neighbours(slider, ds):
    from latent_widgets.analysis.metrics import class_fractions

    np.testing.assert_allclose(slider.fractions, class_fractions(slider.strip.masks, ds.n_classes))
    np.testing.assert_allclose(slider.fraction_plot.lines.y, slider.fractions.T)
    nb = slider.neighbor_indices
    assert nb[0] == 1 and nb[-1] == 17  # the endpoints are their own nearest samples
    assert slider.neighbor_distances[0] == pytest.approx(0.0, abs=1e-4)
    slider.alpha = 0.5
    np.testing.assert_allclose(slider.fraction_plot.cursor.x, [0.5, 0.5])
    # under each step: the nearest real sample's ground truth
    for k in (0, 5, 11):
        np.testing.assert_array_equal(
            png_pixels(slider.neighbor_values[k]), shown_mask_pixels(ds.masks[nb[k]], ds.palette, slider.tile_scale)
        )
    assert slider.n_distinct == len(set(nb.tolist()))
    assert f"{slider.n_distinct} distinct" in slider.strip_tiles.caption.value
    # the strip's tile widgets are reused for the next path
    tiles = list(slider.strip_box.children)
    slider.index_b = 8
    assert list(slider.strip_box.children) == tiles


def test_slider_fraction_plot_ticks_and_class_names(slider, ds):
    x_axis, y_axis = slider.fraction_plot.figure.axes
    for axis in (x_axis, y_axis):
        np.testing.assert_allclose(axis.tick_values, [0, 0.25, 0.5, 0.75, 1])
        assert axis.tick_format == "~g"  # 0, 0.25, 0.5, 0.75, 1
    assert list(slider.fraction_plot.lines.labels) == list(ds.class_names)
    assert slider.fraction_plot.lines.tooltip.fields == ["name"]  # hover a line: its class
    for name in ds.class_names:
        assert name in slider.fraction_plot.legend.value


def test_slider_skip_policies(skip_model, ds):
    s = InterpolationSlider(skip_model, ds, index_a=0, index_b=20, asynchronous=False)
    assert not s._policy_dropdown.disabled
    enc = skip_model.encode(ds.images)
    for policy in ("image", "skips", "hold_a", "hold_b"):
        s.skip_policy = policy
        s.alpha = 0.43
        np.testing.assert_array_equal(s.current_mask, expected_mask(skip_model, enc, ds, 0, 20, 0.43, policy=policy))
        s.alpha = 0.0
    assert not s.errors.messages


def test_slider_widgets_drive_the_traits(slider):
    slider.slider.value = 0.25  # what dragging the handle does
    assert slider.alpha == 0.25 and slider.current_alpha == 0.25
    slider._b_box.value = 3
    assert slider.index_b == 3
    slider._method_buttons.value = "spherical"
    assert slider.method == "spherical"
    assert slider._policy_dropdown.disabled  # the toy decoder has no skips


def test_slider_async_newest_request_wins(model, ds, encoding):
    slow = SlowModel(model, delay=0.1)
    s = InterpolationSlider(slow, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=True)
    alphas = np.linspace(0.01, 0.49, 25)
    t0 = time.perf_counter()
    for a in alphas:  # a drag: many values, faster than the decoder
        s.alpha = float(a)
    assert time.perf_counter() - t0 < 0.5  # setting alpha never waits for a decode
    s.wait()
    assert s.current_alpha == pytest.approx(alphas[-1])
    assert s.ondemand_decodes < len(alphas)  # stale requests were skipped
    np.testing.assert_array_equal(s.current_mask, expected_mask(model, encoding, ds, 1, 17, alphas[-1]))
    s.close()


def test_slider_async_stale_result_never_replaces_a_newer_one(model, ds, encoding):
    slow = SlowModel(model, delay=0.2)
    # (no grid: its chunks are single decodes too, 0.2 s each in this model)
    s = InterpolationSlider(slow, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=True, scrub_steps=0)
    s.wait()  # the strip is decoded (after the slider's first mask: its decode goes first)
    slow.started.clear()
    s.alpha = 0.33  # slow, in the worker
    assert slow.started.wait(5)
    s.alpha = float(s.alphas[4])  # a cached step, shown at once
    assert s.image_value == s.strip_values[4]
    s.wait()
    assert s.current_alpha == pytest.approx(s.alphas[4]) and s.image_value == s.strip_values[4]
    s.close()


def test_slider_async_result_of_an_old_path_is_never_shown(model, ds, encoding):
    slow = SlowModel(model, delay=0.2)
    # (no grid: its chunks are single decodes too, 0.2 s each in this model)
    s = InterpolationSlider(slow, ds, encoding=encoding, index_a=1, index_b=17, asynchronous=True, scrub_steps=0)
    old = render.mask_png(expected_mask(model, encoding, ds, 1, 17, 0.33), ds.palette, scale=s.scale)
    shown = []
    s.image.observe(lambda c: shown.append(bytes(c["new"])), "value")
    s.alpha = 0.33
    assert slow.started.wait(5)
    s.index_b = 5  # while the old path's mask is being decoded
    s.wait()
    np.testing.assert_array_equal(s.current_mask, expected_mask(model, encoding, ds, 1, 5, 0.33))
    assert old != s.image_value and old not in shown
    s.close()


def test_slider_strip_cache_is_bounded(model, ds, encoding):
    s = InterpolationSlider(model, ds, encoding=encoding, asynchronous=False, max_cached_strips=2, scrub_steps=0)
    for b in (3, 4, 5):
        s.index_b = b
    assert [k[1] for k in s.session.path.strips] == [4, 5]
    calls = model.decode_calls
    s.index_b = 4
    assert model.decode_calls == calls
    s.index_b = 23  # the first strip was dropped: decoded again
    assert model.decode_calls == calls + 1


def test_slider_worker_errors_are_reported(model, ds, encoding):
    s = InterpolationSlider(SlowModel(model, delay=0.0, fail=True), ds, encoding=encoding, asynchronous=True)
    s.alpha = 0.5
    s.wait()
    # (the first mask, at alpha 0, is decoded on demand too: ahead of the strip)
    assert set(s.errors.messages) == {"RuntimeError: decoder exploded"}
    assert "decoder exploded" in s.errors.output.outputs[-1]["text"]
    s.close()


# ---------------------------------------------------------------------------- LatentExplorer


@pytest.fixture()
def explorer(model, ds, encoding):
    ex = LatentExplorer(model, ds, encoding=encoding, asynchronous=False)
    yield ex
    ex.close()


def test_explorer_composes_the_three(explorer, ds):
    assert explorer.scatter.points.shape == (len(ds), 2)
    assert explorer.viewer.index == explorer.slider.index_a == 0
    assert explorer.slider.index_b == len(ds) - 1
    assert explorer.scatter.path_points.shape == (12, 2)
    assert explorer.scatter.selected == 0
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_explorer_click_shows_the_sample_and_sets_endpoints(explorer):
    before = explorer.viewer.image_value
    explorer.scatter.mark._handle_custom_msgs(None, {"event": "element_click", "data": {"index": 9}})
    assert explorer.viewer.index == 9 and explorer.viewer.image_value != before
    assert (explorer.slider.index_a, explorer.slider.index_b) == (0, 23)
    explorer.click_action = "set A"
    explorer.scatter.click(4)
    assert explorer.slider.index_a == 4 and explorer.viewer.index == 4
    explorer.click_action = "set B"
    explorer.scatter.click(12)
    assert explorer.slider.index_b == 12
    # the map follows the new path: endpoints A and B are drawn on samples 4 and 12
    np.testing.assert_allclose(explorer.scatter.endpoint_marks.x, explorer.scatter.points[[4, 12], 0])
    np.testing.assert_allclose(explorer.scatter.path_points[0], explorer.scatter.points[4], atol=1e-4)


def test_explorer_slider_moves_the_point_on_the_map(explorer):
    p = explorer.scatter.path_points
    explorer.slider.alpha = 1.0
    np.testing.assert_allclose(explorer.scatter.current_point, p[-1])
    explorer.slider.alpha = 0.5
    np.testing.assert_allclose(explorer.scatter.current_point, (p[5] + p[6]) / 2)


def test_explorer_shows_callback_errors_in_its_output(explorer, monkeypatch):
    def boom(index):
        raise RuntimeError(f"cannot show sample {index}")

    monkeypatch.setattr(explorer.viewer, "show_sample", boom)
    explorer.scatter.click(3)  # the browser's click goes through the same handler
    assert explorer.errors.messages[-1] == "RuntimeError: cannot show sample 3"
    texts = [o.get("text", "") for o in explorer.output.outputs]
    assert any("cannot show sample 3" in t and "Traceback" in t for t in texts)
    explorer.errors.clear()
    assert explorer.output.outputs == ()


def test_explorer_reports_async_decode_errors(model, ds, encoding):
    ex = LatentExplorer(SlowModel(model, delay=0.0, fail=True), ds, encoding=encoding, asynchronous=True)
    ex.slider.alpha = 0.3
    ex.slider.wait()
    assert any("decoder exploded" in o.get("text", "") for o in ex.output.outputs)
    ex.close()


def test_error_sink_can_reraise():
    sink = ErrorSink(raise_errors=True)
    with pytest.raises(ZeroDivisionError):
        sink.guard(lambda: 1 / 0)()
    assert sink.messages == ["ZeroDivisionError: division by zero"]


# ---------------------------------------------------------------------------- WebGLMap (jupyter-scatter)


@pytest.fixture()
def glmap(encoding, ds, predictions):
    pytest.importorskip("jscatter")
    from latent_widgets.widgets import WebGLMap

    return WebGLMap(encoding.latents, ds, predictions=predictions, splits=["train"] * 20 + ["val"] * 4)


def _map_xy(glmap) -> np.ndarray:
    """The map coordinates the browser gets: the widget's [-1, 1] points scaled back by its domains."""
    w = glmap.map_widget
    ndc = np.asarray(w.points, np.float64)[:, :2]
    lo = np.array([w.x_domain[0], w.y_domain[0]], np.float64)
    hi = np.array([w.x_domain[1], w.y_domain[1]], np.float64)
    return lo + (ndc + 1) / 2 * (hi - lo)


def test_glmap_sends_the_points_in_sample_order_as_binary(glmap, ds):
    from ipywidgets.widgets.widget import _remove_buffers

    assert glmap.renderer == "jupyter-scatter" and glmap.map_widget.points.shape == (len(ds), 4)
    # point i of the widget is sample i of the map (float32 on the wire)
    np.testing.assert_allclose(_map_xy(glmap), glmap.points, rtol=1e-6, atol=1e-6)
    _, paths, buffers = _remove_buffers(glmap.map_widget.get_state())
    assert ["points", "view"] in paths
    (buf,) = [b for p, b in zip(paths, buffers, strict=True) if p[0] == "points"]
    assert buf.nbytes == len(ds) * 4 * 4  # N x (x, y, colour, 0) float32: not JSON
    # a new map replaces the points (t-SNE's map here, given precomputed)
    other = glmap.points[:, ::-1] * np.array([3.0, -1.0])
    glmap.session.maps = {**glmap.session.maps, "tsne": other}
    glmap.session.methods = ("pca", "tsne")
    glmap.methods = glmap.session.methods
    glmap.method = "tsne"
    np.testing.assert_allclose(_map_xy(glmap), other, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("field", ["group", "dominant class", "mean IoU", "split"])
def test_glmap_colours_each_point_by_the_field(glmap, field):
    from matplotlib.colors import to_rgba

    glmap.color_by = field
    w = glmap.map_widget
    assert w.color_by == "valueA"
    codes, colours, _ = glmap.color_codes(field)
    shown = [tuple(w.color[int(c)]) for c in np.asarray(w.points)[:, 2]]
    assert shown == [to_rgba(colours[c]) for c in codes]
    assert shown == [to_rgba(c) for c in glmap.colors]
    if field == "split":
        assert len(set(shown[:20])) == len(set(shown[20:])) == 1 and shown[0] != shown[-1]


def test_glmap_click_hover_and_lasso_reach_python(glmap, ds, predictions):
    w = glmap.map_widget
    # the browser reports a click as a one-point selection
    w.selection = np.array([5], np.uint32)
    assert glmap.selected == glmap.session.selected == 5 and glmap.lasso_selection is None
    glmap.click(7)  # and from Python, the widget shows the selection
    assert list(w.selection) == [7] and glmap.session.selected == 7
    # hovering renders the thumbnail of that sample only
    assert glmap.hover_tooltip.thumbnails == {}
    w.hovering = 3
    assert glmap.hovered == 3 and list(glmap.hover_tooltip.thumbnails) == [3]
    expected = render.hstack(
        [
            render.thumbnail(ds.images[3], ds.masks[3], ds.palette, height=80),
            render.thumbnail(render.colorize(predictions[3], ds.palette), height=80),
        ]
    )
    np.testing.assert_array_equal(png_pixels(glmap.tooltip_value), expected)
    w.hovering = None  # the pointer left: the last thumbnail stays
    assert glmap.hovered == 3
    # a lasso: the selection, then its polygon
    w.selection = np.array([9, 2, 4], np.uint32)
    w.set_trait("lasso_selection_polygon", np.array([[0, 0], [1, 0], [1, 1]], np.float32))
    assert glmap.lasso_selection.tolist() == [2, 4, 9] and glmap.selected == 7
    assert "3 samples" in glmap._lasso_status.value
    # a click on the background clears the lasso, the selected sample stays shown
    w.selection = np.array([], np.uint32)
    assert glmap.lasso_selection is None and list(w.selection) == [7]


def test_glmap_path_overlay_and_current_point(glmap, encoding):
    z = encoding.latents.reshape(len(encoding.latents), -1)
    glmap.show_path(np.linspace(z[2], z[9], 7), neighbors=[2, 2, 2, 4, 9, 9, 9], endpoints=(2, 9))
    p = glmap.path_points
    np.testing.assert_allclose(p[0], glmap.points[2], atol=1e-4)
    np.testing.assert_allclose(p[-1], glmap.points[9], atol=1e-4)
    layers = glmap.overlay_annotations
    assert {k: len(v) for k, v in layers.items()} == {
        "path": 1,
        "steps": 7,
        "neighbors": 3,
        "endpoints": 2,
        "current": 0,
    }
    np.testing.assert_allclose(np.array(layers["path"][0].vertices), p)
    # the rings are centred on the neighbours 2, 4, 9 and A's square on sample 2
    centres = [np.array(a.vertices[:-1]).mean(axis=0) for a in layers["neighbors"]]
    np.testing.assert_allclose(centres, glmap.points[[2, 4, 9]], atol=1e-9)
    np.testing.assert_allclose(np.array(layers["endpoints"][0].vertices[:-1]).mean(axis=0), glmap.points[2], atol=1e-9)
    assert len(glmap.map_widget.annotations) == 13  # what the browser gets, in [-1, 1]
    glmap.set_current(0.5)
    np.testing.assert_allclose(glmap.current_point, p[3], atol=1e-6)
    ring = np.array(glmap.overlay_annotations["current"][0].vertices[:-1])
    np.testing.assert_allclose(ring.mean(axis=0), p[3], atol=1e-9)
    assert len(glmap.map_widget.annotations) == 16
    glmap.show_path(None)
    assert glmap.path_points is None and glmap.map_widget.annotations == []


def test_explorer_switches_to_the_webgl_map_above_the_threshold(model, ds, encoding):
    pytest.importorskip("jscatter")
    from latent_widgets.widgets import WebGLMap

    small = LatentExplorer(model, ds, encoding=encoding, asynchronous=False, gl_threshold=len(ds))
    assert isinstance(small.scatter, ProjectionScatter) and small.scatter.renderer == "Scatter"
    small.close()
    ex = LatentExplorer(model, ds, encoding=encoding, asynchronous=False, gl_threshold=len(ds) - 1)
    try:
        assert isinstance(ex.scatter, WebGLMap)
        assert ex.scatter.path_points.shape == (12, 2) and len(ex.scatter.overlay_annotations["endpoints"]) == 2
        # a click in the browser shows the sample; "set A" moves the endpoint
        ex.click_action = "set A"
        ex.scatter.map_widget.selection = np.array([4], np.uint32)
        assert ex.viewer.index == 4 and ex.slider.index_a == 4 and ex.session.selected == 4
        np.testing.assert_allclose(ex.scatter.path_points[0], ex.scatter.points[4], atol=1e-4)
        # the slider moves the current point along the path
        ex.slider.alpha = 1.0
        np.testing.assert_allclose(ex.scatter.current_point, ex.scatter.path_points[-1])
        assert ex.errors.messages == []
    finally:
        ex.close()


# ---------------------------------------------------------------------------- selection, colour fields, panel, linking


def test_scatter_highlights_the_sessions_selection(scatter):
    s = scatter.session
    scatter.click(5)
    assert scatter.mark.selected == [5] and scatter.mark.unselected_style == {}
    s.selection = [9, 2, 4]
    assert list(scatter.mark.selected) == [2, 4, 9] and scatter.mark.unselected_style == {"opacity": "0.3"}
    assert scatter.selection.tolist() == [2, 4, 9]
    scatter.click(7)  # a click shows its sample; the selection stays highlighted
    assert s.selected == 7 and list(scatter.mark.selected) == [2, 4, 9]
    scatter.selection = None
    assert scatter.mark.selected == [7] and scatter.mark.unselected_style == {}


def test_scatter_lasso_and_brush_write_the_selection(scatter):
    s = scatter.session
    assert scatter.tool == "click" and scatter.figure.interaction is None
    # in click mode the mark's selection is the view's own highlight, not user input
    scatter.mark.selected = [1, 2]
    assert s.selection.tolist() == []
    scatter._lasso_button.value = True
    assert scatter.tool == "lasso" and scatter.figure.interaction is scatter.lasso
    assert scatter.lasso.marks == [scatter.mark]
    # what the browser's lasso sends: the mark's selected points
    scatter.mark.selected = [11, 3, 8]
    assert s.selection.tolist() == [3, 8, 11]
    scatter._brush_button.value = True
    assert scatter.tool == "brush" and scatter.figure.interaction is scatter.brush
    assert not scatter._lasso_button.value and not scatter.pan_zoom
    scatter.mark.selected = [0, 1]
    assert s.selection.tolist() == [0, 1]
    scatter.pan_zoom = True
    assert scatter.tool == "pan/zoom" and scatter.figure.interaction is scatter.panzoom
    assert not scatter._brush_button.value
    scatter.pan_zoom = False
    assert scatter.tool == "click" and scatter.figure.interaction is None
    scatter._clear_selection_button.click()
    assert s.selection.tolist() == []


def test_scatter_colour_field_follows_the_session_both_ways(scatter, ds, predictions):
    from latent_widgets.analysis.metrics import per_sample_iou

    s = scatter.session
    assert list(scatter.controls.color_dropdown.options) == list(s.color_fields())
    s.color_by = "IoU: Road"
    assert scatter.color_by == scatter.controls.color_dropdown.value == "IoU: Road"
    road = per_sample_iou(predictions, ds.masks, ds.n_classes)[:, list(ds.class_names).index("Road")]
    codes, colours, _ = scatter.color_codes()
    finite = np.isfinite(road)
    expected = np.clip(np.round(road[finite] * (len(colours) - 1)), 0, len(colours) - 1)
    np.testing.assert_array_equal(codes[finite], expected)
    np.testing.assert_array_equal(scatter.mark.color, codes)
    scatter.controls.color_dropdown.value = "trustworthiness"
    assert s.color_by == "trustworthiness" and "trustworthiness" in scatter.legend.value
    assert len(set(scatter.colors)) > 3  # the per-point values, not the grey of "computing"


def test_glmap_shows_and_writes_the_sessions_selection(glmap):
    w, s = glmap.map_widget, glmap.session
    s.selection = [9, 2, 4]
    assert list(w.selection) == [2, 4, 9] and glmap.selected == s.selected  # no click from the highlight
    assert "3 samples" in glmap._lasso_status.value
    # a lasso in the browser: the selection, then its polygon
    w.selection = np.array([1, 3, 5, 6], np.uint32)
    w.set_trait("lasso_selection_polygon", np.array([[0, 0], [1, 0], [1, 1]], np.float32))
    assert s.selection.tolist() == [1, 3, 5, 6]
    # a click replaces the selection with the clicked sample
    w.selection = np.array([7], np.uint32)
    assert s.selection.tolist() == [] and s.selected == 7 and list(w.selection) == [7]


def test_selection_panel_shows_the_report(model, ds, encoding):
    from latent_widgets.widgets import SelectionPanel

    ex = LatentExplorer(model, ds, encoding=encoding, asynchronous=False)
    try:
        panel = ex.selection_panel
        assert isinstance(panel, SelectionPanel) and panel.widget in ex.widget.children
        assert "No selection" in panel.summary.value and panel.gallery_indices == []
        ex.session.selection = list(range(0, 24, 2))
        r = ex.session.report
        assert panel.report is r and f"<b>{12}</b> samples selected" in panel.summary.value
        assert f"{r.mean_iou:.3f}" in panel.summary.value and f"whole set {r.mean_iou_all:.3f}" in panel.summary.value
        assert png_pixels(panel.confusion.value).shape[1] > 200
        assert panel.gallery_indices == r.worst[:6].tolist()
        # a gallery tile: image, truth, prediction, error map of the sample
        i = panel.gallery_indices[0]
        tile = panel.tile(i)
        h = panel.thumb_height
        first = render.thumbnail(ds.images[i], height=h)
        np.testing.assert_array_equal(tile[:, : first.shape[1]], first)
        pred = ex.session.predictions[i]
        errors = render.thumbnail(render.error_map(pred, ds.masks[i], ds.images[i]), height=h)
        np.testing.assert_array_equal(tile[:, -errors.shape[1] :], errors)
        # clicking an item shows that sample
        buttons = [b for b in panel.gallery.children[1:]]
        buttons[1].children[0].click()
        assert ex.session.selected == panel.gallery_indices[1] and ex.viewer.index == panel.gallery_indices[1]
        ex.session.selection = None
        assert panel.gallery.children == () and "No selection" in panel.summary.value
    finally:
        ex.close()


def test_explorer_export_button_writes_the_files(model, ds, encoding, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ex = LatentExplorer(model, ds, encoding=encoding, asynchronous=False)
    try:
        ex.session.selection = [1, 2, 3]
        ex._export_button.click()
        assert ex.errors.messages == []
        names = {p.name for p in ex.exported}
        assert {"session.json", "map.png", "map.svg", "strip.svg", "confusion.png"} <= names
        folder = ex.exported[0].parent
        assert folder.parent == tmp_path and folder.name.startswith("latent-session-")
        assert all(p.is_file() for p in ex.exported) and "session.json" in ex._export_status.value
    finally:
        ex.close()


def test_link_explorers_mirrors_selection_and_hover(model, ds, encoding):
    from toy import ToyLatentModel

    from latent_widgets import synthetic_road_scenes
    from latent_widgets.widgets import link_explorers

    other = ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, seed=5)
    a = LatentExplorer(model, ds, encoding=encoding, asynchronous=False)
    b = LatentExplorer(other, ds, asynchronous=False)
    try:
        unlink = link_explorers(a, b)
        a.session.selection = [4, 6]
        assert b.session.selection.tolist() == [4, 6] and list(b.scatter.mark.selected) == [4, 6]
        b.session.selection = [1]
        assert a.session.selection.tolist() == [1]
        a.scatter.hover(9)
        assert b.scatter.linked_hover == 9 and b.scatter.linked_hover_mark.visible
        np.testing.assert_allclose(b.scatter.linked_hover_mark.x, b.scatter.points[[9], 0])
        unlink()
        a.session.selection = [2]
        assert b.session.selection.tolist() == [1] and b.scatter.linked_hover is None
        small = synthetic_road_scenes(10, size=(48, 64), seed=0)
        c = LatentExplorer(model, small, asynchronous=False)
        with pytest.raises(ValueError, match="different datasets: 24 and 10 samples"):
            link_explorers(a, c)
        c.close()
        shifted = synthetic_road_scenes(24, size=(48, 64), seed=3, frames_per_drive=12)
        d = LatentExplorer(model, shifted, asynchronous=False)
        with pytest.raises(ValueError, match="same length, different content"):
            link_explorers(a, d)
        d.close()
    finally:
        a.close()
        b.close()


def _png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_a_map_of_cells_clicks_and_lassos_samples_and_outlines_the_cell(model, ds) -> None:
    from latent_widgets.widgets import LatentExplorer, WebGLMap, link_explorers
    from latent_widgets.widgets.cell_overlay import CELL_OUTLINE

    e = LatentExplorer(model, ds, asynchronous=False, methods=("pca",))
    other = LatentExplorer(model, ds, asynchronous=False, methods=("pca",))
    link_explorers(e, other)
    assert type(e.scatter).__name__ == "ProjectionScatter"
    e.scatter.controls.points_dropdown.value = "cells"  # 24 samples x 12 x 16 cells = 4608 points > 2000: WebGL
    h, w = e.session.grid
    assert isinstance(e.scatter, WebGLMap) and e.scatter.map_widget.points.shape == (24 * h * w, 4)
    assert e.scatter.controls.color_dropdown.value == e.session.color_by == "cell class"
    k = 5 * h * w + 2 * w + 3  # sample 5, cell (2, 3)
    e.scatter.map_widget.selection = np.array([k])
    assert (e.session.selected, e.session.selected_cell, e.viewer.index) == (5, (2, 3), 5)
    # the image pane: exactly the 2 px border of the cell's block (cells.cell_box x display scale) is outlined
    s = e.viewer.scale
    y0, x0, y1, x1 = (v * s for v in (2 * 48 // h, 3 * 64 // w, 3 * 48 // h, 4 * 64 // w))
    assert e.viewer.cell_box == (y0, x0, y1, x1)
    want = np.zeros((48 * s, 64 * s), bool)
    want[y0:y1, x0:x1] = True
    want[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2] = False
    img = _png(e.viewer.values["image"])
    np.testing.assert_array_equal((img == CELL_OUTLINE).all(-1), want)
    np.testing.assert_array_equal(img[~want], render.upscale(render.as_uint8(ds.images[5]), s)[~want])
    # a lasso selects the samples of the cells inside; the highlight is all their cells
    e.scatter.map_widget.selection = np.array([0, 1, k])
    assert e.session.selection.tolist() == [0, 5] == other.session.selection.tolist()
    assert len(e.scatter.map_widget.selection) == 2 * h * w
    e.scatter.map_widget.hovering = 3 * h * w + 7
    assert e.scatter.hovered == 3 and other.scatter.linked_hover == 3  # linking follows the swapped map
    e.session.map_points = "flatten"
    assert type(e.scatter).__name__ == "ProjectionScatter" and e.session.selected_cell is None
    assert e.viewer.cell_box is None and not (_png(e.viewer.values["image"]) == CELL_OUTLINE).all(-1).any()
    assert e.errors.messages == []


def test_the_cell_movement_overlay_blends_the_colormap_at_its_alpha(model, ds) -> None:
    from latent_widgets.data import colors
    from latent_widgets.widgets import InterpolationSlider
    from latent_widgets.widgets.cell_overlay import MOVEMENT_ALPHA, MOVEMENT_CMAP

    sl = InterpolationSlider(model, ds, index_a=3, index_b=17, n_steps=5, asynchronous=False, scrub_steps=0)
    sl.show_movement = True
    m = sl.session.cell_movement()
    assert sl.movement is m
    t = sl.tile_scale
    h, w = m.grid
    r, c = 4, 9
    y, x = (r * 48 // h) * t, (c * 64 // w) * t  # a pixel of cell (r, c) at tile scale
    # image A: its pixel blended with the colormap of the cell's total over the strip's largest total
    cm = colors.colormap_rgb(MOVEMENT_CMAP, [m.total[r, c] / m.total.max()])[0].astype(float)
    a = render.as_uint8(ds.images[3])[r * 48 // h, c * 64 // w].astype(float)
    np.testing.assert_array_equal(
        _png(sl._a_image.value)[y, x], np.round((1 - MOVEMENT_ALPHA) * a + MOVEMENT_ALPHA * cm)
    )
    # strip tile 2: the mask's colour blended with the colormap of the cell's step 1 -> 2 movement
    step = sl.session.strip.steps[2]
    cm = colors.colormap_rgb(MOVEMENT_CMAP, [m.per_step[1, r, c] / m.per_step.max()])[0].astype(float)
    base = ds.palette[step.mask[r * 48 // h, c * 64 // w]].astype(float)
    np.testing.assert_array_equal(
        _png(sl.strip_tiles.step_values[2])[y, x], np.round((1 - MOVEMENT_ALPHA) * base + MOVEMENT_ALPHA * cm)
    )
    # the first tile has no previous step: the plain mask
    np.testing.assert_array_equal(
        _png(sl.strip_tiles.step_values[0]), _png(render.mask_png(sl.session.strip.steps[0].mask, ds.palette, scale=t))
    )
    sl.show_movement = False
    assert (
        sl.movement is None and _png(sl._a_image.value).tolist() == _png(render.to_png(ds.images[3], scale=t)).tolist()
    )


def test_a_startup_error_is_shown_and_raised_by_session_wait(ds):
    # The case: a LatentModel for 32x32 images, a dataset of 48x64 ones.
    for t in threading.enumerate():  # an earlier session's UMAP warm-up hides TensorFlow while it imports umap
        if t.name == "latent-widgets-warm-up":
            t.join()
    import keras

    from latent_widgets import LatentModel
    from latent_widgets.model.errors import LatentModelError

    keras.utils.set_random_seed(0)
    image = keras.Input((32, 32, 3))
    z = keras.layers.Conv2D(4, 3, strides=4, padding="same", name="latent")(image)
    out = keras.layers.Conv2DTranspose(12, 4, strides=4, padding="same", activation="softmax")(z)
    ex = LatentExplorer(LatentModel.from_model(keras.Model(image, out)), ds, methods=("pca",))
    ex.wait()  # the explorer's own wait shows errors, it does not raise them
    assert any("48x64 (HxW) but the model expects 32x32" in m for m in ex.errors.messages)
    with pytest.raises(LatentModelError, match=r"images are 48x64 \(HxW\) but the model expects 32x32; resize"):
        ex.session.wait()
    assert len(ex.session.errors) == 1 and not ex.session.ready
    ex.close()
