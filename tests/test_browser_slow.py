"""The explorer on a slow model in a real browser: the mask follows a drag while the masks are being predicted.

A big network at full size decodes a latent in about 0.2 s, and the session
predicts every sample's mask in the background (issue 28). The notebook
serves the explorer on 200 synthetic scenes with the numpy toy model slowed
to that pace (``tests/toy.py``'s ``SlowToyModel``: 0.2 s per decoded
latent, so the background prediction takes about 40 s). The test waits until
the busy indicator shows the prediction under way ("predict k/200"), drags
the alpha slider with the mouse, and asserts that the kernel's mask of the
new alpha (its caption) is shown while the prediction still runs; then that
the prediction completes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from browser_harness import REPO, drag_alpha, explorer_page, served_or_skipped, wait_for_alpha_caption

pytestmark = pytest.mark.browser

N = 200
SLOW_CELLS = [
    f"""\
import sys
sys.path.insert(0, {str(REPO / "tests")!r})
import latent_widgets as lw
from toy import SlowToyModel, ToyLatentModel

data = lw.synthetic_road_scenes({N}, size=(48, 64), seed=0, frames_per_drive=20)
# A full-size network's pace: 0.2 s per decoded latent (predicting the {N} masks: ~40 s in the background).
model = SlowToyModel(ToyLatentModel(input_shape=(48, 64, 3), n_classes=data.n_classes, latent_channels=8),
                     encode_s=0.005, decode_s=0.2)""",
    "explorer = lw.LatentExplorer(model, data, index_a=0, index_b=25)\nexplorer",
]

BUSY_JS = "() => (document.querySelector('.latent-explorer .lw-busy') || {}).innerText || ''"
PREDICTING = re.compile(rf"predict \d+/{N}")


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_or_skipped(tmp_path_factory.mktemp("voila-slow"), SLOW_CELLS) as url:
        yield url


def test_the_mask_follows_a_drag_while_the_masks_are_predicted(voila_url):
    with explorer_page(voila_url) as page:
        page.wait_for_function(f"() => /predict \\d+\\/{N}/.test(({BUSY_JS})())", timeout=120_000)
        drag_alpha(page, 0.81)
        readout = float(page.inner_text(".latent-explorer .lw-alpha-slider .widget-readout"))
        assert 0.6 < readout < 0.95, readout
        shown = wait_for_alpha_caption(page, readout, BUSY_JS)  # the kernel's mask of the new alpha
        assert PREDICTING.search(shown["busy"]), shown  # answered while the prediction still ran
        # ... and the prediction completes in the end.
        page.wait_for_function(f"() => !/predict \\d+/.test(({BUSY_JS})())", timeout=240_000)
