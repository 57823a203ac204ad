"""Jupyter widgets for the latent space of a segmentation network.

- :class:`ProjectionScatter`: a PCA / t-SNE / UMAP map of the latents (SVG, index labels).
- :class:`WebGLMap`: the same map for large datasets (WebGL, jupyter-scatter);
  :func:`projection_map` picks one for a dataset's size.
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
from .mask_viewer import PANES, MaskViewer
from .scatter import COLOR_FIELDS, DEFAULT_GL_THRESHOLD, MAP_TOOLS, MapView, ProjectionScatter, gl_scatter_class
from .selection_panel import SelectionPanel
from .webgl_map import WebGLMap, jscatter_available, projection_map

__all__ = [
    "CLICK_ACTIONS",
    "COLOR_FIELDS",
    "DEFAULT_GL_THRESHOLD",
    "MAP_TOOLS",
    "PANES",
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
    "projection_map",
]
