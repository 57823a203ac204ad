"""``SampleTooltip``: what hovering a map point shows, its sample's image and masks.

The thumbnails are rendered in Python for the hovered sample only and kept
in a bounded cache, so hovering across a large map neither renders every
sample up front nor keeps them all.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..views import render
from ._common import image_pane

__all__ = ["MAX_THUMBNAILS", "SampleTooltip"]

#: Hover thumbnails kept (oldest dropped first).
MAX_THUMBNAILS = 512


class SampleTooltip:
    """A caption and a thumbnail (image, true mask and, when known, the prediction) of one sample.

    Parameters
    ----------
    session : ExplorerSession
        Where the samples and the predictions come from.
    width : int
        Thumbnail width in px.
    placeholder : str
        HTML of the caption before anything is hovered.
    box_width : str, optional
        CSS width of the tooltip's box.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The caption above the thumbnail.
    caption : ipywidgets.HTML
    image : ipywidgets.Image
    thumbnails : dict of int -> bytes
        The PNGs rendered so far, by sample.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> from latent_widgets.session import ExplorerSession
    >>> ds = synthetic_road_scenes(4, size=(24, 32), seed=0)
    >>> s = ExplorerSession(None, ds, latents=ds.images.reshape(4, -1)[:, :8], asynchronous=False)
    >>> tip = SampleTooltip(s, width=200)
    >>> tip.show(2); "#2" in tip.caption.value, list(tip.thumbnails)
    (True, [2])
    """

    def __init__(self, session: Any, *, width: int, placeholder: str = "", box_width: str | None = None) -> None:
        self.session = session
        self.image = image_pane(width)
        self.caption = W.HTML(placeholder)
        layout = W.Layout(padding="4px") if box_width is None else W.Layout(padding="4px", width=box_width)
        self.widget = W.VBox([self.caption, self.image], layout=layout)
        self.widget.add_class("lw-tooltip")
        self.thumbnails: dict[int, bytes] = {}

    def show(self, index: int, detail: str = "") -> None:
        """Show sample ``index``; ``detail`` is added to the caption (the hovered cell)."""
        s = self.session
        self.caption.value = (
            f"<b>#{index}</b> {s.dataset.names[index]}"
            + ("" if s.predictions is None else " · image | truth | prediction")
            + detail
        )
        self.image.value = self.thumbnail(index)

    def thumbnail(self, index: int) -> bytes:
        """PNG of sample ``index``: image, true mask (and prediction)."""
        png = self.thumbnails.get(index)
        if png is None:
            ds, predictions = self.session.dataset, self.session.predictions
            tiles = [render.thumbnail(ds.images[index], ds.masks[index], ds.palette, height=80)]
            if predictions is not None:
                tiles.append(render.thumbnail(render.colorize(predictions[index], ds.palette), height=80))
            png = render.to_png(render.hstack(tiles))
            if len(self.thumbnails) >= MAX_THUMBNAILS:
                self.thumbnails.pop(next(iter(self.thumbnails)))
            self.thumbnails[index] = png
        return png

    def clear(self) -> None:
        """Forget the thumbnails (the predictions changed)."""
        self.thumbnails.clear()

    @property
    def value(self) -> bytes:
        """The PNG bytes shown."""
        return bytes(self.image.value)
