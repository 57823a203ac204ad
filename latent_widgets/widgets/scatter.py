"""``ProjectionScatter``: a bqplot map of the latents, one point per sample."""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from ..data import colors
from ..data.colors import NO_VALUE_COLOUR
from ..session import ExplorerSession
from ..views import render
from ..views.labels import label_boxes, place_labels
from ._common import ErrorSink, View, image_pane, watch_session

__all__ = [
    "COLOR_FIELDS",
    "MAP_TOOLS",
    "METHOD_LABELS",
    "MapView",
    "ProjectionScatter",
    "gl_scatter_class",
]

#: The basic fields a map can be coloured by; the session offers more
#: (``session.color_fields()``: per-class IoU, trustworthiness, kNN preservation).
COLOR_FIELDS: tuple[str, ...] = ("group", "dominant class", "mean IoU", "split", "none")

#: What a drag on the SVG map does (``tool``): nothing (click points), pan and zoom, lasso, brush (rectangle).
MAP_TOOLS: tuple[str, ...] = ("click", "pan/zoom", "lasso", "brush")

#: Button label of each projection method.
METHOD_LABELS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

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

_PATH_COLOUR = "#d62728"
_NEIGHBOUR_COLOUR = "#ff8c00"
# What a hidden index label is made of (see ProjectionScatter._update_labels).
_HIDDEN = "\u200b"
# Hover thumbnails kept (oldest dropped first).
_MAX_THUMBS = 512


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


def _quantised_viridis(values: np.ndarray, lo: float, hi: float, levels: int = 32) -> tuple[np.ndarray, list[str]]:
    colours = colors.hex_colours(colors.colormap_rgb("viridis", np.linspace(0, 1, levels)))
    t = (np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-12)
    return np.clip((t * (levels - 1)).round(), 0, levels - 1).astype(int), colours


class MapView(View):
    """What the SVG and the WebGL maps share: the session link, colours, hover, click, the path.

    Subclasses draw; this class keeps the state (:attr:`selected`,
    :attr:`hovered`, the path overlay, the current point), computes the
    colours of a field, renders the hover thumbnail of one sample on
    demand and places interpolation paths on the map. See
    :class:`ProjectionScatter` (bqplot, SVG) and
    :class:`~latent_widgets.widgets.webgl_map.WebGLMap` (jupyter-scatter).
    """

    method = traitlets.Unicode("pca")
    selected = traitlets.Int(None, allow_none=True)
    color_by = traitlets.Unicode("group")
    hovered = traitlets.Int(None, allow_none=True)
    #: A sample hovered in a linked explorer (:func:`~latent_widgets.widgets.linking.link_explorers`): ringed.
    linked_hover = traitlets.Int(None, allow_none=True)

    #: Which mark draws the points ("Scatter", "ScatterGL", "jupyter-scatter").
    renderer: str
    _status: W.HTML
    _method_buttons: W.ToggleButtons
    _tooltip_caption: W.HTML
    _tooltip_image: W.Image

    def _init_state(
        self,
        latents: np.ndarray | None,
        dataset: Any,
        session: ExplorerSession | None,
        *,
        method: str,
        methods: Sequence[str],
        projections: Mapping[str, np.ndarray] | None,
        projection_kwargs: Mapping[str, Mapping[str, Any]] | None,
        predictions: np.ndarray | None,
        splits: Sequence[str] | np.ndarray | None,
        errors: ErrorSink | None,
    ) -> ExplorerSession:
        """Make the session (from ``latents`` and ``dataset`` when none is given) and the shared state."""
        if session is None:
            if latents is None or dataset is None:
                raise ValueError(f"{type(self).__name__} needs latents and a dataset, or session=...")
            if len(latents) != len(dataset):
                raise ValueError(f"{len(latents)} latents for a dataset of {len(dataset)} samples")
            if len(latents) < 2:
                raise ValueError("a projection needs at least 2 samples")
            if method not in tuple(methods):
                raise ValueError(f"method {method!r} is not among {tuple(methods)}")
            session = ExplorerSession(
                None,
                dataset,
                latents=np.asarray(latents).astype(np.float32, copy=False),
                predictions=predictions,
                methods=methods,
                map_method=method,
                projections=projections,
                projection_kwargs=projection_kwargs,
                asynchronous=False,
            )
        self.session = session
        self.dataset = session.dataset
        self.n = len(self.dataset)
        self.methods = session.methods
        if splits is not None:
            session.set_splits(splits)
        self.errors = errors or ErrorSink()
        self._handles: list[tuple[Any, str | list[str]]] = []
        self._links: list[Any] = []
        self._thumbs: dict[int, bytes] = {}
        # The overlay: path steps on the map, their nearest samples, the endpoints.
        self._overlay: tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None] = (None, None, None)
        self._current_alpha: float | None = None
        self._drawn_map: np.ndarray | None = None
        #: Map coordinates of the drawn path steps, (M, 2), or None.
        self.path_points: np.ndarray | None = None
        #: Map coordinates of the slider's current point, or None.
        self.current_point: np.ndarray | None = None
        return session

    def _link_colour_dropdown(self) -> None:
        """The colour dropdown follows :attr:`color_by` both ways, its options the session's fields.

        Not ``W.link``: the fields change with the map's points ("cell class"
        on a map of cells), and the options must change before the value.
        """
        box = self._color_dropdown

        def to_box(_change: Any) -> None:
            fields = list(self.session.color_fields())
            if list(box.options) != fields:
                self._setting_options = True
                try:
                    box.options = fields
                finally:
                    self._setting_options = False
            if box.value != self.color_by:
                box.value = self.color_by

        def from_box(change: Mapping[str, Any]) -> None:
            if not getattr(self, "_setting_options", False) and change["new"] is not None:
                self.color_by = change["new"]

        self._observe_guarded(to_box, "color_by")
        box.observe(self.errors.guard(from_box), "value")
        self._watch(to_box, "map_points")
        to_box(None)

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
        self.widget.close()

    def _points_control(self) -> W.Dropdown:
        """The "points" dropdown: what a map point is (the session's ``map_points``)."""
        grid = self.session.grid
        options = [("sample (flatten)", "flatten")]
        if grid is not None:
            options += [("sample (pooled)", "pooled"), (f"cell ({grid[0]}x{grid[1]} per sample)", "cells")]
        box = W.Dropdown(
            options=options,
            value=self.session.map_points,
            description="points",
            tooltip="a point per sample (whole latent, or its average over the grid), or per latent cell",
            layout=W.Layout(width="230px"),
            style={"description_width": "45px"},
        )
        box.add_class("lw-map-points")
        self._links.append(traitlets.link((self.session, "map_points"), (box, "value")))
        return box

    @property
    def n_points(self) -> int:
        """How many points the map draws (N samples, or N * h * w cells)."""
        return len(self._drawn_map) if self._drawn_map is not None else self.n

    def click_point(self, point: int) -> None:
        """Do what a click on map point ``point`` does: show its sample (and, on a map of cells, its cell)."""
        sample, row, col = self.session.point_sample(point)
        if row is not None:
            self.session.selected_cell = (row, col)
        self.click(sample)

    def hover_point(self, point: int) -> None:
        """Hover map point ``point``: its sample's thumbnail (see :meth:`hover`)."""
        sample, row, col = self.session.point_sample(point)
        self.hover(sample)
        if row is not None:
            self._tooltip_caption.value += f" · cell ({row}, {col})"

    def _highlighted_points(self) -> list[int] | None:
        """The map points of :meth:`_highlighted` (every cell of the samples on a map of cells)."""
        samples = self._highlighted()
        return None if samples is None else self.session.sample_points(samples).tolist()

    def _on_color_by(self, change: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _redraw_overlay(self) -> None:
        raise NotImplementedError

    def _draw_current(self) -> None:
        raise NotImplementedError

    def _current_xy(self) -> np.ndarray | None:
        """The slider's point on the drawn path, interpolated between the projected steps."""
        p, alpha = self.path_points, self._current_alpha
        if p is None or alpha is None:
            return None
        # Path steps are evenly spaced in alpha from 0 to 1.
        t = float(np.clip(alpha, 0.0, 1.0)) * (len(p) - 1)
        i = min(int(t), len(p) - 2) if len(p) > 1 else 0
        f = t - i
        return p[i] if len(p) == 1 else (1 - f) * p[i] + f * p[i + 1]

    @traitlets.validate("method")
    def _valid_method(self, proposal: Mapping[str, Any]) -> str:
        if proposal["value"] not in self.methods:
            raise traitlets.TraitError(f"method {proposal['value']!r}: choose one of {self.methods}")
        return proposal["value"]

    @traitlets.validate("color_by")
    def _valid_color_by(self, proposal: Mapping[str, Any]) -> str:
        fields = self.session.color_fields()
        if proposal["value"] not in fields:
            raise traitlets.TraitError(f"color_by {proposal['value']!r}: choose one of {fields}")
        return proposal["value"]

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Mapping[str, Any]) -> int | None:
        i = proposal["value"]
        if i is not None and not 0 <= i < self.n:
            raise traitlets.TraitError(f"selected={i} is out of range for {self.n} points")
        return i

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

    def _link_session_colours(self, color_by: str | None) -> str:
        """Start on ``color_by`` (default: the session's) and follow the session's both ways."""
        if color_by is not None:
            self.session.color_by = color_by
        self.set_trait("color_by", self.session.color_by)
        self._color_dropdown.options = list(self.session.color_fields())
        self._color_dropdown.value = self.session.color_by
        return self.session.color_by

    def _start_following(self) -> None:
        """Observers shared by the maps: colours, the selection, the linked hover."""
        self._link("color_by", "color_by")
        self._watch(self._on_quality, "quality")
        self._watch(self._on_predicted, "predicted")
        self._watch(self._on_selection, "selection")
        self._observe_guarded(self._on_linked_hover, "linked_hover")
        self._on_selection(None)

    def _on_quality(self, _change: Any) -> None:
        if self.color_by in ("trustworthiness", "kNN preservation"):
            self._on_color_by({"new": self.color_by})

    def _on_predicted(self, _change: Any) -> None:
        # The background prediction moved: the IoU colours fill in, the tooltips gain the prediction.
        if self.session.predictions is not None:
            self._thumbs.clear()
        if self.session.ready and (self.color_by == "mean IoU" or self.color_by.startswith("IoU: ")):
            self._on_color_by({"new": self.color_by})

    def _on_selection(self, _change: Any) -> None:
        raise NotImplementedError

    def _on_linked_hover(self, _change: Any) -> None:
        raise NotImplementedError

    def _highlighted(self) -> list[int] | None:
        """What the map highlights: the selection, else the selected (clicked) sample, else nothing."""
        if len(self.session.selection):
            return self.session.selection.tolist()
        return None if self.selected is None else [int(self.selected)]

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
        """Place new latents (e.g. an interpolation path) on a map, shape (M, 2).

        See :meth:`latent_widgets.session.ExplorerSession.place`.
        """
        return self.session.place(latents, method or self.method)

    def _on_ready(self, _change: Any) -> None:
        self._thumbs.clear()
        if self.session.ready:
            self._on_color_by({"new": self.color_by})

    def _on_busy(self, _change: Any) -> None:
        fitting = [b.split(": ", 1)[1] for b in self.session.busy if b.startswith("map: ")]
        if not self.session.ready:
            done = self.session.progress.get("encode dataset")
            self._status.value = f"<i>encoding the dataset{'' if done is None else f' {done[0]}/{done[1]}'}…</i>"
        else:
            self._status.value = (
                f"<i>computing {', '.join(METHOD_LABELS.get(m, m) for m in fitting)}…</i>" if fitting else ""
            )

    def _on_method_button(self, change: Mapping[str, Any]) -> None:
        try:
            self.method = change["new"]
        finally:
            # A failed fit reverts the session while the link is busy: follow it.
            if self.method != self.session.map_method:
                self.method = self.session.map_method
            if self._method_buttons.value != self.method:
                self._method_buttons.value = self.method

    def color_values(self, field: str | None = None) -> tuple[np.ndarray, list[str], list[str]]:
        """Colour codes, colours and legend names of ``field`` (the session's :meth:`color_values`, drawn).

        Returns
        -------
        codes : ndarray of int, shape (N,)
            Index into ``colours`` of each point.
        colours : list of str
        names : list of str
            Legend entry of each colour ("" for the steps of a continuous scale).
        """
        f = self.session.color_values(field or self.color_by)
        if f.categorical:
            return np.asarray(f.values, int), list(f.colours), list(f.labels)
        codes, colours = _quantised_viridis(f.values, f.vmin, f.vmax)
        missing = np.isnan(f.values)
        if missing.all():  # not computed (yet): grey, not the scale's bottom colour
            return np.zeros(len(f.values), int), [NO_VALUE_COLOUR], [""]
        if missing.any():  # e.g. the cells left out of a sampled quality field: grey too
            names = [""] * len(colours) + ["no value"]
            return np.where(missing, len(colours), codes), [*colours, NO_VALUE_COLOUR], names
        return codes, colours, [""] * len(colours)

    @property
    def colors(self) -> list[str]:
        """The ``#rrggbb`` colour of each point under the current ``color_by``."""
        codes, colours, _ = self.color_values()
        return [colours[c] for c in codes]

    def _legend_html(self, field: str, codes: np.ndarray, colours: list[str], names: list[str]) -> str:
        f = self.session.color_values(field)
        if not f.categorical:
            if f.note and np.isnan(f.values).all():
                return f"<div style='font-size:11px'>{html.escape(field)}: <i>{html.escape(f.note)}</i></div>"
            stops = ", ".join(c for c, name in zip(colours, names, strict=True) if not name)  # the scale alone
            note = f"; <i>{html.escape(f.note)}</i>" if f.note else ""
            return (
                f"<div style='font-size:11px'>{html.escape(field)} {f.vmin:g} <span style='display:inline-block;"
                f"width:120px;height:10px;background:linear-gradient(to right,{stops})'></span> {f.vmax:g} "
                f"(dataset mean {np.nanmean(f.values):.3f}{note})</div>"
            )
        if field == "none":
            return ""
        used = np.unique(codes)
        items = "".join(
            f"<span style='margin-right:8px;white-space:nowrap'><span style='display:inline-block;width:10px;"
            f"height:10px;background:{colours[c]};border:1px solid #555'></span> {names[c]}</span>"
            for c in used[:30]
        )
        more = f" … {len(used) - 30} more" if len(used) > 30 else ""
        return f"<div style='font-size:11px;line-height:1.6'>{items}{more}</div>"

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

    def hover(self, index: int) -> None:
        """Fill the tooltip with sample ``index`` (what hovering it does)."""
        index = int(index)
        self.hovered = index
        self._tooltip_caption.value = f"<b>#{index}</b> {self.dataset.names[index]}" + (
            "" if self.predictions is None else " · image | truth | prediction"
        )
        self._tooltip_image.value = self.thumbnail(index)

    def thumbnail(self, index: int) -> bytes:
        """PNG of the tooltip of sample ``index``: image, true mask (and prediction)."""
        png = self._thumbs.get(index)
        if png is None:
            ds = self.dataset
            tiles = [render.thumbnail(ds.images[index], ds.masks[index], ds.palette, height=80)]
            if self.predictions is not None:
                tiles.append(render.thumbnail(render.colorize(self.predictions[index], ds.palette), height=80))
            png = render.to_png(render.hstack(tiles))
            if len(self._thumbs) >= _MAX_THUMBS:  # hovering across a large map must not keep them all
                self._thumbs.pop(next(iter(self._thumbs)))
            self._thumbs[index] = png
        return png

    @property
    def tooltip_value(self) -> bytes:
        """PNG bytes currently in the hover tooltip."""
        return bytes(self._tooltip_image.value)

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


class ProjectionScatter(MapView):
    """A 2-D map (PCA / t-SNE / UMAP) of the latents of a dataset.

    Points are labelled with their sample index (``show_labels``), coloured
    by a field (``color_by``); the map pans and zooms (drag, wheel), shows
    the sample's image and masks on hover, and sets :attr:`selected` on
    click. :meth:`show_path` draws an interpolation path and the nearest
    real neighbours of its steps; :meth:`set_current` the slider's point.

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape), optional
        One latent per sample (when no ``session`` is given).
    dataset : SegmentationDataset
        The N samples: images and masks for the tooltip, groups and class
        fractions for the colours.
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
        One of :data:`COLOR_FIELDS`; default "group" when the dataset has
        groups, else "dominant class".
    show_labels : bool, optional
        Index labels; default on with the SVG renderer. Only labels that
        have room at the current zoom are drawn (:func:`~latent_widgets.views.labels.place_labels`),
        and always those of the selected point, the endpoints and the
        path's neighbours.
    gl_threshold : int
        Above this many points use bqplot-gl's ``ScatterGL`` when installed
        (the SVG scatter otherwise, with a warning).
    session : ExplorerSession, optional
        The state to show (map method, selection, maps, path); one is made
        from ``latents``, ``dataset`` and the map arguments if omitted.
    errors : ErrorSink, optional
        Where callback exceptions go (the explorer passes its own).
    width, height : int
        Figure size in px (the figure shrinks to a narrower output area).

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
        session: ExplorerSession | None = None,
        method: str = "pca",
        methods: Sequence[str] = ("pca", "tsne", "umap"),
        projections: Mapping[str, np.ndarray] | None = None,
        projection_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        predictions: np.ndarray | None = None,
        splits: Sequence[str] | np.ndarray | None = None,
        color_by: str | None = None,
        show_labels: bool | None = None,
        gl_threshold: int = DEFAULT_GL_THRESHOLD,
        errors: ErrorSink | None = None,
        width: int = 520,
        height: int = 460,
    ) -> None:
        super().__init__()
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
        self._figure_px = (float(width), float(height))

        # Renderer: ScatterGL above the threshold when it is importable.
        gl = gl_scatter_class() if self.n > gl_threshold else None
        if self.n > gl_threshold and gl is None:
            warnings.warn(
                f"{self.n} points with the SVG scatter will pan slowly; `pip install bqplot-gl` "
                "to draw them with WebGL.",
                RuntimeWarning,
                stacklevel=2,
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
        self._tooltip_image = image_pane(220)
        self._tooltip_caption = W.HTML()
        self.tooltip = W.VBox([self._tooltip_caption, self._tooltip_image], layout=W.Layout(padding="4px"))
        names = [str(i) for i in range(self.n)]
        mark_cls = gl if gl is not None else bq.Scatter
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
                names=names,
                display_names=False,
                tooltip=self.tooltip,
                label_display_horizontal_offset=4.0,
                label_display_vertical_offset=-4.0,
            )
        self.mark = mark_cls(**kwargs)
        self.mark.on_element_click(self.errors.guard(self._on_element_click))
        if hasattr(self.mark, "on_hover"):
            self.mark.on_hover(self.errors.guard(self._on_hover))

        # Overlay: path, its steps' neighbours, the endpoints and the current point.
        xy = dict(x=np.zeros(1), y=np.zeros(1), scales={"x": self.x_scale, "y": self.y_scale}, visible=False)
        self.path_line = bq.Lines(colors=[_PATH_COLOUR], stroke_width=2, **xy)
        self.path_steps = bq.Scatter(colors=[_PATH_COLOUR], default_size=20, enable_hover=False, **xy)
        self.neighbor_marks = bq.Scatter(
            colors=[_NEIGHBOUR_COLOUR], fill=False, stroke_width=2.5, default_size=180, enable_hover=False, **xy
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
            colors=[_PATH_COLOUR],
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
            colors=["#9467bd"], fill=False, stroke_width=3, default_size=300, enable_hover=False, **xy
        )
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
        self.tooltip.add_class("lw-tooltip")
        self._method_buttons = W.ToggleButtons(
            options=[(METHOD_LABELS.get(m, m), m) for m in self.methods],
            value=method,
            style={"button_width": "64px"},
        )
        self._color_dropdown = W.Dropdown(
            options=list(COLOR_FIELDS),
            description="colour",
            layout=W.Layout(width="200px"),
            style={"description_width": "45px"},
        )
        self._labels_box = W.Checkbox(description="index labels", indent=False, layout=W.Layout(width="110px"))
        self._points_dropdown = self._points_control()
        # bqplot's PanZoom interaction lies over the marks and swallows their
        # hover and click events, so it is a mode: on to pan (drag) and zoom
        # (wheel), off to hover and click points.
        self.panzoom = bq.PanZoom(scales={"x": [self.x_scale], "y": [self.y_scale]})
        self._panzoom_button = W.ToggleButton(
            value=False,
            icon="arrows",
            description="pan/zoom",
            tooltip="drag to pan, wheel to zoom (points cannot be clicked meanwhile)",
            # "auto": the label is never cut ("pan/zo..." in Notebook 7 at 100px).
            layout=W.Layout(width="auto", min_width="max-content", flex="0 0 auto"),
        )
        # Lasso and brush select many samples into session.selection; like pan/zoom they are modes.
        self.lasso = bq.interacts.LassoSelector(marks=[self.mark])
        self.brush = bq.interacts.BrushSelector(x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.mark])
        self._lasso_button = W.ToggleButton(
            value=False,
            icon="circle-o-notch",
            description="lasso",
            tooltip="draw a closed line around points to select them",
            layout=W.Layout(width="auto", min_width="max-content", flex="0 0 auto"),
        )
        self._brush_button = W.ToggleButton(
            value=False,
            icon="square-o",
            description="brush",
            tooltip="drag a rectangle to select the points in it",
            layout=W.Layout(width="auto", min_width="max-content", flex="0 0 auto"),
        )
        self._lasso_button.add_class("lw-lasso-button")
        self._brush_button.add_class("lw-brush-button")
        self._reset_button = W.Button(icon="home", tooltip="reset zoom", layout=W.Layout(width="36px"))
        self._reset_button.on_click(self.errors.guard(lambda _: self.reset_view()))
        self._clear_selection_button = W.Button(
            description="clear",
            tooltip="clear the selection",
            layout=W.Layout(width="auto", min_width="max-content", flex="0 0 auto"),
        )
        self._clear_selection_button.add_class("lw-clear-selection")
        self._clear_selection_button.on_click(self.errors.guard(lambda _: setattr(self.session, "selection", None)))
        self._status = W.HTML()
        self.legend = W.HTML(layout=W.Layout(max_width=f"min({width}px, 100%)"))
        wrap = W.Layout(flex_flow="row wrap", align_items="center")
        controls = W.HBox([self._method_buttons, self._panzoom_button, self._reset_button], layout=wrap)
        # The selection tools on the second row: the map's column stays as wide as the map.
        controls2 = W.HBox(
            [
                self._lasso_button,
                self._brush_button,
                self._clear_selection_button,
                self._points_dropdown,
                self._color_dropdown,
                self._labels_box,
                self._status,
            ],
            layout=wrap,
        )
        self.widget = W.VBox(
            [W.HTML(_MAP_CSS), controls, controls2, self.figure, self.legend],
            layout=W.Layout(max_width="100%", flex="0 1 auto"),
        )

        if show_labels is None:
            show_labels = not self.uses_gl
        # Initial state, drawn once, before the observers exist.
        self.set_trait("method", session.map_method)
        self.set_trait("selected", session.selected)
        color_by = self._link_session_colours(color_by)
        self.set_trait("show_labels", bool(show_labels))
        self._on_color_by({"new": color_by})
        self._on_show_labels({"new": self.show_labels})
        self._on_selected({"new": self.selected})
        self._observe_guarded(self._on_color_by, "color_by")
        self._observe_guarded(self._on_show_labels, "show_labels")
        self._observe_guarded(self._on_selected, "selected")
        self._observe_guarded(self._on_pan_zoom, "pan_zoom")
        self._observe_guarded(self._on_tool, "tool")
        self._writing_marks = False
        self.mark.observe(self.errors.guard(self._on_mark_selected), "selected")
        # Labels are placed again when the view (pan, zoom, reset) or the selection changes.
        for scale in (self.x_scale, self.y_scale):
            scale.observe(self.errors.guard(lambda _c: self._update_labels()), ["min", "max"])
        # The map method and the selection live in the session.
        self._link("method", "map_method")
        self._link("selected", "selected")
        self._watch(self._on_map, ["maps", "map_method", "map_points"])
        self._watch(self._on_session_path, ["path_points", "strip"])
        self._watch(self._on_busy, ["busy", "progress"])
        self._watch(self._on_ready, "ready")
        self._on_map(None)
        self._on_session_path(None)
        # The buttons follow the trait, not a link: when a map fails to
        # compute, the session goes back to the drawn map and the buttons
        # must follow, which a link (busy with the button's change) would
        # not do (self.method, not the change's value: a stale notification
        # arrives after a failed switch has already reverted the trait).
        self.observe(lambda _c: setattr(self._method_buttons, "value", self.method), "method")
        self._method_buttons.observe(self.errors.guard(self._on_method_button), "value")
        self._link_colour_dropdown()
        W.link((self, "show_labels"), (self._labels_box, "value"))
        W.link((self, "pan_zoom"), (self._panzoom_button, "value"))
        self._lasso_button.observe(self.errors.guard(lambda c: self._toggle_tool("lasso", c["new"])), "value")
        self._brush_button.observe(self.errors.guard(lambda c: self._toggle_tool("brush", c["new"])), "value")
        self._start_following()

    # ------------------------------------------------------------------ maps

    def _on_map(self, _change: Any) -> None:
        pts = self.session.points
        if pts is None or pts is self._drawn_map:
            return  # still computing: the drawn map stays until the new one arrives
        recolour = len(pts) != self.n_points
        self._drawn_map = pts
        with self.mark.hold_sync():
            self.mark.x, self.mark.y = pts[:, 0], pts[:, 1]
            if recolour:  # other points (samples <-> cells): their colours and highlight go with them
                self._on_color_by({"new": self.color_by})
                self._show_highlight()
        self.reset_view()
        self._redraw_overlay()

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

    # ------------------------------------------------------------------ colours

    def _on_color_by(self, change: Mapping[str, Any]) -> None:
        field = change["new"]
        if self.session.n_points() != self.n_points:
            return  # the map of the new points is computing: coloured when it is drawn (_on_map)
        codes, colours, names = self.color_values(field)
        # An ordinal scale over colour indices: one scale serves categories
        # and the quantised continuous scale, so the mark is never rebuilt.
        with self.color_scale.hold_sync():
            self.color_scale.domain = list(range(len(colours)))
            self.color_scale.colors = colours
        self.mark.color = codes.astype(np.float64)
        self.legend.value = self._legend_html(field, codes, colours, names)

    def _on_show_labels(self, change: Mapping[str, Any]) -> None:
        if not self.uses_gl:
            self.mark.display_names = bool(change["new"])
            self._update_labels()

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

    def _update_labels(self) -> None:
        if self.uses_gl or not hasattr(self, "_overlay"):
            return
        if self.n_points != self.n:
            # A map of cells: no index labels (h * w points per sample); bqplot then joins points by position.
            self.mark.names = None
            return
        texts = [str(i) for i in range(self.n)]
        if not self.show_labels or self._drawn_map is None:
            shown = np.zeros(self.n, bool)
            shown[self.forced_labels] = True
        else:
            xy = self.screen_points()
            w, h = self._plot_px()
            visible = (xy[:, 0] >= 0) & (xy[:, 0] <= w) & (xy[:, 1] >= 0) & (xy[:, 1] <= h)
            shown = place_labels(label_boxes(xy, texts), self.forced_labels, visible)
        # bqplot joins the points' data by name: names must stay unique, so a
        # hidden label is i + 1 zero-width spaces, not "" (equal empty names
        # gave points the wrong colour in the browser).
        names = np.array([t if s else _HIDDEN * (i + 1) for i, (t, s) in enumerate(zip(texts, shown, strict=True))])
        if self.mark.names is None or list(self.mark.names) != names.tolist():
            self.mark.names = names

    # ------------------------------------------------------------------ selection and hover

    @staticmethod
    def _event_index(content: Mapping[str, Any]) -> int | None:
        data = content.get("data") or {}
        index = data.get("index", content.get("index"))
        return None if index is None else int(index)

    def _on_element_click(self, _mark: Any, content: Mapping[str, Any]) -> None:
        index = self._event_index(content)
        if index is not None:
            self.click_point(index)

    def _on_selected(self, _change: Any) -> None:
        self._show_highlight()
        self._update_labels()

    def _on_selection(self, _change: Any) -> None:
        self._show_highlight()

    def _show_highlight(self) -> None:
        """Highlight the selection (others dimmed), or the clicked sample when nothing is selected."""
        highlighted = self._highlighted_points()
        many = len(self.session.selection) > 0
        self._writing_marks = True
        try:
            with self.mark.hold_sync():
                self.mark.unselected_style = {"opacity": "0.3"} if many else {}
                self.mark.selected = highlighted
        finally:
            self._writing_marks = False

    def _on_mark_selected(self, change: Mapping[str, Any]) -> None:
        # The browser's lasso or brush wrote the mark's selection: it becomes the session's.
        if self._writing_marks or self.tool not in ("lasso", "brush"):
            return
        new = change["new"]
        # On a map of cells, the samples of the cells inside (the selection is a set of samples).
        self.session.selection = None if new is None else self.session.point_samples(np.asarray(new, np.int64))

    def _on_linked_hover(self, change: Mapping[str, Any]) -> None:
        index, pts = change["new"], self._drawn_map
        if index is None or pts is None:
            self.linked_hover_mark.visible = False
            return
        ids = self.session.sample_points([index])  # every cell of the sample on a map of cells
        if len(pts) != self.session.n_points():
            self.linked_hover_mark.visible = False
            return
        with self.linked_hover_mark.hold_sync():
            self.linked_hover_mark.x, self.linked_hover_mark.y = pts[ids, 0], pts[ids, 1]
            self.linked_hover_mark.visible = True

    def _on_hover(self, _mark: Any, content: Mapping[str, Any]) -> None:
        index = self._event_index(content)
        if index is not None:
            self.hover_point(index)

    # ------------------------------------------------------------------ path overlay

    def _redraw_overlay(self) -> None:
        p, neighbors, endpoints = self._overlay
        pts = self._drawn_map
        if p is None or pts is None:
            self.path_points = None
            for m in self.overlay_marks:
                m.visible = False
            self._draw_current()
            self._update_labels()
            return
        self.path_points = p
        with self.path_line.hold_sync():
            self.path_line.x, self.path_line.y, self.path_line.visible = p[:, 0], p[:, 1], True
        with self.path_steps.hold_sync():
            self.path_steps.x, self.path_steps.y, self.path_steps.visible = p[:, 0], p[:, 1], True
        if neighbors is not None and len(neighbors):
            nb = np.unique(neighbors)
            with self.neighbor_marks.hold_sync():
                self.neighbor_marks.x, self.neighbor_marks.y = pts[nb, 0], pts[nb, 1]
                self.neighbor_marks.visible = True
        else:
            self.neighbor_marks.visible = False
        if endpoints is not None:
            ab = np.asarray(endpoints, int)
            with self.endpoint_marks.hold_sync():
                self.endpoint_marks.x, self.endpoint_marks.y = pts[ab, 0], pts[ab, 1]
                self.endpoint_marks.visible = True
        else:
            self.endpoint_marks.visible = False
        self._draw_current()
        self._update_labels()

    def _draw_current(self) -> None:
        self.current_point = xy = self._current_xy()
        if xy is None:
            self.current_mark.visible = False
            return
        with self.current_mark.hold_sync():
            self.current_mark.x, self.current_mark.y = xy[:1], xy[1:]
            self.current_mark.visible = True
