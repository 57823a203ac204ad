"""Panning a map of many points in a browser: the explorer's WebGL map, bare jupyter-scatter, bqplot-gl.

One Voilà server (the notebook of ``browser_harness.scale_notebook_cells``)
and one headless Chromium (WebGL on SwiftShader: software, as on CI). Each
variant is a page of that notebook (Voilà hands ``?variant=&n=`` to the
kernel):

- ``explorer``: the :class:`~latent_widgets.LatentExplorer` of ``n``
  samples, whose map is the :class:`~latent_widgets.widgets.WebGLMap` with
  its overlays (path, neighbours, endpoints, the current point);
- ``bare``: a jupyter-scatter widget of the same points, configured alike;
- ``scattergl``: bqplot-gl's ``ScatterGL`` of the same points (PanZoom),
  served by a second Voilà whose kernel and front end use bqplot 0.13.0a0:
  bqplot-gl 0.1.1's front end was built against bqplot's JS 0.6.0-alpha.0
  and fails on the project's bqplot 0.13.1 (``s.model.getScales is not a
  function``, nothing drawn). That bqplot is installed once with pip into
  ``.cache/bench/bqplot-0.13.0a0`` (``--target``, the venv untouched) and put
  first on ``PYTHONPATH`` / ``JUPYTER_PATH`` for that server only.

Panning fps: the mouse drags the map in circles for a few seconds while
the page counts animation frames (``requestAnimationFrame``: a frame the
renderer holds up is a frame not shown); the median of 3 drags. For the
jupyter-scatter maps the renderer's own draws per second are given too.
First draw: from the map's element entering the page (its state, points
included, has arrived) to the first screenshot of it with points drawn.

``map_fps(n)`` returns the figures; ``map_100k_vs_raw = explorer / bare``
(goal >= 0.9) and ``map_100k_vs_bqplot_gl = explorer / scattergl``
(goal >= 5). The integrator imports it into ``benchmarks/bench_scale.py``.

Usage::

    .venv/bin/python benchmarks/_scale_browser.py [--n 100000] [--sizes 2000,20000,100000]
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

GOAL_VS_RAW = 0.9
GOAL_VS_BQPLOT_GL = 5.0
VARIANTS = ("explorer", "bare", "scattergl")
SELECTORS = {
    "explorer": ".latent-explorer .lw-gl-map",
    "bare": ".lw-bare-map",
    "scattergl": ".lw-scattergl-map",
}

# Counts animation frames (and jupyter-scatter's draws) until stopped.
COUNT_JS = """(sel) => {
  const canvas = Array.from(document.querySelectorAll(sel + ' canvas'))
    .find(c => c.parentElement && c.parentElement.parentElement && c.parentElement.parentElement.api);
  const api = canvas && canvas.parentElement.parentElement.api;
  const rec = window.__lwCount = {frames: [], draws: 0, stop: false};
  if (api) api.subscribe('draw', () => { rec.draws += 1; });
  const tick = (t) => { rec.frames.push(t); if (!rec.stop) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""
STOP_JS = """() => { const r = window.__lwCount; r.stop = true;
  const f = r.frames, dt = (f[f.length - 1] - f[0]) / 1000;
  return {frames: f.length, seconds: dt, draws: r.draws}; }"""


def _drawn(png: bytes) -> bool:
    """Whether a screenshot of a map shows points (more than a few non-background pixels)."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    background = np.median(a.reshape(-1, 3), axis=0)
    return int((np.abs(a - background).sum(axis=-1) > 60).sum()) > 200


def _first_draw(page, sel: str, timeout_s: float = 300.0) -> float:
    deadline = time.monotonic() + timeout_s
    while not page.query_selector(sel + " canvas"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {sel} canvas in {timeout_s:.0f} s:\n" + page.inner_text("body")[-2000:])
        if "Traceback" in page.inner_text("body"):
            raise RuntimeError(page.inner_text("body")[-3000:])
        page.wait_for_timeout(25)
    t0 = time.monotonic()
    while not _drawn(page.locator(sel).screenshot()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sel}: nothing drawn in {timeout_s:.0f} s")
        page.wait_for_timeout(25)
    return time.monotonic() - t0


def _pan_fps(page, sel: str, seconds: float) -> tuple[float, float]:
    # the largest canvas is the map's (jupyter-scatter has a 0-wide one for its labels' measures)
    boxes = [b for b in (c.bounding_box() for c in page.locator(sel + " canvas").all()) if b]
    box = max(boxes, key=lambda b: b["width"] * b["height"])
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    r = min(box["width"], box["height"]) / 6
    page.mouse.move(cx + r, cy)
    page.evaluate(COUNT_JS, sel)
    page.mouse.down()
    t0, k = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        k += 1
        page.mouse.move(cx + r * math.cos(k / 8), cy + r * math.sin(k / 8))
    page.mouse.up()
    rec = page.evaluate(STOP_JS)
    return (rec["frames"] - 1) / max(rec["seconds"], 1e-9), rec["draws"] / max(rec["seconds"], 1e-9)


def _measure(browser, url: str, variant: str, n: int, seconds: float, repeats: int) -> dict:
    sel = SELECTORS[variant]
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    try:
        page.goto(f"{url}?variant={variant}&n={n}&gl=1000", timeout=600_000)
        try:
            first = _first_draw(page, sel, timeout_s=180.0)
        except TimeoutError as exc:  # reported as nan: the fps of a map never drawn is still measured
            print(f"  {variant}: {exc}", flush=True)
            first = float("nan")
        if variant == "explorer":  # the strip, the last thing drawn: the kernel is quiet while panning
            page.wait_for_function(
                "() => document.querySelectorAll('.latent-explorer .lw-strip img').length >= 24", timeout=300_000
            )
            # ... and the session idle (the scrub grid, the neighbour index): on two cores a busy kernel
            # takes the CPU that software WebGL draws with, which would measure the jobs, not the map.
            page.wait_for_function(
                "() => !(document.querySelector('.latent-explorer .lw-busy') || {innerText: ''}).innerText.trim()",
                timeout=600_000,
            )
        page.locator(sel).scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        runs = [_pan_fps(page, sel, seconds) for _ in range(repeats)]
        if math.isnan(first):
            # A canvas that never drew anything pans at the display's rate: that is no figure.
            runs = [(float("nan"), float("nan"))]
        return {
            "fps": statistics.median(r[0] for r in runs),
            "draws_per_s": statistics.median(r[1] for r in runs),
            "first_draw_s": first,
        }
    finally:
        page.close()


#: The bqplot whose front end bqplot-gl 0.1.1 was built against (its labextension needs ~0.6.0-alpha.0).
BQPLOT_FOR_GL = "0.13.0a0"


def bqplot_gl_env() -> dict[str, str]:
    """Environment for a server whose kernel and page use bqplot ``BQPLOT_FOR_GL`` (installed on first use)."""
    import os
    import subprocess

    target = REPO / ".cache" / "bench" / f"bqplot-{BQPLOT_FOR_GL}"
    if not (target / "bqplot" / "__init__.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                f"bqplot=={BQPLOT_FOR_GL}",
            ],
            check=True,
        )
    paths = [str(target), os.environ.get("PYTHONPATH", "")]
    return {
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(target / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p
        ),
    }


def map_fps(n: int = 100_000, *, sizes: tuple[int, ...] | None = None, seconds: float = 3.0, repeats: int = 3) -> dict:
    """Panning fps and first-draw time of the three maps of ``n`` points (and of ``sizes``, if given).

    Returns
    -------
    dict
        ``map_100k_vs_raw`` (explorer / bare fps), ``map_100k_vs_bqplot_gl``
        (explorer / ScatterGL fps), and per size and variant
        ``{"fps", "draws_per_s", "first_draw_s"}`` under ``results[n][variant]``.
    """
    from browser_harness import CHROMIUM, WEBGL_CHROMIUM_ARGS, browser_missing, scale_notebook_cells, voila_server
    from playwright.sync_api import sync_playwright

    reason = browser_missing()
    if reason:
        raise RuntimeError(reason)
    results: dict[int, dict[str, dict]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory() as tmp_gl,
        voila_server(Path(tmp), scale_notebook_cells(n)) as url,
        voila_server(Path(tmp_gl), scale_notebook_cells(n), extra_env=bqplot_gl_env()) as url_gl,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=WEBGL_CHROMIUM_ARGS)
        try:
            for size in dict.fromkeys((*(sizes or ()), n)):
                results[size] = {}
                for variant in VARIANTS:
                    where = url_gl if variant == "scattergl" else url
                    results[size][variant] = r = _measure(browser, where, variant, size, seconds, repeats)
                    print(
                        f"  {size:>7} points  {variant:<10} {r['fps']:6.1f} fps "
                        f"({r['draws_per_s']:5.1f} draws/s)  first draw {r['first_draw_s']:5.2f} s",
                        flush=True,
                    )
        finally:
            browser.close()
    top = results[n]
    return {
        "map_100k_vs_raw": top["explorer"]["fps"] / max(top["bare"]["fps"], 1e-9),
        "map_100k_vs_bqplot_gl": top["explorer"]["fps"] / max(top["scattergl"]["fps"], 1e-9),
        "n": n,
        "results": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sizes", default="", help="more sizes, e.g. 2000,20000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",") if s)
    out = map_fps(args.n, sizes=sizes, seconds=args.seconds, repeats=args.repeats)
    r = out["results"][args.n]
    e, b, g = r["explorer"], r["bare"], r["scattergl"]
    print(
        f"map_100k_vs_raw = {out['map_100k_vs_raw']:.2f} (goal >= {GOAL_VS_RAW}) "
        f"[explorer {e['fps']:.1f} fps, first draw {e['first_draw_s']:.2f} s; "
        f"bare jupyter-scatter {b['fps']:.1f} fps, {b['first_draw_s']:.2f} s]"
    )
    print(
        f"map_100k_vs_bqplot_gl = {out['map_100k_vs_bqplot_gl']:.2f} (goal >= {GOAL_VS_BQPLOT_GL}) "
        f"[explorer {e['fps']:.1f} fps, {e['first_draw_s']:.2f} s; "
        f"bqplot-gl ScatterGL {g['fps']:.1f} fps, {g['first_draw_s']:.2f} s]"
    )


if __name__ == "__main__":
    main()
