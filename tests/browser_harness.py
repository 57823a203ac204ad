"""Voilà serving an explorer notebook, and headless Chromium on it: shared by the browser tests and benchmarks.

Everything binds 127.0.0.1 and stops by itself: :func:`voila_server` starts
Voilà in its own process group and kills it and its kernels on exit;
:func:`explorer_page` opens the page in Debian's Chromium (Playwright) and
waits until the explorer's strip is drawn.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("LATENT_WIDGETS_CHROMIUM", "/usr/bin/chromium"))
N_SAMPLES = 40
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Voilà runs the notebook before the page is sent; TensorFlow's import and
# the first compiled calls take a while on two shared CI cores.
PAGE_TIMEOUT_MS = 150_000


def notebook_cells(trained: bool = False) -> list[str]:
    """The explorer notebook: 40 synthetic road scenes (4 drives of 10), path 0 -> 25.

    ``trained=False`` (the tests): the closed-form numpy toy model of ``tests/toy.py``, whose latents,
    map and masks are the same on every CPU, and whose mask changes over a good part of the picture
    along the path (2-13 % of the pixels). ``trained=True`` (the docs' screenshots, the browser
    benchmark): a SegNet of the zoo trained for a few seconds, whose masks look like scenes; its floats
    differ from one CPU to another, and along 0 -> 25 its mask changes by a few pixels only.
    """
    if trained:
        make_model = """\
from latent_widgets.model import zoo, training
net = training.train(zoo.segnet(n_classes=data.n_classes, input_shape=(48, 64, 3), width=0.125),
                     data, epochs=6, learning_rate=3e-3, progress=False).model
model = lw.LatentModel.from_model(net)"""
    else:
        make_model = """\
from toy import ToyLatentModel
model = ToyLatentModel(input_shape=(48, 64, 3), n_classes=data.n_classes, latent_channels=8)"""
    return [
        f"""\
import sys
sys.path.insert(0, {str(REPO / "tests")!r})  # the toy model
import latent_widgets as lw

data = lw.synthetic_road_scenes({N_SAMPLES}, size=(48, 64), seed=0, frames_per_drive=10)
{make_model}
print(model)""",
        # UMAP loads its compiled code from numba's disk cache in a second: 150k epochs keep its fit
        # running ~15 s, so that a test can drag alpha while a map is fitted.
        "explorer = lw.LatentExplorer(model, data, index_a=0, index_b=25,\n"
        "                             projection_kwargs={'umap': {'n_epochs': 150_000}})\nexplorer",
    ]


#: The tests' explorer notebook; ``make docs-images`` (``$LATENT_WIDGETS_SCREENSHOTS`` set) takes its
#: screenshots of the trained one.
NOTEBOOK_CELLS = notebook_cells(trained=bool(os.environ.get("LATENT_WIDGETS_SCREENSHOTS")))


#: Test hooks under the explorer: the kernel's ``session.selection`` as JSON (``.lw-test-selection``), a
#: text field (``.lw-test-set-selection``) whose value, JSON, is set as the selection from Python, and the
#: clicked sample and cell as JSON (``.lw-test-cell``), the kernel's screen position of each point on demand
#: (``.lw-test-screen``); the explorer's ``gl_threshold`` is lowered to 400.
SELECTION_HOOK_CELL = """\
import json
import ipywidgets as W

selection_out = W.HTML()
selection_out.add_class("lw-test-selection")
selection_in = W.Text(continuous_update=False, placeholder="selection as JSON")
selection_in.add_class("lw-test-set-selection")

def _show_selection(_change=None):
    selection_out.value = json.dumps(explorer.session.selection.tolist())

explorer.session.observe(_show_selection, "selection")
_show_selection()
selection_in.observe(lambda c: setattr(explorer.session, "selection", json.loads(c["new"] or "[]")), "value")

# The clicked sample and cell (``.lw-test-cell``), for the cells test. Its 40 x h x w cells cross this
# threshold, so that a map of cells is the WebGL one, as CamVid's 17,616 cells are at the default 2,000.
explorer.gl_threshold = 400
cell_out = W.HTML()
cell_out.add_class("lw-test-cell")

def _show_cell(_change=None):
    s = explorer.session
    cell = None if s.selected_cell is None else list(s.selected_cell)
    cell_out.value = json.dumps({"selected": s.selected, "cell": cell, "grid": s.grid, "points": s.n_points()})

explorer.session.observe(_show_cell, ["selected", "selected_cell", "map_points"])
_show_cell()

# Where the kernel thinks each point is drawn (``ProjectionScatter.screen_points``, which places the
# index labels), as JSON in ``.lw-test-screen`` when ``.lw-test-screen-button`` is clicked.
screen_out = W.HTML()
screen_out.add_class("lw-test-screen")
screen_button = W.Button(description="screen points")
screen_button.add_class("lw-test-screen-button")
screen_button.on_click(lambda _b: setattr(screen_out, "value", json.dumps(explorer.scatter.screen_points().tolist())))
W.HBox([selection_in, selection_out, cell_out, screen_button, screen_out])"""

#: The explorer notebook with the selection hooks.
SELECTION_CELLS = [*NOTEBOOK_CELLS, SELECTION_HOOK_CELL]


#: The two samples of :data:`LAYOUT_CELLS`'s map drawn (almost) on one spot: ``COINCIDENT[1]`` is drawn
#: later, so on top; they are :data:`COINCIDENT_OFFSET` map units apart (a fraction of a pixel unzoomed).
COINCIDENT = (32, 33)
COINCIDENT_OFFSET = 0.02


def fixed_map(n: int = N_SAMPLES, groups: int = 4) -> list[list[float]]:
    """A 2-D map of ``n`` samples that is the same on every CPU: no model, no training.

    ``groups`` clusters of ``n // groups`` consecutive samples (the drives), of different spreads so
    that some index labels have room and some do not, from a seeded generator rounded to 3 decimals;
    sample ``COINCIDENT[1]`` sits :data:`COINCIDENT_OFFSET` to the right of ``COINCIDENT[0]``.
    """
    import numpy as np

    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 5.5], [7.5, 6.5]])
    spreads = np.array([0.5, 1.0, 1.4, 0.8])
    per = n // groups
    pts = np.concatenate([c + s * rng.normal(size=(per, 2)) for c, s in zip(centres, spreads, strict=True)])
    pts = np.round(pts, 3)
    a, b = COINCIDENT
    pts[b] = pts[a] + [COINCIDENT_OFFSET, 0.0]
    return pts.tolist()


#: The explorer on a fixed map, for the layout, click and label tests: the numpy toy model of
#: ``tests/toy.py`` (closed-form, untrained) and :func:`fixed_map` as the PCA map, so that every CPU
#: sees the same picture; the selection hooks of :data:`SELECTION_HOOK_CELL` below it.
LAYOUT_CELLS = [
    f"""\
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
import latent_widgets as lw
from browser_harness import fixed_map
from toy import ToyLatentModel

data = lw.synthetic_road_scenes({N_SAMPLES}, size=(48, 64), seed=0, frames_per_drive=10)
model = ToyLatentModel(input_shape=(48, 64, 3), n_classes=data.n_classes, latent_channels=8, seed=1)
explorer = lw.LatentExplorer(model, data, index_a=0, index_b=25, projections={{"pca": fixed_map()}})
explorer""",
    SELECTION_HOOK_CELL,
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(folder: Path, cells: Sequence[str] = NOTEBOOK_CELLS) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "explorer.ipynb"
    nbformat.write(nb, path)
    return path


def stop(proc: subprocess.Popen) -> None:
    """Stop Voilà and its kernels.

    Voilà runs in its own process group; jupyter_client starts each kernel in
    a session of its own, so the kernels are collected as Voilà's children
    first and killed if Voilà's shutdown did not stop them.
    """
    import psutil  # an ipykernel dependency

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def serve(
    args: Sequence[str],
    cwd: Path,
    log_path: Path,
    probe_url: str,
    *,
    env: dict[str, str] | None = None,
    wait_s: float = 60,
) -> Iterator[subprocess.Popen]:
    """Run a server (in its own process group, output to ``log_path``) until ``probe_url`` answers.

    On exit the server and its kernels are stopped (:func:`stop`). A server
    that exits or does not answer within ``wait_s`` fails with its log.
    """
    full_env = dict(os.environ if env is None else env)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env["PYTHONUNBUFFERED"] = "1"
    name = Path(args[0]).name if args[0] != sys.executable else " ".join(args[1:3])
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            list(args), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + wait_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(probe_url, timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{name} did not answer in {wait_s:.0f} s:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.3)
            yield proc
        finally:
            stop(proc)


@contextlib.contextmanager
def voila_server(
    folder: Path, cells: Sequence[str] = NOTEBOOK_CELLS, extra_env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve a notebook of ``cells`` with Voilà on 127.0.0.1; yields its URL.

    ``extra_env``: variables set for the server and its kernels (e.g. a
    ``PYTHONPATH`` and ``JUPYTER_PATH`` that put another widget version first).
    """
    notebook = write_notebook(folder, cells)
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    url = f"http://127.0.0.1:{port}/"
    args = [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--show_tracebacks=True",
    ]
    # A static file as the probe: "/" itself would start a kernel and run the notebook.
    with serve(args, folder, folder / "voila.log", url + "voila/static/voila.js", env=env):
        yield url


@contextlib.contextmanager
def served_or_skipped(folder: Path, cells: Sequence[str]) -> Iterator[str]:
    """:func:`voila_server` on a notebook of ``cells``; the test is skipped when the browser tests cannot run here."""
    import pytest

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    with voila_server(folder, cells) as url:
        yield url


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does) to run the browser tests"
    for module in ("voila", "playwright"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def explorer_page(
    url: str,
    viewport: tuple[int, int] = (1400, 1450),
    args: Sequence[str] = CHROMIUM_ARGS,
    chromium: object | None = None,
) -> Iterator[object]:
    """A Chromium page on ``url`` once the explorer's strip is drawn (a traceback fails at once).

    ``args``: Chromium's flags (:data:`WEBGL_CHROMIUM_ARGS` for the WebGL map). ``chromium``: the
    ``playwright.chromium`` of a running ``sync_playwright()`` (one process may run only one at a
    time: a second page beside an open one needs the first's); by default one is started for the page.
    """
    if chromium is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p, explorer_page(url, viewport, args, p.chromium) as pg:
            yield pg
        return
    browser = chromium.launch(executable_path=str(CHROMIUM), args=list(args))  # type: ignore[attr-defined]
    try:
        pg = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        console: list[str] = []
        pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        pg.goto(url, timeout=PAGE_TIMEOUT_MS)
        # Ready when the strip (12 steps over their neighbours, drawn last)
        # is there; a traceback in the page fails at once instead of timing out.
        pg.wait_for_function(
            """() => document.querySelectorAll('.latent-explorer .lw-strip img').length >= 24
                     || document.body.innerText.includes('Traceback')""",
            timeout=PAGE_TIMEOUT_MS,
        )
        text = pg.inner_text("body")
        if "Traceback" in text or not pg.query_selector(".latent-explorer"):
            raise AssertionError(
                "the explorer notebook failed in Voilà:\n"
                + text[-3000:]
                + "\nbrowser console:\n"
                + "\n".join(console[-20:])
            )
        pg.wait_for_timeout(500)
        yield pg
    finally:
        browser.close()


def wait_for_svg_map(page, timeout_ms: int = 60_000) -> None:
    """Wait until the SVG map's samples are drawn where the map puts them.

    The strip :func:`explorer_page` waits for comes from the model's lane and the map from its own, so
    the strip can be there while every sample still sits at the origin (the map not yet fitted).
    """
    page.wait_for_function(
        """() => { const d = document.querySelector('.latent-explorer .lw-projection-scatter .dot');
                   if (!d) return false;
                   const seen = new Set();
                   d.parentElement.parentElement.querySelectorAll('.dot').forEach(e => {
                     const r = e.getBoundingClientRect(); seen.add(Math.round(r.x) + ',' + Math.round(r.y)); });
                   return seen.size > 1; }""",
        timeout=timeout_ms,
    )


# ---- JupyterLab, and the pieces the JupyterLab and soak tests share


def jupyterlab_missing() -> str | None:
    """Why the JupyterLab test cannot run here, or None."""
    reason = browser_missing()
    if reason:
        return reason
    try:
        __import__("jupyterlab")
    except ImportError:
        return "jupyterlab is not installed (pip install -e '.[test]')"
    return None


# JupyterLab settings that keep it off the network: no news, no update check.
_LAB_OFFLINE_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


@contextlib.contextmanager
def jupyterlab_server(folder: Path, cells: Sequence[str] = NOTEBOOK_CELLS) -> Iterator[str]:
    """Serve ``folder`` (with a notebook of ``cells``) with JupyterLab on 127.0.0.1.

    Yields the URL that opens the notebook (token included). JupyterLab runs
    in its own process group, with its settings and workspaces in ``folder``
    and the announcements (news feed, update check) and PyPI (the extension
    manager is the read-only one) off, so nothing reaches out; it and its
    kernels are stopped on exit (:func:`stop`).
    """
    import json
    import secrets

    root = folder / "root"
    root.mkdir(exist_ok=True)
    notebook = write_notebook(root, cells)
    settings = folder / "lab-settings"
    for name, values in _LAB_OFFLINE_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(folder / "lab-workspaces")
    base = f"http://127.0.0.1:{port}/"
    args = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # the default one queries PyPI
    ]
    with serve(args, root, folder / "jupyterlab.log", f"{base}api/status?token={token}", env=env, wait_s=90):
        yield f"{base}lab/tree/{notebook.name}?token={token}"


def server_kernels(server_pid: int | None = None) -> list:
    """The ipykernel processes (psutil) started by a server (Voilà, JupyterLab).

    Without ``server_pid``, those of every server this process started.
    """
    import psutil

    if server_pid is None:
        servers = [
            p for p in psutil.Process().children() if any(k in " ".join(_cmdline(p)) for k in ("voila", "jupyter"))
        ]
    else:
        servers = [psutil.Process(server_pid)]
    kernels = []
    for server in servers:
        with contextlib.suppress(psutil.NoSuchProcess):
            kernels += [c for c in server.children(recursive=True) if "ipykernel" in " ".join(_cmdline(c))]
    return kernels


def _cmdline(proc) -> list[str]:
    import psutil

    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def draw_lasso(page, points: Sequence[tuple[float, float]]) -> None:
    """Drag the mouse along ``points`` (page px) and back to the first: a closed lasso."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in [*points[1:], points[0]]:
        page.mouse.move(x, y, steps=3)
    page.mouse.up()


def drag_alpha(page, fraction: float, steps: int = 12) -> None:
    """Drag the explorer's alpha slider handle with the mouse to ``fraction`` of its track."""
    handle = page.locator(".latent-explorer .lw-alpha-slider .noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = page.locator(".latent-explorer .lw-alpha-slider .noUi-target").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    target = track["x"] + fraction * track["width"]
    for k in range(1, steps + 1):  # a drag, not a jump: the mask updates along the way
        page.mouse.move(x + (target - x) * k / steps, y)
        page.wait_for_timeout(40)
    page.mouse.up()


def wait_for_alpha_caption(page, readout: float, busy_js: str, timeout_ms: int = 30_000) -> dict:
    """Wait until the slider's caption names the alpha ``readout`` decoded by the kernel; the busy text then.

    The caption says which alpha the mask on display was decoded at (two
    alphas of a path may decode to the same picture, so the image is no
    proof). Returns ``{"busy": <what busy_js returned at that moment>}``.
    """
    return page.wait_for_function(
        f"""(v) => {{
            const captions = Array.from(document.querySelectorAll('.latent-explorer b'));
            const shown = captions.some(b => b.textContent === 'α = ' + v);
            return shown && {{busy: ({busy_js})()}};
        }}""",
        arg=f"{readout:.3f}",
        timeout=timeout_ms,
    ).json_value()


def wait_for_new_src(page, selector: str, old: str, timeout_ms: int = 30_000) -> None:
    """Wait until the ``src`` of the element at ``selector`` is no longer ``old``."""
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old", arg=[selector, old], timeout=timeout_ms
    )


# ---- large maps: WebGL in headless Chromium, a notebook of many samples


#: Chromium flags for WebGL without a GPU: ANGLE on SwiftShader (software).
WEBGL_CHROMIUM_ARGS = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"] + [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]
SCALE_N = 100_000


def scale_notebook_cells(n: int = SCALE_N) -> list[str]:
    """A notebook of ``n`` samples: the explorer, or (``?variant=bare|scattergl`` in Voilà's URL) a bare map.

    The real large-data path, through the public API: ``n`` lazy synthetic
    32x32 road scenes (rendered when read, never all in memory), an untrained
    narrow SegNet, its latents streamed into a Zarr store (under
    ``$LATENT_WIDGETS_CACHE_DIR``, so a second server with the same cache
    folder opens the store instead of encoding again). Voilà passes the
    page's query string to the kernel (``QUERY_STRING``): ``n=`` and
    ``variant=`` pick the size and what is shown ("explorer"; "bare", a
    jupyter-scatter widget of the same PCA map configured as the explorer's;
    "scattergl", bqplot-gl's ScatterGL of it); ``gl=``: the explorer's
    ``gl_threshold``.
    """
    return [
        f"""\
import os, urllib.parse
import numpy as np
import latent_widgets as lw  # first: it keeps TensorFlow's log lines out of the cells
import keras
from latent_widgets.model.zoo import segnet

query = dict(urllib.parse.parse_qsl(os.environ.get("QUERY_STRING", "")))
N, VARIANT = int(query.get("n", {n})), query.get("variant", "explorer")
data = lw.synthetic_road_scenes(N, size=(32, 32), seed=0, lazy=True)
keras.utils.set_random_seed(0)
model = lw.LatentModel.from_model(segnet(data.n_classes, (32, 32, 3), width=0.125), "latent")
encoding = model.encode_dataset(data, batch_size=256)  # lazy data: streamed into a Zarr latent store
latents = encoding.latents
print(N, VARIANT, latents.shape)""",
        """\
import ipywidgets as W
if VARIANT == "explorer":
    explorer = lw.LatentExplorer(model, data, encoding=encoding, index_a=0, index_b=N // 2 + 7,
                                 gl_threshold=int(query.get("gl", 2000)))
    shown = explorer
else:
    import pandas as pd
    from latent_widgets.data import colors
    from latent_widgets.analysis.projection import fit_projection
    from latent_widgets.widgets.webgl_map import default_point_size
    xy = np.asarray(fit_projection(latents, method="pca", cache=True, progress=False).embedding_)
    codes = np.unique(data.groups, return_inverse=True)[1]
    palette = colors.categorical_colours(int(codes.max()) + 1)
    if VARIANT == "bare":
        import jscatter
        sc = jscatter.Scatter(x=xy[:, 0], y=xy[:, 1], size=default_point_size(N), opacity_unselected=1.0, axes=False,
                              legend=False, tooltip=False, transition_points=False, height=460, width="auto")
        sc.color(by=pd.Categorical(codes), map=palette)
        sc.widget.toolbar_buttons = ["pan_zoom", "lasso", "divider", "reset"]
        sc.widget.layout = W.Layout(width="100%")  # as WebGLMap: the map fills a 520 px column
        shown = W.VBox([sc.widget], layout=W.Layout(width="520px"))
        shown.add_class("lw-bare-map")
    else:
        import bqplot as bq
        from bqplot_gl import ScatterGL
        xs, ys = bq.LinearScale(), bq.LinearScale()
        # bqplot-gl's front end cannot draw through an OrdinalColorScale (no view is created); a linear
        # scale whose colours sit at 0, 1, ... gives each integer code its palette colour all the same.
        cs = bq.ColorScale(colors=palette, min=0.0, max=float(max(len(palette) - 1, 1)))
        mark = ScatterGL(x=xy[:, 0], y=xy[:, 1], color=codes.astype(float), default_size=16,
                         scales={"x": xs, "y": ys, "color": cs})
        shown = bq.Figure(marks=[mark], interaction=bq.PanZoom(scales={"x": [xs], "y": [ys]}),
                          layout=W.Layout(width="520px", height="460px"),
                          fig_margin=dict(top=10, bottom=30, left=50, right=20))
        shown.add_class("lw-scattergl-map")
shown""",
    ]


#: Screen position (page px) of point ``i`` of the jupyter-scatter map under ``sel``, or null before its first draw.
GL_POINT_JS = """([sel, i]) => {
  // jupyter-scatter puts its regl-scatterplot on the canvas's container as .api
  const canvas = Array.from(document.querySelectorAll(sel + ' canvas'))
    .find(c => c.parentElement && c.parentElement.parentElement && c.parentElement.parentElement.api);
  const api = canvas && canvas.parentElement.parentElement.api;
  if (!api) return null;
  let p;
  try { p = api.getScreenPosition(i); } catch (e) { return null; }  // not drawn yet
  if (!p) return null;
  const r = canvas.getBoundingClientRect();
  return {x: r.left + p[0], y: r.top + p[1], left: r.left, top: r.top, width: r.width, height: r.height};
}"""


def gl_point(page, i: int, selector: str = ".lw-gl-map") -> dict | None:
    """Where point ``i`` of the jupyter-scatter map is on the page (see :data:`GL_POINT_JS`)."""
    return page.evaluate(GL_POINT_JS, [selector, int(i)])
