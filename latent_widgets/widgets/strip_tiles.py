"""``StripTiles``: the decoded strip of a path, each step over its nearest real sample.

The tile widgets are made once and reused across strips: new widgets per
strip would pile up in the kernel and the page.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np

from ..views import render
from ._common import blank_png, image_pane

__all__ = ["StripTiles", "movement_png"]


def movement_png(rgb: np.ndarray, values: np.ndarray | None, vmax: float, scale: int) -> bytes:
    """PNG of ``rgb`` (uint8, H x W x 3) at ``scale``, with the cells' ``values`` as a heatmap over it.

    Examples
    --------
    >>> movement_png(np.zeros((4, 4, 3), np.uint8), np.array([[0.0, 1.0]]), 1.0, 1)[:4]
    b'\\x89PNG'
    """
    from .cell_overlay import movement_overlay

    if values is not None:
        rgb = movement_overlay(rgb, values, vmax=vmax)
    return render.to_png(rgb, scale=scale)


class StripTiles:
    """A grid of the strip's steps: the decoded mask (top) over its nearest real sample's mask (bottom).

    Parameters
    ----------
    dataset : SegmentationDataset
        The real samples' masks and the palette.
    tile_width : int
        Width of a tile in px.
    tile_scale : int
        Integer upscale of the masks in a tile.

    Attributes
    ----------
    box : ipywidgets.GridBox
        The tiles, a column per step; it scrolls sideways when they do not fit.
    caption : ipywidgets.HTML
        What the strip shows (steps, distinct nearest samples).
    step_values : list of bytes
        PNG bytes of each step's tile (its decoded mask, with the cell movement when shown).
    neighbor_values : list of bytes
        PNG bytes of the nearest real sample's mask under each step.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> tiles = StripTiles(synthetic_road_scenes(4, size=(24, 32), seed=0), tile_width=64, tile_scale=2)
    >>> tiles.box.children
    ()
    """

    def __init__(self, dataset: Any, *, tile_width: int, tile_scale: int) -> None:
        self.dataset, self.tile_width, self.tile_scale = dataset, tile_width, tile_scale
        self.box = W.GridBox(
            layout=W.Layout(grid_gap="2px 4px", max_width="100%", overflow="auto hidden", padding="0 0 6px 0")
        )
        self.box.add_class("lw-strip")
        self.caption = W.HTML()
        # (top image, top caption, bottom image, bottom caption, top box, bottom box) per step
        self._tiles: list[tuple[Any, ...]] = []
        self.step_values: list[bytes] = []
        self.neighbor_values: list[bytes] = []

    def show(self, strip: Any, movement: Any = None) -> None:
        """Draw ``strip`` (the session's); with ``movement``, each step's cell movement since the previous one."""
        ds = self.dataset
        nb, dist = strip.neighbor_indices, strip.neighbor_distances
        n = len(strip.steps)
        while len(self._tiles) < n:
            top_img, top_cap = image_pane(self.tile_width), W.HTML()
            bottom_img, bottom_cap = image_pane(self.tile_width), W.HTML()
            self._tiles.append(
                (top_img, top_cap, bottom_img, bottom_cap, W.VBox([top_cap, top_img]), W.VBox([bottom_img, bottom_cap]))
            )
        for i, step in enumerate(strip.steps):
            top_img, top_cap, bottom_img, bottom_cap, _, _ = self._tiles[i]
            j = int(nb[i])  # -1 until the dataset is encoded
            if movement is None:
                top_img.value = render.mask_png(step.mask, ds.palette, scale=self.tile_scale)
            else:
                # Step i shows how far its cells moved since step i - 1 (one scale for the strip).
                values = movement.per_step[i - 1] if i > 0 else None
                rgb = render.colorize(step.mask, ds.palette)
                top_img.value = movement_png(rgb, values, float(movement.per_step.max()), self.tile_scale)
            top_cap.value = f"<b style='font-size:12px'>α={step.alpha:.2f}</b>"
            if j < 0:
                bottom_img.value = blank_png(*step.mask.shape)
                bottom_cap.value = "<span style='font-size:10px;white-space:nowrap'><i>nearest: encoding…</i></span>"
            else:
                bottom_img.value = render.mask_png(ds.masks[j], ds.palette, scale=self.tile_scale)
                bottom_cap.value = f"<span style='font-size:10px;white-space:nowrap'>#{j} d={dist[i]:.2g}</span>"
        tiles = self._tiles[:n]
        self.step_values = [bytes(t[0].value) for t in tiles]
        self.neighbor_values = [bytes(t[2].value) for t in tiles]
        nearest = (
            f"{strip.n_distinct} distinct samples"
            if strip.has_neighbors
            else "<i>found once the dataset is encoded</i>"
        )
        self.caption.value = (
            f"<b style='font-size:12px'>strip: {n} decoded steps (top), each over its nearest real sample "
            f"(bottom, latent distance d): {nearest}</b>"
        )
        self.box.layout.grid_template_columns = f"repeat({n}, {self.tile_width}px)"
        self.box.children = [t[4] for t in tiles] + [t[5] for t in tiles]
