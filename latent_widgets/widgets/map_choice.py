"""Which map draws a dataset: the SVG map up to a number of points, the WebGL map above.

:class:`~latent_widgets.widgets.scatter.ProjectionScatter` (bqplot, SVG)
draws small maps with index labels;
:class:`~latent_widgets.widgets.webgl_map.WebGLMap` (jupyter-scatter)
large ones. The explorer asks :func:`map_class` again when the session's
points change (samples <-> cells) and swaps its map across the threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .map_view import MapView
from .scatter import DEFAULT_GL_THRESHOLD, ProjectionScatter
from .webgl_map import WebGLMap, jscatter_available

__all__ = ["map_class", "projection_map"]


def map_class(n_points: int, gl_threshold: int = DEFAULT_GL_THRESHOLD) -> type[MapView]:
    """The map class for ``n_points`` points: WebGL above ``gl_threshold`` when jupyter-scatter is installed.

    Examples
    --------
    >>> map_class(100).__name__
    'ProjectionScatter'
    >>> map_class(10_000) in (WebGLMap, ProjectionScatter)
    True
    """
    return WebGLMap if n_points > gl_threshold and jscatter_available() else ProjectionScatter


def projection_map(
    latents: np.ndarray | None = None,
    dataset: Any = None,
    *,
    gl_threshold: int = DEFAULT_GL_THRESHOLD,
    **kwargs: Any,
) -> MapView:
    """The map for a dataset's size: SVG up to ``gl_threshold`` points, WebGL above.

    :class:`~latent_widgets.widgets.scatter.ProjectionScatter` draws small
    maps with index labels, :class:`~latent_widgets.widgets.webgl_map.WebGLMap`
    large ones. Without jupyter-scatter, a large map falls back to
    :class:`~latent_widgets.widgets.scatter.ProjectionScatter` (bqplot-gl's
    ScatterGL when installed, else SVG with a warning). ``kwargs`` go to the
    chosen class (``session=``, ``splits=``, ``errors=``...).

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(20, size=(48, 64), seed=0)
    >>> z = ds.images.reshape(20, -1)[:, ::97]
    >>> type(projection_map(z, ds, projections={"pca": z[:, :2]}, methods=("pca",))).__name__
    'ProjectionScatter'
    """
    session = kwargs.get("session")
    cls = map_class(len(dataset) if session is None else session.n_points(), gl_threshold)
    if cls is WebGLMap:
        return WebGLMap(latents, dataset, **kwargs)
    return ProjectionScatter(latents, dataset, gl_threshold=gl_threshold, **kwargs)
