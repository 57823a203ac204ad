"""``WebGLMap``: the map of a large dataset, drawn with WebGL by jupyter-scatter.

Above :data:`~latent_widgets.widgets.scatter.DEFAULT_GL_THRESHOLD` points
the SVG map (:class:`~latent_widgets.widgets.scatter.ProjectionScatter`)
pans at a few frames per second; this map keeps its behaviour (colour
fields, hover thumbnail, click to select, the path overlay, the slider's
point, the method buttons) on jupyter-scatter's regl scatter plot, which
pans 100k points at interactive rates and reports hover, click and lasso
back to Python. :func:`projection_map` picks the map for a dataset's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..data.colors import NO_VALUE_COLOUR
from ..session import ExplorerSession
from ._common import ErrorSink, image_pane
from .scatter import (
    _NEIGHBOUR_COLOUR,
    _PATH_COLOUR,
    COLOR_FIELDS,
    DEFAULT_GL_THRESHOLD,
    METHOD_LABELS,
    MapView,
    ProjectionScatter,
)

__all__ = ["WebGLMap", "jscatter_available", "projection_map"]

# Overlay marker half-size, as a fraction of the map's larger extent: the
# annotations are drawn in data units (they grow when zooming in).
_MARKER = 0.012


def jscatter_available() -> bool:
    """Whether jupyter-scatter can be imported.

    Examples
    --------
    >>> isinstance(jscatter_available(), bool)
    True
    """
    try:
        import jscatter  # noqa: F401
    except Exception:  # ImportError, or a broken install: the SVG map is used
        return False
    return True


def _point_size(n: int) -> float:
    # Points shrink with their number so that dense regions stay readable.
    return 6.0 if n <= 10_000 else 4.0 if n <= 50_000 else 3.0


def _ring(x: float, y: float, rx: float, ry: float, sides: int) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 2 * np.pi, sides + 1) + (np.pi / 4 if sides == 4 else 0.0)
    return [(float(x + rx * np.cos(a)), float(y + ry * np.sin(a))) for a in t]


class WebGLMap(MapView):
    """A 2-D map (PCA / t-SNE / UMAP) of many latents, drawn with WebGL (jupyter-scatter).

    The same state and methods as :class:`ProjectionScatter` (``method``,
    ``selected``, ``color_by``, ``hovered``, :meth:`click`, :meth:`hover`,
    :meth:`show_path`, :meth:`set_current`, :meth:`reset_view`...), drawn
    by jupyter-scatter's ``JupyterScatter`` widget (:attr:`map_widget`):
    points go to the browser as one binary float32 array, panning and
    zooming (drag, wheel) need no kernel round trip, and hover, click and
    lasso come back as traits. What differs from the SVG map: no index
    labels; hovering shows the sample's thumbnail in a pane beside the map
    (rendered in Python for the hovered point only); the path, its
    neighbours, the endpoints (A square, B diamond) and the slider's point
    are line annotations in map units; a lasso (the toolbar's lasso mode,
    or shift + drag) selects many points into :attr:`lasso_selection`.

    Parameters
    ----------
    latents, dataset, session, method, methods, projections, projection_kwargs, predictions, splits, color_by, errors
        As in :class:`ProjectionScatter`.
    width, height : int
        Map size in px (the map shrinks to a narrower output area).
    point_size : float, optional
        Point diameter in px; by default 6 up to 10k points, 4 up to 50k, 3 above.

    Attributes
    ----------
    method, selected, color_by, hovered : traits
        As in :class:`ProjectionScatter`.
    lasso_selection : ndarray of int or None (trait)
        The samples inside the last lasso; ``None`` after a click or with no lasso.
    scatter : jscatter.Scatter
        The jupyter-scatter object that builds :attr:`map_widget`'s state.
    map_widget : jscatter.widget.JupyterScatter
        The anywidget in the page.
    overlay_annotations : dict of str -> list
        The annotations drawn, in map units: "path", "steps", "neighbors",
        "endpoints", "current" (empty lists when hidden).

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(20, size=(48, 64), seed=0)
    >>> z = ds.images.reshape(20, -1)[:, ::97]
    >>> m = WebGLMap(z, ds, projections={"pca": z[:, :2]}, methods=("pca",))  # doctest: +SKIP
    >>> m.map_widget.points.shape, m.renderer  # doctest: +SKIP
    ((20, 4), 'jupyter-scatter')
    >>> m.click(4); m.selected  # doctest: +SKIP
    4
    """

    lasso_selection = traitlets.Any(None, allow_none=True)

    def __init__(
        self,
        latents: np.ndarray | None = None,
        dataset: Any = None,
        *,
        session: ExplorerSession | None = None,
        method: str = "pca",
        methods: Sequence[str] = ("pca", "tsne", "umap"),
        projections: Mapping[str, np.ndarray] | None = None,
        projection_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        predictions: np.ndarray | None = None,
        splits: Sequence[str] | np.ndarray | None = None,
        color_by: str | None = None,
        errors: ErrorSink | None = None,
        width: int = 520,
        height: int = 460,
        point_size: float | None = None,
    ) -> None:
        super().__init__()
        try:
            import jscatter
        except ImportError as exc:
            raise ImportError(
                "WebGLMap draws with jupyter-scatter: `pip install jupyter-scatter`, "
                "or use ProjectionScatter (SVG) for small maps"
            ) from exc
        self._jscatter = jscatter
        session = self._init_state(
            latents,
            dataset,
            session,
            method=method,
            methods=methods,
            projections=projections,
            projection_kwargs=projection_kwargs,
            predictions=predictions,
            splits=splits,
            errors=errors,
        )
        dataset = self.dataset
        self.renderer = "jupyter-scatter"
        self.uses_gl = True
        self.show_labels = False
        self.overlay_annotations: dict[str, list[Any]] = {}

        self._height, self._point_size = int(height), point_size
        self._make_scatter(self.n)
        self._map_box = W.VBox([self.map_widget], layout=W.Layout(width=f"{width}px", max_width="100%"))
        self._map_box.add_class("lw-gl-map")

        self._tooltip_image = image_pane(200)
        self._tooltip_caption = W.HTML("<i style='color:#777'>hover a point</i>")
        self.tooltip = W.VBox(
            [self._tooltip_caption, self._tooltip_image], layout=W.Layout(padding="4px", width="210px")
        )
        self.tooltip.add_class("lw-tooltip")
        self._method_buttons = W.ToggleButtons(
            options=[(METHOD_LABELS.get(m, m), m) for m in self.methods],
            value=session.map_method,
            style={"button_width": "64px"},
        )
        self._color_dropdown = W.Dropdown(
            options=list(COLOR_FIELDS),
            description="colour",
            layout=W.Layout(width="200px"),
            style={"description_width": "45px"},
        )
        self._reset_button = W.Button(icon="home", tooltip="reset zoom", layout=W.Layout(width="36px"))
        self._reset_button.on_click(self.errors.guard(lambda _: self.reset_view()))
        self._status = W.HTML()
        self._lasso_status = W.HTML()
        self.legend = W.HTML(layout=W.Layout(max_width=f"min({width}px, 100%)"))
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.HBox([self._method_buttons, self._reset_button, self._status], layout=wrap)
        self._points_dropdown = self._points_control()
        controls2 = W.HBox([self._points_dropdown, self._color_dropdown, self._lasso_status], layout=wrap)
        self.widget = W.VBox(
            [
                controls,
                controls2,
                W.HBox([self._map_box, self.tooltip], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
                self.legend,
            ],
            layout=W.Layout(max_width="100%", flex="0 1 auto"),
        )
        self.widget.add_class("lw-webgl-map")

        self._writing_js = False
        self._linked: list[Any] = []
        self.set_trait("method", session.map_method)
        self.set_trait("selected", session.selected)
        color_by = self._link_session_colours(color_by)
        self._on_color_by({"new": color_by})
        self._on_selected({"new": self.selected})
        self._observe_guarded(self._on_color_by, "color_by")
        self._observe_guarded(self._on_selected, "selected")
        self._observe_guarded(self._on_lasso_selection, "lasso_selection")
        # What the browser reports: the hovered point, the selection (click or lasso), the lasso's polygon.
        self._observe_js()
        self._link("method", "map_method")
        self._link("selected", "selected")
        self._watch(self._on_map, ["maps", "map_method", "map_points"])
        self._watch(self._on_session_path, ["path_points", "strip"])
        self._watch(self._on_busy, ["busy", "progress"])
        self._watch(self._on_ready, "ready")
        self._on_map(None)
        self._on_session_path(None)
        # The buttons follow the trait (see ProjectionScatter: a failed fit reverts it).
        self.observe(lambda _c: setattr(self._method_buttons, "value", self.method), "method")
        self._method_buttons.observe(self.errors.guard(self._on_method_button), "value")
        self._link_colour_dropdown()
        self._start_following()

    # ------------------------------------------------------------------ map

    def _make_scatter(self, n: int) -> None:
        """A jupyter-scatter plot of ``n`` points (zeros until a map arrives)."""
        zeros = np.zeros(n)
        self.scatter = self._jscatter.Scatter(
            x=zeros,
            y=zeros,
            size=self._point_size or _point_size(n),
            color=NO_VALUE_COLOUR,
            # One highlighted point (the selected sample) must not dim the other 100k.
            opacity_unselected=1.0,
            color_selected="#000000",
            axes=False,
            legend=False,
            tooltip=False,
            transition_points=False,
            height=self._height,
            width="auto",
        )
        self._unselected_opacity = 1.0
        #: The anywidget in the page (points as binary float32, (N, 4): x, y in [-1, 1], colour code, 0).
        self.map_widget = self.scatter.widget
        self.map_widget.toolbar_buttons = ["pan_zoom", "lasso", "divider", "reset"]
        # jupyter-scatter's width "auto" is its parent's: a column box stretches it to the box's width.
        self.map_widget.layout = W.Layout(width="100%")

    def _observe_js(self) -> None:
        # What the browser reports: the hovered point, the selection (click or lasso), the lasso's polygon.
        self.map_widget.observe(self.errors.guard(self._on_js_hover), "hovering")
        self.map_widget.observe(self.errors.guard(self._on_js_selection), "selection")
        self.map_widget.observe(self.errors.guard(self._on_js_lasso), "lasso_selection_polygon")

    def _on_map(self, _change: Any) -> None:
        pts = self.session.points
        if pts is None or pts is self._drawn_map:
            return  # still computing: the drawn map stays until the new one arrives
        if len(pts) != self.n_points:
            # Other points (samples <-> cells): jupyter-scatter keeps its point count, so a new plot.
            old = self.map_widget
            self._make_scatter(len(pts))
            self._observe_js()
            self._map_box.children = [self.map_widget]
            old.close()
            self._drawn_map = pts
            self.scatter.xy(x=pts[:, 0], y=pts[:, 1], animate=False)
            self._on_color_by({"new": self.color_by})
            self._show_highlight()
            self.reset_view()
            self._redraw_overlay()
            return
        self._drawn_map = pts
        # One binary (N, 4) float32 array; the annotations are re-normalised to the new extent.
        self.scatter.xy(x=pts[:, 0], y=pts[:, 1], animate=False)
        self.reset_view()
        self._redraw_overlay()

    def reset_view(self) -> None:
        """Fit the view to the map (undo pan and zoom)."""
        self.map_widget.reset_view(animation=0)

    # ------------------------------------------------------------------ colours

    def _on_color_by(self, change: Mapping[str, Any]) -> None:
        import pandas as pd

        field = change["new"]
        if self.session.n_points() != self.n_points:
            return  # the map of the new points is computing: coloured when it is drawn (_on_map)
        codes, colours, names = self.color_values(field)
        # jupyter-scatter drops unused categories: give it the used ones, in order, with their colours.
        used = np.unique(codes)
        self.scatter.color(by=pd.Categorical(codes, categories=used), map=[colours[c] for c in used])
        self.legend.value = self._legend_html(field, codes, colours, names)

    # ------------------------------------------------------------------ selection, hover, lasso

    def _on_selected(self, _change: Any) -> None:
        self._show_highlight()

    def _on_selection(self, _change: Any) -> None:
        sel = self.session.selection
        self._lasso_status.value = (
            f"<span style='font-size:12px'>selection: {len(sel)} samples</span>" if len(sel) else ""
        )
        self._show_highlight()

    def _show_highlight(self) -> None:
        """The selection (others dimmed), or the clicked sample when nothing is selected."""
        highlighted = self._highlighted_points()
        many = len(self.session.selection) > 0
        self._writing_js = True
        try:
            # One highlighted point (the clicked sample) must not dim the other 100k; a selection does.
            opacity = 0.25 if many else 1.0
            if opacity != getattr(self, "_unselected_opacity", 1.0):
                self.scatter.opacity(unselected=opacity)
                self._unselected_opacity = opacity
            self.scatter.selection(highlighted)
        finally:
            self._writing_js = False

    def _on_js_hover(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        if index is not None and 0 <= int(index) < self.n_points:
            self.hover_point(int(index))

    def _on_js_selection(self, change: Mapping[str, Any]) -> None:
        if self._writing_js:
            return  # the highlight drawn from Python, not a user's click or lasso
        sel = np.asarray([] if change["new"] is None else change["new"], np.int64).reshape(-1)
        if len(sel) == 1:
            # A click (or a lasso around one point: its polygon follows) replaces the selection.
            self.lasso_selection = None
            self.session.selection = None
            self.click_point(int(sel[0]))
        elif len(sel) > 1:
            # On a map of cells: the samples of the cells inside.
            self.lasso_selection = self.session.point_samples(sel)
        else:
            # A click on the background clears the lasso and the selection; the clicked sample stays shown.
            self.lasso_selection = None
            self.session.selection = None
            self._show_highlight()

    def _on_js_lasso(self, change: Mapping[str, Any]) -> None:
        polygon = change["new"]
        if polygon is not None and len(polygon):
            sel = self.map_widget.selection
            self.lasso_selection = None if sel is None else self.session.point_samples(np.asarray(sel, np.int64))

    def _on_lasso_selection(self, change: Mapping[str, Any]) -> None:
        sel = change["new"]
        if sel is not None:
            self.session.selection = sel
            self._lasso_status.value = f"<span style='font-size:12px'>lasso: {len(sel)} samples</span>"

    def _on_linked_hover(self, change: Mapping[str, Any]) -> None:
        index, pts = change["new"], self._drawn_map
        self._linked = []
        if index is not None and pts is not None and len(pts) == self.session.n_points():
            rx, ry = self._marker_radius()
            # Every cell of the sample on a map of cells.
            self._linked = [
                self._jscatter.Line(_ring(float(x), float(y), rx * 2, ry * 2, 16), line_color="#9467bd", line_width=3)
                for x, y in pts[self.session.sample_points([index])]
            ]
        self._draw_current()

    # ------------------------------------------------------------------ path overlay

    def _marker_radius(self) -> tuple[float, float]:
        pts = self._drawn_map
        span = np.ptp(pts, axis=0) if pts is not None and len(pts) else np.ones(2)
        span = np.where(span > 0, span, 1.0)
        # The map's axes are scaled independently to the same square: one radius per axis.
        return float(_MARKER * span[0]), float(_MARKER * span[1])

    def _redraw_overlay(self) -> None:
        p, neighbors, endpoints = self._overlay
        pts = self._drawn_map
        Line = self._jscatter.Line
        layers: dict[str, list[Any]] = {"path": [], "steps": [], "neighbors": [], "endpoints": [], "current": []}
        self.path_points = None if p is None or pts is None else p
        if self.path_points is not None:
            rx, ry = self._marker_radius()
            layers["path"] = [Line([(float(x), float(y)) for x, y in p], line_color=_PATH_COLOUR, line_width=2)]
            layers["steps"] = [
                Line(_ring(x, y, rx * 0.5, ry * 0.5, 4), line_color=_PATH_COLOUR, line_width=2) for x, y in p
            ]
            if neighbors is not None and len(neighbors):
                layers["neighbors"] = [
                    Line(_ring(x, y, rx * 1.3, ry * 1.3, 8), line_color=_NEIGHBOUR_COLOUR, line_width=2.5)
                    for x, y in pts[np.unique(neighbors)]
                ]
            if endpoints is not None:
                (ax, ay), (bx, by) = pts[int(endpoints[0])], pts[int(endpoints[1])]
                layers["endpoints"] = [
                    Line(_ring(ax, ay, rx * 1.6, ry * 1.6, 4), line_color="#000000", line_width=2),  # A: square
                    Line(
                        [(bx, by + 2 * ry), (bx + 2 * rx, by), (bx, by - 2 * ry), (bx - 2 * rx, by), (bx, by + 2 * ry)],
                        line_color="#000000",
                        line_width=2,
                    ),  # B: diamond
                ]
        self._layers = layers
        self._draw_current()

    def _draw_current(self) -> None:
        layers = getattr(self, "_layers", None)
        if layers is None:
            return
        self.current_point = xy = self._current_xy()
        if xy is None:
            layers["current"] = []
        else:
            rx, ry = self._marker_radius()
            x, y = float(xy[0]), float(xy[1])
            Line = self._jscatter.Line
            layers["current"] = [
                Line(_ring(x, y, rx * 1.4, ry * 1.4, 12), line_color=_PATH_COLOUR, line_width=4),
                Line([(x - rx, y), (x + rx, y)], line_color="#000000", line_width=2),
                Line([(x, y - ry), (x, y + ry)], line_color="#000000", line_width=2),
            ]
        self.overlay_annotations = {k: list(v) for k, v in layers.items()}
        self.scatter.annotations([a for v in layers.values() for a in v] + list(getattr(self, "_linked", [])))


def _map_class(session: ExplorerSession, gl_threshold: int) -> type:
    """The map class for the session's current points (the rule of :func:`projection_map`)."""
    return WebGLMap if session.n_points() > gl_threshold and jscatter_available() else ProjectionScatter


def projection_map(
    latents: np.ndarray | None = None,
    dataset: Any = None,
    *,
    gl_threshold: int = DEFAULT_GL_THRESHOLD,
    **kwargs: Any,
) -> MapView:
    """The map for a dataset's size: SVG up to ``gl_threshold`` points, WebGL above.

    :class:`ProjectionScatter` draws small maps with index labels, :class:`WebGLMap` large ones.

    Without jupyter-scatter, a large map falls back to :class:`ProjectionScatter`
    (bqplot-gl's ScatterGL when installed, else SVG with a warning).
    ``kwargs`` go to the chosen class (``session=``, ``splits=``, ``errors=``...).

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(20, size=(48, 64), seed=0)
    >>> z = ds.images.reshape(20, -1)[:, ::97]
    >>> type(projection_map(z, ds, projections={"pca": z[:, :2]}, methods=("pca",))).__name__
    'ProjectionScatter'
    """
    session = kwargs.get("session")
    # The points drawn: N samples, or N * h * w cells on a map of cells.
    if session is not None:
        cls = _map_class(session, gl_threshold)
        if cls is WebGLMap:
            return WebGLMap(latents, dataset, **kwargs)
        return ProjectionScatter(latents, dataset, gl_threshold=gl_threshold, **kwargs)
    if len(dataset) > gl_threshold and jscatter_available():
        return WebGLMap(latents, dataset, **kwargs)
    return ProjectionScatter(latents, dataset, gl_threshold=gl_threshold, **kwargs)
