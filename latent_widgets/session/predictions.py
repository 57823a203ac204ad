"""The predicted masks a session knows so far, with each sample's mean IoU, and their disk cache.

The bulk job fills them in blocks, a view's request one sample at a time;
the colour fields read what is known while the rest is predicted. When the
session does not predict the whole dataset, the few samples a view asked
for are kept aside instead (the newest :data:`ASIDE` of them).

Examples
--------
>>> import numpy as np
>>> from latent_widgets import synthetic_road_scenes
>>> ds = synthetic_road_scenes(4, size=(16, 16), seed=0)
>>> known = PredictedMasks(ds)
>>> known.store(slice(0, 2), ds.masks[0:2])  # perfect predictions of the first two samples
>>> known.count, known.get(1) is not None, known.get(3) is None, known.mean_iou()[:2].tolist()
(2, True, True, [1.0, 1.0])
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.metrics import per_sample_mean_iou
from ..core.cache import load_arrays, save_arrays

__all__ = ["ASIDE", "PredictedMasks"]

#: Samples predicted one at a time kept aside when the whole dataset is not predicted.
ASIDE = 64


class PredictedMasks:
    """The predicted masks of ``dataset`` known so far; thread-safe.

    Parameters
    ----------
    dataset : SegmentationDataset
        Its true masks score each prediction (mean IoU over the classes).
    ignore_index : int, optional
        The class whose true pixels are not scored.

    Attributes
    ----------
    masks : ndarray (N, H, W) or None
        uint8 class ids when they fit (a quarter of int32's memory);
        allocated by the first :meth:`store` or :meth:`load`.
    done : ndarray of bool (N,) or None
        Which rows of ``masks`` are predicted.
    """

    def __init__(self, dataset: Any, ignore_index: int | None = None) -> None:
        self.dataset = dataset
        self.ignore_index = ignore_index
        self.masks: np.ndarray | None = None
        self.done: np.ndarray | None = None
        self._iou: np.ndarray | None = None
        self._aside: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()

    def _allocate(self) -> None:
        with self._lock:
            if self.masks is None:
                ds = self.dataset
                dtype = np.uint8 if ds.n_classes <= 256 else np.int32
                self.masks = np.zeros((len(ds), *ds.image_size), dtype)
                self.done = np.zeros(len(ds), bool)
                self._iou = np.full(len(ds), np.nan)

    def store(self, rows: slice, masks: np.ndarray) -> None:
        """Keep the predictions of the samples ``rows`` and score them against their true masks."""
        self._allocate()
        ds = self.dataset
        iou = per_sample_mean_iou(masks, ds.masks[rows], ds.n_classes, ignore_index=self.ignore_index)
        with self._lock:
            self.masks[rows] = masks  # type: ignore[index]
            self._iou[rows] = iou  # type: ignore[index]
            self.done[rows] = True  # type: ignore[index]

    def put_aside(self, index: int, mask: np.ndarray) -> None:
        """Keep one sample's prediction outside the dataset's buffer (no bulk prediction): the newest few."""
        if mask.dtype != np.uint8 and self.dataset.n_classes <= 256:
            mask = mask.astype(np.uint8)
        with self._lock:
            self._aside[int(index)] = mask
            self._aside.move_to_end(int(index))
            while len(self._aside) > ASIDE:
                self._aside.popitem(last=False)

    def get(self, index: int) -> np.ndarray | None:
        """Sample ``index``'s predicted mask if it is known, else None."""
        i = int(index)
        with self._lock:
            if self.done is not None and self.done[i]:
                return self.masks[i]  # type: ignore[index]
            return self._aside.get(i)

    @property
    def count(self) -> int:
        """How many samples' predictions are known (the buffer's and those kept aside)."""
        with self._lock:
            return (0 if self.done is None else int(self.done.sum())) + len(self._aside)

    @property
    def complete(self) -> bool:
        """Whether every sample of the dataset is predicted."""
        return self.done is not None and bool(self.done.all())

    def mean_iou(self) -> np.ndarray:
        """Each sample's mean IoU, NaN where it is not predicted yet (N,)."""
        with self._lock:
            if self._iou is None:
                return np.full(len(self.dataset), np.nan)
            return np.where(self.done, self._iou, np.nan)  # type: ignore[arg-type]

    def load(self, path: Path | None) -> bool:
        """Fill in every prediction from the disk cache at ``path``; whether it held them.

        Their scores are not computed here (the whole dataset at once):
        :meth:`store` each block again to score it.
        """
        hit = None if path is None else load_arrays(path)
        masks = None if hit is None else hit.get("masks")
        if masks is None or masks.shape != self.dataset.masks.shape:
            return False
        self._allocate()
        with self._lock:
            self.masks[...] = masks  # type: ignore[index]
            self.done[...] = True  # type: ignore[index]
        return True

    def save(self, path: Path | None) -> None:
        """Write the predictions to the disk cache at ``path`` (when there is one)."""
        if path is not None and self.masks is not None:
            save_arrays(path, {"masks": self.masks})
