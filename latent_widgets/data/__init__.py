"""Segmentation datasets: one container type, its loaders and the dispatcher.

This module is the front door: it re-exports the container
(:mod:`latent_widgets.data.dataset`: :class:`SegmentationDataset`, :class:`Sample`,
:class:`DatasetError`), the folder reader (:mod:`latent_widgets.data.folders`:
:func:`load_folder`), CamVid (:mod:`latent_widgets.data.camvid`: :func:`load_camvid`,
:data:`CAMVID_CLASSES`, :data:`CAMVID_PALETTE`, :func:`camvid_sequence`) and
:func:`default_palette` (:mod:`latent_widgets.data.colors`), and defines
:func:`load_dataset`, which picks one of them, or the embedded synthetic
scenes (:func:`latent_widgets.data.synthetic.synthetic_road_scenes`), by name.

Examples
--------
>>> from latent_widgets.data import load_dataset, SegmentationDataset
>>> ds = load_dataset("synthetic", "test", size=(48, 64), n=16)
>>> isinstance(ds, SegmentationDataset), len(ds), ds.n_classes
(True, 4, 12)
"""

from __future__ import annotations

import os

from .camvid import CAMVID_CLASSES, CAMVID_PALETTE, camvid_sequence, load_camvid
from .colors import default_palette
from .dataset import DatasetError, Sample, SegmentationDataset
from .folders import load_folder
from .synthetic import synthetic_road_scenes

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


def load_dataset(
    source: str | os.PathLike[str] = "synthetic",
    split: str = "train",
    size: tuple[int, int] | None = (96, 128),
    *,
    n: int = 240,
    progress: bool = True,
    lazy: bool | None = None,
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
    progress : bool
        Show a progress bar while reading files.
    lazy : bool, optional
        Read or render samples on demand instead of holding them in memory;
        by default only when the arrays would exceed
        :data:`~latent_widgets.data.lazy_array.AUTO_LAZY_BYTES` (1 GiB).

    Examples
    --------
    >>> load_dataset("synthetic", "val", size=(48, 64), n=40).names[:1]
    ('drive00_frame000.png',)
    """
    if str(source) == "synthetic":
        seeds = {"train": 0, "val": 1, "test": 2}
        if split not in seeds:
            raise DatasetError(
                f"split {split!r} does not exist for the synthetic scenes; choose one of {sorted(seeds)}."
            )
        return synthetic_road_scenes(
            n if split == "train" else max(n // 4, 1), size=size or (96, 128), seed=seeds[split], lazy=lazy
        )
    return load_camvid(source, split, size=size, progress=progress, lazy=lazy)
