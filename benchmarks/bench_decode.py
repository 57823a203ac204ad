"""Overhead of ``LatentModel.decode`` over the raw compiled decoder, for one latent.

The widgets decode one latent per slider move, so what matters is the cost
of one call with a batch of 1. This script builds a zoo SegNet (width 0.25,
96x128 input, 12 classes; untrained weights: the cost does not depend on
them), splits it, and times, interleaved and after warm-up:

- raw: a ``tf.function`` around ``decoder(x, training=False)`` called on a
  prebuilt tf tensor, result converted to numpy (the floor);
- decode: ``LatentModel.decode(latent)`` on a numpy latent without batch
  axis (validation, NaN check, conversion, compiled call, numpy result).

It prints the median of each and ends with ``decode_vs_raw = <ratio> (goal
<= 1.10)``. Run from the repository root::

    .venv/bin/python benchmarks/bench_decode.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import latent_widgets  # noqa: F401  (before TensorFlow: it turns oneDNN's custom operations off, tensorflow#117700)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed calls of each kind")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from latent_widgets.latent_model import LatentModel
    from latent_widgets.models import segnet

    keras.utils.set_random_seed(0)
    h, w = args.size
    model = segnet(12, (h, w, 3), width=args.width)
    lm = LatentModel.from_model(model)
    latent = np.random.default_rng(0).normal(size=lm.latent_shape).astype(np.float32)

    decoder = lm.decoder
    raw_fn = tf.function(lambda x: decoder(x, training=False))
    x_tf = tf.constant(latent[None])

    def raw() -> np.ndarray:
        return raw_fn(x_tf).numpy()

    def adapter() -> np.ndarray:
        return lm.decode(latent)

    # Same answer, and both compiled before timing.
    np.testing.assert_allclose(raw(), adapter(), rtol=0, atol=1e-6)
    for _ in range(20):
        raw()
        adapter()

    t_raw: list[float] = []
    t_dec: list[float] = []
    clock = time.perf_counter
    for i in range(args.repeats):
        # Alternate which goes first so that drift in machine load hits both.
        pair = ((raw, t_raw), (adapter, t_dec)) if i % 2 == 0 else ((adapter, t_dec), (raw, t_raw))
        for fn, times in pair:
            t0 = clock()
            fn()
            times.append(clock() - t0)
    raw_ms = 1e3 * float(np.median(t_raw))
    dec_ms = 1e3 * float(np.median(t_dec))
    print(f"model: segnet width={args.width} input={h}x{w}x3, latent {lm.latent_shape}, 12 classes")
    print(
        f"threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"cpus {os.cpu_count()}; repeats {args.repeats}"
    )
    print(f"raw compiled decoder call: median {raw_ms:.3f} ms")
    print(f"LatentModel.decode:        median {dec_ms:.3f} ms")
    print(f"decode_vs_raw = {dec_ms / raw_ms:.3f} (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
