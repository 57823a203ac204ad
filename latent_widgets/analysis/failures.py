"""Where a model fails: the confusion, IoU and worst samples of any selection of samples.

A selection is a set of sample indices (a lasso on the map, a group, a
sequence). :func:`selection_report` pools the pixel confusion matrix of the
selected samples, scores every class and every sample by IoU, and ranks the
samples from worst to best, in a :class:`SelectionReport`.
:func:`per_class_sample_iou` gives one class's IoU for every sample (a colour
field of the map).

Masks are read a block of samples at a time (``truth[rows]``, ``pred[rows]``),
so ``truth`` and ``pred`` may be numpy arrays, lazy arrays
(:class:`~latent_widgets.data.lazy_array.LazyArray`, a lazy dataset's ``masks``),
Zarr arrays or anything whose rows index to arrays: only the selected samples
are read, never the whole array. Pixels are counted with the primitives of
:mod:`latent_widgets.analysis.metrics`, so the figures are those of
:func:`~latent_widgets.analysis.metrics.confusion_matrix` and
:func:`~latent_widgets.analysis.metrics.per_sample_mean_iou`.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.failures import selection_report
>>> truth = np.array([[[0, 0], [1, 1]], [[1, 1], [1, 1]], [[0, 1], [0, 1]]])
>>> pred = np.array([[[0, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1], [1, 1]]])
>>> r = selection_report(truth, pred, [0, 2], 2, class_names=("road", "car"))
>>> r.confusion.tolist()
[[1, 3], [0, 4]]
>>> r.worst.tolist(), r.sample_iou.round(3).tolist()
([2, 0], [0.583, 0.25])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.arrays import iter_row_blocks, quiet_nanmean, row_bincount
from .metrics import CHUNK_PIXELS, check_class_range, class_ids, iou_from_confusion

__all__ = ["SelectionReport", "per_class_sample_iou", "selection_report"]


@dataclass(frozen=True, eq=False)
class SelectionReport:
    """The failures of a selection of samples: pooled confusion, IoU, worst samples.

    Built by :func:`selection_report`; its arrays are read-only.

    Attributes
    ----------
    indices : ndarray, int64, shape (K,)
        The selected samples, sorted, unique.
    confusion : ndarray, int64, shape (C, C)
        Pixel counts over the selected samples, rows = true class, columns =
        predicted class (ignored pixels left out).
    class_names : tuple of str
    iou : ndarray, float64, shape (C,)
        IoU of each class over the pooled pixels; NaN where a class is absent
        from truth and prediction (and for ``ignore_index``).
    mean_iou : float
        NaN-mean of ``iou``: the selection's mean IoU, pooled over its pixels.
    mean_iou_all : float
        The same figure for the whole set (from ``reference``), NaN if unknown.
    sample_iou : ndarray, float64, shape (K,)
        Mean IoU of each selected sample (aligned with ``indices``), NaN for
        a sample with no scored pixel.
    worst : ndarray, int64, shape (K,)
        The selected samples from worst to best ``sample_iou`` (ties in index
        order, NaN samples last).
    ignore_index : int or None
        The label whose pixels were left out (its row of ``confusion`` is
        empty when it is a class id).

    Examples
    --------
    >>> truth = np.array([[[0, 1]], [[1, 1]]])
    >>> r = selection_report(truth, np.ones_like(truth), [0, 1], 2)
    >>> r.normalized().tolist(), r.iou.tolist(), r.mean_iou
    ([[0.0, 1.0], [0.0, 1.0]], [0.0, 0.75], 0.375)
    """

    indices: np.ndarray
    confusion: np.ndarray
    class_names: tuple[str, ...]
    iou: np.ndarray
    mean_iou: float
    mean_iou_all: float
    sample_iou: np.ndarray
    worst: np.ndarray
    ignore_index: int | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return len(self.class_names)

    def normalized(self) -> np.ndarray:
        """The confusion matrix with each row divided by its sum (the recall of each true class).

        Returns
        -------
        ndarray, float64, shape (C, C)
            Rows of classes absent from the selection's truth are NaN.

        Examples
        --------
        >>> r = selection_report(np.array([[[0, 0, 0, 1]]]), np.array([[[0, 0, 1, 1]]]), [0], 3)
        >>> r.normalized().round(3).tolist()
        [[0.667, 0.333, 0.0], [0.0, 1.0, 0.0], [nan, nan, nan]]
        """
        sums = self.confusion.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sums > 0, self.confusion / np.where(sums > 0, sums, 1.0), np.nan)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain Python values (JSON-ready: NaN becomes ``None``).

        Examples
        --------
        >>> import json
        >>> r = selection_report(np.array([[[0, 1]], [[2, 2]]]), np.array([[[0, 0]], [[2, 2]]]), [0], 3)
        >>> d = r.to_dict()
        >>> d["confusion"], d["iou"], d["mean_iou_all"]
        ([[1, 0, 0], [1, 0, 0], [0, 0, 0]], [0.5, 0.0, None], None)
        >>> json.loads(json.dumps(d, allow_nan=False)) == d
        True
        """

        def num(v: Any) -> float | None:
            v = float(v)
            return None if math.isnan(v) else v

        return {
            "indices": self.indices.tolist(),
            "confusion": self.confusion.tolist(),
            "class_names": list(self.class_names),
            "iou": [num(v) for v in self.iou],
            "mean_iou": num(self.mean_iou),
            "mean_iou_all": num(self.mean_iou_all),
            "sample_iou": [num(v) for v in self.sample_iou],
            "worst": self.worst.tolist(),
        }


# ----------------------------------------------------------------------------- reading


def _shape_of(x: Any, name: str) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    if shape is None:
        x = np.asarray(x)
        shape = x.shape
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be masks of shape (N, H, W), got shape {shape}; "
            "take probs.argmax(-1) of class probabilities (N, H, W, C) first."
        )
    return shape


def _check_pair(truth: Any, pred: Any, *, selected: int | None = None) -> tuple[Any, Any, tuple[int, ...]]:
    """Both masks as row-indexable arrays, and the shape of ``truth``.

    With ``selected`` (the size of a selection), ``pred`` may hold just the
    selected samples instead of all of them.
    """
    # Plain sequences become arrays; array-likes with a shape (lazy, Zarr) are kept to be read by rows.
    truth = truth if hasattr(truth, "shape") else np.asarray(truth)
    pred = pred if hasattr(pred, "shape") else np.asarray(pred)
    ts, ps = _shape_of(truth, "truth"), _shape_of(pred, "pred")
    if ts[1:] != ps[1:] or ps[0] not in (ts[0], ts[0] if selected is None else selected):
        also = "" if selected is None else f", or the {selected} selected samples only"
        raise ValueError(
            f"truth and pred must be masks of the same samples, got shapes {ts} and {ps}; "
            f"pred must hold all {ts[0]} samples{also}, predicted at the masks' resolution {ts[1:]}."
        )
    for arr, name in ((truth, "truth"), (pred, "pred")):
        dtype = getattr(arr, "dtype", None)
        if dtype is not None:
            class_ids(np.empty(0, dtype), name)  # its clear message for float (probability) input
    return truth, pred, ts


def _read_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """``x[rows]`` for sorted ``rows``, as a slice when they are contiguous (one read of a chunked store)."""
    if len(rows) and int(rows[-1]) - int(rows[0]) == len(rows) - 1:
        return np.asarray(x[int(rows[0]) : int(rows[-1]) + 1])
    return np.asarray(x[rows])


def _blocks(
    truth: Any, pred: Any, rows: np.ndarray, pixels: int, pred_rows: np.ndarray | None = None
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Blocks of ``rows`` with their truth and pred masks flattened to ``(B, pixels)``.

    ``pred`` is read at ``pred_rows`` (default ``rows``): the positions of the
    same samples in a pred that holds only some of them.
    """
    pred_rows = rows if pred_rows is None else pred_rows
    for b in iter_row_blocks(len(rows), CHUNK_PIXELS // max(pixels, 1)):
        r = rows[b]
        t = class_ids(_read_rows(truth, r), "truth").reshape(len(r), -1)
        p = class_ids(_read_rows(pred, pred_rows[b]), "pred").reshape(len(r), -1)
        yield b, t, p


def _as_indices(indices: Any, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.dtype == np.bool_:
        if idx.shape != (n,):
            raise ValueError(f"a boolean selection must have one entry per sample ({n}), got shape {idx.shape}")
        idx = np.flatnonzero(idx)
    if idx.size == 0:
        raise ValueError("the selection is empty; select at least one sample (a lasso on the map, or indices)")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be sample numbers (integers) or a boolean mask, got dtype {idx.dtype}")
    idx = np.unique(idx.reshape(-1).astype(np.int64))
    if idx[0] < 0 or idx[-1] >= n:
        bad = int(idx[0]) if idx[0] < 0 else int(idx[-1])
        raise ValueError(f"index {bad} is out of range: the masks hold {n} samples (indices 0..{n - 1})")
    return idx


def _check_n_classes(n_classes: int) -> int:
    c = int(n_classes)
    if c < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    return c


def _reference_mean_iou(reference: Any, n_classes: int, ignore_index: int | None) -> float:
    if isinstance(reference, SelectionReport):
        if reference.n_classes != n_classes:
            raise ValueError(
                f"the reference report has {reference.n_classes} classes but n_classes={n_classes}; "
                "pass the report of the whole set made with the same classes."
            )
        return float(reference.mean_iou)
    cm = np.asarray(reference)
    if cm.shape != (n_classes, n_classes):
        raise ValueError(
            f"reference must be a SelectionReport or a ({n_classes}, {n_classes}) confusion matrix of the whole set, "
            f"got shape {cm.shape}"
        )
    iou = iou_from_confusion(cm)
    if ignore_index is not None and 0 <= ignore_index < n_classes:
        iou[ignore_index] = np.nan
    return float(quiet_nanmean(iou))


# ----------------------------------------------------------------------------- reports


def selection_report(
    truth: Any,
    pred: Any,
    indices: Sequence[int] | np.ndarray,
    n_classes: int,
    *,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    reference: SelectionReport | np.ndarray | None = None,
) -> SelectionReport:
    """Pooled confusion, IoU per class and per sample, and worst samples of a selection.

    Reads ``truth[rows]`` and ``pred[rows]`` for blocks of the selected rows
    only (about 4 M pixels per block), counting each sample's confusion in
    one :func:`numpy.bincount`.

    Parameters
    ----------
    truth, pred : array-like of int, shape (N, H, W)
        True and predicted masks: numpy arrays, lazy arrays (a lazy dataset's
        ``masks``), Zarr arrays, anything row-indexable with a ``shape``.
        ``pred`` may instead hold only the selected samples, shape
        ``(K, H, W)`` in the order of the sorted selection (what predicting
        just the selection gives).
    indices : sequence of int or boolean mask of length N
        The selected samples (any order; duplicates count once).
    n_classes : int
    class_names : sequence of str, optional
        One per class; default ``"0"``, ``"1"``, ...
    ignore_index : int, optional
        Pixels whose true class is this id are left out, and that class's
        IoU is NaN (CamVid: 11, "Unlabelled").
    reference : SelectionReport or ndarray (C, C), optional
        The report (or confusion matrix) of the whole set, for
        ``mean_iou_all``; without it ``mean_iou_all`` is NaN, unless the
        selection is every sample. Compute it once
        (``selection_report(truth, pred, np.arange(N), C)``) and pass it to
        every later call.

    Returns
    -------
    SelectionReport

    Raises
    ------
    ValueError
        For an empty selection, an index out of range, masks of different
        shapes or not (N, H, W), float masks, or class ids outside
        ``0 .. n_classes - 1`` (other than ``ignore_index`` in ``truth``).

    Examples
    --------
    >>> truth = np.array([[[0, 0], [1, 2]], [[2, 2], [2, 2]]])
    >>> pred = np.array([[[0, 1], [1, 2]], [[2, 2], [2, 0]]])
    >>> everything = selection_report(truth, pred, [0, 1], 3)
    >>> r = selection_report(truth, pred, [1], 3, class_names=("road", "car", "sky"), reference=everything)
    >>> r.confusion.tolist(), r.iou.round(3).tolist()
    ([[0, 0, 0], [0, 0, 0], [1, 0, 3]], [0.0, nan, 0.75])
    >>> round(r.mean_iou, 3), round(r.mean_iou_all, 3)
    (0.375, 0.544)
    """
    c = _check_n_classes(n_classes)
    names = tuple(str(i) for i in range(c)) if class_names is None else tuple(str(s) for s in class_names)
    if len(names) != c:
        raise ValueError(f"got {len(names)} class names for n_classes={c}; pass one name per class")
    truth = truth if hasattr(truth, "shape") else np.asarray(truth)
    idx = _as_indices(indices, _shape_of(truth, "truth")[0])
    truth, pred, shape = _check_pair(truth, pred, selected=len(idx))
    pixels = shape[1] * shape[2]
    # A pred of the selected samples only holds them in the order of the sorted selection.
    pred_rows = np.arange(len(idx)) if int(np.shape(pred)[0]) != shape[0] else None
    c2 = c * c
    # An ignore_index that is a class id (not e.g. 255) gets a NaN IoU, as in metrics.iou_per_class.
    nan_class = ignore_index is not None and 0 <= ignore_index < c
    confusion = np.zeros((c, c), np.int64)
    sample_mean = np.empty(len(idx), np.float64)
    for b, t, p in _blocks(truth, pred, idx, pixels, pred_rows):
        check_class_range(p, c, "pred")
        code = t.astype(np.int64) * c + p
        if ignore_index is not None:
            drop = t == ignore_index
            check_class_range(t[~drop], c, "truth")
            # One extra bin collects the ignored pixels, so a block is one bincount whatever ignore_index is.
            code[drop] = c2
        else:
            check_class_range(t, c, "truth")
        # Per-sample matrices live one block at a time: memory stays O(K), not O(K C^2).
        cms = row_bincount(code, c2 + 1, block_items=CHUNK_PIXELS)[:, :c2].reshape(len(code), c, c)
        confusion += cms.sum(axis=0)
        sample_iou = iou_from_confusion(cms)
        if nan_class:
            sample_iou[:, ignore_index] = np.nan
        sample_mean[b] = quiet_nanmean(sample_iou, axis=1)
    iou = iou_from_confusion(confusion)
    if nan_class:
        iou[ignore_index] = np.nan
    mean = float(quiet_nanmean(iou))
    if reference is not None:
        mean_all = _reference_mean_iou(reference, c, ignore_index)
    elif len(idx) == shape[0]:
        mean_all = mean
    else:
        mean_all = float("nan")
    # argsort puts NaN last; stable keeps equal scores in index order.
    worst = idx[np.argsort(sample_mean, kind="stable")]
    for arr in (idx, confusion, iou, sample_mean, worst):
        arr.setflags(write=False)
    return SelectionReport(
        indices=idx,
        confusion=confusion,
        class_names=names,
        iou=iou,
        mean_iou=mean,
        mean_iou_all=mean_all,
        sample_iou=sample_mean,
        worst=worst,
        ignore_index=None if ignore_index is None else int(ignore_index),
    )


def per_class_sample_iou(
    truth: Any, pred: Any, n_classes: int, cls: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """One class's IoU in every sample: a colour field ("IoU: car") of the map.

    Parameters
    ----------
    truth, pred : array-like of int, shape (N, H, W)
        As in :func:`selection_report`; read a block of samples at a time.
    n_classes : int
    cls : int
        The class, ``0 .. n_classes - 1``.
    ignore_index : int, optional
        Pixels whose true class is this id are left out.

    Returns
    -------
    ndarray, float64, shape (N,)
        NaN where the class is absent from both masks of a sample.

    Examples
    --------
    >>> truth = np.array([[[0, 1], [1, 1]], [[0, 0], [0, 0]], [[1, 1], [0, 0]]])
    >>> pred = np.array([[[1, 1], [1, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
    >>> per_class_sample_iou(truth, pred, 2, 1).tolist()
    [0.5, nan, 0.0]
    """
    c = _check_n_classes(n_classes)
    cls = int(cls)
    if not 0 <= cls < c:
        raise ValueError(f"cls must be a class id in 0..{c - 1}, got {cls}")
    if cls == ignore_index:
        raise ValueError(f"class {cls} is the ignore_index: its pixels are left out, so it has no IoU")
    truth, pred, shape = _check_pair(truth, pred)
    inter = np.zeros(shape[0], np.int64)
    union = np.zeros(shape[0], np.int64)
    for b, t, p in _blocks(truth, pred, np.arange(shape[0]), shape[1] * shape[2]):
        check_class_range(p, c, "pred")
        if ignore_index is not None:
            keep = t != ignore_index
            check_class_range(t[keep], c, "truth")
        else:
            keep = True
            check_class_range(t, c, "truth")
        in_t, in_p = (t == cls) & keep, (p == cls) & keep
        inter[b] = (in_t & in_p).sum(axis=1)
        union[b] = (in_t | in_p).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
