"""The explorer on an ONNX model, in a real browser: Voilà serves the notebook, headless Chromium drives it.

The notebook's first cell trains the zoo SegNet (width 0.125) for a few
seconds on 40 synthetic road scenes, exports it with Keras's
``model.export(format="onnx")`` into the notebook's folder and splits the
ONNX file with ``LatentModel.from_onnx`` at the tensor of its ``"latent"``
layer; the second cell opens the explorer on that model. What a user sees is
asserted: the page names the ONNX model, and dragging the alpha slider with
the mouse decodes a new mask through ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_harness import N_SAMPLES, drag_alpha, explorer_page, served_or_skipped, wait_for_new_src

pytestmark = pytest.mark.browser

ONNX_CELLS = [
    f"""\
import latent_widgets as lw  # first: it sets TensorFlow up before keras starts it
import onnx
from latent_widgets.model import zoo, training

data = lw.synthetic_road_scenes({N_SAMPLES}, size=(48, 64), seed=0, frames_per_drive=10)
# A few seconds of training, so that the masks along the path differ.
net = training.train(zoo.segnet(n_classes=data.n_classes, input_shape=(48, 64, 3), width=0.125),
                     data, epochs=4, learning_rate=3e-3, progress=False).model
net.export("segnet.onnx", format="onnx", verbose=False)  # tf2onnx; the file lands beside the notebook
latent = [o for n in onnx.load("segnet.onnx").graph.node for o in n.output if "/latent_1/" in o][-1]
model = lw.LatentModel.from_onnx("segnet.onnx", latent=latent)
print(model)""",
    "explorer = lw.LatentExplorer(model, data, index_a=0, index_b=25)\nexplorer",
]


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_or_skipped(tmp_path_factory.mktemp("voila-onnx"), ONNX_CELLS) as url:
        yield url


def test_the_explorer_on_an_onnx_model_decodes_a_new_mask_when_alpha_is_dragged(voila_url: str) -> None:
    with explorer_page(voila_url) as page:
        assert "OnnxLatentModel(input (48, 64, 3), latent (3, 4, 64)" in page.inner_text("body")
        before = page.eval_on_selector(".lw-current-mask", "e => e.src")
        drag_alpha(page, 0.43)
        wait_for_new_src(page, ".lw-current-mask", before)
        readout = float(page.inner_text(".latent-explorer .lw-alpha-slider .widget-readout"))
        assert 0.2 < readout < 0.7, readout
        # the newest request wins: the caption names the alpha the slider shows, decoded by ONNX Runtime
        page.wait_for_function(
            "(v) => Array.from(document.querySelectorAll('.latent-explorer b'))"
            ".some(b => b.textContent === 'α = ' + v)",
            arg=f"{readout:.3f}",
            timeout=30_000,
        )
        assert page.eval_on_selector(".lw-current-mask", "e => e.src") != before
