"""Overhead of the project's projections over the raw library calls.

Each method is timed through the project (``project(..., cache=False,
progress=False)``: feature extraction, parameter defaults, float64 result)
and as the raw library call on the same prepared array, interleaved, median
of repeats, in one run:

- PCA on SegNet-sized latents, 367 x (18, 24, 512) = 367 x 221184 float32
  (flattening is a view, so the prepared array is the latents themselves):
  ``sklearn.decomposition.PCA(2, random_state=0).fit_transform``;
- t-SNE and UMAP on the 367 x 50 array a PCA pre-reduction gives (the
  standard practice, ``pca_dims=50``): ``openTSNE.TSNE(**params).fit`` with
  the settings the library passes (``TSNEProjection().openTSNE_params(n)``:
  perplexity 30, 750 iterations, one thread below 5000 points, seed 0) and
  ``umap.UMAP(2, random_state=0, n_neighbors=15)``. UMAP compiles with numba
  on first use: one untimed call of each comes first.

The data are synthetic ReLU features in 8 groups (like CamVid's sequences).
Both sides run with one BLAS / OpenMP thread (``--threads``): on a shared
machine, threads synchronising with what else runs can make the same call
take 1 s or 10 s, which would drown the overhead being measured (both sides
give identical maps; the script checks).
Ends with ``pca_vs_raw``, ``tsne_vs_raw`` and ``umap_vs_raw`` (goal <= 1.10
each) and exits 0 whether met or not. Run from the repository root::

    .venv/bin/python benchmarks/bench_projection.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

__all__ = ["main"]


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, alternating their order every round."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP threads (0: library default)")
    parser.add_argument("-n", type=int, default=367)
    parser.add_argument("--shape", type=int, nargs=3, default=(18, 24, 512), metavar=("H", "W", "C"))
    parser.add_argument("--dims", type=int, default=50, help="PCA pre-reduction for t-SNE and UMAP")
    args = parser.parse_args(argv)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads or None):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import openTSNE
    from sklearn.decomposition import PCA

    from latent_widgets.analysis.projection import project
    from latent_widgets.analysis.tsne_projection import TSNEProjection
    from latent_widgets.analysis.umap_runtime import import_umap

    umap = import_umap()
    rng = np.random.default_rng(0)
    n, shape = args.n, tuple(args.shape)
    d = int(np.prod(shape))
    centres = rng.standard_normal((8, d), dtype=np.float32)
    latents = centres[rng.integers(0, 8, n)]
    latents += rng.standard_normal((n, d), dtype=np.float32)
    np.maximum(latents, 0, out=latents)
    latents = latents.reshape(n, *shape)
    flat = latents.reshape(n, -1)
    print(
        f"latents: {n} x {shape} = {n} x {d} float32 ({latents.nbytes / 2**20:.0f} MiB); "
        f"threads: {args.threads or 'library default'}"
    )

    results: dict[str, tuple[float, float]] = {}

    np.testing.assert_array_equal(
        project(latents, "pca", cache=False, progress=False), PCA(2, random_state=0).fit_transform(flat)
    )
    t = interleaved(
        {
            "raw": lambda: PCA(2, random_state=0).fit_transform(flat),
            "project": lambda: project(latents, "pca", cache=False, progress=False),
        },
        args.repeats,
    )
    results["pca"] = (t["raw"], t["project"])

    prepared = PCA(args.dims, random_state=0).fit_transform(flat)
    print(f"prepared for t-SNE / UMAP: {prepared.shape} {prepared.dtype}")
    params = TSNEProjection().openTSNE_params(len(prepared))

    def raw_tsne() -> np.ndarray:
        return np.asarray(openTSNE.TSNE(**params).fit(prepared))

    np.testing.assert_allclose(project(prepared, "tsne", cache=False, progress=False), raw_tsne(), rtol=1e-9)
    t = interleaved(
        {
            "raw": raw_tsne,
            "project": lambda: project(prepared, "tsne", cache=False, progress=False),
        },
        args.repeats,
    )
    results["tsne"] = (t["raw"], t["project"])

    def raw_umap() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
            warnings.filterwarnings("ignore", message=".*not fully connected.*")
            return umap.UMAP(n_components=2, random_state=0, n_neighbors=15).fit_transform(prepared)

    mine = project(prepared, "umap", cache=False, progress=False)  # compile, and check the answer
    np.testing.assert_array_equal(mine, raw_umap())
    t = interleaved(
        {"raw": raw_umap, "project": lambda: project(prepared, "umap", cache=False, progress=False)}, args.repeats
    )
    results["umap"] = (t["raw"], t["project"])

    for name, (raw, ours) in results.items():
        print(f"{name:5s} raw {raw:8.3f} s   project {ours:8.3f} s")
    for name, (raw, ours) in results.items():
        print(f"{name}_vs_raw = {ours / raw:.2f} (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
