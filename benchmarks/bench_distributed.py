"""Encode and PCA on a Dask cluster against the same work on one machine (issue 14).

Each goal is the project against a floor measured in the same run, on the
same two cores:

- ``cluster_vs_local``: wall time of ``LatentModel.encode_dataset(ds,
  store=..., client=client)`` for 4,000 lazy synthetic scenes (32x32, narrow
  SegNet) on a 2-worker ``LocalCluster`` (one thread each, worker
  processes, already started and warm: TensorFlow imported, the model
  loaded once per worker) over the local ``encode_dataset(ds, store=...)``
  (no client: TensorFlow's thread pool on both cores, images read ahead on
  a thread); median of repeats, interleaved. The ratio is the cluster's
  overhead: scheduling, shipping the model file and the dataset's
  description, one TensorFlow pool per worker.
- ``pca_store_vs_sklearn``: :func:`latent_widgets.analysis.store_pca.pca_of_store`
  on the cluster (50 components, the points brought back; the route its
  cost rule picks: the float64 covariance for narrow latents, dask.array's
  ``svd_compressed`` with 4 power iterations for wide ones) over reading
  the same latents into memory and scikit-learn's randomized
  ``PCA(50).fit_transform`` with 4 iterations and 10 oversamples; a store of
  ``--pca-n`` latents of ``--pca-d`` floats (low rank plus noise).
  ``--pca-solvers auto covariance randomized`` also times the forced
  routes (printed, not goals), to show the rule's choice by measurement.

Also printed: the per-worker throughput (samples per second per worker) that
``docs/distributed.md`` scales to 10^6 CamVid-sized frames.

Run from the repository root: ``python benchmarks/bench_distributed.py``
(``--quick``: fewer samples, one repeat; ``--only pca`` or ``--only encode``:
one part). Ends with one line per goal; exits 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import latent_widgets

BATCH = 32
WIDTH = 0.125


def _model(size: tuple[int, int]) -> Any:
    import keras

    from latent_widgets import LatentModel
    from latent_widgets.model.zoo import segnet

    keras.utils.set_random_seed(0)
    return LatentModel.from_model(segnet(12, (*size, 3), width=WIDTH))


def _spread(times: list[float]) -> str:
    return f"median {np.median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f}, {len(times)} runs)"


def encode_cluster_vs_local(client: Any, n: int, size: tuple[int, int], repeats: int, tmp: Path) -> dict[str, Any]:
    """Median seconds of the cluster encode and of the local one, same dataset, fresh stores."""
    from latent_widgets import synthetic_road_scenes

    lm = _model(size)
    ds = synthetic_road_scenes(n, size=size, seed=0, lazy=True)
    warm = synthetic_road_scenes(8 * BATCH, size=size, seed=1, lazy=True)
    t0 = time.perf_counter()
    # Warm-up: eight tasks, so both workers import TensorFlow, load the model and compile it.
    lm.encode_dataset(warm, batch_size=BATCH, store=tmp / "warm-cluster.zarr", client=client, chunk_rows=BATCH)
    cold_s = time.perf_counter() - t0
    lm.encode_dataset(warm, batch_size=BATCH, store=tmp / "warm-local.zarr", progress=False)
    runs = iter(range(10**6))
    t_local: list[float] = []
    t_cluster: list[float] = []

    def local() -> None:
        lm.encode_dataset(ds, batch_size=BATCH, store=tmp / f"local{next(runs)}.zarr", progress=False)

    def cluster() -> None:
        lm.encode_dataset(ds, batch_size=BATCH, store=tmp / f"cluster{next(runs)}.zarr", client=client, progress=False)

    for i in range(repeats):
        # Alternate which goes first so that drift in the machine's load hits both.
        pair = ((local, t_local), (cluster, t_cluster)) if i % 2 == 0 else ((cluster, t_cluster), (local, t_local))
        for fn, times in pair:
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            print(f"  {fn.__name__}: {times[-1]:.1f} s", flush=True)
    a = np.asarray(
        latent_widgets.latents.store.LatentStore.open(next(tmp.glob("local*.zarr"))).latents
    )  # the two encodes agree
    b = np.asarray(latent_widgets.latents.store.LatentStore.open(next(tmp.glob("cluster*.zarr"))).latents)
    local_s, cluster_s = float(np.median(t_local)), float(np.median(t_cluster))
    workers = len(client.scheduler_info()["workers"])
    return {
        "n": n,
        "local": t_local,
        "cluster": t_cluster,
        "ratio": cluster_s / local_s,
        "cold_s": cold_s,
        "per_worker_per_s": n / cluster_s / workers,
        "local_per_s": n / local_s,
        "max_diff": float(np.abs(a - b).max()),
        "latent_floats": int(np.prod(lm.latent_shape)),
    }


def pca_store_vs_sklearn(
    client: Any, n: int, d: int, k: int, repeats: int, tmp: Path, solvers: tuple[str, ...] = ("auto",)
) -> dict[str, Any]:
    """Median seconds of the cluster PCA of a store (per solver) and of load + scikit-learn's randomized PCA."""
    from sklearn.decomposition import PCA

    from latent_widgets.analysis.store_pca import pca_of_store
    from latent_widgets.latents.encode import prepare_store
    from latent_widgets.latents.store import LatentStore

    rng = np.random.default_rng(0)
    st = prepare_store(tmp / "pca.zarr", n=n, model_hash="bench", data_hash="low-rank", latent_shape=(d,))
    basis = rng.normal(size=(64, d)) * np.geomspace(10, 0.1, 64)[:, None]
    for c in range(st.n_chunks):
        rows = st.chunk_slice(c)
        m = rows.stop - rows.start
        x = rng.normal(size=(m, 64)) @ basis + 0.05 * rng.normal(size=(m, d))
        st.write_chunk(c, x.astype(np.float32))
    t_dask: dict[str, list[float]] = {s: [] for s in solvers}
    t_sk: list[float] = []
    out: dict[str, Any] = {}

    def dask_pca(solver: str) -> Any:
        def run() -> None:
            out[solver] = pca_of_store(st.path, k, client=client, n_iter=4, solver=solver)

        run.__name__ = f"dask_pca[{solver}]"
        return run

    def sklearn_pca() -> None:
        x = np.asarray(LatentStore.open(st.path).latents)
        pca = PCA(k, svd_solver="randomized", iterated_power=4, n_oversamples=10, random_state=0)
        out["points"] = pca.fit_transform(x)
        out["sklearn"] = pca

    runs = [(dask_pca(s), t_dask[s]) for s in solvers] + [(sklearn_pca, t_sk)]
    for i in range(repeats):
        # Reverse the order every other repeat so that drift in the machine's load hits all.
        for fn, times in runs if i % 2 == 0 else runs[::-1]:
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            print(f"  {fn.__name__}: {times[-1]:.1f} s", flush=True)
    ref = out["sklearn"]
    result: dict[str, Any] = {"sklearn": t_sk, "store_mb": n * d * 4 / 2**20, "solvers": {}}
    for s in solvers:
        ev = out[s].explained_variance_ / ref.explained_variance_
        signs = np.sign(np.sum(out[s].components_ * ref.components_, axis=1))
        result["solvers"][s] = {
            "times": t_dask[s],
            "route": out[s].solver_,
            "ratio": float(np.median(t_dask[s])) / float(np.median(t_sk)),
            "variance_rel_diff": float(np.abs(ev - 1).max()),
            "components_diff": float(np.abs(out[s].components_ - ref.components_ * signs[:, None]).max()),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="samples encoded")
    parser.add_argument("--size", type=int, nargs=2, default=(32, 32), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pca-n", type=int, default=200_000)
    parser.add_argument("--pca-d", type=int, default=512)
    parser.add_argument("--pca-k", type=int, default=50)
    parser.add_argument(
        "--pca-solvers",
        nargs="+",
        default=["auto"],
        choices=["auto", "covariance", "randomized"],
        help="pca_of_store routes timed; the goal line is the first one's",
    )
    parser.add_argument("--only", choices=["encode", "pca"], help="run one part")
    parser.add_argument("--quick", action="store_true", help="1,000 samples, a 50,000-row store, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.pca_n = 1000, 1, 50_000
    size = (int(args.size[0]), int(args.size[1]))

    from dask.distributed import Client, LocalCluster

    lines = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp_dir:
        tmp = Path(tmp_dir)
        t0 = time.perf_counter()
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        client = Client(cluster)
        print(f"LocalCluster of 2 workers x 1 thread started in {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            if args.only in (None, "encode"):
                print(f"== encode {args.n} lazy synthetic {size[0]}x{size[1]} scenes (narrow SegNet) into a store")
                e = encode_cluster_vs_local(client, args.n, size, args.repeats, tmp)
                print(f"  local (one process, both cores): {_spread(e['local'])}, {e['local_per_s']:.0f} samples/s")
                print(
                    f"  cluster (2 workers x 1 thread): {_spread(e['cluster'])}, "
                    f"{e['per_worker_per_s']:.0f} samples/s per worker; first run (workers start TensorFlow and "
                    f"load the model) {e['cold_s']:.1f} s for 256 samples; stores differ by {e['max_diff']:.1e}"
                )
                lines.append(f"cluster_vs_local = {e['ratio']:.3f} (goal <= 1.25)")
            if args.only in (None, "pca"):
                mib = args.pca_n * args.pca_d * 4 / 2**20
                print(f"== PCA ({args.pca_k} components) of a {args.pca_n} x {args.pca_d} store ({mib:.0f} MiB)")
                solvers = tuple(dict.fromkeys(args.pca_solvers))
                p = pca_store_vs_sklearn(client, args.pca_n, args.pca_d, args.pca_k, args.repeats, tmp, solvers)
                print(f"  load + scikit-learn randomized PCA: {_spread(p['sklearn'])}")
                for s, r in p["solvers"].items():
                    print(
                        f"  pca_of_store(solver={s!r}) on the cluster, route {r['route']}: {_spread(r['times'])}, "
                        f"ratio {r['ratio']:.3f}; against scikit-learn: explained variances to "
                        f"{r['variance_rel_diff']:.1e} (relative), components to {r['components_diff']:.1e}"
                    )
                first = p["solvers"][solvers[0]]
                name = "pca_store_vs_sklearn" if solvers[0] == "auto" else f"pca_store_vs_sklearn[{solvers[0]}]"
                lines.append(f"{name} = {first['ratio']:.3f} (goal <= 1.5; {args.pca_n} x {args.pca_d})")
        finally:
            client.close()
            cluster.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
