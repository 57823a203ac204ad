"""``WebGLMap``: the map of a large dataset, drawn with WebGL by jupyter-scatter.

Above :data:`~latent_widgets.widgets.scatter.DEFAULT_GL_THRESHOLD` points
the SVG map (:class:`~latent_widgets.widgets.scatter.ProjectionScatter`)
pans at a few frames per second; this map keeps its behaviour (colour
fields, hover thumbnail, click to select, the path overlay, the slider's
point, the method buttons) on jupyter-scatter's regl scatter plot, which
pans 100k points at interactive rates and reports hover, click and lasso
back to Python. :func:`~latent_widgets.widgets.map_choice.projection_map`
picks the map for a dataset's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..data.colors import NO_VALUE_COLOUR
from .map_colors import LINKED_HOVER_COLOUR, NEIGHBOUR_COLOUR, PATH_COLOUR, ColorCodes
from .map_view import MapView

__all__ = ["WebGLMap", "default_point_size", "jscatter_available"]

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


def default_point_size(n: int) -> float:
    """The point diameter in px of a map of ``n`` points: points shrink so that dense regions stay readable.

    Examples
    --------
    >>> default_point_size(1_000), default_point_size(20_000), default_point_size(100_000)
    (6.0, 4.0, 3.0)
    """
    return 6.0 if n <= 10_000 else 4.0 if n <= 50_000 else 3.0


def _ring(x: float, y: float, rx: float, ry: float, sides: int) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 2 * np.pi, sides + 1) + (np.pi / 4 if sides == 4 else 0.0)
    return [(float(x + rx * np.cos(a)), float(y + ry * np.sin(a))) for a in t]


class WebGLMap(MapView):
    """A 2-D map (PCA / t-SNE / UMAP) of many latents, drawn with WebGL (jupyter-scatter).

    The same state and methods as :class:`~latent_widgets.widgets.scatter.ProjectionScatter` (``method``,
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
    latents, dataset
        As in :class:`~latent_widgets.widgets.map_view.MapView`.
    point_size : float, optional
        Point diameter in px; by default 6 up to 10k points, 4 up to 50k, 3 above.
    **kwargs
        The other arguments of :class:`~latent_widgets.widgets.map_view.MapView`
        (``session``, ``method``, ``methods``, ``projections``,
        ``projection_kwargs``, ``predictions``, ``splits``, ``color_by``,
        ``errors``); ``width`` and ``height``, the map's size in px (the map
        shrinks to a narrower output area).

    Attributes
    ----------
    method, selected, color_by, hovered : traits
        As in :class:`~latent_widgets.widgets.map_view.MapView`.
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
    # The thumbnail pane beside the map, not over it.
    _tooltip_style = (200, "<i style='color:#777'>hover a point</i>", "210px")

    def __init__(
        self,
        latents: np.ndarray | None = None,
        dataset: Any = None,
        *,
        point_size: float | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            import jscatter
        except ImportError as exc:
            raise ImportError(
                "WebGLMap draws with jupyter-scatter: `pip install jupyter-scatter`, "
                "or use ProjectionScatter (SVG) for small maps"
            ) from exc
        # Read by _make_surface, which MapView calls before the first draw.
        self._jscatter, self._point_size = jscatter, point_size
        super().__init__(latents, dataset, **kwargs)

    # ------------------------------------------------------------------ the plot

    def _make_surface(self, width: int, height: int) -> None:
        self.renderer = "jupyter-scatter"
        self.uses_gl = True
        self.show_labels = False
        self.overlay_annotations: dict[str, list[Any]] = {}
        # The annotations drawn: the overlay's layers, the linked hover's rings.
        self._layers: dict[str, list[Any]] = {}
        self._linked: list[Any] = []
        self._height = int(height)
        self._make_scatter(self.n)
        self._map_box = W.VBox([self.map_widget], layout=W.Layout(width=f"{width}px", max_width="100%"))
        self._map_box.add_class("lw-gl-map")
        self._lasso_status = W.HTML()
        c = self.controls
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        self.widget = W.VBox(
            [
                W.HBox([c.method_buttons, c.reset_button, c.status], layout=wrap),
                W.HBox([c.points_dropdown, c.color_dropdown, self._lasso_status], layout=wrap),
                W.HBox([self._map_box, self.tooltip], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
                self.legend,
            ],
            layout=W.Layout(max_width="100%", flex="0 1 auto"),
        )
        self.widget.add_class("lw-webgl-map")

    def _make_scatter(self, n: int) -> None:
        """A jupyter-scatter plot of ``n`` points (zeros until a map arrives)."""
        zeros = np.zeros(n)
        self.scatter = self._jscatter.Scatter(
            x=zeros,
            y=zeros,
            size=self._point_size or default_point_size(n),
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

    def _follow_surface(self) -> None:
        self._observe_guarded(self._on_lasso_selection, "lasso_selection")
        self._observe_js()

    def _observe_js(self) -> None:
        # What the browser reports: the hovered point, the selection (click or lasso), the lasso's polygon.
        self.map_widget.observe(self.errors.guard(self._on_js_hover), "hovering")
        self.map_widget.observe(self.errors.guard(self._on_js_selection), "selection")
        self.map_widget.observe(self.errors.guard(self._on_js_lasso), "lasso_selection_polygon")

    def reset_view(self) -> None:
        """Fit the view to the map (undo pan and zoom)."""
        self.map_widget.reset_view(animation=0)

    # ------------------------------------------------------------------ drawing

    def _draw_points(self, points: np.ndarray, recount: bool) -> None:
        if recount:
            # Other points (samples <-> cells): jupyter-scatter keeps its point count, so a new plot.
            old = self.map_widget
            self._make_scatter(len(points))
            self._observe_js()
            self._map_box.children = [self.map_widget]
            old.close()
        # One binary (N, 4) float32 array; the annotations are re-normalised to the new extent.
        self.scatter.xy(x=points[:, 0], y=points[:, 1], animate=False)
        if recount:
            self._on_color_by({"new": self.color_by})
            self._show_highlight()

    def _draw_colours(self, drawn: ColorCodes) -> None:
        import pandas as pd

        # jupyter-scatter drops unused categories: give it the used ones, in order, with their colours.
        used = np.unique(drawn.codes)
        self.scatter.color(by=pd.Categorical(drawn.codes, categories=used), map=[drawn.colours[c] for c in used])

    def _draw_highlight(self, points: list[int] | None, dim: bool) -> None:
        # One highlighted point (the clicked sample) must not dim the other 100k; a selection does.
        opacity = 0.25 if dim else 1.0
        if opacity != self._unselected_opacity:
            self.scatter.opacity(unselected=opacity)
            self._unselected_opacity = opacity
        self.scatter.selection(points)

    def _marker_radius(self) -> tuple[float, float]:
        pts = self._drawn_map
        span = np.ptp(pts, axis=0) if pts is not None and len(pts) else np.ones(2)
        span = np.where(span > 0, span, 1.0)
        # The map's axes are scaled independently to the same square: one radius per axis.
        return float(_MARKER * span[0]), float(_MARKER * span[1])

    def _draw_overlay(self, path: np.ndarray | None, neighbours: np.ndarray | None, ends: np.ndarray | None) -> None:
        Line = self._jscatter.Line
        layers: dict[str, list[Any]] = {"path": [], "steps": [], "neighbors": [], "endpoints": [], "current": []}
        if path is not None:
            rx, ry = self._marker_radius()
            layers["path"] = [Line([(float(x), float(y)) for x, y in path], line_color=PATH_COLOUR, line_width=2)]
            layers["steps"] = [
                Line(_ring(x, y, rx * 0.5, ry * 0.5, 4), line_color=PATH_COLOUR, line_width=2) for x, y in path
            ]
            if neighbours is not None:
                layers["neighbors"] = [
                    Line(_ring(x, y, rx * 1.3, ry * 1.3, 8), line_color=NEIGHBOUR_COLOUR, line_width=2.5)
                    for x, y in neighbours
                ]
            if ends is not None:
                (ax, ay), (bx, by) = ends[0], ends[1]
                layers["endpoints"] = [
                    Line(_ring(ax, ay, rx * 1.6, ry * 1.6, 4), line_color="#000000", line_width=2),  # A: square
                    Line(
                        [(bx, by + 2 * ry), (bx + 2 * rx, by), (bx, by - 2 * ry), (bx - 2 * rx, by), (bx, by + 2 * ry)],
                        line_color="#000000",
                        line_width=2,
                    ),  # B: diamond
                ]
        self._layers = layers

    def _draw_current_point(self, xy: np.ndarray | None) -> None:
        if xy is None:
            self._layers["current"] = []
        else:
            rx, ry = self._marker_radius()
            x, y = float(xy[0]), float(xy[1])
            Line = self._jscatter.Line
            self._layers["current"] = [
                Line(_ring(x, y, rx * 1.4, ry * 1.4, 12), line_color=PATH_COLOUR, line_width=4),
                Line([(x - rx, y), (x + rx, y)], line_color="#000000", line_width=2),
                Line([(x, y - ry), (x, y + ry)], line_color="#000000", line_width=2),
            ]
        self._send_annotations()

    def _draw_linked_hover(self, xy: np.ndarray | None) -> None:
        rx, ry = self._marker_radius()
        self._linked = [
            self._jscatter.Line(
                _ring(float(x), float(y), rx * 2, ry * 2, 16), line_color=LINKED_HOVER_COLOUR, line_width=3
            )
            for x, y in ([] if xy is None else xy)
        ]
        self._send_annotations()

    def _send_annotations(self) -> None:
        self.overlay_annotations = {k: list(v) for k, v in self._layers.items()}
        self.scatter.annotations([a for v in self._layers.values() for a in v] + self._linked)

    # ------------------------------------------------------------------ what the browser reports

    def _on_selection(self, change: Any) -> None:
        sel = self.session.selection
        self._lasso_status.value = (
            f"<span style='font-size:12px'>selection: {len(sel)} samples</span>" if len(sel) else ""
        )
        super()._on_selection(change)

    def _on_js_hover(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        if index is not None and 0 <= int(index) < self.n_points:
            self.hover_point(int(index))

    def _on_js_selection(self, change: Mapping[str, Any]) -> None:
        if self._writing:
            return  # the highlight drawn from Python, not a user's click or lasso
        sel = np.asarray([] if change["new"] is None else change["new"], np.int64).reshape(-1)
        if len(sel) == 1:
            # A click (or a lasso around one point: its polygon follows) replaces the selection.
            self.lasso_selection = None
            self.session.selection = None
            self.click_point(int(sel[0]))
        elif len(sel) > 1:
            # On a map of cells: the samples of the cells inside.
            self.lasso_selection = self.session.samples_of_points(sel)
        else:
            # A click on the background clears the lasso and the selection; the clicked sample stays shown.
            self.lasso_selection = None
            self.session.selection = None
            self._show_highlight()

    def _on_js_lasso(self, change: Mapping[str, Any]) -> None:
        polygon = change["new"]
        if polygon is not None and len(polygon):
            sel = self.map_widget.selection
            self.lasso_selection = None if sel is None else self.session.samples_of_points(np.asarray(sel, np.int64))

    def _on_lasso_selection(self, change: Mapping[str, Any]) -> None:
        sel = change["new"]
        if sel is not None:
            self.session.selection = sel
            self._lasso_status.value = f"<span style='font-size:12px'>lasso: {len(sel)} samples</span>"
