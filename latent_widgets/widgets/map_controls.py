"""``MapControls``: the controls above either map, and how they follow the map and the session.

The method buttons (PCA / t-SNE / UMAP), the colour and points dropdowns,
the reset button and the busy status are the same on the SVG and the WebGL
map; each map arranges them with its own tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import traitlets

from ._common import View, watch_session
from .map_colors import COLOR_FIELDS

__all__ = ["METHOD_LABELS", "MapControls"]

#: Button label of each projection method.
METHOD_LABELS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


class MapControls:
    """The shared controls of a map view: they write the user's choices into the map and its session.

    Parameters
    ----------
    view : MapView
        The map (its traits ``method`` and ``color_by``, its ``session``,
        ``errors`` and ``reset_view()``).

    Attributes
    ----------
    method_buttons : ipywidgets.ToggleButtons
        The projection shown; follows ``view.method``.
    color_dropdown : ipywidgets.Dropdown
        The colour field; its options the session's ``color_fields()``.
    points_dropdown : ipywidgets.Dropdown
        What a map point is (the session's ``map_points``).
    reset_button : ipywidgets.Button
        Undo pan and zoom.
    status : ipywidgets.HTML
        What the session computes for the map ("encoding the dataset…", "computing UMAP…").

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> from latent_widgets.widgets import ProjectionScatter
    >>> ds = synthetic_road_scenes(20, size=(48, 64), seed=0)
    >>> z = ds.images.reshape(20, -1)[:, ::97]
    >>> sc = ProjectionScatter(z, ds, projections={"pca": z[:, :2]}, methods=("pca",))
    >>> sc.controls.color_dropdown.value = "split"; sc.color_by
    'split'
    """

    def __init__(self, view: View) -> None:
        self.view = view
        session = view.session
        self._handles: list[tuple[Any, str | list[str]]] = []
        self._links: list[Any] = []
        self._setting_options = False
        self.method_buttons = W.ToggleButtons(
            options=[(METHOD_LABELS.get(m, m), m) for m in session.methods],
            value=session.map_method,
            style={"button_width": "64px"},
        )
        self.color_dropdown = W.Dropdown(
            options=list(COLOR_FIELDS),
            description="colour",
            layout=W.Layout(width="200px"),
            style={"description_width": "45px"},
        )
        self.points_dropdown = self._points_dropdown()
        self.reset_button = W.Button(icon="home", tooltip="reset zoom", layout=W.Layout(width="36px"))
        self.reset_button.on_click(view.errors.guard(lambda _: view.reset_view()))
        self.status = W.HTML()

    def _points_dropdown(self) -> W.Dropdown:
        session = self.view.session
        grid = session.grid
        options = [("sample (flatten)", "flatten")]
        if grid is not None:
            options += [("sample (pooled)", "pooled"), (f"cell ({grid[0]}x{grid[1]} per sample)", "cells")]
        box = W.Dropdown(
            options=options,
            value=session.map_points,
            description="points",
            tooltip="a point per sample (whole latent, or its average over the grid), or per latent cell",
            layout=W.Layout(width="230px"),
            style={"description_width": "45px"},
        )
        box.add_class("lw-map-points")
        self._links.append(traitlets.link((session, "map_points"), (box, "value")))
        return box

    def show_color_by(self, _change: Any = None) -> None:
        """Show the view's ``color_by`` among the session's fields (they change with the map's points)."""
        box, fields = self.color_dropdown, list(self.view.session.color_fields())
        if list(box.options) != fields:
            self._setting_options = True
            try:
                box.options = fields
            finally:
                self._setting_options = False
        if box.value != self.view.color_by:
            box.value = self.view.color_by

    def follow(self) -> None:
        """Start following the view and the session (once the map is first drawn)."""
        view, guard = self.view, self.view.errors.guard
        # The buttons follow the trait, not a link: when a map fails to
        # compute, the session goes back to the drawn map and the buttons
        # must follow, which a link (busy with the button's change) would
        # not do (view.method, not the change's value: a stale notification
        # arrives after a failed switch has already reverted the trait).
        view.observe(lambda _c: setattr(self.method_buttons, "value", view.method), "method")
        self.method_buttons.observe(guard(self._on_method_button), "value")
        # Not W.link: the fields change with the map's points ("cell class"
        # on a map of cells), and the options must change before the value.
        view.observe(guard(self.show_color_by), "color_by")
        self.color_dropdown.observe(guard(self._on_color_dropdown), "value")
        self._watch(self.show_color_by, "map_points")
        self.show_color_by()
        self._watch(self._on_busy, ["busy", "progress"])

    def _watch(self, handler: Any, names: str | list[str]) -> None:
        self._handles.append((watch_session(self.view, self.view.session, handler, names), names))

    def detach(self) -> None:
        """Stop following the session (the view is closed)."""
        for observer, names in self._handles:
            self.view.session.unobserve(observer, names=names)
        for link in self._links:
            link.unlink()
        self._handles, self._links = [], []

    def _on_color_dropdown(self, change: Mapping[str, Any]) -> None:
        if not self._setting_options and change["new"] is not None:
            self.view.color_by = change["new"]

    def _on_method_button(self, change: Mapping[str, Any]) -> None:
        view = self.view
        try:
            view.method = change["new"]
        finally:
            # A failed fit reverts the session while the link is busy: follow it.
            if view.method != view.session.map_method:
                view.method = view.session.map_method
            if self.method_buttons.value != view.method:
                self.method_buttons.value = view.method

    def _on_busy(self, _change: Any) -> None:
        session = self.view.session
        fitting = [b.split(": ", 1)[1] for b in session.busy if b.startswith("map: ")]
        if not session.ready:
            done = session.progress.get("encode dataset")
            self.status.value = f"<i>encoding the dataset{'' if done is None else f' {done[0]}/{done[1]}'}…</i>"
        else:
            self.status.value = (
                f"<i>computing {', '.join(METHOD_LABELS.get(m, m) for m in fitting)}…</i>" if fitting else ""
            )
