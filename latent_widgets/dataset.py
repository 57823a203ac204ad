"""The dataset container: :class:`SegmentationDataset` and its :class:`Sample`.

Loaders build it (:mod:`latent_widgets.folders`, :mod:`latent_widgets.camvid`,
:mod:`latent_widgets.synthetic`); everything else reads it. It depends only on
the leaf modules :mod:`~latent_widgets.arrays`, :mod:`~latent_widgets.hashing`
and :mod:`~latent_widgets.colors`, so that any module may import it.

Examples
--------
>>> from latent_widgets.dataset import SegmentationDataset
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .arrays import row_bincount
from .colors import default_palette
from .hashing import content_hash

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


@dataclass(frozen=True, eq=False)
class SegmentationDataset:
    """Images, masks and metadata of a segmentation dataset.

    Parameters
    ----------
    images : ndarray, float32, shape (N, H, W, 3)
        RGB in 0..1.
    masks : ndarray, integer, shape (N, H, W)
        Class id per pixel, in ``0 .. len(class_names) - 1``.
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

    Notes
    -----
    Indexing with an int returns a :class:`Sample`; with a slice, a list of
    ints or a boolean mask it returns a new dataset with those samples.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(8, size=(48, 64), seed=0)
    >>> ds.images.shape, ds.masks.shape, ds[:4].names == ds.names[:4]
    ((8, 48, 64, 3), (8, 48, 64), True)
    """

    images: np.ndarray
    masks: np.ndarray
    names: tuple[str, ...]
    class_names: tuple[str, ...]
    palette: np.ndarray = field(default=None)  # type: ignore[assignment]
    groups: np.ndarray | None = None
    group_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        masks = np.asarray(self.masks)
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
            images = images.astype(np.float32)
        if not np.issubdtype(masks.dtype, np.integer):
            raise DatasetError(
                f"masks must hold integer class ids, got dtype {masks.dtype}; "
                "round and cast them (e.g. masks.astype(np.uint8))."
            )
        names = tuple(str(n) for n in self.names)
        if len(names) != len(images):
            raise DatasetError(f"got {len(names)} names for {len(images)} images.")
        class_names = tuple(str(c) for c in self.class_names)
        n_classes = len(class_names)
        if n_classes < 1:
            raise DatasetError("class_names is empty; give at least one class name.")
        if masks.size:
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
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "palette", palette.astype(np.uint8))
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "group_names", group_names)

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
            images=self.images[idx],
            masks=self.masks[idx],
            names=tuple(self.names[i] for i in idx),
            class_names=self.class_names,
            palette=self.palette,
            groups=None if self.groups is None else self.groups[idx],
            group_names=self.group_names,
        )

    def __repr__(self) -> str:
        n_groups = 0 if self.groups is None else len(np.unique(self.groups))
        return (
            f"SegmentationDataset({len(self)} samples, {self.image_size[0]}x{self.image_size[1]}, "
            f"{self.n_classes} classes, {n_groups} groups)"
        )

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def class_pixel_counts(self) -> np.ndarray:
        """Pixel count of each class over all masks, shape ``(n_classes,)``."""
        return np.bincount(self.masks.reshape(-1), minlength=self.n_classes)[: self.n_classes]

    def class_fractions(self) -> np.ndarray:
        """Per-sample pixel fraction of each class, shape ``(N, n_classes)``."""
        # The masks were range-checked in __post_init__, so the unchecked
        # per-row bincount that metrics.class_fractions wraps is enough.
        n = len(self.masks)
        per = max(self.masks[0].size if n else 0, 1)
        return row_bincount(self.masks.reshape(n, -1), self.n_classes) / float(per)

    def content_hash(self) -> str:
        """A hash of the images, masks and class names (a cache key)."""
        return content_hash(self.images, self.masks, self.class_names)

    def summary(self) -> str:
        """A multi-line, human-readable description (what ``make demo`` prints)."""
        counts = self.class_pixel_counts()
        total = max(int(counts.sum()), 1)
        lines = [repr(self)]
        if self.groups is not None:
            ids, sizes = np.unique(self.groups, return_counts=True)
            label = lambda g: self.group_names[g] if self.group_names else str(g)  # noqa: E731
            lines.append("groups: " + ", ".join(f"{label(g)}={s}" for g, s in zip(ids, sizes, strict=False)))
        present = (self.class_fractions() > 0).sum(axis=0)
        lines.append(f"{'class':<12} {'pixels %':>9} {'samples':>8}")
        for c, name in enumerate(self.class_names):
            lines.append(f"{name:<12} {100 * counts[c] / total:9.2f} {int(present[c]):8d}")
        return "\n".join(lines)
