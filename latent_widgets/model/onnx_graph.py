"""ONNX graph surgery: find where to cut a segmentation graph, cut it, and wrap the halves.

What :meth:`LatentModel.from_onnx <latent_widgets.model.latent_model.LatentModel.from_onnx>`
builds on, with onnx's own tools (``onnx.shape_inference``,
``onnx.utils.Extractor``, ``onnx.helper``) and one ONNX Runtime run to
measure shapes that shape inference leaves open. The ONNX counterpart of
:mod:`latent_widgets.model.keras_graph`:

- :class:`OnnxGraph` reads a model: its one image input and its layout
  (NCHW or NHWC, from the input shape), the shape, the layout and the
  dependencies of every tensor.
- :meth:`OnnxGraph.skips_of` finds the skips of a cut at a named tensor:
  every tensor computed from the input before the cut that the decoder half
  consumes, in topological order (nearest the input first), as the Keras
  split does.
- :meth:`OnnxGraph.candidates` lists the tensors worth cutting at when the
  user names none (:class:`~latent_widgets.model.cuts.CandidateCut`).
- :func:`split_graph` cuts with ``onnx.utils.Extractor`` (encoder: the
  input -> ``[latent, *skips]``; decoder: ``[latent, *skips]`` -> the
  output) and wraps both halves so that they speak the library's language:
  NHWC float images in 0..1 in (normalised and transposed in the graph),
  NHWC latents and skips across the cut, NHWC probabilities at the image
  size and int32 masks out (softmax, transpose, resize, argmax in the graph).

The layout of an inner tensor (the latent, a skip, the output) is not
declared by ONNX; it is read from the graph: the outputs of ONNX's
channel-first operators (``Conv``, ``MaxPool``, ``BatchNormalization``, ...)
are NCHW, a ``Transpose`` permutes its input's layout, element-wise
operators keep it, and a tensor none of these decide is judged by its shape
(the spatial axes have the image's aspect ratio).

Examples
--------
>>> from latent_widgets.model.onnx_graph import OnnxGraph  # doctest: +SKIP
>>> g = OnnxGraph(onnx.load("unet.onnx"))  # doctest: +SKIP
>>> [c.name for c in g.candidates()]  # doctest: +SKIP
['/encoder/layer4/layer4.1/relu_1/Relu']
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cuts import CandidateCut, format_cuts
from .keras_graph import LatentModelError

try:
    import onnx
    import onnxruntime  # noqa: F401  (checked here: the halves run with it)
    from onnx import TensorProto, helper, numpy_helper
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"ONNX models need the packages onnx and onnxruntime ({_exc.name} is missing): "
        "pip install 'latent-widgets[onnx]'"
    ) from _exc

__all__ = [
    "INPUT_NAME",
    "LATENT_NAME",
    "MASKS_NAME",
    "PROBS_NAME",
    "OnnxGraph",
    "OnnxSplit",
    "split_graph",
]

#: Names of the wrapped halves' inputs and outputs (prefixed so as not to meet a name of the model).
INPUT_NAME = "lw_image"
LATENT_NAME = "lw_latent"
PROBS_NAME = "lw_probabilities"
MASKS_NAME = "lw_masks"

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
# Walking back from the output to its last "real" operator: these only move, resize or rename values.
_PASS_THROUGH = frozenset({"Cast", "Identity", "Reshape", "Resize", "Squeeze", "Transpose", "Unsqueeze", "Upsample"})
_FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16})
_TO_NCHW, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
# A feature map is a stage of the network when its strides along H and W agree to this factor (odd
# image sizes round the two differently; a 1x1 map of a non-square image has strides H and W).
_MAX_STRIDE_RATIO = 1.5


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


def _attr(node: Any, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _dims(value_info: Any) -> tuple[int | None, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def _nhwc(shape: tuple[int, ...], layout: str | None) -> tuple[int, ...]:
    """A shape without batch axis, in NHWC when the tensor is a 4-D NCHW one."""
    if layout == "NCHW" and len(shape) == 3:
        return (shape[1], shape[2], shape[0])
    return tuple(shape)


class OnnxGraph:
    """An ONNX segmentation model read for splitting: shapes, layouts and dependencies of its tensors.

    Parameters
    ----------
    model : onnx.ModelProto
        One image input (after initializers are set aside), its output(s)
        per-pixel class scores.
    layout : {"NCHW", "NHWC"}, optional
        The image input's layout. Default: from its shape (the axis of
        size 1, 3 or 4 is the channel axis).
    input_size : (H, W), optional
        Needed when the model's image size is dynamic: it is fixed to this.
    output : str, optional
        Which graph output is the segmentation, when there are several.

    Raises
    ------
    LatentModelError
        Not one image input, an undecidable layout, a dynamic image size
        without ``input_size``, an output that is not 4-D class scores.

    Examples
    --------
    >>> g = OnnxGraph(onnx.load("segnet.onnx"))  # doctest: +SKIP
    >>> g.input_layout, g.input_shape  # doctest: +SKIP
    ('NHWC', (48, 64, 3))
    """

    def __init__(
        self,
        model: Any,
        *,
        layout: str | None = None,
        input_size: tuple[int, int] | None = None,
        output: str | None = None,
    ) -> None:
        model = _copy(model)
        graph = model.graph
        initializers = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise LatentModelError(
                f"the ONNX model must take one input (the images), it takes {len(inputs)}: "
                f"{[i.name for i in inputs]}. Export the network with a single image input."
            )
        self.input_name: str = inputs[0].name
        outputs = [o.name for o in graph.output]
        if output is None:
            if len(outputs) != 1:
                raise LatentModelError(
                    f"the ONNX model has {len(outputs)} outputs {outputs}; pass output=<name> for the one of "
                    "per-pixel class scores."
                )
            output = outputs[0]
        elif output not in outputs:
            raise LatentModelError(f"output={output!r} is not an output of the ONNX model; its outputs are {outputs}.")
        self.output_name: str = output
        self.input_dtype: int = inputs[0].type.tensor_type.elem_type
        if self.input_dtype not in _FLOAT_TYPES:
            raise LatentModelError(
                f"the ONNX model's input {self.input_name!r} is of type "
                f"{TensorProto.DataType.Name(self.input_dtype)}; a float image input is needed."
            )

        shape = _dims(inputs[0])
        if shape is None or len(shape) != 4:
            raise LatentModelError(
                f"the ONNX model's input {self.input_name!r} has shape {shape}; it must be a 4-D batch of "
                "images, (N, C, H, W) or (N, H, W, C)."
            )
        self.input_layout: str = _input_layout(shape, layout, self.input_name)
        h_ax, w_ax = (2, 3) if self.input_layout == "NCHW" else (1, 2)
        c_ax = 1 if self.input_layout == "NCHW" else 3
        if input_size is not None:
            dims = inputs[0].type.tensor_type.shape.dim
            for ax, size in zip((h_ax, w_ax), input_size, strict=True):
                dims[ax].ClearField("dim_param")
                dims[ax].dim_value = int(size)
            shape = _dims(inputs[0])
        if shape is None or shape[h_ax] is None or shape[w_ax] is None or shape[c_ax] is None:
            raise LatentModelError(
                f"the ONNX model's input {self.input_name!r} has a dynamic image size {shape}; pass "
                "input_size=(H, W), the size of the images you will explore, or export with a fixed size."
            )
        self.input_shape: tuple[int, int, int] = (int(shape[h_ax]), int(shape[w_ax]), int(shape[c_ax]))
        self.batch: int | None = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.model = model

        try:
            self.inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:  # inference is a help, not a need: the probe run measures what it misses
            self.inferred = _copy(model)
        self.nodes = list(model.graph.node)
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.initializers = initializers
        self._types_and_shapes()
        self._dependencies()
        self._layouts()

        out = self.shapes.get(self.output_name)
        if out is None or len(out) != 4:
            raise LatentModelError(
                f"the ONNX model's output {self.output_name!r} has shape {out}; it must be per-pixel class "
                "scores, (N, n_classes, H, W) or (N, H, W, n_classes)."
            )
        self.output_layout: str = self.layouts.get(self.output_name) or self.input_layout

    # ------------------------------------------------------------------ reading the graph

    def _types_and_shapes(self) -> None:
        """Every tensor's element type and shape: shape inference, then one probe run for the rest."""
        g = self.inferred.graph
        self.dtypes: dict[str, int] = {}
        shapes: dict[str, tuple[int | None, ...] | None] = {}
        for vi in [*g.input, *g.value_info, *g.output]:
            self.dtypes[vi.name] = vi.type.tensor_type.elem_type
            shapes[vi.name] = _dims(vi)
        for t in g.initializer:
            self.dtypes[t.name] = t.data_type
            shapes[t.name] = tuple(t.dims)
        # The batch axis is free (or fixed by the model); every other axis must be known.
        missing = [
            o
            for n in self.nodes
            for o in n.output
            if o and (shapes.get(o) is None or any(d is None for d in (shapes[o] or ())[1:]))
        ]
        self.probe_output: np.ndarray | None = None
        measured = self._probe([*missing, self.output_name])
        for name, arr in measured.items():
            shapes[name] = tuple(arr.shape)
            self.dtypes[name] = helper.np_dtype_to_tensor_dtype(arr.dtype)
        self.probe_output = measured.get(self.output_name)
        self.shapes: dict[str, tuple[int, ...]] = {k: tuple(d for d in v) for k, v in shapes.items() if v is not None}  # type: ignore[misc]

    def _probe(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the whole model once on random images, returning the tensors ``names``."""
        import onnxruntime as ort

        probe = _copy(self.model)
        known = {o.name for o in probe.graph.output}
        for name in dict.fromkeys(names):
            if name not in known:
                probe.graph.output.append(helper.make_empty_tensor_value_info(name))
        h, w, c = self.input_shape
        n = self.batch or 1
        shape = (n, c, h, w) if self.input_layout == "NCHW" else (n, h, w, c)
        x = np.random.default_rng(0).random(shape).astype(helper.tensor_dtype_to_np_dtype(self.input_dtype))
        try:
            sess = ort.InferenceSession(
                probe.SerializeToString(), session_options(1), providers=["CPUExecutionProvider"]
            )
            values = sess.run(list(dict.fromkeys(names)), {self.input_name: x})
        except Exception as exc:
            raise LatentModelError(
                f"ONNX Runtime cannot run the model on a {shape} input: {type(exc).__name__}: {str(exc)[:400]}"
            ) from exc
        return dict(zip(dict.fromkeys(names), values, strict=True))

    def _dependencies(self) -> None:
        """Which tensors are computed from the image (not constants), and which the output depends on."""
        self.from_input: set[str] = {self.input_name}
        for n in self.nodes:
            if any(i in self.from_input for i in n.input if i):
                self.from_input.update(o for o in n.output if o)
        self.to_output: set[str] = {self.output_name}
        for n in reversed(self.nodes):
            if any(o in self.to_output for o in n.output):
                self.to_output.update(i for i in n.input if i)

    def _layouts(self) -> None:
        """NCHW or NHWC for every 4-D tensor: from the operators, else from the shape."""
        lay: dict[str, str | None] = {self.input_name: self.input_layout}
        for n in self.nodes:
            outs = [o for o in n.output if o and len(self.shapes.get(o, ())) == 4]
            if not outs:
                continue
            data = [i for i in n.input if i in self.from_input and len(self.shapes.get(i, ())) == 4]
            known = next((lay[i] for i in data if lay.get(i)), None)
            layout: str | None = None
            if n.op_type in _CHANNEL_FIRST:
                layout = "NCHW"
            elif n.op_type == "Transpose":
                perm = tuple(_attr(n, "perm", ()))
                src = lay.get(n.input[0])
                if src and len(perm) == 4:
                    moved = "".join(src[p] for p in perm)
                    layout = moved if moved in ("NCHW", "NHWC") else None
                else:
                    layout = {_TO_NHWC: "NHWC", _TO_NCHW: "NCHW"}.get(perm)
            elif n.op_type in _AXIS_OPS:
                axis = _attr(n, "axis", 1)
                layout = known or {1: "NCHW", -3: "NCHW", 3: "NHWC", -1: "NHWC"}.get(axis)
            elif n.op_type in _PRESERVING:
                layout = known
            for o in outs:
                lay[o] = layout or self._layout_from_shape(self.shapes[o])
        self.layouts: dict[str, str] = {k: v for k, v in lay.items() if v}

    def _layout_from_shape(self, shape: tuple[int, ...]) -> str:
        """The layout whose spatial axes have the image's aspect ratio; the input's when both or neither do."""
        h, w, _ = self.input_shape
        nchw = shape[2] * w == shape[3] * h
        nhwc = shape[1] * w == shape[2] * h
        if nchw != nhwc:
            return "NCHW" if nchw else "NHWC"
        return self.input_layout

    def nhwc_shape(self, name: str) -> tuple[int, ...]:
        """A tensor's shape without the batch axis, NHWC for a 4-D one."""
        return _nhwc(tuple(self.shapes[name][1:]), self.layouts.get(name))

    def _spatial(self, name: str) -> int | None:
        """H * W of a 4-D float feature map with the image's aspect ratio (to rounding), else None.

        A map whose axes are scaled unevenly (an upsampling half done, a
        1 x W strip) is not a stage of the network, whatever its size.
        """
        shape = self.shapes.get(name)
        if shape is None or len(shape) != 4 or self.dtypes.get(name) not in _FLOAT_TYPES:
            return None
        h, w, _ = (int(d) for d in self.nhwc_shape(name))
        if h < 1 or w < 1:
            return None
        stride_h, stride_w = self.input_shape[0] / h, self.input_shape[1] / w
        if max(stride_h, stride_w) > _MAX_STRIDE_RATIO * min(stride_h, stride_w):
            return None
        return h * w

    # ------------------------------------------------------------------ cuts

    def check_tensor(self, name: str) -> None:
        """Raise :class:`LatentModelError` unless ``name`` is a tensor computed inside the graph."""
        if name in self.producer:
            return
        if name == self.input_name:
            raise LatentModelError(f"{name!r} is the model's input; the latent must be a tensor computed from it.")
        names = list(self.producer)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if not close:  # exporters' names are long paths: match on the last part too
            tail = name.rsplit("/", 1)[-1]
            close = [n for n in names if tail and tail in n][:3]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise LatentModelError(
            f"the ONNX model has no tensor named {name!r}.{hint} from_onnx(path) without latent= lists the "
            "tensors worth splitting at; netron (netron.app) shows every tensor's name."
        )

    def skips_of(self, latent: str) -> tuple[list[str], set[str]]:
        """The skips of a cut at ``latent`` (nearest the input first) and the tensors that depend on it.

        Raises
        ------
        LatentModelError
            The output does not depend on ``latent``, or it is the output.
        """
        self.check_tensor(latent)
        if latent == self.output_name:
            raise LatentModelError(
                f"{latent!r} is the model output; split at a tensor before it (its latent must be decoded)."
            )
        depends = {latent}
        consumed: dict[str, None] = {}
        for n in self.nodes[self.producer[latent] + 1 :]:
            inputs = [i for i in n.input if i]
            if any(i in depends for i in inputs):
                depends.update(o for o in n.output if o)
                consumed.update(dict.fromkeys(i for i in inputs if i not in depends and i in self.from_input))
        if self.output_name not in depends:
            raise LatentModelError(
                f"the model output does not depend on {latent!r}, so it cannot be the latent; split at a "
                "tensor between the input and the output."
            )
        skips = sorted(consumed, key=lambda t: self.producer.get(t, -1))
        return skips, depends

    def candidates(self) -> list[CandidateCut]:
        """Tensors on the main path at the lowest spatial resolution: where to split.

        The lowest resolution is that of the 4-D float tensors between the
        input and the output, global 1x1 features aside (squeeze-excitation,
        ASPP image pooling: side branches). A tensor there is a candidate
        when every path from the input to the output at that resolution
        passes through it: a cut there has no skip at the same or a lower
        resolution, only the higher-resolution features of skip connections
        (a U-Net's, DeepLabv3+'s low-level ones). Fewest skips first, then
        nearest the output.

        Examples
        --------
        >>> [(c.name, c.n_skips) for c in OnnxGraph(onnx.load("deeplab.onnx")).candidates()]  # doctest: +SKIP
        [('.../block4_out_1/Relu:0', 1), ('.../aspp_concat_1/concat:0', 1), ('.../latent_1/Relu:0', 1)]
        """
        relevant = [o for n in self.nodes for o in n.output if o in self.from_input and o in self.to_output]
        spatial = {t: s for t in relevant if (s := self._spatial(t)) is not None}
        pixels = self.input_shape[0] * self.input_shape[1]
        sizes = [s for s in spatial.values() if s > 1] or [s for s in spatial.values()]
        if not sizes or pixels == 1:
            return []
        lowest = min(sizes)
        found = []
        for t in relevant:
            if spatial.get(t) != lowest or t == self.output_name:
                continue
            skips, _ = self.skips_of(t)
            if self.input_name in skips:
                continue
            if all((self._spatial(s) or 0) > lowest for s in skips):
                found.append(
                    (
                        len(skips),
                        -self.producer[t],
                        CandidateCut(t, self.nhwc_shape(t), len(skips), self.nodes[self.producer[t]].op_type),
                    )
                )
        # As the Keras path orders them: fewest skips first, then nearest the output.
        return [c for *_, c in sorted(found, key=lambda f: f[:2])]

    def describe_candidates(self) -> str:
        """The candidate list as text for an error message (or why there is none)."""
        found = self.candidates()
        if not found:
            return (
                "  (no tensor at the lowest spatial resolution is on every path from the input to the output; "
                "pick one in netron)"
            )
        return format_cuts(found)

    def ends_with_softmax(self) -> bool:
        """Whether the output is a softmax, possibly moved or resized after it (a ``Softmax`` found walking back)."""
        name = self.output_name
        while name in self.producer:
            node = self.nodes[self.producer[name]]
            if node.op_type == "Softmax":
                return True
            if node.op_type not in _PASS_THROUGH:
                return False
            name = node.input[0]
        return False


def _input_layout(shape: tuple[int | None, ...], layout: str | None, name: str) -> str:
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


def session_options(threads: int) -> Any:
    """ONNX Runtime settings for the library's sessions: ``threads`` intra-op threads, no spinning.

    Idle pool threads do not spin (they would keep the cores of a notebook
    kernel busy between two slider moves), and one inter-op thread: the
    graph runs sequentially, its operators in parallel.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _copy(model: Any) -> Any:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


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
    bad = [s for s in skips if g.dtypes.get(s) not in _FLOAT_TYPES]
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

    inferred = _copy(g.inferred)
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
        nodes.append(helper.make_node("Transpose", [x], [y := fresh("lw_image_nchw")], perm=list(_TO_NCHW)))
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
        nodes.append(helper.make_node("Transpose", [x], [name], perm=list(_TO_NHWC)))
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
            front.append(helper.make_node("Transpose", [x], [y := fresh(f"{name}_nchw")], perm=list(_TO_NCHW)))
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
