"""A read-only, numpy-indexable view of one array of a latent store, each chunk read checked.

Indexing reads only the chunks it needs; with a
:class:`~latent_widgets.latents.chunk_verifier.ChunkVerifier`, whole chunks
are read and compared with their recorded checksums, at most 64 MiB at a
time, and the rows asked for are kept.

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> from latent_widgets.latents.stored_array import StoredArray
>>> from latent_widgets.latents.zarr_arrays import create_array, import_zarr
>>> array = create_array(import_zarr().open_group(tempfile.mkdtemp(), mode="w"), "x", (6, 2), (4, 2), "float32")
>>> array[:] = np.arange(12, dtype=np.float32).reshape(6, 2)
>>> StoredArray(array)[[5, 0]].tolist()
[[10.0, 11.0], [0.0, 1.0]]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.arrays import index_rows, iter_row_blocks
from .chunk_verifier import ChunkVerifier

__all__ = ["StoredArray"]

# Bytes of whole chunks a verified read holds at once (it reads whole chunks to check them).
_READ_BYTES = 64 << 20


class StoredArray:
    """A read-only, numpy-indexable view of one array of a :class:`~latent_widgets.latents.store.LatentStore`.

    Indexing the rows with an int, a slice, an int array (any order,
    repeats and negative values allowed) or a boolean mask reads only the
    chunks it needs and returns a numpy array, as numpy indexing would.
    ``np.asarray(a)`` reads everything. Each chunk read is checked against
    the checksum recorded when it was written: a damaged chunk raises
    :class:`~latent_widgets.latents.store_errors.LatentStoreError` naming its rows, never serves wrong values.

    Parameters
    ----------
    array : zarr.Array
        Opened read-only.
    verifier : ChunkVerifier, optional
        Checks whole chunks (stores written before checksums existed have none).

    Examples
    --------
    >>> latents = store.latents  # doctest: +SKIP
    >>> latents[[5, 0, 5]].shape, latents[-1].shape  # doctest: +SKIP
    ((3, 4, 4, 128), (4, 4, 128))
    """

    def __init__(self, array: Any, verifier: ChunkVerifier | None = None) -> None:
        self._array = array
        self._verifier = verifier
        self.shape: tuple[int, ...] = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)

    @property
    def verifier(self) -> ChunkVerifier | None:
        """What checks the chunks read (None for a store written before checksums existed)."""
        return self._verifier

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
