"""Skip features computed when they are read: the encoder is run again on the requested samples' images.

A decoder with skip connections needs every sample's skips, many times
bigger than its latent: a :class:`~latent_widgets.latents.store.LatentStore`
keeps only the latents, and :class:`LazySkipColumn` gives each skip as a
column that re-encodes the rows it is asked for.

Examples
--------
>>> import numpy as np
>>> images = np.arange(4 * 2 * 2 * 1, dtype=np.float32).reshape(4, 2, 2, 1)
>>> source = SkipSource(lambda x: (x.mean(axis=(1, 2)), x * 2), images, [(2, 2, 1)], batch_size=2)
>>> column = LazySkipColumn(source, 0)
>>> column.shape, bool(np.array_equal(column[1:3], images[1:3] * 2))
((4, 2, 2, 1), True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..core.arrays import index_rows, iter_row_blocks

__all__ = ["EncodeBatch", "LazySkipColumn", "SkipSource"]

#: The encoder as the latents layer knows it: ``images (B, H, W, C) -> (latents, skip_0, ...)``.
EncodeBatch = Callable[[np.ndarray], Sequence[Any]]


class SkipSource:
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

    def __init__(self, source: SkipSource, k: int) -> None:
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
            idx = index_rows(key, n)
        return self._source.skips_of(idx)[self._k]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazySkipColumn(skip {self._k}, shape={self.shape}, computed on demand)"
