"""Read-only arrays whose rows are produced on demand: :class:`LazyArray` over a :class:`SampleSource`.

A dataset of 10^5 frames does not fit in memory as float32 arrays, so a
:class:`~latent_widgets.data.dataset.SegmentationDataset` may hold two lazy arrays
instead: ``images`` and ``masks`` are views of one :class:`SampleSource`,
which renders or reads the image and the mask of a sample together. Indexing
a lazy array reads only the rows asked for, batch-wise; the source keeps the
other half of the last pair it read, so that ``images[rows]`` followed by
``masks[rows]`` reads (or renders) each sample once.

A leaf module (numpy and :mod:`~latent_widgets.core.hashing` only). Sources and
lazy arrays hold no lambdas, closures or open files, so they pickle (a worker
process can read its own share of a dataset).

Examples
--------
>>> import numpy as np
>>> from latent_widgets.data.lazy_array import LazyArray, SampleSource
>>> class Ramp(SampleSource):
...     def read_pairs(self, indices):
...         images = np.broadcast_to(indices[:, None, None, None] / 10, (len(indices), 2, 2, 3))
...         return images.astype(np.float32), np.zeros((len(indices), 2, 2), np.uint8)
...     def describe(self):
...         return {"kind": "ramp", "n": len(self)}
>>> src = Ramp(4, (2, 2))
>>> images = LazyArray(src, "images")
>>> images.shape, images.dtype.name, round(float(images[-1][0, 0, 0]), 3)
((4, 2, 2, 3), 'float32', 0.3)
>>> images[1:3].shape, images[[True, False, False, True]].shape
((2, 2, 2, 3), (2, 2, 2, 3))
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.hashing import content_hash

__all__ = ["AUTO_LAZY_BYTES", "LazyArray", "SampleSource", "eager_nbytes", "resolve_lazy"]

#: Loaders turn lazy on their own (``lazy=None``) when the eager arrays, float32
#: images plus uint8 masks, would take more than this many bytes (1 GiB).
AUTO_LAZY_BYTES = 1 << 30

_FIELDS = ("images", "masks")


def eager_nbytes(n: int, size: tuple[int, int]) -> int:
    """Bytes of ``n`` float32 RGB images and uint8 masks of ``size = (H, W)``.

    Examples
    --------
    >>> eager_nbytes(10, (2, 3))
    780
    """
    h, w = size
    return int(n) * int(h) * int(w) * (3 * 4 + 1)


def resolve_lazy(lazy: bool | None, n: int, size: tuple[int, int]) -> bool:
    """Whether a loader reads lazily: ``lazy`` if given, else above :data:`AUTO_LAZY_BYTES`.

    Examples
    --------
    >>> resolve_lazy(None, 240, (96, 128)), resolve_lazy(None, 100_000, (96, 128)), resolve_lazy(True, 1, (2, 2))
    (False, True, True)
    """
    if lazy is None:
        return eager_nbytes(n, size) > AUTO_LAZY_BYTES
    return bool(lazy)


class SampleSource:
    """Produces the images and masks of samples by index, a batch at a time.

    Subclasses implement :meth:`read_pairs` and :meth:`describe`; they may
    override :meth:`read_masks` (when masks alone are cheaper to read) and
    :meth:`sample_label` (to name a sample in error messages). A subclass
    must stay picklable: plain attributes, no lambdas or open handles.

    Parameters
    ----------
    n : int
        Number of samples.
    image_size : (H, W)
    mask_dtype : numpy dtype
        dtype of the masks :meth:`read_pairs` returns.

    Notes
    -----
    :meth:`read` keeps the other half of the last pair it read (the masks
    after a read of images, and the reverse) until it is asked for, so that
    reading the images and then the masks of the same rows does the work
    once. It hands each array out once, so no caller can alter what another
    reads.
    """

    def __init__(self, n: int, image_size: tuple[int, int], mask_dtype: Any = np.uint8) -> None:
        self.n = int(n)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.mask_dtype = np.dtype(mask_dtype)
        self._lock = threading.Lock()
        self._last: tuple[tuple[str, bytes], np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_last"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ to implement

    def read_pairs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(k, H, W, 3)`` float32 in 0..1 and masks ``(k, H, W)`` of ``indices`` (int64, in range)."""
        raise NotImplementedError

    def read_masks(self, indices: np.ndarray) -> np.ndarray:
        """Masks of ``indices``; by default those of :meth:`read_pairs`."""
        return self.read_pairs(indices)[1]

    def describe(self) -> Any:
        """What determines the content (parameters, file names, sizes, times): hashed by :meth:`fingerprint`."""
        raise NotImplementedError

    def sample_label(self, index: int) -> str:
        """How error messages name the mask of sample ``index``."""
        return f"mask of sample {index}"

    # ------------------------------------------------------------ provided

    def fingerprint(self) -> str:
        """A content hash of :meth:`describe` (cheap: no pixel is read)."""
        return content_hash(type(self).__qualname__, self.describe())

    def read(self, indices: np.ndarray, field: str) -> np.ndarray:
        """The ``field`` (``"images"`` or ``"masks"``) of ``indices``.

        Reading the images of a batch keeps its masks, until the masks of
        the same indices are asked for (then they are handed over, not
        read again) or another batch is read; the reverse too. Nothing else
        is cached, so a repeated read sees the data as it is now.
        """
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        key = (field, indices.tobytes())
        with self._lock:
            last, self._last = self._last, None
        if last is not None and last[0] == key:
            return last[1]
        if field not in _FIELDS:
            raise ValueError(f"field must be one of {_FIELDS}, got {field!r}")
        if field == "masks" and type(self).read_masks is not SampleSource.read_masks:
            return np.asarray(self.read_masks(indices), dtype=self.mask_dtype)  # cheaper alone: keep nothing
        images, masks = self.read_pairs(indices)
        pair = {"images": np.asarray(images, dtype=np.float32), "masks": np.asarray(masks, dtype=self.mask_dtype)}
        other = "masks" if field == "images" else "images"
        with self._lock:
            self._last = ((other, key[1]), pair[other])
        return pair[field]


class LazyArray:
    """A read-only array-like whose rows a :class:`SampleSource` produces on demand.

    It has ``shape``, ``dtype``, ``ndim``, ``size``, ``nbytes`` and ``len``,
    and indexing along the first axis with an int (negative ones count from
    the end), a slice (any step), an int array or a boolean mask returns a
    numpy array, as numpy indexing would; a tuple indexes the rows first and
    the rest in the array read. ``np.asarray(lazy)`` works too, but reads
    **every** row into memory: iterate over row blocks instead.

    Parameters
    ----------
    source : SampleSource
    field : {"images", "masks"}
    rows : ndarray of int, optional
        The source rows this array shows, in order; all of them if omitted.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(100_000, size=(48, 64), lazy=True)
    >>> ds.images.shape, ds.masks[99_999].shape
    ((100000, 48, 64, 3), (48, 64))
    """

    def __init__(
        self,
        source: SampleSource,
        field: str,
        rows: np.ndarray | None = None,
    ) -> None:
        if field not in _FIELDS:
            raise ValueError(f"field must be one of {_FIELDS}, got {field!r}")
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            if rows.size and (rows.min() < 0 or rows.max() >= len(source)):
                raise IndexError(f"rows must lie in 0..{len(source) - 1}")
            if len(rows) == len(source) and np.array_equal(rows, np.arange(len(source))):
                rows = None  # the identity: keep views of everything cheap and their hash equal
        self.source = source
        self.field = field
        self.rows = rows

    # ------------------------------------------------------------ array protocol

    @property
    def shape(self) -> tuple[int, ...]:
        h, w = self.source.image_size
        n = len(self.source) if self.rows is None else len(self.rows)
        return (n, h, w, 3) if self.field == "images" else (n, h, w)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.field == "images" else self.source.mask_dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes the array would take in memory (it holds none of them)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        source = type(self.source).__name__
        return f"LazyArray({self.field}, shape={self.shape}, dtype={self.dtype.name}, source={source})"

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        # Materialises everything: fine for small data, the caller's choice for large.
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            if not key:
                return self[:]
            first, rest = key[0], key[1:]
            if first is Ellipsis:
                return self[:][key]
            head = self[first]
            return head[rest] if isinstance(first, (int, np.integer)) else head[(slice(None), *rest)]
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis 0 with size {n}")
            return self._read(np.array([i % n]))[0]
        if isinstance(key, slice):
            return self._read(np.arange(n)[key])
        if key is None or key is Ellipsis:
            raise TypeError(f"LazyArray does not support indexing with {key!r}; index its rows, then the result")
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index has shape {idx.shape} but axis 0 has size {n}")
            return self._read(np.flatnonzero(idx))
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(
                "only integers, slices, integer arrays and boolean arrays are valid indices of a LazyArray, "
                f"got {idx.dtype}"
            )
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = int(idx.min()) if idx.min() < -n else int(idx.max())
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {n}")
        flat = idx.reshape(-1) % max(n, 1)
        out = self._read(flat)
        return out.reshape(idx.shape + out.shape[1:])

    # ------------------------------------------------------------ lazy API

    def view(self, positions: Sequence[int] | np.ndarray) -> LazyArray:
        """A lazy array of the rows at ``positions`` (in range, non-negative) of this one; nothing is read."""
        positions = np.asarray(positions, dtype=np.int64)
        return self._with_rows(positions if self.rows is None else self.rows[positions])

    def fingerprint(self) -> str:
        """A content hash from the source's description and the rows shown (reads no pixel)."""
        return content_hash("LazyArray", self.field, self.source.fingerprint(), self.rows)

    def _with_rows(self, rows: np.ndarray | None) -> LazyArray:
        # Subclasses that carry more state (a check on what is read) override this.
        return LazyArray(self.source, self.field, rows)

    def _read(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` (non-negative, in range) of this array, from the source."""
        h, w = self.source.image_size
        if len(positions) == 0:
            tail = (h, w, 3) if self.field == "images" else (h, w)
            return np.empty((0, *tail), self.dtype)
        return self.source.read(self.source_rows(positions), self.field)

    def source_rows(self, positions: np.ndarray) -> np.ndarray:
        """The source indices of rows at ``positions`` of this array."""
        return positions if self.rows is None else self.rows[positions]
