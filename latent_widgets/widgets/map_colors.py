"""The colours a map draws: a colour field turned into colour codes, and its legend.

The session computes a :class:`~latent_widgets.session.ColorField` (values
per point); both maps draw it the same way, as an index into a short list of
colours (categories, or a quantised viridis scale with grey where a value is
missing), so the SVG and the WebGL map show the same colours and legend.
"""

from __future__ import annotations

import html
from typing import NamedTuple

import numpy as np

from ..data import colors
from ..data.colors import NO_VALUE_COLOUR
from ..session import ColorField

__all__ = [
    "COLOR_FIELDS",
    "LINKED_HOVER_COLOUR",
    "NEIGHBOUR_COLOUR",
    "PATH_COLOUR",
    "ColorCodes",
    "color_codes",
    "legend_html",
]

#: The basic fields a map can be coloured by; the session offers more
#: (``session.color_fields()``: per-class IoU, trustworthiness, kNN preservation).
COLOR_FIELDS: tuple[str, ...] = ("group", "dominant class", "mean IoU", "split", "none")

#: The interpolation path, its steps and the slider's point on either map.
PATH_COLOUR = "#d62728"
#: The ring around each path step's nearest sample.
NEIGHBOUR_COLOUR = "#ff8c00"
#: The ring around a sample hovered in a linked explorer.
LINKED_HOVER_COLOUR = "#9467bd"

# Legend entries listed before "… n more".
_LEGEND_ITEMS = 30


class ColorCodes(NamedTuple):
    """A colour field as drawn: a colour index per point, the colours, their legend names.

    Attributes
    ----------
    codes : ndarray of int, shape (N,)
        Index into ``colours`` of each point.
    colours : list of str
        ``#rrggbb`` colours.
    names : list of str
        Legend entry of each colour ("" for the steps of a continuous scale).

    Examples
    --------
    >>> c = ColorCodes(np.array([1, 0]), ["#000000", "#ffffff"], ["black", "white"])
    >>> [c.colours[i] for i in c.codes]
    ['#ffffff', '#000000']
    """

    codes: np.ndarray
    colours: list[str]
    names: list[str]


def _quantised_viridis(values: np.ndarray, lo: float, hi: float, levels: int = 32) -> tuple[np.ndarray, list[str]]:
    colours = colors.hex_colours(colors.colormap_rgb("viridis", np.linspace(0, 1, levels)))
    t = (np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-12)
    return np.clip((t * (levels - 1)).round(), 0, levels - 1).astype(int), colours


def color_codes(field: ColorField) -> ColorCodes:
    """The colour codes of a field: its categories, or 32 steps of viridis (grey where a value is missing).

    Examples
    --------
    >>> f = ColorField("mean IoU", "continuous", np.array([0.0, 1.0, np.nan]), vmin=0.0, vmax=1.0)
    >>> c = color_codes(f)
    >>> c.codes.tolist(), c.colours[-1] == NO_VALUE_COLOUR, c.names[-1]
    ([0, 31, 32], True, 'no value')
    """
    if field.categorical:
        return ColorCodes(np.asarray(field.values, int), list(field.colours), list(field.labels))
    codes, colours = _quantised_viridis(field.values, field.vmin, field.vmax)
    missing = np.isnan(field.values)
    if missing.all():  # not computed (yet): grey, not the scale's bottom colour
        return ColorCodes(np.zeros(len(field.values), int), [NO_VALUE_COLOUR], [""])
    if missing.any():  # e.g. the cells left out of a sampled quality field: grey too
        names = [""] * len(colours) + ["no value"]
        return ColorCodes(np.where(missing, len(colours), codes), [*colours, NO_VALUE_COLOUR], names)
    return ColorCodes(codes, colours, [""] * len(colours))


def legend_html(field: ColorField, drawn: ColorCodes) -> str:
    """The legend under a map: the categories drawn, or the scale with its range and mean.

    Examples
    --------
    >>> f = ColorField("group", "categorical", np.array([0, 1, 1]), ("a", "b"), ("#000000", "#ffffff"))
    >>> "#ffffff" in legend_html(f, color_codes(f))
    True
    """
    name = field.name
    if not field.categorical:
        if field.note and np.isnan(field.values).all():
            return f"<div style='font-size:11px'>{html.escape(name)}: <i>{html.escape(field.note)}</i></div>"
        stops = ", ".join(c for c, label in zip(drawn.colours, drawn.names, strict=True) if not label)  # the scale
        note = f"; <i>{html.escape(field.note)}</i>" if field.note else ""
        return (
            f"<div style='font-size:11px'>{html.escape(name)} {field.vmin:g} <span style='display:inline-block;"
            f"width:120px;height:10px;background:linear-gradient(to right,{stops})'></span> {field.vmax:g} "
            f"(dataset mean {np.nanmean(field.values):.3f}{note})</div>"
        )
    if name == "none":
        return ""
    used = np.unique(drawn.codes)
    items = "".join(
        f"<span style='margin-right:8px;white-space:nowrap'><span style='display:inline-block;width:10px;"
        f"height:10px;background:{drawn.colours[c]};border:1px solid #555'></span> {drawn.names[c]}</span>"
        for c in used[:_LEGEND_ITEMS]
    )
    more = f" … {len(used) - _LEGEND_ITEMS} more" if len(used) > _LEGEND_ITEMS else ""
    return f"<div style='font-size:11px;line-height:1.6'>{items}{more}</div>"
