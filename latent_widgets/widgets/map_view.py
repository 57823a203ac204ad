"""``MapView``: a map of the session's points, whichever surface draws it.

The map view follows the session (its map, colour field, selection, path
and the slider's point) and writes what the user does on the map into it
(a click, a hover, a selection, the method, the colour field). Drawing is
left to a subclass, a drawing surface: the SVG map
(:class:`~latent_widgets.widgets.scatter.ProjectionScatter`, bqplot) or the
WebGL map (:class:`~latent_widgets.widgets.webgl_map.WebGLMap`,
jupyter-scatter), which implements
:class:`~latent_widgets.widgets.map_surface.MapSurface`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..session import ExplorerSession
from ._common import ErrorSink, View, watch_session
from .map_colors import ColorCodes, color_codes, legend_html
from .map_controls import MapControls
from .map_surface import MapSurface
from .sample_tooltip import SampleTooltip

__all__ = ["MapView", "point_along"]


def _new_session(
    owner: str,
    latents: np.ndarray | None,
    dataset: Any,
    predictions: np.ndarray | None,
    *,
    method: str,
    methods: Sequence[str],
    projections: Mapping[str, np.ndarray] | None,
    kwargs: Mapping[str, Mapping[str, Any]] | None,
) -> ExplorerSession:
    """A synchronous session of ``latents`` and ``dataset``, for a map made without one."""
    if latents is None or dataset is None:
        raise ValueError(f"{owner} needs latents and a dataset, or session=...")
    if len(latents) != len(dataset):
        raise ValueError(f"{len(latents)} latents for a dataset of {len(dataset)} samples")
    if len(latents) < 2:
        raise ValueError("a projection needs at least 2 samples")
    if method not in tuple(methods):
        raise ValueError(f"method {method!r} is not among {tuple(methods)}")
    return ExplorerSession(
        None,
        dataset,
        latents=np.asarray(latents).astype(np.float32, copy=False),
        predictions=predictions,
        methods=methods,
        map_method=method,
        projections=projections,
        projection_kwargs=kwargs,
        asynchronous=False,
    )


def point_along(path: np.ndarray | None, alpha: float | None) -> np.ndarray | None:
    """The point at ``alpha`` along a path of evenly spaced steps, (M, 2), interpolated between them.

    Examples
    --------
    >>> point_along(np.array([[0.0, 0.0], [2.0, 4.0]]), 0.25).tolist()
    [0.5, 1.0]
    """
    if path is None or alpha is None:
        return None
    t = float(np.clip(alpha, 0.0, 1.0)) * (len(path) - 1)
    i = min(int(t), len(path) - 2) if len(path) > 1 else 0
    f = t - i
    return path[i] if len(path) == 1 else (1 - f) * path[i] + f * path[i + 1]


class MapView(MapSurface, View):
    """A map of the session: the session link, the controls, colours, hover, click, the path.

    This class keeps the state (:attr:`selected`, :attr:`hovered`, the path
    overlay, the current point) and the shared controls (:attr:`controls`),
    follows the session and writes the user's input into it; a subclass
    draws (:class:`~latent_widgets.widgets.map_surface.MapSurface`).

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape), optional
        One latent per sample (when no ``session`` is given).
    dataset : SegmentationDataset
        The N samples: images and masks for the tooltip, groups and class
        fractions for the colours.
    session : ExplorerSession, optional
        The state to show (map method, selection, maps, path); one is made
        from ``latents``, ``dataset`` and the map arguments if omitted.
    method : str
        Initial projection (``"pca"``, ``"tsne"``, ``"umap"``).
    methods : sequence of str
        Methods offered by the selector.
    projections : mapping method -> ndarray (N, 2), optional
        Precomputed maps; others are computed on first use with
        :func:`latent_widgets.analysis.projection.fit_projection` (disk-cached) and kept.
    projection_kwargs : mapping method -> dict, optional
        Extra arguments of each method (perplexity, n_neighbors...).
    predictions : ndarray of int, shape (N, H, W), optional
        Predicted masks: enable the "mean IoU" colouring and the predicted
        mask in the tooltip.
    splits : sequence of str, optional
        A split name per sample ("train", "val"...), for ``color_by="split"``.
    color_by : str, optional
        One of the session's ``color_fields()``; default the session's ("group"
        when the dataset has groups, else "dominant class").
    errors : ErrorSink, optional
        Where callback exceptions go (the explorer passes its own).
    width, height : int
        Map size in px (the map shrinks to a narrower output area).
    """

    method = traitlets.Unicode("pca")
    selected = traitlets.Int(None, allow_none=True)
    color_by = traitlets.Unicode("group")
    hovered = traitlets.Int(None, allow_none=True)
    #: A sample hovered in a linked explorer (:func:`~latent_widgets.widgets.linking.link_explorers`): ringed.
    linked_hover = traitlets.Int(None, allow_none=True)

    #: Which mark draws the points ("Scatter", "ScatterGL", "jupyter-scatter").
    renderer: str
    #: Whether the points are drawn with WebGL.
    uses_gl: bool
    #: The hover tooltip's size: thumbnail width, placeholder caption, box width.
    _tooltip_style: tuple[int, str, str | None] = (220, "", None)

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
    ) -> None:
        super().__init__()
        if session is None:
            maps = {"method": method, "methods": methods, "projections": projections, "kwargs": projection_kwargs}
            session = _new_session(type(self).__name__, latents, dataset, predictions, **maps)
        self.session = session
        self.dataset = session.dataset
        self.n = len(self.dataset)
        self.methods = session.methods
        if splits is not None:
            session.set_splits(splits)
        self.errors = errors or ErrorSink()
        self._handles: list[tuple[Any, str | list[str]]] = []
        self._links: list[Any] = []
        # The overlay: path steps on the map, their nearest samples, the endpoints.
        self._overlay: tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None] = (None, None, None)
        self._current_alpha: float | None = None
        self._drawn_map: np.ndarray | None = None
        # Set while the highlight is drawn from Python: the surface's echo of it is no user input.
        self._writing = False
        #: Map coordinates of the drawn path steps, (M, 2), or None.
        self.path_points: np.ndarray | None = None
        #: Map coordinates of the slider's current point, or None.
        self.current_point: np.ndarray | None = None

        #: The method buttons, the colour and points dropdowns, the reset button, the status.
        self.controls = MapControls(self)
        thumb_width, placeholder, box_width = self._tooltip_style
        #: What hovering a point shows (:attr:`tooltip` is its widget).
        self.hover_tooltip = SampleTooltip(session, width=thumb_width, placeholder=placeholder, box_width=box_width)
        self.tooltip = self.hover_tooltip.widget
        #: The colour field's legend under the map.
        self.legend = W.HTML(layout=W.Layout(max_width=f"min({width}px, 100%)"))
        self._make_surface(width, height)

        # The initial state, drawn once, before the observers exist.
        self.set_trait("method", session.map_method)
        self.set_trait("selected", session.selected)
        if color_by is not None:
            session.color_by = color_by
        self.set_trait("color_by", session.color_by)
        self.controls.show_color_by()
        self._on_color_by({"new": self.color_by})
        self._on_selected({"new": self.selected})
        self._observe_guarded(self._on_color_by, "color_by")
        self._observe_guarded(self._on_selected, "selected")
        self._follow_surface()
        # The map method and the selection live in the session.
        self._link("method", "map_method")
        self._link("selected", "selected")
        self._watch(self._on_map, ["maps", "map_method", "map_points"])
        self._watch(self._on_session_path, ["path_points", "strip"])
        self._watch(self._on_ready, "ready")
        self._on_map(None)
        self._on_session_path(None)
        self.controls.follow()
        self._link("color_by", "color_by")
        self._watch(self._on_quality, "quality")
        self._watch(self._on_predicted, "predicted")
        self._watch(self._on_selection, "selection")
        self._observe_guarded(self._on_linked_hover, "linked_hover")
        self._on_selection(None)

    # ------------------------------------------------------------------ the session

    def _watch(self, handler: Any, names: str | list[str]) -> None:
        """Follow the session's ``names`` (undone by :meth:`detach`)."""
        self._handles.append((watch_session(self, self.session, handler, names), names))

    def _link(self, mine: str, theirs: str) -> None:
        """Link a trait of the map to the session's (undone by :meth:`detach`)."""
        self._links.append(traitlets.link((self, mine), (self.session, theirs)))

    def detach(self) -> None:
        """Stop following the session and close the widgets (the explorer swaps its map)."""
        for observer, names in self._handles:
            self.session.unobserve(observer, names=names)
        for link in self._links:
            link.unlink()
        self._handles, self._links = [], []
        self.controls.detach()
        self.widget.close()

    def _on_map(self, _change: Any) -> None:
        pts = self.session.points
        if pts is None or pts is self._drawn_map:
            return  # still computing: the drawn map stays until the new one arrives
        recount = len(pts) != self.n_points
        self._drawn_map = pts
        self._draw_points(pts, recount)
        self.reset_view()
        self._redraw_overlay()

    def _on_color_by(self, change: Mapping[str, Any]) -> None:
        if self.session.n_points() != self.n_points:
            return  # the map of the new points is computing: coloured when it is drawn (_on_map)
        field = self.session.color_values(change["new"])
        drawn = color_codes(field)
        self._draw_colours(drawn)
        self.legend.value = legend_html(field, drawn)

    def _on_quality(self, _change: Any) -> None:
        if self.color_by in ("trustworthiness", "kNN preservation"):
            self._on_color_by({"new": self.color_by})

    def _on_predicted(self, _change: Any) -> None:
        # The background prediction moved: the IoU colours fill in, the tooltips gain the prediction.
        if self.session.predictions is not None:
            self.hover_tooltip.clear()
        if self.session.ready and (self.color_by == "mean IoU" or self.color_by.startswith("IoU: ")):
            self._on_color_by({"new": self.color_by})

    def _on_ready(self, _change: Any) -> None:
        self.hover_tooltip.clear()
        if self.session.ready:
            self._on_color_by({"new": self.color_by})

    def _on_selected(self, _change: Any) -> None:
        self._show_highlight()
        self._draw_labels()

    def _on_selection(self, _change: Any) -> None:
        self._show_highlight()

    def _show_highlight(self) -> None:
        """Highlight the selection (others dimmed), else the selected (clicked) sample, else nothing."""
        s = self.session
        samples = s.selection.tolist() if len(s.selection) else None if self.selected is None else [int(self.selected)]
        self._writing = True
        try:
            self._draw_highlight(
                None if samples is None else s.points_of_samples(samples).tolist(), len(s.selection) > 0
            )
        finally:
            self._writing = False

    def _on_linked_hover(self, change: Mapping[str, Any]) -> None:
        index, pts = change["new"], self._drawn_map
        if index is None or pts is None or len(pts) != self.session.n_points():
            self._draw_linked_hover(None)
        else:
            self._draw_linked_hover(pts[self.session.points_of_samples([index])])  # every cell of a sample

    # ------------------------------------------------------------------ state

    @traitlets.validate("method", "color_by")
    def _valid_choice(self, proposal: Mapping[str, Any]) -> str:
        name, value = proposal["trait"].name, proposal["value"]
        options = self.methods if name == "method" else self.session.color_fields()
        if value not in options:
            raise traitlets.TraitError(f"{name} {value!r}: choose one of {options}")
        return value

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Mapping[str, Any]) -> int | None:
        i = proposal["value"]
        if i is not None and not 0 <= i < self.n:
            raise traitlets.TraitError(f"selected={i} is out of range for {self.n} points")
        return i

    @property
    def n_points(self) -> int:
        """How many points the map draws (N samples, or N * h * w cells)."""
        return len(self._drawn_map) if self._drawn_map is not None else self.n

    @property
    def splits(self) -> np.ndarray | None:
        """The split name of each sample (the session's), or None."""
        return self.session.splits

    @property
    def selection(self) -> np.ndarray:
        """The selected samples (the session's :attr:`~latent_widgets.session.ExplorerSession.selection`)."""
        return self.session.selection

    @selection.setter
    def selection(self, indices: Any) -> None:
        self.session.selection = indices

    @property
    def latents(self) -> np.ndarray:
        """The latents on the map (the session's)."""
        return self.session.latents

    @property
    def predictions(self) -> np.ndarray | None:
        """Predicted masks (the session's), or None."""
        return self.session.predictions

    @property
    def points(self) -> np.ndarray:
        """Coordinates of the current map, shape (N, 2); fitted now if missing."""
        return self.projection(self.method)

    def projection(self, method: str) -> np.ndarray:
        """The map of ``method``, fitted on first use (in the caller's thread) and then kept.

        Maps come from :func:`latent_widgets.analysis.projection.fit_projection`
        (disk-cached by content hash), which also gives the fitted object
        that places interpolation paths on the same map.
        """
        return self.session.fit_map(method)

    @property
    def cached_methods(self) -> tuple[str, ...]:
        """Methods whose map is already computed."""
        return tuple(self.session.maps)

    def transform(self, latents: np.ndarray, method: str | None = None) -> np.ndarray:
        """Place new latents (e.g. an interpolation path) on a map, shape (M, 2) (the session's ``place``)."""
        return self.session.place(latents, method or self.method)

    def color_codes(self, field: str | None = None) -> ColorCodes:
        """The session's colour field ``field`` (default :attr:`color_by`) as drawn: codes, colours, names."""
        return color_codes(self.session.color_values(field or self.color_by))

    @property
    def colors(self) -> list[str]:
        """The ``#rrggbb`` colour of each point under the current ``color_by``."""
        codes, colours, _ = self.color_codes()
        return [colours[c] for c in codes]

    # ------------------------------------------------------------------ user input

    def click(self, index: int) -> None:
        """Do what a click on point ``index`` does (sets :attr:`selected`)."""
        index = int(index)
        if not 0 <= index < self.n:
            raise IndexError(f"no point {index} in a map of {self.n} samples")
        if self.selected == index:
            # Clicking the selected point again still notifies (re-show, re-set A/B).
            self.notify_change(traitlets.Bunch(name="selected", old=index, new=index, owner=self, type="change"))
        else:
            self.selected = index

    def click_point(self, point: int) -> None:
        """Do what a click on map point ``point`` does: show its sample (and, on a map of cells, its cell)."""
        sample, row, col = self.session.point_sample(point)
        if row is not None:
            self.session.selected_cell = (row, col)
        self.click(sample)

    def hover(self, index: int) -> None:
        """Fill the tooltip with sample ``index`` (what hovering it does)."""
        self._show_hovered(int(index), "")

    def hover_point(self, point: int) -> None:
        """Hover map point ``point``: its sample's thumbnail (see :meth:`hover`)."""
        sample, row, col = self.session.point_sample(point)
        self._show_hovered(sample, "" if row is None else f" · cell ({row}, {col})")

    def _show_hovered(self, sample: int, detail: str) -> None:
        self.hovered = sample
        self.hover_tooltip.show(sample, detail)

    def thumbnail(self, index: int) -> bytes:
        """PNG of the tooltip of sample ``index``: image, true mask (and prediction)."""
        return self.hover_tooltip.thumbnail(index)

    @property
    def tooltip_value(self) -> bytes:
        """PNG bytes currently in the hover tooltip."""
        return self.hover_tooltip.value

    # ------------------------------------------------------------------ path overlay

    def show_path(
        self,
        latents: np.ndarray | None,
        neighbors: Sequence[int] | np.ndarray | None = None,
        endpoints: tuple[int, int] | None = None,
    ) -> None:
        """Draw an interpolation path (its latents) and its steps' nearest samples.

        Parameters
        ----------
        latents : ndarray, shape (M, ...), or None
            The latents of the path steps; ``None`` removes the overlay.
        neighbors : sequence of int, optional
            Nearest real sample of each step (ringed on the map).
        endpoints : (a, b), optional
            Sample indices of the endpoints (marked "A" and "B").
        """
        points = None if latents is None else self.transform(np.asarray(latents, np.float32))
        nb = None if neighbors is None else np.asarray(neighbors, int).reshape(-1)
        self._overlay = (points, nb, endpoints)
        self._redraw_overlay()

    def _on_session_path(self, _change: Any) -> None:
        s = self.session
        strip, points = s.strip, s.path_points
        if strip is None or points is None:
            self._overlay = (None, None, None)
        else:
            self._overlay = (points, strip.neighbor_indices, (strip.key.index_a, strip.key.index_b))
        self._redraw_overlay()

    def set_current(self, alpha: float | None) -> None:
        """Put the slider's point at ``alpha`` along the drawn path (None hides it).

        The point is interpolated between the projected path steps, so it
        moves on the drawn line without projecting every slider value.
        """
        self._current_alpha = alpha
        self._draw_current()

    def _redraw_overlay(self) -> None:
        p, neighbors, endpoints = self._overlay
        pts = self._drawn_map
        if p is None or pts is None:
            self.path_points = None
            self._draw_overlay(None, None, None)
        else:
            self.path_points = p
            nb = pts[np.unique(neighbors)] if neighbors is not None and len(neighbors) else None
            ends = None if endpoints is None else pts[np.asarray(endpoints, int)]
            self._draw_overlay(p, nb, ends)
        self._draw_current()
        self._draw_labels()

    def _draw_current(self) -> None:
        self.current_point = xy = point_along(self.path_points, self._current_alpha)
        self._draw_current_point(xy)
