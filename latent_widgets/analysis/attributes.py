"""Attribute vectors and latent arithmetic, with attributes defined from the masks.

For generative models an attribute vector is the mean latent of samples with
an attribute ("smiling") minus the mean of those without. A segmentation
dataset has no such labels, but its masks give a natural one per class:
*how much of the image is class c*. :func:`attribute_vector` splits the
samples by their pixel fraction of ``c`` (quantiles or fixed thresholds) and
returns ``mean(latents | high) - mean(latents | low)``; :func:`attribute_effect`
decodes ``z + t v`` for a range of ``t`` and reports how the decoded pixel
fraction of ``c`` follows, which says whether the vector means "more c" to
the decoder. :func:`analogy` is the plain ``B + C - A`` arithmetic.

The means are accumulated in float64 a block of samples at a time, so a
large latent set is never copied whole.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.attributes import attribute_vector, analogy
>>> fractions = np.array([0.0, 0.1, 0.8, 0.9])[:, None]     # one class
>>> latents = np.array([[0.0], [0.0], [1.0], [1.0]]) + 5.0
>>> attribute_vector(latents, fractions, 0).vector.tolist()
[1.0]
>>> analogy(np.array([1.0]), np.array([3.0]), np.array([10.0])).tolist()
[12.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from ..core.arrays import BLOCK_BYTES, iter_row_blocks
from ..model.protocols import LatentCodec

__all__ = [
    "AttributeEffect",
    "AttributeVector",
    "analogy",
    "apply_attribute",
    "attribute_effect",
    "attribute_vector",
]


class AttributeVector(NamedTuple):
    """A class attribute vector and the samples that defined it.

    Attributes
    ----------
    vector : ndarray, shape latent_shape
        ``mean(latents[high_idx]) - mean(latents[low_idx])``.
    class_id : int
    high_idx, low_idx : ndarray of int64
        Samples with a high / low pixel fraction of the class.
    high_threshold, low_threshold : float
        The pixel fractions that split them (the quantiles when ``by="quantile"``).
    """

    vector: np.ndarray
    class_id: int
    high_idx: np.ndarray
    low_idx: np.ndarray
    high_threshold: float = float("nan")
    low_threshold: float = float("nan")


class AttributeEffect(NamedTuple):
    """What decoding ``z + t v`` does to one class.

    Attributes
    ----------
    ts : ndarray, float64, shape (T,)
    fractions : ndarray, float64, shape (T,)
        Decoded pixel fraction of the class at each ``t``.
    masks : ndarray, shape (T, H, W)
        The decoded masks.
    mean_probs : ndarray, float64, shape (T,)
        Mean decoded probability of the class (a smooth version of ``fractions``).
    """

    ts: np.ndarray
    fractions: np.ndarray
    masks: np.ndarray
    mean_probs: np.ndarray


def _class_fraction(masks_or_fractions: Any, class_id: int, n: int) -> np.ndarray:
    arr = np.asarray(masks_or_fractions)
    if arr.ndim == 3:  # masks (N, H, W)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"masks must hold integer class ids, got dtype {arr.dtype}")
        frac = (arr.reshape(len(arr), -1) == class_id).mean(axis=1)
    elif arr.ndim == 2:  # fractions (N, C)
        if not 0 <= class_id < arr.shape[1]:
            raise ValueError(f"class_id {class_id} is out of range for {arr.shape[1]} classes")
        frac = arr[:, class_id].astype(np.float64)
    elif arr.ndim == 1:  # this class's fraction per sample
        frac = arr.astype(np.float64)
    else:
        raise ValueError(
            "masks_or_fractions must be masks (N, H, W), class fractions (N, C) or the "
            f"class's fraction per sample (N,), got shape {arr.shape}"
        )
    if len(frac) != n:
        raise ValueError(f"got {len(frac)} masks/fractions for {n} latents")
    return frac


def _mean_rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of ``x[idx]`` in float64, gathering a bounded block at a time."""
    flat = x.reshape(len(x), -1)
    total = np.zeros(flat.shape[1], np.float64)
    for block in iter_row_blocks(len(idx), BLOCK_BYTES // (8 * max(flat.shape[1], 1))):
        total += flat[idx[block]].sum(axis=0, dtype=np.float64)
    return total / len(idx)


def attribute_vector(
    latents: np.ndarray,
    masks_or_fractions: np.ndarray,
    class_id: int,
    *,
    high: float = 0.75,
    low: float = 0.25,
    by: Literal["quantile", "threshold"] = "quantile",
) -> AttributeVector:
    """The "more of class ``class_id``" direction in latent space.

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    masks_or_fractions : ndarray
        Ground-truth masks ``(N, H, W)`` (e.g. ``dataset.masks``), class
        fractions ``(N, C)`` (``dataset.class_fractions()``) or this class's
        fraction per sample ``(N,)``.
    class_id : int
    high, low : float
        With ``by="quantile"``: samples at or above the ``high`` quantile of
        the class's pixel fraction are "high", at or below the ``low``
        quantile "low". With ``by="threshold"``: the same with the pixel
        fractions themselves (e.g. ``high=0.1, low=0.0``).
    by : {"quantile", "threshold"}

    Returns
    -------
    AttributeVector
        ``vector`` has the latents' shape and float dtype.

    Raises
    ------
    ValueError
        If a group is empty or the two groups overlap (the class's fraction
        does not vary enough to split the samples).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> masks = (rng.random((20, 4, 4)) < np.linspace(0, 1, 20)[:, None, None]).astype(np.uint8)
    >>> v = attribute_vector(rng.normal(size=(20, 3)), masks, 1)
    >>> len(v.high_idx), len(v.low_idx), v.vector.shape
    (5, 5, (3,))
    """
    if by not in ("quantile", "threshold"):
        raise ValueError(f"by must be 'quantile' or 'threshold', got {by!r}")
    z = np.asarray(latents)
    if z.ndim < 2:
        raise ValueError(f"latents must have shape (N, ...), got {z.shape}")
    frac = _class_fraction(masks_or_fractions, int(class_id), len(z))
    if by == "quantile":
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"quantiles must satisfy 0 <= low <= high <= 1, got low={low}, high={high}")
        hi_t, lo_t = (float(v) for v in np.quantile(frac, [high, low]))
    else:
        hi_t, lo_t = float(high), float(low)
    high_idx = np.flatnonzero(frac >= hi_t)
    low_idx = np.flatnonzero(frac <= lo_t)
    if len(high_idx) == 0 or len(low_idx) == 0:
        raise ValueError(
            f"no sample has a {'high' if len(high_idx) == 0 else 'low'} fraction of class {class_id} "
            f"(high >= {hi_t:.4g}, low <= {lo_t:.4g}; fractions span {frac.min():.4g}..{frac.max():.4g}); "
            "loosen the thresholds."
        )
    if np.intersect1d(high_idx, low_idx).size:
        raise ValueError(
            f"the high (>= {hi_t:.4g}) and low (<= {lo_t:.4g}) groups of class {class_id} overlap: "
            "its pixel fraction hardly varies in these samples; pick another class or thresholds."
        )
    dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float64
    vector = (_mean_rows(z, high_idx) - _mean_rows(z, low_idx)).astype(dtype).reshape(z.shape[1:])
    return AttributeVector(vector, int(class_id), high_idx, low_idx, hi_t, lo_t)


def analogy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Latent analogy ``b + c - a`` ("a is to b as c is to ?").

    Computed as ``c + (b - a)``: the attribute that turns ``a`` into ``b``,
    added to ``c``. Result in the inputs' float dtype.

    Examples
    --------
    >>> analogy(np.zeros(2), np.ones(2), np.full(2, 3.0)).tolist()
    [4.0, 4.0]
    """
    a, b, c = np.asarray(a), np.asarray(b), np.asarray(c)
    if not a.shape == b.shape == c.shape:
        raise ValueError(f"a, b and c must have the same shape, got {a.shape}, {b.shape}, {c.shape}")
    dtype = np.result_type(a.dtype, b.dtype, c.dtype, np.float32)
    out = np.subtract(b, a, dtype=dtype)
    out += c
    return out


def apply_attribute(latent: np.ndarray, vector: np.ndarray, ts: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """``latent + t * vector`` for each ``t``, shape ``(T, *latent_shape)``.

    ``latent`` may carry a batch axis of 1.

    Examples
    --------
    >>> apply_attribute(np.zeros(2), np.ones(2), [0.0, 2.0]).tolist()
    [[0.0, 0.0], [2.0, 2.0]]
    """
    v = np.asarray(vector)
    z = np.asarray(latent)
    if z.shape == (1, *v.shape):
        z = z[0]
    if z.shape != v.shape:
        raise ValueError(f"latent {z.shape} and vector {v.shape} must have the same shape")
    t = np.atleast_1d(np.asarray(ts, np.float64))
    if t.ndim != 1:
        raise ValueError(f"ts must be a scalar or a 1-D array, got shape {t.shape}")
    dtype = np.result_type(z.dtype, v.dtype, np.float32)
    expand = (slice(None),) + (None,) * v.ndim
    out = t.astype(dtype)[expand] * v.astype(dtype, copy=False)
    out += z
    return out


def attribute_effect(
    model: LatentCodec,
    latent: np.ndarray,
    vector: np.ndarray,
    ts: Sequence[float] | np.ndarray,
    class_id: int,
    skips: Sequence[np.ndarray] | None = None,
) -> AttributeEffect:
    """Decode ``latent + t * vector`` for each ``t`` and measure class ``class_id``.

    Parameters
    ----------
    model : LatentModel or anything with its protocol (``decode``, ``has_skips``)
    latent : ndarray, shape latent_shape or (1, *latent_shape)
    vector : ndarray, shape latent_shape
        E.g. ``attribute_vector(...).vector``.
    ts : 1-D array
        Multiples of the vector to add (e.g. ``np.linspace(-2, 2, 9)``).
    class_id : int
    skips : sequence of ndarray, optional
        The sample's skip features (``model.encode(image).skips``), each with
        or without a batch axis of 1; required when the model has skips,
        and held fixed for every ``t``.

    Returns
    -------
    AttributeEffect

    Examples
    --------
    >>> import sys; sys.path.insert(0, "tests")
    >>> from toy import ToyLatentModel
    >>> model = ToyLatentModel()
    >>> z = np.zeros(model.latent_shape, np.float32)
    >>> v = np.ones(model.latent_shape, np.float32)
    >>> eff = attribute_effect(model, z, v, [0.0, 1.0], class_id=0)
    >>> eff.fractions.shape, eff.masks.shape
    ((2,), (2, 16, 16))
    """
    zs = apply_attribute(latent, vector, ts)
    t = np.atleast_1d(np.asarray(ts, np.float64))
    skip_in = None
    if getattr(model, "has_skips", False):
        if not skips:
            raise ValueError(
                "this model's decoder needs skip features: pass skips=model.encode(image[None]).skips "
                "of the sample whose latent you edit."
            )
        skip_in = []
        for s, shape in zip(skips, model.skip_shapes, strict=False):
            s = np.asarray(s)
            if s.shape == (1, *tuple(shape)):
                s = s[0]
            skip_in.append(np.repeat(s[None], len(t), axis=0))
    probs = np.asarray(model.decode(zs, skip_in))
    n_classes = probs.shape[-1]
    if not 0 <= class_id < n_classes:
        raise ValueError(f"class_id {class_id} is out of range for {n_classes} classes")
    masks = probs.argmax(-1).astype(np.uint8 if n_classes <= 256 else np.int32)
    fractions = (masks.reshape(len(t), -1) == class_id).mean(axis=1)
    mean_probs = probs[..., class_id].reshape(len(t), -1).mean(axis=1, dtype=np.float64)
    return AttributeEffect(t, fractions, masks, mean_probs)
