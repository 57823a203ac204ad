"""How a latent store uses Zarr: uncompressed arrays, every chunk written, chunk files read directly.

The store works with zarr 2 and zarr 3, whose APIs differ in how an array
is created, where a chunk's file is, and whether a chunk of zeros is
written at all; these functions hide the difference. The done flags and
checksums are one tiny file per chunk, which :func:`read_plain_chunks`
reads without zarr (40x faster) when they are stored as plain bytes.

Examples
--------
>>> import tempfile
>>> from latent_widgets.latents.zarr_arrays import chunk_key, create_array, import_zarr
>>> group = import_zarr().open_group(tempfile.mkdtemp(), mode="w")
>>> flags = create_array(group, "done", (4,), (1,), "uint8")
>>> chunk_key(flags, 2) in ("done/c/2", "done/2")
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "chunk_key",
    "create_array",
    "import_zarr",
    "plain_dtype",
    "raw_chunk_bytes",
    "read_plain_chunks",
    "writable",
]


def import_zarr() -> Any:
    """The ``zarr`` module, imported when a store is first used (it is not needed to import the package)."""
    import zarr

    return zarr


def _zarr_major() -> int:
    return int(import_zarr().__version__.split(".")[0])


def create_array(
    group: Any, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str, overwrite: bool = False
) -> Any:
    """An uncompressed array in ``group``, with zarr 3's or zarr 2's API."""
    kw = dict(shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=overwrite)
    if _zarr_major() >= 3:
        return group.create_array(name, compressors=None, **kw)
    return group.create_dataset(name, compressor=None, **kw)


def writable(array: Any) -> Any:
    """``array``, writing every chunk it is given, zeros included.

    zarr 3 skips (and deletes) a chunk that holds only the fill value, and
    reads a chunk without a file as the fill value: a store could then not
    tell a chunk of zero latents from a deleted file. zarr 2 writes them.
    """
    with_config = getattr(array, "with_config", None)
    return with_config({"write_empty_chunks": True}) if callable(with_config) else array


def chunk_key(array: Any, c: int) -> str:
    """Path of row chunk ``c``'s file of ``array``, relative to the store's folder."""
    coords = (int(c),) + (0,) * (len(array.shape) - 1)
    metadata = getattr(array, "metadata", None)
    if hasattr(metadata, "encode_chunk_key"):  # zarr 3 (format 3 or 2 arrays)
        return f"{array.path}/{metadata.encode_chunk_key(coords)}"
    return str(array._chunk_key(coords))  # zarr 2: already prefixed with the array's path


def raw_chunk_bytes(array: Any) -> int | None:
    """Bytes of one chunk file of an uncompressed array (edge chunks are written whole); None if compressed."""
    compressors = getattr(array, "compressors", None)
    if compressors is None:  # zarr 2
        compressors = () if getattr(array, "compressor", None) is None else (array.compressor,)
    if tuple(compressors) or tuple(getattr(array, "filters", None) or ()):
        return None
    return int(np.prod(array.chunks)) * np.dtype(array.dtype).itemsize


def plain_dtype(array: Any) -> np.dtype | None:
    """The on-disk dtype of a zarr 3 format-3 array stored as plain bytes (no codec but the byte order), else None.

    The done flags and checksums are one tiny file per chunk; zarr spends about 0.25 ms on each, a plain
    file read some 10 µs, so the store reads those two arrays' files itself when their encoding is this one.
    """
    metadata = getattr(array, "metadata", None)
    if getattr(metadata, "zarr_format", None) != 3 or raw_chunk_bytes(array) is None:
        return None
    serializer = getattr(array, "serializer", None)
    if type(serializer).__name__ != "BytesCodec" or float(array.fill_value) != 0:
        return None
    endian = getattr(getattr(serializer, "endian", None), "value", None)
    dtype = np.dtype(array.dtype)
    if dtype.itemsize > 1 and endian not in ("little", "big"):
        return None
    return dtype.newbyteorder("<" if endian != "big" else ">") if dtype.itemsize > 1 else dtype


def read_plain_chunks(array: Any, root: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows ``idx`` of an array of one row per chunk, read from their files, and which could not be read.

    None when the array is not stored as plain bytes (:func:`plain_dtype`): then zarr reads it. A row
    whose file was never written reads as 0, the fill value.

    Parameters
    ----------
    array : zarr.Array
        ``done`` or ``checksums`` of a store.
    root : str
        The store's folder.
    idx : ndarray of int
        The chunks.
    """
    dtype = plain_dtype(array)
    if dtype is None:
        return None
    row_shape = tuple(int(s) for s in array.shape[1:])
    size = int(np.prod(row_shape)) * dtype.itemsize
    out = np.zeros((len(idx), *row_shape), dtype)
    bad = np.zeros(len(idx), bool)
    for j, c in enumerate(idx):
        try:
            with open(f"{root}/{chunk_key(array, int(c))}", "rb") as fh:
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
