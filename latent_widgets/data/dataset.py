"""The dataset container: :class:`SegmentationDataset` and its :class:`Sample`.

Loaders build it (:mod:`latent_widgets.data.folders`, :mod:`latent_widgets.data.camvid`,
:mod:`latent_widgets.data.synthetic`); everything else reads it. It depends only on
the leaf modules :mod:`~latent_widgets.core.arrays`, :mod:`~latent_widgets.core.hashing`,
:mod:`~latent_widgets.data.lazy_array` and :mod:`~latent_widgets.data.colors`, so that any
module may import it.

Its images and masks are numpy arrays or, for datasets too large for memory,
:class:`~latent_widgets.data.lazy_array.LazyArray` views of one source that reads
(or renders) samples on demand (:attr:`SegmentationDataset.is_lazy`).

Examples
--------
>>> from latent_widgets.data.dataset import SegmentationDataset
>>> import numpy as np
>>> ds = SegmentationDataset(
...     images=np.zeros((2, 4, 4, 3), np.float32),
...     masks=np.zeros((2, 4, 4), np.uint8),
...     names=("a.png", "b.png"),
...     class_names=("bg", "fg"),
... )
>>> len(ds), ds.n_classes, ds[1].name
(2, 2, 'b.png')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..core.arrays import iter_row_blocks, row_bincount
from ..core.hashing import content_hash
from .colors import default_palette
from .lazy_array import LazyArray

# Rows per block when a lazy dataset is scanned (class counts, summary): about
# this many bytes of float32 images, so that the temporaries stay bounded.
_LAZY_BLOCK_BYTES = 64 << 20

__all__ = ["DatasetError", "Sample", "SegmentationDataset"]


class DatasetError(ValueError):
    """A dataset on disk or in memory is not usable; the message says why and how to fix it."""


class Sample(NamedTuple):
    """One sample of a :class:`SegmentationDataset`."""

    index: int
    image: np.ndarray
    mask: np.ndarray
    name: str
    group: int | None


class _CheckedMasks(LazyArray):
    """Lazy masks whose every batch read is checked to hold ids ``0 .. n_classes - 1``."""

    def __init__(self, masks: LazyArray, n_classes: int) -> None:
        super().__init__(masks.source, "masks", masks.rows)
        self.n_classes = int(n_classes)

    def _with_rows(self, rows: np.ndarray | None) -> LazyArray:
        return _CheckedMasks(LazyArray(self.source, "masks", rows), self.n_classes)

    def _read(self, positions: np.ndarray) -> np.ndarray:
        masks = super()._read(positions)
        if not masks.size:
            return masks
        flat = masks.reshape(len(masks), -1)
        n = self.n_classes
        bad = (flat >= n).any(axis=1)
        if np.issubdtype(flat.dtype, np.signedinteger):
            bad |= (flat < 0).any(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            index = int(self.source_rows(positions)[k])
            raise DatasetError(
                f"{self.source.sample_label(index)} holds class ids in [{int(flat[k].min())}, {int(flat[k].max())}] "
                f"but only {n} classes are known (ids 0..{n - 1}); pass the full class_names or fix the mask."
            )
        return masks


@dataclass(frozen=True, eq=False)
class SegmentationDataset:
    """Images, masks and metadata of a segmentation dataset.

    Parameters
    ----------
    images : ndarray or LazyArray, float32, shape (N, H, W, 3)
        RGB in 0..1.
    masks : ndarray or LazyArray, integer, shape (N, H, W)
        Class id per pixel, in ``0 .. len(class_names) - 1``. Lazy masks are
        checked batch by batch, as they are read.
    names : sequence of str
        One name per sample (the file name for datasets read from disk).
    class_names : sequence of str
        Name of each class id.
    palette : ndarray, uint8, shape (n_classes, 3), optional
        Display colour of each class; :func:`default_palette` if omitted.
    groups : ndarray of int, shape (N,), optional
        A group id per sample (CamVid's video sequence, a synthetic drive).
    group_names : sequence of str, optional
        Name of each group id.
    ignore_index : int, optional
        A class id that is not a class to score, e.g. CamVid's "Unlabelled"
        (11, set by :func:`~latent_widgets.data.camvid.load_camvid`): the
        explorer's session leaves its pixels out of every IoU and confusion
        matrix. It is an evaluation convention, not content, so
        :meth:`content_hash` does not include it.

    Notes
    -----
    Indexing with an int returns a :class:`Sample`; with a slice, a list of
    ints or a boolean mask it returns a new dataset with those samples (for a
    lazy dataset, a lazy view of the same source: nothing is read).

    A lazy dataset (:attr:`is_lazy`) never holds all its pixels: read it with
    :meth:`iter_batches` or by indexing ``images`` / ``masks`` with row
    slices. :meth:`class_pixel_counts`, :meth:`class_fractions` and
    :meth:`summary` read it block by block; :meth:`content_hash` reads no
    pixel (it hashes the source's description).

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(8, size=(48, 64), seed=0)
    >>> ds.images.shape, ds.masks.shape, ds[:4].names == ds.names[:4]
    ((8, 48, 64, 3), (8, 48, 64), True)
    """

    images: np.ndarray | LazyArray
    masks: np.ndarray | LazyArray
    names: tuple[str, ...]
    class_names: tuple[str, ...]
    palette: np.ndarray = field(default=None)  # type: ignore[assignment]
    groups: np.ndarray | None = None
    group_names: tuple[str, ...] | None = None
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        images = self.images if isinstance(self.images, LazyArray) else np.asarray(self.images)
        masks = self.masks if isinstance(self.masks, LazyArray) else np.asarray(self.masks)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise DatasetError(
                f"images must have shape (N, H, W, 3), got {images.shape}; "
                "convert grayscale or RGBA images to RGB first."
            )
        if masks.ndim != 3 or masks.shape != images.shape[:3]:
            raise DatasetError(
                f"masks must have shape (N, H, W) = {images.shape[:3]} to match the images, got {masks.shape}."
            )
        if images.dtype != np.float32:
            if isinstance(images, LazyArray):  # pragma: no cover - LazyArray images are float32
                raise DatasetError(f"lazy images must be float32, got {images.dtype}.")
            images = images.astype(np.float32)
        if not np.issubdtype(masks.dtype, np.integer):
            raise DatasetError(
                f"masks must hold integer class ids, got dtype {masks.dtype}; "
                "round and cast them (e.g. masks.astype(np.uint8))."
            )
        names = tuple(map(str, self.names))
        if len(names) != len(images):
            raise DatasetError(f"got {len(names)} names for {len(images)} images.")
        class_names = tuple(str(c) for c in self.class_names)
        n_classes = len(class_names)
        if n_classes < 1:
            raise DatasetError("class_names is empty; give at least one class name.")
        if isinstance(masks, LazyArray):
            # Checked batch by batch as they are read: reading them all here is what lazy avoids.
            masks = _CheckedMasks(masks, n_classes)
        elif masks.size:
            lo, hi = int(masks.min()), int(masks.max())
            if lo < 0 or hi >= n_classes:
                bad = int(np.argmax((masks < 0).any(axis=(1, 2)) | (masks >= n_classes).any(axis=(1, 2))))
                raise DatasetError(
                    f"mask of sample {bad} ({names[bad]!r}) has values in [{lo}, {hi}] "
                    f"but there are {n_classes} classes (ids 0..{n_classes - 1}); "
                    "pass the full class_names list or remap the label ids."
                )
        palette = default_palette(n_classes) if self.palette is None else np.asarray(self.palette)
        if palette.shape != (n_classes, 3):
            raise DatasetError(
                f"palette must have shape ({n_classes}, 3), one RGB colour per class, got {palette.shape}."
            )
        groups = self.groups
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(images),) or not np.issubdtype(groups.dtype, np.integer):
                raise DatasetError(
                    f"groups must be an integer array of shape ({len(images)},), got {groups.dtype} {groups.shape}."
                )
        group_names = None if self.group_names is None else tuple(map(str, self.group_names))
        ignore_index = self.ignore_index
        if ignore_index is not None:
            if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
                raise DatasetError(f"ignore_index must be a class id (int) or None, got {ignore_index!r}.")
            ignore_index = int(ignore_index)
            if not 0 <= ignore_index < n_classes:
                raise DatasetError(
                    f"ignore_index {ignore_index} is not a class id (0..{n_classes - 1}); "
                    "pass the id of the class to leave out, e.g. CamVid's Unlabelled (11), or None."
                )
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "palette", palette.astype(np.uint8))
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "group_names", group_names)
        object.__setattr__(self, "ignore_index", ignore_index)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Sample | SegmentationDataset:
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"sample {i} is out of range for a dataset of {len(self)} samples")
            i %= len(self)
            group = None if self.groups is None else int(self.groups[i])
            return Sample(i, self.images[i], self.masks[i], self.names[i], group)
        idx = np.arange(len(self))[key]
        return SegmentationDataset(
            images=self.images.view(idx) if isinstance(self.images, LazyArray) else self.images[idx],
            masks=self.masks.view(idx) if isinstance(self.masks, LazyArray) else self.masks[idx],
            names=tuple(self.names[i] for i in idx),
            class_names=self.class_names,
            palette=self.palette,
            groups=None if self.groups is None else self.groups[idx],
            group_names=self.group_names,
            ignore_index=self.ignore_index,
        )

    def __repr__(self) -> str:
        n_groups = 0 if self.groups is None else len(np.unique(self.groups))
        return (
            f"SegmentationDataset({len(self)} samples, {self.image_size[0]}x{self.image_size[1]}, "
            f"{self.n_classes} classes, {n_groups} groups)"
        )

    @property
    def is_lazy(self) -> bool:
        """Whether the images or masks are read on demand (:class:`~latent_widgets.data.lazy_array.LazyArray`)."""
        return isinstance(self.images, LazyArray) or isinstance(self.masks, LazyArray)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def iter_batches(self, batch_size: int = 64) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """``(rows, images, masks)`` for consecutive blocks of ``batch_size`` samples.

        The way to read a lazy dataset: one batch in memory at a time (the
        images and masks of a batch are read together, once). For an array
        dataset the batches are views of its arrays.

        Examples
        --------
        >>> from latent_widgets import synthetic_road_scenes
        >>> ds = synthetic_road_scenes(5, size=(16, 16), lazy=True)
        >>> [(rows.start, images.shape[0], masks.shape[0]) for rows, images, masks in ds.iter_batches(2)]
        [(0, 2, 2), (2, 2, 2), (4, 1, 1)]
        """
        for rows in iter_row_blocks(len(self), batch_size):
            yield rows, self.images[rows], self.masks[rows]

    def _scan_block(self) -> int:
        h, w = self.image_size
        return max(1, _LAZY_BLOCK_BYTES // max(h * w * 3 * 4, 1))

    def _row_class_counts(self) -> np.ndarray:
        """Pixel count of each class in each mask, ``(N, n_classes)`` int64, read block by block if lazy."""
        n = len(self)
        if not isinstance(self.masks, LazyArray):
            # The masks were range-checked in __post_init__, so the unchecked
            # per-row bincount that metrics.class_fractions wraps is enough.
            return row_bincount(self.masks.reshape(n, -1), self.n_classes)
        from tqdm.auto import tqdm

        counts = np.zeros((n, self.n_classes), np.int64)
        blocks = list(iter_row_blocks(n, self._scan_block()))
        for rows in tqdm(blocks, desc="reading masks", disable=len(blocks) < 2, leave=False):
            masks = self.masks[rows]  # checked against n_classes as it is read
            counts[rows] = row_bincount(masks.reshape(len(masks), -1), self.n_classes)
        return counts

    def class_pixel_counts(self) -> np.ndarray:
        """Pixel count of each class over all masks, shape ``(n_classes,)``."""
        if isinstance(self.masks, LazyArray):
            return self._row_class_counts().sum(axis=0)
        return np.bincount(self.masks.reshape(-1), minlength=self.n_classes)[: self.n_classes]

    def class_fractions(self) -> np.ndarray:
        """Per-sample pixel fraction of each class, shape ``(N, n_classes)``."""
        h, w = self.image_size
        return self._row_class_counts() / float(max(h * w if len(self) else 0, 1))

    def content_hash(self) -> str:
        """A hash of the images, masks and class names (a cache key).

        For a lazy dataset, a hash of its source's description (generator
        parameters; file names, sizes and modification times), the rows it
        shows and the class names: cheap, and it changes when the data does.
        """
        if not self.is_lazy:
            return content_hash(self.images, self.masks, self.class_names)
        sources: dict[int, str] = {}  # images and masks share a source: describe it (stat its files) once
        parts = []
        for arr in (self.images, self.masks):
            if isinstance(arr, LazyArray):
                src = sources.get(id(arr.source))
                if src is None:
                    src = sources[id(arr.source)] = arr.source.fingerprint()
                parts.append((arr.field, src, arr.rows))
            else:
                parts.append(arr)
        return content_hash("lazy", *parts, self.class_names)

    def summary(self) -> str:
        """A multi-line, human-readable description (what ``make demo`` prints)."""
        per_sample = self._row_class_counts()  # one pass over the masks, also for lazy data
        counts = per_sample.sum(axis=0)
        total = max(int(counts.sum()), 1)
        lines = [repr(self)]
        if self.groups is not None:
            ids, sizes = np.unique(self.groups, return_counts=True)
            label = lambda g: self.group_names[g] if self.group_names else str(g)  # noqa: E731
            lines.append("groups: " + ", ".join(f"{label(g)}={s}" for g, s in zip(ids, sizes, strict=False)))
        present = (per_sample > 0).sum(axis=0)
        lines.append(f"{'class':<12} {'pixels %':>9} {'samples':>8}")
        for c, name in enumerate(self.class_names):
            ignored = "  (ignore_index: not scored)" if c == self.ignore_index else ""
            lines.append(f"{name:<12} {100 * counts[c] / total:9.2f} {int(present[c]):8d}{ignored}")
        return "\n".join(lines)
