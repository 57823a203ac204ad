"""Read a segmentation dataset from a folder of images and a folder of masks.

Images and masks are paired by file stem; PIL reads them (imported when a
file is read, so that importing this module stays cheap). Large folders are
read lazily: the files are listed and paired at once, and read (and resized)
batch by batch when the dataset's rows are indexed.

Examples
--------
>>> from latent_widgets.data.folders import load_folder
>>> ds = load_folder("camvid/train", "camvid/trainannot")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset import DatasetError, SegmentationDataset
from .lazy_array import LazyArray, SampleSource, resolve_lazy

__all__ = ["IMAGE_SUFFIXES", "load_folder"]

#: File suffixes read as images or masks (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _list_images(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }


# The end of a whole file of each format: PNG's IEND chunk, JPEG's end-of-image marker (looked for
# near the end: some cameras append data after it).
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_TAIL_BYTES = 1 << 16


def _require_whole_file(path: Path, fmt: str | None, what: str) -> None:
    """Refuse a PNG, JPEG or BMP file cut short (a partial copy, a full disk).

    PIL refuses them itself unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    is set (a global some training scripts set): it then fills the missing
    rows with zeros, which a mask reads as class 0. So when it is set the
    file's end is checked here.
    """
    from PIL import ImageFile

    if not ImageFile.LOAD_TRUNCATED_IMAGES or fmt not in ("PNG", "JPEG", "BMP"):
        return
    with open(path, "rb") as fh:
        head = fh.read(6)
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _TAIL_BYTES))
        tail = fh.read()
    whole = {
        "PNG": tail.endswith(_PNG_END),
        "JPEG": _JPEG_END in tail,
        "BMP": size >= int.from_bytes(head[2:6], "little"),  # the header records the file's size
    }[fmt]
    if not whole:
        raise DatasetError(
            f"{what} {path} is truncated (it does not end as a {fmt} file does); with "
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES=True it would read with its missing part filled with zeros. "
            "Replace or delete the file."
        )


def _read_rgb(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            _require_whole_file(path, im.format, "image")
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
            _require_whole_file(path, im.format, "mask")
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


def _class_range_error(mask_path: str | Path, value: int, n_classes: int) -> DatasetError:
    return DatasetError(
        f"mask {mask_path} holds class id {value} but only {n_classes} classes are known "
        f"(ids 0..{n_classes - 1}); pass the full class_names or fix the mask."
    )


def _mask_dtype(n_classes: int) -> type:
    return np.uint8 if n_classes <= 256 else np.int32


def _stat_line(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}\tmissing"
    return f"{path}\t{st.st_size}\t{st.st_mtime_ns}"


class _FolderPairs(SampleSource):
    """Reads image / mask file pairs on demand (the source of a lazy :func:`load_folder`)."""

    def __init__(
        self,
        image_paths: Sequence[str],
        mask_paths: Sequence[str],
        image_size: tuple[int, int],
        resize: tuple[int, int] | None,
        n_classes: int,
    ) -> None:
        super().__init__(len(image_paths), image_size, _mask_dtype(n_classes))
        self.image_paths = [str(p) for p in image_paths]
        self.mask_paths = [str(p) for p in mask_paths]
        self.resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self.n_classes = int(n_classes)

    def _mask(self, i: int) -> np.ndarray:
        msk = _read_mask(Path(self.mask_paths[i]), self.resize)
        if msk.shape != self.image_size:
            h, w = self.image_size
            raise DatasetError(
                f"mask {self.mask_paths[i]} is {msk.shape[1]}x{msk.shape[0]} but the samples are {w}x{h}; "
                "they must have the same size (or pass size=(H, W) to resize all samples)."
            )
        if msk.size and (int(msk.max()) >= self.n_classes or int(msk.min()) < 0):
            bad = int(msk.max()) if int(msk.max()) >= self.n_classes else int(msk.min())
            raise _class_range_error(self.mask_paths[i], bad, self.n_classes)
        return msk.astype(self.mask_dtype, copy=False)

    def read_pairs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.image_size
        images = np.empty((len(indices), h, w, 3), np.float32)
        masks = np.empty((len(indices), h, w), self.mask_dtype)
        for k, i in enumerate(np.asarray(indices).tolist()):
            img = _read_rgb(Path(self.image_paths[i]), self.resize)
            if img.shape[:2] != (h, w):
                raise DatasetError(
                    f"image {self.image_paths[i]} is {img.shape[1]}x{img.shape[0]} but "
                    f"{Path(self.image_paths[0]).name} is {w}x{h}; pass size=(H, W) to resize all samples."
                )
            masks[k] = self._mask(i)
            # As the eager reader: uint8 to float32, then one multiply (identical values).
            images[k] = img.astype(np.float32)
            images[k] *= np.float32(1 / 255)
        return images, masks

    def read_masks(self, indices: np.ndarray) -> np.ndarray:
        h, w = self.image_size
        masks = np.empty((len(indices), h, w), self.mask_dtype)
        for k, i in enumerate(np.asarray(indices).tolist()):
            masks[k] = self._mask(i)
        return masks

    def describe(self) -> dict[str, object]:
        # Stat now, not at construction: a file replaced since then changes the hash.
        files = "\n".join(_stat_line(p) for pair in zip(self.image_paths, self.mask_paths, strict=True) for p in pair)
        return {"resize": self.resize, "n_classes": self.n_classes, "files": files}

    def sample_label(self, index: int) -> str:
        return f"mask {self.mask_paths[index]}"


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header (no pixel is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(
            f"cannot read image {path}: {exc}. Replace or delete the file (it is not a readable image)."
        ) from exc


def load_folder(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    *,
    size: tuple[int, int] | None = None,
    palette: np.ndarray | None = None,
    group_fn: callable | None = None,  # type: ignore[valid-type]
    progress: bool = True,
    lazy: bool | None = None,
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
    lazy : bool, optional
        List and pair the files now but read them (and resize them) only when
        the dataset's rows are indexed, batch by batch. By default lazy when
        the eager arrays (float32 images and uint8 masks, after resizing;
        the size of the first image if ``size`` is not given) would exceed
        :data:`~latent_widgets.data.lazy_array.AUTO_LAZY_BYTES` (1 GiB).
        Without ``class_names`` a lazy load reads every mask once, to find
        the largest class id.

    Raises
    ------
    DatasetError
        Missing or empty folder, an image without a mask or the reverse, an
        unreadable file, an image and mask of different sizes, a mask value
        outside the classes. A lazy load finds the first two kinds at once
        and the others when the file is read.

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
        raise DatasetError(f"images folder {images_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
    if not masks:
        raise DatasetError(f"masks folder {masks_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
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
    groups = group_names = None
    if group_fn is not None:
        keys = [group_fn(n) for n in names]
        order = list(dict.fromkeys(keys))
        index_of = {k: g for g, k in enumerate(order)}
        groups = np.array([index_of[k] for k in keys], dtype=np.int64)
        group_names = tuple(map(str, order))
    image_paths = [images[n] for n in names]
    mask_paths = [mask_by_stem[Path(n).stem] for n in names]
    image_size = size if size is not None else _image_size(image_paths[0])
    if resolve_lazy(lazy, len(names), image_size):
        return _lazy_folder(
            image_paths, mask_paths, names, class_names, size, image_size, palette, groups, group_names, progress
        )

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
        raise _class_range_error(mask_by_stem[Path(names[i]).stem], int(mask_arr[i].max()), n_classes)
    # Converting after the loop keeps the uint8 copies small while reading.
    image_arr = np.stack(imgs).astype(np.float32)
    image_arr *= np.float32(1 / 255)
    return SegmentationDataset(
        images=image_arr,
        masks=mask_arr.astype(_mask_dtype(n_classes)),
        names=tuple(names),
        class_names=tuple(class_names),
        palette=palette,
        groups=groups,
        group_names=group_names,
    )


def _lazy_folder(
    image_paths: list[Path],
    mask_paths: list[Path],
    names: list[str],
    class_names: Sequence[str] | None,
    size: tuple[int, int] | None,
    image_size: tuple[int, int],
    palette: np.ndarray | None,
    groups: np.ndarray | None,
    group_names: tuple[str, ...] | None,
    progress: bool,
) -> SegmentationDataset:
    """The dataset of :func:`load_folder` with lazy images and masks."""
    if class_names is None:
        from tqdm.auto import tqdm

        # The classes are named after the largest id: it takes one pass over the masks (not the images).
        largest = 0
        bar = tqdm(mask_paths, desc="scanning masks", disable=not progress or len(mask_paths) < 50, leave=False)
        for path in bar:
            msk = _read_mask(path, size)
            largest = max(largest, int(msk.max()) if msk.size else 0)
        class_names = tuple(f"class_{i}" for i in range(largest + 1))
    source = _FolderPairs(image_paths, mask_paths, image_size, size, len(class_names))
    return SegmentationDataset(
        images=LazyArray(source, "images"),
        masks=LazyArray(source, "masks"),
        names=tuple(names),
        class_names=tuple(class_names),
        palette=palette,
        groups=groups,
        group_names=group_names,
    )
