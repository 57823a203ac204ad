"""Stream a dataset's encoding into a :class:`~latent_widgets.latents.store.LatentStore`.

:func:`encode_to_store` reads the next batch of images in a background
thread (:class:`~latent_widgets.latents.prefetch.Prefetcher`) while the
encoder runs on the current one, and writes each finished chunk of rows,
then marks it done: an interrupted encode resumes with the chunks that are
not done. :func:`prepare_store` opens or creates the store for a model and
a dataset; :func:`fill_store` encodes its missing chunks. What they write
is one :class:`~latent_widgets.model.encode_options.EncodeOptions`.

Examples
--------
>>> import numpy as np, tempfile
>>> from latent_widgets.model.encode_options import EncodeOptions
>>> images = np.random.default_rng(0).random((10, 4, 4, 3), dtype=np.float32)
>>> encode = lambda x: (x.mean(axis=(1, 2)),)  # a stand-in encoder: (N, 3) latents
>>> store = encode_to_store(encode, images, tempfile.mkdtemp(), model_hash="m", data_hash="d",
...                         latent_shape=(3,), options=EncodeOptions(batch_size=4), progress=False)
>>> store.is_complete, store.latents.shape
(True, (10, 3))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.arrays import iter_row_blocks
from ..model.encode_options import EncodeOptions
from .lazy_skips import EncodeBatch
from .prefetch import Prefetcher
from .store import LatentStore
from .store_errors import LatentStoreError
from .store_format import is_store

__all__ = ["as_numpy", "encode_to_store", "fill_store", "prepare_store"]

# Show a progress bar from this many batches on (progress=None), as LatentModel.encode.
_AUTO_PROGRESS_BATCHES = 8


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
    """``x`` as a numpy array: an encoder's output, a numpy array or a tensor with ``.numpy()``."""
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
    options: EncodeOptions | None = None,
    progress: bool | None = None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> LatentStore:
    """Stream ``images`` through an encoder into a :class:`LatentStore` at ``path``.

    A complete store for the same model and data is returned as is; a
    partial one is resumed (only its missing chunks are encoded) unless
    ``options.resume`` is False; a store for another model or data is
    refused unless ``options.overwrite``.

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
    options : EncodeOptions, optional
        Images per encoder call, rows per chunk (a multiple of the batch
        size; default: about 2 MiB), whether the skips are stored, whether
        a store there is resumed or replaced. Default: ``EncodeOptions()``.
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
    options = options or EncodeOptions()
    store = prepare_store(
        path,
        n=len(images),
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=latent_shape,
        skip_shapes=skip_shapes,
        options=options,
    )
    return fill_store(store, encode_batch, images, batch_size=options.batch_size, progress=progress, on_batch=on_batch)


def prepare_store(
    path: str | os.PathLike[str],
    *,
    n: int,
    model_hash: str,
    data_hash: str,
    latent_shape: Sequence[int],
    skip_shapes: Sequence[Sequence[int]] = (),
    options: EncodeOptions | None = None,
) -> LatentStore:
    """The store :func:`encode_to_store` fills: created, or reopened to resume (``options.resume=False``: reset).

    The parameters are :func:`encode_to_store`'s; ``n`` is the number of
    samples. Encoders running elsewhere (the workers of
    :mod:`latent_widgets.latents.distributed`) fill the store it returns.

    Raises
    ------
    LatentStoreError
        ``options.chunk_rows`` is not a positive multiple of ``options.batch_size`` (for a new store: a
        store that is resumed keeps its chunks), and :meth:`LatentStore.create`'s errors.

    Examples
    --------
    >>> import tempfile
    >>> st = prepare_store(tempfile.mkdtemp(), n=100, model_hash="m", data_hash="d", latent_shape=(3,),
    ...                    options=EncodeOptions(batch_size=8))
    >>> st.n_chunks, st.missing_chunks()[:3]
    (1, [0])
    """
    options = options or EncodeOptions()
    batch_size, chunk_rows = options.batch_size, options.chunk_rows
    if chunk_rows is not None and (int(chunk_rows) < 1 or int(chunk_rows) % batch_size) and not is_store(Path(path)):
        # (A store being resumed keeps its chunks, whatever chunk_rows says.)
        suggestion = batch_size * max(1, int(chunk_rows) // batch_size)
        raise LatentStoreError(
            f"chunk_rows={chunk_rows} must be a positive multiple of batch_size={batch_size} (a chunk is "
            f"written when its last batch is encoded); e.g. chunk_rows={suggestion}."
        )
    return LatentStore.create(
        path,
        model_hash=model_hash,
        data_hash=data_hash,
        n=n,
        latent_shape=latent_shape,
        skip_shapes=skip_shapes,
        options=options,
    )
