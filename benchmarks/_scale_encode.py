"""Encoding at scale: the latent store's streaming encode against the raw encoder, and its memory.

Imported by ``benchmarks/bench_scale.py``; also runs alone. A narrow SegNet
(width 0.125, 64x64 input, 12 classes, untrained: the cost does not depend on
the weights) encodes synthetic road scenes, lazy when the installed
``synthetic_road_scenes`` accepts ``lazy=True`` (an eager dataset otherwise).

- :func:`encode_vs_raw`: median seconds of ``LatentModel.encode_dataset(ds,
  store=<fresh folder>)`` against the floor, the same compiled encoder
  function over the same batches (read ``ds.images[rows]``, call it,
  ``.numpy()`` every output, discard). The store run includes hashing the
  weights and the data, reading ahead on a thread, and writing the chunks.
- :func:`encode_rss_growth`: peak RSS above the process's baseline while
  encoding ``n`` samples into a store, each ``n`` in a fresh subprocess (the
  kernel's exact peak on Linux, else RSS sampled every 10 ms on a thread);
  the ratio large / small is 1 when memory does not grow with ``n``. The
  baseline is taken with the model built and the dataset constructed,
  before the process's first encode, as a user's first call in a fresh
  kernel. Two lines beside it: the growth after a compiled 64-sample encode
  (``mode="warm"``, only what the long encode adds), and the in-memory
  encode measured like the goal (``mode="memory"``), the control that shows
  the ratio rises when memory grows with ``n``.
  :func:`encode_rss_once` is one such run (the full benchmark's 100k point).

Run from the repository root::

    .venv/bin/python benchmarks/_scale_encode.py [--n 2000] [--n-small 2000 --n-large 20000] [--rss-only]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import latent_widgets  # noqa: F401  (before TensorFlow: it turns oneDNN's custom operations off, tensorflow#117700)

__all__ = ["RSS_MODES", "encode_rss_growth", "encode_rss_once", "encode_vs_raw", "rss_report"]

BATCH = 32
WIDTH = 0.125


def _model(size: tuple[int, int]) -> Any:
    import keras

    from latent_widgets.model.latent_model import LatentModel
    from latent_widgets.model.zoo import segnet

    keras.utils.set_random_seed(0)
    return LatentModel.from_model(segnet(12, (*size, 3), width=WIDTH))


def _dataset(n: int, size: tuple[int, int]) -> tuple[Any, bool]:
    """Synthetic scenes, lazy if the library can (the lazy-dataset work), else eager."""
    from latent_widgets import synthetic_road_scenes

    try:
        return synthetic_road_scenes(n, size=size, seed=0, lazy=True), True
    except TypeError:  # no lazy datasets yet
        return synthetic_road_scenes(n, size=size, seed=0), False


def _warm(lm: Any, n: int) -> None:
    """Compile the encoder for the full and the last, shorter batch before timing."""
    import tensorflow as tf

    for b in {min(BATCH, n), n % BATCH or BATCH}:
        lm._encode_fn(b)(tf.zeros((b, *lm.input_shape)))


def encode_vs_raw(n: int, size: tuple[int, int] = (64, 64), repeats: int = 3) -> dict[str, Any]:
    """Time the streaming encode into a fresh store against the raw compiled encoder.

    Parameters
    ----------
    n : int
        Samples.
    size : (H, W)
    repeats : int
        Timed runs of each, interleaved; medians are reported.

    Returns
    -------
    dict
        ``ratio`` (store / raw), ``store_s``, ``raw_s``, seconds per sample
        of each, ``hash_s`` (weights and data hashes, inside ``store_s``),
        ``store_mb`` (size on disk), ``lazy``.

    Examples
    --------
    >>> encode_vs_raw(256, repeats=1)["ratio"]  # doctest: +SKIP
    1.02
    """
    import tensorflow as tf

    from latent_widgets.core.arrays import iter_row_blocks

    lm = _model(size)
    ds, lazy = _dataset(n, size)
    _warm(lm, n)
    blocks = list(iter_row_blocks(n, BATCH))

    def raw() -> None:
        for rows in blocks:
            x = np.asarray(ds.images[rows])
            for t in lm._encode_fn(len(x))(tf.convert_to_tensor(x)):
                t.numpy()

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        runs = iter(range(10**6))

        def store() -> None:
            lm.encode_dataset(ds, batch_size=BATCH, store=Path(tmp) / f"run{next(runs)}.zarr", progress=False)

        t_raw: list[float] = []
        t_store: list[float] = []
        for i in range(repeats):
            # Alternate which goes first so that drift in machine load hits both.
            pair = ((raw, t_raw), (store, t_store)) if i % 2 == 0 else ((store, t_store), (raw, t_raw))
            for fn, times in pair:
                gc.collect()
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        store_bytes = sum(f.stat().st_size for f in (Path(tmp) / "run0.zarr").rglob("*") if f.is_file())
    t0 = time.perf_counter()
    lm.weights_hash()
    ds.content_hash()
    hash_s = time.perf_counter() - t0
    raw_s, store_s = float(np.median(t_raw)), float(np.median(t_store))
    return {
        "n": n,
        "size": list(size),
        "batch_size": BATCH,
        "lazy": lazy,
        "raw_s": raw_s,
        "store_s": store_s,
        "hash_s": hash_s,
        "ratio": store_s / raw_s,
        "raw_s_per_sample": raw_s / n,
        "store_s_per_sample": store_s / n,
        "store_mb": store_bytes / 2**20,
    }


def _kernel_peak() -> Callable[[], int] | None:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``); a reader of the peak since then.

    The kernel's ``VmHWM`` is the exact peak, where a sampler every 10 ms
    would see a short peak only by chance (and more often in a longer run).
    ``None`` elsewhere (or where ``/proc`` is read-only): the caller samples.
    """
    # Not getrusage's ru_maxrss: clear_refs does not clear the peak it carries
    # over from before exec, which is the parent's RSS (788 MiB measured in a
    # child of an 800 MB parent, against a VmHWM of 10 MiB).
    status = Path("/proc/self/status")

    def read() -> int:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise KeyError("VmHWM")

    try:
        Path("/proc/self/clear_refs").write_text("5")
        read()
    except (OSError, KeyError):
        return None
    return read


def _rss_child(n: int, size: tuple[int, int], mode: str = "cold") -> dict[str, Any]:
    """In a fresh process: peak RSS growth while encoding n samples.

    ``mode``: ``"cold"`` (the goal's figure) takes the baseline with the model
    built and the dataset constructed, before anything has been encoded, as
    a user's first ``encode_dataset`` in a fresh kernel; the growth then
    includes the one-off costs of a first encode (tracing the encoder,
    TensorFlow's and zarr's threads and their allocator arenas).
    ``"warm"`` takes it after the encoder is compiled and a 64-sample encode
    has run, which leaves only what the long encode itself adds (mostly the
    allocator's free lists, see ``docs/scale.md``). ``"memory"`` is the cold
    measure of the in-memory encode (``store=False``, the library before the
    store): the control that shows the figure grows when memory grows with n.
    """
    import psutil

    lm = _model(size)
    ds, lazy = _dataset(n, size)
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        target: Path | bool = False if mode == "memory" else Path(tmp) / "run.zarr"
        if mode == "warm":
            _warm(lm, n)
            lm.encode_dataset(ds[: 2 * BATCH], batch_size=BATCH, store=Path(tmp) / "warm.zarr", progress=False)
        gc.collect()
        proc = psutil.Process()
        kernel_peak = _kernel_peak()
        base = proc.memory_info().rss
        peak = [base]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                stop.wait(0.01)

        # The kernel's mark makes a sampling thread (and its own allocations) unneeded.
        sampler = threading.Thread(target=sample, daemon=True) if kernel_peak is None else None
        if sampler is not None:
            sampler.start()
        t0 = time.perf_counter()
        enc = lm.encode_dataset(ds, batch_size=BATCH, cache=False, store=target, progress=False)
        seconds = time.perf_counter() - t0
        stop.set()
        if sampler is not None:
            sampler.join()
        end = proc.memory_info().rss
        peak[0] = max(peak[0], end, kernel_peak() if kernel_peak is not None else 0)
        del enc
    return {
        "n": n,
        "mode": mode,
        "lazy": lazy,
        "baseline_mb": base / 2**20,
        "growth_mb": (peak[0] - base) / 2**20,
        "end_growth_mb": (end - base) / 2**20,
        "exact_peak": kernel_peak is not None,
        "seconds": seconds,
        "s_per_sample": seconds / n,
    }


def encode_rss_once(n: int, size: tuple[int, int] = (64, 64), mode: str = "cold") -> dict[str, Any]:
    """Peak RSS growth while encoding ``n`` samples, in one fresh subprocess.

    Parameters
    ----------
    n : int
        Samples to encode.
    size : (int, int)
        Image height and width.
    mode : {"cold", "warm", "memory"}
        ``"cold"``: into a store, the baseline before the process's first
        encode. ``"warm"``: into a store, the baseline after the encoder is
        compiled and a 64-sample encode has run. ``"memory"``: the cold
        measure of an in-memory encode (the control).

    Returns
    -------
    dict
        ``growth_mb`` (peak above the baseline), ``end_growth_mb``,
        ``baseline_mb``, ``exact_peak`` (the kernel's peak, not sampled),
        ``seconds``, ``s_per_sample``.

    Examples
    --------
    >>> encode_rss_once(500)["growth_mb"]  # doctest: +SKIP
    76.4
    """
    if mode not in ("cold", "warm", "memory"):
        raise ValueError(f"mode must be 'cold', 'warm' or 'memory', not {mode!r}")
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n), "--rss-mode", mode, "--size", *map(str, size)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def encode_rss_growth(
    n_small: int = 2000,
    n_large: int = 20000,
    size: tuple[int, int] = (64, 64),
    repeats: int = 3,
    mode: str = "cold",
) -> dict[str, Any]:
    """Peak RSS growth of an encode at two sizes, each run in a fresh subprocess, median of repeats.

    The peak is the kernel's exact one (``VmHWM``) where Linux gives it.
    With the default ``mode="cold"`` the baseline is the process before its
    first encode, so the growth holds the first encode's one-off costs
    (about 75 MiB here) and what grows with n on top; a store run's growth
    does not depend on n, an in-memory one (``mode="memory"``) grows by the
    latents and skips it keeps. ``mode="warm"`` leaves out the one-off costs;
    what remains is mostly free memory that glibc keeps in per-thread arenas
    once TensorFlow's worker threads have held a batch's activations there
    (``docs/scale.md``), and when the second thread's arena fills is random,
    so a single run varies by several MiB either way. Each size is run
    ``repeats`` times, interleaved, and the median growth is compared.

    Returns
    -------
    dict
        ``ratio`` (median growth at ``n_large`` / median growth at
        ``n_small``; about 1 when memory does not grow with N), ``mode``,
        ``small`` and ``large`` (the median run of each size: ``growth_mb``,
        ``baseline_mb``, ``seconds``, ``s_per_sample``) and
        ``growths_mb`` (every run's growth, per size).

    Examples
    --------
    >>> encode_rss_growth(500, 5000, repeats=1)["ratio"]  # doctest: +SKIP
    1.02
    """
    runs: dict[int, list[dict[str, Any]]] = {n_small: [], n_large: []}
    for _ in range(max(1, int(repeats))):
        for n in (n_small, n_large):
            runs[n].append(encode_rss_once(n, size, mode))
    small, large = (sorted(runs[n], key=lambda r: r["growth_mb"])[(len(runs[n]) - 1) // 2] for n in (n_small, n_large))
    # A floor of 1 MiB: growth below it is noise, not a trend.
    ratio = max(large["growth_mb"], 1.0) / max(small["growth_mb"], 1.0)
    growths = {n: [round(r["growth_mb"], 1) for r in runs[n]] for n in runs}
    return {"ratio": ratio, "mode": mode, "small": small, "large": large, "growths_mb": growths}


RSS_MODES = {
    "cold": "into a store, baseline before the first encode (the goal's figure)",
    "warm": "into a store, baseline after a compiled 64-sample encode",
    "memory": "in memory (store=False), baseline before the first encode: the control",
}


def rss_report(rss: dict[str, Any]) -> list[str]:
    """Lines describing an :func:`encode_rss_growth` result: each size's median run and the ratio."""
    runs = len(rss["growths_mb"][rss["small"]["n"]])
    lines = [f"{rss['mode']}: {RSS_MODES[rss['mode']]}, ratio {rss['ratio']:.2f}"]
    for run in (rss["small"], rss["large"]):
        how = f"median of {runs} fresh processes; runs {rss['growths_mb'][run['n']]}" if runs > 1 else "one process"
        lines.append(
            f"  {run['n']}: +{run['growth_mb']:.1f} MiB peak RSS over {run['baseline_mb']:.0f} MiB ({how}), "
            f"{run['seconds']:.1f} s ({1e3 * run['s_per_sample']:.2f} ms/sample)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="samples for encode_vs_raw")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-small", type=int, default=2000)
    parser.add_argument("--n-large", type=int, default=20000)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss-mode", default="cold", choices=sorted(RSS_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--rss-only", action="store_true", help="only the RSS figures, no encode_vs_raw")
    args = parser.parse_args(argv)
    size = (int(args.size[0]), int(args.size[1]))
    if args.rss_child is not None:
        print(json.dumps(_rss_child(args.rss_child, size, args.rss_mode)))
        return 0
    lines = []
    if not args.rss_only:
        speed = encode_vs_raw(args.n, size, args.repeats)
        print(
            f"n={speed['n']} lazy={speed['lazy']}: raw {speed['raw_s']:.2f} s "
            f"({1e3 * speed['raw_s_per_sample']:.2f} ms/sample), store {speed['store_s']:.2f} s "
            f"({1e3 * speed['store_s_per_sample']:.2f} ms/sample, hashes {speed['hash_s']:.2f} s), "
            f"store {speed['store_mb']:.1f} MiB",
            flush=True,
        )
        lines.append(f"encode_vs_raw = {speed['ratio']:.3f} (goal <= 1.10)")
    rss = encode_rss_growth(args.n_small, args.n_large, size, args.repeats)
    print("\n".join(rss_report(rss)), flush=True)
    for mode in ("warm", "memory"):
        print("\n".join(rss_report(encode_rss_growth(args.n_small, args.n_large, size, 1, mode))), flush=True)
    lines.append(f"encode_rss_growth = {rss['ratio']:.3f} (goal <= 1.2)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
