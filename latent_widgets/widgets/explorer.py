"""``LatentExplorer``: the scatter, the mask viewer and the slider, linked."""

from __future__ import annotations

import datetime
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..session import ExplorerSession
from ..study.figures import default_endpoints
from ._common import ErrorSink, View, relay_session_errors, wait_quietly, watch_session
from .busy_status import BusyStatus
from .interpolation_slider import InterpolationSlider
from .map_choice import map_class, projection_map
from .mask_viewer import MaskViewer
from .scatter import DEFAULT_GL_THRESHOLD
from .selection_panel import SelectionPanel

__all__ = ["CLICK_ACTIONS", "LatentExplorer"]

#: What a click on the map does besides showing the sample: nothing, set A, set B.
CLICK_ACTIONS: tuple[str, ...] = ("show", "set A", "set B")


class LatentExplorer(View):
    """Explore a model's latent space: map, sample viewer and interpolation, linked.

    The three widgets are views of one
    :class:`~latent_widgets.session.ExplorerSession` (:attr:`session`),
    which holds the state and runs the long jobs (encoding at start, map
    fits, strip and slider decodes) in background threads: the page stays
    live and a busy indicator says what runs. Clicking a point shows the
    sample in the mask viewer and, when the "click" toggle
    (:attr:`click_action`) is on "set A" or "set B", makes it that
    endpoint once (the toggle then returns to "show"); the strip's path, its nearest neighbours and the
    slider's current point are drawn on the map. Exceptions raised in any
    callback are shown in :attr:`output` (and listed in
    ``explorer.errors.messages``) instead of being lost in the browser
    console.

    Parameters
    ----------
    latent_model : LatentModel
        The encoder / decoder pair (``LatentModel.from_model(net)``).
    dataset : SegmentationDataset
    encoding : Encoding, optional
        The dataset's encoding; ``latent_model.encode_dataset(dataset)``
        (disk-cached) by default.
    predictions : ndarray (N, H, W), optional
        Predicted masks; computed with ``predict_masks`` by default.
    map_method : str
        Initial projection ("pca", "tsne", "umap"); the session's ``map_method``.
    methods : sequence of str
        Projections offered on the map.
    projections : mapping, optional
        Precomputed maps (see :class:`ProjectionScatter`).
    projection_kwargs : mapping method -> dict, optional
        Settings of each map method's fit, e.g. ``{"umap": {"n_neighbors": 30}}``.
    splits : sequence of str, optional
        Split name per sample (colour field "split").
    index_a, index_b : int, optional
        Initial endpoints (default: :func:`~latent_widgets.study.default_endpoints`, as the CLI's figures).
    n_steps : int
        Steps of the interpolation strip.
    asynchronous : bool
        Decode slider values in a background thread (newest request wins).
    selected : int, optional
        Sample shown first in the viewer (default ``index_a``).
    display_width : int
        Width of the mask panes in px.
    gl_threshold : int
        Points above which the map is drawn with WebGL (:class:`WebGLMap`,
        jupyter-scatter) instead of SVG (:class:`ProjectionScatter`, with
        index labels); see :func:`~latent_widgets.widgets.map_choice.projection_map`.
        Counted in map points: a map of cells (``map_points="cells"``) has
        ``h * w`` per sample, and switching to it swaps the map when it
        crosses the threshold.
    map_points : str
        What a map point is at start: "flatten", "pooled" or "cells"
        (see :attr:`~latent_widgets.session.ExplorerSession.map_points`).

    Attributes
    ----------
    session : ExplorerSession
        All state the widgets show; drive it from Python.
    scatter : ProjectionScatter or WebGLMap
        The map (:func:`~latent_widgets.widgets.map_choice.projection_map` picks it).
    viewer : MaskViewer
    slider : InterpolationSlider
    selection_panel : SelectionPanel
        The selection's count, mean IoU, confusion matrix and worst samples.
    output : ipywidgets.Output
        Callback errors.
    errors : ErrorSink
    click_action : str (trait)
        One of :data:`CLICK_ACTIONS`.
    widget : ipywidgets.VBox

    Examples
    --------
    >>> import latent_widgets as lw  # doctest: +SKIP
    >>> lw.LatentExplorer(lw.LatentModel.from_model(net), data)  # doctest: +SKIP
    """

    click_action = traitlets.Unicode("show")

    def __init__(
        self,
        latent_model: Any,
        dataset: Any,
        *,
        encoding: Any = None,
        predictions: np.ndarray | None = None,
        map_method: str = "pca",
        methods: Sequence[str] = ("pca", "tsne", "umap"),
        projections: Mapping[str, np.ndarray] | None = None,
        projection_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        splits: Sequence[str] | None = None,
        index_a: int | None = None,
        index_b: int | None = None,
        n_steps: int = 12,
        asynchronous: bool = True,
        selected: int | None = None,
        display_width: int = 256,
        gl_threshold: int = DEFAULT_GL_THRESHOLD,
        map_points: str = "flatten",
    ) -> None:
        super().__init__()
        self.output = W.Output(layout=W.Layout(max_height="260px", overflow="auto", border="1px solid #e0b0b0"))
        self.errors = ErrorSink(self.output)
        index_a, index_b = default_endpoints(len(dataset), index_a, index_b)
        #: All state and long jobs; the widgets below are its views.
        self.session = session = ExplorerSession(
            latent_model,
            dataset,
            encoding=encoding,
            predictions=predictions,
            methods=methods,
            map_method=map_method,
            projections=projections,
            projection_kwargs=projection_kwargs,
            index_a=index_a,
            index_b=index_b,
            n_steps=n_steps,
            selected=selected,
            asynchronous=asynchronous,
            map_points=map_points,
        )
        self.model, self.dataset = latent_model, dataset
        self.gl_threshold = gl_threshold
        #: Called with (old map, new map) when the map is swapped (see :meth:`_on_map_points`).
        self.map_swap_hooks: list[Any] = []
        self.scatter = projection_map(session=session, splits=splits, gl_threshold=gl_threshold, errors=self.errors)
        self._map_column = W.VBox([self._click_placeholder(), self.scatter.widget], layout=W.Layout(max_width="100%"))
        self.viewer = MaskViewer(session=session, display_width=display_width, errors=self.errors)
        self.slider = InterpolationSlider(session=session, display_width=display_width, errors=self.errors)
        self.selection_panel = SelectionPanel(session, errors=self.errors)
        #: Where the last export went (the files written), or empty.
        self.exported: list[Path] = []
        self._export_button = W.Button(
            description="export", icon="download", tooltip="write session.json and the figures (PNG, SVG)"
        )
        self._export_button.add_class("lw-export-button")
        self._export_button.on_click(self.errors.guard(lambda _: self.export()))
        self._export_status = W.HTML()
        self._export_status.add_class("lw-export-status")

        self._click_buttons = W.ToggleButtons(
            options=list(CLICK_ACTIONS),
            description="click:",
            style={"button_width": "64px", "description_width": "40px"},
            tooltips=[
                "show the sample",
                "show it and make it endpoint A (once)",
                "show it and make it endpoint B (once)",
            ],
        )
        W.link((self, "click_action"), (self._click_buttons, "value"))
        clear = W.Button(description="clear errors", layout=W.Layout(width="110px"))
        clear.on_click(lambda _: self.clear_errors())
        #: What the session is computing (a spinner and the job names), empty when idle.
        self.busy_indicator = W.HTML()
        self.busy_indicator.add_class("lw-busy")
        name = getattr(getattr(latent_model, "model", None), "name", None) or type(latent_model).__name__
        self.widget = W.VBox(
            [
                W.HBox(
                    [
                        W.HTML(f"<h3 style='margin:4px 0'>Latent space of {name} · {len(dataset)} samples</h3>"),
                        self.busy_indicator,
                        self._export_button,
                        self._export_status,
                    ],
                    layout=W.Layout(flex_flow="row wrap", align_items="center"),
                ),
                # The map and the viewer side by side when there is room, stacked otherwise.
                W.HBox(
                    [
                        self._map_column,
                        self.viewer.widget,
                    ],
                    layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="4px 12px"),
                ),
                self.selection_panel.widget,
                self.slider.widget,
                W.HBox([W.HTML("<b>errors</b>"), clear]),
                self.output,
            ],
            # Never wider than the output area: the rows above wrap, the strip scrolls.
            layout=W.Layout(width="100%", max_width="100%"),
        )
        self.widget.add_class("latent-explorer")

        self._map_column.children = [self._click_buttons, self.scatter.widget]
        self.scatter.observe(self.errors.guard(self._on_clicked), "selected")
        watch_session(self, session, self._on_map_points, "map_points")
        self.slider.observe(self.errors.guard(self._on_alpha), "alpha")
        #: What the session computes (jobs that have lasted a moment), on :attr:`busy_indicator`.
        self.busy_status = BusyStatus(self, session, self._show_busy)
        relay_session_errors(self.errors, session)
        self.scatter.set_current(session.alpha)

    @staticmethod
    def _click_placeholder() -> W.Widget:
        return W.HTML()

    def _on_map_points(self, _change: Any) -> None:
        """A map of cells has h * w times the points: swap SVG and WebGL maps across the threshold."""
        old = self.scatter
        new_kind = map_class(self.session.n_points(), self.gl_threshold)
        if isinstance(old, new_kind):
            return
        old.unobserve_all("selected")
        old.detach()
        self.scatter = projection_map(
            session=self.session, splits=self.session.splits, gl_threshold=self.gl_threshold, errors=self.errors
        )
        self.scatter.observe(self.errors.guard(self._on_clicked), "selected")
        self.scatter.set_current(self.session.alpha)
        self._map_column.children = [self._click_buttons, self.scatter.widget]
        for hook in list(self.map_swap_hooks):
            hook(old, self.scatter)

    def _on_clicked(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        if index is None:
            return
        if self.click_action == "set A":
            self.session.index_a = int(index)
        elif self.click_action == "set B":
            self.session.index_b = int(index)
        # One use: a later click only shows its sample, it does not move an endpoint again.
        self.click_action = "show"

    def _on_alpha(self, change: Mapping[str, Any]) -> None:
        self.scatter.set_current(float(change["new"]))

    def _show_busy(self, text: str) -> None:
        self.busy_indicator.value = (
            f"<span style='color:#555'><i class='fa fa-spinner fa-spin'></i> {html.escape(text)}…</span>"
            if text
            else ""
        )

    def export(self, folder: str | Path | None = None) -> list[Path]:
        """Write the session and its figures (:meth:`ExplorerSession.export`); what the "export" button does.

        ``folder`` defaults to ``latent-session-<timestamp>`` in the current directory.
        """
        if folder is None:
            folder = Path.cwd() / f"latent-session-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        self.exported = self.session.export(folder)
        names = ", ".join(html.escape(p.name) for p in self.exported)
        self._export_status.value = (
            f"<span style='font-size:12px'>exported to <code>{html.escape(str(folder))}</code>: {names}</span>"
        )
        return self.exported

    def clear_errors(self) -> None:
        """Forget the errors shown (the sink's and the session's)."""
        self.errors.clear()
        self.session.clear_errors()

    def wait(self, timeout: float | None = 60.0) -> None:
        """Block until the session's background jobs are done (their errors are shown, not raised)."""
        wait_quietly(self.session, timeout)

    def close(self) -> None:
        """Stop the session's workers and close the widgets."""
        self.session.close()
        self.widget.close()
