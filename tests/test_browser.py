"""The explorer in a real browser: Voilà serves a notebook, headless Chromium drives it.

The notebook builds the explorer on 40 synthetic road scenes (4 drives) with
the closed-form numpy toy model of ``tests/toy.py``, through the public API
(``make docs-images`` takes the screenshots of a SegNet of the zoo trained
for a few seconds instead: see ``browser_harness.notebook_cells``). The tests
assert what a user sees:

- the scatter draws one mark per sample;
- dragging the alpha slider with the mouse changes the decoded mask image;
- hovering a point shows its tooltip, clicking it changes the mask viewer;
- while a UMAP map is being fitted, dragging alpha still changes the mask;
- a lasso drawn with the mouse sets ``session.selection`` in the kernel to
  the points inside it, and the selection panel shows its count and its
  confusion matrix; a selection set from Python highlights its points;
- at 960 and 1920 px wide, the map overlaps no other panel, the strip stays
  inside the explorer, every point is clickable at its centre and the
  shown index labels do not overlap;
- two samples drawn on one spot: a click and the hover caption answer for
  the one drawn on top, and zooming in separates them.

The layout, click and label tests run on a second notebook whose map is
fixed (:data:`browser_harness.LAYOUT_CELLS`: given points and the numpy toy
model, no training), so that their verdict is the same on every CPU; a
trained model's floats, and the map made of them, differ from one CPU to
another (AVX-512 or not, oneDNN or not).

Screenshots go to ``$LATENT_WIDGETS_SCREENSHOTS`` (``make docs-images`` sets
it to ``docs/img``), else to a temporary folder: the suite leaves the work
tree clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_harness import (
    COINCIDENT,
    LAYOUT_CELLS,
    N_SAMPLES,
    SELECTION_CELLS,
    browser_missing,
    drag_alpha,
    draw_lasso,
    explorer_page,
    served_or_skipped,
    wait_for_alpha_caption,
    wait_for_svg_map,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_or_skipped(tmp_path_factory.mktemp("voila"), SELECTION_CELLS) as url:
        yield url


@pytest.fixture(scope="module")
def layout_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The explorer on a fixed map (:data:`~browser_harness.LAYOUT_CELLS`): the same picture on every CPU."""
    with served_or_skipped(tmp_path_factory.mktemp("voila-layout"), LAYOUT_CELLS) as url:
        yield url


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go."""
    target = os.environ.get("LATENT_WIDGETS_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def chromium():
    """Playwright's Chromium, shared: a process runs one ``sync_playwright()`` at a time, and two pages are open."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p.chromium


@pytest.fixture(scope="module")
def page(voila_url: str, chromium):
    with explorer_page(voila_url, chromium=chromium) as pg:
        wait_for_svg_map(pg)
        # The path's overlay (A, B, the ringed neighbours, their labels) is drawn once the map can place the
        # path: a message after the map's own, which a test reading labels or clicking points must wait for.
        pg.wait_for_function(f"() => ({LABELS_JS})().some(b => b.text === '25')", timeout=30_000)
        yield pg


MAIN_DOTS_JS = """() => {
  // Every bqplot mark draws its points as .dot paths, one group per mark, in
  // the order of figure.marks: the first group is the samples.
  const fig = document.querySelector('.lw-projection-scatter');
  const groups = new Map();
  fig.querySelectorAll('.dot').forEach(d => {
    const mark = d.parentElement.parentElement;
    if (!groups.has(mark)) groups.set(mark, []);
    groups.get(mark).push(d);
  });
  const first = groups.values().next().value || [];
  return first.map((d, i) => {
    const r = d.getBoundingClientRect();
    const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
    // Whether a click there reaches this point (not an overlay mark).
    return {i, cx, cy, w: r.width, top: document.elementFromPoint(cx, cy) === d};
  });
}"""


LABELS_JS = """() => {
  // The samples' index labels on display (the first mark's; bqplot names the overlay's points "Dot<i>").
  const first = document.querySelector('.lw-projection-scatter .dot').parentElement.parentElement;
  return Array.from(first.querySelectorAll(':scope > .object_grp > text'))
    .filter(e => e.textContent.replace(/\u200b/g, '') && e.getAttribute('display') !== 'none')
    .map(e => { const r = e.getBoundingClientRect();
                return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, text: e.textContent}; });
}"""


def _src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.src")


def test_scatter_draws_one_mark_per_sample(page, shots):
    dots = page.evaluate(MAIN_DOTS_JS)
    assert len(dots) == N_SAMPLES
    assert all(d["w"] > 0 for d in dots)
    # each point in its drive's colour (4 drives of 10 frames), none left black by the data join
    fills = page.evaluate(
        """() => { const fig = document.querySelector('.lw-projection-scatter');
                   const first = fig.querySelector('.dot').parentElement.parentElement;
                   return Array.from(first.querySelectorAll('.dot')).map(d => getComputedStyle(d).fill); }"""
    )
    assert len(fills) == N_SAMPLES and "rgb(0, 0, 0)" not in fills
    assert [len({fills[i] for i in range(g * 10, g * 10 + 10)}) for g in range(4)] == [1, 1, 1, 1]
    assert len(set(fills)) == 4
    shown = {b["text"] for b in page.evaluate(LABELS_JS)}
    # index labels where they have room, always the selected point's and A's, B's
    assert {"0", "25"} <= shown <= {str(i) for i in range(N_SAMPLES)} and len(shown) >= N_SAMPLES // 2
    page.locator(".latent-explorer").screenshot(path=str(shots / "explorer.png"))


def test_dragging_the_alpha_slider_changes_the_mask(page, shots):
    before = _src(page, ".lw-current-mask")
    drag_alpha(page, 0.43)
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old", arg=[".lw-current-mask", before], timeout=30_000
    )
    readout = page.inner_text(".lw-alpha-slider .widget-readout")
    assert 0.2 < float(readout) < 0.7
    # the newest request wins: the caption ends at the slider's value
    page.wait_for_function(
        "(v) => Array.from(document.querySelectorAll('.latent-explorer b')).some(b => b.textContent === 'α = ' + v)",
        arg=f"{float(readout):.3f}",
        timeout=30_000,
    )
    assert _src(page, ".lw-current-mask") != before
    page.screenshot(path=str(shots / "explorer_interpolation.png"), clip=_clip_below(page, ".lw-alpha-slider"))


def _clip_below(page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    strip = page.locator(".lw-strip").bounding_box()
    top = max(0, box["y"] - 40)
    return {"x": 0, "y": top, "width": 1400, "height": strip["y"] + strip["height"] - top + 10}


def test_clicking_a_point_changes_the_mask_viewer(page, shots):
    before_image = _src(page, ".lw-viewer-image")
    before_pred = _src(page, ".lw-viewer-prediction")
    dots = page.evaluate(MAIN_DOTS_JS)
    # a point that is not the one shown (sample 0) and not under an overlay mark
    dot = next(d for d in dots if d["top"] and d["i"] not in (0, 25))
    page.mouse.move(dot["cx"], dot["cy"])
    # hovering shows the tooltip with the sample's thumbnail and masks
    page.wait_for_selector(".lw-tooltip img", state="visible", timeout=10_000)
    page.wait_for_function(
        "(i) => document.querySelector('.lw-tooltip').innerText.includes('#' + i)", arg=dot["i"], timeout=10_000
    )
    fig = page.locator(".lw-projection-scatter").bounding_box()
    top = max(0.0, min(fig["y"], dot["cy"] - 170))  # the tooltip opens above the point
    clip = {"x": fig["x"], "y": top, "width": fig["width"] + 160, "height": fig["y"] + fig["height"] - top}
    page.screenshot(path=str(shots / "explorer_tooltip.png"), clip=clip)
    page.mouse.click(dot["cx"], dot["cy"])
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old",
        arg=[".lw-viewer-image", before_image],
        timeout=30_000,
    )
    # the panes update one after another: wait for the prediction's too
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old",
        arg=[".lw-viewer-prediction", before_pred],
        timeout=30_000,
    )
    # the viewer's title names the clicked sample (its update may land after the image's)
    page.wait_for_function(
        "(i) => document.querySelector('.latent-explorer').innerText.includes('#' + i + ' drive')",
        arg=dot["i"],
        timeout=10_000,
    )


def test_set_b_moves_endpoint_b_once_then_clicks_only_show(page):
    page.get_by_role("button", name="set B", exact=True).click()
    dots = [d for d in page.evaluate(MAIN_DOTS_JS) if d["top"] and d["i"] not in (0, 25)]
    first, second = dots[0], dots[-1]
    strip_before = page.eval_on_selector_all(".lw-strip img", "els => els.map(e => e.src)")
    page.mouse.click(first["cx"], first["cy"])
    # the new strip: B's caption names the clicked sample and the decoded steps change
    page.wait_for_function(
        "(i) => document.querySelector('.latent-explorer').innerText.includes('B = #' + i)",
        arg=first["i"],
        timeout=30_000,
    )
    page.wait_for_function(
        "(old) => Array.from(document.querySelectorAll('.lw-strip img')).some((e, k) => e.src !== old[k])",
        arg=strip_before,
        timeout=30_000,
    )
    # the toggle is back on "show": a second click shows its sample and leaves B alone
    show = page.get_by_role("button", name="show", exact=True)
    page.wait_for_function("(e) => e.classList.contains('mod-active')", arg=show.element_handle(), timeout=10_000)
    # The new path is placed on the map after its strip (and may widen the scales): once the session is
    # idle, take the second point where it is drawn now, as a user would see it.
    page.wait_for_function(
        "() => !(document.querySelector('.lw-busy') || {innerText: ''}).innerText.trim()", timeout=60_000
    )
    now = {d["i"]: d for d in page.evaluate(MAIN_DOTS_JS) if d["top"] and d["i"] not in (0, 25, first["i"])}
    second = now.get(second["i"]) or list(now.values())[-1]
    # as a user does: over the point first (the tooltip of the first click may still cover this spot)
    page.mouse.move(second["cx"], second["cy"], steps=5)
    page.wait_for_function(
        "(i) => (document.querySelector('.lw-tooltip') || {innerText: ''}).innerText.includes('#' + i)",
        arg=second["i"],
        timeout=30_000,
    )
    page.mouse.click(second["cx"], second["cy"])
    try:
        page.wait_for_function(
            "(i) => document.querySelector('.latent-explorer').innerText.includes('#' + i + ' drive')",
            arg=second["i"],
            timeout=30_000,
        )
    except Exception:
        hit = page.evaluate(
            "([x, y]) => { const e = document.elementFromPoint(x, y); return e && (e.outerHTML || '').slice(0, 300); }",
            [second["cx"], second["cy"]],
        )
        shown = re.findall(r"#\d+ drive\S*", page.inner_text(".latent-explorer"))
        raise AssertionError(f"clicked {second}: under the pointer {hit}; shown {shown}") from None
    assert f"B = #{first['i']}" in page.inner_text(".latent-explorer")


def test_alpha_changes_the_mask_while_a_map_is_fitted(page):
    # The first UMAP in a fresh kernel imports umap-learn and compiles its
    # numba code: 15-20 s on two cores, on the session's map lane.
    busy = "() => (document.querySelector('.lw-busy') || {}).innerText || ''"
    page.get_by_role("button", name="UMAP", exact=True).click()
    page.wait_for_function(f"() => ({busy})().includes('umap')", timeout=10_000)
    drag_alpha(page, 0.81)
    readout = float(page.inner_text(".latent-explorer .lw-alpha-slider .widget-readout"))
    assert 0.6 < readout < 0.95, readout
    # The kernel decodes the new alpha while the fit still runs: the page is live.
    changed_during_fit = wait_for_alpha_caption(page, readout, busy)
    assert "umap" in changed_during_fit["busy"], changed_during_fit
    # ... and the map arrives in the end, the busy indicator clears (150k epochs: 20-30 s on two idle
    # cores, minutes on a loaded machine).
    page.wait_for_function(f"() => !({busy})().includes('umap')", timeout=360_000)


def test_scrubbing_swaps_grid_frames_in_the_browser(page):
    # The session sends the path's 64-step grid once; the canvas then follows
    # the slider in the page itself (a front-end link, no kernel round trip).
    page.wait_for_function(
        "() => (document.querySelector('.lw-scrub-canvas') || {dataset: {}}).dataset.frames === '64'",
        timeout=60_000,
    )
    assert page.locator(".lw-scrub-canvas").is_visible()
    before = page.eval_on_selector(".lw-scrub-canvas", "c => c.dataset.frame")
    drag_alpha(page, 0.3 if float(page.inner_text(".lw-alpha-slider .widget-readout")) > 0.6 else 0.9)
    readout = float(page.inner_text(".lw-alpha-slider .widget-readout"))
    frame = int(page.eval_on_selector(".lw-scrub-canvas", "c => c.dataset.frame"))
    assert str(frame) != before and frame == round(readout * 63)
    # the canvas shows the decoded mask: its pixels are the palette colours of that frame
    colours = page.eval_on_selector(
        ".lw-scrub-canvas",
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
                  return Array.from(s); }""",
    )
    from latent_widgets.data.colors import CAMVID_PALETTE  # the synthetic scenes' palette

    palette = {",".join(str(int(v)) for v in rgb) for rgb in CAMVID_PALETTE}
    assert len(colours) >= 2 and set(colours) <= palette


# ---------------------------------------------------------------- selection

DOT_STYLES_JS = """() => {
  const fig = document.querySelector('.lw-projection-scatter');
  const first = fig.querySelector('.dot').parentElement.parentElement;
  return Array.from(first.querySelectorAll(':scope > .object_grp > .dot')).map(d => {
    const s = getComputedStyle(d);
    return {stroke: s.stroke, width: parseFloat(s.strokeWidth), opacity: parseFloat(s.opacity)};
  });
}"""


def _kernel_selection(page) -> list[int]:
    import json

    return json.loads(page.inner_text(".lw-test-selection") or "[]")


def _lasso_around(dots: list[dict], fig: dict) -> tuple[list[tuple[float, float]], list[int]]:
    """A circle (24-gon) around a dense spot of the map, no point near its edge; the points inside."""
    import math

    best = None
    for d in dots:
        for r in (34.0, 42.0, 50.0, 58.0, 66.0):
            # inside the figure, off its edges (the selector listens on the plot area)
            if not (fig["x"] + 55 + r < d["cx"] < fig["x"] + fig["width"] - 25 - r):
                continue
            if not (fig["y"] + 15 + r < d["cy"] < fig["y"] + fig["height"] - 35 - r):
                continue
            dist = [math.hypot(o["cx"] - d["cx"], o["cy"] - d["cy"]) for o in dots]
            # the 24-gon's edge lies between r cos(7.5 deg) and r: keep every centre 5 px off it
            if any(r * math.cos(math.pi / 24) - 5 < x < r + 5 for x in dist):
                continue
            inside = [o["i"] for o, x in zip(dots, dist, strict=True) if x < r]
            if 2 <= len(inside) < len(dots) // 2 and (best is None or len(inside) > len(best[2])):
                best = (d, r, inside)
    assert best is not None, "no spot of the map for a clean lasso"
    d, r, inside = best
    ring = [
        (d["cx"] + r * math.cos(2 * math.pi * k / 24), d["cy"] + r * math.sin(2 * math.pi * k / 24)) for k in range(24)
    ]
    return ring, sorted(inside)


def test_a_lasso_sets_the_selection_in_the_kernel_and_shows_its_confusion(page, shots):
    assert _kernel_selection(page) == []
    assert "No selection" in page.inner_text(".lw-selection-summary")
    lasso = page.locator(".lw-lasso-button")
    lasso.click()
    page.wait_for_function("(e) => e.classList.contains('mod-active')", arg=lasso.element_handle(), timeout=10_000)
    dots = page.evaluate(MAIN_DOTS_JS)
    fig = page.locator(".lw-projection-scatter").bounding_box()
    ring, inside = _lasso_around(dots, fig)
    # away from the points first, so that no hover tooltip of an earlier test covers the lasso's start
    page.mouse.move(fig["x"] + 5, fig["y"] + 5)
    page.wait_for_timeout(300)
    draw_lasso(page, ring)
    try:
        page.wait_for_function(
            "(want) => document.querySelector('.lw-test-selection').innerText === want",
            arg=json_list(inside),
            timeout=30_000,
        )
    except Exception:
        start = page.evaluate(
            "([x, y]) => { const e = document.elementFromPoint(x, y); return e && e.outerHTML.slice(0, 200); }",
            list(ring[0]),
        )
        raise AssertionError(
            f"lasso around {inside}: the kernel holds {_kernel_selection(page)}; the lasso started on {start}"
        ) from None
    # the panel shows the count, the confusion matrix and the worst samples
    page.wait_for_function(
        "(n) => document.querySelector('.lw-selection-summary').innerText.includes(n + ' samples selected · mean IoU')",
        arg=len(inside),
        timeout=30_000,
    )
    page.wait_for_function(
        """() => { const img = document.querySelector('.lw-confusion');
                   return img && img.offsetWidth > 100 && img.naturalWidth > 100; }""",
        timeout=30_000,
    )
    # the gallery's widgets are new ones: they render after the summary and the matrix
    page.wait_for_function(
        "(n) => document.querySelectorAll('.lw-worst-item').length === n", arg=min(6, len(inside)), timeout=30_000
    )
    # the lassoed points are highlighted, the others dimmed
    styles = page.evaluate(DOT_STYLES_JS)
    assert all(styles[i]["width"] == 3 for i in inside)
    assert all(styles[i]["opacity"] < 0.5 for i in range(N_SAMPLES) if i not in inside)
    top = page.locator(".lw-projection-scatter").bounding_box()["y"] - 90
    panel = page.locator(".lw-selection-panel").bounding_box()
    page.screenshot(
        path=str(shots / "explorer_selection.png"),
        full_page=True,
        clip={"x": 0, "y": top, "width": 1400, "height": panel["y"] + panel["height"] - top + 6},
    )


def test_a_selection_set_from_python_is_highlighted(page):
    want = [1, 12, 33]
    field = page.locator(".lw-test-set-selection input")
    field.fill(json_list(want))
    field.press("Enter")
    page.wait_for_function(
        "(want) => document.querySelector('.lw-test-selection').innerText === want", arg=json_list(want), timeout=30_000
    )
    page.wait_for_function(
        """(want) => {
            const fig = document.querySelector('.lw-projection-scatter');
            const first = fig.querySelector('.dot').parentElement.parentElement;
            const dots = Array.from(first.querySelectorAll(':scope > .object_grp > .dot'));
            return dots.every((d, i) => (parseFloat(getComputedStyle(d).strokeWidth) === 3) === want.includes(i));
        }""",
        arg=want,
        timeout=30_000,
    )
    styles = page.evaluate(DOT_STYLES_JS)
    assert [i for i, s in enumerate(styles) if s["opacity"] > 0.5] == want
    page.wait_for_function(
        "() => document.querySelector('.lw-selection-summary').innerText.includes('3 samples selected')",
        timeout=30_000,
    )
    # back to clicking: the next tests click points
    page.locator(".lw-lasso-button").click()
    page.locator(".lw-clear-selection").click()
    page.wait_for_function("() => document.querySelector('.lw-test-selection').innerText === '[]'", timeout=30_000)


#: The magenta pixels of the image pane: ``{width, height, magenta: [pixel index...]}`` (decoded in the page).
MAGENTA_JS = """(sel) => {
  const img = document.querySelector(sel);
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const magenta = [];
  for (let k = 0; k < d.length; k += 4) if (d[k] === 255 && d[k + 1] === 0 && d[k + 2] === 255) magenta.push(k / 4);
  return {width: c.width, height: c.height, magenta: magenta};
}"""


def _kernel_cell(page) -> dict:
    import json

    return json.loads(page.inner_text(".lw-test-cell"))


def test_cells_mode_draws_the_webgl_map_and_a_clicked_cell_is_outlined(voila_url, chromium, shots):
    """The "points" dropdown switched to cells in the page: a WebGL map of every cell; a click outlines its cell."""
    from browser_harness import GL_POINT_JS, WEBGL_CHROMIUM_ARGS, gl_point

    from latent_widgets.latents.cells import cell_box
    from latent_widgets.widgets.cell_overlay import CELL_OUTLINE, outline_box

    # A page of its own (WebGL needs SwiftShader's flags), on a kernel of its own.
    with explorer_page(voila_url, args=WEBGL_CHROMIUM_ARGS, chromium=chromium) as pg:
        viewer = ".latent-explorer .lw-mask-viewer"
        assert pg.query_selector(".latent-explorer .lw-projection-scatter")  # 40 samples: the SVG map
        points = ".latent-explorer .lw-map-points select"
        labels = pg.eval_on_selector(points, "e => Array.from(e.options).map(o => o.textContent)")
        # "cell (h x w per sample)"; ipywidgets writes the spaces of an option as no-break spaces
        cells = [k for k, t in enumerate(labels) if t.replace("\xa0", " ").startswith("cell (")]
        assert len(cells) == 1, labels
        pg.select_option(points, index=cells[0])
        gl_map = ".latent-explorer .lw-webgl-map .lw-gl-map"
        pg.wait_for_selector(gl_map, timeout=60_000)
        assert not pg.query_selector(".latent-explorer .lw-projection-scatter")
        state = _kernel_cell(pg)
        (h, w), n_points = state["grid"], state["points"]
        assert n_points == N_SAMPLES * h * w > 400, state
        # the cells' PCA arrives after the swap: wait until the session is idle and the points are drawn
        pg.wait_for_function(
            "() => !((document.querySelector('.latent-explorer .lw-busy') || {}).innerText || '').trim()",
            timeout=60_000,
        )
        target = 17 * h * w + (h // 2) * w + w // 2  # a middle cell of sample 17
        pg.wait_for_function(f"(args) => ({GL_POINT_JS})(args) !== null", arg=[gl_map, target], timeout=60_000)
        pg.locator(gl_map).scroll_into_view_if_needed()
        p = gl_point(pg, target, gl_map)
        assert p["left"] < p["x"] < p["left"] + p["width"] and p["top"] < p["y"] < p["top"] + p["height"], p
        # as a user does: onto the point (regl-scatterplot picks the point under the pointer as it moves), click
        pg.mouse.move(p["x"] - 30, p["y"] - 30)
        pg.mouse.move(p["x"], p["y"], steps=5)
        pg.mouse.click(p["x"], p["y"])
        try:
            pg.wait_for_function(
                "() => JSON.parse(document.querySelector('.lw-test-cell').innerText).cell !== null", timeout=30_000
            )
        except Exception:
            pg.screenshot(path=str(shots / "explorer_cells_failed.png"), full_page=True)
            raise AssertionError(f"a click at {p} selected no cell: the kernel holds {_kernel_cell(pg)}") from None
        state = _kernel_cell(pg)
        sample, (row, col) = state["selected"], state["cell"]
        # the point clicked is that cell of that sample (points overlap: one drawn within a few px of the target)
        clicked = gl_point(pg, sample * h * w + row * w + col, gl_map)
        assert abs(clicked["x"] - p["x"]) < 8 and abs(clicked["y"] - p["y"]) < 8, (state, clicked, p)
        pg.wait_for_function(
            "(want) => document.querySelector('.latent-explorer .lw-mask-viewer').innerText.includes(want)",
            arg=f"#{sample} ",
            timeout=30_000,
        )
        # the image shown is that sample's, with exactly the cell's 2 px magenta border
        image = ".latent-explorer .lw-viewer-image"
        pg.wait_for_function(
            f"(sel) => {{ const r = ({MAGENTA_JS})(sel); return r !== null && r.magenta.length > 0; }}",
            arg=image,
            timeout=30_000,
        )
        got = pg.evaluate(MAGENTA_JS, image)
        scale = got["width"] // 64
        assert (got["width"], got["height"]) == (64 * scale, 48 * scale), got["width"]
        box = [v * scale for v in cell_box((h, w), (48, 64), row, col)]
        want = outline_box(np.zeros((48 * scale, 64 * scale, 3), np.uint8), box)
        want_px = np.flatnonzero((want == CELL_OUTLINE).all(axis=2))
        assert len(want_px) > 0 and sorted(got["magenta"]) == want_px.tolist(), (box, len(got["magenta"]))
        assert f"#{sample} " in pg.inner_text(viewer)
        pg.locator(".latent-explorer").screenshot(path=str(shots / "explorer_cells.png"))


def json_list(values: list[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]"


# ---------------------------------------------------------------- layout at two widths

LAYOUT_WIDTHS = (960, 1920)

CLICKABLE_JS = """() => {
  // What a click at the centre of each sample's dot reaches: "own" (the dot,
  // or its own label: same .object_grp), "dot" (another sample's dot drawn
  // over it: the two samples nearly coincide), "label" (another sample's
  // label), "overlay" (a path mark) or "none".
  const fig = document.querySelector('.lw-projection-scatter');
  const first = fig.querySelector('.dot').parentElement.parentElement;
  const dots = Array.from(first.querySelectorAll(':scope > .object_grp > .dot'));
  const centre = e => { const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2, r.width]; };
  return dots.map((d, i) => {
    const [cx, cy, w] = centre(d);
    const hit = document.elementFromPoint(cx, cy);
    let kind = 'none', other = null, dist = null;
    if (hit === d || (hit && hit.parentElement === d.parentElement)) kind = 'own';
    else if (hit && hit.parentElement && hit.parentElement.parentElement === first) {
      other = dots.findIndex(o => o.parentElement === hit.parentElement);
      kind = hit.classList.contains('dot') ? 'dot' : 'label';
      const [ox, oy] = centre(dots[other]);
      dist = Math.hypot(ox - cx, oy - cy);
    } else if (hit && fig.contains(hit)) kind = 'overlay';
    return {i, cx, cy, w, kind, other, dist};
  });
}"""

BOXES_JS = """(sel) => Array.from(document.querySelectorAll(sel)).map(e => {
  const r = e.getBoundingClientRect();
  return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, text: e.textContent || ''};
})"""


def _intersect(a: dict, b: dict, tol: float = 0.5) -> bool:
    return a["x0"] + tol < b["x1"] and b["x0"] + tol < a["x1"] and a["y0"] + tol < b["y1"] and b["y0"] + tol < a["y1"]


@pytest.fixture(scope="module", params=LAYOUT_WIDTHS, ids=[f"{w}px" for w in LAYOUT_WIDTHS])
def sized_page(request, chromium, layout_url: str):
    """The explorer on the fixed map (a fresh kernel) in a window ``request.param`` px wide.

    Its layout, labels and clicks depend on no model's floats: the same on every CPU.
    """
    width = request.param
    with explorer_page(layout_url, viewport=(width, 1450), chromium=chromium) as pg:
        # Tall enough for the whole explorer: nothing is painted below the window.
        bottom = pg.evaluate("() => document.querySelector('.latent-explorer').getBoundingClientRect().bottom")
        pg.set_viewport_size({"width": width, "height": int(max(1450, bottom + 40))})
        pg.wait_for_timeout(500)
        yield width, pg


def test_layout_reflows_without_overlap(sized_page, shots):
    width, page = sized_page
    page.locator(".latent-explorer").screenshot(path=str(shots / f"explorer_{width}.png"))
    (explorer,) = page.evaluate(BOXES_JS, ".latent-explorer")
    (fig,) = page.evaluate(BOXES_JS, ".lw-projection-scatter")
    others = {
        sel: page.evaluate(BOXES_JS, sel)
        for sel in (
            *(f".lw-viewer-{p}" for p in ("image", "truth", "prediction", "overlay", "errors")),
            ".lw-mask-viewer",
            ".lw-slider-panel",
            ".lw-strip",
        )
    }
    for sel, boxes in others.items():
        assert boxes, f"{sel} is missing"
        for box in boxes:
            assert not _intersect(fig, box), f"the map {fig} overlaps {sel} {box} at {width}px"
    # nothing is wider than the window; the strip scrolls inside the explorer
    assert explorer["x1"] <= width + 0.5
    (strip,) = others[".lw-strip"]
    assert strip["x1"] <= explorer["x1"] + 0.5, (strip, explorer)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    # controls keep their text whole: "pan/zoom" (not "pan/zo..."), the opacity readout (not "0.!")
    button = page.get_by_role("button", name="pan/zoom")
    assert button.evaluate("e => e.scrollWidth <= e.clientWidth"), "the pan/zoom label is cut"
    readout = page.locator(".lw-opacity .widget-readout")
    assert readout.inner_text().strip() == "0.50"
    assert readout.evaluate("e => e.scrollWidth <= e.clientWidth && e.clientWidth >= 24"), "opacity readout cut"


PLOT_ORIGIN_JS = """() => {
  const bg = document.querySelector('.lw-projection-scatter .plotarea_background');
  if (!bg) return null;
  const r = bg.getBoundingClientRect();
  return [r.x, r.y];
}"""


def test_the_kernel_knows_where_each_point_is_drawn(sized_page):
    """The index labels are placed from the kernel's screen positions: they must be the browser's.

    bqplot pads a scale by its marks' marker size and the figure by 2.5 % in y
    unless told not to; the kernel's positions were then up to 20 px off and
    labels it had kept apart overlapped in the page.
    """
    width, page = sized_page
    page.click(".lw-test-screen-button")
    page.wait_for_function("() => document.querySelector('.lw-test-screen').innerText.trim().length > 0")
    kernel = np.array(json.loads(page.inner_text(".lw-test-screen")))
    origin = page.evaluate(PLOT_ORIGIN_JS)
    assert origin is not None, "no .plotarea_background in bqplot's figure"
    drawn = np.array([(d["cx"], d["cy"]) for d in page.evaluate(MAIN_DOTS_JS)]) - origin
    assert kernel.shape == drawn.shape == (N_SAMPLES, 2)
    err = np.abs(kernel - drawn).max()
    print(f"{width}px: kernel vs browser point positions, largest difference {err:.2f} px")
    assert err < 1.0, f"at {width}px the kernel places points up to {err:.1f} px from where the browser draws them"


def test_every_point_is_clickable_and_labels_do_not_collide(sized_page):
    width, page = sized_page
    dots = page.evaluate(CLICKABLE_JS)
    assert len(dots) == N_SAMPLES
    # a point's centre may only be under a sample drawn on top of it at (almost) the same place
    blocked = [d for d in dots if d["kind"] != "own" and not (d["kind"] == "dot" and d["dist"] < d["w"] / 2)]
    assert not blocked, f"at {width}px a click at these points' centres reaches something else: {blocked}"
    # the fixed map draws one pair on (almost) one spot: the lower one's centre is under the upper one
    coincident = [d for d in dots if d["kind"] == "dot"]
    assert [(d["i"], d["other"]) for d in coincident] == [COINCIDENT], coincident
    clickable = N_SAMPLES - len(coincident)
    print(f"{width}px: {clickable}/{N_SAMPLES} points clickable at their centre; under a coincident one: {coincident}")
    labels = page.evaluate(LABELS_JS)
    assert len(labels) >= N_SAMPLES // 2
    # A (0), B (25), the selected point (0) and the strip's neighbours ("#j d=..." under
    # each step) are always labelled, they may touch each other; others only where they fit
    neighbours = re.findall(r"#(\d+) d=", page.inner_text(".lw-strip"))
    forced = {"0", "25", *neighbours}
    assert forced <= {b["text"] for b in labels}
    clashes = [
        (a["text"], b["text"])
        for k, a in enumerate(labels)
        for b in labels[k + 1 :]
        if _intersect(a, b, tol=1.0) and not {a["text"], b["text"]} <= forced
    ]
    assert not clashes, f"overlapping index labels at {width}px: {clashes}"


def _kernel_selected(page) -> int:
    return json.loads(page.inner_text(".lw-test-cell"))["selected"]


def _hover_names(page, dot: dict, i: int) -> None:
    """Move onto ``dot`` as a user does and wait until the hover caption names sample ``i``."""
    page.mouse.move(dot["cx"] - 40, dot["cy"] + 40)
    page.mouse.move(dot["cx"], dot["cy"], steps=5)
    page.wait_for_function(
        "(i) => (document.querySelector('.lw-tooltip') || {innerText: ''}).innerText.includes('#' + i + ' ')",
        arg=i,
        timeout=30_000,
    )


def test_coincident_points_the_one_on_top_answers_and_zoom_separates_them(sized_page):
    """Two samples drawn on one spot: the click and the hover caption are the upper one's; zoomed, each its own."""
    width, page = sized_page
    low, high = COINCIDENT
    dots = {d["i"]: d for d in page.evaluate(MAIN_DOTS_JS)}
    gap = float(np.hypot(dots[low]["cx"] - dots[high]["cx"], dots[low]["cy"] - dots[high]["cy"]))
    assert gap < 1.5 and not dots[low]["top"] and dots[high]["top"], (gap, dots[low], dots[high])
    _hover_names(page, dots[low], high)
    page.mouse.click(dots[low]["cx"], dots[low]["cy"])
    page.wait_for_function(
        "(i) => JSON.parse(document.querySelector('.lw-test-cell').innerText).selected === i", arg=high, timeout=30_000
    )
    # zoomed in around the pair (pan/zoom mode, the wheel), the two are apart and each answers for itself
    panzoom = page.get_by_role("button", name="pan/zoom")
    panzoom.click()
    for _ in range(40):
        dots = {d["i"]: d for d in page.evaluate(MAIN_DOTS_JS)}
        gap = float(np.hypot(dots[low]["cx"] - dots[high]["cx"], dots[low]["cy"] - dots[high]["cy"]))
        if gap > 2 * dots[low]["w"]:
            break
        page.mouse.move((dots[low]["cx"] + dots[high]["cx"]) / 2, dots[low]["cy"])
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(150)
    assert gap > 2 * dots[low]["w"], f"zoomed in, samples {low} and {high} are still {gap:.1f} px apart"
    panzoom.click()
    page.mouse.move(5, 5)  # off the map: the hover tooltip (part of the figure) goes, and uncovers the points
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    with contextlib.suppress(PlaywrightTimeoutError):  # the assertion below says what covers them
        page.wait_for_function(
            f"([a, b]) => {{ const d = ({CLICKABLE_JS})(); return d[a].kind === 'own' && d[b].kind === 'own'; }}",
            arg=[low, high],
            timeout=10_000,
        )
    kinds = {d["i"]: d for d in page.evaluate(CLICKABLE_JS)}
    hits = [
        page.evaluate(
            "([x, y]) => { const e = document.elementFromPoint(x, y); return e && e.outerHTML.slice(0, 300); }",
            [kinds[i]["cx"], kinds[i]["cy"]],
        )
        for i in (low, high)
    ]
    assert kinds[low]["kind"] == kinds[high]["kind"] == "own", (kinds[low], kinds[high], hits)
    for i in (low, high):
        _hover_names(page, dots[i], i)
        page.mouse.click(dots[i]["cx"], dots[i]["cy"])
        page.wait_for_function(
            "(i) => JSON.parse(document.querySelector('.lw-test-cell').innerText).selected === i", arg=i, timeout=30_000
        )
    print(f"{width}px: {low} and {high} {gap:.1f} px apart once zoomed; each clicked and hovered on its own")
    page.locator("button[title='reset zoom']").first.click()
