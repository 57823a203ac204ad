"""``MapSurface``: what a map view asks of the surface that draws it.

:class:`~latent_widgets.widgets.map_view.MapView` follows the session and
calls these methods with what to draw, in map coordinates; a surface (the
SVG map, :class:`~latent_widgets.widgets.scatter.ProjectionScatter`, or the
WebGL map, :class:`~latent_widgets.widgets.webgl_map.WebGLMap`) draws it
and reports what the user does on its marks back through the view's
``click_point``, ``hover_point`` and the session's ``selection``.
"""

from __future__ import annotations

import numpy as np

from .map_colors import ColorCodes

__all__ = ["MapSurface"]


class MapSurface:
    """The drawing interface of a map: each method draws one thing the view computed.

    A surface makes its marks and its ``widget`` in :meth:`_make_surface`
    (before the first draw: the view's controls, :attr:`legend` and
    :attr:`tooltip` exist by then) and follows its own marks and tools in
    :meth:`_follow_surface` (after the first draw). The view sets
    ``_writing`` while it draws the highlight, so that a surface can tell
    its echo from the user's selection.

    Examples
    --------
    >>> from latent_widgets.widgets import ProjectionScatter, WebGLMap
    >>> issubclass(ProjectionScatter, MapSurface) and issubclass(WebGLMap, MapSurface)
    True
    """

    def _make_surface(self, width: int, height: int) -> None:
        """Make the marks and ``widget`` (the controls, the map, the legend), ``width`` x ``height`` px."""
        raise NotImplementedError

    def _follow_surface(self) -> None:
        """Follow what the surface's marks and tools report (clicks, hover, lasso)."""
        raise NotImplementedError

    def _draw_points(self, points: np.ndarray, recount: bool) -> None:
        """Draw the map's points, (P, 2); ``recount``: other points (samples <-> cells), recolour them."""
        raise NotImplementedError

    def _draw_colours(self, drawn: ColorCodes) -> None:
        """Colour each point."""
        raise NotImplementedError

    def _draw_highlight(self, points: list[int] | None, dim: bool) -> None:
        """Highlight map ``points`` (None: none); ``dim`` the others (a selection is shown)."""
        raise NotImplementedError

    def _draw_overlay(self, path: np.ndarray | None, neighbours: np.ndarray | None, ends: np.ndarray | None) -> None:
        """Draw the path's steps, (M, 2), its neighbours' and its endpoints' positions (None: hidden)."""
        raise NotImplementedError

    def _draw_current_point(self, xy: np.ndarray | None) -> None:
        """Draw the slider's point at ``xy`` (None: hidden)."""
        raise NotImplementedError

    def _draw_linked_hover(self, xy: np.ndarray | None) -> None:
        """Ring the points at ``xy``, (K, 2), hovered in a linked explorer (None: none)."""
        raise NotImplementedError

    def _draw_labels(self) -> None:
        """Place the index labels again (the selection, the path or the view changed); a surface may have none."""

    def reset_view(self) -> None:
        """Fit the view to the map (undo pan and zoom)."""
        raise NotImplementedError
