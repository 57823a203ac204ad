"""Turn images and masks into display pixels and PNG bytes (numpy + PIL only).

Everything a widget shows goes through these functions, so that tests can
check the pixels without a browser and the static figures
(:mod:`latent_widgets.views.figures`) use the same colours as the widgets. The
functions are written for the interactive path, where every slider step
renders a mask: colouring is a palette lookup (no per-class loop) and PNG
encoding uses a low zlib level, because at these image sizes encoding time
dominates and level 1 is several times faster than the default for a few
percent larger files.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.views.render import colorize, to_png
>>> palette = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
>>> rgb = colorize(np.array([[0, 1]], np.uint8), palette)
>>> rgb.tolist()
[[[0, 0, 0], [255, 0, 0]]]
>>> to_png(rgb)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ERROR_COLOUR",
    "as_uint8",
    "colorize",
    "data_uri",
    "display_scale",
    "error_map",
    "hstack",
    "mask_bmp",
    "mask_png",
    "overlay",
    "thumbnail",
    "to_png",
    "upscale",
]

#: Colour of a wrongly predicted pixel in :func:`error_map` (RGB).
ERROR_COLOUR: tuple[int, int, int] = (255, 0, 64)

#: Colour of a pixel without ground truth (e.g. a decoded latent) in :func:`error_map`.
_UNKNOWN_COLOUR = (96, 96, 96)


def as_uint8(image: np.ndarray) -> np.ndarray:
    """An image as uint8: floats are read as 0..1 and clipped, integers kept.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        float in 0..1, or uint8.

    Examples
    --------
    >>> as_uint8(np.array([[0.0, 0.5, 1.0, 2.0]])).tolist()
    [[0, 128, 255, 255]]
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        # + 0.5 then truncation is round-half-up and avoids np.round's extra pass.
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def colorize(mask: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colour a mask of class ids with a palette.

    Parameters
    ----------
    mask : ndarray of int, shape (..., H, W)
        Class id per pixel. Ids outside the palette are clipped to the last
        colour rather than raising, so a model with more classes than the
        palette still draws.
    palette : ndarray, uint8, shape (n_classes, 3)

    Returns
    -------
    ndarray, uint8, shape (..., H, W, 3)

    Examples
    --------
    >>> pal = np.array([[0, 0, 0], [10, 20, 30]], np.uint8)
    >>> colorize(np.array([[1, 0]]), pal)[0, 0].tolist()
    [10, 20, 30]
    """
    pal = np.asarray(palette, dtype=np.uint8)
    if pal.ndim != 2 or pal.shape[1] != 3:
        raise ValueError(f"palette must have shape (n_classes, 3), got {pal.shape}")
    m = np.asarray(mask)
    if not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"mask must hold integer class ids, got dtype {m.dtype}")
    # np.take with mode="clip" is one gather without a bounds check pass.
    return np.take(pal, m, axis=0, mode="clip")


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    palette: np.ndarray,
    opacity: float = 0.5,
) -> np.ndarray:
    """Blend a coloured mask over an image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        float in 0..1 or uint8.
    mask : ndarray of int, shape (H, W)
    palette : ndarray, uint8, shape (n_classes, 3)
    opacity : float
        0 shows only the image, 1 only the mask.

    Returns
    -------
    ndarray, uint8, shape (H, W, 3)

    Examples
    --------
    >>> img = np.zeros((1, 1, 3), np.float32)
    >>> overlay(img, np.array([[1]]), np.array([[0, 0, 0], [200, 100, 0]]), 0.5).tolist()
    [[[100, 50, 0]]]
    """
    alpha = float(np.clip(opacity, 0.0, 1.0))
    img = np.asarray(image)
    if img.shape[:2] != np.shape(mask):
        raise ValueError(f"image {img.shape[:2]} and mask {np.shape(mask)} differ in size")
    img_f = img.astype(np.float32) * (1.0 if img.dtype == np.uint8 else 255.0)
    colours = colorize(mask, palette).astype(np.float32)
    out = img_f * (1.0 - alpha) + colours * alpha
    return (np.clip(out, 0.0, 255.0) + 0.5).astype(np.uint8)


def error_map(
    pred: np.ndarray,
    true: np.ndarray | None,
    image: np.ndarray | None = None,
    *,
    colour: Sequence[int] = ERROR_COLOUR,
    ignore_index: int | None = None,
) -> np.ndarray:
    """Show where a prediction differs from the ground truth.

    Wrong pixels are drawn in ``colour``; right pixels are the image in
    darkened grey (black without an image), so the errors stand out and
    the scene stays recognisable. Pixels whose ground truth is
    ``ignore_index`` are drawn mid grey.

    Parameters
    ----------
    pred, true : ndarray of int, shape (H, W)
        Predicted and true class ids. ``true=None`` (a decoded latent has no
        ground truth) gives an all-grey map.
    image : ndarray, shape (H, W, 3), optional
    colour : (r, g, b)
    ignore_index : int, optional

    Returns
    -------
    ndarray, uint8, shape (H, W, 3)

    Examples
    --------
    >>> em = error_map(np.array([[0, 1]]), np.array([[0, 0]]))
    >>> em[0, 0].tolist(), em[0, 1].tolist()
    ([0, 0, 0], [255, 0, 64])
    """
    pred = np.asarray(pred)
    h, w = pred.shape
    if true is None:
        return np.broadcast_to(np.array(_UNKNOWN_COLOUR, np.uint8), (h, w, 3)).copy()
    true = np.asarray(true)
    if true.shape != pred.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in size")
    if image is None:
        out = np.zeros((h, w, 3), np.uint8)
    else:
        grey = as_uint8(image).astype(np.uint16).mean(axis=-1) * 0.4
        out = np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)
    out[pred != true] = np.asarray(colour, np.uint8)
    if ignore_index is not None:
        out[true == ignore_index] = np.asarray(_UNKNOWN_COLOUR, np.uint8)
    return out


def display_scale(height: int, width: int, min_width: int = 256, max_scale: int = 8) -> int:
    """Integer nearest-neighbour upscale factor so an image is >= ``min_width`` wide.

    Masks are small (64-128 px); the browser would smooth them when
    stretched, so they are upscaled in pixels instead.

    Examples
    --------
    >>> display_scale(48, 64), display_scale(96, 128), display_scale(360, 480)
    (4, 2, 1)
    """
    if width <= 0:
        return 1
    return int(max(1, min(max_scale, -(-min_width // width))))


def _pil_upscale(im: Any, factor: int) -> Any:
    # PIL's NEAREST samples pixel centres, which for an integer factor is
    # exactly upscale(); on a 96x128 RGB image at x2 it takes 0.34 ms against
    # numpy's 0.79 (x4: 3.6 vs 2.9 ms), and it keeps a "P" image's palette.
    if factor <= 1:
        return im
    from PIL import Image

    return im.resize((im.width * factor, im.height * factor), Image.NEAREST)


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (H and W), any dtype.

    The encoders (:func:`to_png`, :func:`mask_png`) upscale the PIL image
    instead, with the same pixels.

    Examples
    --------
    >>> upscale(np.array([[1, 2]]), 2).tolist()
    [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    a = np.asarray(array)
    if factor <= 1:
        return a
    return a.repeat(factor, axis=0).repeat(factor, axis=1)


def to_png(array: np.ndarray, *, scale: int = 1, compress_level: int = 1) -> bytes:
    """Encode an image as PNG bytes.

    Parameters
    ----------
    array : ndarray, shape (H, W) or (H, W, 3) or (H, W, 4)
        uint8, or float in 0..1.
    scale : int
        Nearest-neighbour upscale factor (see :func:`display_scale`).
    compress_level : int
        zlib level, 0..9. The default 1 is chosen for speed: this runs on
        every slider step.

    Examples
    --------
    >>> png = to_png(np.zeros((2, 3, 3), np.uint8), scale=2)
    >>> from PIL import Image; import io
    >>> Image.open(io.BytesIO(png)).size
    (6, 4)
    """
    from PIL import Image

    arr = as_uint8(array)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"to_png needs (H, W), (H, W, 3) or (H, W, 4) pixels, got {arr.shape}")
    buf = io.BytesIO()
    _pil_upscale(Image.fromarray(np.ascontiguousarray(arr)), scale).save(
        buf, format="PNG", compress_level=int(compress_level)
    )
    return buf.getvalue()


def mask_png(mask: np.ndarray, palette: np.ndarray, *, scale: int = 1, compress_level: int = 1) -> bytes:
    """Encode a mask as a palette PNG: the same pixels as ``to_png(colorize(mask, palette))``.

    A palette ("P" mode) PNG stores one byte per pixel plus the colour
    table, so zlib handles a third of the data of an RGB image: on a
    192x256 mask this is about 4x faster to encode and half the size, which
    matters on the slider's on-demand path.

    Parameters
    ----------
    mask : ndarray of int, shape (H, W)
        Class ids; ids past the palette are drawn with its last colour.
    palette : ndarray, uint8, shape (n_classes, 3), n_classes <= 256
    scale : int
        Nearest-neighbour upscale factor.
    compress_level : int
        zlib level, 0..9.

    Examples
    --------
    >>> pal = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    >>> png = mask_png(np.array([[0, 1]]), pal, scale=2)
    >>> from PIL import Image; import io
    >>> np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[0].tolist()
    [[0, 0, 0], [0, 0, 0], [255, 0, 0], [255, 0, 0]]
    """
    from PIL import Image

    pal = np.asarray(palette, dtype=np.uint8)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask_png needs one (H, W) mask, got shape {m.shape}")
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 256:
        # More than 256 classes do not fit a PNG colour table.
        return to_png(colorize(m, pal), scale=scale, compress_level=compress_level)
    if not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"mask must hold integer class ids, got dtype {m.dtype}")
    if m.dtype != np.uint8 or (m.size and int(m.max()) >= len(pal)):
        m = np.clip(m, 0, len(pal) - 1).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(m))  # mode "L"
    im.putpalette(pal.ravel().tolist())  # turns an "L" image into "P"
    buf = io.BytesIO()
    _pil_upscale(im, scale).save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


def mask_bmp(mask: np.ndarray, palette: np.ndarray) -> bytes:
    """Encode a mask as an uncompressed 8-bit palette BMP.

    The slider's on-demand path shows one new mask per decode: there, the
    few microseconds of writing a header and the rows beat zlib (PNG) by a
    large margin, and 12 kB for a 96x128 mask is nothing on a local link.
    Browsers display ``Image(format="bmp")`` natively. PIL decodes it as a
    mode "P" image with the same pixels as its own BMP writer's output.

    Parameters
    ----------
    mask : ndarray of int, shape (H, W)
        Class ids, ``0 .. len(palette) - 1``.
    palette : ndarray, uint8, shape (n_classes, 3), n_classes <= 256

    Examples
    --------
    >>> pal = np.array([[0, 0, 0], [255, 0, 0]], np.uint8)
    >>> from PIL import Image; import io
    >>> np.asarray(Image.open(io.BytesIO(mask_bmp(np.array([[0, 1]]), pal))).convert("RGB")).tolist()
    [[[0, 0, 0], [255, 0, 0]]]
    """
    pal = np.asarray(palette, dtype=np.uint8)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask_bmp needs one (H, W) mask, got shape {m.shape}")
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 256:
        raise ValueError(f"palette must have shape (n <= 256, 3), got {pal.shape}")
    if m.dtype != np.uint8 or (m.size and int(m.max()) >= len(pal)):
        m = np.clip(m, 0, len(pal) - 1).astype(np.uint8)
    # Written by hand, not with PIL's "P" image .save(format="BMP"): PIL
    # gives the same pixels (only the header's resolution and
    # important-colours fields differ) but took 0.20 ms against 0.03 ms here
    # on a 96x128 mask, and 0.41 vs 0.20 ms on a 360x480 one, on the
    # slider's hot path.
    h, w = m.shape
    stride = (w + 3) & ~3  # rows are padded to 4 bytes
    rows = np.zeros((h, stride), np.uint8)
    rows[:, :w] = m[::-1]  # BMP stores the bottom row first
    table = np.zeros((len(pal), 4), np.uint8)
    table[:, :3] = pal[:, ::-1]  # BGR0
    offset = 14 + 40 + table.nbytes
    header = np.array([0x4D42], "<u2").tobytes() + np.array([offset + rows.nbytes, 0, offset], "<u4").tobytes()
    info = (
        np.array([40, w, h], "<i4").tobytes()
        + np.array([1, 8], "<u2").tobytes()
        + np.array([0, rows.nbytes, 2835, 2835, len(pal), 0], "<u4").tobytes()
    )
    return header + info + table.tobytes() + rows.tobytes()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for embedding PNG bytes in HTML.

    Examples
    --------
    >>> data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _resize_nearest(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    # Not PIL's Image.resize(NEAREST): it samples pixel centres, so at
    # non-integer ratios (96 -> 72 rows) it picks other rows than this
    # floor(i * h / height) and the thumbnails would change.
    h, w = arr.shape[:2]
    rows = (np.arange(height) * h // height).clip(0, h - 1)
    cols = (np.arange(width) * w // width).clip(0, w - 1)
    return arr[rows[:, None], cols[None, :]]


def hstack(tiles: Sequence[np.ndarray], gap: int = 2, fill: int = 255) -> np.ndarray:
    """Place RGB tiles of equal height side by side with a ``gap`` px border.

    Examples
    --------
    >>> hstack([np.zeros((2, 2, 3), np.uint8)] * 2, gap=1).shape
    (2, 5, 3)
    """
    tiles = [as_uint8(t) for t in tiles]
    if not tiles:
        raise ValueError("hstack needs at least one tile")
    h = tiles[0].shape[0]
    if any(t.shape[0] != h for t in tiles):
        raise ValueError("all tiles must have the same height")
    width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    out = np.full((h, width, 3), fill, np.uint8)
    x = 0
    for t in tiles:
        out[:, x : x + t.shape[1]] = t
        x += t.shape[1] + gap
    return out


def thumbnail(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    palette: np.ndarray | None = None,
    *,
    height: int = 72,
    gap: int = 2,
) -> np.ndarray:
    """A small preview: the image and (optionally) its coloured mask side by side.

    Used for the scatter's hover tooltip. Resizing is nearest-neighbour, so
    mask colours stay exact.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
    mask : ndarray of int, shape (H, W), optional
    palette : ndarray (n_classes, 3), required with ``mask``
    height : int
        Height of the preview in pixels; the width keeps the aspect ratio.

    Returns
    -------
    ndarray, uint8, shape (height, W', 3)

    Examples
    --------
    >>> img = np.zeros((48, 64, 3), np.float32)
    >>> thumbnail(img, np.zeros((48, 64), int), np.zeros((1, 3), np.uint8), height=24).shape
    (24, 66, 3)
    """
    img = as_uint8(image)
    h, w = img.shape[:2]
    width = max(1, round(w * height / h))
    tiles = [_resize_nearest(img, height, width)]
    if mask is not None:
        if palette is None:
            raise ValueError("thumbnail needs a palette to colour the mask")
        tiles.append(_resize_nearest(colorize(mask, palette), height, width))
    return hstack(tiles, gap=gap)
