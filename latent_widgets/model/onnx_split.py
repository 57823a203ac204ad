"""ONNX graph surgery: cut a segmentation graph at a tensor and wrap the halves in the library's conventions.

:func:`split_graph` cuts an :class:`~latent_widgets.model.onnx_graph.OnnxGraph`
with ``onnx.utils.Extractor`` (encoder: the input -> ``[latent, *skips]``;
decoder: ``[latent, *skips]`` -> the output) and wraps both halves with
``onnx.helper`` nodes so that they speak the library's language: NHWC float
images in 0..1 in (normalised and transposed in the graph), NHWC latents and
skips across the cut, NHWC probabilities at the image size and int32 masks
out (softmax, transpose, resize, argmax in the graph).

Examples
--------
>>> split = split_graph(OnnxGraph(onnx.load("deeplab.onnx")), ".../latent_1/Relu:0")  # doctest: +SKIP
>>> split.encoder.graph.input[0].name, split.decoder.graph.output[1].name  # doctest: +SKIP
('lw_image', 'lw_masks')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import LatentModelError
from .onnx_graph import FLOAT_TYPES, OnnxGraph, copy_model
from .onnx_layouts import TO_NCHW, TO_NHWC

__all__ = [
    "INPUT_NAME",
    "LATENT_NAME",
    "MASKS_NAME",
    "PROBS_NAME",
    "OnnxSplit",
    "split_graph",
]

#: Names of the wrapped halves' inputs and outputs (prefixed so as not to meet a name of the model).
INPUT_NAME = "lw_image"
LATENT_NAME = "lw_latent"
PROBS_NAME = "lw_probabilities"
MASKS_NAME = "lw_masks"


@dataclass
class OnnxSplit:
    """The two wrapped halves of a split (:func:`split_graph`) and what the adapter needs to know.

    ``encoder``: ``lw_image`` (NHWC float in 0..1) -> ``lw_latent``, ``lw_skip_0``, ...
    (NHWC float32); ``decoder``: those -> ``lw_probabilities`` (NHWC, at
    the image size) and ``lw_masks`` (int32). ``batch``: the model's fixed
    batch size, or ``None`` when its batch axis is dynamic.
    """

    encoder: Any
    decoder: Any
    latent: str
    skips: tuple[str, ...]
    input_shape: tuple[int, int, int]
    latent_shape: tuple[int, ...]
    skip_shapes: tuple[tuple[int, ...], ...]
    n_classes: int
    batch: int | None
    apply_softmax: bool


class _Names:
    """Fresh tensor names for the wrapping nodes, none equal to a name of the model."""

    def __init__(self, model: Any) -> None:
        g = model.graph
        self.used = {t for n in g.node for t in (*n.input, *n.output)} | {v.name for v in (*g.input, *g.output)}
        self.used |= {t.name for t in g.initializer}

    def __call__(self, base: str) -> str:
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


def _value_info(name: str, elem: int, shape: Sequence[int | None]) -> Any:
    return helper.make_tensor_value_info(name, elem, [d if d is not None else "N" for d in shape])


def _ensure_value_info(g: OnnxGraph, model: Any, names: Sequence[str]) -> None:
    """Give ``names`` a value_info in ``model`` when shape inference left them without (the Extractor needs it)."""
    have = {v.name for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    for name in names:
        if name not in have:
            shape = g.shapes[name]
            model.graph.value_info.append(_value_info(name, g.dtypes[name], (g.batch, *shape[1:])))


def split_graph(
    g: OnnxGraph,
    latent: str,
    *,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    apply_softmax: bool | None = None,
) -> OnnxSplit:
    """Cut ``g`` at the tensor ``latent`` and wrap both halves (see :class:`OnnxSplit`).

    Parameters
    ----------
    g : OnnxGraph
    latent : str
        The tensor between encoder and decoder.
    mean, std : float or sequence of float, optional
        The model's input normalisation, applied in the encoder to images in
        0..1: ``(x - mean) / std`` per channel.
    apply_softmax : bool, optional
        Softmax over the class axis in the decoder. Default: unless the
        output already is a distribution (a ``Softmax`` node, or, on a
        probe input, values in 0..1 that sum to 1 over the class axis).

    Raises
    ------
    LatentModelError
        Unknown tensor (with close names), a cut that would make the decoder
        need the model input or non-float tensors, an output that does not
        depend on ``latent``.

    Examples
    --------
    >>> split = split_graph(OnnxGraph(onnx.load("deeplab.onnx")), ".../latent_1/Relu:0")  # doctest: +SKIP
    >>> split.latent_shape, split.skip_shapes  # doctest: +SKIP
    ((3, 4, 32), ((12, 16, 6),))
    """
    skips, _ = g.skips_of(latent)
    if g.input_name in skips:
        raise LatentModelError(
            f"{latent!r} is not on the main path of the network: the decoder half would need the model's input "
            f"{g.input_name!r} itself, which reaches the output on a path around {latent!r}. Split at a tensor "
            f"every path from the input to the output passes through; candidates:\n{g.describe_candidates()}"
        )
    bad = [s for s in skips if g.dtypes.get(s) not in FLOAT_TYPES]
    if bad:
        raise LatentModelError(
            f"splitting at {latent!r}, the decoder half would need non-float tensors {bad} computed from the "
            "image (shape computations, from dynamic axes): export the model with a fixed image size "
            "(no dynamic_axes for H and W) and constant folding on, or simplify it with onnxsim; or split "
            f"elsewhere. Candidates:\n{g.describe_candidates()}"
        )
    n_classes_axis = 1 if g.output_layout == "NCHW" else 3
    n_classes = int(g.shapes[g.output_name][n_classes_axis])
    if apply_softmax is None:
        apply_softmax = not (g.ends_with_softmax() or _is_distribution(g.probe_output, n_classes_axis))

    inferred = copy_model(g.inferred)
    _ensure_value_info(g, inferred, [latent, *skips, g.output_name])
    extractor = onnx.utils.Extractor(inferred)
    encoder = extractor.extract_model([g.input_name], [latent, *skips])
    decoder = extractor.extract_model([latent, *skips], [g.output_name])

    h, w, c = g.input_shape
    crossing = [(latent, LATENT_NAME)] + [(s, f"lw_skip_{k}") for k, s in enumerate(skips)]
    _wrap_encoder(encoder, g, crossing, c, mean, std)
    out_hw = g.nhwc_shape(g.output_name)[:2]
    _wrap_decoder(decoder, g, crossing, apply_softmax, None if out_hw == (h, w) else (h, w), n_classes)
    return OnnxSplit(
        encoder=encoder,
        decoder=decoder,
        latent=latent,
        skips=tuple(skips),
        input_shape=g.input_shape,
        latent_shape=g.nhwc_shape(latent),
        skip_shapes=tuple(g.nhwc_shape(s) for s in skips),
        n_classes=n_classes,
        batch=g.batch,
        apply_softmax=bool(apply_softmax),
    )


def _is_distribution(probs: np.ndarray | None, axis: int) -> bool:
    if probs is None or not np.isfinite(probs).all():
        return False
    p = probs.astype(np.float64)
    return bool(p.min() >= -1e-6 and p.max() <= 1 + 1e-6 and np.allclose(p.sum(axis=axis), 1.0, atol=1e-3))


def _per_channel(values: Sequence[float] | float, c: int, what: str) -> np.ndarray:
    arr = np.asarray(values, np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, c)
    if arr.size != c:
        raise LatentModelError(f"{what} has {arr.size} values; give one per input channel ({c}) or a single one.")
    return arr


def _wrap_encoder(model: Any, g: OnnxGraph, crossing: Sequence[tuple[str, str]], c: int, mean: Any, std: Any) -> None:
    """Feed the encoder half NHWC float32 images in 0..1 and give its outputs NHWC float32 names."""
    graph, fresh = model.graph, _Names(model)
    h, w, _ = g.input_shape
    nodes: list[Any] = []
    x = INPUT_NAME
    if std is not None and np.any(_per_channel(std, c, "std") == 0):
        raise LatentModelError("std has a zero: the normalisation (x - mean) / std would divide by zero.")
    for values, op, what in ((mean, "Sub", "mean"), (std, "Div", "std")):
        if values is not None:
            const = fresh(f"lw_{what}")
            graph.initializer.append(numpy_helper.from_array(_per_channel(values, c, what), const))
            nodes.append(helper.make_node(op, [x, const], [y := fresh(f"lw_{what}_out")]))
            x = y
    if g.input_layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [x], [y := fresh("lw_image_nchw")], perm=list(TO_NCHW)))
        x = y
    op, kw = ("Cast", {"to": g.input_dtype}) if g.input_dtype != TensorProto.FLOAT else ("Identity", {})
    nodes.append(helper.make_node(op, [x], [g.input_name], **kw))
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *old])
    del graph.input[:]
    graph.input.append(_value_info(INPUT_NAME, TensorProto.FLOAT, (g.batch, h, w, c)))
    del graph.output[:]
    for tensor, name in crossing:
        graph.node.extend(_to_library(g, tensor, name, fresh))
        graph.output.append(_value_info(name, TensorProto.FLOAT, (g.batch, *g.nhwc_shape(tensor))))


def _to_library(g: OnnxGraph, tensor: str, name: str, fresh: _Names) -> list[Any]:
    """Nodes that turn a tensor of the model into an NHWC float32 one named ``name``."""
    nodes, x = [], tensor
    if g.dtypes.get(tensor) != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [x], [y := fresh(f"{name}_float")], to=TensorProto.FLOAT))
        x = y
    if g.layouts.get(tensor) == "NCHW" and len(g.shapes[tensor]) == 4:
        nodes.append(helper.make_node("Transpose", [x], [name], perm=list(TO_NHWC)))
    else:
        nodes.append(helper.make_node("Identity", [x], [name]))
    return nodes


def _wrap_decoder(
    model: Any,
    g: OnnxGraph,
    crossing: Sequence[tuple[str, str]],
    apply_softmax: bool,
    resize_to: tuple[int, int] | None,
    n_classes: int,
) -> None:
    """Take NHWC float32 latent and skips; return NHWC probabilities at the image size and int32 masks."""
    graph, fresh = model.graph, _Names(model)
    front: list[Any] = []
    del graph.input[:]
    for tensor, name in crossing:
        graph.input.append(_value_info(name, TensorProto.FLOAT, (g.batch, *g.nhwc_shape(tensor))))
        x = name
        if g.layouts.get(tensor) == "NCHW" and len(g.shapes[tensor]) == 4:
            front.append(helper.make_node("Transpose", [x], [y := fresh(f"{name}_nchw")], perm=list(TO_NCHW)))
            x = y
        dtype = g.dtypes.get(tensor, TensorProto.FLOAT)
        op, kw = ("Cast", {"to": dtype}) if dtype != TensorProto.FLOAT else ("Identity", {})
        front.append(helper.make_node(op, [x], [tensor], **kw))
    back = _to_library(g, g.output_name, fresh("lw_scores"), fresh)
    x = back[-1].output[0]
    if apply_softmax:
        back.append(helper.make_node("Softmax", [x], [y := fresh("lw_softmax")], axis=-1))
        x = y
    if resize_to is not None:
        if _default_opset(model) < 11:
            raise LatentModelError(
                "the decoder's output is smaller than the image and the model's opset is below 11 (no "
                "bilinear Resize with half-pixel centres); convert it first: "
                "onnx.version_converter.convert_version(model, 13)."
            )
        shape, first, sizes, tail = fresh("lw_shape"), fresh("lw_batch"), fresh("lw_sizes"), fresh("lw_hwc")
        zero = fresh("lw_zero")
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([0], np.int64), zero),
                numpy_helper.from_array(np.array([*resize_to, n_classes], np.int64), tail),
            ]
        )
        back += [
            helper.make_node("Shape", [x], [shape]),
            helper.make_node("Gather", [shape, zero], [first], axis=0),
            helper.make_node("Concat", [first, tail], [sizes], axis=0),
            # tf.image.resize's bilinear (half-pixel centres, no antialias), as LatentModel resizes
            helper.make_node(
                "Resize",
                [x, "", "", sizes],
                [y := fresh("lw_resized")],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            ),
        ]
        x = y
    back.append(helper.make_node("Identity", [x], [PROBS_NAME]))
    # One graph for decode and decode_with_masks: ONNX Runtime runs every node whatever the outputs asked
    # for (onnxruntime#16483), so the argmax always runs; a few per cent of a decode, no second session.
    back.append(helper.make_node("ArgMax", [x], [argmax := fresh("lw_argmax")], axis=-1, keepdims=0))
    back.append(helper.make_node("Cast", [argmax], [MASKS_NAME], to=TensorProto.INT32))
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*front, *old, *back])
    del graph.output[:]
    h, w = resize_to or g.nhwc_shape(g.output_name)[:2]
    graph.output.append(_value_info(PROBS_NAME, TensorProto.FLOAT, (g.batch, h, w, n_classes)))
    graph.output.append(_value_info(MASKS_NAME, TensorProto.INT32, (g.batch, h, w)))


def _default_opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
