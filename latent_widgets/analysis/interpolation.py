"""Paths between two latents, and the decoder inputs along them.

Two path methods (:data:`PATH_METHODS`):

- ``"linear"``: ``P(alpha) = A + alpha (B - A)``, computed as
  ``(1 - alpha) A + alpha B`` so that both endpoints are exact;
- ``"spherical"`` (slerp): the direction turns along the great circle from
  ``A/|A|`` to ``B/|B|`` at constant angular speed while the norm goes
  linearly from ``|A|`` to ``|B|``. For vectors of equal norm this is the
  classic ``sin((1-a) W)/sin W A + sin(a W)/sin W B`` (Shoemake 1985; White
  2016 for generative models). Interpolating the norm separately keeps the
  path bounded when the two norms differ; ``A == B`` gives the constant path
  and antipodal vectors turn through a fixed perpendicular direction, both
  without NaN.

A decoder with skip connections needs skip features at every step as well as
the latent. Four policies (:data:`SKIP_POLICIES`) say where they come from::

    image   A_img --blend(alpha)--> I_alpha --encoder--> skips(I_alpha)   (the study's choice)
    skips   skips(A) ----interpolate(alpha, same method)----> skips(B)
    hold_a  skips(A)  at every step
    hold_b  skips(B)  at every step

               latent path  z_alpha ──┐
                                      ├──> decoder ──> mask_alpha
      skip features (by policy) ──────┘

With ``"image"`` the skips carry the *pixels* of a cross-fade of the two
images, so the decoded masks look like a blend even where the latent path is
abrupt; ``"hold_a"`` / ``"hold_b"`` show what the latent alone changes.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.interpolation import lerp, slerp, steps
>>> a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
>>> lerp(a, b, 0.5).tolist()
[0.5, 0.5]
>>> slerp(a, b, 0.5).round(4).tolist()
[0.7071, 0.7071]
>>> slerp(a, b, steps(3)).shape
(3, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from ..model.protocols import EncodingLike, LatentCodec

__all__ = [
    "PATH_METHODS",
    "SKIP_POLICIES",
    "PathResult",
    "decode_path",
    "interpolate",
    "lerp",
    "path_inputs",
    "slerp",
    "steps",
]

#: Interpolation methods accepted by :func:`interpolate` and the path functions.
PATH_METHODS: tuple[str, ...] = ("linear", "spherical")
#: Where a decoder with skips gets its skip features along a path.
SKIP_POLICIES: tuple[str, ...] = ("image", "skips", "hold_a", "hold_b")

# Below this angle (radians) slerp is lerp to within angle**2 / 6 relative.
_SMALL_ANGLE = 1e-6


def steps(n: int = 12) -> np.ndarray:
    """``n`` evenly spaced alphas from 0 to 1 inclusive (the study used 12).

    Examples
    --------
    >>> steps(5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return np.linspace(0.0, 1.0, int(n))


def _alphas(alpha: Any) -> tuple[np.ndarray, bool]:
    al = np.asarray(alpha, dtype=np.float64)
    if al.ndim > 1:
        raise ValueError(f"alpha must be a scalar or a 1-D array, got shape {al.shape}")
    if not np.isfinite(al).all():
        raise ValueError("alpha must be finite")
    return al.reshape(-1), al.ndim == 0


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    return a, b, dtype


def _combine(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``ca[t] * a + cb[t] * b`` for each t, in ``dtype``, one output buffer."""
    shape = (len(ca), *a.shape)
    expand = (slice(None),) + (None,) * a.ndim
    out = np.empty(shape, dtype)
    np.multiply(ca.astype(dtype)[expand], a, out=out, casting="unsafe")
    out += cb.astype(dtype)[expand] * b
    return out


def lerp(a: np.ndarray, b: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Linear interpolation ``(1 - alpha) a + alpha b``.

    Parameters
    ----------
    a, b : ndarray, same shape
    alpha : float or 1-D array
        0 gives ``a`` exactly and 1 gives ``b`` exactly; values outside
        [0, 1] extrapolate.

    Returns
    -------
    ndarray
        Shaped like ``a`` for a scalar alpha, ``(len(alpha), *a.shape)``
        otherwise; float32 for float32 inputs.

    Examples
    --------
    >>> lerp(np.zeros(2), np.ones(2), [0.0, 0.25]).tolist()
    [[0.0, 0.0], [0.25, 0.25]]
    """
    a, b, dtype = _pair(a, b)
    al, scalar = _alphas(alpha)
    out = _combine(a, b, 1.0 - al, al, dtype)
    return out[0] if scalar else out


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to the unit vector ``u`` (deterministic)."""
    e = np.zeros_like(u)
    e[int(np.argmin(np.abs(u)))] = 1.0  # the axis least aligned with u
    p = e - (u @ e) * u
    return p / np.linalg.norm(p)


def slerp(a: np.ndarray, b: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Spherical interpolation: great-circle direction, linear norm.

    The latents are treated as flat vectors. With ``W`` the angle between
    ``a`` and ``b`` and ``r(alpha) = (1 - alpha)|a| + alpha|b|``::

        slerp(a, b, alpha) = r(alpha) * (sin((1-alpha) W) a/|a| + sin(alpha W) b/|b|) / sin W

    which for ``|a| == |b|`` is the classic slerp formula.

    Edge cases, all finite: ``W`` below 1e-6 rad (including ``a == b``) or a
    zero vector gives :func:`lerp`; antipodal vectors (``W = pi``) turn
    through a fixed unit vector perpendicular to ``a`` (the axis least
    aligned with ``a``, orthogonalised), since every great circle through
    them is equally short.

    Parameters
    ----------
    a, b : ndarray, same shape
    alpha : float or 1-D array

    Returns
    -------
    ndarray
        Shaped like ``a`` for a scalar alpha, ``(len(alpha), *a.shape)``
        otherwise; alpha 0 and 1 give ``a`` and ``b`` exactly.

    Examples
    --------
    >>> a, b = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    >>> slerp(a, b, 0.5).round(4).tolist()   # (a + b) / sqrt(2)
    [1.4142, 1.4142]
    >>> slerp(a, -a, 0.5).round(4).tolist()  # antipodal: through a perpendicular
    [0.0, 2.0]
    """
    a, b, dtype = _pair(a, b)
    al, scalar = _alphas(alpha)
    fa = a.reshape(-1).astype(np.float64)
    fb = b.reshape(-1).astype(np.float64)
    na, nb = float(np.linalg.norm(fa)), float(np.linalg.norm(fb))
    if na == 0.0 or nb == 0.0:
        out = _combine(a, b, 1.0 - al, al, dtype)
        return out[0] if scalar else out
    ua, ub = fa / na, fb / nb
    cos = float(np.clip(ua @ ub, -1.0, 1.0))
    omega = float(np.arccos(cos))
    radius = (1.0 - al) * na + al * nb
    if omega < _SMALL_ANGLE:
        out = _combine(a, b, 1.0 - al, al, dtype)
    elif np.pi - omega < _SMALL_ANGLE:
        p = _perpendicular(ua)
        theta = al * np.pi
        # Unit direction cos(theta) ua + sin(theta) p, scaled by the radius.
        out = _combine(ua.reshape(a.shape), p.reshape(a.shape), radius * np.cos(theta), radius * np.sin(theta), dtype)
    else:
        s = np.sin(omega)
        ca = radius * np.sin((1.0 - al) * omega) / (s * na)
        cb = radius * np.sin(al * omega) / (s * nb)
        out = _combine(a, b, ca, cb, dtype)
    # The endpoints are the inputs, bit for bit.
    out[al == 0.0] = a
    out[al == 1.0] = b
    return out[0] if scalar else out


def interpolate(
    a: np.ndarray,
    b: np.ndarray,
    alphas: float | np.ndarray,
    method: Literal["linear", "spherical"] = "linear",
) -> np.ndarray:
    """:func:`lerp` or :func:`slerp` by name.

    Examples
    --------
    >>> interpolate(np.zeros(3), np.ones(3), steps(12)).shape
    (12, 3)
    """
    if method == "linear":
        return lerp(a, b, alphas)
    if method == "spherical":
        return slerp(a, b, alphas)
    raise ValueError(f"method must be one of {PATH_METHODS}, got {method!r}")


def _check_policy(skip_policy: str) -> None:
    if skip_policy not in SKIP_POLICIES:
        raise ValueError(f"skip_policy must be one of {SKIP_POLICIES}, got {skip_policy!r}")


def _single(x: np.ndarray, shape: Sequence[int], what: str) -> np.ndarray:
    """One sample of shape ``shape``, with or without a leading batch axis of 1."""
    arr = np.asarray(x)
    if arr.shape == tuple(shape):
        return arr
    if arr.shape == (1, *tuple(shape)):
        return arr[0]
    raise ValueError(f"{what} must have shape {tuple(shape)} (or with a batch axis of 1), got {arr.shape}")


def _image(x: Any, what: str) -> np.ndarray:
    img = np.asarray(x)
    if img.ndim == 4 and len(img) == 1:
        img = img[0]
    if img.ndim != 3:
        raise ValueError(f"{what} must be one image (H, W, 3), got shape {img.shape}")
    if img.dtype == np.uint8:  # blend in the 0..1 float range the models expect
        return img.astype(np.float32) / np.float32(255)
    return img.astype(np.float32, copy=False)


def _endpoint_encoding(
    model: LatentCodec, encoding: EncodingLike | None, image: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    if encoding is None:
        encoding = model.encode(image[None])
    z = _single(encoding.latents, model.latent_shape, "encoding.latents")
    skips = tuple(
        _single(s, shape, f"skip {i} of the encoding")
        for i, (s, shape) in enumerate(zip(encoding.skips, model.skip_shapes, strict=False))
    )
    return z, skips


def path_inputs(
    model: LatentCodec,
    image_a: np.ndarray,
    image_b: np.ndarray,
    alphas: float | np.ndarray,
    method: Literal["linear", "spherical"] = "linear",
    skip_policy: Literal["image", "skips", "hold_a", "hold_b"] = "image",
    encoding_a: EncodingLike | None = None,
    encoding_b: EncodingLike | None = None,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The decoder inputs along the path from image A to image B.

    Parameters
    ----------
    model : LatentModel or anything with its protocol
        ``encode``, ``latent_shape``, ``skip_shapes``, ``has_skips``.
    image_a, image_b : ndarray, float32, shape (H, W, 3)
    alphas : float or 1-D array
    method : {"linear", "spherical"}
        Path of the latents (and of the skips with ``"skips"``).
    skip_policy : {"image", "skips", "hold_a", "hold_b"}
        Where the skip features come from (see the module docstring);
        validated but unused for a model without skips.
    encoding_a, encoding_b : Encoding, optional
        Precomputed single-sample encodings (latents ``(1, *latent_shape)``
        or ``latent_shape``); when given, the endpoints are not encoded again.

    Returns
    -------
    latents : ndarray, shape (S, *latent_shape)
    skips : tuple of ndarray, each (S, *skip_shape)
        ``()`` for a model without skips.

    Examples
    --------
    >>> import sys; sys.path.insert(0, "tests")
    >>> from toy import ToyLatentModel
    >>> model = ToyLatentModel(with_skip=True)
    >>> img = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    >>> z, skips = path_inputs(model, img[0], img[1], steps(4), skip_policy="hold_a")
    >>> z.shape, skips[0].shape
    ((4, 4, 4, 5), (4, 8, 8, 3))
    """
    _check_policy(skip_policy)
    if method not in PATH_METHODS:
        raise ValueError(f"method must be one of {PATH_METHODS}, got {method!r}")
    img_a, img_b = _image(image_a, "image_a"), _image(image_b, "image_b")
    if img_a.shape != img_b.shape:
        raise ValueError(f"image_a and image_b must have the same shape, got {img_a.shape} and {img_b.shape}")
    al, _ = _alphas(alphas)
    if encoding_a is None and encoding_b is None:
        both = model.encode(np.stack([img_a, img_b]))
        encoding_a = type(both)(both.latents[:1], tuple(s[:1] for s in both.skips))
        encoding_b = type(both)(both.latents[1:], tuple(s[1:] for s in both.skips))
    za, skips_a = _endpoint_encoding(model, encoding_a, img_a)
    zb, skips_b = _endpoint_encoding(model, encoding_b, img_b)
    latents = interpolate(za, zb, al, method)
    if not model.has_skips:
        return latents, ()
    if skip_policy == "hold_a":
        skips = tuple(np.repeat(s[None], len(al), axis=0) for s in skips_a)
    elif skip_policy == "hold_b":
        skips = tuple(np.repeat(s[None], len(al), axis=0) for s in skips_b)
    elif skip_policy == "skips":
        skips = tuple(interpolate(sa, sb, al, method) for sa, sb in zip(skips_a, skips_b, strict=False))
    else:  # "image": encode the cross-faded images, keep only their skips
        skips = tuple(np.empty((len(al), *sa.shape), np.result_type(sa.dtype, np.float32)) for sa in skips_a)
        inner = np.flatnonzero((al != 0.0) & (al != 1.0))
        for out, sa, sb in zip(skips, skips_a, skips_b, strict=False):
            out[al == 0.0] = sa  # the endpoints' own skips: no re-encoding
            out[al == 1.0] = sb
        if len(inner):
            blended = lerp(img_a, img_b, al[inner]).astype(np.float32, copy=False)
            enc = model.encode(blended)
            for out, s in zip(skips, enc.skips, strict=False):
                out[inner] = s
    return latents, skips


class PathResult(NamedTuple):
    """A decoded path.

    Attributes
    ----------
    alphas : ndarray, float64, shape (S,)
    latents : ndarray, shape (S, *latent_shape)
    skips : tuple of ndarray, each (S, *skip_shape); () without skips
    probs : ndarray, float32, shape (S, H, W, C)
    masks : ndarray, shape (S, H, W)
        ``probs.argmax(-1)``; uint8 when there are at most 256 classes.
    """

    alphas: np.ndarray
    latents: np.ndarray
    skips: tuple[np.ndarray, ...]
    probs: np.ndarray
    masks: np.ndarray


def decode_path(
    model: LatentCodec,
    image_a: np.ndarray,
    image_b: np.ndarray,
    alphas: float | np.ndarray,
    method: Literal["linear", "spherical"] = "linear",
    skip_policy: Literal["image", "skips", "hold_a", "hold_b"] = "image",
    encoding_a: EncodingLike | None = None,
    encoding_b: EncodingLike | None = None,
) -> PathResult:
    """Decode the path from image A to image B at ``alphas``, in one decoder batch.

    Parameters are those of :func:`path_inputs`.

    Returns
    -------
    PathResult

    Examples
    --------
    >>> import sys; sys.path.insert(0, "tests")
    >>> from toy import ToyLatentModel
    >>> model = ToyLatentModel()
    >>> img = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    >>> r = decode_path(model, img[0], img[1], steps(12), method="spherical")
    >>> r.probs.shape, r.masks.shape, r.skips
    ((12, 16, 16, 4), (12, 16, 16), ())
    """
    latents, skips = path_inputs(
        model, image_a, image_b, alphas, method, skip_policy, encoding_a=encoding_a, encoding_b=encoding_b
    )
    al, _ = _alphas(alphas)
    probs = np.asarray(model.decode(latents, skips if skips else None))
    masks = probs.argmax(-1).astype(np.uint8 if probs.shape[-1] <= 256 else np.int32)
    return PathResult(al, latents, skips, probs, masks)
