"""Stream a dataset's encoding into a :class:`~latent_widgets.latents.store.LatentStore`.

:func:`encode_to_store` reads the next batch of images in a background
thread (:class:`Prefetcher`) while the encoder runs on the current one, and
writes each finished chunk of rows, then marks it done: an interrupted
encode resumes with the chunks that are not done. :func:`prepare_store`
opens or creates the store for a model and a dataset; :func:`fill_store`
encodes its missing chunks.

Examples
--------
>>> import numpy as np, tempfile
>>> images = np.random.default_rng(0).random((10, 4, 4, 3), dtype=np.float32)
>>> encode = lambda x: (x.mean(axis=(1, 2)),)  # a stand-in encoder: (N, 3) latents
>>> store = encode_to_store(encode, images, tempfile.mkdtemp(), model_hash="m", data_hash="d",
...                         latent_shape=(3,), batch_size=4, progress=False)
>>> store.is_complete, store.latents.shape
(True, (10, 3))
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.arrays import iter_row_blocks
from .lazy_skips import EncodeBatch
from .store import LatentStore, LatentStoreError, default_chunk_rows, is_store, stored_row_bytes

__all__ = ["Prefetcher", "as_numpy", "encode_to_store", "fill_store", "prepare_store"]

# Batches read ahead of the encoder.
_PREFETCH = 2
# Show a progress bar from this many batches on (progress=None), as LatentModel.encode.
_AUTO_PROGRESS_BATCHES = 8


class Prefetcher:
    """Reads ``images[rows]`` for the coming blocks on a background thread.

    Reading a batch of a lazy dataset (rendering, decoding files) can cost
    as much as encoding it; the queue holds at most ``depth`` batches, so
    memory does not grow with the dataset.
    """

    _END = object()

    def __init__(self, images: Any, blocks: Sequence[slice], depth: int = _PREFETCH) -> None:
        self._images = images
        self._blocks = list(blocks)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latent-store-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for rows in self._blocks:
                if self._stop.is_set():
                    return
                if not self._put((rows, np.asarray(self._images[rows]), None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((None, None, exc))
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[tuple[slice, np.ndarray]]:
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                rows, x, exc = item
                if exc is not None:
                    raise exc
                yield rows, x
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _batches_of(store: LatentStore, chunks: Sequence[int], batch_size: int) -> list[slice]:
    out: list[slice] = []
    for c in chunks:
        s = store.chunk_slice(c)
        out.extend(slice(s.start + b.start, s.start + b.stop) for b in iter_row_blocks(s.stop - s.start, batch_size))
    return out


def fill_store(
    store: LatentStore,
    encode_batch: EncodeBatch,
    images: Any,
    *,
    batch_size: int = 32,
    progress: bool | None = None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> LatentStore:
    """Encode the chunks of ``store`` that are not done, batch by batch.

    Parameters
    ----------
    store : LatentStore
    encode_batch : callable
        ``images (B, H, W, C) -> (latents, skip_0, ...)``, arrays or tensors
        with ``.numpy()``.
    images : array-like, (n, H, W, C)
        ``images[slice]`` is read one batch at a time, ahead of the encoder.
    batch_size : int
        Images per encoder call.
    progress : bool, optional
        A ``tqdm.auto`` bar (starting at the rows already done); default:
        when there are 8 batches or more to encode.
    on_batch : callable, optional
        ``on_batch(rows_done, n)``, called before the first batch and after
        each one (not at all when the store is complete): progress, or other
        work done between batches (the explorer session answers the slider
        there).

    Returns
    -------
    LatentStore
        ``store``, now complete.
    """
    if len(images) != store.n:
        raise LatentStoreError(
            f"got {len(images)} images for a store of {store.n} samples; the store belongs to another dataset."
        )
    batch_size = max(1, int(batch_size))
    missing = store.missing_chunks()
    blocks = _batches_of(store, missing, batch_size)
    if progress is None:
        progress = len(blocks) >= _AUTO_PROGRESS_BATCHES
    if not blocks:
        return store
    done = store.rows_done
    if on_batch is not None:
        on_batch(done, store.n)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=store.n, initial=store.rows_done, desc="encoding to store", unit="img", leave=False)
    # One chunk's rows are gathered here and written at once (no partial-chunk rewrites);
    # reused for every chunk, so memory does not grow with n.
    lat_buf = np.empty((store.chunk_rows, *store.latent_shape), np.float32)
    skip_bufs = tuple(np.empty((store.chunk_rows, *s), np.float32) for s in store.skip_shapes if store.stored_skips)
    loader = Prefetcher(images, blocks)
    try:
        for rows, x in loader:
            if len(x) != rows.stop - rows.start:
                raise LatentStoreError(
                    f"images[{rows.start}:{rows.stop}] returned {len(x)} images instead of {rows.stop - rows.start}."
                )
            outs = encode_batch(x)
            z = as_numpy(outs[0])
            if z.shape != (len(x), *store.latent_shape):
                raise LatentStoreError(
                    f"the encoder returned latents of shape {z.shape} for {len(x)} images; the store expects "
                    f"{(len(x), *store.latent_shape)}. The store belongs to another model."
                )
            c = rows.start // store.chunk_rows
            chunk = store.chunk_slice(c)
            off = slice(rows.start - chunk.start, rows.stop - chunk.start)
            lat_buf[off] = z
            for dst, src in zip(skip_bufs, outs[1:], strict=False):
                dst[off] = as_numpy(src)
            if rows.stop == chunk.stop:
                size = chunk.stop - chunk.start
                store.write_chunk(c, lat_buf[:size], [b[:size] for b in skip_bufs])
            if bar is not None:
                bar.update(len(x))
            done += len(x)
            if on_batch is not None:
                on_batch(done, store.n)
    finally:
        loader.close()  # stops the reader thread at once on an error or an interrupt
        if bar is not None:
            bar.close()
    return store


def as_numpy(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def encode_to_store(
    encode_batch: EncodeBatch,
    images: Any,
    path: str | os.PathLike[str],
    *,
    model_hash: str,
    data_hash: str,
    latent_shape: Sequence[int],
    skip_shapes: Sequence[Sequence[int]] = (),
    batch_size: int = 32,
    chunk_rows: int | None = None,
    store_skips: bool = False,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool | None = None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> LatentStore:
    """Stream ``images`` through an encoder into a :class:`LatentStore` at ``path``.

    A complete store for the same model and data is returned as is; a
    partial one is resumed (only its missing chunks are encoded) unless
    ``resume=False``; a store for another model or data is refused unless
    ``overwrite=True``.

    Parameters
    ----------
    encode_batch : callable
        ``images (B, H, W, C) -> (latents, skip_0, ...)``.
    images : array-like, (n, H, W, C)
        Read with ``images[slice]``, one batch at a time.
    path : path
        The store's folder.
    model_hash, data_hash : str
        Recorded in the store and checked when it is reopened.
    latent_shape, skip_shapes :
        The encoder's output shapes (without the batch axis).
    batch_size : int
        Images per encoder call.
    chunk_rows : int, optional
        Rows per chunk, a multiple of ``batch_size``; default: about 2 MiB.
    store_skips : bool
        Also store the skip features.
    resume : bool
        ``False`` re-encodes every chunk of an existing store.
    overwrite : bool
        Replace a store at ``path`` even if it belongs to another model or data.
    progress : bool, optional
        Progress bar; default: for 8 batches or more.
    on_batch : callable, optional
        ``on_batch(rows_done, n)`` before the first batch and after each (:func:`fill_store`).

    Returns
    -------
    LatentStore
        Complete.

    Examples
    --------
    >>> store = encode_to_store(lambda x: lm.encode(x).latents[None], ds.images, "z.zarr",
    ...                         model_hash=lm.weights_hash(), data_hash=ds.content_hash(),
    ...                         latent_shape=lm.latent_shape)  # doctest: +SKIP
    """
    store = prepare_store(
        path,
        n=len(images),
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=latent_shape,
        skip_shapes=skip_shapes,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        store_skips=store_skips,
        resume=resume,
        overwrite=overwrite,
    )
    return fill_store(store, encode_batch, images, batch_size=batch_size, progress=progress, on_batch=on_batch)


def prepare_store(
    path: str | os.PathLike[str],
    *,
    n: int,
    model_hash: str,
    data_hash: str,
    latent_shape: Sequence[int],
    skip_shapes: Sequence[Sequence[int]] = (),
    batch_size: int = 32,
    chunk_rows: int | None = None,
    store_skips: bool = False,
    resume: bool = True,
    overwrite: bool = False,
) -> LatentStore:
    """The store :func:`encode_to_store` fills: created, or reopened to resume (``resume=False``: reset).

    The parameters are :func:`encode_to_store`'s; ``n`` is the number of
    samples. Encoders running elsewhere (the workers of
    :mod:`latent_widgets.latents.distributed`) fill the store it returns.

    Examples
    --------
    >>> import tempfile
    >>> st = prepare_store(tempfile.mkdtemp(), n=100, model_hash="m", data_hash="d", latent_shape=(3,), batch_size=8)
    >>> st.n_chunks, st.missing_chunks()[:3]
    (1, [0])
    """
    batch_size = max(1, int(batch_size))
    latent_shape = tuple(int(s) for s in latent_shape)
    skip_shapes = tuple(tuple(int(v) for v in s) for s in skip_shapes)
    n = int(n)
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(n, batch_size, stored_row_bytes(latent_shape, skip_shapes, store_skips))
    elif (int(chunk_rows) < 1 or int(chunk_rows) % batch_size) and not is_store(Path(path)):
        # (A store being resumed keeps its chunks, whatever chunk_rows says.)
        suggestion = batch_size * max(1, int(chunk_rows) // batch_size)
        raise LatentStoreError(
            f"chunk_rows={chunk_rows} must be a positive multiple of batch_size={batch_size} (a chunk is "
            f"written when its last batch is encoded); e.g. chunk_rows={suggestion}."
        )
    store = LatentStore.create(
        path,
        model_hash=model_hash,
        data_hash=data_hash,
        n=n,
        latent_shape=latent_shape,
        skip_shapes=skip_shapes,
        store_skips=store_skips,
        chunk_rows=int(chunk_rows),
        overwrite=overwrite,
    )
    if not resume:
        store.reset_progress()
    return store
