"""``InterpolationSlider``: decode the path between two samples as an alpha slider moves."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..session import ExplorerSession, StripStep
from ..views import render
from ._common import (
    ErrorSink,
    View,
    image_pane,
    labelled,
    relay_session_errors,
    wait_quietly,
    watch_session,
)
from .busy_status import BusyStatus
from .current_mask import PIXELATED_CSS, CurrentMask
from .fraction_plot import FractionPlot
from .strip_tiles import StripTiles, movement_png

__all__ = ["InterpolationSlider", "StripStep"]

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

        # The current mask is sent at its own size, the browser upscales it (see current_mask).
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
        #: The mask at the slider's alpha (:attr:`image`: the kernel's, :attr:`frames_view`: the browser's).
        self.current_pane = CurrentMask(ds.palette, display_width=display_width)
        self.image, self.frames_view = self.current_pane.image, self.current_pane.frames_view
        self._frames_link = W.jslink((self.slider, "value"), (self.frames_view, "alpha"))
        self._a_image = image_pane(self.tile_width)
        self._b_image = image_pane(self.tile_width)
        self._a_caption, self._b_caption = W.HTML(), W.HTML()

        # ---- per-class pixel fraction against alpha
        #: The class pixel fractions along the strip, and the slider's alpha on them.
        self.fraction_plot = FractionPlot(ds, height=max(200, int(h * shown_scale) + 40))
        # ---- strip: decoded step over its nearest real neighbour
        #: The strip's tiles (:attr:`strip_box` is their grid).
        self.strip_tiles = StripTiles(ds, tile_width=self.tile_width, tile_scale=self.tile_scale)
        self.strip_box = self.strip_tiles.box
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
                W.HTML(PIXELATED_CSS),
                W.HBox(
                    [self._a_box, self._b_box, self._method_buttons, self._policy_dropdown, self._steps_box],
                    layout=W.Layout(**wrap),
                ),
                W.HBox([self.slider, self._movement_button, self._status], layout=W.Layout(**wrap)),
                W.HBox(
                    [
                        W.VBox([labelled(self._a_image, self._a_caption), labelled(self._b_image, self._b_caption)]),
                        self.current_pane.widget,
                        labelled(self.fraction_plot.widget, "class pixel fraction"),
                    ],
                    layout=W.Layout(**wrap),
                ),
                labelled(self.strip_box, self.strip_tiles.caption),
            ],
            layout=W.Layout(max_width="100%"),
        )
        self.widget.add_class("lw-slider-panel")

        # CSS hooks for the browser tests and for styling.
        self.slider.add_class("lw-alpha-slider")

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
        #: The jobs the slider waits for (not the maps'), once they have lasted a moment.
        self.busy_status = BusyStatus(self, session, self._show_busy, keep=lambda job: not job.startswith("map"))
        watch_session(self, session, self._on_frames, "frames")
        self.observe(lambda c: self.fraction_plot.move_cursor(c["new"]), "alpha")
        self._on_strip(None)
        self._on_current(None)
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
    def neighbor_values(self) -> list[bytes]:
        """PNG bytes of the nearest real sample's mask under each strip step."""
        return self.strip_tiles.neighbor_values

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
        return self.current_pane.scrubbing

    def _on_frames(self, _change: Any) -> None:
        self.current_pane.show_frames(self.session.frames)

    def _show_busy(self, text: str) -> None:
        self._status.value = f"<i>{html.escape(text)}…</i>" if text else ""

    def _on_current(self, _change: Any) -> None:
        if self.session.current is not None:
            self.current_pane.show_step(self.session.current)

    def _on_show_movement(self, change: Mapping[str, Any]) -> None:
        if change["new"] and self.session.grid is None:
            self.show_movement = False
            raise ValueError("cell movement needs latents with a spatial grid (h, w, C); these are flat")
        self._drawn_strip = None  # redraw the strip with (or without) the heatmaps
        self._on_strip(None)

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
            self._a_image.value = movement_png(render.as_uint8(ds.images[a]), movement.total, top, self.tile_scale)
        self._b_image.value = render.to_png(ds.images[b], scale=self.tile_scale)
        self._a_caption.value = f"<b style='font-size:12px'>A = #{a}</b>"
        self._b_caption.value = f"<b style='font-size:12px'>B = #{b}</b>"
        self.strip_tiles.show(strip, movement)
        self.fraction_plot.show(strip.alphas, strip.fractions)
        self.strip_version += 1
