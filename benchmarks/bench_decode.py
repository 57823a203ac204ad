"""Overhead of ``LatentModel.decode`` over the raw compiled decoder, for one latent.

The widgets decode one latent per slider move, so what matters is the cost
of one call with a batch of 1. This script builds a zoo SegNet (width 0.25,
96x128 input, 12 classes; untrained weights: the cost does not depend on
them), splits it, and times, interleaved and after warm-up:

- raw: a ``tf.function`` around ``decoder(x, training=False)`` called on a
  prebuilt tf tensor, result converted to numpy (the floor);
- decode: ``LatentModel.decode(latent)`` on a numpy latent without batch
  axis (validation, NaN check, conversion, compiled call, numpy result).

The same network exported to ONNX (Keras's ``model.export(format="onnx")``)
and split with ``LatentModel.from_onnx`` at the same tensor is timed the same
way:

- onnx raw: a bare ``onnxruntime.InferenceSession.run`` of the decoder half
  cut by ``onnx.utils.Extractor`` (NCHW latent in, the model's output out),
  with the library's session options (same threads, no spinning), on a
  prebuilt input (the floor);
- onnx decode: ``OnnxLatentModel.decode(latent)`` (checks, the NHWC wrapping
  in the graph, numpy result).

It prints the median of each, the ONNX decoder's time beside the Keras one,
and ends with ``decode_vs_raw = <ratio> (goal <= 1.10)`` and
``onnx_decode_vs_raw = <ratio> (goal <= 1.10)`` (``nan`` without the
``onnx`` extra). Run from the repository root::

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

    from latent_widgets.model.latent_model import LatentModel
    from latent_widgets.model.zoo import segnet

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
    raw_ms, dec_ms = _interleaved(raw, adapter, args.repeats)
    print(f"model: segnet width={args.width} input={h}x{w}x3, latent {lm.latent_shape}, 12 classes")
    print(
        f"threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"cpus {os.cpu_count()}; repeats {args.repeats}"
    )
    print(f"raw compiled decoder call: median {raw_ms:.3f} ms")
    print(f"LatentModel.decode:        median {dec_ms:.3f} ms")
    onnx_ratio = _onnx(model, latent, dec_ms, args.repeats)
    print(f"decode_vs_raw = {dec_ms / raw_ms:.3f} (goal <= 1.10)")
    print(f"onnx_decode_vs_raw = {onnx_ratio:.3f} (goal <= 1.10)")
    return 0


def _interleaved(raw, adapter, repeats: int) -> tuple[float, float]:
    """Median milliseconds of ``raw()`` and ``adapter()`` after warm-up, called in alternating order."""
    for _ in range(20):
        raw()
        adapter()
    t_raw: list[float] = []
    t_dec: list[float] = []
    clock = time.perf_counter
    for i in range(repeats):
        # Alternate which goes first so that drift in machine load hits both.
        pair = ((raw, t_raw), (adapter, t_dec)) if i % 2 == 0 else ((adapter, t_dec), (raw, t_raw))
        for fn, times in pair:
            t0 = clock()
            fn()
            times.append(clock() - t0)
    return 1e3 * float(np.median(t_raw)), 1e3 * float(np.median(t_dec))


def _onnx(model, latent: np.ndarray, keras_ms: float, repeats: int) -> float:
    """Time the ONNX split of ``model`` against a bare session of its decoder half; the ratio (nan without onnx)."""
    import tempfile
    import warnings

    try:
        import onnx
        import onnxruntime as ort

        from latent_widgets.model.onnx_model import OnnxLatentModel
        from latent_widgets.model.onnx_runtime import session_options
    except ImportError as exc:
        print(f"ONNX: not measured ({exc})")
        return float("nan")

    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras's numpy-2 patch of tf2onnx touches np.object
        path = Path(tmp) / "segnet.onnx"
        model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that was called
        model.export(str(path), format="onnx", verbose=False)
        graph = onnx.load(path)
    tensor = [o for n in graph.graph.node for o in n.output if "/latent_1/" in o][-1]
    olm = OnnxLatentModel.from_onnx(graph, latent=tensor)
    half = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(graph)).extract_model(
        [tensor], [graph.graph.output[0].name]
    )
    sess = ort.InferenceSession(
        half.SerializeToString(), session_options(olm.threads), providers=["CPUExecutionProvider"]
    )
    feed = {tensor: np.ascontiguousarray(latent.transpose(2, 0, 1)[None])}  # the graph's own NCHW latent
    out = [graph.graph.output[0].name]

    def raw() -> np.ndarray:
        return sess.run(out, feed)[0]

    def adapter() -> np.ndarray:
        return olm.decode(latent)

    np.testing.assert_allclose(raw(), adapter(), rtol=0, atol=1e-5)  # the zoo's output is NHWC softmax already
    raw_ms, dec_ms = _interleaved(raw, adapter, repeats)
    print(f"ONNX ({tensor!r}, {olm.threads} intra-op threads):")
    print(f"raw decoder half session.run: median {raw_ms:.3f} ms")
    print(f"OnnxLatentModel.decode:       median {dec_ms:.3f} ms  (LatentModel.decode: {keras_ms:.3f} ms)")
    return dec_ms / raw_ms


if __name__ == "__main__":
    raise SystemExit(main())
