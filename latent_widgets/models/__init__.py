"""A small model zoo of segmentation networks with a named latent layer.

Every model here names the layer where the network is split into encoder
and decoder ``"latent"``, so :meth:`latent_widgets.LatentModel.from_model`
needs no argument for them. ``width`` / ``backbone_width`` shrink the
channel counts so that the networks train on a CPU.

Examples
--------
>>> from latent_widgets.models import segnet
>>> model = segnet(n_classes=12, input_shape=(96, 128, 3), width=0.25)  # doctest: +SKIP
>>> model.get_layer("latent").output.shape  # doctest: +SKIP
(None, 6, 8, 128)
"""

from __future__ import annotations

from .deeplab import deeplabv3_plus
from .segnet import segnet

#: Name of the split layer of every zoo model.
LATENT_LAYER = "latent"

__all__ = ["LATENT_LAYER", "deeplabv3_plus", "segnet"]
