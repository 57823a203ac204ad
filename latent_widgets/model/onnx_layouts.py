"""Where an ONNX tensor keeps its channels: NCHW or NHWC, read from the graph.

ONNX declares no layout for the tensors inside a graph; the split needs
one for the latent, the skips and the output, to hand them over NHWC.
:func:`tensor_layouts` reads it from the operators: the outputs of ONNX's
channel-first operators (``Conv``, ``MaxPool``, ``BatchNormalization``, ...)
are NCHW, a ``Transpose`` permutes its input's layout, element-wise
operators keep it, and a tensor none of these decide is judged by its shape
(:func:`layout_from_shape`: the spatial axes have the image's aspect ratio).

Examples
--------
>>> nhwc((512, 3, 4), "NCHW")
(3, 4, 512)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .errors import LatentModelError

__all__ = [
    "TO_NCHW",
    "TO_NHWC",
    "input_layout",
    "layout_from_shape",
    "nhwc",
    "node_attribute",
    "tensor_layouts",
]

#: ``Transpose`` permutations from NHWC to NCHW and back.
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)

# ONNX operators whose 4-D inputs and outputs are channel-first by the standard.
_CHANNEL_FIRST = frozenset(
    [
        "AveragePool",
        "BatchNormalization",
        "Conv",
        "ConvInteger",
        "ConvTranspose",
        "DeformConv",
        "DepthToSpace",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "InstanceNormalization",
        "LpPool",
        "LRN",
        "MaxPool",
        "MaxUnpool",
        "QLinearConv",
        "SpaceToDepth",
    ]
)
# Operators whose 4-D output is laid out along the axis their ``axis`` attribute names.
_AXIS_OPS = frozenset({"Concat", "Softmax", "LogSoftmax", "Hardmax"})
# Operators that do not change values' positions (their output has their input's layout); anything else
# that is not listed above is judged by its shape.
_PRESERVING = frozenset(
    [
        "Abs",
        "Add",
        "BiasGelu",
        "Cast",
        "Celu",
        "Clip",
        "Div",
        "Dropout",
        "Elu",
        "Erf",
        "Exp",
        "FastGelu",
        "Gelu",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "LeakyRelu",
        "Log",
        "Max",
        "Mean",
        "Min",
        "Mish",
        "Mul",
        "Neg",
        "Pad",
        "Pow",
        "PRelu",
        "Reciprocal",
        "Relu",
        "Resize",
        "Selu",
        "Sigmoid",
        "Softplus",
        "Softsign",
        "Sqrt",
        "Sub",
        "Sum",
        "Tanh",
        "ThresholdedRelu",
        "Upsample",
        "Where",
    ]
)


def node_attribute(node: Any, name: str, default: Any = None) -> Any:
    """The value of a node's attribute ``name`` (``helper.get_attribute_value``), ``default`` without it.

    Examples
    --------
    >>> from onnx import helper  # doctest: +SKIP
    >>> node_attribute(helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]), "perm")  # doctest: +SKIP
    [0, 2, 3, 1]
    """
    from onnx import helper  # only ever called on a model onnx has read

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def nhwc(shape: tuple[int, ...], layout: str | None) -> tuple[int, ...]:
    """A shape without batch axis, in NHWC when the tensor is a 4-D NCHW one.

    Examples
    --------
    >>> nhwc((16, 6, 8), "NCHW"), nhwc((6, 8, 16), "NHWC")
    ((6, 8, 16), (6, 8, 16))
    """
    if layout == "NCHW" and len(shape) == 3:
        return (shape[1], shape[2], shape[0])
    return tuple(shape)


def input_layout(shape: tuple[int | None, ...], layout: str | None, name: str) -> str:
    """The image input's layout: ``layout`` checked, or read from the shape (the axis of size 1, 3 or 4).

    Examples
    --------
    >>> input_layout((1, 3, 48, 64), None, "x"), input_layout((None, 48, 64, 3), None, "x")
    ('NCHW', 'NHWC')
    """
    if layout is not None:
        up = str(layout).upper()
        if up not in ("NCHW", "NHWC"):
            raise LatentModelError(f"layout={layout!r}: give 'NCHW' (PyTorch) or 'NHWC' (TensorFlow, Keras).")
        return up
    first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
    if first != last:
        return "NCHW" if first else "NHWC"
    raise LatentModelError(
        f"cannot tell the layout of the ONNX model's input {name!r} from its shape {shape}; pass "
        "layout='NCHW' (channels first, PyTorch) or layout='NHWC' (channels last, TensorFlow)."
    )


def tensor_layouts(
    nodes: Sequence[Any],
    shapes: Mapping[str, tuple[int, ...]],
    from_input: Collection[str],
    image_name: str,
    image_layout: str,
    image_shape: tuple[int, int, int],
) -> dict[str, str]:
    """NCHW or NHWC for every 4-D tensor: from the operators, else from the shape.

    Parameters
    ----------
    nodes : sequence of onnx.NodeProto
        The graph's nodes, in topological order.
    shapes : mapping
        Every tensor's shape (batch axis included).
    from_input : collection of str
        The tensors computed from the image (not constants).
    image_name, image_layout, image_shape
        The image input: its name, layout and ``(H, W, C)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> relu = SimpleNamespace(op_type="Relu", input=["x"], output=["y"], attribute=[])  # an onnx.NodeProto's fields
    >>> tensor_layouts([relu], {"x": (1, 3, 8, 8), "y": (1, 3, 8, 8)}, {"x", "y"}, "x", "NCHW", (8, 8, 3))
    {'x': 'NCHW', 'y': 'NCHW'}
    """
    lay: dict[str, str | None] = {image_name: image_layout}
    for n in nodes:
        outs = [o for o in n.output if o and len(shapes.get(o, ())) == 4]
        if not outs:
            continue
        data = [i for i in n.input if i in from_input and len(shapes.get(i, ())) == 4]
        known = next((lay[i] for i in data if lay.get(i)), None)
        layout: str | None = None
        if n.op_type in _CHANNEL_FIRST:
            layout = "NCHW"
        elif n.op_type == "Transpose":
            perm = tuple(node_attribute(n, "perm", ()))
            src = lay.get(n.input[0])
            if src and len(perm) == 4:
                moved = "".join(src[p] for p in perm)
                layout = moved if moved in ("NCHW", "NHWC") else None
            else:
                layout = {TO_NHWC: "NHWC", TO_NCHW: "NCHW"}.get(perm)
        elif n.op_type in _AXIS_OPS:
            axis = node_attribute(n, "axis", 1)
            layout = known or {1: "NCHW", -3: "NCHW", 3: "NHWC", -1: "NHWC"}.get(axis)
        elif n.op_type in _PRESERVING:
            layout = known
        for o in outs:
            lay[o] = layout or layout_from_shape(shapes[o], image_shape, image_layout)
    return {k: v for k, v in lay.items() if v}


def layout_from_shape(shape: tuple[int, ...], image_shape: tuple[int, int, int], image_layout: str) -> str:
    """The layout whose spatial axes have the image's aspect ratio; the input's when both or neither do.

    Examples
    --------
    >>> layout_from_shape((1, 16, 6, 8), (48, 64, 3), "NHWC"), layout_from_shape((1, 6, 8, 16), (48, 64, 3), "NCHW")
    ('NCHW', 'NHWC')
    """
    h, w, _ = image_shape
    as_nchw = shape[2] * w == shape[3] * h
    as_nhwc = shape[1] * w == shape[2] * h
    if as_nchw != as_nhwc:
        return "NCHW" if as_nchw else "NHWC"
    return image_layout
