"""The latent store: a dataset's encoding on disk, written chunk by chunk.

Encoding 10^5 images does not fit in memory as one array, and takes long
enough to be interrupted. :class:`LatentStore` keeps the latents in a Zarr
group, one row per sample, chunked along the rows, float32 and
uncompressed (writing stays a small fraction of the encoding time).
:func:`encode_to_store` streams a dataset into it: a background thread reads
the next batch of images while the encoder runs on the current one, and each
finished chunk of rows is written, then marked done. An interrupted encode
(an exception, a killed kernel) resumes with the chunks that are not done;
a store is complete only when every chunk is.

The store records the hash of the model that wrote it and of the data it
encodes; opening it for another model or other data raises
:class:`LatentStoreError` instead of reusing stale latents.

Layout of a store folder (a Zarr group)::

    zarr.json    attributes: format, version, model_hash, data_hash, n,
                 latent_shape, skip_shapes, chunk_rows, stored_skips
    latents/     (n, *latent_shape) float32, chunks of chunk_rows rows
    skip_<k>/    (n, *skip_shape) float32, only with store_skips=True
    done/        (n_chunks,) uint8, one Zarr chunk per flag

Skip features (decoders with skip connections) are many times bigger than
the latents, so by default they are not stored: :meth:`LatentStore.lazy_skips`
gives columns that re-encode the requested samples on demand.

This module sits between the data and the analysis layers: it knows the
encoder only as a function ``images -> (latents, *skips)``, so that it does
not import the model adapter (which imports it).

Examples
--------
>>> import numpy as np, tempfile
>>> from latent_widgets.store import encode_to_store
>>> images = np.random.default_rng(0).random((10, 4, 4, 3), dtype=np.float32)
>>> encode = lambda x: (x.mean(axis=(1, 2)),)  # a stand-in encoder: (N, 3) latents
>>> store = encode_to_store(encode, images, tempfile.mkdtemp(), model_hash="m", data_hash="d",
...                         latent_shape=(3,), batch_size=4, progress=False)
>>> store.is_complete, store.latents.shape, store.chunk_rows
(True, (10, 3), 12)
>>> bool(np.allclose(store.latents[2:5], images[2:5].mean(axis=(1, 2))))
True
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import iter_row_blocks

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "LatentStore",
    "LatentStoreError",
    "LazySkipColumn",
    "StoredArray",
    "default_chunk_rows",
    "encode_to_store",
    "fill_store",
    "prepare_store",
]

#: The ``format`` attribute of every latent store (how a folder is recognised as one).
STORE_FORMAT = "latent-widgets/latent-store"
#: Version of the layout; a store of another version is refused.
STORE_VERSION = 1

_REQUIRED_ATTRS = {
    "format",
    "version",
    "model_hash",
    "data_hash",
    "n",
    "latent_shape",
    "skip_shapes",
    "stored_skips",
    "chunk_rows",
}
# Target bytes of one chunk of rows (latents plus stored skips): big enough that
# a file per chunk is cheap for 10^5 rows, small enough that a killed encode
# loses little and that reading one sample reads little.
_CHUNK_BYTES = 2 << 20
# Batches read ahead of the encoder.
_PREFETCH = 2
# Show a progress bar from this many batches on (progress=None), as LatentModel.encode.
_AUTO_PROGRESS_BATCHES = 8

EncodeBatch = Callable[[np.ndarray], Sequence[Any]]


class LatentStoreError(ValueError):
    """A latent store cannot be used as asked; the message says why and how to fix it."""


# ----------------------------------------------------------------------------- zarr access


def _zarr():
    import zarr

    return zarr


def _zarr_major() -> int:
    return int(_zarr().__version__.split(".")[0])


def _create_array(group: Any, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> Any:
    """An uncompressed array in ``group``, with zarr 3's or zarr 2's API."""
    if _zarr_major() >= 3:
        return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, compressors=None, fill_value=0)
    return group.create_dataset(name, shape=shape, chunks=chunks, dtype=dtype, compressor=None, fill_value=0)


def _index_rows(key: Any, n: int) -> np.ndarray:
    """Row indices (int64, non-negative) of an int array or a boolean mask over ``n`` rows."""
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean index of shape {idx.shape} does not match {n} rows")
        return np.flatnonzero(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        if idx.size == 0:
            return np.empty(0, np.int64)
        raise IndexError(f"rows must be ints, a slice, an int array or a boolean mask, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise IndexError(f"an int array of rows must be 1-D, got shape {idx.shape}")
    idx = idx.astype(np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"row {int(idx[bad][0])} is out of range for {n} rows")
    return np.where(idx < 0, idx + n, idx)


class StoredArray:
    """A read-only, numpy-indexable view of one array of a :class:`LatentStore`.

    Indexing the rows with an int, a slice, an int array (any order,
    repeats and negative values allowed) or a boolean mask reads only the
    chunks it needs and returns a numpy array, as numpy indexing would.
    ``np.asarray(a)`` reads everything.

    Parameters
    ----------
    array : zarr.Array
        Opened read-only.

    Examples
    --------
    >>> latents = store.latents  # doctest: +SKIP
    >>> latents[[5, 0, 5]].shape, latents[-1].shape  # doctest: +SKIP
    ((3, 4, 4, 128), (4, 4, 128))
    """

    def __init__(self, array: Any) -> None:
        self._array = array
        self.shape: tuple[int, ...] = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def chunk_rows(self) -> int:
        """Rows per stored chunk: read in multiples of it for speed."""
        return int(self._array.chunks[0])

    @property
    def zarr(self) -> Any:
        """The underlying (read-only) ``zarr.Array``."""
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            # Rows from the store, the other axes in numpy.
            first, rest = (key[0], key[1:]) if key else (slice(None), ())
            out = self[first]
            return out[rest] if isinstance(first, (int, np.integer)) else out[(slice(None), *rest)]
        n = self.shape[0]
        if key is Ellipsis:
            key = slice(None)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"row {i} is out of range for {n} rows")
            return np.asarray(self._array[i % n])
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step > 0:
                return np.asarray(self._array[start:stop:step]) if start < stop else self._empty(0)
            return self[np.arange(start, stop, step)]
        idx = _index_rows(key, n)
        if len(idx) == 0:
            return self._empty(0)
        # Zarr reads sorted, unique rows (orthogonal selection); numpy's order and repeats come after.
        uniq, inverse = np.unique(idx, return_inverse=True)
        return np.asarray(self._array.get_orthogonal_selection((uniq,)))[inverse]

    def _empty(self, rows: int) -> np.ndarray:
        return np.empty((rows, *self.shape[1:]), self.dtype)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = np.asarray(self._array[...])
        return out if dtype is None else out.astype(dtype, copy=False)

    def iter_blocks(self, rows: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``(slice, block)`` pairs covering the rows, ``rows`` at a time (default: one chunk).

        Examples
        --------
        >>> total = sum(block.sum() for _, block in store.latents.iter_blocks())  # doctest: +SKIP
        """
        for s in iter_row_blocks(len(self), rows or self.chunk_rows):
            yield s, np.asarray(self._array[s])

    def __repr__(self) -> str:
        return f"StoredArray(shape={self.shape}, dtype={self.dtype}, chunk_rows={self.chunk_rows})"


# ----------------------------------------------------------------------------- the store


def _json_shape(shape: Sequence[int]) -> list[int]:
    return [int(s) for s in shape]


def stored_row_bytes(
    latent_shape: Sequence[int], skip_shapes: Sequence[Sequence[int]] = (), store_skips: bool = False
) -> int:
    """Bytes one sample takes in a store: its float32 latent, and its skips when they are stored."""
    shapes = [latent_shape, *(skip_shapes if store_skips else ())]
    return sum(4 * int(np.prod(s)) for s in shapes)


def default_chunk_rows(n: int, batch_size: int, row_bytes: int) -> int:
    """Rows per chunk: a multiple of ``batch_size``, about 2 MiB of rows, no more than ``n`` needs."""
    batch_size = max(1, int(batch_size))
    per_batch = max(1, batch_size * int(row_bytes))
    k = max(1, _CHUNK_BYTES // per_batch)
    k = min(k, max(1, -(-int(n) // batch_size)))
    return k * batch_size


class LatentStore:
    """A dataset's latents (and optionally skip features) in a Zarr group on disk.

    Create or reopen one with :meth:`create`, read one with :meth:`open`;
    :func:`encode_to_store` (what ``LatentModel.encode_dataset(...,
    store=...)`` calls) fills it.

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

    Examples
    --------
    >>> store = LatentStore.open("latents.zarr")  # doctest: +SKIP
    >>> store.is_complete, store.latents.shape  # doctest: +SKIP
    (True, (100000, 4, 4, 128))
    """

    def __init__(self, path: str | os.PathLike[str], group: Any) -> None:
        self.path = Path(path)
        self._group = group
        attrs = dict(group.attrs)
        self.n: int = int(attrs["n"])
        self.latent_shape: tuple[int, ...] = tuple(attrs["latent_shape"])
        self.skip_shapes: tuple[tuple[int, ...], ...] = tuple(tuple(s) for s in attrs["skip_shapes"])
        self.stored_skips: bool = bool(attrs["stored_skips"])
        self.chunk_rows: int = int(attrs["chunk_rows"])
        self.model_hash: str = str(attrs["model_hash"])
        self.data_hash: str = str(attrs["data_hash"])

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _read_attrs(path: Path) -> dict[str, Any] | None:
        """The store's attributes, or None when ``path`` holds no Zarr group."""
        zarr = _zarr()
        try:
            group = zarr.open_group(str(path), mode="r")
        except Exception:
            return None
        return dict(group.attrs)

    @classmethod
    def _check_attrs(cls, path: Path, attrs: dict[str, Any] | None) -> dict[str, Any]:
        if attrs is None or attrs.get("format") != STORE_FORMAT:
            raise LatentStoreError(
                f"{path} is not a latent store (no {STORE_FORMAT!r} Zarr group there); pass the path of a "
                "store written by encode_dataset(..., store=path), or a new path to create one."
            )
        if attrs.get("version") != STORE_VERSION:
            raise LatentStoreError(
                f"{path} is a latent store of version {attrs.get('version')}, this library reads version "
                f"{STORE_VERSION}; encode again into a new path, or pass overwrite=True."
            )
        missing = sorted(_REQUIRED_ATTRS - set(attrs))
        if missing:
            raise LatentStoreError(
                f"{path} is a damaged latent store (attributes {missing} are missing); encode again into a "
                "new path, or pass overwrite=True."
            )
        return attrs

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
            Not a store, another version, or another model or data.

        Examples
        --------
        >>> store = LatentStore.open("latents.zarr", model_hash=lm.weights_hash())  # doctest: +SKIP
        """
        path = Path(path)
        attrs = cls._check_attrs(path, cls._read_attrs(path))
        cls._check_hashes(path, attrs, model_hash, data_hash)
        return cls(path, _zarr().open_group(str(path), mode="a"))

    @staticmethod
    def _check_hashes(path: Path, attrs: dict[str, Any], model_hash: str | None, data_hash: str | None) -> None:
        differs = []
        if model_hash is not None and attrs.get("model_hash") != model_hash:
            differs.append(("model", attrs.get("model_hash"), model_hash))
        if data_hash is not None and attrs.get("data_hash") != data_hash:
            differs.append(("data", attrs.get("data_hash"), data_hash))
        if differs:
            what = " and ".join(d[0] for d in differs)
            detail = "; ".join(f"{w} hash: store {s}, requested {r}" for w, s, r in differs)
            raise LatentStoreError(
                f"the latent store {path} was computed from another {what} ({detail}); its latents do not "
                "belong to this model and dataset. Pass a new store path, or overwrite=True to replace it."
            )

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
        store_skips: bool = False,
        chunk_rows: int = 256,
        overwrite: bool = False,
    ) -> LatentStore:
        """Create a store at ``path``, or reopen the one there if it matches.

        A store already at ``path`` is reused (with its progress, for
        resuming) when it has the same model and data hashes; otherwise this
        raises, unless ``overwrite=True``, which deletes it first.

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
            The encoder's skip shapes (recorded; stored only with ``store_skips``).
        store_skips : bool
            Keep the skip features on disk too (they are often 10-100x the latents).
        chunk_rows : int
            Rows per chunk; make it a multiple of the encoding batch size.
            Ignored when an existing store is reused.
        overwrite : bool
            Replace a store at ``path`` whatever it holds.

        Raises
        ------
        LatentStoreError
            ``path`` is a file or a folder that is not a latent store; the
            store there has another model or data hash, or lacks the skips
            asked for.

        Examples
        --------
        >>> store = LatentStore.create("z.zarr", model_hash="m", data_hash="d", n=10,
        ...                            latent_shape=(3,))  # doctest: +SKIP
        """
        zarr = _zarr()
        path = Path(path)
        latent_shape = tuple(int(s) for s in latent_shape)
        skip_shapes = tuple(tuple(int(v) for v in s) for s in skip_shapes)
        n, chunk_rows = int(n), int(chunk_rows)
        if n < 0 or chunk_rows < 1:
            raise LatentStoreError(f"n must be >= 0 and chunk_rows >= 1, got n={n}, chunk_rows={chunk_rows}.")
        if path.is_file():
            raise LatentStoreError(f"{path} is a file; pass a folder path for the latent store.")
        if path.is_dir() and any(path.iterdir()):
            attrs = cls._read_attrs(path)
            if attrs is None or attrs.get("format") != STORE_FORMAT:
                # Never delete a folder we did not write, even with overwrite=True.
                raise LatentStoreError(
                    f"{path} is a non-empty folder that is not a latent store; pass a new path (the store is "
                    "a folder) or an empty one."
                )
            if overwrite:
                shutil.rmtree(path)
            else:
                cls._check_attrs(path, attrs)
                cls._check_hashes(path, attrs, model_hash, data_hash)
                store = cls(path, zarr.open_group(str(path), mode="a"))
                if (store.n, store.latent_shape, store.skip_shapes) != (n, latent_shape, skip_shapes):
                    raise LatentStoreError(
                        f"the latent store {path} holds {store.n} latents of shape {store.latent_shape} "
                        f"(skips {store.skip_shapes}), not {n} of shape {latent_shape} (skips {skip_shapes}); "
                        "pass a new path or overwrite=True."
                    )
                if store_skips and not store.stored_skips and skip_shapes:
                    raise LatentStoreError(
                        f"the latent store {path} was written without skip features and store_skips=True asks "
                        "for them; pass a new path or overwrite=True to re-encode with the skips."
                    )
                return store
        stored = bool(store_skips and skip_shapes)
        group = zarr.open_group(str(path), mode="w")
        _create_array(group, "latents", (n, *latent_shape), (chunk_rows, *latent_shape), "float32")
        if stored:
            for k, s in enumerate(skip_shapes):
                _create_array(group, f"skip_{k}", (n, *s), (chunk_rows, *s), "float32")
        _create_array(group, "done", (max(1, -(-n // chunk_rows)),), (1,), "uint8")
        # The attributes last, in one write (put, not update, which zarr 3 writes key by key):
        # a folder killed before this point is not taken for a store.
        group.attrs.put(
            {
                "format": STORE_FORMAT,
                "version": STORE_VERSION,
                "model_hash": str(model_hash),
                "data_hash": str(data_hash),
                "n": n,
                "latent_shape": _json_shape(latent_shape),
                "skip_shapes": [_json_shape(s) for s in skip_shapes],
                "stored_skips": stored,
                "chunk_rows": chunk_rows,
                "dtype": "float32",
            }
        )
        return cls(path, group)

    # ------------------------------------------------------------------ progress

    @property
    def n_chunks(self) -> int:
        """Number of row chunks."""
        return -(-self.n // self.chunk_rows)

    def chunk_slice(self, c: int) -> slice:
        """The rows of chunk ``c``."""
        return slice(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n))

    def chunks_done(self) -> np.ndarray:
        """Boolean ``(n_chunks,)``: which chunks are written (read from disk, not remembered)."""
        done = self._group["done"]
        try:
            flags = np.asarray(done[:])[: self.n_chunks]
        except Exception:
            # A flag file cut short by a kill: read flags one by one, an unreadable one is "not done".
            flags = np.zeros(self.n_chunks, np.uint8)
            for c in range(self.n_chunks):
                try:
                    flags[c] = done[c]
                except Exception:
                    flags[c] = 0
        return flags.astype(bool)

    def is_chunk_done(self, c: int) -> bool:
        """Whether chunk ``c`` is written (reads its one flag: cheap for a worker writing one chunk)."""
        try:
            return bool(self._group["done"][int(c)])
        except Exception:  # a flag file cut short by a kill: not done
            return False

    def missing_chunks(self) -> list[int]:
        """Indices of the chunks still to encode."""
        return [int(c) for c in np.flatnonzero(~self.chunks_done())]

    @property
    def rows_done(self) -> int:
        """Number of rows in finished chunks."""
        done = self.chunks_done()
        return int(sum(self.chunk_slice(int(c)).stop - self.chunk_slice(int(c)).start for c in np.flatnonzero(done)))

    @property
    def is_complete(self) -> bool:
        """Whether every chunk is written."""
        return bool(self.chunks_done().all())

    def write_chunk(self, c: int, latents: np.ndarray, skips: Sequence[np.ndarray] = ()) -> None:
        """Write chunk ``c``'s rows, then mark it done (in that order: a kill between leaves it not done).

        Parameters
        ----------
        c : int
            Chunk index.
        latents : ndarray, (rows of chunk c, *latent_shape)
        skips : sequence of ndarray
            One per skip, when :attr:`stored_skips`; ignored otherwise.
        """
        rows = self.chunk_slice(c)
        self._group["latents"][rows] = latents
        if self.stored_skips:
            for k, s in enumerate(skips):
                self._group[f"skip_{k}"][rows] = s
        self._group["done"][c] = 1

    def reset_progress(self) -> None:
        """Mark every chunk as not done (the next fill re-encodes everything)."""
        self._group["done"][:] = 0

    # ------------------------------------------------------------------ reading

    def _require_complete(self) -> None:
        done = self.chunks_done()
        if not done.all():
            raise LatentStoreError(
                f"the latent store {self.path} is incomplete: {int(done.sum())} of {len(done)} chunks are "
                "written (an interrupted encode). Finish it with encode_dataset(dataset, store=path), which "
                "resumes where it stopped."
            )

    def _read_only(self, name: str) -> StoredArray:
        return StoredArray(_zarr().open_group(str(self.path), mode="r")[name])

    @property
    def latents(self) -> StoredArray:
        """The latents ``(n, *latent_shape)``, read-only; raises if the store is incomplete."""
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
        source = _SkipSource(encode_batch, images, self.skip_shapes, batch_size)
        return tuple(LazySkipColumn(source, k) for k in range(len(self.skip_shapes)))

    def __repr__(self) -> str:
        done = self.chunks_done()
        return (
            f"LatentStore({str(self.path)!r}, n={self.n}, latent_shape={self.latent_shape}, "
            f"{int(done.sum())}/{len(done)} chunks done)"
        )


# ----------------------------------------------------------------------------- lazy skips


class _SkipSource:
    """Encodes rows of ``images`` for their skips; remembers the last request (all skips of it)."""

    def __init__(
        self, encode_batch: EncodeBatch, images: Any, skip_shapes: Sequence[tuple[int, ...]], batch_size: int
    ) -> None:
        self.encode_batch = encode_batch
        self.images = images
        self.skip_shapes = tuple(skip_shapes)
        self.batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._last: tuple[bytes, tuple[np.ndarray, ...]] | None = None

    def skips_of(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        key = idx.tobytes()
        with self._lock:
            # Reading skips[0][i:i+1] then skips[1][i:i+1] encodes sample i once.
            if self._last is not None and self._last[0] == key:
                return self._last[1]
            out = tuple(np.empty((len(idx), *s), np.float32) for s in self.skip_shapes)
            contiguous = len(idx) > 0 and bool(np.all(np.diff(idx) == 1))
            for block in iter_row_blocks(len(idx), self.batch_size):
                rows = slice(int(idx[block.start]), int(idx[block.stop - 1]) + 1) if contiguous else idx[block]
                outs = self.encode_batch(np.asarray(self.images[rows]))
                for dst, src in zip(out, outs[1:], strict=False):
                    dst[block] = np.asarray(src)
            self._last = (key, out)
            return out


class LazySkipColumn:
    """One skip feature of every sample, computed when indexed (nothing is stored).

    ``column[i:i+1]`` encodes sample ``i``'s image and returns its skip;
    an int, a slice, an int array or a boolean mask select rows as numpy
    would. The last request is remembered, so reading every skip of the same
    rows encodes them once. ``np.asarray(column)`` encodes the whole
    dataset: avoid it for large datasets.

    Examples
    --------
    >>> enc = lm.encode_dataset(ds, store=True)  # doctest: +SKIP
    >>> enc.skips[0][3:4].shape  # doctest: +SKIP
    (1, 24, 32, 32)
    """

    def __init__(self, source: _SkipSource, k: int) -> None:
        self._source = source
        self._k = int(k)
        self.shape: tuple[int, ...] = (len(source.images), *source.skip_shapes[k])
        self.dtype = np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"row {i} is out of range for {n} rows")
            return self._source.skips_of(np.array([i % n], np.int64))[self._k][0]
        if isinstance(key, slice):
            idx = np.arange(*key.indices(n), dtype=np.int64)
        elif key is Ellipsis:
            idx = np.arange(n, dtype=np.int64)
        else:
            idx = _index_rows(key, n)
        return self._source.skips_of(idx)[self._k]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazySkipColumn(skip {self._k}, shape={self.shape}, computed on demand)"


# ----------------------------------------------------------------------------- streaming encode


class _Prefetcher:
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
    loader = _Prefetcher(images, blocks)
    try:
        for rows, x in loader:
            if len(x) != rows.stop - rows.start:
                raise LatentStoreError(
                    f"images[{rows.start}:{rows.stop}] returned {len(x)} images instead of {rows.stop - rows.start}."
                )
            outs = encode_batch(x)
            z = _numpy(outs[0])
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
                dst[off] = _numpy(src)
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


def _is_store(path: Path) -> bool:
    attrs = LatentStore._read_attrs(path) if path.is_dir() else None
    return attrs is not None and attrs.get("format") == STORE_FORMAT


def _numpy(x: Any) -> np.ndarray:
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
    :mod:`latent_widgets.distributed`) fill the store it returns.

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
    elif (int(chunk_rows) < 1 or int(chunk_rows) % batch_size) and not _is_store(Path(path)):
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
