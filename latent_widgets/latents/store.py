"""The latent store: a dataset's encoding on disk, written chunk by chunk.

Encoding 10^5 images does not fit in memory as one array, and takes long
enough to be interrupted. :class:`LatentStore` keeps the latents in a Zarr
group, one row per sample, chunked along the rows, float32 and
uncompressed (writing stays a small fraction of the encoding time).
:func:`~latent_widgets.latents.encode.encode_to_store` streams a dataset into it: a background thread reads
the next batch of images while the encoder runs on the current one, and each
finished chunk of rows is written, then marked done. An interrupted encode
(an exception, a killed kernel) resumes with the chunks that are not done;
a store is complete only when every chunk is.

The store records the hash of the model that wrote it and of the data it
encodes; opening it for another model or other data raises
:class:`~latent_widgets.latents.store_errors.LatentStoreError` instead of reusing stale latents.

Skip features (decoders with skip connections) are many times bigger than
the latents, so by default they are not stored: :meth:`LatentStore.lazy_skips`
gives columns that re-encode the requested samples on demand.

The parts of a store, each in its module: the folder's format and
attributes (:mod:`~latent_widgets.latents.store_format`), its Zarr arrays
(:mod:`~latent_widgets.latents.store_arrays`, :mod:`~latent_widgets.latents.zarr_arrays`),
the chunks' done flags and checksums (:mod:`~latent_widgets.latents.chunk_records`,
:mod:`~latent_widgets.latents.checksums`), and the checked reads
(:mod:`~latent_widgets.latents.stored_array`, :mod:`~latent_widgets.latents.chunk_verifier`).

This module sits between the data and the analysis layers: it knows the
encoder only as a function ``images -> (latents, *skips)``, so that it does
not import the model adapter (which imports it).

Examples
--------
>>> import numpy as np, tempfile
>>> from latent_widgets.latents.encode import encode_to_store
>>> from latent_widgets.model.encode_options import EncodeOptions
>>> images = np.random.default_rng(0).random((10, 4, 4, 3), dtype=np.float32)
>>> encode = lambda x: (x.mean(axis=(1, 2)),)  # a stand-in encoder: (N, 3) latents
>>> store = encode_to_store(encode, images, tempfile.mkdtemp(), model_hash="m", data_hash="d",
...                         latent_shape=(3,), options=EncodeOptions(batch_size=4), progress=False)
>>> store.is_complete, store.latents.shape, store.chunk_rows
(True, (10, 3), 12)
>>> bool(np.allclose(store.latents[2:5], images[2:5].mean(axis=(1, 2))))
True
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.optional import optional_import
from ..model.encode_options import EncodeOptions
from .checksums import chunk_checksum
from .chunk_records import ChunkRecords
from .chunk_verifier import ChunkVerifier, verified_block
from .lazy_skips import EncodeBatch, LazySkipColumn, SkipSource
from .store_arrays import StoreArrays
from .store_errors import DamagedArrayError, LatentStoreError, describe_chunks
from .store_format import (
    STORE_FORMAT,
    check_attributes,
    check_hashes,
    check_reusable,
    default_chunk_rows,
    looks_like_store,
    new_attributes,
    read_attributes,
    stored_row_bytes,
)
from .stored_array import StoredArray
from .zarr_arrays import import_zarr, writable

__all__ = ["LatentStore"]


class LatentStore:
    """A dataset's latents (and optionally skip features) in a Zarr group on disk.

    Create or reopen one with :meth:`create`, read one with :meth:`open`;
    :func:`~latent_widgets.latents.encode.encode_to_store` (what ``LatentModel.encode_dataset(...,
    store=...)`` calls) fills it.

    A store checks what it serves. Each chunk's rows are written, then a
    checksum of them (CRC-32C), then its done flag; reading the progress
    (:meth:`chunks_done`, which :attr:`latents` does) finds every chunk
    marked done whose file is missing or of the wrong size, or whose flag
    or checksum is damaged, without reading any latent; every chunk read
    is compared with its checksum. A damaged chunk is never served: reading
    it raises :class:`~latent_widgets.latents.store_errors.LatentStoreError` naming its rows, and resuming
    (:meth:`create`, ``encode_dataset(..., store=path)``) re-encodes it
    with a :class:`~latent_widgets.latents.store_errors.LatentStoreWarning`. Stores written before checksums
    existed are checked for missing and short chunk files only.

    Attributes
    ----------
    path : Path
    n : int
        Number of samples (rows).
    latent_shape : tuple of int
    skip_shapes : tuple of tuple of int
        The encoder's skip shapes, stored or not.
    stored_skips : bool
        Whether the skip features are on disk.
    chunk_rows : int
        Rows per chunk (the unit of writing and of resuming).
    model_hash, data_hash : str
        What the latents were computed from.
    checksum : str or None
        The chunk checksum (``"crc32c"``), None in stores written without.

    Examples
    --------
    >>> store = LatentStore.open("latents.zarr")  # doctest: +SKIP
    >>> store.is_complete, store.latents.shape  # doctest: +SKIP
    (True, (100000, 4, 4, 128))
    """

    def __init__(self, path: str | os.PathLike[str], group: Any) -> None:
        self.path = Path(path)
        attrs = dict(group.attrs)
        self.n: int = int(attrs["n"])
        self.latent_shape: tuple[int, ...] = tuple(attrs["latent_shape"])
        self.skip_shapes: tuple[tuple[int, ...], ...] = tuple(tuple(s) for s in attrs["skip_shapes"])
        self.stored_skips: bool = bool(attrs["stored_skips"])
        self.chunk_rows: int = int(attrs["chunk_rows"])
        self.model_hash: str = str(attrs["model_hash"])
        self.data_hash: str = str(attrs["data_hash"])
        self.checksum: str | None = attrs.get("checksum")
        self._arrays = StoreArrays.from_attributes(self.path, group, attrs)
        self._records = ChunkRecords(self._arrays, self.checksum)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        model_hash: str | None = None,
        data_hash: str | None = None,
    ) -> LatentStore:
        """Open an existing store, checking what it was computed from.

        Parameters
        ----------
        path : path
            The store's folder.
        model_hash, data_hash : str, optional
            When given, the store must have been written by this model
            (``LatentModel.weights_hash()``) from this data
            (``dataset.content_hash()``).

        Raises
        ------
        LatentStoreError
            Not a store, another version, another model or data, or
            damaged attributes or array metadata.

        Examples
        --------
        >>> store = LatentStore.open("latents.zarr", model_hash=lm.weights_hash())  # doctest: +SKIP
        """
        path = Path(path)
        attrs = check_attributes(path, read_attributes(path))
        check_hashes(path, attrs, model_hash, data_hash)
        store = cls(path, import_zarr().open_group(str(path), mode="a"))
        store._arrays.check_data()  # raises, naming the array and the fix
        return store

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        model_hash: str,
        data_hash: str,
        n: int,
        latent_shape: Sequence[int],
        skip_shapes: Sequence[Sequence[int]] = (),
        options: EncodeOptions | None = None,
    ) -> LatentStore:
        """Create a store at ``path``, or reopen the one there if it matches.

        A store already at ``path`` is reused (with its progress, for
        resuming) when it has the same model and data hashes; otherwise this
        raises, unless ``options.overwrite``, which deletes it first. A reused
        store is repaired for resuming: the chunks found damaged
        (:meth:`damaged_chunks`) are marked not done, and damaged done flags
        or checksums are rebuilt, with a :class:`~latent_widgets.latents.store_errors.LatentStoreWarning`.

        Parameters
        ----------
        path : path
            A folder that does not exist, an empty folder or a latent store.
        model_hash, data_hash : str
            What the latents are computed from (``LatentModel.weights_hash()``,
            ``dataset.content_hash()``).
        n : int
            Number of samples.
        latent_shape : tuple of int
        skip_shapes : sequence of tuple of int
            The encoder's skip shapes (recorded; stored only with ``options.store_skips``).
        options : EncodeOptions, optional
            ``chunk_rows`` (None: about 2 MiB of rows, a multiple of
            ``batch_size``; ignored when an existing store is reused),
            ``store_skips``, ``overwrite`` (replace a store at ``path``
            whatever it holds), and ``resume`` (``False``: every chunk is
            marked not done).

        Raises
        ------
        LatentStoreError
            ``path`` is a file or a folder that is not a latent store; the
            store there has another model or data hash, lacks the skips
            asked for, or has damaged attributes.

        Examples
        --------
        >>> store = LatentStore.create("z.zarr", model_hash="m", data_hash="d", n=10, latent_shape=(3,),
        ...                            options=EncodeOptions(chunk_rows=4))  # doctest: +SKIP
        """
        options = options or EncodeOptions()
        path = Path(path)
        latent_shape = tuple(int(s) for s in latent_shape)
        skip_shapes = tuple(tuple(int(v) for v in s) for s in skip_shapes)
        n, chunk_rows = int(n), options.chunk_rows
        if chunk_rows is None:
            row_bytes = stored_row_bytes(latent_shape, skip_shapes, options.store_skips)
            chunk_rows = default_chunk_rows(n, options.batch_size, row_bytes)
        chunk_rows = int(chunk_rows)
        if n < 0 or chunk_rows < 1:
            raise LatentStoreError(f"n must be >= 0 and chunk_rows >= 1, got n={n}, chunk_rows={chunk_rows}.")
        if path.is_file():
            raise LatentStoreError(f"{path} is a file; pass a folder path for the latent store.")
        store = None
        if path.is_dir() and any(path.iterdir()):
            attrs = read_attributes(path)
            if attrs is None or attrs.get("format") != STORE_FORMAT:
                if looks_like_store(path):
                    check_attributes(path, attrs)  # the damaged-store message
                # Never delete a folder we did not write, even with overwrite=True.
                raise LatentStoreError(
                    f"{path} is a non-empty folder that is not a latent store; pass a new path (the store is "
                    "a folder) or an empty one."
                )
            if options.overwrite:
                shutil.rmtree(path)
            else:
                check_attributes(path, attrs)
                check_hashes(path, attrs, model_hash, data_hash)
                check_reusable(path, attrs, n, latent_shape, skip_shapes, options.store_skips)
                store = cls(path, import_zarr().open_group(str(path), mode="a"))
                store._records.repair()
        if store is None:
            stored = bool(options.store_skips and skip_shapes)
            group = import_zarr().open_group(str(path), mode="w")
            shapes = dict(n=n, chunk_rows=chunk_rows, latent_shape=latent_shape, skip_shapes=skip_shapes)
            StoreArrays(path, group, stored_skips=stored, **shapes).create_all()
            # The attributes last, in one write (put, not update, which zarr 3 writes key by key):
            # a folder killed before this point is not taken for a store.
            group.attrs.put(new_attributes(model_hash=model_hash, data_hash=data_hash, stored_skips=stored, **shapes))
            store = cls(path, group)
        if not options.resume:
            store.reset_progress()
        return store

    # ------------------------------------------------------------------ progress

    @property
    def n_chunks(self) -> int:
        """Number of row chunks."""
        return self._arrays.n_chunks

    def chunk_slice(self, c: int) -> slice:
        """The rows of chunk ``c``."""
        return self._arrays.chunk_slice(c)

    def chunks_done(self) -> np.ndarray:
        """Boolean ``(n_chunks,)``: which chunks are written and intact (read from disk, not remembered).

        A chunk marked done whose data file is missing or cut short, or
        whose checksum is missing, counts as not done (:meth:`damaged_chunks`
        says why). Reads the flags, checksums and file sizes, no latent.
        """
        return self._records.scan()[0]

    def damaged_chunks(self) -> dict[int, str]:
        """``{chunk: why}`` for the chunks whose progress records or files are damaged (no latent is read).

        Examples
        --------
        >>> store.damaged_chunks()  # doctest: +SKIP
        {3: 'it is marked done but its file latents/c/3/0/0/0 is missing'}
        """
        return self._records.scan()[1]

    def verify(self, repair: bool = False) -> dict[int, str]:
        """Read every chunk marked done and compare it with its checksum: ``{chunk: why}`` of the damaged ones.

        :meth:`damaged_chunks` without reading; this also finds chunks whose
        files were altered in place (a bit flip, a chunk from another
        store). It reads the whole store.

        Parameters
        ----------
        repair : bool
            Mark the damaged chunks not done, so that the next encode
            re-encodes them.

        Examples
        --------
        >>> LatentStore.open("z.zarr").verify(repair=True)  # doctest: +SKIP
        {}
        """
        return self._records.verify(repair)

    def is_chunk_done(self, c: int) -> bool:
        """Whether chunk ``c`` is written and intact (its own flag, checksum and files: cheap for a worker)."""
        try:
            return bool(self._records.scan([int(c)])[0][0])
        except DamagedArrayError:
            return False

    def missing_chunks(self) -> list[int]:
        """Indices of the chunks still to encode (damaged ones included)."""
        return [int(c) for c in np.flatnonzero(~self.chunks_done())]

    @property
    def rows_done(self) -> int:
        """Number of rows in finished chunks."""
        done = self.chunks_done()
        return int(sum(self.chunk_slice(int(c)).stop - self.chunk_slice(int(c)).start for c in np.flatnonzero(done)))

    @property
    def is_complete(self) -> bool:
        """Whether every chunk is written (and intact, as far as :meth:`chunks_done` can tell)."""
        return bool(self.chunks_done().all())

    def write_chunk(self, c: int, latents: np.ndarray, skips: Sequence[np.ndarray] = ()) -> None:
        """Write chunk ``c``'s rows, their checksums, then mark it done (a kill in between leaves it not done).

        Parameters
        ----------
        c : int
            Chunk index.
        latents : ndarray, (rows of chunk c, *latent_shape)
        skips : sequence of ndarray
            One per skip, when :attr:`stored_skips`; ignored otherwise.
        """
        rows = self.chunk_slice(c)
        data = [latents, *(skips if self.stored_skips else ())]
        sums = []
        for name, values in zip(self._arrays.data_names, data, strict=True):
            values = np.ascontiguousarray(values, np.float32)
            writable(self._arrays.get(name))[rows] = values
            if self.checksum:
                sums.append(chunk_checksum(self.checksum, values))
        self._records.mark_done(c, sums)

    def reset_progress(self) -> None:
        """Mark every chunk as not done (the next fill re-encodes everything)."""
        self._records.reset()

    # ------------------------------------------------------------------ reading

    def _require_complete(self) -> None:
        done, damage = self._records.scan()
        if damage:
            raise LatentStoreError(
                f"the latent store {self.path} is damaged: {describe_chunks(damage, self.chunk_rows, self.n)}. "
                "These rows are not served (a missing chunk would read as zeros). encode_dataset(dataset, "
                "store=path) re-encodes them (it resumes); or restore the store from a good copy."
            )
        if not done.all():
            raise LatentStoreError(
                f"the latent store {self.path} is incomplete: {int(done.sum())} of {len(done)} chunks are "
                "written (an interrupted encode). Finish it with encode_dataset(dataset, store=path), which "
                "resumes where it stopped."
            )

    def _read_only(self, name: str) -> StoredArray:
        self._arrays.get(name)  # its layout checked
        verifier = None
        if self.checksum:
            self._arrays.get("checksums")
            column = self._arrays.data_names.index(name)
            verifier = ChunkVerifier(str(self.path), name, column, self.n, self.chunk_rows, self.checksum)
        return StoredArray(import_zarr().open_group(str(self.path), mode="r")[name], verifier)

    @property
    def latents(self) -> StoredArray:
        """The latents ``(n, *latent_shape)``, read-only; raises if the store is incomplete or damaged."""
        self._require_complete()
        return self._read_only("latents")

    @property
    def skips(self) -> tuple[StoredArray, ...]:
        """The stored skip features, read-only (``()`` without skips)."""
        if self.skip_shapes and not self.stored_skips:
            raise LatentStoreError(
                f"the latent store {self.path} does not hold the skip features (store_skips=False); use "
                "store.lazy_skips(encode, images) to recompute them on demand, or encode with store_skips=True."
            )
        self._require_complete()
        return tuple(self._read_only(f"skip_{k}") for k in range(len(self.skip_shapes)))

    def iter_blocks(self, rows: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``(slice, latents)`` blocks covering the store, ``rows`` rows at a time (default: one chunk).

        For analysis code that must not load every latent at once.

        Examples
        --------
        >>> means = [block.mean() for _, block in store.iter_blocks(1024)]  # doctest: +SKIP
        """
        return self.latents.iter_blocks(rows)

    def dask_array(self, name: str = "latents", rows: int | None = None) -> Any:
        """Array ``name`` as a ``dask.array`` of blocks of ``rows`` (a multiple of :attr:`chunk_rows`), checked.

        Each block is compared with the chunks' checksums where it is
        computed (a worker of a cluster), as :class:`StoredArray` does.

        Examples
        --------
        >>> x = store.dask_array("latents", rows=4 * store.chunk_rows)  # doctest: +SKIP
        """
        da = optional_import("dask.array", extra="dask", what="LatentStore.dask_array")
        self._require_complete()
        stored = self._read_only(name)
        rows = int(rows or self.chunk_rows)
        if rows % self.chunk_rows:
            raise ValueError(f"rows={rows} must be a multiple of the store's chunk_rows={self.chunk_rows}")
        x = da.from_zarr(str(self.path), component=name, chunks=(rows, *stored.shape[1:]))
        if stored.verifier is None:
            return x
        meta = np.empty((0,) * x.ndim, x.dtype)
        return x.map_blocks(verified_block, verifier=stored.verifier, dtype=x.dtype, meta=meta)

    def lazy_skips(self, encode_batch: EncodeBatch, images: Any, batch_size: int = 32) -> tuple[LazySkipColumn, ...]:
        """Skip columns that re-encode the requested samples' images on demand.

        Parameters
        ----------
        encode_batch : callable
            ``images (B, H, W, C) -> (latents, skip_0, ...)``: the encoder.
        images : array-like, (n, H, W, C)
            The dataset's images (a lazy array is read only where asked).
        batch_size : int
            Images per encoder call when many samples are asked for.

        Examples
        --------
        >>> skips = store.lazy_skips(encode, ds.images)  # doctest: +SKIP
        >>> skips[0][7:8].shape  # one sample's first skip, encoded now  # doctest: +SKIP
        (1, 48, 64, 16)
        """
        if len(images) != self.n:
            raise LatentStoreError(f"got {len(images)} images for a store of {self.n} samples.")
        source = SkipSource(encode_batch, images, self.skip_shapes, batch_size)
        return tuple(LazySkipColumn(source, k) for k in range(len(self.skip_shapes)))

    def __repr__(self) -> str:
        try:
            done = self.chunks_done()
        except LatentStoreError:  # a repr never raises: the damage is reported when the store is used
            return f"LatentStore({str(self.path)!r}, n={self.n}, damaged)"
        return (
            f"LatentStore({str(self.path)!r}, n={self.n}, latent_shape={self.latent_shape}, "
            f"{int(done.sum())}/{len(done)} chunks done)"
        )
