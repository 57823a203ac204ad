"""A small model zoo of segmentation networks with a named latent layer.

Every model here names the layer where the network is split into encoder
and decoder ``"latent"``, so :meth:`latent_widgets.LatentModel.from_model`
needs no argument for them. ``width`` / ``backbone_width`` shrink the
channel counts so that the networks train on a CPU.

- :func:`segnet`, :func:`deeplabv3_plus` (``backbone="resnet"``): the zoo's
  own networks, with batch norm throughout, built to train from scratch;
- :func:`vgg_segnet` and :func:`deeplabv3_plus` with
  ``backbone="mobilenetv2"`` or ``"xception"``: the networks of the study
  (``image-segmentation-keras``'s ``vgg_segnet``, the Keras port of
  DeepLabv3+).

Examples
--------
>>> from latent_widgets.model.zoo import segnet
>>> model = segnet(n_classes=12, input_shape=(96, 128, 3), width=0.25)  # doctest: +SKIP
>>> model.get_layer("latent").output.shape  # doctest: +SKIP
(None, 6, 8, 128)
"""

from __future__ import annotations

from .deeplab import BACKBONES, deeplabv3_plus
from .segnet import segnet
from .vgg_segnet import VGG_MEAN_RGB, vgg_segnet

#: Name of the split layer of every zoo model.
LATENT_LAYER = "latent"

__all__ = ["BACKBONES", "LATENT_LAYER", "VGG_MEAN_RGB", "deeplabv3_plus", "segnet", "vgg_segnet"]
