"""``ProjectionScatter``: a bqplot map of the latents, one point per sample, with index labels."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..data.colors import NO_VALUE_COLOUR
from ..views.labels import label_boxes, place_labels
from .map_colors import LINKED_HOVER_COLOUR, NEIGHBOUR_COLOUR, PATH_COLOUR, ColorCodes
from .map_view import MapView

__all__ = ["DEFAULT_GL_THRESHOLD", "MAP_TOOLS", "ProjectionScatter", "gl_scatter_class"]

#: What a drag on the SVG map does (``tool``): nothing (click points), pan and zoom, lasso, brush (rectangle).
MAP_TOOLS: tuple[str, ...] = ("click", "pan/zoom", "lasso", "brush")

#: Above this many points the SVG scatter pans at a few frames per second
#: (bqplot's issue tracker reports 0.5 fps at 10k points); use WebGL.
DEFAULT_GL_THRESHOLD = 2000

_FIG_MARGIN = {"top": 10, "bottom": 30, "left": 50, "right": 20}

# The map's overlay marks and index labels let clicks through to the points
# under them; the figure shrinks with a narrow output area.
_MAP_CSS = (
    "<style>"
    ".lw-projection-scatter text.dot_text {pointer-events: none;}"
    # fig_marks > one g per mark, in figure.marks order: the samples' mark first.
    ".lw-projection-scatter g:has(> g.object_grp) ~ g {pointer-events: none;}"
    "</style>"
)

# What a hidden index label is made of (see ProjectionScatter._draw_labels).
_HIDDEN = "\u200b"


def gl_scatter_class() -> type | None:
    """``bqplot_gl.ScatterGL`` when bqplot-gl is installed, else ``None``.

    Examples
    --------
    >>> gl_scatter_class() is None or gl_scatter_class().__name__ == "ScatterGL"
    True
    """
    try:
        from bqplot_gl import ScatterGL  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a broken install: fall back to SVG
        return None
    return ScatterGL


def _mode_button(description: str, icon: str, tooltip: str) -> W.ToggleButton:
    # "auto": the label is never cut ("pan/zo..." in Notebook 7 at 100px).
    layout = W.Layout(width="auto", min_width="max-content", flex="0 0 auto")
    return W.ToggleButton(value=False, icon=icon, description=description, tooltip=tooltip, layout=layout)


def _index_label_names(n: int, xy: np.ndarray | None, plot: tuple[float, float], forced: list[int]) -> np.ndarray:
    """The mark's names: each of the ``n`` points' index where its label has room at screen positions ``xy``.

    ``xy`` None: only the ``forced`` labels. ``plot``: the plot area's width and height in px.
    """
    texts = [str(i) for i in range(n)]
    if xy is None:
        shown = np.zeros(n, bool)
        shown[forced] = True
    else:
        w, h = plot
        visible = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
        shown = place_labels(label_boxes(xy, texts), forced, visible)
    # bqplot joins the points' data by name: names must stay unique, so a
    # hidden label is i + 1 zero-width spaces, not "" (equal empty names
    # gave points the wrong colour in the browser).
    return np.array([t if s else _HIDDEN * (i + 1) for i, (t, s) in enumerate(zip(texts, shown, strict=True))])


class ProjectionScatter(MapView):
    """A 2-D map (PCA / t-SNE / UMAP) of the latents of a dataset.

    Points are labelled with their sample index (``show_labels``), coloured
    by a field (``color_by``); the map pans and zooms (drag, wheel), shows
    the sample's image and masks on hover, and sets :attr:`selected` on
    click. :meth:`show_path` draws an interpolation path and the nearest
    real neighbours of its steps; :meth:`set_current` the slider's point.

    Parameters
    ----------
    latents, dataset
        As in :class:`~latent_widgets.widgets.map_view.MapView`.
    show_labels : bool, optional
        Index labels; default on with the SVG renderer. Only labels that
        have room at the current zoom are drawn (:func:`~latent_widgets.views.labels.place_labels`),
        and always those of the selected point, the endpoints and the
        path's neighbours.
    gl_threshold : int
        Above this many points use bqplot-gl's ``ScatterGL`` when installed
        (the SVG scatter otherwise, with a warning).
    **kwargs
        The other arguments of :class:`~latent_widgets.widgets.map_view.MapView`
        (``session``, ``method``, ``methods``, ``projections``,
        ``projection_kwargs``, ``predictions``, ``splits``, ``color_by``,
        ``errors``); ``width`` and ``height``, the figure's size in px (the
        figure shrinks to a narrower output area).

    Attributes
    ----------
    method : str (trait)
    selected : int or None (trait)
        The clicked sample; set it from Python to select a point.
    color_by : str (trait)
    show_labels : bool (trait)
    pan_zoom : bool (trait)
        Pan (drag) and zoom (wheel) mode; points are not clickable meanwhile.
    hovered : int or None (trait)
        The sample under the mouse.
    points : ndarray (N, 2)
        Coordinates of the current map.
    colors : list of str
        The ``#rrggbb`` colour of each point.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(20, size=(48, 64), seed=0)
    >>> z = ds.images.reshape(20, -1)[:, ::97]
    >>> sc = ProjectionScatter(z, ds, projections={"pca": z[:, :2]}, methods=("pca",))
    >>> sc.points.shape, sc.labels[sc.selected]
    ((20, 2), '0')
    >>> sc.click(4); sc.selected
    4
    """

    show_labels = traitlets.Bool(True)
    pan_zoom = traitlets.Bool(False)
    tool = traitlets.Enum(MAP_TOOLS, default_value="click")

    def __init__(
        self,
        latents: np.ndarray | None = None,
        dataset: Any = None,
        *,
        show_labels: bool | None = None,
        gl_threshold: int = DEFAULT_GL_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        # Read by _make_surface, which MapView calls before the first draw.
        self._labels_at_start, self._gl_threshold = show_labels, gl_threshold
        super().__init__(latents, dataset, **kwargs)

    # ------------------------------------------------------------------ the figure

    def _make_surface(self, width: int, height: int) -> None:
        self._figure_px = (float(width), float(height))
        # Renderer: ScatterGL above the threshold when it is importable.
        gl = gl_scatter_class() if self.n > self._gl_threshold else None
        if self.n > self._gl_threshold and gl is None:
            warnings.warn(
                f"{self.n} points with the SVG scatter will pan slowly; `pip install bqplot-gl` "
                "to draw them with WebGL.",
                RuntimeWarning,
                stacklevel=4,
            )
        self.uses_gl = gl is not None
        #: Which mark class draws the points: "ScatterGL" or "Scatter".
        self.renderer = "ScatterGL" if self.uses_gl else "Scatter"

        # Fixed ranges until a map arrives: all-zero data gives the axes an
        # empty domain, and bqplot's tick format then breaks every later update.
        # No padding from bqplot (marks pad their scales by their marker size,
        # the figure by 2.5 % in y): the map pads its own range, and the index
        # labels are placed from screen_points(), which must be where bqplot draws.
        self.x_scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        self.y_scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        self.color_scale = bq.OrdinalColorScale(domain=[0], colors=[NO_VALUE_COLOUR])
        scales = {"x": self.x_scale, "y": self.y_scale, "color": self.color_scale}
        kwargs: dict[str, Any] = dict(
            x=np.zeros(self.n),
            y=np.zeros(self.n),
            color=np.zeros(self.n),
            scales=scales,
            default_size=48 if self.n <= 500 else 16,
            stroke="white",
            stroke_width=0.5,
            selected_style={"stroke": "black", "stroke-width": "3", "opacity": "1"},
            # Known trap: with bqplot-gl installed, interactions={'click': 'select'}
            # breaks (a duplicated d3); selection is set from Python instead.
            interactions={"hover": "tooltip"},
        )
        if not self.uses_gl:
            kwargs.update(
                names=[str(i) for i in range(self.n)],
                display_names=False,
                tooltip=self.tooltip,
                label_display_horizontal_offset=4.0,
                label_display_vertical_offset=-4.0,
            )
        self.mark = (gl if gl is not None else bq.Scatter)(**kwargs)
        self._make_overlay_marks()
        self.figure = bq.Figure(
            marks=[self.mark, *self.overlay_marks, self.linked_hover_mark],
            axes=[
                bq.Axis(scale=self.x_scale, num_ticks=5, grid_lines="none"),
                bq.Axis(scale=self.y_scale, side="left", num_ticks=5, grid_lines="none"),
            ],
            fig_margin=dict(_FIG_MARGIN),
            layout=W.Layout(width=f"{width}px", max_width="100%", height=f"{height}px"),
            min_aspect_ratio=0.01,
            max_aspect_ratio=100,
            padding_x=0.0,
            padding_y=0.0,
            display_toolbar=False,
        )
        # CSS hooks for the browser tests and for styling.
        self.figure.add_class("lw-projection-scatter")
        self._make_tools()
        c = self.controls
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        row1 = W.HBox([c.method_buttons, self._panzoom_button, c.reset_button], layout=wrap)
        # The selection tools on the second row: the map's column stays as wide as the map.
        tools = [self._lasso_button, self._brush_button, self._clear_selection_button]
        row2 = W.HBox([*tools, c.points_dropdown, c.color_dropdown, self._labels_box, c.status], layout=wrap)
        self.widget = W.VBox(
            [W.HTML(_MAP_CSS), row1, row2, self.figure, self.legend],
            layout=W.Layout(max_width="100%", flex="0 1 auto"),
        )
        labels = not self.uses_gl if self._labels_at_start is None else self._labels_at_start
        self.set_trait("show_labels", bool(labels))

    def _make_overlay_marks(self) -> None:
        """The path, its steps' neighbours, the endpoints, the current point, the linked hover's ring."""
        xy = dict(x=np.zeros(1), y=np.zeros(1), scales={"x": self.x_scale, "y": self.y_scale}, visible=False)
        self.path_line = bq.Lines(colors=[PATH_COLOUR], stroke_width=2, **xy)
        self.path_steps = bq.Scatter(colors=[PATH_COLOUR], default_size=20, enable_hover=False, **xy)
        self.neighbor_marks = bq.Scatter(
            colors=[NEIGHBOUR_COLOUR], fill=False, stroke_width=2.5, default_size=180, enable_hover=False, **xy
        )
        self.endpoint_marks = bq.Scatter(
            colors=["black"],
            fill=False,
            stroke_width=2,
            default_size=260,
            marker="square",
            names=["A", "B"],
            display_names=True,
            enable_hover=False,
            **xy,
        )
        self.current_mark = bq.Scatter(
            colors=[PATH_COLOUR],
            stroke="black",
            stroke_width=1.5,
            default_size=220,
            marker="diamond",
            enable_hover=False,
            **xy,
        )
        self.overlay_marks = [
            self.path_line,
            self.path_steps,
            self.neighbor_marks,
            self.endpoint_marks,
            self.current_mark,
        ]
        #: The ring around a sample hovered in a linked explorer.
        self.linked_hover_mark = bq.Scatter(
            colors=[LINKED_HOVER_COLOUR], fill=False, stroke_width=3, default_size=300, enable_hover=False, **xy
        )

    def _make_tools(self) -> None:
        """The figure's modes (pan/zoom, lasso, brush), the labels' checkbox, the clear button."""
        self._labels_box = W.Checkbox(description="index labels", indent=False, layout=W.Layout(width="110px"))
        # bqplot's PanZoom interaction lies over the marks and swallows their
        # hover and click events, so it is a mode: on to pan (drag) and zoom
        # (wheel), off to hover and click points.
        self.panzoom = bq.PanZoom(scales={"x": [self.x_scale], "y": [self.y_scale]})
        self._panzoom_button = _mode_button(
            "pan/zoom", "arrows", "drag to pan, wheel to zoom (points cannot be clicked meanwhile)"
        )
        # Lasso and brush select many samples into session.selection; like pan/zoom they are modes.
        self.lasso = bq.interacts.LassoSelector(marks=[self.mark])
        self.brush = bq.interacts.BrushSelector(x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.mark])
        self._lasso_button = _mode_button("lasso", "circle-o-notch", "draw a closed line around points to select them")
        self._brush_button = _mode_button("brush", "square-o", "drag a rectangle to select the points in it")
        self._lasso_button.add_class("lw-lasso-button")
        self._brush_button.add_class("lw-brush-button")
        self._clear_selection_button = W.Button(
            description="clear",
            tooltip="clear the selection",
            layout=W.Layout(width="auto", min_width="max-content", flex="0 0 auto"),
        )
        self._clear_selection_button.add_class("lw-clear-selection")

    def _follow_surface(self) -> None:
        guard = self.errors.guard
        self._on_show_labels({"new": self.show_labels})
        self._observe_guarded(self._on_show_labels, "show_labels")
        self._observe_guarded(self._on_pan_zoom, "pan_zoom")
        self._observe_guarded(self._on_tool, "tool")
        self.mark.on_element_click(guard(self._on_element_click))
        if hasattr(self.mark, "on_hover"):
            self.mark.on_hover(guard(self._on_hover))
        self.mark.observe(guard(self._on_mark_selected), "selected")
        # Labels are placed again when the view (pan, zoom, reset) or the selection changes.
        for scale in (self.x_scale, self.y_scale):
            scale.observe(guard(lambda _c: self._draw_labels()), ["min", "max"])
        W.link((self, "show_labels"), (self._labels_box, "value"))
        W.link((self, "pan_zoom"), (self._panzoom_button, "value"))
        self._lasso_button.observe(guard(lambda c: self._toggle_tool("lasso", c["new"])), "value")
        self._brush_button.observe(guard(lambda c: self._toggle_tool("brush", c["new"])), "value")
        self._clear_selection_button.on_click(guard(lambda _: setattr(self.session, "selection", None)))

    def reset_view(self) -> None:
        """Fit the axes to the map (undo pan and zoom)."""
        pts = self.points
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        with self.x_scale.hold_sync(), self.y_scale.hold_sync():
            self.x_scale.min, self.x_scale.max = float(lo[0] - pad[0]), float(hi[0] + pad[0])
            self.y_scale.min, self.y_scale.max = float(lo[1] - pad[1]), float(hi[1] + pad[1])

    def _on_pan_zoom(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.tool = "pan/zoom"
        elif self.tool == "pan/zoom":
            self.tool = "click"

    def _toggle_tool(self, tool: str, on: bool) -> None:
        if on:
            self.tool = tool
        elif self.tool == tool:
            self.tool = "click"

    def _on_tool(self, change: Mapping[str, Any]) -> None:
        tool = change["new"]
        self.figure.interaction = {"pan/zoom": self.panzoom, "lasso": self.lasso, "brush": self.brush}.get(tool)
        # The toggles show the one mode that is on.
        self.pan_zoom = tool == "pan/zoom"
        self._lasso_button.value = tool == "lasso"
        self._brush_button.value = tool == "brush"

    # ------------------------------------------------------------------ drawing

    def _draw_points(self, points: np.ndarray, recount: bool) -> None:
        with self.mark.hold_sync():
            self.mark.x, self.mark.y = points[:, 0], points[:, 1]
            if recount:  # other points (samples <-> cells): their colours and highlight go with them
                self._on_color_by({"new": self.color_by})
                self._show_highlight()

    def _draw_colours(self, drawn: ColorCodes) -> None:
        # An ordinal scale over colour indices: one scale serves categories
        # and the quantised continuous scale, so the mark is never rebuilt.
        with self.color_scale.hold_sync():
            self.color_scale.domain = list(range(len(drawn.colours)))
            self.color_scale.colors = drawn.colours
        self.mark.color = drawn.codes.astype(np.float64)

    def _draw_highlight(self, points: list[int] | None, dim: bool) -> None:
        with self.mark.hold_sync():
            self.mark.unselected_style = {"opacity": "0.3"} if dim else {}
            self.mark.selected = points

    def _draw_linked_hover(self, xy: np.ndarray | None) -> None:
        if xy is None:
            self.linked_hover_mark.visible = False
            return
        with self.linked_hover_mark.hold_sync():
            self.linked_hover_mark.x, self.linked_hover_mark.y = xy[:, 0], xy[:, 1]
            self.linked_hover_mark.visible = True

    def _draw_overlay(self, path: np.ndarray | None, neighbours: np.ndarray | None, ends: np.ndarray | None) -> None:
        if path is None:
            for m in self.overlay_marks:
                m.visible = False
            return
        for mark, xy in ((self.path_line, path), (self.path_steps, path)):
            with mark.hold_sync():
                mark.x, mark.y, mark.visible = xy[:, 0], xy[:, 1], True
        for mark, xy in ((self.neighbor_marks, neighbours), (self.endpoint_marks, ends)):
            if xy is None:
                mark.visible = False
                continue
            with mark.hold_sync():
                mark.x, mark.y = xy[:, 0], xy[:, 1]
                mark.visible = True

    def _draw_current_point(self, xy: np.ndarray | None) -> None:
        if xy is None:
            self.current_mark.visible = False
            return
        with self.current_mark.hold_sync():
            self.current_mark.x, self.current_mark.y = xy[:1], xy[1:]
            self.current_mark.visible = True

    # ------------------------------------------------------------------ index labels

    def _on_show_labels(self, change: Mapping[str, Any]) -> None:
        if not self.uses_gl:
            self.mark.display_names = bool(change["new"])
            self._draw_labels()

    @property
    def forced_labels(self) -> list[int]:
        """Points always labelled: the selected one, the endpoints A and B, the path's neighbours."""
        _, neighbors, endpoints = self._overlay
        forced = [] if self.selected is None else [int(self.selected)]
        if endpoints is not None:
            forced += [int(i) for i in endpoints]
        if neighbors is not None:
            forced += [int(i) for i in np.unique(neighbors)]
        return list(dict.fromkeys(forced))

    def _plot_px(self) -> tuple[float, float]:
        """Width and height of the figure's plot area in px (the figure less its margins)."""
        fw, fh = self._figure_px
        w = max(fw - _FIG_MARGIN["left"] - _FIG_MARGIN["right"], 1.0)
        h = max(fh - _FIG_MARGIN["top"] - _FIG_MARGIN["bottom"], 1.0)
        return w, h

    def screen_points(self) -> np.ndarray:
        """Pixel position of each point in the figure's plot area at the current zoom (y down)."""
        pts = self._drawn_map if self._drawn_map is not None else np.zeros((self.n, 2))
        w, h = self._plot_px()
        x0, x1 = float(self.x_scale.min), float(self.x_scale.max)
        y0, y1 = float(self.y_scale.min), float(self.y_scale.max)
        sx = (pts[:, 0] - x0) / max(x1 - x0, 1e-12) * w
        sy = (1.0 - (pts[:, 1] - y0) / max(y1 - y0, 1e-12)) * h
        return np.stack([sx, sy], axis=1)

    @property
    def labels(self) -> list[str]:
        """The index label drawn by each point ("" where there is no room for it)."""
        names = getattr(self.mark, "names", None)
        return [] if names is None else [str(t).strip(_HIDDEN) for t in names]

    def _draw_labels(self) -> None:
        if self.uses_gl:
            return
        if self.n_points != self.n:
            # A map of cells: no index labels (h * w points per sample); bqplot then joins points by position.
            self.mark.names = None
            return
        placed = self.show_labels and self._drawn_map is not None
        names = _index_label_names(
            self.n, self.screen_points() if placed else None, self._plot_px(), self.forced_labels
        )
        if self.mark.names is None or list(self.mark.names) != names.tolist():
            self.mark.names = names

    # ------------------------------------------------------------------ what the browser reports

    @staticmethod
    def _event_index(content: Mapping[str, Any]) -> int | None:
        data = content.get("data") or {}
        index = data.get("index", content.get("index"))
        return None if index is None else int(index)

    def _on_element_click(self, _mark: Any, content: Mapping[str, Any]) -> None:
        index = self._event_index(content)
        if index is not None:
            self.click_point(index)

    def _on_hover(self, _mark: Any, content: Mapping[str, Any]) -> None:
        index = self._event_index(content)
        if index is not None:
            self.hover_point(index)

    def _on_mark_selected(self, change: Mapping[str, Any]) -> None:
        # The browser's lasso or brush wrote the mark's selection: it becomes the session's.
        if self._writing or self.tool not in ("lasso", "brush"):
            return
        new = change["new"]
        # On a map of cells, the samples of the cells inside (the selection is a set of samples).
        self.session.selection = None if new is None else self.session.samples_of_points(np.asarray(new, np.int64))
