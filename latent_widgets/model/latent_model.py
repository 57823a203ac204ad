"""Split a Keras segmentation network into an encoder and a decoder.

:class:`LatentModel` wraps two Keras 3 models, an *encoder* that maps images
to a latent tensor (plus, for networks with skip connections, the skip
features), and a *decoder* that maps them back to per-pixel class
probabilities. It is what the widgets call: ``encode`` a dataset once, then
``decode`` edited, interpolated or projected latents, one per slider move.

:meth:`LatentModel.from_model` cuts a trained functional model at a named
layer. Every tensor from before the cut that a layer after the cut consumes
(U-Net skip connections, DeepLabv3+'s low-level features) becomes an extra
encoder output and an extra decoder input, found by walking the layer graph;
no layer counting, no project-specific code in the model. Nested models
(a ``keras.applications`` backbone, a keras-hub backbone) are seen through:
a layer inside one is named by its path (``"down_stack/block_16_project"``)
or its unique bare name (:mod:`latent_widgets.model.keras_graph`, the cut:
:mod:`latent_widgets.model.keras_cut`).

Conventions:

- The decoder's inputs are named ``"latent"`` and ``"skip_0"``,
  ``"skip_1"``, ...; the encoder returns ``[latent, skip_0, skip_1, ...]``
  (just the latent when there are no skips).
- Skips found by :meth:`~LatentModel.from_model` are in topological order,
  the tensor nearest the model input first: for a U-Net, ``skip_0`` is the
  highest-resolution feature map.
- The decoder side of a split is every layer whose input depends on the
  latent; layers that do not (e.g. DeepLabv3+'s 1x1 projection of the
  low-level features) stay on the encoder side, and their outputs are the
  skips.

Examples
--------
>>> from latent_widgets import LatentModel
>>> from latent_widgets.model.zoo import segnet
>>> lm = LatentModel.from_model(segnet(12, (48, 64, 3), width=0.125))  # doctest: +SKIP
>>> enc = lm.encode(images)  # doctest: +SKIP
>>> probs = lm.decode(enc.latents[0])  # one latent -> (1, 48, 64, 12)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LatentModelError
from .keras_cut import LATENT_LAYER, split_model
from .keras_graph import ends_with_softmax
from .keras_pair import check_pair
from .latent_base import LatentModelBase

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from .onnx_model import OnnxLatentModel


__all__ = ["LatentModel"]

# Name given to the combined model written by LatentModel.save, so that
# LatentModel.load recognises it.
_SAVED_NAME = "latent_model"


# ----------------------------------------------------------------------------
# helpers


def _keras():
    import keras

    return keras


def _tf():
    import tensorflow as tf

    return tf


def _image_converter(model: Any, preprocess: bool | None) -> Any:
    """The keras-hub image converter that ``from_model`` puts in the encoder, or None."""
    converter = getattr(getattr(model, "preprocessor", None), "image_converter", None)
    if preprocess is False:
        return None
    if converter is None and preprocess:
        raise LatentModelError(
            f"preprocess=True, but model {getattr(model, 'name', model)!r} has no preprocessor with an "
            "image_converter (a keras-hub task's model.preprocessor.image_converter); leave preprocess out."
        )
    return converter


def _with_converter(encoder: keras.Model, converter: Any) -> keras.Model:
    """``encoder`` behind the converter, which gets 0..1 images as the raw 0..255 pixels keras-hub expects."""
    keras = _keras()
    shape = tuple(encoder.inputs[0].shape[1:])
    image = keras.Input(shape, name="image")
    pixels = converter(keras.layers.Rescaling(255.0, name="to_pixel_values")(image))
    if tuple(pixels.shape[1:]) != shape:
        raise LatentModelError(
            f"the model's image converter turns {shape} images into {tuple(pixels.shape[1:])}, but the model "
            f"takes {shape}: build the model for the converter's image_size, or pass preprocess=False and "
            "preprocess the images yourself."
        )
    return keras.Model(image, encoder(pixels), name=encoder.name)


# ----------------------------------------------------------------------------
# the adapter


class LatentModel(LatentModelBase):
    """An encoder / decoder pair around a segmentation network's latent space.

    Parameters
    ----------
    encoder : keras.Model
        One input ``(N, H, W, C)``; outputs ``[latent, skip_0, ...]`` (or the
        latent alone). Spatial sizes must be fixed.
    decoder : keras.Model
        Inputs: the latent and the skips; output ``(N, H', W', n_classes)``.
    latent_input : str or int, optional
        Which decoder input is the latent (a name or an index). Defaults to
        the input named ``"latent"``, or the only input.
    skip_inputs : sequence of str or int, optional
        The decoder's skip inputs, in the order of the encoder's extra
        outputs. Defaults to every other input, sorted by name when they
        are named ``skip_<i>``, otherwise in the decoder's order.
    apply_softmax : bool, optional
        Apply a softmax to the decoder output. Default: only if the
        decoder's last layer has a linear activation (it outputs logits).

    Attributes
    ----------
    encoder, decoder : keras.Model
    model : keras.Model or None
        The full network this pair was split from (``from_model``/``load``).
    latent_layer : str or None
        The path of the layer it was split at (``from_model``/``load``).
    preprocessor : keras.layers.Layer or None
        The keras-hub image converter the encoder applies first
        (``from_model(..., preprocess=...)``).
    latent_shape : tuple of int
    skip_shapes : tuple of tuple of int
    has_skips : bool
    n_classes : int
    input_shape : (H, W, C)

    Notes
    -----
    ``decode`` runs the decoder through a ``tf.function`` compiled once per
    batch size (a fixed input signature), never ``model.predict``: for one
    latent the per-call overhead of ``predict`` exceeds the work. If the
    decoder's output size differs from the input size, probabilities are
    resized bilinearly to ``(H, W)`` so that they align with the images.

    Examples
    --------
    >>> lm = LatentModel(encoder, decoder)  # doctest: +SKIP
    >>> lm.latent_shape, lm.n_classes  # doctest: +SKIP
    ((6, 8, 128), 12)
    """

    encoder: keras.Model
    decoder: keras.Model

    def __init__(
        self,
        encoder: keras.Model,
        decoder: keras.Model,
        *,
        latent_input: str | int | None = None,
        skip_inputs: Sequence[str | int] | None = None,
        apply_softmax: bool | None = None,
    ) -> None:
        pair = check_pair(encoder, decoder, latent_input=latent_input, skip_inputs=skip_inputs)
        self.input_shape: tuple[int, int, int] = pair.input_shape
        self.n_classes: int = pair.n_classes
        self._latent_index = pair.latent_index
        self._skip_indices = pair.skip_indices
        self._n_decoder_inputs = pair.n_decoder_inputs
        self.latent_shape: tuple[int, ...] = pair.latent_shape
        self.skip_shapes: tuple[tuple[int, ...], ...] = pair.skip_shapes
        self.has_skips: bool = bool(self.skip_shapes)
        self.encoder = encoder
        self.decoder = decoder
        self.model: keras.Model | None = None
        self.latent_layer: str | None = None
        self.preprocessor: Any = None

        if apply_softmax is None:
            apply_softmax = ends_with_softmax(decoder) is False
        self.apply_softmax = bool(apply_softmax)
        self._resize_to = None if pair.output_hw == self.input_shape[:2] else self.input_shape[:2]

        # Compiled functions, one per batch size (fixed input signatures:
        # no retracing, and the cheapest call path is a concrete function).
        self._decode_fns: dict[tuple[int, bool], Any] = {}
        self._encode_fns: dict[int, Any] = {}
        self._mask_fns: dict[int, Any] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        latent_layer: str | None = None,
        *,
        apply_softmax: bool | None = None,
        preprocess: bool | None = None,
    ) -> LatentModel:
        """Split a functional Keras model at the layer named ``latent_layer``.

        Parameters
        ----------
        model : keras.Model
            A functional (or Sequential) model with one image input and one
            output of per-pixel class scores (probabilities or logits).
            Nested functional models in it (a ``keras.applications``
            backbone, a multi-output ``down_stack``, a keras-hub backbone)
            are seen through.
        latent_layer : str, optional
            The layer whose output is the latent: its name, or its path
            through nested models (``"down_stack/block_16_project"``); a
            bare name works when no other layer in the model has it, and a
            nested model's name stands for its output. Defaults to
            ``"latent"``, the name every :mod:`latent_widgets.model.zoo` network
            gives its split layer; without such a layer the error lists
            :func:`~latent_widgets.model.keras_cut.candidate_cuts`.
        apply_softmax : bool, optional
            See :class:`LatentModel`.
        preprocess : bool, optional
            For a keras-hub task with a preprocessor
            (``model.preprocessor.image_converter``): ``None`` (default) or
            ``True`` puts the image converter in the encoder, so that
            ``encode`` takes 0..1 images like every LatentModel and feeds
            the converter the raw 0..255 pixel values it expects;
            ``False`` leaves it out (``encode`` then takes what the model's
            input takes). ``True`` for a model without one is an error.

        Returns
        -------
        LatentModel
            Its encoder maps the model input to ``[latent, *skips]``, its
            decoder re-applies the model's layers after the split (shared
            weights, no copy) to ``latent``, ``skip_0``, ... inputs.
            ``decode(encode(x))`` equals ``model(x, training=False)``
            (softmax-ed when the model outputs logits; with a preprocessor,
            ``model(model.preprocessor(255 * x))``). ``latent_layer`` holds
            the split layer's path.

        Raises
        ------
        LatentModelError
            Not a Keras model, no graph (subclassed model), no such layer, a
            bare name that several nested layers have, a layer the output
            does not depend on, a layer used more than once or with several
            outputs (a nested model's outputs are listed).

        Examples
        --------
        >>> lm = LatentModel.from_model(unet, latent_layer="bottleneck_relu")  # doctest: +SKIP
        >>> lm.skip_shapes  # doctest: +SKIP
        ((48, 64, 16), (24, 32, 32))
        >>> lm = LatentModel.from_model(segmenter, "deep_lab_v3_backbone/spatial_pyramid_pooling")  # doctest: +SKIP
        """
        converter = _image_converter(model, preprocess)
        encoder, decoder, name = split_model(model, latent_layer)
        if converter is not None:
            encoder = _with_converter(encoder, converter)
        lm = cls(encoder, decoder, apply_softmax=apply_softmax)
        lm.model = model
        lm.latent_layer = name
        lm.preprocessor = converter
        return lm

    @staticmethod
    def from_onnx(source: Any, latent: str | None = None, **kwargs: Any) -> OnnxLatentModel:
        """Split an ONNX network (PyTorch, TensorFlow, JAX exports) at the tensor named ``latent``.

        The same as :meth:`OnnxLatentModel.from_onnx
        <latent_widgets.model.onnx_model.OnnxLatentModel.from_onnx>`; the class
        :class:`~latent_widgets.model.onnx_model.OnnxLatentModel` documents the
        keyword arguments (``layout``, ``mean``, ``std``, ``preprocess``,
        ``apply_softmax``, ``input_size``, ``output``, ``threads``). It
        returns an adapter with this class's interface, run with ONNX
        Runtime. Without ``latent`` the error lists the candidate tensors.
        Needs ``pip install 'latent-widgets[onnx]'``.

        Examples
        --------
        >>> lm = LatentModel.from_onnx("unet.onnx", latent="/encoder/layer4/layer4.1/relu_1/Relu",
        ...                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # doctest: +SKIP
        """
        from .onnx_model import OnnxLatentModel

        return OnnxLatentModel.from_onnx(source, latent, **kwargs)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        latent_layer: str | None = None,
        safe_mode: bool = True,
    ) -> LatentModel:
        """Load a ``.keras`` file and split it at ``latent_layer``.

        Parameters
        ----------
        path : path
            A ``.keras`` file: a full network (split with :meth:`from_model`)
            or one written by :meth:`save`.
        latent_layer : str, optional
            Split layer; ``"latent"`` by default.
        safe_mode : bool
            Keep ``True`` unless you trust the file: ``False`` lets a
            ``Lambda`` layer in the file run arbitrary Python code.

        Examples
        --------
        >>> lm = LatentModel.load("segnet.keras")  # doctest: +SKIP
        """
        keras = _keras()
        path = Path(path)
        if path.suffix == ".onnx":
            raise LatentModelError(
                f"{path} is an ONNX file: split it with LatentModel.from_onnx(path, latent=<tensor name>) "
                "(from_onnx(path) alone lists the tensors worth splitting at)."
            )
        if path.suffix != ".keras":
            raise LatentModelError(
                f"{path} is not a .keras file; save the model with model.save('model.keras') "
                "(Keras 3 format). Legacy .h5 files: load them with keras.saving.load_model and use "
                "LatentModel.from_model."
            )
        if not path.is_file():
            raise LatentModelError(f"model file {path} does not exist; check the path.")
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
        except Exception as exc:
            text = str(exc)
            if safe_mode and ("safe_mode" in text or "Lambda" in text or "unsafe" in text.lower()):
                raise LatentModelError(
                    f"{path} contains a Lambda layer (arbitrary Python code) and was refused because "
                    "safe_mode=True. If you trust the file, load it with "
                    "LatentModel.load(path, safe_mode=False)."
                ) from exc
            raise LatentModelError(f"cannot load {path}: {type(exc).__name__}: {text[:500]}") from exc
        if latent_layer is None and model.name == _SAVED_NAME:
            subs = [layer for layer in model.layers if isinstance(layer, keras.Model)]
            if len(subs) == 2:
                lm = cls(subs[0], subs[1])
                lm.model = model
                return lm
        return cls.from_model(model, latent_layer)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write encoder and decoder into one ``.keras`` file that :meth:`load` splits again.

        The file holds a model named ``"latent_model"`` made of two nested
        models, the encoder and the decoder.

        Examples
        --------
        >>> lm.save("explorer.keras"); LatentModel.load("explorer.keras")  # doctest: +SKIP
        """
        keras = _keras()
        path = Path(path)
        if path.suffix != ".keras":
            raise LatentModelError(f"save to a path ending in .keras, got {path}.")
        names = [t.name for t in self.decoder.inputs]
        decoder = self.decoder
        conventional = names[self._latent_index] == LATENT_LAYER and all(
            names[i] == f"skip_{k}" for k, i in enumerate(self._skip_indices)
        )
        if not conventional:
            # Wrap the decoder so that its inputs carry the names load() expects.
            lat = keras.Input(self.latent_shape, name=LATENT_LAYER)
            sk = [keras.Input(s, name=f"skip_{k}") for k, s in enumerate(self.skip_shapes)]
            decoder = keras.Model([lat, *sk] if sk else lat, self.decoder(self._arrange(lat, sk)), name="decoder")
        image = keras.Input(self.input_shape, name="image")
        enc = self.encoder(image)
        enc = list(enc) if isinstance(enc, (list, tuple)) else [enc]
        out = decoder(enc if len(enc) > 1 else enc[0])
        combined = keras.Model(image, out, name=_SAVED_NAME)
        from ..core.cache import atomic_path

        with atomic_path(path) as tmp:
            combined.save(tmp)
        return path

    # ------------------------------------------------------------------ compiled calls

    def _arrange(self, latent: Any, skips: Sequence[Any]) -> Any:
        """Put latent and skips in the decoder's input order."""
        if self._n_decoder_inputs == 1:
            return latent
        inputs: list[Any] = [None] * self._n_decoder_inputs
        inputs[self._latent_index] = latent
        for i, s in zip(self._skip_indices, skips, strict=False):
            inputs[i] = s
        return inputs

    def _finish(self, probs: Any) -> Any:
        tf = _tf()
        if self.apply_softmax:
            probs = tf.nn.softmax(probs, axis=-1)
        if self._resize_to is not None:
            probs = tf.image.resize(probs, self._resize_to, method="bilinear")
        return probs

    def _decode_fn(self, n: int, masks: bool = False) -> Any:
        fn = self._decode_fns.get((n, masks))
        if fn is None:
            tf = _tf()
            decoder = self.decoder

            def run(latent, *skips):
                probs = self._finish(decoder(self._arrange(latent, skips), training=False))
                if not masks:
                    return probs
                # In the graph, the argmax costs a fraction of numpy's on the returned array.
                return probs, tf.argmax(probs, axis=-1, output_type=tf.int32)

            specs = [tf.TensorSpec((n, *self.latent_shape), tf.float32)]
            specs += [tf.TensorSpec((n, *s), tf.float32) for s in self.skip_shapes]
            fn = tf.function(run, autograph=False).get_concrete_function(*specs)
            self._decode_fns[(n, masks)] = fn
        return fn

    def _encode_fn(self, n: int) -> Any:
        fn = self._encode_fns.get(n)
        if fn is None:
            tf = _tf()
            encoder = self.encoder

            def run(images):
                out = encoder(images, training=False)
                return tuple(out) if isinstance(out, (list, tuple)) else (out,)

            spec = tf.TensorSpec((n, *self.input_shape), tf.float32)
            fn = tf.function(run, autograph=False).get_concrete_function(spec)
            self._encode_fns[n] = fn
        return fn

    def _mask_fn(self, n: int) -> Any:
        fn = self._mask_fns.get(n)
        if fn is None:
            tf = _tf()
            encoder, decoder = self.encoder, self.decoder

            def run(images):
                out = encoder(images, training=False)
                out = list(out) if isinstance(out, (list, tuple)) else [out]
                probs = self._finish(decoder(self._arrange(out[0], out[1:]), training=False))
                return tf.argmax(probs, axis=-1, output_type=tf.int32)

            spec = tf.TensorSpec((n, *self.input_shape), tf.float32)
            fn = tf.function(run, autograph=False).get_concrete_function(spec)
            self._mask_fns[n] = fn
        return fn

    # ------------------------------------------------------------------ LatentModelBase's calls

    def _encode_numpy(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(t.numpy() for t in self._encode_fn(len(x))(_tf().convert_to_tensor(x)))

    def encode_batch(self, images: Any) -> tuple[Any, ...]:
        """One compiled encoder call on a batch: ``(latent, *skips)`` tensors.

        Examples
        --------
        >>> latent, *skips = lm.encode_batch(ds.images[:8])  # doctest: +SKIP
        """
        x = self._check_images(images)
        return self._encode_fn(len(x))(_tf().convert_to_tensor(x))

    def _decode_numpy(self, z: np.ndarray, skips: list[np.ndarray], masks: bool) -> Any:
        tf = _tf()
        out = self._decode_fn(len(z), masks)(tf.convert_to_tensor(z), *map(tf.convert_to_tensor, skips))
        # np.asarray: the outputs' own buffers, read-only (.numpy() would copy them: 5 MB a frame at 288x384).
        return tuple(np.asarray(t) for t in out) if masks else np.asarray(out)

    def _masks_numpy(self, x: np.ndarray) -> np.ndarray:
        return self._mask_fn(len(x))(_tf().convert_to_tensor(x)).numpy()

    def weights_hash(self) -> str:
        """Hash of the encoder's architecture and weights (a cache key)."""
        from ..core.cache import content_hash

        try:
            config = self.encoder.to_json()
        except Exception:  # pragma: no cover - unserialisable custom layers
            config = repr([(layer.__class__.__name__, layer.name) for layer in self.encoder.layers])
        return content_hash("encoder", config, [np.asarray(w) for w in self.encoder.get_weights()])
