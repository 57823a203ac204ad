"""Segmentation metrics and the figures of an interpolation path.

Everything works on plain numpy arrays of integer masks ``(N, H, W)`` or
class probabilities ``(N, H, W, C)``, so it serves the widgets, notebooks
and scripts alike:

- per mask: :func:`class_fractions`, :func:`iou_per_class`,
  :func:`mean_iou`, :func:`pixel_accuracy`, :func:`confusion_matrix`,
  :func:`per_sample_iou`, :func:`per_sample_mean_iou`;
- along a path of decoded steps: :func:`consecutive_iou` (smoothness),
  :func:`entropy` (how undecided the decoder is) and :func:`path_metrics`,
  which bundles them with each step's distance to its nearest real latent.

Masks are counted with :func:`numpy.bincount` over chunks of samples, so a
large batch never needs an ``int64`` copy of all its pixels at once.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.metrics import iou_per_class, mean_iou
>>> true = np.array([[0, 0], [1, 1]])
>>> pred = np.array([[0, 1], [1, 1]])
>>> iou_per_class(pred, true, 3).round(3).tolist()
[0.5, 0.667, nan]
>>> round(mean_iou(pred, true, 3), 4)
0.5833
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.arrays import iter_row_blocks, quiet_nanmean, row_bincount

if TYPE_CHECKING:  # pragma: no cover
    from .neighbors import LatentIndex

__all__ = [
    "CHUNK_PIXELS",
    "PathMetrics",
    "check_class_range",
    "class_fractions",
    "class_ids",
    "confusion_matrix",
    "consecutive_iou",
    "entropy",
    "iou_from_confusion",
    "iou_per_class",
    "mean_iou",
    "path_metrics",
    "per_sample_iou",
    "per_sample_mean_iou",
    "pixel_accuracy",
]

#: Pixels handled per bincount call: bounds the int64 temporaries (~32 MB).
CHUNK_PIXELS: int = 1 << 22


def class_ids(x: Any, name: str) -> np.ndarray:
    """``x`` as an array of integer class ids, or a clear error for anything else (class probabilities).

    Examples
    --------
    >>> class_ids([[0, 2]], "masks").tolist()
    [[0, 2]]
    >>> class_ids(np.array([True, False]), "masks").dtype  # booleans are the ids 0 and 1
    dtype('bool')
    """
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(
            f"{name} must hold integer class ids, got dtype {arr.dtype}; "
            "take probs.argmax(-1) of class probabilities first."
        )
    return arr


def check_class_range(arr: np.ndarray, n_classes: int, name: str) -> None:
    """Raise a ValueError naming ``n_classes`` when a class id of ``arr`` is outside ``0 .. n_classes - 1``.

    Examples
    --------
    >>> check_class_range(np.array([0, 2]), 3, "true")  # ids 0..2: nothing to say
    >>> check_class_range(np.array([], np.int64), 3, "true")  # nor for no pixels
    """
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(
                f"{name} has class ids in [{lo}, {hi}] but n_classes={n_classes} "
                f"(ids 0..{n_classes - 1}); pass the right n_classes."
            )


def class_fractions(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel fraction of each class in each mask.

    Parameters
    ----------
    masks : ndarray of int, shape (N, H, W) or (H, W)
    n_classes : int

    Returns
    -------
    ndarray, float64, shape (N, n_classes), or (n_classes,) for one mask
        Each row sums to 1.

    Examples
    --------
    >>> class_fractions(np.array([[[0, 1], [1, 1]]]), 3).tolist()
    [[0.25, 0.75, 0.0]]
    """
    m = class_ids(masks, "masks")
    single = m.ndim == 2
    if single:
        m = m[None]
    if m.ndim < 2:
        raise ValueError(f"masks must have shape (N, H, W) or (H, W), got {m.shape}")
    check_class_range(m, n_classes, "masks")
    n = len(m)
    flat = m.reshape(n, -1)
    per = max(flat.shape[1], 1)
    counts = row_bincount(flat, n_classes, block_items=CHUNK_PIXELS)
    out = counts / float(per)
    return out[0] if single else out


def confusion_matrix(
    pred: np.ndarray, true: np.ndarray, n_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """Pixel confusion matrix, rows = true class, columns = predicted class.

    Parameters
    ----------
    pred, true : ndarray of int, same shape (any)
    n_classes : int
    ignore_index : int, optional
        Pixels whose *true* class is this id are left out (CamVid: 11).

    Returns
    -------
    ndarray, int64, shape (n_classes, n_classes)

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1, 1], [0, 1]]
    """
    p, t = class_ids(pred, "pred"), class_ids(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same shape, got {p.shape} and {t.shape}")
    p, t = p.reshape(-1), t.reshape(-1)
    check_class_range(p, n_classes, "pred")
    if ignore_index is None:
        check_class_range(t, n_classes, "true")
    cm = np.zeros(n_classes * n_classes, np.int64)
    for block in iter_row_blocks(p.size, CHUNK_PIXELS):
        pb, tb = p[block], t[block]
        if ignore_index is not None:
            keep = tb != ignore_index
            pb, tb = pb[keep], tb[keep]
            check_class_range(tb, n_classes, "true")
        cm += np.bincount(tb.astype(np.int64) * n_classes + pb, minlength=n_classes * n_classes)
    return cm.reshape(n_classes, n_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """IoU of each class from confusion matrices ``(..., C, C)``, rows true, columns predicted; NaN for an absent class.

    Examples
    --------
    >>> iou_from_confusion(np.array([[1, 1], [0, 2]])).round(3).tolist()
    [0.5, 0.667]
    """
    inter = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    union = cm.sum(-1) + cm.sum(-2) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def iou_per_class(pred: np.ndarray, true: np.ndarray, n_classes: int, *, ignore_index: int | None = None) -> np.ndarray:
    """Intersection over union of each class, over all pixels given.

    ``pred`` and ``true`` may be one mask or a batch: a batch is scored as
    one big image (the dataset-level IoU), not as a mean of per-image IoUs
    (that is :func:`per_sample_iou`).

    Parameters
    ----------
    pred, true : ndarray of int, same shape
    n_classes : int
    ignore_index : int, optional
        Pixels whose true class is this id are left out, and that class's
        IoU is NaN.

    Returns
    -------
    ndarray, float64, shape (n_classes,)
        NaN for a class absent from both ``pred`` and ``true``.

    Examples
    --------
    >>> iou_per_class(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]), 3).round(3).tolist()
    [0.5, 0.667, nan]
    """
    iou = iou_from_confusion(confusion_matrix(pred, true, n_classes, ignore_index=ignore_index))
    if ignore_index is not None and 0 <= ignore_index < n_classes:
        iou[ignore_index] = np.nan
    return iou


def mean_iou(pred: np.ndarray, true: np.ndarray, n_classes: int, *, ignore_index: int | None = None) -> float:
    """Mean of :func:`iou_per_class` over the classes present (NaNs skipped).

    Examples
    --------
    >>> mean_iou(np.zeros((2, 2), int), np.zeros((2, 2), int), 4)
    1.0
    """
    return float(quiet_nanmean(iou_per_class(pred, true, n_classes, ignore_index=ignore_index)))


def pixel_accuracy(pred: np.ndarray, true: np.ndarray, *, ignore_index: int | None = None) -> float:
    """Fraction of pixels whose predicted class equals the true class.

    Examples
    --------
    >>> pixel_accuracy(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    0.75
    """
    p, t = class_ids(pred, "pred"), class_ids(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same shape, got {p.shape} and {t.shape}")
    if ignore_index is not None:
        keep = t != ignore_index
        n = int(keep.sum())
        return float(((p == t) & keep).sum() / n) if n else float("nan")
    return float((p == t).mean()) if p.size else float("nan")


def per_sample_iou(
    pred: np.ndarray, true: np.ndarray, n_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """IoU of each class in each sample, shape ``(N, n_classes)``.

    Parameters
    ----------
    pred, true : ndarray of int, shape (N, H, W)

    Returns
    -------
    ndarray, float64, shape (N, n_classes)
        NaN where a class is absent from both masks of a sample.

    Examples
    --------
    >>> t = np.array([[[0, 0], [1, 1]], [[1, 1], [1, 1]]])
    >>> p = np.array([[[0, 1], [1, 1]], [[1, 1], [1, 1]]])
    >>> per_sample_iou(p, t, 2).round(3).tolist()
    [[0.5, 0.667], [nan, 1.0]]
    """
    p, t = class_ids(pred, "pred"), class_ids(true, "true")
    if p.shape != t.shape or p.ndim < 2:
        raise ValueError(f"pred and true must both have shape (N, H, W), got {p.shape} and {t.shape}")
    n = len(p)
    p, t = p.reshape(n, -1), t.reshape(n, -1)
    check_class_range(p, n_classes, "pred")
    if ignore_index is None:
        check_class_range(t, n_classes, "true")
    c2 = n_classes * n_classes
    cm = np.zeros((n, c2), np.int64)
    for rows in iter_row_blocks(n, CHUNK_PIXELS // max(p.shape[1], 1)):
        pb, tb = p[rows].astype(np.int64), t[rows].astype(np.int64)
        sample = np.arange(len(pb), dtype=np.int64)[:, None] * c2
        code = sample + tb * n_classes + pb
        if ignore_index is not None:
            keep = tb != ignore_index
            check_class_range(tb[keep], n_classes, "true")
            code = code[keep]
        cm[rows] = np.bincount(code.ravel(), minlength=len(pb) * c2).reshape(len(pb), c2)
    iou = iou_from_confusion(cm.reshape(n, n_classes, n_classes))
    if ignore_index is not None and 0 <= ignore_index < n_classes:
        iou[:, ignore_index] = np.nan
    return iou


def per_sample_mean_iou(
    pred: np.ndarray, true: np.ndarray, n_classes: int, *, ignore_index: int | None = None
) -> np.ndarray:
    """Mean IoU of each sample (NaN classes skipped), shape ``(N,)``.

    Examples
    --------
    >>> t = np.array([[[0, 0], [1, 1]], [[1, 1], [1, 1]]])
    >>> per_sample_mean_iou(t, t, 2).tolist()
    [1.0, 1.0]
    """
    return quiet_nanmean(per_sample_iou(pred, true, n_classes, ignore_index=ignore_index), axis=1)


def consecutive_iou(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean IoU between each decoded mask and the next: the smoothness of a path.

    1.0 means two steps decode to the same mask; a dip marks where the
    path jumps from one segmentation to another.

    Parameters
    ----------
    masks : ndarray of int, shape (S, H, W)
    n_classes : int

    Returns
    -------
    ndarray, float64, shape (S - 1,)

    Examples
    --------
    >>> m = np.array([[[0, 0]], [[0, 0]], [[0, 1]]])
    >>> consecutive_iou(m, 2).tolist()  # class 0: 1/2, class 1: 0/1
    [1.0, 0.25]
    """
    m = class_ids(masks, "masks")
    if m.ndim < 2:
        raise ValueError(f"masks must have shape (S, H, W), got {m.shape}")
    if len(m) < 2:
        return np.zeros(0, np.float64)
    return per_sample_mean_iou(m[1:], m[:-1], n_classes)


def entropy(probs: np.ndarray, *, normalize: bool = False) -> np.ndarray:
    """Mean per-pixel entropy of class probabilities, one value per sample.

    Parameters
    ----------
    probs : ndarray, shape (S, ..., C)
        Class probabilities on the last axis (softmax output of a decoder).
    normalize : bool
        Divide by ``log(C)`` so that 0 = certain and 1 = uniform.

    Returns
    -------
    ndarray, float64, shape (S,)
        In nats (or 0..1 with ``normalize``).

    Examples
    --------
    >>> p = np.array([[[1.0, 0.0]], [[0.5, 0.5]]])
    >>> entropy(p).round(4).tolist()
    [0.0, 0.6931]
    >>> entropy(p, normalize=True).tolist()
    [0.0, 1.0]
    """
    from scipy.special import entr

    p = np.asarray(probs)
    if p.ndim < 2:
        raise ValueError(f"probs must have shape (S, ..., C), got {p.shape}")
    n, c = len(p), p.shape[-1]
    flat = p.reshape(n, -1, c)
    out = np.empty(n, np.float64)
    for rows in iter_row_blocks(n, CHUNK_PIXELS // max(flat.shape[1] * c, 1)):
        # entr(0) = 0, so exact zeros from a saturated softmax are fine.
        out[rows] = entr(flat[rows]).sum(-1, dtype=np.float64).mean(-1)
    if normalize:
        out /= np.log(c) if c > 1 else 1.0
    return out


@dataclass(frozen=True)
class PathMetrics:
    """The figures of an interpolation path, one entry per step.

    Attributes
    ----------
    fractions : ndarray, shape (S, C)
        Pixel fraction of each class in each decoded mask.
    soft_fractions : ndarray, shape (S, C)
        Mean probability of each class (a smooth version of ``fractions``).
    smoothness : ndarray, shape (S - 1,)
        Mean IoU between consecutive decoded masks (:func:`consecutive_iou`).
    entropy : ndarray, shape (S,)
        Mean per-pixel entropy of the class probabilities, in nats.
    nn_index, nn_distance : ndarray, shape (S,), or None
        Nearest real latent of each step and its distance (how far the path
        leaves the data); ``None`` unless ``path_latents`` and ``index`` are given.
    nn_distance_ratio : ndarray, shape (S,), or None
        ``nn_distance`` over the median nearest-neighbour distance among the
        real latents: above 1, the step is farther from the data than real
        samples are from each other. Only with ``relative=True``.
    n_distinct : int or None
        Number of distinct nearest neighbours along the path.
    """

    fractions: np.ndarray
    soft_fractions: np.ndarray
    smoothness: np.ndarray
    entropy: np.ndarray
    nn_index: np.ndarray | None = None
    nn_distance: np.ndarray | None = None
    nn_distance_ratio: np.ndarray | None = None
    n_distinct: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def path_metrics(
    probs: np.ndarray,
    path_latents: np.ndarray | None = None,
    index: LatentIndex | np.ndarray | None = None,
    *,
    relative: bool = False,
) -> PathMetrics:
    """Per-step figures of a decoded path.

    Parameters
    ----------
    probs : ndarray, shape (S, H, W, C)
        The decoded class probabilities of the path's steps
        (``decode_path(...).probs``).
    path_latents : ndarray, shape (S, *latent_shape), optional
        The latents of the steps, to measure their distance to the data.
    index : LatentIndex or ndarray (N, *latent_shape), optional
        The real latents (an index built once is faster for repeated calls).
    relative : bool
        Also report ``nn_distance_ratio`` (needs one all-pairs search of the
        data the first time; the index keeps the result).

    Returns
    -------
    PathMetrics

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet(np.ones(3), size=(4, 2, 2))
    >>> data = rng.normal(size=(10, 5))
    >>> m = path_metrics(probs, data[:4] + 0.01, data)
    >>> m.fractions.shape, m.smoothness.shape, m.nn_index.tolist()
    ((4, 3), (3,), [0, 1, 2, 3])
    """
    p = np.asarray(probs)
    if p.ndim < 3:
        raise ValueError(f"probs must have shape (S, H, W, C), got {p.shape}")
    c = p.shape[-1]
    masks = p.argmax(-1)
    soft = p.reshape(len(p), -1, c).mean(axis=1, dtype=np.float64)
    fields: dict[str, Any] = dict(
        fractions=class_fractions(masks, c),
        soft_fractions=soft,
        smoothness=consecutive_iou(masks, c),
        entropy=entropy(p),
    )
    if (path_latents is None) != (index is None):
        raise ValueError(
            "pass both path_latents and index (the real latents or a LatentIndex) to measure "
            "each step's distance to the data, or neither."
        )
    if path_latents is not None:
        from .neighbors import LatentIndex, path_neighbors

        idx = index if isinstance(index, LatentIndex) else LatentIndex().fit(np.asarray(index))
        pn = path_neighbors(path_latents, idx)
        fields.update(nn_index=pn.indices, nn_distance=pn.distances, n_distinct=pn.n_distinct)
        if relative:
            scale = idx.nn_distance_scale()
            with np.errstate(divide="ignore", invalid="ignore"):
                fields["nn_distance_ratio"] = pn.distances / scale
    return PathMetrics(**fields)
