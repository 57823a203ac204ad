"""``CurrentMask``: the mask at the slider's alpha, from the kernel or from the path's grid frames.

The kernel's mask is sent at its own size and the browser upscales it (CSS
"pixelated", so class edges stay sharp): the hot path encodes H x W bytes,
not an upscaled copy. Once the session has decoded the path on a fine alpha
grid, the browser swaps those frames as the slider moves (no kernel round
trip); a partial grid lies over the kernel's mask (one grid cell for both):
where its frame is still to come the canvas is invisible and the kernel's
mask shows through.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ._common import image_pane, labelled
from .scrub import MaskFrames

__all__ = ["PIXELATED_CSS", "CurrentMask"]

# CSS class of images the browser upscales without smoothing.
_PIXELATED = "lw-pixelated"

#: The style sheet the page needs once for the pixelated images.
PIXELATED_CSS = f"<style>img.{_PIXELATED} {{ image-rendering: pixelated; }}</style>"


class CurrentMask:
    """The current mask's pane: the kernel's image, the browser's grid frames over it, a caption.

    Parameters
    ----------
    palette : ndarray (n_classes, 3)
        Class colours of the grid frames.
    display_width : int
        Width of the mask in px.

    Attributes
    ----------
    image : ipywidgets.Image
        The kernel's mask (8-bit BMP).
    frames_view : MaskFrames
        The path's grid frames, swapped in the browser.
    caption : ipywidgets.HTML
        The alpha shown and where the mask comes from.
    widget : ipywidgets.VBox
        The caption above the image and the frames.

    Examples
    --------
    >>> import numpy as np
    >>> pane = CurrentMask(np.zeros((3, 3), np.uint8), display_width=128)
    >>> pane.scrubbing, pane.image.format
    (False, 'bmp')
    """

    def __init__(self, palette: Any, *, display_width: int) -> None:
        self.image = image_pane(display_width)
        self.image.format = "bmp"
        self.frames_view = MaskFrames(palette, display_width=display_width)
        self.frames_view.layout.display = "none"
        self.image.layout.grid_area = self.frames_view.layout.grid_area = "mask"
        self._sent_frames: Any = None
        self.caption = W.HTML()
        grid = W.GridBox(
            [self.image, self.frames_view],
            layout=W.Layout(grid_template_areas='"mask"', align_items="flex-start", justify_items="flex-start"),
        )
        self.widget = labelled(grid, self.caption)
        # CSS hooks for the browser tests and for styling.
        self.image.add_class("lw-current-mask")
        self.image.add_class(_PIXELATED)

    @property
    def scrubbing(self) -> bool:
        """Whether the browser swaps the path's grid frames (no kernel round trip) as alpha moves."""
        return self.frames_view.layout.display != "none"

    def show_frames(self, frames: Any) -> None:
        """Show the session's grid ``frames`` (None: the kernel's mask alone)."""
        if frames is None:
            self.frames_view.layout.display = "none"
            self.image.layout.display = None
            return
        if frames is not self._sent_frames:
            self.frames_view.set_frames(frames.masks, frames.ready)
            self._sent_frames = frames
        # Under a partial grid the kernel's mask stays, for the frames still to come.
        self.image.layout.display = "none" if frames.complete else None
        self.frames_view.layout.display = None

    def show_step(self, step: Any) -> None:
        """Show the session's current step (its mask's image bytes, its alpha)."""
        where = "strip step" if step.cached else "decoded on demand"
        self.caption.value = (
            f"<b style='font-size:12px'>α = {step.alpha:.3f}</b> <span style='font-size:11px'>({where})</span>"
        )
        # Last: observers of the bytes (benchmark, tests) see a complete state.
        self.image.value = step.image
