"""``FractionPlot``: each class's pixel fraction along an interpolation path, with the slider's alpha."""

from __future__ import annotations

import html
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np

from ..data import colors

__all__ = ["FractionPlot"]

# Ticks of the plot's axes.
_QUARTERS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


class FractionPlot:
    """A line per class (its pixel fraction against alpha), a dashed cursor at the slider's alpha, a colour key.

    Parameters
    ----------
    dataset : SegmentationDataset
        Its classes: names and palette.
    height : int
        Plot height in px.

    Attributes
    ----------
    lines : bqplot.Lines
        One line per class; hovering a line names its class.
    cursor : bqplot.Lines
        The vertical line at the slider's alpha.
    figure : bqplot.Figure
    legend : ipywidgets.HTML
        Colour key of the class lines (a bqplot legend would cover the plot at 12 classes).
    widget : ipywidgets.VBox
        The figure above its key.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(4, size=(24, 32), seed=0)
    >>> plot = FractionPlot(ds, height=200)
    >>> plot.show(np.array([0.0, 1.0]), np.full((2, ds.n_classes), 0.5))
    >>> plot.lines.y.shape == (ds.n_classes, 2)
    True
    """

    def __init__(self, dataset: Any, *, height: int) -> None:
        x, y = bq.LinearScale(min=0.0, max=1.0), bq.LinearScale(min=0.0, max=1.0)
        palette = colors.hex_colours(dataset.palette)
        self.lines = bq.Lines(
            x=np.zeros(2),
            y=np.zeros((dataset.n_classes, 2)),
            scales={"x": x, "y": y},
            colors=palette,
            labels=list(dataset.class_names),
            stroke_width=2,
            # Hovering a line names its class.
            tooltip=bq.Tooltip(fields=["name"], labels=["class"]),
        )
        self.cursor = bq.Lines(
            x=np.zeros(2),
            y=np.array([0.0, 1.0]),
            scales={"x": x, "y": y},
            colors=["black"],
            line_style="dashed",
            stroke_width=1,
        )
        self.figure = bq.Figure(
            marks=[self.lines, self.cursor],
            axes=[
                bq.Axis(scale=x, label="alpha", tick_values=_QUARTERS, tick_format="~g"),
                bq.Axis(scale=y, side="left", label="pixel fraction", tick_values=_QUARTERS, tick_format="~g"),
            ],
            fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 20},
            display_toolbar=False,
            layout=W.Layout(width="320px", max_width="100%", height=f"{height}px"),
        )
        self.legend = W.HTML(
            "<div style='font-size:11px;line-height:1.5'>"
            + "".join(
                f"<span style='margin-right:8px;white-space:nowrap'><span style='display:inline-block;"
                f"width:12px;height:3px;vertical-align:middle;background:{c}'></span> {html.escape(str(name))}</span>"
                for c, name in zip(palette, dataset.class_names, strict=False)
            )
            + "</div>",
            layout=W.Layout(width="320px", max_width="100%"),
        )
        self.widget = W.VBox([self.figure, self.legend])

    def show(self, alphas: np.ndarray, fractions: np.ndarray) -> None:
        """Draw the fractions, (steps, classes), of the path's steps at ``alphas``."""
        with self.lines.hold_sync():
            self.lines.x = alphas
            self.lines.y = fractions.T

    def move_cursor(self, alpha: float) -> None:
        """Put the cursor at ``alpha``."""
        self.cursor.x = np.array([alpha, alpha])
