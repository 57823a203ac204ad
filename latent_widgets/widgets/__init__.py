"""Jupyter widgets for the latent space of a segmentation network.

- :class:`MapView`: a PCA / t-SNE / UMAP map of the session's latents (its
  controls, colours, hover, click and path), drawn by :class:`ProjectionScatter`
  (SVG, index labels) or, for large datasets, :class:`WebGLMap` (WebGL,
  jupyter-scatter); :func:`projection_map` picks one for a dataset's size.
- :class:`MaskViewer`: image, ground truth, prediction, overlay and errors.
- :class:`InterpolationSlider`: decode the path between two samples.
- :class:`SelectionPanel`: the selection's confusion matrix, mean IoU and worst samples.
- :class:`LatentExplorer`: the map, viewer, slider and selection panel, linked, in one call;
  :func:`link_explorers` mirrors selection and hover between two explorers (two models).

Every widget keeps its state in traits and exposes what it shows (arrays,
PNG bytes, coordinates) as plain Python attributes; its ipywidgets tree is
``.widget`` and it displays itself in a notebook.

Examples
--------
>>> import latent_widgets as lw  # doctest: +SKIP
>>> explorer = lw.LatentExplorer(lw.LatentModel.from_model(net), data)  # doctest: +SKIP
>>> explorer  # doctest: +SKIP
"""

from __future__ import annotations

from ._common import ErrorSink
from .explorer import CLICK_ACTIONS, LatentExplorer
from .interpolation_slider import InterpolationSlider
from .linking import link_explorers
from .map_choice import map_class, projection_map
from .map_colors import COLOR_FIELDS, ColorCodes
from .map_view import MapView
from .mask_viewer import PANES, MaskViewer
from .scatter import DEFAULT_GL_THRESHOLD, MAP_TOOLS, ProjectionScatter, gl_scatter_class
from .selection_panel import SelectionPanel
from .webgl_map import WebGLMap, jscatter_available

__all__ = [
    "CLICK_ACTIONS",
    "COLOR_FIELDS",
    "DEFAULT_GL_THRESHOLD",
    "MAP_TOOLS",
    "PANES",
    "ColorCodes",
    "ErrorSink",
    "InterpolationSlider",
    "LatentExplorer",
    "MapView",
    "MaskViewer",
    "ProjectionScatter",
    "SelectionPanel",
    "WebGLMap",
    "gl_scatter_class",
    "jscatter_available",
    "link_explorers",
    "map_class",
    "projection_map",
]
