"""Colours: class palettes, colormap samples and ``#rrggbb`` strings.

One place for every conversion between palettes (uint8 RGB arrays, one row
per class), matplotlib colormaps and the hex strings that bqplot and HTML
legends take, so that widgets, figures and datasets agree on colours.
matplotlib is imported only by the colormap helpers: the hex conversion runs
on the widgets' path and stays numpy-only.

Examples
--------
>>> from latent_widgets.data.colors import CAMVID_PALETTE, hex_colours
>>> hex_colours(CAMVID_PALETTE[:2])
['#808080', '#800000']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "CAMVID_PALETTE",
    "NO_VALUE_COLOUR",
    "categorical_colours",
    "colormap_rgb",
    "default_palette",
    "hex_colours",
]

#: The standard SegNet colour of each CamVid class (RGB, uint8).
CAMVID_PALETTE: np.ndarray = np.array(
    [
        [128, 128, 128],  # Sky
        [128, 0, 0],  # Building
        [192, 192, 128],  # Pole
        [128, 64, 128],  # Road
        [60, 40, 222],  # Pavement
        [128, 128, 0],  # Tree
        [192, 128, 128],  # SignSymbol
        [64, 64, 128],  # Fence
        [64, 0, 128],  # Car
        [64, 64, 0],  # Pedestrian
        [0, 128, 192],  # Bicyclist
        [0, 0, 0],  # Unlabelled
    ],
    dtype=np.uint8,
)
CAMVID_PALETTE.flags.writeable = False

#: The colour of a point without a value (a field not computed yet, a cell left out of a sampled
#: quality field, no colour field at all): a neutral grey. Its lightness is halfway between tab20's
#: two greys (#7f7f7f, #c7c7c7; CamVid's sky is #808080), a CIELAB distance of about 13 from every colour
#: of tab10 and tab20 and over 30 from every colour of viridis, whose low end is a dark purple.
NO_VALUE_COLOUR = "#a4a4a4"


def colormap_rgb(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Colours of a matplotlib colormap as a uint8 RGB palette.

    Parameters
    ----------
    name : str
        A registered colormap (``"viridis"``, ``"tab20"``...).
    values : array
        Floats in 0..1, or ints that index the colormap's table directly
        (what qualitative maps like ``tab10`` want).

    Returns
    -------
    ndarray, uint8, shape (len(values), 3)

    Examples
    --------
    >>> colormap_rgb("viridis", [0.0, 1.0]).tolist()
    [[68, 1, 84], [253, 231, 37]]
    """
    from matplotlib import colormaps

    return (np.asarray(colormaps[name](np.asarray(values)))[:, :3] * 255).round().astype(np.uint8)


def default_palette(n_classes: int) -> np.ndarray:
    """A distinct RGB colour per class (matplotlib's ``tab20``, then ``hsv``).

    Examples
    --------
    >>> default_palette(3).shape
    (3, 3)
    """
    if n_classes <= 20:
        return colormap_rgb("tab20", np.arange(n_classes) / 20)
    return colormap_rgb("hsv", np.arange(n_classes) / n_classes)


def categorical_colours(n: int) -> list[str]:
    """``n`` hex colours of ``tab10`` (``tab20`` above 10), cycling past 20.

    Examples
    --------
    >>> categorical_colours(2)
    ['#1f77b4', '#ff7f0e']
    """
    name = "tab10" if n <= 10 else "tab20"
    return hex_colours(colormap_rgb(name, np.arange(n) % (10 if n <= 10 else 20)))


def hex_colours(palette: np.ndarray | Sequence[Sequence[float]]) -> list[str]:
    """``#rrggbb`` strings of a palette (for bqplot and HTML legends).

    Parameters
    ----------
    palette : array, shape (n, 3)
        RGB in 0..255 (uint8, or floats that are truncated).

    Examples
    --------
    >>> hex_colours(np.array([[255, 0, 16]]))
    ['#ff0010']
    """
    # A format string, not matplotlib.colors.to_hex: no matplotlib import on
    # the widgets' path, and to_hex wants 0..1 floats.
    return ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in np.asarray(palette)]
