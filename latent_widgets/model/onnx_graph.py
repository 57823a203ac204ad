"""ONNX graph reading: a segmentation graph's shapes, layouts and dependencies, and where to cut it.

What :meth:`LatentModel.from_onnx <latent_widgets.model.latent_model.LatentModel.from_onnx>`
builds on, with onnx's own tools (``onnx.shape_inference``, ``onnx.helper``)
and one ONNX Runtime run to measure shapes that shape inference leaves open.
The ONNX counterpart of :mod:`latent_widgets.model.keras_graph`; the cut
itself is :mod:`latent_widgets.model.onnx_split`:

- :class:`OnnxGraph` reads a model: its one image input and its layout
  (NCHW or NHWC, from the input shape), the shape, the layout and the
  dependencies of every tensor.
- :meth:`OnnxGraph.skips_of` finds the skips of a cut at a named tensor:
  every tensor computed from the input before the cut that the decoder half
  consumes, in topological order (nearest the input first), as the Keras
  split does.
- :meth:`OnnxGraph.candidates` lists the tensors worth cutting at when the
  user names none (:class:`~latent_widgets.model.cuts.CandidateCut`).

The layout of an inner tensor (the latent, a skip, the output) is not
declared by ONNX; :mod:`latent_widgets.model.onnx_layouts` reads it from the
graph.

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
from typing import Any

import numpy as np

from .cuts import CandidateCut, format_cuts
from .errors import LatentModelError
from .onnx_layouts import input_layout, nhwc, tensor_layouts
from .onnx_runtime import session_options

try:
    import onnx
    import onnxruntime  # noqa: F401  (checked here: the halves run with it)
    from onnx import TensorProto, helper
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"ONNX models need the packages onnx and onnxruntime ({_exc.name} is missing): "
        "pip install 'latent-widgets[onnx]'"
    ) from _exc

__all__ = ["FLOAT_TYPES", "OnnxGraph", "copy_model"]

# Walking back from the output to its last "real" operator: these only move, resize or rename values.
_PASS_THROUGH = frozenset({"Cast", "Identity", "Reshape", "Resize", "Squeeze", "Transpose", "Unsqueeze", "Upsample"})
#: The float element types: an image input, a skip across the cut, a stage of the network.
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16})
# A feature map is a stage of the network when its strides along H and W agree to this factor (odd
# image sizes round the two differently; a 1x1 map of a non-square image has strides H and W).
_MAX_STRIDE_RATIO = 1.5


def _dims(value_info: Any) -> tuple[int | None, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def copy_model(model: Any) -> Any:
    """A deep copy of an ``onnx.ModelProto`` (the library edits copies, never the caller's model).

    Examples
    --------
    >>> copy_model(onnx.ModelProto()) == onnx.ModelProto()
    True
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


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
        model = copy_model(model)
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
        if self.input_dtype not in FLOAT_TYPES:
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
        self.input_layout: str = input_layout(shape, layout, self.input_name)
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
            self.inferred = copy_model(model)
        self.nodes = list(model.graph.node)
        self.producer: dict[str, int] = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.initializers = initializers
        self._types_and_shapes()
        self._dependencies()
        self.layouts: dict[str, str] = tensor_layouts(
            self.nodes, self.shapes, self.from_input, self.input_name, self.input_layout, self.input_shape
        )

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

        probe = copy_model(self.model)
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

    def nhwc_shape(self, name: str) -> tuple[int, ...]:
        """A tensor's shape without the batch axis, NHWC for a 4-D one."""
        return nhwc(tuple(self.shapes[name][1:]), self.layouts.get(name))

    def _spatial(self, name: str) -> int | None:
        """H * W of a 4-D float feature map with the image's aspect ratio (to rounding), else None.

        A map whose axes are scaled unevenly (an upsampling half done, a
        1 x W strip) is not a stage of the network, whatever its size.
        """
        shape = self.shapes.get(name)
        if shape is None or len(shape) != 4 or self.dtypes.get(name) not in FLOAT_TYPES:
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
