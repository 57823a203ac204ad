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
>>> from latent_widgets.latents.encode import encode_to_store
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

import contextlib
import itertools
import json
import os
import shutil
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.arrays import index_rows, iter_row_blocks
from ..core.optional import optional_import
from .lazy_skips import EncodeBatch, LazySkipColumn, SkipSource

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "LatentStore",
    "LatentStoreError",
    "LatentStoreWarning",
    "LazySkipColumn",
    "StoredArray",
    "default_chunk_rows",
    "is_store",
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


class LatentStoreError(ValueError):
    """A latent store cannot be used as asked; the message says why and how to fix it."""


# ----------------------------------------------------------------------------- zarr access


def _zarr():
    import zarr

    return zarr


def _zarr_major() -> int:
    return int(_zarr().__version__.split(".")[0])


def _create_array(
    group: Any, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, overwrite: bool = False
) -> Any:
    """An uncompressed array in ``group``, with zarr 3's or zarr 2's API."""
    kw = dict(shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=overwrite)
    if _zarr_major() >= 3:
        return group.create_array(name, compressors=None, **kw)
    return group.create_dataset(name, compressor=None, **kw)


def _writable(array: Any) -> Any:
    """``array``, writing every chunk it is given, zeros included.

    zarr 3 skips (and deletes) a chunk that holds only the fill value, and
    reads a chunk without a file as the fill value: a store could then not
    tell a chunk of zero latents from a deleted file. zarr 2 writes them.
    """
    with_config = getattr(array, "with_config", None)
    return with_config({"write_empty_chunks": True}) if callable(with_config) else array


def _chunk_key(array: Any, c: int) -> str:
    """Path of row chunk ``c``'s file of ``array``, relative to the store's folder."""
    coords = (int(c),) + (0,) * (len(array.shape) - 1)
    metadata = getattr(array, "metadata", None)
    if hasattr(metadata, "encode_chunk_key"):  # zarr 3 (format 3 or 2 arrays)
        return f"{array.path}/{metadata.encode_chunk_key(coords)}"
    return str(array._chunk_key(coords))  # zarr 2: already prefixed with the array's path


def _raw_chunk_bytes(array: Any) -> int | None:
    """Bytes of one chunk file of an uncompressed array (edge chunks are written whole); None if compressed."""
    compressors = getattr(array, "compressors", None)
    if compressors is None:  # zarr 2
        compressors = () if getattr(array, "compressor", None) is None else (array.compressor,)
    if tuple(compressors) or tuple(getattr(array, "filters", None) or ()):
        return None
    return int(np.prod(array.chunks)) * np.dtype(array.dtype).itemsize


def _plain_dtype(array: Any) -> np.dtype | None:
    """The on-disk dtype of a zarr 3 format-3 array stored as plain bytes (no codec but the byte order), else None.

    The done flags and checksums are one tiny file per chunk; zarr spends about 0.25 ms on each, a plain
    file read some 10 µs, so the store reads those two arrays' files itself when their encoding is this one.
    """
    metadata = getattr(array, "metadata", None)
    if getattr(metadata, "zarr_format", None) != 3 or _raw_chunk_bytes(array) is None:
        return None
    serializer = getattr(array, "serializer", None)
    if type(serializer).__name__ != "BytesCodec" or float(array.fill_value) != 0:
        return None
    endian = getattr(getattr(serializer, "endian", None), "value", None)
    dtype = np.dtype(array.dtype)
    if dtype.itemsize > 1 and endian not in ("little", "big"):
        return None
    return dtype.newbyteorder("<" if endian != "big" else ">") if dtype.itemsize > 1 else dtype


# ----------------------------------------------------------------------------- checksums

# Set in every recorded chunk checksum, so that 0 (the fill value: nothing written) means "none".
_HAS_SUM = 1 << 32


def _default_checksum() -> str:
    """The checksum of new stores: CRC-32C (google-crc32c, which zarr 3 installs, ~7 GB/s), else zlib's CRC-32."""
    try:
        import google_crc32c  # noqa: F401
    except ImportError:  # pragma: no cover - zarr 2 without it
        return "crc32"
    return "crc32c"


def _checksum(algorithm: str, data: np.ndarray) -> int:
    """The recorded checksum of a chunk's float32 rows (``_HAS_SUM`` set)."""
    buf = np.ascontiguousarray(data, np.float32)
    if algorithm == "crc32c":
        try:
            import google_crc32c
        except ImportError:  # pragma: no cover - a store written where it was installed, read where it is not
            raise LatentStoreError(
                "this latent store's chunks carry CRC-32C checksums and google-crc32c is not installed; "
                "pip install google-crc32c (zarr 3 depends on it)."
            ) from None
        value = google_crc32c.value(buf)
    elif algorithm == "crc32":
        value = zlib.crc32(buf)
    else:
        raise LatentStoreError(f"unknown chunk checksum {algorithm!r}: the store was written by a newer version.")
    return int(value) | _HAS_SUM


def _attributes_checksum(attrs: dict[str, Any]) -> str:
    """A checksum of the store's other attributes, as canonical JSON (what a damaged zarr.json changes)."""
    body = {k: v for k, v in attrs.items() if k != "attributes_checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"crc32:{zlib.crc32(text.encode()):08x}"


def _rows_text(rows: slice) -> str:
    return f"rows {rows.start}-{rows.stop - 1}"


def _describe_chunks(problems: dict[int, str], chunk_rows: int, n: int, limit: int = 3) -> str:
    """``chunk 3 (rows 24-31): why; ...`` for the first ``limit`` chunks, then how many more."""
    parts = []
    for c in sorted(problems)[:limit]:
        rows = slice(c * chunk_rows, min((c + 1) * chunk_rows, n))
        parts.append(f"chunk {c} ({_rows_text(rows)}): {problems[c]}")
    more = len(problems) - limit
    return "; ".join(parts) + (f"; and {more} more chunks" if more > 0 else "")


# Bytes of whole chunks a verified read holds at once (it reads whole chunks to check them).
_READ_BYTES = 64 << 20


class _ChunkVerifier:
    """Checks the chunks of one stored array against the checksums recorded with their done flags.

    Plain attributes only: it travels inside dask graphs to the workers
    (:meth:`LatentStore.dask_array`).
    """

    def __init__(self, path: str, name: str, column: int, n: int, chunk_rows: int, algorithm: str) -> None:
        self.path, self.name, self.column = path, name, int(column)
        self.n, self.chunk_rows, self.algorithm = int(n), int(chunk_rows), algorithm
        self.expected = self._recorded()

    def _recorded(self) -> np.ndarray:
        store = LatentStore.open(self.path)
        return store._read_sums(np.arange(store.n_chunks))[:, self.column]

    def check(self, chunks: Sequence[int], blocks: Sequence[np.ndarray]) -> None:
        """Raise :class:`LatentStoreError` (and clear their done flags) for chunks whose rows differ."""
        got = {c: _checksum(self.algorithm, b) for c, b in zip(chunks, blocks, strict=True)}
        if all(v == self.expected[c] for c, v in got.items()):
            return
        # The store may have been re-encoded since this view was made: compare with what is recorded now.
        self.expected = self._recorded()
        bad = [c for c, v in got.items() if v != self.expected[c]]
        if bad:
            raise _damaged_on_read(self, bad)

    def check_rows(self, start: int, block: np.ndarray) -> None:
        """Check a block of whole chunks that starts at row ``start`` (a multiple of ``chunk_rows``)."""
        cr = self.chunk_rows
        first = start // cr
        k = -(-len(block) // cr)
        self.check(range(first, first + k), [block[j * cr : (j + 1) * cr] for j in range(k)])


def _damaged_on_read(verifier: _ChunkVerifier, chunks: Sequence[int]) -> LatentStoreError:
    """The error for chunks that fail their checksum; their done flags are cleared so that a resume re-encodes them."""
    why = {int(c): f"its {verifier.name} do not match the checksum recorded when it was written" for c in chunks}
    where = _describe_chunks(why, verifier.chunk_rows, verifier.n)
    try:
        LatentStore.open(verifier.path)._clear_flags(list(why))
        fix = (
            "their done flags are now cleared: encode_dataset(dataset, store=path) (or encode_to_store) re-encodes "
            "these rows, and only these"
        )
    except Exception as exc:  # a read-only copy: nothing can be marked
        fix = (
            f"their done flags could not be cleared ({type(exc).__name__}: {exc}); restore the store from a good "
            "copy, or encode again into a writable path"
        )
    return LatentStoreError(
        f"the latent store {verifier.path} is damaged: {where} (a chunk file changed after it was written: disk "
        f"or copy corruption). These rows are not served; {fix}."
    )


def _verified_block(block: np.ndarray, verifier: _ChunkVerifier, block_info: Any = None) -> np.ndarray:
    """A dask block of whole chunks, checked (the task of :meth:`LatentStore.dask_array`)."""
    if block_info is not None and len(block):
        verifier.check_rows(int(block_info[0]["array-location"][0][0]), block)
    return block


class StoredArray:
    """A read-only, numpy-indexable view of one array of a :class:`LatentStore`.

    Indexing the rows with an int, a slice, an int array (any order,
    repeats and negative values allowed) or a boolean mask reads only the
    chunks it needs and returns a numpy array, as numpy indexing would.
    ``np.asarray(a)`` reads everything. Each chunk read is checked against
    the checksum recorded when it was written: a damaged chunk raises
    :class:`LatentStoreError` naming its rows, never serves wrong values.

    Parameters
    ----------
    array : zarr.Array
        Opened read-only.
    verifier : optional
        Checks whole chunks (stores written before checksums existed have none).

    Examples
    --------
    >>> latents = store.latents  # doctest: +SKIP
    >>> latents[[5, 0, 5]].shape, latents[-1].shape  # doctest: +SKIP
    ((3, 4, 4, 128), (4, 4, 128))
    """

    def __init__(self, array: Any, verifier: _ChunkVerifier | None = None) -> None:
        self._array = array
        self._verifier = verifier
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
        """The underlying (read-only) ``zarr.Array``; reading it skips the checksums."""
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
            return self._sorted_rows(np.array([i % n], np.int64))[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self._range(start, stop) if start < stop else self._empty(0)
            return self[np.arange(start, stop, step)]
        idx = index_rows(key, n)
        if len(idx) == 0:
            return self._empty(0)
        # Sorted, unique rows are read (orthogonal selection); numpy's order and repeats come after.
        uniq, inverse = np.unique(idx, return_inverse=True)
        return self._sorted_rows(uniq)[inverse]

    def _range(self, start: int, stop: int) -> np.ndarray:
        if self._verifier is None:
            return np.asarray(self._array[start:stop])
        cr = self.chunk_rows
        out = self._empty(stop - start)
        step = max(1, _READ_BYTES // max(1, self._chunk_bytes())) * cr
        # Whole chunks are read and checked, groups of them at a time; the rows asked for are kept.
        end = min(-(-stop // cr) * cr, self.shape[0])  # the end of the chunk holding row stop - 1
        for lo in range(start // cr * cr, stop, step):
            hi = min(lo + step, end)
            block = np.asarray(self._array[lo:hi])
            self._verifier.check_rows(lo, block)
            a, b = max(lo, start), min(hi, stop)
            out[a - start : b - start] = block[a - lo : b - lo]
        return out

    def _sorted_rows(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` (sorted, unique, in range)."""
        if self._verifier is None:
            return np.asarray(self._array.get_orthogonal_selection((idx,)))
        cr, n = self.chunk_rows, self.shape[0]
        chunks = np.unique(idx // cr)
        per_read = max(1, _READ_BYTES // max(1, self._chunk_bytes()))
        out = self._empty(len(idx))
        for g in range(0, len(chunks), per_read):
            group = chunks[g : g + per_read]
            rows = np.concatenate([np.arange(c * cr, min((c + 1) * cr, n)) for c in group])
            block = np.asarray(self._array.get_orthogonal_selection((rows,)))
            bounds = np.searchsorted(rows, [c * cr for c in group] + [rows[-1] + 1])
            self._verifier.check([int(c) for c in group], [block[a:b] for a, b in itertools.pairwise(bounds)])
            mine = (idx >= group[0] * cr) & (idx < min((group[-1] + 1) * cr, n))
            out[mine] = block[np.searchsorted(rows, idx[mine])]
        return out

    def _chunk_bytes(self) -> int:
        return self.chunk_rows * int(np.prod(self.shape[1:])) * self.dtype.itemsize

    def _empty(self, rows: int) -> np.ndarray:
        return np.empty((rows, *self.shape[1:]), self.dtype)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def iter_blocks(self, rows: int | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``(slice, block)`` pairs covering the rows, ``rows`` at a time (default: one chunk).

        Examples
        --------
        >>> total = sum(block.sum() for _, block in store.latents.iter_blocks())  # doctest: +SKIP
        """
        for s in iter_row_blocks(len(self), rows or self.chunk_rows):
            yield s, self[s]

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


class LatentStoreWarning(UserWarning):
    """A latent store was found damaged and is being repaired (its damaged rows are re-encoded)."""


class _DamagedArray(LatentStoreError):
    """One array of a store cannot be opened as the attributes describe it (``what``: the short reason)."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"the latent store {path} is damaged: {what}. Resuming the encode (encode_dataset(dataset, "
            "store=path)) rebuilds it; or restore the store from a good copy."
        )
        self.what = what


def _attribute_problems(attrs: dict[str, Any]) -> list[str]:
    """What is wrong with a store's attributes (values of the wrong kind, a checksum that does not match)."""
    problems = []
    recorded = attrs.get("attributes_checksum")
    if recorded is not None and recorded != _attributes_checksum(attrs):
        problems.append("they do not match the checksum written with them")

    def count(v: Any, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    def shape(v: Any) -> bool:
        return isinstance(v, list) and all(count(s, 1) for s in v)

    checks = {
        "model_hash": isinstance(attrs.get("model_hash"), str),
        "data_hash": isinstance(attrs.get("data_hash"), str),
        "n": count(attrs.get("n"), 0),
        "chunk_rows": count(attrs.get("chunk_rows"), 1),
        "latent_shape": shape(attrs.get("latent_shape")),
        "skip_shapes": isinstance(attrs.get("skip_shapes"), list) and all(map(shape, attrs["skip_shapes"])),
        "stored_skips": isinstance(attrs.get("stored_skips"), bool),
    }
    problems += [f"{k}={attrs.get(k)!r} is not valid" for k, ok in checks.items() if not ok]
    return problems


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
    it raises :class:`LatentStoreError` naming its rows, and resuming
    (:meth:`create`, ``encode_dataset(..., store=path)``) re-encodes it
    with a :class:`LatentStoreWarning`. Stores written before checksums
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
        self._group = group
        attrs = dict(group.attrs)
        self.n: int = int(attrs["n"])
        self.latent_shape: tuple[int, ...] = tuple(attrs["latent_shape"])
        self.skip_shapes: tuple[tuple[int, ...], ...] = tuple(tuple(s) for s in attrs["skip_shapes"])
        self.stored_skips: bool = bool(attrs["stored_skips"])
        self.chunk_rows: int = int(attrs["chunk_rows"])
        self.model_hash: str = str(attrs["model_hash"])
        self.data_hash: str = str(attrs["data_hash"])
        self.checksum: str | None = attrs.get("checksum")
        self._arrays: dict[str, Any] = {}

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _read_attrs(path: Path) -> dict[str, Any] | None:
        """The store's attributes, or None when ``path`` holds no readable Zarr group."""
        zarr = _zarr()
        try:
            group = zarr.open_group(str(path), mode="r")
        except Exception:
            return None
        return dict(group.attrs)

    @staticmethod
    def _looks_like_store(path: Path) -> bool:
        """A folder with a store's arrays (whatever its zarr.json says)."""
        return (path / "latents").is_dir() and (path / "done").is_dir()

    @classmethod
    def _check_attrs(cls, path: Path, attrs: dict[str, Any] | None) -> dict[str, Any]:
        if (attrs is None or attrs.get("format") != STORE_FORMAT) and cls._looks_like_store(path):
            raise LatentStoreError(
                f"{path} holds a latent store's arrays (latents/, done/) but its group metadata (zarr.json, or "
                ".zattrs in Zarr format 2) is missing, unreadable or not a store's: the store is damaged (a partial "
                "copy?) and what it was computed from is unknown. Restore it from a good copy, or delete the folder "
                "and encode again."
            )
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
        problems = _attribute_problems(attrs)
        if problems:
            raise LatentStoreError(
                f"{path} is a damaged latent store: its attributes were edited or corrupted "
                f"({'; '.join(problems)}), so its hashes and shapes cannot be trusted. Encode again with "
                "overwrite=True (or into a new path), or restore the store from a good copy."
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
            Not a store, another version, another model or data, or
            damaged attributes or array metadata.

        Examples
        --------
        >>> store = LatentStore.open("latents.zarr", model_hash=lm.weights_hash())  # doctest: +SKIP
        """
        path = Path(path)
        attrs = cls._check_attrs(path, cls._read_attrs(path))
        cls._check_hashes(path, attrs, model_hash, data_hash)
        store = cls(path, _zarr().open_group(str(path), mode="a"))
        for name in store._data_names:
            store._array(name)  # raises, naming the array and the fix
        return store

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
        raises, unless ``overwrite=True``, which deletes it first. A reused
        store is repaired for resuming: the chunks found damaged
        (:meth:`damaged_chunks`) are marked not done, and damaged done flags
        or checksums are rebuilt, with a :class:`LatentStoreWarning`.

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
            store there has another model or data hash, lacks the skips
            asked for, or has damaged attributes.

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
                if cls._looks_like_store(path):
                    cls._check_attrs(path, attrs)  # the damaged-store message
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
                store._repair()
                return store
        stored = bool(store_skips and skip_shapes)
        group = zarr.open_group(str(path), mode="w")
        _create_array(group, "latents", (n, *latent_shape), (chunk_rows, *latent_shape), "float32")
        if stored:
            for k, s in enumerate(skip_shapes):
                _create_array(group, f"skip_{k}", (n, *s), (chunk_rows, *s), "float32")
        n_flags = max(1, -(-n // chunk_rows))
        _create_array(group, "done", (n_flags,), (1,), "uint8")
        # One row of checksums per chunk, in its own file: workers writing different chunks never share one.
        k = 1 + (len(skip_shapes) if stored else 0)
        _create_array(group, "checksums", (n_flags, k), (1, k), "uint64")
        attrs = {
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
            "checksum": _default_checksum(),
        }
        attrs["attributes_checksum"] = _attributes_checksum(attrs)
        # The attributes last, in one write (put, not update, which zarr 3 writes key by key):
        # a folder killed before this point is not taken for a store.
        group.attrs.put(attrs)
        return cls(path, group)

    # ------------------------------------------------------------------ arrays

    @property
    def _data_names(self) -> list[str]:
        """The arrays of rows: the latents, then the stored skips (the columns of ``checksums``)."""
        skips = [f"skip_{k}" for k in range(len(self.skip_shapes))] if self.stored_skips else []
        return ["latents", *skips]

    def _expected_layout(self, name: str) -> tuple[tuple[int, ...], int, str]:
        """(shape, rows per chunk, dtype) that array ``name`` must have."""
        n_flags = max(1, self.n_chunks)
        if name == "done":
            return (n_flags,), 1, "uint8"
        if name == "checksums":
            return (n_flags, len(self._data_names)), 1, "uint64"
        shape = self.latent_shape if name == "latents" else self.skip_shapes[int(name.split("_")[1])]
        return (self.n, *shape), self.chunk_rows, "float32"

    def _array(self, name: str) -> Any:
        """The writable zarr array ``name``, checked against the attributes once."""
        array = self._arrays.get(name)
        if array is not None:
            return array
        try:
            array = self._group[name]
        except Exception as exc:
            what = f"the metadata of its {name!r} array is missing or unreadable ({type(exc).__name__}: {exc})"
            raise _DamagedArray(self.path, what) from None
        shape, rows, dtype = self._expected_layout(name)
        got = (tuple(int(s) for s in array.shape), int(array.chunks[0]), np.dtype(array.dtype).name)
        if got != (shape, rows, dtype):
            what = (
                f"its {name!r} array has shape {got[0]}, {got[1]} rows per chunk and dtype {got[2]}, where its "
                f"attributes say {shape}, {rows} and {dtype}"
            )
            raise _DamagedArray(self.path, what)
        self._arrays[name] = array
        return array

    def _recreate(self, name: str) -> None:
        shape, rows, dtype = self._expected_layout(name)
        _create_array(self._group, name, shape, (rows, *shape[1:]), dtype, overwrite=True)
        self._arrays.pop(name, None)

    def _repair(self) -> None:
        """Make a reused store fit to resume: damaged arrays rebuilt, damaged chunks marked not done."""
        lost: dict[str, str] = {}
        for name in [*self._data_names, *(["checksums"] if self.checksum else []), "done"]:
            try:
                self._array(name)
            except _DamagedArray as exc:
                lost[name] = exc.what
        for name in lost:
            self._recreate(name)
        if set(lost) - {"done"}:
            # Rows without their array, or without their checksums, cannot be trusted: all are encoded again.
            self.reset_progress()
        elif "done" in lost:
            self._rebuild_flags()
        if lost:
            notes = "; ".join(lost.values())
            warnings.warn(
                f"the latent store {self.path} was damaged ({notes}); rebuilt it: "
                f"{self.n_chunks - len(self.missing_chunks())} of {self.n_chunks} chunks verified, the others are "
                "encoded again.",
                LatentStoreWarning,
                stacklevel=3,
            )
            return
        damage = self.damaged_chunks()
        if damage:
            self._clear_flags(list(damage))
            warnings.warn(
                f"the latent store {self.path} is damaged: {_describe_chunks(damage, self.chunk_rows, self.n)}. "
                "They are marked not done and encoded again.",
                LatentStoreWarning,
                stacklevel=3,
            )

    def _rebuild_flags(self) -> None:
        """Done flags from the checksums: a chunk whose rows match its recorded checksum is done."""
        if not self.checksum:
            return  # no way to tell a written chunk: every chunk is encoded again
        sums = self._read_sums(np.arange(self.n_chunks))
        done = _writable(self._array("done"))
        for c in range(self.n_chunks):
            if not np.all(sums[c] & np.uint64(_HAS_SUM)):
                continue
            if any(self._chunk_file_problem(name, c) for name in self._data_names):
                continue
            rows = self.chunk_slice(c)
            blocks = [np.asarray(self._array(name)[rows]) for name in self._data_names]
            if all(_checksum(self.checksum, b) == int(s) for b, s in zip(blocks, sums[c], strict=True)):
                done[c] = 1

    # ------------------------------------------------------------------ progress

    @property
    def n_chunks(self) -> int:
        """Number of row chunks."""
        return -(-self.n // self.chunk_rows)

    def chunk_slice(self, c: int) -> slice:
        """The rows of chunk ``c``."""
        return slice(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n))

    def _read_files(self, name: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows ``idx`` of ``done`` or ``checksums`` (one row per chunk) read from their files, and which could
        not be read; None when the array is not stored as plain bytes (then zarr reads it)."""
        array = self._array(name)
        dtype = _plain_dtype(array)
        if dtype is None:
            return None
        row_shape = tuple(int(s) for s in array.shape[1:])
        size = int(np.prod(row_shape)) * dtype.itemsize
        out = np.zeros((len(idx), *row_shape), dtype)
        bad = np.zeros(len(idx), bool)
        root = str(self.path)
        for j, c in enumerate(idx):
            try:
                with open(f"{root}/{_chunk_key(array, int(c))}", "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                continue  # never written: the fill value, 0
            except OSError:
                bad[j] = True
                continue
            if len(data) == size:
                out[j] = np.frombuffer(data, dtype).reshape(row_shape)
            else:
                bad[j] = True
        return out, bad

    def _read_flags(self, idx: np.ndarray) -> np.ndarray:
        """Done flags of chunks ``idx`` as int16; -1 where a flag file cannot be read (cut short by a kill)."""
        direct = self._read_files("done", idx)
        if direct is not None:
            flags = direct[0].astype(np.int16)
            flags[direct[1]] = -1
            return flags
        done = self._array("done")
        try:
            all_flags = len(idx) == self.n_chunks
            flags = np.asarray(done[: self.n_chunks] if all_flags else done.get_orthogonal_selection((idx,)))
            return flags.astype(np.int16)
        except Exception:
            out = np.empty(len(idx), np.int16)
            for j, c in enumerate(idx):
                try:
                    out[j] = int(done[int(c)])
                except Exception:
                    out[j] = -1
            return out

    def _read_sums(self, idx: np.ndarray) -> np.ndarray:
        """Recorded checksums of chunks ``idx``, ``(len(idx), arrays)`` uint64; 0 where none or unreadable."""
        direct = self._read_files("checksums", idx)
        if direct is not None:
            values = direct[0].astype(np.uint64)
            values[direct[1]] = 0
            return values
        sums = self._array("checksums")
        try:
            all_rows = len(idx) == self.n_chunks
            return np.asarray(sums[: self.n_chunks] if all_rows else sums.get_orthogonal_selection((idx,)), np.uint64)
        except Exception:
            out = np.zeros((len(idx), len(self._data_names)), np.uint64)
            for j, c in enumerate(idx):
                with contextlib.suppress(Exception):
                    out[j] = sums[int(c)]
            return out

    def _chunk_file_problem(self, name: str, c: int) -> str | None:
        """Why chunk ``c``'s file of array ``name`` cannot hold its rows (missing, wrong size), or None."""
        array = self._array(name)
        key = _chunk_key(array, c)
        try:
            size = os.stat(f"{self.path}/{key}").st_size  # a str path: pathlib costs more than the stat
        except FileNotFoundError:
            return f"its file {key} is missing"
        expected = _raw_chunk_bytes(array)
        if expected is not None and size != expected:
            return f"its file {key} holds {size} bytes, not {expected}"
        return None

    def _scan(self, chunks: Sequence[int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """(done and intact, per chunk of ``chunks``; {chunk: why it is damaged}). Reads no latent.

        A chunk is done when its flag is 1, its checksums are recorded (in
        stores that have them) and its files exist with the size of a chunk.
        A flag or checksum that cannot be read, or a flag other than 0 or 1,
        is damage too.
        """
        idx = np.arange(self.n_chunks) if chunks is None else np.asarray(chunks, np.int64).reshape(-1)
        flags = self._read_flags(idx)
        damage: dict[int, str] = {}
        for j in np.flatnonzero(flags == -1):
            damage[int(idx[j])] = "its done flag cannot be read"
        for j in np.flatnonzero((flags != -1) & (flags != 0) & (flags != 1)):
            damage[int(idx[j])] = f"its done flag holds {int(flags[j])}, not 0 or 1"
        marked = flags == 1
        if self.checksum and marked.any():
            sums = self._read_sums(idx)
            for j in np.flatnonzero(marked & ~np.all(sums & np.uint64(_HAS_SUM), axis=1)):
                damage[int(idx[j])] = "it is marked done but no checksum of it was recorded"
        for j in np.flatnonzero(marked):
            c = int(idx[j])
            if c in damage:
                continue
            for name in self._data_names:
                problem = self._chunk_file_problem(name, c)
                if problem is not None:
                    damage[c] = f"it is marked done but {problem}"
                    break
        done = marked & ~np.isin(idx, list(damage))
        return done, damage

    def chunks_done(self) -> np.ndarray:
        """Boolean ``(n_chunks,)``: which chunks are written and intact (read from disk, not remembered).

        A chunk marked done whose data file is missing or cut short, or
        whose checksum is missing, counts as not done (:meth:`damaged_chunks`
        says why). Reads the flags, checksums and file sizes, no latent.
        """
        return self._scan()[0]

    def damaged_chunks(self) -> dict[int, str]:
        """``{chunk: why}`` for the chunks whose progress records or files are damaged (no latent is read).

        Examples
        --------
        >>> store.damaged_chunks()  # doctest: +SKIP
        {3: 'it is marked done but its file latents/c/3/0/0/0 is missing'}
        """
        return self._scan()[1]

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
        done, damage = self._scan()
        if self.checksum:
            sums = self._read_sums(np.arange(self.n_chunks))
            for c in np.flatnonzero(done):
                rows = self.chunk_slice(int(c))
                for k, name in enumerate(self._data_names):
                    if _checksum(self.checksum, np.asarray(self._array(name)[rows])) != int(sums[c, k]):
                        damage[int(c)] = f"its {name} do not match the checksum recorded when it was written"
                        break
        if repair and damage:
            self._clear_flags(list(damage))
        return damage

    def _clear_flags(self, chunks: Sequence[int]) -> None:
        done = self._array("done")  # a 0 (the fill value) deletes the flag's file: as never written
        for c in chunks:
            done[int(c)] = 0

    def is_chunk_done(self, c: int) -> bool:
        """Whether chunk ``c`` is written and intact (its own flag, checksum and files: cheap for a worker)."""
        try:
            return bool(self._scan([int(c)])[0][0])
        except _DamagedArray:
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
        for name, values in zip(self._data_names, data, strict=True):
            values = np.ascontiguousarray(values, np.float32)
            _writable(self._array(name))[rows] = values
            if self.checksum:
                sums.append(_checksum(self.checksum, values))
        if self.checksum:
            _writable(self._array("checksums"))[c] = np.asarray(sums, np.uint64)
        _writable(self._array("done"))[c] = 1

    def reset_progress(self) -> None:
        """Mark every chunk as not done (the next fill re-encodes everything)."""
        self._array("done")[:] = 0
        if self.checksum:
            self._array("checksums")[:] = 0

    # ------------------------------------------------------------------ reading

    def _require_complete(self) -> None:
        done, damage = self._scan()
        if damage:
            raise LatentStoreError(
                f"the latent store {self.path} is damaged: {_describe_chunks(damage, self.chunk_rows, self.n)}. "
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
        self._array(name)  # its layout checked
        verifier = None
        if self.checksum:
            self._array("checksums")
            column = self._data_names.index(name)
            verifier = _ChunkVerifier(str(self.path), name, column, self.n, self.chunk_rows, self.checksum)
        return StoredArray(_zarr().open_group(str(self.path), mode="r")[name], verifier)

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
        if stored._verifier is None:
            return x
        meta = np.empty((0,) * x.ndim, x.dtype)
        return x.map_blocks(_verified_block, verifier=stored._verifier, dtype=x.dtype, meta=meta)

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


def is_store(path: Path) -> bool:
    """Whether ``path`` is a latent store's folder (its attributes name the store format)."""
    attrs = LatentStore._read_attrs(path) if path.is_dir() else None
    return attrs is not None and attrs.get("format") == STORE_FORMAT
