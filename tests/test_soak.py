"""Minutes of randomised use of the explorer in Voilà: no error, a live kernel, no memory growth.

A seeded random user clicks points (with the click toggle on show, set A or
set B), drags the alpha slider, switches the map between PCA, t-SNE and UMAP,
changes the colour field and the number of steps, with short random pauses,
for ``$LATENT_WIDGETS_SOAK_SECONDS`` (default 300) or :data:`MAX_EVENTS`
events. The first events do each kind of action once, each map waited for
(the first UMAP imports umap-learn and compiles its numba code, t-SNE and each
colour field are computed once): the baseline of the memory is taken once
they are done and the session is idle, not at a fixed time, as on a slower
CPU the one-off costs land later. At least half the soak follows it. At the
end, once the session is idle:

- the explorer's errors area is empty (the callbacks' errors and the
  session's background errors are both shown there);
- the kernel is alive: a last alpha drag still changes the mask;
- the kernel's resident memory grew by less than 10 % since the baseline.

``LATENT_WIDGETS_SOAK_SEED`` picks another random user.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from browser_harness import (
    browser_missing,
    drag_alpha,
    explorer_page,
    notebook_cells,
    server_kernels,
    voila_server,
    wait_for_new_src,
)
from test_browser import MAIN_DOTS_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOAK_SECONDS = float(os.environ.get("LATENT_WIDGETS_SOAK_SECONDS", "300"))
SEED = int(os.environ.get("LATENT_WIDGETS_SOAK_SEED", "0"))
MAX_EVENTS = 3000
MAX_RSS_GROWTH = 0.10
MAPS = ("PCA", "t-SNE", "UMAP")
CLICK_ACTIONS = ("show", "set A", "set B")

# The explorer's errors area: the Output that ends the explorer's VBox.
ERRORS_JS = """() => {
  const pane = document.querySelector('.latent-explorer').lastElementChild;
  if (!pane.classList.contains('widget-output')) return null;
  return pane.innerText.trim();
}"""
BUSY_JS = "() => (document.querySelector('.lw-busy') || {}).innerText || ''"


class User:
    """A seeded random user of the explorer page; ``log`` lists what it did."""

    def __init__(self, page, rng: random.Random, t0: float) -> None:
        self.page, self.rng, self.t0 = page, rng, t0
        self.counts: Counter[str] = Counter()
        self.log: list[str] = []
        explorer = page.locator(".latent-explorer")
        self.colour = explorer.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^colour$")))
        self.steps = explorer.locator(".widget-text", has=page.locator("label", has_text=re.compile(r"^steps$")))
        self.colour_fields = self.colour.locator("option").all_inner_texts()
        assert len(self.colour_fields) >= 2, self.colour_fields

    def _did(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.log.append(f"{time.monotonic() - self.t0:7.1f} s  {kind}: {detail}")

    def click_point(self, action: str | None = None) -> None:
        action = action or self.rng.choice(CLICK_ACTIONS)
        self.page.get_by_role("button", name=action, exact=True).click()
        dots = [d for d in self.page.evaluate(MAIN_DOTS_JS) if d["top"]]
        if not dots:  # every point under an overlay mark or the tooltip: the click is only the toggle's
            self._did("toggle", action)
            return
        dot = self.rng.choice(dots)
        self.page.mouse.click(dot["cx"], dot["cy"])
        self._did(f"click ({action})", f"point {dot['i']}")

    def alpha(self, fraction: float | None = None) -> None:
        fraction = self.rng.random() if fraction is None else fraction
        drag_alpha(self.page, fraction, steps=self.rng.randint(2, 12))
        self._did("alpha drag", f"{fraction:.2f}")

    def map_method(self, label: str | None = None) -> None:
        label = label or self.rng.choice(MAPS)
        self.page.locator(".latent-explorer").get_by_role("button", name=label, exact=True).click()
        self._did("map", label)

    def settle(self) -> None:
        """Wait until the session is idle (what the last action started is done)."""
        _settle(self.page)

    def colour_field(self, field: str | None = None) -> None:
        field = field or self.rng.choice(self.colour_fields)
        self.colour.locator("select").select_option(label=field)
        self._did("colour", field)

    def n_steps(self, n: int | None = None) -> None:
        n = n or self.rng.randint(3, 20)
        _type_into(self.steps, n)
        self._did("steps", str(n))

    def endpoints(self, a: int, b: int) -> None:
        """Type the path's endpoints into the slider's A and B boxes."""
        for name, value in (("A", a), ("B", b)):
            label = self.page.locator("label", has_text=re.compile(f"^{name}$"))
            _type_into(self.page.locator(".latent-explorer .widget-text", has=label), value)
        self._did("endpoints", f"{a} -> {b}")

    def warm_up(self) -> list[Callable[[], None]]:
        """Each kind of action once, each map fitted before the next action: the one-off costs."""
        first = [lambda: self.map_method("UMAP"), self.settle, lambda: self.map_method("t-SNE"), self.settle]
        first += [lambda f=f: self.colour_field(f) for f in self.colour_fields]
        first += [lambda a=a: self.click_point(a) for a in CLICK_ACTIONS]
        first += [self.alpha, self.n_steps, lambda: self.map_method("PCA")]
        return first

    def random_action(self) -> None:
        actions = [self.click_point, self.alpha, self.map_method, self.colour_field, self.n_steps]
        self.rng.choices(actions, weights=[4, 4, 1.5, 1, 1])[0]()


def _type_into(text_widget, value: int) -> None:
    box = text_widget.locator("input")
    box.fill(str(value))
    box.press("Enter")


def _drag_and_wait_for_the_caption(page, user: User, fraction: float) -> None:
    """Drag alpha to ``fraction`` of the track; return once the kernel has decoded the alpha the slider shows."""
    user.alpha(fraction)
    page.wait_for_function(
        "(v) => Array.from(document.querySelectorAll('.latent-explorer b')).some(b => b.textContent === 'α = ' + v)",
        arg=f"{float(page.inner_text('.latent-explorer .lw-alpha-slider .widget-readout')):.3f}",
        timeout=60_000,
    )


def _settle(page, timeout_ms: int = 240_000) -> None:
    """Wait until the session is idle (the busy indicator is empty) for a second."""
    page.wait_for_function(f"() => !({BUSY_JS})()", timeout=timeout_ms)
    page.wait_for_timeout(1000)
    page.wait_for_function(f"() => !({BUSY_JS})()", timeout=timeout_ms)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


@pytest.mark.timeout(int(SOAK_SECONDS) + 900)
def test_soak_randomised_use(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    # The trained SegNet: a soak measures a real network's memory (the toy model's masks are used elsewhere).
    with voila_server(tmp_path, notebook_cells(trained=True)) as url, explorer_page(url) as page:
        kernels = server_kernels()
        assert len(kernels) == 1, kernels
        kernel = kernels[0]
        assert page.evaluate(ERRORS_JS) == "", "the explorer's errors area is not where expected, or not empty"
        _settle(page)
        t0 = time.monotonic()
        user = User(page, random.Random(SEED), t0)
        rss_start, first_error = kernel.memory_info().rss, None
        n, trace, next_sample = 0, [], 0.0  # trace: the kernel's RSS every 30 s

        def act(action: Callable[[], None]) -> None:
            nonlocal n, next_sample, first_error
            if time.monotonic() - t0 >= next_sample:
                trace.append(kernel.memory_info().rss)
                next_sample += 30
            action()
            n += 1
            page.wait_for_timeout(user.rng.uniform(50, 700))
            if first_error is None and (errors := page.evaluate(ERRORS_JS)):
                first_error = f"after event {n}:\n" + "\n".join(user.log[-12:]) + "\n" + errors[-4000:]

        for action in user.warm_up():
            act(action)
        _settle(page)
        rss_baseline, baseline_at = kernel.memory_info().rss, time.monotonic() - t0
        end = max(SOAK_SECONDS, baseline_at + SOAK_SECONDS / 2)
        while time.monotonic() - t0 < end and n < MAX_EVENTS:
            act(user.random_action)
        elapsed = time.monotonic() - t0
        _settle(page)
        rss_end = kernel.memory_info().rss
        errors = page.evaluate(ERRORS_JS)
        # The kernel still answers: typed endpoints, then a last drag from A to B changes the mask. The path
        # is the notebook's own 0 -> 25, not the one the random user left: which points its clicks could
        # reach depends on the map's layout (the model's floats, so the CPU), and A may equal B, a path that
        # decodes one mask at every alpha. From end to end the mask goes from A's prediction to B's.
        user.endpoints(0, 25)
        _settle(page)
        mask = ".latent-explorer .lw-current-mask"
        _drag_and_wait_for_the_caption(page, user, 0.0)
        before = page.eval_on_selector(mask, "e => e.src")
        _drag_and_wait_for_the_caption(page, user, 1.0)
        wait_for_new_src(page, mask, before, timeout_ms=60_000)
        growth = rss_end / rss_baseline - 1
        counts = ", ".join(f"{k} {v}" for k, v in sorted(user.counts.items()))
        summary = (
            f"soak (seed {SEED}): {elapsed:.0f} s, {sum(user.counts.values())} events ({counts}); kernel RSS "
            f"start {_mib(rss_start)}, at {baseline_at:.0f} s {_mib(rss_baseline)}, end {_mib(rss_end)} "
            f"({growth:+.1%} since {baseline_at:.0f} s); every 30 s: {' '.join(f'{r / 2**20:.0f}' for r in trace)}"
        )
        with capsys.disabled():
            print("\n" + summary)
        assert not first_error and not errors, f"errors in the explorer's errors area {first_error or errors}"
        assert "Traceback" not in page.inner_text("body")
        assert growth < MAX_RSS_GROWTH, summary
