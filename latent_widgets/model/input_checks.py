"""The checks of a latent model's inputs: images, latents and skips, each refused with the fix.

What every adapter (:class:`~latent_widgets.model.latent_model.LatentModel`,
:class:`~latent_widgets.model.onnx_model.OnnxLatentModel`) runs before a
batch reaches its encoder or decoder, through
:class:`~latent_widgets.model.latent_base.LatentModelBase`.

Examples
--------
>>> import numpy as np
>>> check_images(np.ones((2, 4, 6, 3), np.float32), (4, 6, 3)).shape
(2, 4, 6, 3)
>>> check_images(np.ones((2, 4, 6, 1)), (4, 6, 3))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
latent_widgets.model.errors.LatentModelError: images have 1 channel(s) but the model expects 3; ...
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import LatentModelError

__all__ = ["check_images", "check_latents"]


def check_images(images: Any, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Images as a float32 ``(N, H, W, C)`` batch in 0..1 for a model of ``input_shape``; a LatentModelError if not.

    uint8 images are divided by 255, one image ``(H, W, C)`` becomes a
    batch of one; a wrong dtype, rank, channel count or size is refused with
    the fix.

    Examples
    --------
    >>> check_images(np.zeros((4, 6, 3), np.uint8), (4, 6, 3)).shape
    (1, 4, 6, 3)
    """
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)  # 0..255 images -> the 0..1 the models expect
    elif x.dtype != np.float32:
        if not np.issubdtype(x.dtype, np.number):
            raise LatentModelError(f"images must be numeric arrays, got dtype {x.dtype}.")
        x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[None]
    h, w, c = input_shape
    if x.ndim != 4:
        raise LatentModelError(f"images must have shape (N, {h}, {w}, {c}) or ({h}, {w}, {c}), got {x.shape}.")
    if x.shape[3] != c:
        raise LatentModelError(
            f"images have {x.shape[3]} channel(s) but the model expects {c}; "
            + ("convert them to RGB (e.g. PIL Image.convert('RGB'))." if c == 3 else f"give {c}-channel images.")
        )
    if x.shape[1:3] != (h, w):
        raise LatentModelError(
            f"images are {x.shape[1]}x{x.shape[2]} (HxW) but the model expects {h}x{w}; resize them "
            f"first, e.g. load_camvid(..., size=({h}, {w}))."
        )
    return x


def check_latents(
    latents: Any,
    skips: Any,
    latent_shape: tuple[int, ...],
    skip_shapes: tuple[tuple[int, ...], ...],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Latents and their skips as float32 batches for a decoder of these shapes; a LatentModelError if not.

    One latent (``latent_shape``) becomes a batch of one; one sample's skips
    go with every latent (an interpolation path); NaN or Inf, missing or
    extra skips and wrong shapes are refused with the fix.

    Examples
    --------
    >>> z, skips = check_latents(np.zeros((2, 2, 4)), None, (2, 2, 4), ())
    >>> z.shape, skips
    ((1, 2, 2, 4), [])
    """
    z = np.asarray(latents, dtype=np.float32)
    single = z.shape == latent_shape
    if single:
        z = z[None]
    elif z.ndim != len(latent_shape) + 1 or z.shape[1:] != latent_shape:
        raise LatentModelError(
            f"latents must have shape (N, {', '.join(map(str, latent_shape))}) or "
            f"{latent_shape} for one latent, got {z.shape}."
        )
    if not np.isfinite(z).all():
        bad = np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))
        raise LatentModelError(
            f"latent {int(bad[0])} contains NaN or Inf ({len(bad)} of {len(z)} latents); the decoder "
            "would return garbage. Check the edit, interpolation or inverse projection that produced it."
        )
    n_skips = len(skip_shapes)
    if n_skips == 0:
        if skips is not None and len(skips):
            raise LatentModelError(f"this decoder takes no skip features, got {len(skips)}; call decode(latents).")
        return z, []
    if skips is None:
        raise LatentModelError(
            f"this decoder needs {n_skips} skip feature array(s) beside the latent (shapes "
            f"{list(skip_shapes)}); pass skips=encode(images).skips."
        )
    if (
        isinstance(skips, np.ndarray)
        and n_skips == 1
        and skips.ndim
        in (
            len(skip_shapes[0]),
            len(skip_shapes[0]) + 1,
        )
    ):
        skips = (skips,)
    if len(skips) != n_skips:
        raise LatentModelError(
            f"this decoder needs {n_skips} skip feature array(s), got {len(skips)}; pass skips=encode(images).skips."
        )
    out = []
    for k, (s, shape) in enumerate(zip(skips, skip_shapes, strict=False)):
        s = np.asarray(s, dtype=np.float32)
        if s.shape == shape:
            s = s[None]
        if len(s) == 1 and len(z) > 1 and s.shape[1:] == shape:
            # One image's skips for many latents (e.g. an interpolation path).
            s = np.broadcast_to(s, (len(z), *shape))
        if s.shape[1:] != shape or len(s) != len(z):
            raise LatentModelError(
                f"skip {k} must have shape ({len(z)}, {', '.join(map(str, shape))}) to go with "
                f"{len(z)} latent(s), got {s.shape}."
            )
        if not np.isfinite(s).all():
            raise LatentModelError(f"skip {k} contains NaN or Inf; recompute it with encode().")
        out.append(s)
    return z, out
