"""``ExplorerSession`` driven from plain Python: no widget, no browser.

References: the interpolated latent and its mask computed by hand from the
model's own encode/decode, scikit-learn's PCA for the map, a brute-force
nearest-neighbour loop for the strip's neighbours.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import traitlets

from latent_widgets.interpolation import steps
from latent_widgets.session import ExplorerSession


def lerp_mask(model, ds, a: int, b: int, alpha: float) -> np.ndarray:
    """The mask at ``alpha`` on the straight line between two samples' latents, by hand."""
    z = model.encode(ds.images[[a, b]]).latents.astype(np.float64)
    zt = ((1 - alpha) * z[0] + alpha * z[1]).astype(np.float32)
    return model.decode(zt[None]).argmax(-1)[0]


def test_the_session_imports_no_widget_library() -> None:
    code = (
        "import sys, latent_widgets.session; "
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
    s = ExplorerSession(slow, ds, index_a=1, index_b=17)
    s.wait()
    seen: list[float] = []
    s.observe(lambda c: seen.append(c["new"].alpha), "current")
    for alpha in (0.11, 0.23, 0.31, 0.42, 0.57):
        s.alpha = alpha
    assert "decode" in s.busy  # the first one is running
    s.wait()
    assert s.current.alpha == pytest.approx(0.57) and s.busy == ()
    # queued requests that were no longer the newest were skipped, not decoded
    assert slow.calls < 5 and s.ondemand_decodes == slow.calls
    assert seen == sorted(seen)  # an older result never replaced a newer one
    np.testing.assert_array_equal(s.current.mask, lerp_mask(model, ds, 1, 17, 0.57))
    s.close()


def test_a_map_fit_does_not_hold_up_the_slider(model, ds, monkeypatch) -> None:
    from latent_widgets import projection

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
    from latent_widgets import projection

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
    import latent_widgets.session as session_module

    small = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert small.predictions is not None and small.predictions.dtype == np.uint8
    # against the model's own prediction, one call for all images
    np.testing.assert_array_equal(small.predictions, model.predict_masks(ds.images))

    h, w = ds.image_size
    monkeypatch.setattr(session_module, "PREDICT_ALL_PIXELS", len(ds) * h * w - 1)
    large = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0)
    assert large.ready and large.predictions is None
    forced = ExplorerSession(model, ds, asynchronous=False, scrub_steps=0, predict=True)
    assert forced.predictions is not None
    with pytest.raises(ValueError, match="predict='yes'"):
        ExplorerSession(model, ds, asynchronous=False, predict="yes")
