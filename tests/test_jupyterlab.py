"""The explorer in JupyterLab, as most people meet it: open the notebook, Run All, drag alpha.

The test starts JupyterLab itself (127.0.0.1, a random token, the news feed
and update check off: nothing reaches out), opens the explorer notebook of
``browser_harness`` in headless Chromium, runs all cells from the Run menu,
waits for the explorer's strip and drags the alpha slider with the mouse:
the decoded mask must change. JupyterLab and its kernel are stopped at the end.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser_harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    drag_alpha,
    jupyterlab_missing,
    jupyterlab_server,
    server_kernels,
    wait_for_new_src,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

READY_JS = """() => document.querySelectorAll('.latent-explorer .lw-strip img').length >= 24
                    || Array.from(document.querySelectorAll('.jp-OutputArea-output'))
                            .some(e => e.innerText.includes('Traceback'))"""


def _run_all_cells(page) -> None:
    """Run > Run All Cells, with the mouse, as a user does."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).click()


def test_run_all_then_drag_alpha_in_jupyterlab(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reason = jupyterlab_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with jupyterlab_server(tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(url, timeout=PAGE_TIMEOUT_MS)
            # The notebook is open and its kernel is up: the status bar says "Idle".
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))
                              .some(e => / \\| Idle$/.test(e.textContent.trim()))""",
                timeout=PAGE_TIMEOUT_MS,
            )
            page.wait_for_timeout(1000)
            _run_all_cells(page)
            page.wait_for_function(READY_JS, timeout=PAGE_TIMEOUT_MS)
            outputs = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)")
            assert page.query_selector(".latent-explorer"), "\n".join(outputs)[-3000:] + "\n" + "\n".join(console[-20:])
            assert not any("Traceback" in o for o in outputs), "\n".join(outputs)[-3000:]
            kernels = server_kernels()
            assert kernels, "no kernel under JupyterLab"
            page.wait_for_timeout(500)

            # The scrub grid (an anywidget canvas) reaches the page in JupyterLab too.
            canvas = ".latent-explorer .lw-scrub-canvas"
            page.wait_for_function(
                "(sel) => (document.querySelector(sel) || {dataset: {}}).dataset.frames === '64'",
                arg=canvas,
                timeout=120_000,
            )
            frame_before = page.eval_on_selector(canvas, "c => c.dataset.frame")
            mask = ".latent-explorer .lw-current-mask"
            before = page.eval_on_selector(mask, "e => e.src")
            drag_alpha(page, 0.43)
            wait_for_new_src(page, mask, before)
            readout = page.inner_text(".latent-explorer .lw-alpha-slider .widget-readout")
            assert 0.2 < float(readout) < 0.7
            frame = page.eval_on_selector(canvas, "c => c.dataset.frame")
            assert frame != frame_before and int(frame) == round(float(readout) * 63)
            # the newest request wins: the caption ends at the slider's value
            page.wait_for_function(
                """(v) => Array.from(document.querySelectorAll('.latent-explorer b'))
                               .some(b => b.textContent === 'α = ' + v)""",
                arg=f"{float(readout):.3f}",
                timeout=30_000,
            )
        except Exception:
            page.screenshot(path=str(tmp_path / "jupyterlab-failure.png"))
            print(f"screenshot: {tmp_path / 'jupyterlab-failure.png'}\nbrowser console:\n" + "\n".join(console[-30:]))
            raise
        finally:
            browser.close()
    # JupyterLab and its kernel are gone.
    assert not any(k.is_running() for k in kernels)
    with capsys.disabled():
        print(f"\nJupyterLab: start, Run All Cells, a dragged mask and stop in {time.monotonic() - t0:.0f} s")
