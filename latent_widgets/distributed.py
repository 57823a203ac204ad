"""Encode a dataset and project its latents on a Dask cluster (``dask.distributed``).

When a dataset outgrows one machine (10^5-10^6 frames, latents of 10^4-10^5
floats each), :func:`encode_on_cluster` (what
``LatentModel.encode_dataset(dataset, store=PATH, client=client)`` calls)
spreads the encode over the workers of a :class:`dask.distributed.Client`:
one task per row chunk of the :class:`~latent_widgets.store.LatentStore`,
each task reading its rows of the dataset, encoding them and writing them
straight into the Zarr store, then marking the chunk done.

- The dataset travels as a description, never as pixels: a lazy dataset's
  ``images`` hold a :class:`~latent_widgets.lazy_array.SampleSource` (the
  synthetic generator's seed and parameters, or the image and mask paths of
  a folder) that is sent once to each worker; a task names its index range.
- The model travels as the bytes of the ``.keras`` file that
  :meth:`~latent_widgets.LatentModel.save` writes (an ONNX model: the
  ``.onnx`` file of :meth:`~latent_widgets.onnx_model.OnnxLatentModel.save`);
  each worker loads it once (``safe_mode=True``), checks its weights hash,
  and keeps it for the next tasks, with TensorFlow's thread pools (ONNX
  Runtime's sessions) sized to the worker's threads.
- Faults: a chunk's task writes its rows, then its done flag, so a task
  recomputed elsewhere after its worker died rewrites the same rows; a run
  stopped and started again only submits the chunks that are not done.

:func:`pca_of_store` computes the PCA of a store with ``dask.array`` where
the store is, on the cluster, by one of two routes that :func:`pca_solver`
picks from the multiply-adds per latent: for narrow latents (``d`` up to
about 1,250 floats at 50 components and 4 power iterations) the exact PCA
from the float64 covariance, ``X^T X`` and the column sums tree-reduced on
the workers, ``eigh`` on the client, in two reads of the store; for wide
ones (10^4-10^5 floats) the randomized SVD ``svd_compressed``, a dozen
reads. t-SNE and UMAP then run on the client on the PCA-reduced points
(:func:`project_store`): 10^6 x 50 float32 is 200 MB.

The workers need the store's path to be the same folder they can write
(a shared filesystem), and ``latent-widgets`` installed; see
``docs/distributed.md``. Dask is the extra ``pip install 'latent-widgets[dask]'``,
on the client and the workers: without it this module imports, and the calls
that need Dask raise an ``ImportError`` naming the extra.

Examples
--------
>>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
>>> ds = synthetic_road_scenes(100_000, size=(96, 128), lazy=True)  # doctest: +SKIP
>>> enc = lm.encode_dataset(ds, store="/shared/road.zarr", client=client)  # doctest: +SKIP
>>> pca = pca_of_store("/shared/road.zarr", 50, client=client)  # doctest: +SKIP
>>> xy = project_store(pca, "tsne")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._optional import optional_import
from .arrays import iter_row_blocks
from .keras_graph import LatentModelError
from .lazy_array import LazyArray
from .store import (
    LatentStore,
    LatentStoreError,
    _numpy,
    _Prefetcher,
    default_chunk_rows,
    prepare_store,
    stored_row_bytes,
)

__all__ = [
    "ClusterEncode",
    "StorePCA",
    "encode_on_cluster",
    "pca_of_store",
    "pca_solver",
    "project_store",
    "submit_encode",
]

# Tasks per worker that the default chunk size aims for: enough that a slow or
# lost worker's share is small, few enough that the scheduler's cost per task
# (about a millisecond) stays negligible.
_TASKS_PER_WORKER = 4
# Bytes of float32 latents per block of the PCA's dask array.
_PCA_BLOCK_BYTES = 32 << 20
# The PCA keeps the latents in the workers' memory below this fraction of it.
_PCA_PERSIST_FRACTION = 0.25

# ----------------------------------------------------------------------------- on the workers

# A worker's models, by weights hash: loaded once, used by every task that names the hash.
_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a worker (a test calling a task directly)
        return max(1, os.cpu_count() or 1)
    state = getattr(worker, "state", worker)
    return max(1, int(getattr(state, "nthreads", 1)))


def _size_tensorflow_pools(threads: int) -> None:
    """One TensorFlow thread pool per worker, as wide as the worker's threads (before TF starts)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran something in this process: its pools are fixed
        pass


def _worker_model(model_bytes: bytes, model_hash: str, model_class: Any) -> Any:
    """This worker's copy of the model, loaded from the ``.keras`` bytes on first use."""
    with _MODELS_LOCK:
        model = _MODELS.get(model_hash)
        if model is not None:
            return model
        threads = _worker_threads()
        suffix = _file_suffix(model_class)
        if suffix == ".keras":
            _size_tensorflow_pools(threads)
        with tempfile.TemporaryDirectory(prefix="latent-widgets-model-") as tmp:
            path = Path(tmp) / f"model{suffix}"
            path.write_bytes(model_bytes)
            try:
                model = model_class.load(path, safe_mode=True)
                if hasattr(model, "threads"):  # an ONNX model's sessions: as wide as the worker's threads
                    model.threads = threads
            except LatentModelError as exc:
                raise LatentModelError(
                    f"a worker cannot load the model from the .keras file LatentModel.save wrote: {exc} "
                    "Workers load models with safe_mode=True; use layers Keras can rebuild without running "
                    "pickled Python code (no Lambda layers), and register custom layers with "
                    "@keras.saving.register_keras_serializable in a module installed on the workers."
                ) from exc
        got = model.weights_hash()
        if got != model_hash:
            raise LatentModelError(
                f"the model a worker loaded has weights hash {got}, not the client's {model_hash}: its "
                ".keras file does not round-trip (custom layers whose get_config misses an argument?). "
                "Check LatentModel.load(path).weights_hash() == lm.weights_hash() on the client."
            )
        _MODELS.clear()  # one model per worker at a time: a new encode replaces the last one's
        _MODELS[model_hash] = model
        return model


def _encode_chunk(
    chunk: int,
    images: LazyArray,
    model_bytes: bytes,
    model_hash: str,
    model_class: Any,
    store_path: str,
    data_hash: str,
    batch_size: int,
) -> int:
    """Encode the rows of one chunk and write them into the store; the rows written (0: already done).

    Runs on a worker. Idempotent: a chunk marked done is left alone, and a
    chunk rewritten after a worker died mid-write gets the same rows.
    """
    store = LatentStore.open(store_path, model_hash=model_hash, data_hash=data_hash)
    if store.is_chunk_done(chunk):
        return 0
    model = _worker_model(model_bytes, model_hash, model_class)
    rows = store.chunk_slice(chunk)
    view = images.view(np.arange(rows.start, rows.stop))
    size = rows.stop - rows.start
    latents = np.empty((size, *store.latent_shape), np.float32)
    skips = [np.empty((size, *s), np.float32) for s in store.skip_shapes] if store.stored_skips else []
    # The next batch is read (rendered, decoded from files) while this one is encoded.
    for block, x in _Prefetcher(view, list(iter_row_blocks(size, batch_size))):
        outs = model._encode_batch(x)
        latents[block] = _numpy(outs[0])
        for dst, src in zip(skips, outs[1:], strict=False):
            dst[block] = _numpy(src)
    store.write_chunk(chunk, latents, skips)
    return size


def _store_seen_by_worker(path: str) -> str:
    """``"model_hash/data_hash"`` of the store at ``path`` as this worker sees it, or why it cannot."""
    try:
        st = LatentStore.open(path)
    except Exception as exc:  # reported to the client with the worker's address
        return f"error: {type(exc).__name__}: {exc}"
    return f"{st.model_hash}/{st.data_hash}"


# ----------------------------------------------------------------------------- on the client


def _require_client(client: Any) -> None:
    if not (hasattr(client, "submit") and hasattr(client, "scatter") and hasattr(client, "run")):
        raise TypeError(
            f"client must be a dask.distributed.Client, got {type(client).__name__}; e.g. "
            "client = dask.distributed.Client(LocalCluster(n_workers=2)) or Client('tcp://scheduler:8786')."
        )


def _require_store_path(store: Any) -> Path:
    if store is None or isinstance(store, bool) or not isinstance(store, (str, os.PathLike)):
        raise LatentStoreError(
            f"encoding on a cluster writes the latents into a store folder every worker can reach; got "
            f"store={store!r}. Pass store='/shared/path/latents.zarr' (a folder on a filesystem the "
            "client and all workers mount at the same path)."
        )
    text = os.fspath(store)
    if "://" in str(text):
        raise LatentStoreError(
            f"store={text!r} is a URL; the latent store is a folder path. Mount the object store as a "
            "filesystem on the client and every worker (s3fs, gcsfuse, rclone mount) and pass that path."
        )
    return Path(text).expanduser().resolve()


def _require_lazy_images(dataset: Any) -> LazyArray:
    images = getattr(dataset, "images", None)
    if not isinstance(images, LazyArray):
        raise LatentStoreError(
            "encoding on a cluster sends the dataset to the workers as a description (the generator's "
            "parameters, or the file paths), never as pixels; this dataset holds its images in memory. "
            "Load it lazily: synthetic_road_scenes(..., lazy=True), load_folder(..., lazy=True) or "
            "load_camvid(..., lazy=True)."
        )
    return images


def _check_workers_see(client: Any, path: Path, expected: str) -> None:
    seen = client.run(_store_seen_by_worker, str(path))
    if not seen:
        raise LatentStoreError("the Dask cluster has no workers; start some (cluster.scale(n)) and try again.")
    wrong = {w: s for w, s in seen.items() if s != expected}
    if wrong:
        worker, what = next(iter(wrong.items()))
        raise LatentStoreError(
            f"{len(wrong)} of {len(seen)} workers cannot reach the latent store {path} (worker {worker}: "
            f"{what}). Put the store on a filesystem shared by the client and every worker, mounted at the "
            "same path (NFS, Lustre, GPFS, or an object store mounted with s3fs/gcsfuse)."
        )


def _file_suffix(model_class: Any) -> str:
    """The file a model class saves to and loads from: ``.keras``, or its ``file_suffix`` (``.onnx``)."""
    return str(getattr(model_class, "file_suffix", ".keras"))


def _model_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="latent-widgets-save-") as tmp:
        path = Path(tmp) / f"model{_file_suffix(type(model))}"
        try:
            model.save(path)
        except Exception as exc:
            if path.suffix != ".keras":  # an ONNX model: its save() says what stops it
                raise LatentModelError(
                    f"encoding on a cluster sends each worker the file the model's save() writes, and it cannot "
                    f"be written: {exc}"
                ) from exc
            raise LatentModelError(
                f"the model cannot be saved to a .keras file ({type(exc).__name__}: {str(exc)[:300]}); "
                "encoding on a cluster sends each worker the file LatentModel.save writes. Make every "
                "layer serializable (get_config, @keras.saving.register_keras_serializable) or encode "
                "without a client."
            ) from exc
        return path.read_bytes()


def _default_chunk_rows(n: int, batch_size: int, row_bytes: int, n_workers: int) -> int:
    """The store's usual chunk (about 2 MiB), smaller when the cluster would get too few tasks."""
    usual = default_chunk_rows(n, batch_size, row_bytes)
    per_task = -(-n // max(1, _TASKS_PER_WORKER * n_workers))
    return max(batch_size, min(usual, batch_size * -(-per_task // batch_size)))


class ClusterEncode:
    """An encode running on a Dask cluster: one future per chunk still to write.

    Made by :func:`submit_encode`. :meth:`wait` blocks until the store is
    complete and returns it; :meth:`cancel` stops the run (the chunks
    written stay done, and the next run resumes after them).

    Attributes
    ----------
    store : LatentStore
    chunks : list of int
        The chunks this run encodes (those that were not done).
    futures : list of distributed.Future
        One per chunk, in the order of :attr:`chunks`.
    """

    def __init__(self, store: LatentStore, chunks: Sequence[int], futures: Sequence[Any], keep: Sequence[Any]) -> None:
        self.store = store
        self.chunks = list(chunks)
        self.futures = list(futures)
        self._keep = list(keep)  # the scattered model and dataset: alive while the tasks may need them

    def wait(self, progress: bool | None = None) -> LatentStore:
        """Block until every chunk is written; the complete store.

        Parameters
        ----------
        progress : bool, optional
            A ``tqdm.auto`` bar of rows written; default: for 8 chunks or more.

        Raises
        ------
        Exception
            The first task's error (a model that does not load, an unreadable
            file), after cancelling the other tasks.
        """
        from distributed import as_completed

        if progress is None:
            progress = len(self.futures) >= 8
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.store.n, initial=self.store.n - self._rows_left(), desc="encoding on cluster", unit="img"
            )
        try:
            chunk_of = {f.key: c for f, c in zip(self.futures, self.chunks, strict=True)}
            for fut in as_completed(self.futures):
                fut.result()  # raises the task's error
                if bar is not None:
                    bar.update(self._rows_of(chunk_of[fut.key]))
        except BaseException:
            self.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()
        self._keep.clear()
        done = self.store.chunks_done()
        if not done.all():
            raise LatentStoreError(
                f"the cluster finished but {int((~done).sum())} of {len(done)} chunks of {self.store.path} are "
                "not written; run the encode again (it resumes), and check the workers' logs."
            )
        return self.store

    def _rows_of(self, c: int) -> int:
        s = self.store.chunk_slice(c)
        return s.stop - s.start

    def _rows_left(self) -> int:
        return sum(self._rows_of(c) for c in self.chunks)

    def done(self) -> bool:
        """Whether every task has finished (successfully or not)."""
        return all(f.done() for f in self.futures)

    def cancel(self) -> None:
        """Stop the tasks not yet finished; chunks already written stay done."""
        if self.futures:
            self.futures[0].client.cancel(self.futures)
        self._keep.clear()

    def __repr__(self) -> str:
        finished = sum(f.done() for f in self.futures)
        return f"ClusterEncode({str(self.store.path)!r}, {finished}/{len(self.futures)} chunks finished)"


def submit_encode(
    model: Any,
    dataset: Any,
    store: str | os.PathLike[str],
    client: Any,
    *,
    batch_size: int = 32,
    resume: bool = True,
    overwrite: bool = False,
    store_skips: bool = False,
    chunk_rows: int | None = None,
) -> ClusterEncode:
    """Start encoding ``dataset`` into the store at ``store`` on the workers of ``client``; returns at once.

    Parameters
    ----------
    model : LatentModel
        Saved with :meth:`~latent_widgets.LatentModel.save` and sent to each worker once.
    dataset : SegmentationDataset
        A lazy one (its images are rebuilt on the workers from its source).
    store : path
        A store folder on a filesystem the client and every worker share.
    client : dask.distributed.Client
    batch_size : int
        Images per encoder call on a worker.
    resume, overwrite, store_skips :
        As for ``LatentModel.encode_dataset``.
    chunk_rows : int, optional
        Rows per chunk, the unit of a task (a multiple of ``batch_size``).
        Default: the store's usual 2 MiB, smaller when that would give fewer
        than 4 tasks per worker.

    Returns
    -------
    ClusterEncode
        ``.wait()`` for the complete store.

    Raises
    ------
    LatentStoreError
        No store path, an in-memory dataset, a store the workers cannot
        reach, or a store of another model or dataset.
    LatentModelError
        A model that cannot be saved to a ``.keras`` file.

    Examples
    --------
    >>> job = submit_encode(lm, ds, "/shared/z.zarr", client)  # doctest: +SKIP
    >>> job.store.rows_done  # while it runs  # doctest: +SKIP
    4096
    >>> store = job.wait()  # doctest: +SKIP
    """
    optional_import("distributed", extra="dask", what="encoding on a Dask cluster (encode_dataset(..., client=...))")
    _require_client(client)
    path = _require_store_path(store)
    images = _require_lazy_images(dataset)
    batch_size = max(1, int(batch_size))
    model_hash, data_hash = model.weights_hash(), dataset.content_hash()
    n = len(images)
    if chunk_rows is None and not (path.is_dir() and any(path.iterdir())):
        row_bytes = stored_row_bytes(model.latent_shape, model.skip_shapes, store_skips)
        n_workers = len(client.scheduler_info().get("workers", {})) or 1
        chunk_rows = _default_chunk_rows(n, batch_size, row_bytes, n_workers)
    st = prepare_store(
        path,
        n=n,
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=model.latent_shape,
        skip_shapes=model.skip_shapes,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        store_skips=store_skips,
        resume=resume,
        overwrite=overwrite,
    )
    _check_workers_see(client, path, f"{model_hash}/{data_hash}")
    missing = st.missing_chunks()
    if not missing:
        return ClusterEncode(st, [], [], [])
    model_bytes = _model_bytes(model)
    # Sent once per worker, not once per task: the model file and the dataset's source (paths, parameters).
    model_future = client.scatter(model_bytes, broadcast=True, hash=False)
    images_future = client.scatter(images, broadcast=True, hash=False)
    run = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            _encode_chunk,
            c,
            images_future,
            model_future,
            model_hash,
            type(model),
            str(path),
            data_hash,
            batch_size,
            key=f"latent-store-chunk-{run}-{c}",
            retries=1,
        )
        for c in missing
    ]
    return ClusterEncode(st, missing, futures, [model_future, images_future])


def encode_on_cluster(
    model: Any,
    dataset: Any,
    store: str | os.PathLike[str],
    client: Any,
    *,
    batch_size: int = 32,
    resume: bool = True,
    overwrite: bool = False,
    store_skips: bool = False,
    chunk_rows: int | None = None,
    progress: bool | None = None,
) -> LatentStore:
    """Encode ``dataset`` into the store at ``store`` on the workers of ``client``; the complete store.

    What ``LatentModel.encode_dataset(dataset, store=PATH, client=client)``
    calls; :func:`submit_encode` documents the parameters, and ``progress``
    shows a bar of the rows written.

    Examples
    --------
    >>> store = encode_on_cluster(lm, ds, "/shared/z.zarr", client)  # doctest: +SKIP
    >>> store.is_complete  # doctest: +SKIP
    True
    """
    job = submit_encode(
        model,
        dataset,
        store,
        client,
        batch_size=batch_size,
        resume=resume,
        overwrite=overwrite,
        store_skips=store_skips,
        chunk_rows=chunk_rows,
    )
    return job.wait(progress)


# ----------------------------------------------------------------------------- PCA and maps


class StorePCA:
    """The PCA of a latent store computed by :func:`pca_of_store`.

    Attributes
    ----------
    mean_, components_, explained_variance_, explained_variance_ratio_, singular_values_
        As in :class:`sklearn.decomposition.PCA`; each component's sign makes
        its largest-magnitude entry positive.
    points : ndarray, float32, (n, n_components)
        Every latent's coordinates, ``(x - mean_) @ components_.T``.
    n_samples_, n_features_in_, n_components_ : int
    solver_ : {"covariance", "randomized"}
        The route :func:`pca_of_store` took (see :func:`pca_solver`).
    """

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        singular_values: np.ndarray,
        total_var: float,
        points: Any,
        solver: str = "randomized",
    ) -> None:
        n = len(points)
        self.solver_ = solver
        self.mean_ = mean
        self.components_ = components
        self.singular_values_ = singular_values
        self.explained_variance_ = singular_values**2 / max(n - 1, 1)
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total_var if total_var > 0 else np.zeros_like(singular_values)
        )
        self.points = points
        self.n_samples_ = n
        self.n_features_in_ = int(mean.shape[0])
        self.n_components_ = int(components.shape[0])

    def transform(self, x: Any) -> np.ndarray:
        """Coordinates of new latents ``(m, *latent_shape)`` or ``(m, d)``; float64."""
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return (x - self.mean_) @ self.components_.T

    def __repr__(self) -> str:
        return f"StorePCA({self.n_samples_} x {self.n_features_in_} -> {self.n_components_})"


def _cluster_memory(client: Any) -> int:
    """Bytes of memory of the cluster's workers (their memory limits; 0 when unknown)."""
    workers = client.scheduler_info().get("workers", {})
    return int(sum(int(w.get("memory_limit") or 0) for w in workers.values()))


def _worker_memory(client: Any) -> int:
    """Bytes of memory of the smallest worker (0 when unknown)."""
    workers = client.scheduler_info().get("workers", {})
    return min((int(w.get("memory_limit") or 0) for w in workers.values()), default=0)


def _open_store(store: LatentStore | str | os.PathLike[str]) -> LatentStore:
    return store if isinstance(store, LatentStore) else LatentStore.open(store)


def pca_solver(d: int, width: int, n_iter: int, memory: int = 0) -> Literal["covariance", "randomized"]:
    """Which route :func:`pca_of_store` takes for latents of ``d`` floats: the cheaper per row.

    Per latent (row) of the store, the covariance route does ``d^2 / 2``
    multiply-adds in float64 (a symmetric rank-k update; float64 runs at half
    float32's rate, so it costs about ``d^2`` float32 multiply-adds), once. The
    randomized SVD does ``2 n_iter + 2`` products of ``d x width`` float32
    multiply-adds (``width = n_components + n_oversamples``) and ``2 n_iter + 1``
    tall-and-skinny QRs, each about ``width^2`` multiply-adds per row at a
    twenty-fifth of a product's rate (measured: Householder QR of a
    ``16384 x 60`` block ran at 0.6 G multiply-adds/s against 14-17 G for the
    products and the rank-k update, on one core). So the covariance route is
    chosen when::

        d^2 <= (2 n_iter + 2) d width + 25 (2 n_iter + 1) width^2

    that is ``d <= 1,250`` at the defaults (50 components, 10 oversamples, 4
    iterations), and while its ``d x d`` float64 matrix, four times over
    (partial sums being added, the eigensolver's copies), takes at most a
    quarter of the smallest worker's ``memory`` (when known).

    Parameters
    ----------
    d : int
        Floats per latent.
    width : int
        ``n_components + n_oversamples``.
    n_iter : int
        Power iterations of the randomized SVD.
    memory : int
        Bytes of the smallest worker's memory; 0 when unknown (no memory bound).

    Examples
    --------
    >>> pca_solver(512, 60, 4), pca_solver(6144, 60, 4)
    ('covariance', 'randomized')
    """
    gram = float(d) * d
    randomized = (2 * n_iter + 2) * float(d) * width + 25 * (2 * n_iter + 1) * float(width) ** 2
    fits = memory <= 0 or 4 * 8 * gram <= memory / 4
    return "covariance" if gram <= randomized and fits else "randomized"


# Tasks of the covariance route (module level so that the workers unpickle them by reference).


def _gram_part(block: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums and ``X^T X`` of a block of rows minus ``shift``, in float64."""
    xb = np.asarray(block, np.float64).reshape(len(block), -1)
    xb -= shift
    # numpy runs ``a.T @ a`` as one symmetric rank-k update (BLAS syrk): half a general product.
    return xb.sum(axis=0), xb.T @ xb


def _add_parts(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    sums, grams = zip(*parts, strict=True)
    return np.sum(sums, axis=0), np.sum(grams, axis=0)


def _tree_sum(parts: list[Any], fan_in: int = 8) -> Any:
    """Delayed sum of delayed ``(sums, gram)`` pairs, added ``fan_in`` at a time on the workers."""
    import dask

    add = dask.delayed(_add_parts, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def _project_block(block: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """A block's PCA coordinates ``(x - mean) @ components.T``, computed in float64, returned in float32."""
    xb = np.asarray(block, np.float64).reshape(len(block), -1)
    xb -= mean
    return (xb @ components.T).astype(np.float32)


def _covariance_pca(x: Any, n: int, k: int, shift: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, components, singular values, total variance and points by the covariance route."""
    import dask

    parts = [dask.delayed(_gram_part, pure=True)(b, shift) for b in x.to_delayed().ravel()]
    ((sums, gram),) = dask.compute(_tree_sum(parts))
    # Shifted by the first chunk's mean, not by zero: X^T X - n m m^T would otherwise cancel
    # catastrophically when the latents' mean is large against their spread.
    delta = sums / n
    mean = shift + delta
    cov = (gram - n * np.outer(delta, delta)) / max(n - 1, 1)
    cov = (cov + cov.T) / 2  # syrk fills one triangle; numpy mirrors it, this guards against rounding
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:k]
    variance = np.clip(values[order], 0, None)
    vt = vectors[:, order].T.copy()
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    vt *= signs[:, None]
    points = x.map_blocks(_project_block, mean, vt, dtype=np.float32, chunks=(x.chunks[0], (k,)))
    (points,) = dask.compute(points)
    singular = np.sqrt(variance * max(n - 1, 1))
    return mean, vt, singular, float(np.trace(cov)), np.asarray(points)


def _randomized_pca(
    x: Any, n: int, k: int, oversamples: int, n_iter: int, seed: int, in_memory: bool
) -> tuple[np.ndarray, ...]:
    """Mean, components, singular values, total variance and points by dask's randomized SVD."""
    import dask
    import dask.array as da

    if in_memory:
        x = x.persist()
    # The mean and the total variance in one pass, accumulated in float64.
    total, total_sq = dask.compute(x.sum(axis=0, dtype=np.float64), (x.astype(np.float64) ** 2).sum())
    mean = np.asarray(total) / n
    sq = float(total_sq) - n * float(mean @ mean)
    # Centred chunk by chunk as it is read, never stored; the products run in the latents' float32,
    # as scikit-learn's randomized PCA of float32 data does (float64 doubles the time). The subtraction
    # is in float64: a mean rounded to float32 would shift every point when the mean dwarfs the spread.
    xc = (x.astype(np.float64) - mean).astype(x.dtype)
    if in_memory:
        xc = xc.persist()
        del x  # the uncentred copy leaves the workers' memory
    # iterator="QR" orthonormalises after every product ("power" does not, and loses the smaller
    # components in float64 after a few iterations); compute=True keeps only the (n, k + p) sketch
    # between the passes, each of which reads the store again, so memory does not grow with d.
    u, s, vt = da.linalg.svd_compressed(
        xc, k, iterator="QR", n_power_iter=n_iter, n_oversamples=oversamples, seed=seed, compute=True
    )
    u, s, vt = (np.asarray(a, np.float64) for a in dask.compute(u, s, vt))
    # scikit-learn's sign rule on the components (the largest-magnitude entry positive), the points follow.
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    vt *= signs[:, None]
    points = (u * (s * signs)).astype(np.float32)
    return mean, vt, s, sq / max(n - 1, 1), points


def pca_of_store(
    store: LatentStore | str | os.PathLike[str],
    n_components: int = 50,
    *,
    client: Any = None,
    solver: Literal["auto", "covariance", "randomized"] = "auto",
    n_oversamples: int = 10,
    n_iter: int = 4,
    random_state: int = 0,
) -> StorePCA:
    """PCA of a store's latents, computed where the store is (``dask.array`` on the cluster's workers).

    Two routes, chosen by :func:`pca_solver` from the cost per latent:

    - ``"covariance"`` (narrow latents, ``d`` up to about 1,250 at the
      defaults): one pass computes the column sums and ``X^T X`` of each
      block of rows in float64 on the workers, added up in a tree there; the
      client takes the ``d x d`` covariance's eigenvectors (``numpy.linalg.eigh``);
      a second pass computes the points. This is the exact PCA, in two reads
      of the store instead of a dozen. Forming ``X^T X`` squares the condition
      number, which is why it is done in float64: a component of variance
      ``l_i`` comes out with an error of about ``1e-16 l_1 / gap_i``, as good as
      or better than a float32 SVD of the latents themselves (``6e-8 s_1 / gap_i``
      in singular values; scikit-learn's randomized PCA of float32 latents).
      The rows are shifted by the first chunk's mean before the products, so
      a large mean does not cancel away the digits of the spread.
    - ``"randomized"`` (wide latents, 10^4-10^5 floats, where a ``d x d``
      matrix is too big or too slow): :func:`dask.array.linalg.svd_compressed`
      of the centred rows (power iterations, each a tall-and-skinny QR over
      the row blocks), in the latents' float32.

    Only ``(d, k)`` matrices (or the ``d x d`` covariance) and the ``(n, k)``
    points come back to the client.

    Parameters
    ----------
    store : LatentStore or path
        A complete store; with a client its path must be reachable by the workers.
    n_components : int
        Components kept (50 for a t-SNE or UMAP pre-reduction).
    client : dask.distributed.Client, optional
        Where to compute; None uses Dask's default scheduler (the current
        client if there is one, else threads in this process).
    solver : {"auto", "covariance", "randomized"}
        ``"auto"`` asks :func:`pca_solver`.
    n_oversamples, n_iter, random_state :
        Of the randomized SVD (and of the cost rule): extra random
        directions, power iterations and the seed of the test matrix.

    Returns
    -------
    StorePCA
        With ``solver_`` naming the route taken.

    Examples
    --------
    >>> import tempfile
    >>> from latent_widgets.store import encode_to_store
    >>> x = np.random.default_rng(0).normal(size=(300, 8)) * np.geomspace(5, 0.1, 8)
    >>> st = encode_to_store(lambda b: (b,), x.astype(np.float32), tempfile.mkdtemp(), model_hash="m",
    ...                      data_hash="d", latent_shape=(8,), batch_size=50, chunk_rows=100, progress=False)
    >>> pca = pca_of_store(st, 2)
    >>> pca.points.shape, pca.solver_, bool(pca.explained_variance_ratio_[0] > 0.5)
    ((300, 2), 'covariance', True)
    """
    dask = optional_import("dask", extra="dask", what="pca_of_store (the PCA of a store with dask.array)")

    st = _open_store(store)
    latents = st.latents  # raises, with the fix, when the store is incomplete or damaged
    n, d = st.n, int(np.prod(st.latent_shape))
    k = int(n_components)
    if not 1 <= k <= min(n, d):
        raise ValueError(f"n_components must be between 1 and min(N, d) = {min(n, d)}, got {k}")
    if solver not in ("auto", "covariance", "randomized"):
        raise ValueError(f"solver must be 'auto', 'covariance' or 'randomized', got {solver!r}")
    oversamples = max(0, min(int(n_oversamples), min(n, d) - k))
    if solver == "auto":
        memory = _worker_memory(client) if client is not None else 0
        solver = pca_solver(d, k + oversamples, int(n_iter), memory)
    # Blocks of whole store chunks, about 32 MiB each and at least two per worker: the scheduler's cost
    # per task, times the passes, is what makes a store's many 2 MiB chunks slow.
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else (os.cpu_count() or 1)
    per_block = max(1, min(_PCA_BLOCK_BYTES // (4 * d * st.chunk_rows), -(-st.n_chunks // (2 * max(1, workers)))))
    rows = per_block * st.chunk_rows
    # Each block is checked against the chunks' checksums where it is read (StoredArray's rule, on the workers).
    x = st.dask_array("latents", rows).reshape(n, d)
    # Held in the workers' memory when the latents take less than a quarter of it: the passes then
    # read memory, not the store (each pass re-reads the store otherwise, so any size works).
    in_memory = client is not None and 4 * n * d < _cluster_memory(client) * _PCA_PERSIST_FRACTION
    with dask.config.set(scheduler=client) if client is not None else contextlib.nullcontext():
        if solver == "covariance":
            if in_memory:  # read once, used by both passes
                x = x.persist()
            shift = np.asarray(latents[: min(n, st.chunk_rows)], np.float64).reshape(-1, d).mean(axis=0)
            mean, vt, s, total_var, points = _covariance_pca(x, n, k, shift)
        else:
            mean, vt, s, total_var, points = _randomized_pca(
                x, n, k, oversamples, int(n_iter), int(random_state), in_memory
            )
    return StorePCA(mean, vt, s, total_var, points, solver=solver)


def project_store(
    pca: StorePCA,
    method: Literal["tsne", "umap", "pca"] = "tsne",
    **kwargs: Any,
) -> np.ndarray:
    """A 2-D map of a store from its PCA points, computed on the client (t-SNE or UMAP of ``pca.points``).

    Parameters
    ----------
    pca : StorePCA
        From :func:`pca_of_store` (50 components: 10^6 points are 200 MB).
    method : {"tsne", "umap", "pca"}
        ``"pca"`` returns the first two components.
    **kwargs
        For :class:`~latent_widgets.projection.TSNEProjection` or
        :class:`~latent_widgets.projection.UMAPProjection`.

    Returns
    -------
    ndarray, (n, 2)

    Examples
    --------
    >>> xy = project_store(pca_of_store("/shared/z.zarr", 50, client=client), "umap")  # doctest: +SKIP
    """
    if method == "pca":
        return np.asarray(pca.points[:, :2], np.float32)
    from .projection import TSNEProjection, UMAPProjection

    classes = {"tsne": TSNEProjection, "umap": UMAPProjection}
    if method not in classes:
        raise ValueError(f"method must be 'tsne', 'umap' or 'pca', got {method!r}")
    return np.asarray(classes[method](pca_dims=None, **kwargs).fit_transform(pca.points), np.float32)
