"""Benchmark: how long the interpolation slider takes to show a new mask.

Measured in one run, interleaved so that both see the same machine load:

- floor: the raw decoder call for one latent, the zoo SegNet (width 0.25,
  96x128, 12 classes) compiled with ``tf.function`` for a batch of one,
  including the copy of its output to numpy;
- on demand: from ``session.alpha = x`` on the explorer's
  :class:`~latent_widgets.session.ExplorerSession` (a value that is not a
  strip step, synchronous mode) to the new mask bytes being set on the
  slider view's image widget: path inputs, ``LatentModel.decode_with_masks``,
  palette BMP, the session's ``current`` trait, the view's update;
- cached step: ``session.alpha`` set to a strip step (decoded in the strip's
  batch beforehand) to the bytes being set.

Goals: ``ondemand / floor <= 1.30`` and a cached step under 20 ms. Without
TensorFlow the numpy toy model of ``tests/toy.py`` stands in (and says so).
Always exits 0; the last two lines are the results.

Usage::

    .venv/bin/python benchmarks/bench_widgets.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import latent_widgets  # noqa: E402, F401  (before TensorFlow: it turns oneDNN's custom operations off, tensorflow#117700)

GOAL_RATIO = 1.30
GOAL_CACHED_MS = 20.0


def _setup_segnet(dataset):
    import tensorflow as tf

    from latent_widgets import LatentModel
    from latent_widgets.model import zoo

    net = zoo.segnet(n_classes=dataset.n_classes, input_shape=(96, 128, 3), width=0.25)
    lm = LatentModel.from_model(net)
    decoder = lm.decoder
    spec = tf.TensorSpec((1, *lm.latent_shape), tf.float32)
    raw = tf.function(lambda z: decoder(z, training=False), autograph=False).get_concrete_function(spec)

    def floor(z: np.ndarray) -> np.ndarray:
        return raw(tf.convert_to_tensor(z)).numpy()

    return lm, floor, f"zoo SegNet width 0.25 at 96x128, latent {lm.latent_shape}, TensorFlow {tf.__version__}"


def _setup_toy(dataset):
    sys.path.insert(0, str(REPO / "tests"))
    from toy import ToyLatentModel

    model = ToyLatentModel(input_shape=(96, 128, 3), n_classes=dataset.n_classes, latent_channels=64)

    def floor(z: np.ndarray) -> np.ndarray:
        return model.decode(z)

    return model, floor, "numpy toy model (TensorFlow unavailable)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed repeats of each measurement")
    parser.add_argument("--toy", action="store_true", help="use the numpy toy model")
    args = parser.parse_args(argv)

    from latent_widgets import synthetic_road_scenes
    from latent_widgets.session import ExplorerSession
    from latent_widgets.widgets import InterpolationSlider

    data = synthetic_road_scenes(24, size=(96, 128), seed=0)
    try:
        if args.toy:
            raise ImportError("--toy")
        model, floor, what = _setup_segnet(data)
    except ImportError:
        model, floor, what = _setup_toy(data)
    encoding = model.encode(data.images)
    session = ExplorerSession(model, data, encoding=encoding, index_a=0, index_b=17, asynchronous=False, predict=False)
    slider = InterpolationSlider(session=session)  # the view whose image shows the mask

    def set_alpha(alpha: float) -> float:
        # Synchronous mode: the assignment returns once the view has set the
        # new bytes on its image widget (its last step). Identical bytes (two
        # steps with the same mask) are no trait change, so the end is taken
        # when the assignment returns rather than from an observer.
        t0 = time.perf_counter()
        session.alpha = alpha
        t1 = time.perf_counter()
        if slider.current_alpha != alpha:
            raise RuntimeError(f"alpha={alpha} was not shown")
        return t1 - t0

    strip = slider.alphas
    z = encoding.latents[:1].copy()
    # Non-strip alphas: never a strip step, never the previous value (a
    # repeated value is no trait change and would time nothing).
    offdemand = [a for a in np.linspace(0.013, 0.987, 97) if np.abs(strip - a).min() > 1e-3]

    for k in range(8):  # warm-up: compiled functions, allocator, caches
        floor(z)
        set_alpha(float(offdemand[k]))
        set_alpha(float(strip[k % len(strip)]))

    t_floor, t_demand, t_cached = [], [], []
    for k in range(args.repeats):
        t0 = time.perf_counter()
        floor(z)
        t_floor.append(time.perf_counter() - t0)
        t_demand.append(set_alpha(float(offdemand[(k + 8) % len(offdemand)])))
        t_cached.append(set_alpha(float(strip[(k + 1) % len(strip)])))
    if slider.ondemand_decodes < args.repeats:
        raise RuntimeError("on-demand values were served from the strip cache")

    f_ms = 1e3 * statistics.median(t_floor)
    d_ms = 1e3 * statistics.median(t_demand)
    c_ms = 1e3 * statistics.median(t_cached)
    ratio = d_ms / f_ms
    print(f"model: {what}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"repeats: {args.repeats} (median), mask {data.image_size[0]}x{data.image_size[1]} shown at x{slider.scale}")
    print(f"raw decoder, one latent       : {f_ms:8.2f} ms")
    print(f"alpha -> bytes, on demand     : {d_ms:8.2f} ms")
    print(f"alpha -> bytes, cached step   : {c_ms:8.2f} ms")
    print(f"render + widget overhead      : {d_ms - f_ms:8.2f} ms")
    # The spread: each on-demand alpha over the floor call just before it (the machine is shared).
    pairs = np.asarray(t_demand) / np.asarray(t_floor)
    q1, q3 = np.percentile(pairs, [25, 75])
    print(f"on demand / floor, pair by pair: quartiles {q1:.3f} - {q3:.3f}")
    print(f"ondemand_vs_raw = {ratio:.3f} (goal <= {GOAL_RATIO:.2f})")
    print(f"cached_step_ms = {c_ms:.2f} (goal < {GOAL_CACHED_MS:.0f})")
    slider.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
