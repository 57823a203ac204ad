"""The latents a neighbour search runs over, as float rows ``(N, D)``, in memory or streamed from a store.

:class:`LatentRows` hides where the rows live: an ndarray is flattened
without a copy when contiguous; anything else with a ``shape`` whose slices
``x[a:b]`` are arrays (a Zarr array, an ``np.memmap``, a latent store) is
never loaded whole but read in blocks of bounded bytes, rounded to whole
Zarr chunks so that each chunk is decompressed once per pass.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.latent_rows import LatentRows
>>> rows = LatentRows(np.arange(12, dtype=np.float32).reshape(3, 2, 2), block_bytes=32)
>>> rows.shape, rows.sample_shape, [(s.start, s.stop) for s in rows.blocks(16)]
((3, 4), (2, 2), [(0, 2), (2, 3)])
>>> rows.take(np.array([0, 2])).tolist()
[[0.0, 1.0, 2.0, 3.0], [8.0, 9.0, 10.0, 11.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.arrays import BLOCK_BYTES, as_float_rows, is_row_store, iter_row_blocks

__all__ = ["LatentRows"]


def _float_dtype(dtype: Any) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


class LatentRows:
    """Latents as float rows ``(N, D)``, read a bounded block at a time when they live in a store.

    Parameters
    ----------
    latents : ndarray or row-indexable store, shape (N, *latent_shape)
        Kept by reference: do not modify them afterwards.
    block_bytes : int
        Bound on the bytes of one block of rows read from a store, and of the
        float64 temporaries of one step over the rows.

    Attributes
    ----------
    source : ndarray or store
        The latents as given (an ndarray for in-memory input).
    streamed : bool
        Whether the rows are read from a store, block by block.
    shape : tuple of int
        ``(N, D)``, ``D`` the length of one flattened latent.
    sample_shape : tuple of int
        Shape of one latent as given.
    dtype : numpy.dtype
        Float dtype the rows are read in (float64 stays float64, anything
        else becomes float32).

    Raises
    ------
    ValueError
        The latents are not ``(N, ...)`` with ``N >= 1``.

    Examples
    --------
    >>> LatentRows(np.eye(3)).dtype, LatentRows(np.eye(3, dtype=np.int8)).dtype
    (dtype('float64'), dtype('float32'))
    """

    def __init__(self, latents: Any, block_bytes: int = BLOCK_BYTES) -> None:
        self.streamed = is_row_store(latents)
        self.source = latents if self.streamed else np.asarray(latents)
        shape = tuple(int(s) for s in self.source.shape)
        if len(shape) < 2:
            raise ValueError(f"data must have shape (N, ...) with one latent per row, got {shape}")
        if shape[0] == 0:
            raise ValueError("data is empty; an index needs at least one latent")
        self.sample_shape: tuple[int, ...] = shape[1:]
        self.shape = (shape[0], math.prod(shape[1:]))
        self.dtype = _float_dtype(getattr(self.source, "dtype", np.float32))
        self.block_bytes = int(block_bytes)
        self._data: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.shape[0])

    @property
    def n_features(self) -> int:
        """Length of one flattened latent."""
        return int(self.shape[1])

    @property
    def data(self) -> Any:
        """The rows as float ``(N, D)`` (a view of an in-memory input when possible), or the store as given."""
        if self.streamed:
            return self.source
        if self._data is None:
            self._data = as_float_rows(self.source, "data")
        return self._data

    @property
    def cheap_take(self) -> bool:
        """Whether scattered rows are cheap to fetch: in memory or a memmap, not a compressed chunked store."""
        return not self.streamed or isinstance(self.source, np.ndarray)

    def as_queries(self, queries: Any) -> np.ndarray:
        """Queries as float rows ``(M, D)`` comparable with these rows: a batch, flat rows or one latent.

        Raises
        ------
        ValueError
            The queries have another number of features than the rows.

        Examples
        --------
        >>> LatentRows(np.zeros((5, 2, 3))).as_queries(np.ones((2, 3))).shape  # one latent
        (1, 6)
        """
        q = np.asarray(queries)
        if q.shape == self.sample_shape:  # one latent, not a batch
            q = q[None]
        q = as_float_rows(q, "queries")
        if q.shape[1] != self.n_features:
            raise ValueError(
                f"queries have {q.shape[1]} features per latent but the index has {self.n_features} "
                f"(latent shape {self.sample_shape}); encode them with the same model."
            )
        return q

    def block_rows(self, temp_bytes_per_row: int) -> int:
        """Rows per block: bounded by the block bytes (stores) and the temporaries per row."""
        rows = max(1, self.block_bytes // max(temp_bytes_per_row, 1))
        if self.streamed:
            rows = min(rows, max(1, self.block_bytes // (self.n_features * self.dtype.itemsize)))
            chunk = getattr(self.source, "chunks", None)
            if isinstance(chunk, tuple) and chunk and isinstance(chunk[0], int) and 0 < chunk[0] <= rows:
                rows -= rows % chunk[0]  # whole chunks: each is decompressed once
        return rows

    def blocks(self, temp_bytes_per_row: int) -> Iterator[slice]:
        """Consecutive row slices covering the rows, of :meth:`block_rows` each."""
        return iter_row_blocks(self.n_samples, self.block_rows(temp_bytes_per_row))

    def read(self, rows: slice) -> np.ndarray:
        """Rows ``rows`` as float ``(B, D)``: a view of in-memory data, a copy read from a store."""
        if not self.streamed:
            return self.data[rows]
        block = np.asarray(self.source[rows])
        block = block.reshape(len(block), -1)
        return block if block.dtype == self.dtype else block.astype(self.dtype)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows at sorted unique ``ids`` as float ``(len(ids), D)``."""
        if not self.streamed:
            return self.data[ids]
        if isinstance(self.source, np.ndarray):  # memmap: fancy indexing reads only the pages needed
            block = np.asarray(self.source[ids]).reshape(len(ids), -1)
            return block if block.dtype == self.dtype else block.astype(self.dtype)
        out = np.empty((len(ids), self.n_features), self.dtype)
        chunk = getattr(self.source, "chunks", None)
        # Rows are grouped by chunk (or block): one read per group holding any id.
        step = self.block_rows(0)
        if isinstance(chunk, tuple) and chunk and isinstance(chunk[0], int) and chunk[0] > 0:
            step = min(step, chunk[0])
        groups = ids // step
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(ids)], strict=True):
            first, last = int(ids[lo]), int(ids[hi - 1])
            out[lo:hi] = self.read(slice(first, last + 1))[ids[lo:hi] - first]
        return out

    def sq_norms_and_sketch(self, components: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """One pass over the rows: their squared norms in float64 and, given ``components``, their sketch.

        Parameters
        ----------
        components : ndarray, shape (r, D), optional
            Directions to project every row on (``rows @ components.T``).

        Returns
        -------
        sq_norms : ndarray, float64, shape (N,)
        sketch : ndarray, shape (N, r), in :attr:`dtype`, or None without components

        Examples
        --------
        >>> LatentRows(np.array([[3.0, 4.0], [1.0, 0.0]])).sq_norms_and_sketch(np.array([[1.0, 0.0]]))[1].tolist()
        [[3.0], [1.0]]
        """
        n = self.n_samples
        sq_norms = np.empty(n, np.float64)
        sketch = None if components is None else np.empty((n, len(components)), self.dtype)
        for rows in self.blocks(8):
            xb = self.read(rows)
            # float64 a bounded block at a time: the rows are never converted whole.
            for sub in iter_row_blocks(len(xb), self.block_bytes // (8 * max(self.n_features, 1))):
                b64 = xb[sub].astype(np.float64, copy=False)
                sq_norms[rows.start + sub.start : rows.start + sub.stop] = np.einsum("ij,ij->i", b64, b64)
            if sketch is not None:
                sketch[rows] = xb @ components.T
        return sq_norms, sketch
