"""``InterpolationSlider``: decode the path between two samples as an alpha slider moves."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..data import colors
from ..session import ExplorerSession, StripStep
from ..views import render
from ._common import (
    ErrorSink,
    View,
    blank_png,
    busy_text,
    image_pane,
    labelled,
    relay_session_errors,
    wait_quietly,
    watch_session,
)
from .scrub import MaskFrames

__all__ = ["InterpolationSlider", "StripStep"]

# Ticks of the class-fraction plot's axes.
_QUARTERS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])

# CSS class of images the browser upscales without smoothing.
_PIXELATED = "lw-pixelated"

# Slider traits and the session traits they mirror.
_LINKED = {
    "index_a": "index_a",
    "index_b": "index_b",
    "alpha": "alpha",
    "method": "path_method",
    "skip_policy": "skip_policy",
    "n_steps": "n_steps",
}


class InterpolationSlider(View):
    """Interpolate between two samples' latents and decode as ``alpha`` moves.

    A view of an :class:`~latent_widgets.session.ExplorerSession`: its
    traits are linked to the session's (``method`` to ``path_method``), and
    it draws the session's strip and current mask. The session decodes the
    strip of ``n_steps`` evenly spaced alphas in one batch and caches it per
    path; setting ``alpha`` to one of its steps only swaps image bytes. Any
    other alpha is decoded on demand: on the session's background lane when
    ``asynchronous`` (the newest request wins), or inline otherwise (tests,
    benchmarks).

    Parameters
    ----------
    model : LatentModel, optional
        ``encode`` / ``decode`` / ``has_skips`` / ``latent_shape`` (when no
        ``session`` is given).
    dataset : SegmentationDataset, optional
    session : ExplorerSession, optional
        The state to show; one is made from the other arguments if omitted.
    encoding : Encoding, optional
        The dataset's encoding (``model.encode_dataset(dataset)`` if omitted).
    index_a, index_b : int
        Endpoints (``index_b`` defaults to the last sample).
    n_steps : int
        Steps of the strip (default 12).
    method : {"linear", "spherical"}
    skip_policy : {"image", "skips", "hold_a", "hold_b"}
        How skip features are formed along the path (decoders with skips).
    alpha : float
        Initial slider value.
    asynchronous : bool
        Decode in background threads.
    display_width : int
        Width of the current mask in px; strip tiles are a third of that.
    max_cached_strips : int
        Decoded strips kept (least recently used dropped first).
    scrub_steps : int
        Frames of the fine alpha grid that the browser swaps as the slider
        moves (0: every value is decoded by the kernel).
    errors : ErrorSink, optional

    Attributes
    ----------
    index_a, index_b, n_steps : int (traits)
    alpha : float (trait)
    method, skip_policy : str (traits)
    strip_version : int (trait)
        Incremented each time a new strip is shown (observe it to follow the path).
    show_movement : bool (trait)
        The "cell movement" toggle (latent grids only): image A shows how
        far each latent cell moves along the whole path (``total`` of
        :meth:`~latent_widgets.session.ExplorerSession.cell_movement`) and
        each strip tile how far its cells moved since the previous step
        (``per_step``; none on the first tile), as a heatmap over the
        image or mask (:func:`~latent_widgets.widgets.cell_overlay.movement_overlay`).
    current_alpha : float
        Alpha of the mask on display (lags ``alpha`` while a decode runs).
    current_mask, current_probs, current_latent : ndarray
    image_value : bytes
        Image bytes (8-bit BMP, see :func:`latent_widgets.views.render.mask_bmp`)
        of the current mask.
    strip : PathResult
        The decoded strip; ``neighbor_indices`` its steps' nearest real samples.
    fractions : ndarray (n_steps, n_classes)
        Per-class pixel fraction of each strip step.

    Examples
    --------
    >>> slider = InterpolationSlider(model, ds, asynchronous=False)  # doctest: +SKIP
    >>> slider.alpha = 0.37; slider.current_mask.shape  # doctest: +SKIP
    (96, 128)
    """

    index_a = traitlets.Int(0)
    index_b = traitlets.Int(1)
    alpha = traitlets.Float(0.0, min=0.0, max=1.0)
    method = traitlets.Unicode("linear")
    skip_policy = traitlets.Unicode("image")
    n_steps = traitlets.Int(12, min=2, max=64)
    strip_version = traitlets.Int(0)
    show_movement = traitlets.Bool(False)

    def __init__(
        self,
        model: Any = None,
        dataset: Any = None,
        *,
        session: ExplorerSession | None = None,
        encoding: Any = None,
        index_a: int = 0,
        index_b: int | None = None,
        n_steps: int = 12,
        method: str = "linear",
        skip_policy: str = "image",
        alpha: float = 0.0,
        asynchronous: bool = True,
        display_width: int = 256,
        max_cached_strips: int = 8,
        scrub_steps: int = 64,
        errors: ErrorSink | None = None,
    ) -> None:
        super().__init__()
        if session is None:
            session = ExplorerSession(
                model,
                dataset,
                encoding=encoding,
                index_a=index_a,
                index_b=index_b,
                n_steps=n_steps,
                path_method=method,
                skip_policy=skip_policy,
                alpha=alpha,
                asynchronous=asynchronous,
                max_cached_strips=max_cached_strips,
                predict=False,  # the slider shows decoded paths, not the dataset's predictions
                scrub_steps=scrub_steps,
            )
            own_session = True
        else:
            own_session = False
        self.session = session
        self.model, self.dataset = session.model, session.dataset
        self.errors = errors or ErrorSink()
        if own_session:
            relay_session_errors(self.errors, session)
        ds = self.dataset
        n = len(ds)
        h, w = ds.image_size
        from ..analysis.interpolation import PATH_METHODS, SKIP_POLICIES

        # The current mask is sent at its own size and the browser upscales it
        # (CSS "pixelated", so class edges stay sharp): the hot path encodes
        # H x W bytes, not an upscaled copy.
        self.scale = 1
        shown_scale = render.display_scale(h, w, display_width)
        self.tile_width = max(64, display_width // 3)
        self.tile_scale = render.display_scale(h, w, self.tile_width)

        # ---- controls
        bounded = dict(min=0, max=n - 1, layout=W.Layout(width="130px"), style={"description_width": "20px"})
        self._a_box = W.BoundedIntText(description="A", **bounded)
        self._b_box = W.BoundedIntText(description="B", **bounded)
        self._method_buttons = W.ToggleButtons(options=list(PATH_METHODS), style={"button_width": "84px"})
        self._policy_dropdown = W.Dropdown(
            options=list(SKIP_POLICIES),
            description="skips",
            disabled=not getattr(self.model, "has_skips", False),
            layout=W.Layout(width="170px"),
            style={"description_width": "38px"},
        )
        self._steps_box = W.BoundedIntText(
            min=2, max=64, description="steps", layout=W.Layout(width="120px"), style={"description_width": "38px"}
        )
        self.slider = W.FloatSlider(
            min=0.0,
            max=1.0,
            step=0.01,
            description="alpha",
            continuous_update=True,
            readout_format=".2f",
            layout=W.Layout(width="460px"),
            style={"description_width": "40px"},
        )
        self._status = W.HTML(layout=W.Layout(width="160px"))
        self.image = image_pane(display_width)
        self.image.format = "bmp"
        # The path's masks on a fine alpha grid, swapped in the browser as the
        # slider moves (no kernel round trip); shown instead of ``image`` once
        # the session has decoded the grid. A partial grid lies over ``image``
        # (one grid cell for both): where its frame is still to come the canvas
        # is invisible and the kernel's mask shows through.
        self.frames_view = MaskFrames(ds.palette, display_width=display_width)
        self.frames_view.layout.display = "none"
        self.image.layout.grid_area = self.frames_view.layout.grid_area = "mask"
        self._frames_link = W.jslink((self.slider, "value"), (self.frames_view, "alpha"))
        self._sent_frames: Any = None
        self._caption = W.HTML()
        self._a_image = image_pane(self.tile_width)
        self._b_image = image_pane(self.tile_width)
        self._a_caption, self._b_caption = W.HTML(), W.HTML()

        # ---- per-class pixel fraction against alpha
        self._fx = bq.LinearScale(min=0.0, max=1.0)
        self._fy = bq.LinearScale(min=0.0, max=1.0)
        palette = colors.hex_colours(ds.palette)
        self.fraction_lines = bq.Lines(
            x=np.zeros(2),
            y=np.zeros((ds.n_classes, 2)),
            scales={"x": self._fx, "y": self._fy},
            colors=palette,
            labels=list(ds.class_names),
            stroke_width=2,
            # Hovering a line names its class.
            tooltip=bq.Tooltip(fields=["name"], labels=["class"]),
        )
        self.fraction_cursor = bq.Lines(
            x=np.zeros(2),
            y=np.array([0.0, 1.0]),
            scales={"x": self._fx, "y": self._fy},
            colors=["black"],
            line_style="dashed",
            stroke_width=1,
        )
        self.fraction_figure = bq.Figure(
            marks=[self.fraction_lines, self.fraction_cursor],
            axes=[
                bq.Axis(scale=self._fx, label="alpha", tick_values=_QUARTERS, tick_format="~g"),
                bq.Axis(scale=self._fy, side="left", label="pixel fraction", tick_values=_QUARTERS, tick_format="~g"),
            ],
            fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 20},
            display_toolbar=False,
            layout=W.Layout(width="320px", max_width="100%", height=f"{max(200, int(h * shown_scale) + 40)}px"),
        )
        #: Colour key of the class lines (a bqplot legend would cover the plot at 12 classes).
        self.fraction_legend = W.HTML(
            "<div style='font-size:11px;line-height:1.5'>"
            + "".join(
                f"<span style='margin-right:8px;white-space:nowrap'><span style='display:inline-block;"
                f"width:12px;height:3px;vertical-align:middle;background:{c}'></span> {html.escape(str(name))}</span>"
                for c, name in zip(palette, ds.class_names, strict=False)
            )
            + "</div>",
            layout=W.Layout(width="320px", max_width="100%"),
        )

        # ---- strip: decoded step over its nearest real neighbour
        # The strip scrolls sideways inside the output area when its columns do not fit.
        self.strip_box = W.GridBox(
            layout=W.Layout(grid_gap="2px 4px", max_width="100%", overflow="auto hidden", padding="0 0 6px 0")
        )
        self._strip_caption = W.HTML()
        # (top image, top caption, bottom image, bottom caption, top box, bottom box) per step
        self._tiles: list[tuple[Any, ...]] = []
        self.neighbor_values: list[bytes] = []
        self._drawn_strip: Any = None
        self.movement: Any = None
        self._movement_button = W.ToggleButton(
            value=False,
            description="cell movement",
            icon="th",
            tooltip="heatmap of how far each latent cell moves: in total over image A, per step over the strip",
            layout=W.Layout(width="auto", min_width="max-content"),
            disabled=session.grid is None,
        )
        self._movement_button.add_class("lw-cell-movement")
        wrap = dict(flex_flow="row wrap", align_items="flex-start")
        self.widget = W.VBox(
            [
                W.HTML(f"<style>img.{_PIXELATED} {{ image-rendering: pixelated; }}</style>"),
                W.HBox(
                    [self._a_box, self._b_box, self._method_buttons, self._policy_dropdown, self._steps_box],
                    layout=W.Layout(**wrap),
                ),
                W.HBox([self.slider, self._movement_button, self._status], layout=W.Layout(**wrap)),
                W.HBox(
                    [
                        W.VBox([labelled(self._a_image, self._a_caption), labelled(self._b_image, self._b_caption)]),
                        labelled(
                            W.GridBox(
                                [self.image, self.frames_view],
                                layout=W.Layout(
                                    grid_template_areas='"mask"', align_items="flex-start", justify_items="flex-start"
                                ),
                            ),
                            self._caption,
                        ),
                        labelled(W.VBox([self.fraction_figure, self.fraction_legend]), "class pixel fraction"),
                    ],
                    layout=W.Layout(**wrap),
                ),
                labelled(self.strip_box, self._strip_caption),
            ],
            layout=W.Layout(max_width="100%"),
        )
        self.widget.add_class("lw-slider-panel")

        # CSS hooks for the browser tests and for styling.
        self.slider.add_class("lw-alpha-slider")
        self.image.add_class("lw-current-mask")
        self.image.add_class(_PIXELATED)
        self.strip_box.add_class("lw-strip")

        # ---- state lives in the session: mirror it, and the controls mirror the traits.
        for mine, theirs in _LINKED.items():
            self.set_trait(mine, getattr(session, theirs))
            traitlets.link((self, mine), (session, theirs))
        for box, trait in (
            (self._a_box, "index_a"),
            (self._b_box, "index_b"),
            (self._method_buttons, "method"),
            (self._policy_dropdown, "skip_policy"),
            (self._steps_box, "n_steps"),
            (self.slider, "alpha"),
        ):
            W.link((self, trait), (box, "value"))
        W.link((self, "show_movement"), (self._movement_button, "value"))
        self._observe_guarded(self._on_show_movement, "show_movement")
        watch_session(self, session, self._on_strip, "strip")
        watch_session(self, session, self._on_current, "current")
        watch_session(self, session, self._on_busy, ["busy", "progress"])
        watch_session(self, session, self._on_frames, "frames")
        self.observe(lambda c: setattr(self.fraction_cursor, "x", np.array([c["new"], c["new"]])), "alpha")
        self._on_strip(None)
        self._on_current(None)
        self._on_busy(None)
        self._on_frames(None)

    # ------------------------------------------------------------------ public

    @property
    def strip(self) -> Any:
        """The decoded strip (:class:`~latent_widgets.analysis.interpolation.PathResult`) of the current path."""
        strip = self.session.strip
        return None if strip is None else strip.result

    @property
    def alphas(self) -> np.ndarray:
        """Alphas of the strip steps."""
        from ..analysis.interpolation import steps

        return np.asarray(steps(self.n_steps), np.float64)

    @property
    def strip_values(self) -> list[bytes]:
        """Image bytes (BMP) of the strip steps' masks, as the current-mask pane shows them."""
        strip = self.session.strip
        return [] if strip is None else [s.image for s in strip.steps]

    @property
    def fractions(self) -> np.ndarray | None:
        """Per-class pixel fraction of each strip step, (n_steps, n_classes)."""
        strip = self.session.strip
        return None if strip is None else strip.fractions

    @property
    def neighbor_indices(self) -> np.ndarray:
        """Index of the nearest real sample of each strip step, shape (n_steps,)."""
        return self.session.strip.neighbor_indices

    @property
    def neighbor_distances(self) -> np.ndarray:
        """Latent distance of each strip step to its nearest real sample."""
        return self.session.strip.neighbor_distances

    @property
    def n_distinct(self) -> int:
        """Distinct nearest real samples along the strip."""
        strip = self.session.strip
        return 0 if strip is None else strip.n_distinct

    @property
    def ondemand_decodes(self) -> int:
        """How many on-demand (non-strip) decodes ran; strip steps do not count."""
        return self.session.ondemand_decodes

    def _current(self, field: str) -> Any:
        step = self.session.current
        return None if step is None else getattr(step, field)

    @property
    def current_alpha(self) -> float | None:
        """Alpha of the mask on display (lags ``alpha`` while a decode runs)."""
        return self._current("alpha")

    @property
    def current_mask(self) -> np.ndarray | None:
        return self._current("mask")

    @property
    def current_probs(self) -> np.ndarray | None:
        return self._current("probs")

    @property
    def current_latent(self) -> np.ndarray | None:
        return self._current("latent")

    @property
    def image_value(self) -> bytes:
        """Image bytes (BMP) of the mask on display."""
        return bytes(self.image.value)

    @property
    def busy(self) -> bool:
        """Whether a strip or on-demand decode is queued or running."""
        return bool({"strip", "decode"} & set(self.session.busy))

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until the session's queued jobs are done and shown (errors are reported, not raised)."""
        wait_quietly(self.session, timeout)

    def close(self) -> None:
        """Stop the session's workers."""
        self.session.close()

    def decode_alpha(self, alpha: float, key: tuple | None = None) -> StripStep:
        """Decode the path at one ``alpha`` (no caching, no display)."""
        return self.session.decode_alpha(alpha, None if key is None else type(self.session.key)(*key))

    # ------------------------------------------------------------------ drawing

    @property
    def scrubbing(self) -> bool:
        """Whether the browser swaps the path's grid frames (no kernel round trip) as alpha moves."""
        return self.frames_view.layout.display != "none"

    def _on_frames(self, _change: Any) -> None:
        frames = self.session.frames
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

    def _on_busy(self, _change: Any) -> None:
        running = [b for b in self.session.busy if not b.startswith("map")]
        self._status.value = f"<i>{html.escape(busy_text(running, self.session.progress))}…</i>" if running else ""

    def _on_current(self, _change: Any) -> None:
        step = self.session.current
        if step is None:
            return
        where = "strip step" if step.cached else "decoded on demand"
        self._caption.value = (
            f"<b style='font-size:12px'>α = {step.alpha:.3f}</b> <span style='font-size:11px'>({where})</span>"
        )
        # Last: observers of the bytes (benchmark, tests) see a complete state.
        self.image.value = step.image

    def _on_show_movement(self, change: Mapping[str, Any]) -> None:
        if change["new"] and self.session.grid is None:
            self.show_movement = False
            raise ValueError("cell movement needs latents with a spatial grid (h, w, C); these are flat")
        self._drawn_strip = None  # redraw the strip with (or without) the heatmaps
        self._on_strip(None)

    def _movement_png(self, rgb: np.ndarray, values: np.ndarray | None, vmax: float) -> bytes:
        """PNG of ``rgb`` (uint8, H x W x 3) at tile scale, with the cells' ``values`` as a heatmap over it."""
        from .cell_overlay import movement_overlay

        if values is not None:
            rgb = movement_overlay(rgb, values, vmax=vmax)
        return render.to_png(rgb, scale=self.tile_scale)

    def _on_strip(self, _change: Any) -> None:
        strip = self.session.strip
        if strip is None or strip is self._drawn_strip:
            return
        self._drawn_strip = strip
        ds = self.dataset
        a, b = strip.key.index_a, strip.key.index_b
        movement = self.session.cell_movement() if self.show_movement else None
        #: The cell movement drawn over image A and the strip tiles, or None.
        self.movement = movement
        if movement is None:
            self._a_image.value = render.to_png(ds.images[a], scale=self.tile_scale)
        else:
            top = float(movement.total.max())
            self._a_image.value = self._movement_png(render.as_uint8(ds.images[a]), movement.total, top)
        self._b_image.value = render.to_png(ds.images[b], scale=self.tile_scale)
        self._a_caption.value = f"<b style='font-size:12px'>A = #{a}</b>"
        self._b_caption.value = f"<b style='font-size:12px'>B = #{b}</b>"
        nb, dist = strip.neighbor_indices, strip.neighbor_distances
        n = len(strip.steps)
        # Tile widgets are reused across strips (new widgets per strip would
        # pile up in the kernel and the page).
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
                top_img.value = self._movement_png(rgb, values, float(movement.per_step.max()))
            top_cap.value = f"<b style='font-size:12px'>α={step.alpha:.2f}</b>"
            if j < 0:
                bottom_img.value = blank_png(*step.mask.shape)
                bottom_cap.value = "<span style='font-size:10px;white-space:nowrap'><i>nearest: encoding…</i></span>"
            else:
                bottom_img.value = render.mask_png(ds.masks[j], ds.palette, scale=self.tile_scale)
                bottom_cap.value = f"<span style='font-size:10px;white-space:nowrap'>#{j} d={dist[i]:.2g}</span>"
        tiles = self._tiles[:n]
        #: PNG bytes of the nearest real sample's mask under each strip step.
        self.neighbor_values = [bytes(t[2].value) for t in tiles]
        nearest = (
            f"{strip.n_distinct} distinct samples"
            if strip.has_neighbors
            else "<i>found once the dataset is encoded</i>"
        )
        self._strip_caption.value = (
            f"<b style='font-size:12px'>strip: {n} decoded steps (top), each over its nearest real sample "
            f"(bottom, latent distance d): {nearest}</b>"
        )
        self.strip_box.layout.grid_template_columns = f"repeat({n}, {self.tile_width}px)"
        self.strip_box.children = [t[4] for t in tiles] + [t[5] for t in tiles]
        with self.fraction_lines.hold_sync():
            self.fraction_lines.x = strip.alphas
            self.fraction_lines.y = strip.fractions.T
        self.strip_version += 1
