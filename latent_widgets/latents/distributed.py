"""Encode a dataset on a Dask cluster (``dask.distributed``) into a latent store.

When a dataset outgrows one machine (10^5-10^6 frames, latents of 10^4-10^5
floats each), :func:`encode_on_cluster` (what
``LatentModel.encode_dataset(dataset, store=PATH, client=client)`` does)
spreads the encode over the workers of a :class:`dask.distributed.Client`:
one task per row chunk of the :class:`~latent_widgets.latents.store.LatentStore`,
each task reading its rows of the dataset, encoding them and writing them
straight into the Zarr store, then marking the chunk done.

- The dataset travels as a description, never as pixels: a lazy dataset's
  ``images`` hold a :class:`~latent_widgets.data.lazy_array.SampleSource` (the
  synthetic generator's seed and parameters, or the image and mask paths of
  a folder) that is sent once to each worker; a task names its index range.
- The model travels as the bytes of the ``.keras`` file that
  :meth:`~latent_widgets.LatentModel.save` writes (an ONNX model: the
  ``.onnx`` file of :meth:`~latent_widgets.model.onnx_model.OnnxLatentModel.save`);
  each worker loads it once (``safe_mode=True``), checks its weights hash,
  and keeps it for the next tasks, with TensorFlow's thread pools (ONNX
  Runtime's sessions) sized to the worker's threads.
- Faults: a chunk's task writes its rows, then its done flag, so a task
  recomputed elsewhere after its worker died rewrites the same rows; a run
  stopped and started again only submits the chunks that are not done.

The PCA of the store, on the cluster, is :mod:`latent_widgets.analysis.store_pca`.

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
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.arrays import iter_row_blocks
from ..core.optional import optional_import
from ..data.lazy_array import LazyArray
from ..model.encode_options import EncodeOptions
from ..model.errors import LatentModelError
from .encode import as_numpy, prepare_store
from .prefetch import Prefetcher
from .store import LatentStore
from .store_errors import LatentStoreError
from .store_format import default_chunk_rows, stored_row_bytes

__all__ = [
    "ClusterEncode",
    "encode_on_cluster",
    "submit_encode",
]

# Tasks per worker that the default chunk size aims for: enough that a slow or
# lost worker's share is small, few enough that the scheduler's cost per task
# (about a millisecond) stays negligible.
_TASKS_PER_WORKER = 4

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
    for block, x in Prefetcher(view, list(iter_row_blocks(size, batch_size))):
        outs = model.encode_batch(x)
        latents[block] = as_numpy(outs[0])
        for dst, src in zip(skips, outs[1:], strict=False):
            dst[block] = as_numpy(src)
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
    options: EncodeOptions | None = None,
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
    options : EncodeOptions, optional
        As for ``LatentModel.encode_dataset``: ``batch_size`` is the images
        per encoder call on a worker; ``chunk_rows``, the rows of a task (a
        multiple of ``batch_size``), defaults to the store's usual 2 MiB,
        smaller when that would give fewer than 4 tasks per worker.

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
    >>> job = submit_encode(lm, ds, "/shared/z.zarr", client, EncodeOptions(batch_size=64))  # doctest: +SKIP
    >>> job.store.rows_done  # while it runs  # doctest: +SKIP
    4096
    >>> store = job.wait()  # doctest: +SKIP
    """
    optional_import("distributed", extra="dask", what="encoding on a Dask cluster (encode_dataset(..., client=...))")
    options = options or EncodeOptions()
    _require_client(client)
    path = _require_store_path(store)
    images = _require_lazy_images(dataset)
    model_hash, data_hash = model.weights_hash(), dataset.content_hash()
    n = len(images)
    if options.chunk_rows is None and not (path.is_dir() and any(path.iterdir())):
        row_bytes = stored_row_bytes(model.latent_shape, model.skip_shapes, options.store_skips)
        n_workers = len(client.scheduler_info().get("workers", {})) or 1
        chunk_rows = _default_chunk_rows(n, options.batch_size, row_bytes, n_workers)
        options = dataclasses.replace(options, chunk_rows=chunk_rows)
    st = prepare_store(
        path,
        n=n,
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=model.latent_shape,
        skip_shapes=model.skip_shapes,
        options=options,
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
            options.batch_size,
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
    does; the keyword arguments are the fields of
    :class:`~latent_widgets.model.encode_options.EncodeOptions`
    (:func:`submit_encode` documents them), and ``progress`` shows a bar of
    the rows written.

    Examples
    --------
    >>> store = encode_on_cluster(lm, ds, "/shared/z.zarr", client)  # doctest: +SKIP
    >>> store.is_complete  # doctest: +SKIP
    True
    """
    options = EncodeOptions(
        batch_size=batch_size, chunk_rows=chunk_rows, store_skips=store_skips, resume=resume, overwrite=overwrite
    )
    return submit_encode(model, dataset, store, client, options).wait(progress)
