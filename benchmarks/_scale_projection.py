"""Projections at scale: the library's t-SNE against raw openTSNE, and the first maps of a fresh process.

Imported by ``benchmarks/bench_scale.py``; also runs on its own::

    .venv/bin/python benchmarks/_scale_projection.py [-n 100000] [--repeats 1]

- :func:`tsne_vs_raw_100k`: ``project(x, "tsne")`` of ``n`` points of 50
  dimensions (what ``pca_dims=50`` gives; synthetic, 20 Gaussian groups)
  against ``openTSNE.TSNE(...).fit`` with the settings the library passes
  (``TSNEProjection().openTSNE_params(n)``: same perplexity, iterations,
  threads, seed; FFT gradients above 10 000 points), interleaved, median of
  ``repeats`` (at 100 000 points on a small machine one repeat of each is
  what the time allows). Also the library's seconds at 2 000 and 20 000
  points. The two maps are checked to be the same (allclose).
- :func:`first_maps_vs_warm`: PCA + t-SNE + UMAP of 367 random latents of
  6144 float32 (``cache=False``), timed after the imports in a brand-new
  interpreter, against the same three in a warm process. Three runs: a
  *first-ever* subprocess with an empty numba cache folder
  (``NUMBA_CACHE_DIR``, a new temporary folder: the one-time compile of
  umap-learn's code), then a *fresh* subprocess with the cache that first run
  left (what every later kernel start sees), then the warm figure in this
  process (median of 3, after one untimed call). ``first_maps_vs_warm`` is
  fresh / warm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["first_maps_vs_warm", "tsne_vs_raw_100k"]


def _clustered(n: int, dims: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dims)) * 4.0
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dims))).astype(np.float32)


def _median_interleaved(fns: dict, repeats: int) -> tuple[dict[str, float], dict[str, object]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    last: dict[str, object] = {}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            last[name] = fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, last


def tsne_vs_raw_100k(
    n: int = 100_000, dims: int = 50, repeats: int = 1, sizes: tuple[int, ...] = (2000, 20000)
) -> dict:
    """The library's t-SNE of ``n`` x ``dims`` points over raw openTSNE with the same settings.

    Returns
    -------
    dict
        ``tsne_vs_raw_100k`` (library / raw, goal <= 1.10), ``library_s``,
        ``raw_s``, ``n``, ``repeats``, ``same_map`` and ``seconds_by_n``
        (the library's seconds and seconds per 1000 points at each size).
    """
    import openTSNE

    from latent_widgets.analysis.projection import project
    from latent_widgets.analysis.tsne_projection import TSNEProjection

    x = _clustered(n, dims)
    params = TSNEProjection().openTSNE_params(n)
    times, last = _median_interleaved(
        {
            "raw": lambda: np.asarray(openTSNE.TSNE(**params).fit(x)),
            "library": lambda: project(x, "tsne", cache=False, progress=False),
        },
        repeats,
    )
    by_n: dict[int, dict[str, float]] = {}
    for m in sizes:
        t0 = time.perf_counter()
        project(_clustered(m, dims), "tsne", cache=False, progress=False)
        s = time.perf_counter() - t0
        by_n[m] = {"seconds": s, "seconds_per_1000": 1000 * s / m}
    by_n[n] = {"seconds": times["library"], "seconds_per_1000": 1000 * times["library"] / n}
    return {
        "tsne_vs_raw_100k": times["library"] / times["raw"],
        "library_s": times["library"],
        "raw_s": times["raw"],
        "n": n,
        "dims": dims,
        "repeats": repeats,
        "n_jobs": params["n_jobs"],
        "same_map": bool(np.allclose(last["library"], last["raw"], rtol=1e-6, atol=1e-6)),
        "seconds_by_n": by_n,
    }


# Run in a new interpreter: imports first (not timed), then the three maps.
_FIRST_MAPS = """
import json, time, warnings, numpy as np
from latent_widgets.analysis.projection import project
from latent_widgets.analysis.umap_runtime import import_umap
import openTSNE, sklearn.decomposition
import_umap()
z = np.random.default_rng(0).normal(size=(367, 6144)).astype(np.float32)
t0 = time.perf_counter()
for method in ("pca", "tsne", "umap"):
    project(z, method, cache=False, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def _fresh(numba_cache: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": numba_cache, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_MAPS], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def first_maps_vs_warm(repeats: int = 3) -> dict:
    """PCA + t-SNE + UMAP of 367 x 6144 latents: a fresh interpreter over a warm one.

    Returns
    -------
    dict
        ``first_maps_vs_warm`` (fresh / warm, goal <= 1.5), ``fresh_s``,
        ``first_ever_s`` (empty numba cache: the one-time compile),
        ``warm_s`` and ``first_ever_vs_warm``.
    """
    from latent_widgets.analysis.projection import project
    from latent_widgets.analysis.umap_runtime import import_umap

    with tempfile.TemporaryDirectory(prefix="numba-cache-") as folder:
        first_ever = _fresh(folder)  # compiles and writes the cache
        fresh = _fresh(folder)  # loads what the first run left
    import_umap()
    z = np.random.default_rng(0).normal(size=(367, 6144)).astype(np.float32)

    def three() -> None:
        for method in ("pca", "tsne", "umap"):
            project(z, method, cache=False, progress=False)

    three()  # warm: compiled, imported, caches touched
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        three()
        warm.append(time.perf_counter() - t0)
    w = float(np.median(warm))
    return {
        "first_maps_vs_warm": fresh / w,
        "fresh_s": fresh,
        "first_ever_s": first_ever,
        "warm_s": w,
        "first_ever_vs_warm": first_ever / w,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-tsne", action="store_true", help="only the first-maps figure")
    args = parser.parse_args(argv)
    first = first_maps_vs_warm()
    print(
        f"first maps: first-ever {first['first_ever_s']:.2f} s, fresh {first['fresh_s']:.2f} s, "
        f"warm {first['warm_s']:.2f} s",
        flush=True,
    )
    if not args.skip_tsne:
        t = tsne_vs_raw_100k(args.n, repeats=args.repeats)
        for m, row in t["seconds_by_n"].items():
            print(f"t-SNE of {m} x {t['dims']}: {row['seconds']:.1f} s ({row['seconds_per_1000']:.2f} s per 1000)")
        print(
            f"t-SNE {t['n']} points: library {t['library_s']:.1f} s, raw openTSNE {t['raw_s']:.1f} s "
            f"(median of {t['repeats']}, n_jobs={t['n_jobs']}, same map: {t['same_map']})"
        )
        print(f"tsne_vs_raw_100k = {t['tsne_vs_raw_100k']:.2f} (goal <= 1.10)")
    print(f"first_maps_vs_warm = {first['first_maps_vs_warm']:.2f} (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
