"""A segmentation network from any framework, through ONNX: PyTorch, TensorFlow, JAX exports.

:class:`OnnxLatentModel` is the ONNX Runtime counterpart of
:class:`~latent_widgets.model.latent_model.LatentModel`, with the same interface,
so that the explorer, its session, the latent store, the Dask encode and the
figures take either. :meth:`OnnxLatentModel.from_onnx` (also reached as
``LatentModel.from_onnx``) cuts an ``.onnx`` file at a named tensor with
:mod:`latent_widgets.model.onnx_graph` and :mod:`latent_widgets.model.onnx_split`; both halves run on ONNX Runtime's CPU
provider.

The library's conventions hold on the outside whatever the model's are:

- images go in NHWC, float in 0..1 (uint8 is divided by 255); the model's
  own layout (PyTorch: NCHW, detected from the input shape or given as
  ``layout=``) and normalisation (``mean=``/``std=``, e.g. ImageNet's) are
  applied inside the encoder graph; a ``preprocess`` callable runs on the
  NHWC batch before it, for anything else;
- latents and skips come out NHWC (``latent_shape`` is ``(h, w, C)``, as
  the map of cells expects), and go back in NHWC;
- ``decode`` returns NHWC probabilities at the image size: a softmax over
  the classes is added to a network that outputs logits, and an output
  smaller than the image is resized bilinearly, as ``LatentModel`` does.

The ONNX Runtime sessions are created on first use and never pickled: a
pickled model (or one sent to Dask workers, which get the file
:meth:`~OnnxLatentModel.save` writes) creates its own.

Examples
--------
>>> from latent_widgets import LatentModel
>>> lm = LatentModel.from_onnx("unet.onnx", latent="/encoder/layer4/layer4.1/relu_1/Relu",
...                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # doctest: +SKIP
>>> lm.latent_shape, lm.skip_shapes  # doctest: +SKIP
((3, 4, 512), ((24, 32, 64), (12, 16, 64), (6, 8, 128), (3, 4, 256)))
>>> LatentModel.from_onnx("unet.onnx")  # no latent: lists the tensors worth cutting at  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cuts import CandidateCut
from .errors import LatentModelError
from .latent_base import LatentModelBase
from .onnx_graph import OnnxGraph
from .onnx_runtime import session_options
from .onnx_split import INPUT_NAME, LATENT_NAME, MASKS_NAME, PROBS_NAME, split_graph

__all__ = ["OnnxLatentModel", "candidate_cuts"]

# Key of the metadata entry in which save() records the split, for load().
_META_KEY = "latent_widgets.split"
# Default intra-op threads of a session: the cores this process may use, at most this many (beyond it a
# one-latent decode gains little and the threads compete with the kernel's other work).
_MAX_DEFAULT_THREADS = 8


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _load_model(source: Any) -> tuple[Any, str]:
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto, and a description of where it came from."""
    import onnx

    if isinstance(source, onnx.ModelProto):
        return source, "the ONNX model"
    if isinstance(source, (bytes, bytearray)):
        return onnx.load_from_string(bytes(source)), "the ONNX model"
    path = Path(source)
    if path.suffix != ".onnx":
        raise LatentModelError(
            f"{path} is not an .onnx file; export the network to ONNX first (torch.onnx.export, "
            "model.export(path, format='onnx') in Keras, tf2onnx)."
        )
    if not path.is_file():
        raise LatentModelError(f"ONNX file {path} does not exist; check the path.")
    try:
        return onnx.load(path), str(path)
    except Exception as exc:
        raise LatentModelError(f"cannot read {path} as ONNX: {type(exc).__name__}: {str(exc)[:300]}") from exc


def candidate_cuts(
    source: Any, *, layout: str | None = None, input_size: tuple[int, int] | None = None, output: str | None = None
) -> list[CandidateCut]:
    """The tensors of an ONNX model worth splitting at (see :meth:`OnnxGraph.candidates`).

    Parameters
    ----------
    source : path, bytes or onnx.ModelProto
    layout, input_size, output :
        As for :meth:`OnnxLatentModel.from_onnx`.

    Examples
    --------
    >>> for c in candidate_cuts("deeplab.onnx"):  # doctest: +SKIP
    ...     print(c.name, c.shape, c.n_skips)
    """
    model, _ = _load_model(source)
    return OnnxGraph(model, layout=layout, input_size=input_size, output=output).candidates()


def _callable_id(fn: Callable[..., Any]) -> list[Any]:
    """What identifies a preprocessing function in the weights hash: its name and, for Python code, its bytecode."""
    code = getattr(fn, "__code__", None)
    parts: list[Any] = [getattr(fn, "__module__", ""), getattr(fn, "__qualname__", type(fn).__qualname__)]
    if code is not None:
        parts += [code.co_code, repr(code.co_consts)]
    return parts


class OnnxLatentModel(LatentModelBase):
    """An ONNX segmentation network split at a named tensor, run with ONNX Runtime.

    Build it with :meth:`from_onnx` (or ``LatentModel.from_onnx``); it has
    the interface of :class:`~latent_widgets.model.latent_model.LatentModel`:
    ``encode``, ``decode``, ``decode_with_masks``, ``predict_masks``,
    ``encode_dataset``, ``weights_hash``, the shape attributes.

    Parameters
    ----------
    model : path, bytes or onnx.ModelProto
        One image input, an output of per-pixel class scores.
    latent : str
        The tensor to split at.
    layout : {"NCHW", "NHWC"}, optional
        The model's input layout; default: from the input shape (the
        axis of size 1, 3 or 4 holds the channels). PyTorch: NCHW.
    mean, std : float or sequence of float, optional
        The model's normalisation of images in 0..1, ``(x - mean) /
        std`` per channel, applied in the graph: ImageNet-trained
        PyTorch models take ``mean=(0.485, 0.456, 0.406), std=(0.229,
        0.224, 0.225)``; a model that expects 0..255 takes ``std=1/255``.
    preprocess : callable, optional
        ``f(images) -> images`` on the NHWC float32 batch in 0..1,
        before ``mean``/``std`` (same shape out). It runs in Python, so
        a model with one cannot be saved or encoded on a Dask cluster:
        prefer ``mean``/``std``, or put the step into the exported graph.
    apply_softmax : bool, optional
        Add a softmax over the classes. Default: unless the output
        already is one (a ``Softmax`` node, or probabilities on a probe input).
    input_size : (H, W), optional
        For a model exported with a dynamic image size: the size to fix.
    output : str, optional
        The graph output of class scores, when there are several (e.g. an auxiliary head).
    threads : int, optional
        Intra-op threads of ONNX Runtime; default: the available cores, at most 8.

    Attributes
    ----------
    latent_tensor : str
        The tensor of the ONNX graph that is the latent.
    skip_tensors : tuple of str
        The graph's tensors that are the skips, nearest the input first.
    latent_shape, skip_shapes : NHWC shapes without the batch axis
    input_shape : (H, W, C)
    n_classes : int
    has_skips : bool
    apply_softmax : bool
        Whether the decoder adds a softmax (the network outputs logits).
    layout : {"NCHW", "NHWC"}
        The ONNX model's input layout.
    batch : int or None
        The model's fixed batch size (inputs are padded to it), ``None`` if dynamic.
    threads : int
        Intra-op threads of the sessions created from now on.

    Examples
    --------
    >>> lm = OnnxLatentModel.from_onnx("segnet.onnx", latent="segnet_1/latent_1/MaxPool2d:0")  # doctest: +SKIP
    >>> probs = lm.decode(lm.encode(images))  # doctest: +SKIP
    """

    #: The file :meth:`save` writes (what the Dask encode sends each worker).
    file_suffix = ".onnx"

    def __init__(
        self,
        model: Any,
        latent: str,
        *,
        layout: str | None = None,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
        apply_softmax: bool | None = None,
        input_size: tuple[int, int] | None = None,
        output: str | None = None,
        threads: int | None = None,
    ) -> None:
        model, _ = _load_model(model)
        g = OnnxGraph(model, layout=layout, input_size=input_size, output=output)
        split = split_graph(g, latent, mean=mean, std=std, apply_softmax=apply_softmax)
        self.input_shape = split.input_shape
        self.latent_shape = split.latent_shape
        self.skip_shapes = split.skip_shapes
        self.has_skips = bool(split.skip_shapes)
        self.n_classes = split.n_classes
        self.apply_softmax = split.apply_softmax
        self.latent_tensor = split.latent
        self.skip_tensors = split.skips
        self.layout = g.input_layout
        self.batch = split.batch
        self.preprocess = preprocess
        self.threads = int(threads) if threads else min(_available_cores(), _MAX_DEFAULT_THREADS)
        self._settings = {
            "latent": latent,
            "layout": g.input_layout,
            "mean": None if mean is None else np.asarray(mean, float).tolist(),
            "std": None if std is None else np.asarray(std, float).tolist(),
            "apply_softmax": apply_softmax,
            "input_size": None if input_size is None else [int(v) for v in input_size],
            "output": g.output_name,
        }
        self._model_bytes: bytes = model.SerializeToString()
        self._encoder_bytes: bytes = split.encoder.SerializeToString(deterministic=True)
        self._decoder_bytes: bytes = split.decoder.SerializeToString(deterministic=True)
        self._skip_names = [f"lw_skip_{k}" for k in range(len(self.skip_shapes))]
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_onnx(
        cls, source: str | os.PathLike[str] | bytes | Any, latent: str | None = None, **options: Any
    ) -> OnnxLatentModel:
        """Split an ONNX segmentation network at the tensor named ``latent``.

        Parameters
        ----------
        source : path, bytes or onnx.ModelProto
            An ``.onnx`` file with one image input and an output of
            per-pixel class scores (logits or probabilities).
        latent : str
            The tensor whose value is the latent. Without it, the error
            lists the candidates (:func:`candidate_cuts`): tensors on the
            main path at the lowest spatial resolution, with their shapes
            and how many skips each creates.
        **options
            The class's keyword arguments (``layout``, ``mean``, ``std``,
            ``preprocess``, ``apply_softmax``, ``input_size``, ``output``,
            ``threads``), documented there.

        Returns
        -------
        OnnxLatentModel
            ``decode(encode(x))`` equals the whole network's output (softmaxed,
            NHWC, at the image size).

        Raises
        ------
        LatentModelError
            No ``latent`` (with the candidates), an unknown tensor (with
            close names), a tensor off the main path whose decoder would need
            the model input, a bad file or model.
        ImportError
            onnx or onnxruntime is not installed: ``pip install 'latent-widgets[onnx]'``.

        Examples
        --------
        >>> lm = OnnxLatentModel.from_onnx("deeplab.onnx", latent="deeplabv3_plus_1/latent_1/Relu:0")  # doctest: +SKIP
        >>> lm.skip_tensors  # doctest: +SKIP
        ('deeplabv3_plus_1/low_level_proj_relu_1/Relu:0',)
        """
        model, where = _load_model(source)
        if latent is None:
            graph_options = {k: v for k, v in options.items() if k in ("layout", "input_size", "output")}
            g = OnnxGraph(model, **graph_options)
            raise LatentModelError(
                f"name the tensor to split {where} at: from_onnx(path, latent=<tensor name>). Candidates, on the "
                f"main path at the lowest spatial resolution (NHWC shapes):\n{g.describe_candidates()}\n"
                "netron (netron.app) shows the graph with every tensor's name."
            )
        return cls(model, latent, **options)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ONNX model with the split recorded in its metadata; :meth:`load` splits it again.

        Raises
        ------
        LatentModelError
            The model has a ``preprocess`` callable (Python code is not saved).

        Examples
        --------
        >>> lm.save("split.onnx"); OnnxLatentModel.load("split.onnx")  # doctest: +SKIP
        """
        import onnx

        from ..core.cache import atomic_path

        path = Path(path)
        if path.suffix != ".onnx":
            raise LatentModelError(f"save to a path ending in .onnx, got {path}.")
        if self.preprocess is not None:
            raise LatentModelError(
                "this model has a preprocess callable, which cannot be saved in the ONNX file (nor sent to Dask "
                "workers that way): give the normalisation as mean=/std=, or export a model that does the "
                "preprocessing in its graph."
            )
        model = onnx.load_from_string(self._model_bytes)
        kept = [p for p in model.metadata_props if p.key != _META_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        model.metadata_props.add(key=_META_KEY, value=json.dumps(self._settings))
        with atomic_path(path) as tmp:
            onnx.save(model, tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], safe_mode: bool = True, **overrides: Any) -> OnnxLatentModel:
        """Read a file :meth:`save` wrote (the split from its metadata), or any ``.onnx`` file with ``latent=``.

        ``safe_mode`` is accepted for the interface of ``LatentModel.load``:
        an ONNX file holds no Python code to refuse.

        Examples
        --------
        >>> lm = OnnxLatentModel.load("split.onnx")  # doctest: +SKIP
        """
        model, _ = _load_model(path)
        settings: dict[str, Any] = {}
        for p in model.metadata_props:
            if p.key == _META_KEY:
                settings = json.loads(p.value)
        settings.update(overrides)
        latent = settings.pop("latent", None)
        if settings.get("input_size") is not None:
            settings["input_size"] = tuple(settings["input_size"])
        return cls.from_onnx(model, latent, **settings)

    # ------------------------------------------------------------------ sessions

    def _session(self, half: str) -> Any:
        sess = self._sessions.get(half)
        if sess is None:
            import onnxruntime as ort

            with self._lock:
                sess = self._sessions.get(half)
                if sess is None:
                    data = self._encoder_bytes if half == "encoder" else self._decoder_bytes
                    sess = ort.InferenceSession(data, session_options(self.threads), providers=["CPUExecutionProvider"])
                    self._sessions[half] = sess
        return sess

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_sessions"] = {}  # ONNX Runtime sessions do not pickle: the copy makes its own
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _run(self, half: str, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One session run, in pieces of the model's fixed batch size (the last one padded) if it has one."""
        sess = self._session(half)
        n = len(next(iter(feeds.values())))
        b = self.batch
        if b is None or n == b:
            return sess.run(outputs, feeds)
        parts = []
        for start in range(0, n, b):
            piece = {}
            for k, v in feeds.items():
                rows = v[start : start + b]
                if len(rows) < b:
                    rows = np.concatenate([rows, np.zeros((b - len(rows), *rows.shape[1:]), rows.dtype)])
                piece[k] = np.ascontiguousarray(rows)
            parts.append([o[: min(b, n - start)] for o in sess.run(outputs, piece)])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]

    # ------------------------------------------------------------------ LatentModelBase's calls

    def _encode_numpy(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.preprocess is not None:
            y = np.asarray(self.preprocess(x), np.float32)
            if y.shape != x.shape:
                raise LatentModelError(
                    f"preprocess returned shape {y.shape} for images of shape {x.shape}; it must keep the "
                    "NHWC shape (the layout change and the normalisation by mean/std come after it)."
                )
            x = y
        return tuple(self._run("encoder", [LATENT_NAME, *self._skip_names], {INPUT_NAME: np.ascontiguousarray(x)}))

    def _decode_numpy(self, z: np.ndarray, skips: list[np.ndarray], masks: bool) -> Any:
        feeds = {LATENT_NAME: np.ascontiguousarray(z)}
        feeds.update({name: np.ascontiguousarray(s) for name, s in zip(self._skip_names, skips, strict=True)})
        if masks:
            probs, labels = self._run("decoder", [PROBS_NAME, MASKS_NAME], feeds)
            return probs, labels
        return self._run("decoder", [PROBS_NAME], feeds)[0]

    def _masks_numpy(self, x: np.ndarray) -> np.ndarray:
        outs = self._encode_numpy(x)
        return self._decode_numpy(outs[0], list(outs[1:]), True)[1]

    def weights_hash(self) -> str:
        """Hash of the encoder half (graph, weights, the normalisation in it) and of ``preprocess``: a cache key."""
        from ..core.hashing import content_hash

        pre = None if self.preprocess is None else _callable_id(self.preprocess)
        return content_hash("onnx-encoder-v1", self._encoder_bytes, pre)

    def content_hash(self) -> str:
        """Hash of both halves: what a saved explorer session is checked against."""
        from ..core.hashing import content_hash

        return content_hash("onnx-latent-model-v1", self.weights_hash(), self._decoder_bytes)
