"""latent-widgets: explore the latent space of segmentation networks in Jupyter.

Public names are imported lazily, so that ``import latent_widgets`` is fast
and does not start TensorFlow until a model is used. They are listed, with
the module each comes from, in ``docs/api.md``; the rest of the API lives in
its modules (``latent_widgets.model.zoo``, ``latent_widgets.model.training``,
``latent_widgets.analysis.map_quality``, ...).

Examples
--------
>>> import latent_widgets as lw
>>> ds = lw.synthetic_road_scenes(8, size=(48, 64), seed=0)
>>> len(ds)
8
"""

from __future__ import annotations

import importlib
from typing import Any

from .core.tf_setup import configure_tensorflow_environment

__version__ = "0.1.0"

# Before any submodule can import TensorFlow: it reads its settings once.
configure_tensorflow_environment()

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # data
    "SegmentationDataset": "data.dataset",
    "DatasetError": "data.dataset",
    "load_camvid": "data.camvid",
    "load_folder": "data.folders",
    "load_dataset": "data",
    "CAMVID_CLASSES": "data.camvid",
    "CAMVID_PALETTE": "data.camvid",
    "synthetic_road_scenes": "data.synthetic",
    "LazyArray": "data.lazy_array",
    "SampleSource": "data.lazy_array",
    # models
    "LatentModel": "model.latent_model",
    "Encoding": "model.encoding",
    "LatentModelError": "model.errors",
    "LatentCodec": "model.protocols",
    "LatentModelLike": "model.protocols",
    # latents on disk
    "LatentStore": "latents.store",
    "LatentStoreError": "latents.store_errors",
    # analysis
    "project": "analysis.projection",
    "make_projection": "analysis.projection",
    "LatentIndex": "analysis.neighbors",
    "path_neighbors": "analysis.neighbors",
    # the explorer's state, without widgets
    "ExplorerSession": "session",
    # widgets
    "ProjectionScatter": "widgets",
    "MaskViewer": "widgets",
    "InterpolationSlider": "widgets",
    "LatentExplorer": "widgets",
    "link_explorers": "widgets",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'latent_widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
