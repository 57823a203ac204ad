"""Encoding and PCA on a real Dask cluster (issue 14).

A ``LocalCluster`` of two worker processes with one thread each, scheduler
and workers on 127.0.0.1, started here; nothing is mocked. The reference is
the local encode of the same lazy dataset by the same model, and
scikit-learn's PCA of the same latents.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from latent_widgets import LatentModel, synthetic_road_scenes
from latent_widgets.analysis.store_pca import pca_of_store, pca_solver, project_store
from latent_widgets.latents.distributed import encode_on_cluster, submit_encode
from latent_widgets.latents.encode import prepare_store
from latent_widgets.latents.store import LatentStore
from latent_widgets.latents.store_errors import LatentStoreError
from latent_widgets.model.encode_options import EncodeOptions
from latent_widgets.model.errors import LatentModelError

N = 2000
SIZE = (32, 32)
BATCH = 32


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def lm() -> LatentModel:
    import keras

    from latent_widgets.model.zoo import segnet

    keras.utils.set_random_seed(0)
    return LatentModel.from_model(segnet(12, (*SIZE, 3), width=0.125))


@pytest.fixture(scope="module")
def data():
    return synthetic_road_scenes(N, size=SIZE, seed=0, lazy=True)


@pytest.fixture(scope="module")
def local(lm, data, tmp_path_factory) -> np.ndarray:
    """The local encode (no client) of the 2,000 scenes: the reference."""
    path = tmp_path_factory.mktemp("local") / "local.zarr"
    return np.asarray(lm.encode_dataset(data, batch_size=BATCH, store=path, progress=False).latents)


@pytest.mark.slow
def test_cluster_encode_equals_local_and_its_pca_equals_sklearn(client, lm, data, local, tmp_path) -> None:
    from sklearn.decomposition import PCA

    path = tmp_path / "cluster.zarr"
    enc = lm.encode_dataset(data, batch_size=BATCH, store=path, client=client, progress=False)
    store = LatentStore.open(path, model_hash=lm.weights_hash(), data_hash=data.content_hash())
    assert store.is_complete and store.n_chunks >= 4  # several tasks, spread over both workers
    # To 1e-5 of the latents' scale (an untrained narrow SegNet's latents are about 0.01).
    scale = np.abs(local).max()
    assert scale > 1e-3 and local.std() > scale / 100  # not a comparison of two near-constant arrays
    np.testing.assert_allclose(np.asarray(enc.latents) / scale, local / scale, rtol=0, atol=1e-5)

    k = 5
    flat = local.reshape(N, -1).astype(np.float64)
    ref = PCA(k, svd_solver="full").fit(flat)
    points = ref.transform(flat)
    scale = np.abs(points).max()  # the points in units of their extent
    # Both routes on the workers, each equal to scikit-learn's exact PCA up to sign.
    for solver in ("covariance", "randomized"):
        pca = pca_of_store(path, k, client=client, n_iter=6, solver=solver)
        assert pca.solver_ == solver
        signs = np.sign(np.sum(pca.components_ * ref.components_, axis=1))
        assert set(signs.tolist()) <= {-1.0, 1.0}
        np.testing.assert_allclose(pca.components_, ref.components_ * signs[:, None], atol=1e-4)
        np.testing.assert_allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-4)
        np.testing.assert_allclose(pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-4)
        np.testing.assert_allclose(pca.points / scale, points * signs / scale, atol=1e-4)
        np.testing.assert_allclose(pca.transform(local[:3]), points[:3] * signs, atol=1e-4 * scale)
    # The rule's choice for these narrow latents, with the cluster's memory known.
    assert pca_of_store(path, k, client=client).solver_ == pca_solver(flat.shape[1], k + 10, 4) == "covariance"
    # The map is then made on the client from the 5 PCA coordinates.
    xy = project_store(pca, "pca")
    assert xy.shape == (N, 2)


@pytest.mark.slow
def test_a_worker_killed_mid_encode_leaves_a_complete_store_equal_to_the_local_one(
    client, lm, data, local, tmp_path
) -> None:
    path = tmp_path / "killed.zarr"
    job = submit_encode(lm, data, path, client, EncodeOptions(batch_size=BATCH, chunk_rows=BATCH))
    n_chunks = job.store.n_chunks
    assert len(job.futures) == n_chunks == -(-N // BATCH)
    deadline = time.monotonic() + 120
    while int(job.store.chunks_done().sum()) < 3:  # both workers are encoding by now
        assert time.monotonic() < deadline, "no chunk written in 120 s"
        time.sleep(0.05)
    pids = client.run(os.getpid)
    _, victim = sorted(pids.items())[0]
    os.kill(victim, signal.SIGKILL)
    done_at_kill = int(job.store.chunks_done().sum())
    assert done_at_kill < n_chunks  # killed mid-encode, not after it
    store = job.wait(progress=False)
    assert store.is_complete
    scale = np.abs(local).max()
    np.testing.assert_allclose(np.asarray(store.latents) / scale, local / scale, rtol=0, atol=1e-5)
    # The nanny restarted the killed worker: two workers again, the victim's process gone.
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    new_pids = client.run(os.getpid)
    assert len(new_pids) == 2 and victim not in new_pids.values()


@pytest.mark.slow
def test_a_restarted_run_resumes_from_the_chunks_already_written(client, lm, data, local, tmp_path) -> None:
    subset = data[:320]  # a lazy view: its rows travel with it
    path = tmp_path / "resume.zarr"
    st = prepare_store(
        path,
        n=len(subset),
        model_hash=lm.weights_hash(),
        data_hash=subset.content_hash(),
        latent_shape=lm.latent_shape,
        options=EncodeOptions(batch_size=BATCH, chunk_rows=64),
    )
    # Chunk 1 was "written by the run that stopped": a marker the resumed run must not overwrite.
    marker = np.full((64, *lm.latent_shape), -7.0, np.float32)
    st.write_chunk(1, marker)
    job = submit_encode(lm, subset, path, client, EncodeOptions(batch_size=BATCH))
    assert job.chunks == [0, 2, 3, 4]
    store = job.wait(progress=False)
    got = np.asarray(store.latents)
    np.testing.assert_array_equal(got[64:128], marker)
    keep = np.r_[0:64, 128:320]
    scale = np.abs(local).max()
    np.testing.assert_allclose(got[keep] / scale, local[keep] / scale, rtol=0, atol=1e-5)
    # A complete store: nothing left to submit.
    again = submit_encode(lm, subset, path, client, EncodeOptions(batch_size=BATCH))
    assert again.futures == [] and again.wait(progress=False).is_complete


def _cut_a_chunk_short_then_die(path: str, chunk: int, marker: str) -> int:
    """On a worker: rewrite a done chunk's latents file in place and die halfway (``os._exit``, no cleanup).

    What a writer that does not write to a temporary file first leaves when it is killed (zarr 2's, a
    copy tool's; zarr 3 renames a finished file into place): the chunk's done flag and checksum from the
    run that wrote it, and a file holding half of it. The marker makes the task a no-op when the
    scheduler runs it again on the restarted worker, so that exactly one chunk is damaged.
    """
    if os.path.exists(marker):
        return 0
    Path(marker).touch()
    import zarr

    from latent_widgets.latents.zarr_arrays import chunk_key

    f = Path(path) / chunk_key(zarr.open_group(path, mode="r")["latents"], chunk)
    data = f.read_bytes()
    with open(f, "r+b") as fh:
        fh.truncate(0)
        fh.write(data[: len(data) // 2])
        fh.flush()
        os._exit(1)


@pytest.mark.slow
def test_a_worker_killed_writing_a_chunk_leaves_a_store_the_next_encode_completes(
    client, lm, data, local, tmp_path
) -> None:
    import zarr

    from latent_widgets.latents.store_errors import LatentStoreWarning
    from latent_widgets.latents.zarr_arrays import chunk_key

    subset = data[:256]  # 4 chunks of 64
    path = tmp_path / "half.zarr"
    lm.encode_dataset(subset, batch_size=BATCH, store=path, client=client, chunk_rows=64, progress=False)
    # Any worker: it dies, the nanny restarts it (on a new address), the scheduler reruns the task (a no-op).
    fut = client.submit(_cut_a_chunk_short_then_die, str(path), 2, str(tmp_path / "marker"), pure=False)
    assert fut.result(timeout=120) == 0  # the second run, on the restarted worker
    store = LatentStore.open(path)
    assert store.chunks_done().tolist() == [True, True, False, True]  # its flag says done; its file does not
    size = 64 * int(np.prod(lm.latent_shape)) * 4  # a chunk's float32 rows
    assert f"holds {size // 2} bytes, not {size}" in store.damaged_chunks()[2]
    with pytest.raises(LatentStoreError, match=r"chunk 2 \(rows 128-191\)"):
        _ = store.latents
    # The next encode_dataset rewrites that chunk alone, and the store ends equal to the local encode.
    files = [path / chunk_key(zarr.open_group(str(path), mode="r")["latents"], c) for c in range(4)]
    before = [f.stat().st_mtime_ns for f in files]
    with pytest.warns(LatentStoreWarning, match=r"chunk 2 \(rows 128-191\)"):
        enc = lm.encode_dataset(subset, batch_size=BATCH, store=path, client=client, progress=False)
    assert [f.stat().st_mtime_ns != t for f, t in zip(files, before, strict=True)] == [False, False, True, False]
    scale = np.abs(local).max()
    np.testing.assert_allclose(np.asarray(enc.latents) / scale, local[:256] / scale, rtol=0, atol=1e-5)


@pytest.mark.parametrize("solver", ["covariance", "randomized"])
def test_pca_of_a_store_with_a_corrupt_chunk_raises_naming_its_rows(tmp_path, solver) -> None:
    import zarr

    from latent_widgets.latents.encode import encode_to_store
    from latent_widgets.latents.zarr_arrays import chunk_key

    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    path = tmp_path / "z.zarr"

    def encode():
        return encode_to_store(lambda b: (b,), x, path, model_hash="m", data_hash="d", latent_shape=(8,),
                               options=EncodeOptions(batch_size=50, chunk_rows=100), progress=False)  # fmt: skip

    st = encode()
    f = path / chunk_key(zarr.open_group(str(path), mode="r")["latents"], 2)
    raw = bytearray(f.read_bytes())
    raw[40:44] = np.float32(1e6).tobytes()  # one latent changed in place: a plausible outlier for a PCA
    f.write_bytes(bytes(raw))
    # The blocks are checked where dask reads them (here a local scheduler; on a cluster, the workers).
    with pytest.raises(LatentStoreError, match=r"chunk 2 \(rows 200-299\): its latents do not match the checksum"):
        pca_of_store(st, 2, solver=solver)
    assert st.missing_chunks() == [2]  # marked for the next encode, which re-encodes it alone
    pca = pca_of_store(encode(), 2, solver=solver)
    ref = pca_of_store(encode_to_store(lambda b: (b,), x, tmp_path / "clean.zarr", model_hash="m", data_hash="d",
                                       latent_shape=(8,), options=EncodeOptions(batch_size=50, chunk_rows=100),
                                       progress=False), 2,
                       solver=solver)  # fmt: skip
    np.testing.assert_array_equal(pca.points, ref.points)


# ----------------------------------------------------------------------------- bad input


def test_a_client_without_a_store_path_is_refused(lm, data) -> None:
    from dask.distributed import Client

    fake = Client.__new__(Client)  # never connected: the path is checked before the cluster is used
    for store in (None, False, True):
        with pytest.raises(LatentStoreError, match=r"store='/shared/path/latents.zarr'"):
            lm.encode_dataset(data, store=store, client=fake)
    with pytest.raises(LatentStoreError, match="Mount the object store"):
        lm.encode_dataset(data, store="memory://latents.zarr", client=fake)


def test_an_in_memory_dataset_or_a_non_client_is_refused(lm, tmp_path) -> None:
    from dask.distributed import Client

    fake = Client.__new__(Client)
    eager = synthetic_road_scenes(4, size=SIZE, seed=0)
    with pytest.raises(LatentStoreError, match=r"lazy=True"):
        encode_on_cluster(lm, eager, tmp_path / "z.zarr", fake)
    with pytest.raises(TypeError, match=r"dask\.distributed\.Client"):
        encode_on_cluster(lm, eager, tmp_path / "z.zarr", object())
    assert not (tmp_path / "z.zarr").exists()


@pytest.mark.slow
def test_a_model_the_workers_cannot_load_safely_gives_a_clear_error(client, tmp_path) -> None:
    import keras

    image = keras.Input((*SIZE, 3))
    h = keras.layers.Conv2D(4, 3, strides=4, padding="same")(image)
    h = keras.layers.Lambda(lambda t: t * 2.0, name="latent")(h)  # arbitrary Python: refused in safe mode
    out = keras.layers.Conv2DTranspose(12, 4, strides=4, padding="same", activation="softmax")(h)
    lm = LatentModel.from_model(keras.Model(image, out))
    small = synthetic_road_scenes(64, size=SIZE, seed=1, lazy=True)
    with pytest.raises(LatentModelError, match="safe_mode"):
        lm.encode_dataset(small, batch_size=BATCH, store=tmp_path / "lambda.zarr", client=client, progress=False)
    assert not LatentStore.open(tmp_path / "lambda.zarr").is_complete


@pytest.mark.parametrize("solver", ["covariance", "randomized"])
@pytest.mark.parametrize("offset", [0.0, 1e5])
def test_pca_of_store_without_a_cluster_equals_sklearn(tmp_path, solver, offset) -> None:
    from sklearn.decomposition import PCA

    from latent_widgets.latents.encode import encode_to_store

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6, 4)) * np.geomspace(8, 0.05, 24).reshape(6, 4)
    # A mean far larger than the spread: X^T X - n m m^T would cancel to noise without the shift.
    x = (x + offset * rng.uniform(0.5, 1, size=(6, 4))).astype(np.float32)
    st = encode_to_store(
        lambda b: (b,),
        x,
        tmp_path / "z.zarr",
        model_hash="m",
        data_hash="d",
        latent_shape=(6, 4),
        options=EncodeOptions(batch_size=50, chunk_rows=100),
        progress=False,
    )
    pca = pca_of_store(st, 3, solver=solver)
    assert pca.solver_ == solver
    flat = x.reshape(400, -1).astype(np.float64)
    ref = PCA(3, svd_solver="full").fit(flat)
    signs = np.sign(np.sum(pca.components_ * ref.components_, axis=1))
    # The covariance route is exact in float64 (without the shift by the first chunk's mean, the offset
    # case is off by 6e-7); the randomized one works in float32 on rows centred in float32.
    tol = 1e-9 if solver == "covariance" else 1e-6 if offset == 0 else 1e-5
    np.testing.assert_allclose(pca.components_, ref.components_ * signs[:, None], atol=tol)
    np.testing.assert_allclose(pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=tol)
    np.testing.assert_allclose(pca.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(pca.points, ref.transform(flat) * signs, atol=tol * np.abs(pca.points).max())
    with pytest.raises(ValueError, match="n_components"):
        pca_of_store(st, 25)
    with pytest.raises(ValueError, match="solver must be"):
        pca_of_store(st, 3, solver="eigen")


def test_the_pca_cost_rule_picks_the_cheaper_route() -> None:
    # d^2 against (2q + 2) d w + 25 (2q + 1) w^2: about 1,250 at 50 components, 10 oversamples, 4 iterations.
    assert pca_solver(1240, 60, 4) == "covariance"
    assert pca_solver(1260, 60, 4) == "randomized"
    assert pca_solver(6144, 60, 4) == "randomized"  # CamVid SegNet's latent: measured 10x slower by covariance
    assert pca_solver(4000, 210, 4) == "covariance"  # more components: the sketch costs more than the d x d matrix
    # The d x d float64 matrix, four times, must take at most a quarter of a worker's memory.
    assert pca_solver(1024, 60, 4, memory=128 << 20) == "covariance"
    assert pca_solver(1024, 60, 4, memory=127 << 20) == "randomized"


def test_the_dataset_travels_as_a_description_not_pixels(data) -> None:
    import pickle

    payload = pickle.dumps(data.images)  # what each worker receives once
    assert len(payload) < 2_000  # 2,000 32x32 images would be 24 MB
    rebuilt = pickle.loads(payload)
    np.testing.assert_array_equal(rebuilt[[5, 1999]], data.images[[5, 1999]])


def test_without_the_dask_extra_the_errors_name_it(tmp_path) -> None:
    """Dask is an extra: the core imports without it, and each call that needs it says what to install."""
    import subprocess
    import sys
    import textwrap

    from conftest import REPO

    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["dask"] = sys.modules["distributed"] = None  # as if neither were installed
        import numpy as np
        import latent_widgets as lw
        from latent_widgets.analysis.store_pca import pca_of_store
        from latent_widgets.model.latent_base import LatentModelBase
        from latent_widgets.latents.encode import encode_to_store
        from latent_widgets.model.encode_options import EncodeOptions

        class Zeros(LatentModelBase):  # a TensorFlow-free latent model
            input_shape, latent_shape, skip_shapes, has_skips, n_classes = (16, 16, 3), (2, 2, 1), (), False, 1
            def _encode_numpy(self, x):
                return (np.zeros((len(x), 2, 2, 1), np.float32),)
            def weights_hash(self):
                return "zeros"

        ds = lw.synthetic_road_scenes(4, size=(16, 16), seed=0, lazy=True)
        x = np.ones((8, 4), np.float32)
        st = encode_to_store(lambda b: (b,), x, {str(tmp_path / "s.zarr")!r}, model_hash="m", data_hash="d",
                             latent_shape=(4,), options=EncodeOptions(batch_size=4, chunk_rows=4), progress=False)
        calls = [
            lambda: Zeros().encode_dataset(ds, store={str(tmp_path / "z.zarr")!r}, client=object()),
            lambda: pca_of_store(st, 2),
            lambda: st.dask_array(),
        ]
        for call in calls:
            try:
                call()
            except ImportError as e:
                print("ERROR", e)
        print("LOADED", sorted(m for m in ("dask", "distributed", "tensorflow") if sys.modules.get(m)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, out.stdout
    assert all("pip install 'latent-widgets[dask]'" in e for e in errors), errors
    assert "encode_dataset(..., client=...)" in errors[0] and "pca_of_store" in errors[1], errors
    assert "LOADED []" in out.stdout
