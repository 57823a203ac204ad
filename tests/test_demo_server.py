"""The demo's Voila frees the kernel of a page that closes.

Each explorer page holds a kernel of about 1 GB (TensorFlow and a model). The
test serves a small widget notebook with exactly the command line that
``latent-widgets demo`` runs (:func:`latent_widgets.cli.voila_command`),
opens and leaves the page three times in headless Chromium, and counts the
kernels still alive: Voila's own kernels are its child processes. Without
``disable_check_xsrf`` the page's shutdown request fails ("'_xsrf' argument
missing from POST") and all three kernels stay.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS, browser_missing, free_port, serve, write_notebook

from latent_widgets.cli import voila_command

pytestmark = pytest.mark.browser

CELLS = ["import ipywidgets as W\nW.IntSlider(value=3, description='kernel')"]


def _kernels(pid: int) -> list:
    """Live ipykernel processes under Voilà (a shut kernel may linger as a zombie until reaped)."""
    import psutil

    alive = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and any("ipykernel" in part for part in p.cmdline()):
                alive.append(p)
        except psutil.Error:  # gone, or a zombie, between the listing and the look
            continue
    return alive


def test_closing_the_page_shuts_its_kernel_down(tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    notebook = write_notebook(tmp_path, CELLS)
    port = free_port()
    cmd = voila_command(notebook, port, voila=str(Path(sys.executable).with_name("voila")))
    url = f"http://127.0.0.1:{port}/"
    with serve(cmd, tmp_path, tmp_path / "voila.log", url + "voila/static/voila.js") as proc:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for _ in range(3):
                    page = browser.new_page()
                    page.goto(url, timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_selector("text=kernel", timeout=PAGE_TIMEOUT_MS)
                    assert len(_kernels(proc.pid)) >= 1
                    # Leaving the page runs its beforeunload handler, as closing the tab does
                    # (Playwright's page.close() ends the page before its beacon is sent).
                    page.goto("about:blank")
                    page.close()
            finally:
                browser.close()

        deadline = time.monotonic() + 20
        while len(_kernels(proc.pid)) > 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = _kernels(proc.pid)
        voila_log = (tmp_path / "voila.log").read_text()
        assert len(alive) <= 1, f"{len(alive)} kernels alive after 3 closed pages\n{voila_log[-3000:]}"
        assert "_xsrf' argument missing" not in voila_log, voila_log[-3000:]
