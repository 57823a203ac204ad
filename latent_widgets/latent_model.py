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
no layer counting, no project-specific code in the model.

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
>>> from latent_widgets.models import segnet
>>> lm = LatentModel.from_model(segnet(12, (48, 64, 3), width=0.125))  # doctest: +SKIP
>>> enc = lm.encode(images)  # doctest: +SKIP
>>> probs = lm.decode(enc.latents[0])  # one latent -> (1, 48, 64, 12)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .arrays import iter_row_blocks
from .keras_graph import (
    LATENT_LAYER,
    LatentModelError,
    ends_with_softmax,
    graph_io,
    require_keras_model,
    split_model,
    static_shape,
)
from .protocols import LatentModelLike

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from .dataset import SegmentationDataset

__all__ = ["LATENT_LAYER", "Encoding", "LatentModel", "LatentModelError", "LatentModelLike"]

# Name given to the combined model written by LatentModel.save, so that
# LatentModel.load recognises it.
_SAVED_NAME = "latent_model"
# Show a progress bar in encode() from this many batches on (progress=None).
_AUTO_PROGRESS_BATCHES = 8
# encode_dataset(store=None) streams into a latent store above this many bytes of latents and skips.
_STORE_ABOVE_BYTES = 1 << 30


class Encoding(NamedTuple):
    """What :meth:`LatentModel.encode` and :meth:`LatentModel.encode_dataset` return.

    Attributes
    ----------
    latents : ndarray, float32, shape (N, *latent_shape)
        From ``encode_dataset`` with a store: a read-only
        :class:`~latent_widgets.store.StoredArray` on disk, indexed like numpy.
    skips : tuple of ndarray
        One array ``(N, *skip_shape)`` per skip input of the decoder, in the
        decoder's order; ``()`` for a network without skips. From
        ``encode_dataset`` with a store: stored arrays, or
        :class:`~latent_widgets.store.LazySkipColumn` objects that re-encode
        the samples they are indexed with.
    """

    latents: np.ndarray
    skips: tuple[np.ndarray, ...]


# ----------------------------------------------------------------------------
# helpers


def _keras():
    import keras

    return keras


def _tf():
    import tensorflow as tf

    return tf


# ----------------------------------------------------------------------------
# the adapter


class LatentModel:
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
        require_keras_model(encoder, "encoder")
        require_keras_model(decoder, "decoder")
        enc_in, enc_out = graph_io(encoder, "encoder")
        dec_in, dec_out = graph_io(decoder, "decoder")
        if len(enc_in) != 1:
            raise LatentModelError(
                f"the encoder must take one input (the images), it takes {len(enc_in)}: {[t.name for t in enc_in]}."
            )
        if len(dec_out) != 1:
            raise LatentModelError(f"the decoder must have one output (per-pixel class scores), it has {len(dec_out)}.")
        shape = static_shape(
            enc_in[0], "the encoder input", "build the model with a fixed image size, e.g. keras.Input((288, 384, 3))."
        )
        if len(shape) != 3:
            raise LatentModelError(f"the encoder input must be (H, W, C) images, its shape is {shape}.")
        self.input_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        out_shape = tuple(dec_out[0].shape[1:])
        if len(out_shape) != 3 or out_shape[-1] is None:
            raise LatentModelError(
                f"the decoder output must be (H, W, n_classes) per-pixel scores, its shape is {out_shape}."
            )
        self.n_classes: int = int(out_shape[-1])

        # Which decoder input is the latent, which are skips.
        names = [t.name for t in dec_in]

        def index_of(key: str | int, role: str) -> int:
            if isinstance(key, (int, np.integer)):
                if not 0 <= int(key) < len(dec_in):
                    raise LatentModelError(
                        f"{role}={key} is out of range: the decoder has {len(dec_in)} input(s) {names}."
                    )
                return int(key)
            if key not in names:
                raise LatentModelError(f"{role}={key!r} is not an input of the decoder; its inputs are {names}.")
            return names.index(key)

        if latent_input is not None:
            li = index_of(latent_input, "latent_input")
        elif LATENT_LAYER in names:
            li = names.index(LATENT_LAYER)
        elif len(dec_in) == 1:
            li = 0
        else:
            raise LatentModelError(
                f"cannot tell which of the decoder inputs {names} is the latent: name it "
                f"{LATENT_LAYER!r} (keras.Input(..., name={LATENT_LAYER!r})) or pass latent_input=<name or index>."
            )
        if skip_inputs is not None:
            si = [index_of(k, "skip_inputs") for k in skip_inputs]
            if li in si or len(set(si)) != len(si) or len(si) != len(dec_in) - 1:
                raise LatentModelError(
                    f"skip_inputs={list(skip_inputs)} must name each decoder input except the latent "
                    f"{names[li]!r} exactly once; the inputs are {names}."
                )
        else:
            si = [i for i in range(len(dec_in)) if i != li]
            if all(names[i].startswith("skip_") and names[i][5:].isdigit() for i in si):
                si.sort(key=lambda i: int(names[i][5:]))
        self._latent_index = li
        self._skip_indices = tuple(si)
        self._n_decoder_inputs = len(dec_in)

        # The encoder's outputs must be exactly what the decoder takes.
        expected = [dec_in[li]] + [dec_in[i] for i in si]
        roles = ["latent"] + [f"skip {k} ({names[i]!r})" for k, i in enumerate(si)]
        if len(enc_out) != len(expected):
            raise LatentModelError(
                f"the encoder has {len(enc_out)} output(s) but the decoder takes {len(expected)} input(s) "
                f"(latent + {len(si)} skip(s): {names}); the encoder must return [latent, skip_0, ...] "
                "in that order. LatentModel.from_model builds a matching pair automatically."
            )
        for role, out, inp in zip(roles, enc_out, expected, strict=False):
            got, want = tuple(out.shape[1:]), tuple(inp.shape[1:])
            ok = len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want, strict=False))
            if not ok:
                raise LatentModelError(
                    f"encoder output shape {got} does not fit the decoder's {role} input of shape {want}; "
                    "the encoder and decoder do not belong together (split the same network, or check the "
                    "order of the encoder outputs: latent first, then the skips)."
                )
        self.latent_shape: tuple[int, ...] = static_shape(
            enc_out[0], "the latent (encoder output 0)", "build the model with a fixed image size."
        )
        self.skip_shapes: tuple[tuple[int, ...], ...] = tuple(
            static_shape(t, f"skip {k} (encoder output {k + 1})", "build the model with a fixed image size.")
            for k, t in enumerate(enc_out[1:])
        )
        self.has_skips: bool = bool(self.skip_shapes)
        self.encoder = encoder
        self.decoder = decoder
        self.model: keras.Model | None = None
        self.latent_layer: str | None = None

        if apply_softmax is None:
            apply_softmax = ends_with_softmax(decoder) is False
        self.apply_softmax = bool(apply_softmax)
        out_hw = tuple(dec_out[0].shape[1:3])
        self._resize_to = None if out_hw == self.input_shape[:2] else self.input_shape[:2]

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
    ) -> LatentModel:
        """Split a functional Keras model at the layer named ``latent_layer``.

        Parameters
        ----------
        model : keras.Model
            A functional (or Sequential) model with one image input and one
            output of per-pixel class scores.
        latent_layer : str, optional
            Name of the layer whose output is the latent. Defaults to
            ``"latent"``, the name every :mod:`latent_widgets.models` network
            gives its split layer.
        apply_softmax : bool, optional
            See :class:`LatentModel`.

        Returns
        -------
        LatentModel
            Its encoder maps the model input to ``[latent, *skips]``, its
            decoder re-applies the model's layers after the split (shared
            weights, no copy) to ``latent``, ``skip_0``, ... inputs.
            ``decode(*encode(x))`` equals ``model(x)``.

        Raises
        ------
        LatentModelError
            Not a Keras model, no graph (subclassed model), no such layer, a
            layer the output does not depend on, a layer used more than once.

        Examples
        --------
        >>> lm = LatentModel.from_model(unet, latent_layer="bottleneck_relu")  # doctest: +SKIP
        >>> lm.skip_shapes  # doctest: +SKIP
        ((48, 64, 16), (24, 32, 32))
        """
        encoder, decoder, name = split_model(model, latent_layer)
        lm = cls(encoder, decoder, apply_softmax=apply_softmax)
        lm.model = model
        lm.latent_layer = name
        return lm

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
        from .cache import atomic_path

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

    # ------------------------------------------------------------------ validation

    def _check_images(self, images: Any) -> np.ndarray:
        x = np.asarray(images)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / np.float32(255)  # 0..255 images -> the 0..1 the models expect
        elif x.dtype != np.float32:
            if not np.issubdtype(x.dtype, np.number):
                raise LatentModelError(f"images must be numeric arrays, got dtype {x.dtype}.")
            x = x.astype(np.float32)
        if x.ndim == 3:
            x = x[None]
        h, w, c = self.input_shape
        if x.ndim != 4:
            raise LatentModelError(f"images must have shape (N, {h}, {w}, {c}) or ({h}, {w}, {c}), got {x.shape}.")
        if x.shape[3] != c:
            raise LatentModelError(
                f"images have {x.shape[3]} channel(s) but the model expects {c}; "
                + ("convert them to RGB (e.g. PIL Image.convert('RGB'))." if c == 3 else f"give {c}-channel images.")
            )
        if x.shape[1:3] != (h, w):
            raise LatentModelError(
                f"images are {x.shape[1]}x{x.shape[2]} (HxW) but the model expects {h}x{w}; resize them "
                f"first, e.g. load_camvid(..., size=({h}, {w}))."
            )
        return x

    def _check_latents(self, latents: Any, skips: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        z = np.asarray(latents, dtype=np.float32)
        single = z.shape == self.latent_shape
        if single:
            z = z[None]
        elif z.ndim != len(self.latent_shape) + 1 or z.shape[1:] != self.latent_shape:
            raise LatentModelError(
                f"latents must have shape (N, {', '.join(map(str, self.latent_shape))}) or "
                f"{self.latent_shape} for one latent, got {z.shape}."
            )
        if not np.isfinite(z).all():
            bad = np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))
            raise LatentModelError(
                f"latent {int(bad[0])} contains NaN or Inf ({len(bad)} of {len(z)} latents); the decoder "
                "would return garbage. Check the edit, interpolation or inverse projection that produced it."
            )
        n_skips = len(self.skip_shapes)
        if n_skips == 0:
            if skips is not None and len(skips):
                raise LatentModelError(f"this decoder takes no skip features, got {len(skips)}; call decode(latents).")
            return z, []
        if skips is None:
            raise LatentModelError(
                f"this decoder needs {n_skips} skip feature array(s) beside the latent (shapes "
                f"{list(self.skip_shapes)}); pass skips=encode(images).skips."
            )
        if (
            isinstance(skips, np.ndarray)
            and n_skips == 1
            and skips.ndim
            in (
                len(self.skip_shapes[0]),
                len(self.skip_shapes[0]) + 1,
            )
        ):
            skips = (skips,)
        if len(skips) != n_skips:
            raise LatentModelError(
                f"this decoder needs {n_skips} skip feature array(s), got {len(skips)}; "
                "pass skips=encode(images).skips."
            )
        out = []
        for k, (s, shape) in enumerate(zip(skips, self.skip_shapes, strict=False)):
            s = np.asarray(s, dtype=np.float32)
            if s.shape == shape:
                s = s[None]
            if len(s) == 1 and len(z) > 1 and s.shape[1:] == shape:
                # One image's skips for many latents (e.g. an interpolation path).
                s = np.broadcast_to(s, (len(z), *shape))
            if s.shape[1:] != shape or len(s) != len(z):
                raise LatentModelError(
                    f"skip {k} must have shape ({len(z)}, {', '.join(map(str, shape))}) to go with "
                    f"{len(z)} latent(s), got {s.shape}."
                )
            if not np.isfinite(s).all():
                raise LatentModelError(f"skip {k} contains NaN or Inf; recompute it with encode().")
            out.append(s)
        return z, out

    # ------------------------------------------------------------------ public API

    def encode(
        self,
        images: Any,
        batch_size: int = 32,
        progress: bool | None = None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        """Map images to latents (and skip features).

        Parameters
        ----------
        images : array, (N, H, W, C) or (H, W, C)
            Floats in 0..1 (uint8 images are divided by 255).
        batch_size : int
            Images per compiled call.
        progress : bool, optional
            Show a progress bar; default: when there are 8 batches or more.
        on_batch : callable, optional
            ``on_batch(images_done, n)``, called before the first batch and
            after each one: progress, or other work done between batches.

        Returns
        -------
        Encoding
            ``latents`` ``(N, *latent_shape)`` and ``skips``, float32 numpy.

        Examples
        --------
        >>> enc = lm.encode(ds.images)  # doctest: +SKIP
        >>> enc.latents.shape  # doctest: +SKIP
        (367, 6, 8, 128)
        """
        tf = _tf()
        x = self._check_images(images)
        n = len(x)
        batch_size = max(1, int(batch_size))
        blocks = list(iter_row_blocks(n, batch_size))
        if progress is None:
            progress = len(blocks) >= _AUTO_PROGRESS_BATCHES
        latents = np.empty((n, *self.latent_shape), np.float32)
        skips = tuple(np.empty((n, *s), np.float32) for s in self.skip_shapes)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="encoding", unit="img", leave=False)
        try:
            if on_batch is not None:
                on_batch(0, n)
            for rows in blocks:
                chunk = x[rows]
                outs = self._encode_fn(len(chunk))(tf.convert_to_tensor(chunk))
                latents[rows] = outs[0].numpy()
                for dst, src in zip(skips, outs[1:], strict=False):
                    dst[rows] = src.numpy()
                if bar is not None:
                    bar.update(len(chunk))
                if on_batch is not None:
                    on_batch(rows.stop, n)
        finally:
            if bar is not None:
                bar.close()
        return Encoding(latents, skips)

    def decode(self, latents: Any, skips: Any = None, batch_size: int = 32) -> np.ndarray:
        """Map latents (and skips) to per-pixel class probabilities.

        Parameters
        ----------
        latents : array, (N, *latent_shape) or latent_shape, or Encoding
            One latent without a batch axis gives a batch of 1. An
            :class:`Encoding` (what :meth:`encode` returns) stands for its
            latents and skips: ``decode(encode(x))``.
        skips : sequence of arrays, optional
            Required when ``has_skips`` and ``latents`` is an array:
            ``encode(...).skips`` matching the latents, or one sample's skips
            (with or without batch axis), which are then used for every
            latent. Must be left out when ``latents`` is an Encoding.
        batch_size : int
            Latents per compiled call.

        Returns
        -------
        ndarray, float32, (N, H, W, n_classes)

        Raises
        ------
        LatentModelError
            Wrong shape, missing skips, skips given with an Encoding, NaN or
            Inf in a latent.

        Examples
        --------
        >>> probs = lm.decode(lm.encode(ds.images[:2]))  # doctest: +SKIP
        >>> probs = lm.decode(0.5 * (enc.latents[0] + enc.latents[1]))  # doctest: +SKIP
        >>> probs.shape  # doctest: +SKIP
        (1, 96, 128, 12)
        """
        return self._decode(latents, skips, batch_size, masks=False)

    def decode_with_masks(self, latents: Any, skips: Any = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and their argmax masks, from one compiled call.

        What the interpolation slider shows for each alpha: the same as
        ``probs = decode(...)`` and ``probs.argmax(-1)``, with the argmax done
        inside the graph. ``latents`` and ``skips`` as in :meth:`decode`
        (an :class:`Encoding` included).

        Returns
        -------
        probs : ndarray, float32, (N, H, W, n_classes)
        masks : ndarray, int32, (N, H, W)

        Examples
        --------
        >>> probs, masks = lm.decode_with_masks(enc.latents[:1], enc.skips)  # doctest: +SKIP
        >>> probs, masks = lm.decode_with_masks(lm.encode(ds.images[:1]))  # doctest: +SKIP
        """
        return self._decode(latents, skips, batch_size, masks=True)

    def _decode(self, latents: Any, skips: Any, batch_size: int, masks: bool) -> Any:
        tf = _tf()
        if isinstance(latents, Encoding):
            if skips is not None:
                raise LatentModelError(
                    "got an Encoding and skips: an Encoding already carries its skips; call "
                    "decode(encoding) or decode(encoding.latents, skips), not decode(encoding, skips)."
                )
            latents, skips = latents.latents, latents.skips
        z, sk = self._check_latents(latents, skips)
        n = len(z)

        def call(fn: Any, args: list[Any]) -> Any:
            out = fn(*args)
            return tuple(t.numpy() for t in out) if masks else out.numpy()

        if n <= batch_size:  # the widgets' case: one call, no copies
            return call(self._decode_fn(n, masks), [tf.convert_to_tensor(z), *map(tf.convert_to_tensor, sk)])
        parts = []
        for rows in iter_row_blocks(n, batch_size):
            args = [tf.convert_to_tensor(a[rows]) for a in (z, *sk)]
            parts.append(call(self._decode_fn(rows.stop - rows.start, masks), args))
        if masks:
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return np.concatenate(parts)

    def predict_masks(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Predicted class id per pixel, ``(N, H, W)`` int32.

        Examples
        --------
        >>> masks = lm.predict_masks(ds.images)  # doctest: +SKIP
        """
        tf = _tf()
        x = self._check_images(images)
        batch_size = max(1, int(batch_size))
        parts = [
            self._mask_fn(len(x[rows]))(tf.convert_to_tensor(x[rows])).numpy()
            for rows in iter_row_blocks(len(x), batch_size)
        ]
        if not parts:
            return np.empty((0, *self.input_shape[:2]), np.int32)
        return np.concatenate(parts)

    def weights_hash(self) -> str:
        """Hash of the encoder's architecture and weights (a cache key)."""
        from .cache import content_hash

        try:
            config = self.encoder.to_json()
        except Exception:  # pragma: no cover - unserialisable custom layers
            config = repr([(layer.__class__.__name__, layer.name) for layer in self.encoder.layers])
        return content_hash("encoder", config, [np.asarray(w) for w in self.encoder.get_weights()])

    def encode_dataset(
        self,
        dataset: SegmentationDataset,
        batch_size: int = 32,
        cache: bool = True,
        *,
        store: str | os.PathLike[str] | bool | None = None,
        resume: bool = True,
        overwrite: bool = False,
        progress: bool | None = None,
        store_skips: bool = False,
        chunk_rows: int | None = None,
        client: Any = None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        """:meth:`encode` a dataset's images, cached on disk.

        Small in-memory datasets are encoded in memory and cached as one
        ``.npz``. Large or lazy datasets are streamed into a
        :class:`~latent_widgets.store.LatentStore` (a Zarr folder): a
        background thread reads the next batch of images while the encoder
        runs, each finished chunk of rows is written and marked done, and an
        interrupted encode resumes where it stopped. Either way the key is
        the encoder's weights and architecture (:meth:`weights_hash`) and
        ``dataset.content_hash()``, so retraining the model or changing the
        data is a cache miss, never a stale answer.

        Parameters
        ----------
        dataset : SegmentationDataset
            Eager or lazy (``dataset.images[rows]`` is read batch by batch).
        batch_size : int
            Images per compiled encoder call.
        cache : bool
            ``False`` always re-encodes (and, without a store, writes nothing).
        store : path, bool or None
            Where the latents go. A path: a store folder there. ``True``: a
            store under ``cache_dir("latents")`` named by the hash. ``False``:
            in memory. ``None`` (default): a store for lazy datasets and when
            the latents and skips would exceed 1 GiB, memory otherwise.
        resume : bool
            Continue a partly written store (``False`` re-encodes it all).
        overwrite : bool
            Replace a store at ``store`` that belongs to another model or
            dataset (otherwise that raises :class:`~latent_widgets.store.LatentStoreError`).
        progress : bool, optional
            A progress bar; default: for 8 batches or more. When resuming it
            starts at the rows already done.
        store_skips : bool
            With a store, keep the skip features on disk too. By default they
            are not stored (they are often 10-100x the latents): the returned
            ``skips`` are :class:`~latent_widgets.store.LazySkipColumn` objects
            that re-encode the requested samples when indexed.
        chunk_rows : int, optional
            Rows per store chunk (a multiple of ``batch_size``); default about 2 MiB.
        client : dask.distributed.Client, optional
            Encode on this Dask cluster's workers, one task per chunk, each
            writing straight into the store (:mod:`latent_widgets.distributed`):
            needs a lazy dataset and a ``store`` path that every worker can
            reach. ``None``: encode here.
        on_batch : callable, optional
            ``on_batch(images_done, n)`` before the first batch and after
            each (not called on a cache hit, nor with ``client``): progress,
            or other work between batches (the explorer session answers its
            slider there while it encodes the dataset).

        Returns
        -------
        Encoding
            In memory: numpy arrays. With a store: ``latents`` is the store's
            read-only :class:`~latent_widgets.store.StoredArray` (indexable like
            numpy, nothing loaded until indexed) and ``skips`` are stored
            arrays or lazy columns.

        Raises
        ------
        LatentStoreError
            The store at ``store`` was computed by another model or from
            another dataset (pass a new path or ``overwrite=True``).

        Examples
        --------
        >>> enc = lm.encode_dataset(load_camvid(root, "train", size=(96, 128)))  # doctest: +SKIP
        >>> enc = lm.encode_dataset(synthetic_road_scenes(100_000, lazy=True), store="road.zarr")  # doctest: +SKIP
        >>> enc.latents[:10].shape  # doctest: +SKIP
        (10, 6, 8, 128)
        >>> enc = lm.encode_dataset(ds, store="/shared/road.zarr", client=dask_client)  # doctest: +SKIP
        """
        from .cache import cached_arrays

        if client is not None:
            from .distributed import encode_on_cluster

            st = encode_on_cluster(
                self,
                dataset,
                store,  # type: ignore[arg-type]  (checked there: a path, with a clear error otherwise)
                client,
                batch_size=batch_size,
                resume=resume and cache,
                overwrite=overwrite,
                store_skips=store_skips,
                chunk_rows=chunk_rows,
                progress=progress,
            )
            return self._store_encoding(st, dataset, batch_size)

        model_hash, data_hash, target = self._dataset_target(dataset, store, store_skips)
        if isinstance(target, Path):
            return self._encode_to_store(
                dataset,
                target,
                model_hash=model_hash,
                data_hash=data_hash,
                batch_size=batch_size,
                resume=resume and cache,
                overwrite=overwrite,
                progress=progress,
                store_skips=store_skips,
                chunk_rows=chunk_rows,
                on_batch=on_batch,
            )

        def compute() -> dict[str, np.ndarray]:
            enc = self.encode(dataset.images, batch_size=batch_size, progress=progress, on_batch=on_batch)
            out = {"latents": enc.latents}
            out.update({f"skip_{k}": s for k, s in enumerate(enc.skips)})
            return out

        return self._npz_encoding(cached_arrays("latents", target, compute, use_cache=cache))

    def _dataset_target(
        self, dataset: SegmentationDataset, store: str | os.PathLike[str] | bool | None, store_skips: bool
    ) -> tuple[str, str, Path | str]:
        """``(model hash, data hash, where)``: the store folder of :meth:`encode_dataset`, or its ``.npz`` key."""
        from .cache import cache_dir, content_hash

        model_hash, data_hash = self.weights_hash(), dataset.content_hash()
        if store is None:
            store = bool(getattr(dataset, "is_lazy", False)) or self._encoded_bytes(len(dataset)) > _STORE_ABOVE_BYTES
        if store is False:
            return model_hash, data_hash, content_hash("encode_dataset-v1", model_hash, data_hash)
        if store is True:
            name = content_hash("encode_dataset-store-v1", model_hash, data_hash)
            return model_hash, data_hash, cache_dir("latents") / f"{name}{'-skips' if store_skips else ''}.zarr"
        return model_hash, data_hash, Path(store)

    def _npz_encoding(self, arrays: Mapping[str, np.ndarray]) -> Encoding:
        return Encoding(
            arrays["latents"].astype(np.float32, copy=False),
            tuple(arrays[f"skip_{k}"].astype(np.float32, copy=False) for k in range(len(self.skip_shapes))),
        )

    def _encoded_bytes(self, n: int) -> int:
        """Bytes of ``n`` latents and their skips in float32."""
        shapes = (self.latent_shape, *self.skip_shapes)
        return 4 * int(n) * sum(int(np.prod(s)) for s in shapes)

    def _encode_batch(self, images: Any) -> tuple[Any, ...]:
        """One compiled encoder call on a batch: ``(latent, *skips)`` tensors."""
        x = self._check_images(images)
        return self._encode_fn(len(x))(_tf().convert_to_tensor(x))

    def _encode_batch_numpy(self, images: Any) -> tuple[np.ndarray, ...]:
        return tuple(t.numpy() for t in self._encode_batch(images))

    def _encode_to_store(
        self,
        dataset: SegmentationDataset,
        path: Path,
        *,
        model_hash: str,
        data_hash: str,
        batch_size: int,
        resume: bool,
        overwrite: bool,
        progress: bool | None,
        store_skips: bool,
        chunk_rows: int | None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        from .store import encode_to_store

        st = encode_to_store(
            self._encode_batch,
            dataset.images,
            path,
            model_hash=model_hash,
            data_hash=data_hash,
            latent_shape=self.latent_shape,
            skip_shapes=self.skip_shapes,
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            store_skips=store_skips,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            on_batch=on_batch,
        )
        return self._store_encoding(st, dataset, batch_size)

    def _store_encoding(self, st: Any, dataset: SegmentationDataset, batch_size: int) -> Encoding:
        if st.stored_skips or not self.skip_shapes:
            skips: tuple[Any, ...] = st.skips
        else:
            skips = st.lazy_skips(self._encode_batch_numpy, dataset.images, batch_size)
        return Encoding(st.latents, skips)

    def __repr__(self) -> str:
        return (
            f"LatentModel(input {self.input_shape}, latent {self.latent_shape}, "
            f"{len(self.skip_shapes)} skip(s), {self.n_classes} classes)"
        )
