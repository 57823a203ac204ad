"""Keras graph walking: a functional model's layer graph, nested models seen through.

What the cut (:mod:`latent_widgets.model.keras_cut`) and
:class:`~latent_widgets.model.latent_model.LatentModel` build on, with the
Keras 3 public API only (``keras.Model``, ``keras.Input``, ``keras.tree``; a
symbolic tensor's ``_keras_history`` and a layer's ``_inbound_nodes`` are the
one exception, as Keras exposes no public graph walk): the nodes of a model
in topological order (:func:`topological_nodes`), what produced a tensor
(:func:`history`), the paths of every layer (:func:`layer_paths`), and
whether a decoder ends with a softmax (:func:`ends_with_softmax`).

Nested models
-------------
A functional or Sequential model used as a layer (a ``keras.applications``
backbone, a ``down_stack`` with several outputs, a keras-hub backbone) is
seen through: a layer inside it is named by its *path*, the nested models'
names and its own joined by ``/`` (``"down_stack/block_16_project"``), or
by its bare name when no other layer anywhere in the model has it. To cut
inside a nested model, :func:`inline_nested` re-calls that model's layers
(the same layer objects, so the same weights) on the outer graph's tensors,
which makes every tensor inside it visible to the cut; nested models that
do not hold the cut stay whole, one layer each. A model whose class defines
its own ``call`` is not seen through (its graph may not be what it
computes). An explicit ``training=`` on a nested model's call is not kept by
the cut; :class:`~latent_widgets.model.latent_model.LatentModel` always runs
with ``training=False``.

Examples
--------
>>> from latent_widgets.model.keras_graph import layer_paths
>>> layer_paths(unet)[:3]  # doctest: +SKIP
['down_stack', 'down_stack/Conv1', 'down_stack/bn_Conv1']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import LatentModelError

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "InlinedGraph",
    "describe_layers",
    "ends_with_softmax",
    "graph_io",
    "history",
    "inlinable_inputs",
    "inline_around",
    "inline_nested",
    "is_graph_model",
    "layer_paths",
    "nested_layer_names",
    "require_keras_model",
    "static_shape",
    "topological_nodes",
    "walk_nodes",
]

# Layers that move or resample per-pixel values without mixing the classes:
# ends_with_softmax looks through them to the layer that made the scores.
_PASS_THROUGH = (
    "Resizing",
    "UpSampling2D",
    "Reshape",
    "Permute",
    "Cropping2D",
    "Dropout",
    "SpatialDropout2D",
    "GaussianDropout",
    "GaussianNoise",
    "Identity",
)


def require_keras_model(obj: Any, what: str) -> None:
    """Raise :class:`LatentModelError` unless ``obj`` is a Keras 3 model (``what`` names it)."""
    import keras

    if not isinstance(obj, keras.Model):
        raise LatentModelError(
            f"{what} must be a Keras 3 model (keras.Model), got {type(obj).__module__}.{type(obj).__qualname__}. "
            "Load a saved network with LatentModel.load('model.keras') or keras.saving.load_model; "
            "models from tf.keras 2 / PyTorch must be converted to Keras 3 first."
        )


def graph_io(model: Any, what: str) -> tuple[list[Any], list[Any]]:
    """The symbolic inputs and outputs of a functional or Sequential model."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError, TypeError):
        inputs = outputs = []
    if not inputs or not outputs:
        raise LatentModelError(
            f"{what} {model.name!r} ({type(model).__name__}) has no layer graph: it is a subclassed "
            "or unbuilt model. Build it with the functional API (keras.Input ... keras.Model(inputs, "
            "outputs)), or pass its encoder and decoder yourself: LatentModel(encoder, decoder)."
        )
    return inputs, outputs


def static_shape(tensor: Any, what: str, fix: str) -> tuple[int, ...]:
    """A symbolic tensor's shape without the batch axis; an error naming ``what`` and ``fix`` if not static."""
    shape = tuple(tensor.shape[1:])
    if any(d is None for d in shape):
        raise LatentModelError(f"{what} has a dynamic shape {shape}; {fix}")
    return tuple(int(d) for d in shape)


def history(tensor: Any) -> tuple[Any, Any, int]:
    """(operation, node, tensor_index) that produced a symbolic tensor."""
    op, node_index, tensor_index = tensor._keras_history
    node = op._inbound_nodes[node_index] if op is not None else None
    return op, node, tensor_index


def topological_nodes(outputs: Sequence[Any], inputs: Sequence[Any] = ()) -> list[Any]:
    """Nodes that produce ``outputs``, parents first (iterative DFS post-order).

    The walk stops at ``inputs`` (their producers are left out). Inputs of a
    node are visited in argument order, which makes the order deterministic
    for a given graph.
    """
    stop = {id(t) for t in inputs}
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = []

    def push(t: Any) -> None:
        node = history(t)[1]
        if id(t) not in stop and node is not None and id(node) not in seen:
            stack.append((node, False))

    for t in reversed(list(outputs)):
        push(t)
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for t in reversed(node.input_tensors):
            push(t)
    return order


# ----------------------------------------------------------------------------
# nested models


def is_graph_model(op: Any) -> bool:
    """True for a functional or Sequential model whose call runs its own layer graph (one the split sees through).

    Examples
    --------
    >>> is_graph_model(unet.get_layer("down_stack")), is_graph_model(unet.get_layer("conv2d"))  # doctest: +SKIP
    (True, False)
    """
    if not _is_model(op):
        return False
    # The class that defines call must be Keras's own (Functional, Sequential):
    # a subclass with its own call may compute something else than its graph.
    owner = next((c for c in type(op).__mro__ if "call" in vars(c)), None)
    if owner is None or not owner.__module__.startswith("keras."):
        return False
    try:
        return bool(list(op.inputs)) and bool(list(op.outputs))
    except (AttributeError, ValueError, TypeError):
        return False


def inlinable_inputs(node: Any) -> list[Any] | None:
    """The outer tensors a nested model's call (``node``) feeds to its inputs, or None if it cannot be inlined.

    Examples
    --------
    >>> [inlinable_inputs(n) is not None for n in topological_nodes(unet.outputs, unet.inputs)][:2]  # doctest: +SKIP
    [True, False]
    """
    import keras

    op = node.operation
    if not is_graph_model(op):
        return None
    args, kwargs = node.arguments.args, node.arguments.kwargs
    # training= is dropped (see the module docstring); a mask or another argument keeps the call whole.
    if len(args) != 1 or set(kwargs) - {"training", "mask"} or kwargs.get("mask") is not None:
        return None
    outer, inner = keras.tree.flatten(args[0]), list(op.inputs)
    if len(outer) != len(inner):
        return None
    for o, i in zip(outer, inner, strict=True):
        # A Functional call casts dtypes and adjusts ranks; leave such calls whole.
        if not keras.backend.is_keras_tensor(o) or o.dtype != i.dtype or len(o.shape) != len(i.shape):
            return None
    return outer


def nested_layer_names(op: Any) -> set[str]:
    """Names of the layers inside a model, at any depth (empty for a layer).

    Examples
    --------
    >>> "block_16_project" in nested_layer_names(unet.get_layer("down_stack"))  # doctest: +SKIP
    True
    """
    names: set[str] = set()
    for layer in getattr(op, "layers", ()) if _is_model(op) else ():
        names |= {layer.name} | nested_layer_names(layer)
    return names


def _is_model(op: Any) -> bool:
    import keras

    return isinstance(op, keras.Model)


def walk_nodes(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, node) of every node in ``model``, nested graph models' nodes included (after their call).

    Examples
    --------
    >>> [path for path, _ in walk_nodes(unet)][:2]  # doctest: +SKIP
    ['down_stack', 'down_stack/Conv1']
    """
    for node in topological_nodes(model.outputs, model.inputs):
        path = prefix + node.operation.name
        yield path, node
        if inlinable_inputs(node) is not None:
            yield from walk_nodes(node.operation, path + "/")


def layer_paths(model: keras.Model) -> list[str]:
    """The path of every layer call in a model, nested models' layers included.

    A layer inside nested models is named by their names and its own joined
    by ``/``; a nested model's own path stands for its outputs. A layer
    called twice appears twice.

    Examples
    --------
    >>> layer_paths(unet)[:3]  # doctest: +SKIP
    ['down_stack', 'down_stack/Conv1', 'down_stack/bn_Conv1']
    """
    require_keras_model(model, "model")
    graph_io(model, "model")
    return [path for path, _ in walk_nodes(model)]


class InlinedGraph(NamedTuple):
    """A model's graph with some of its nested models inlined (:func:`inline_nested`).

    Examples
    --------
    >>> graph = inline_around(unet, "down_stack/block_16_project")  # doctest: +SKIP
    >>> "down_stack/block_16_project" in {path for path, _ in graph.made}  # doctest: +SKIP
    True
    """

    inputs: list[Any]
    outputs: list[Any]
    #: The nodes on the way from the inputs to the outputs, parents first.
    nodes: list[Any]
    #: (path, node) of every node made or kept, also those the outputs do not depend on.
    made: list[tuple[str, Any]]


def inline_nested(model: Any, expand: Callable[[str], bool]) -> InlinedGraph:
    """The model's graph with the nested models whose path ``expand`` accepts replaced by their layers.

    Their layers are re-called on the outer graph's tensors (the same layer
    objects: shared weights); a node whose inputs are unchanged is kept.

    Examples
    --------
    >>> everything = inline_nested(unet, lambda path: True)  # every nested model seen through  # doctest: +SKIP
    """
    import keras

    inputs, outputs = graph_io(model, "model")
    made: list[tuple[str, Any]] = []

    def run(fn: Any, prefix: str, mapped: dict[int, Any]) -> None:
        for node in topological_nodes(fn.outputs, fn.inputs):
            op = node.operation
            path = prefix + op.name
            outer = inlinable_inputs(node) if expand(path) else None
            if outer is not None:
                inner = {id(i): mapped[id(o)] for i, o in zip(op.inputs, outer, strict=True)}
                run(op, path + "/", inner)
                new = [inner[id(t)] for t in op.outputs]
            elif all(mapped.get(id(t)) is t for t in node.input_tensors):
                new = list(node.outputs)
                made.append((path, node))
            else:
                args, kwargs = node.arguments.fill_in(mapped)
                new = keras.tree.flatten(op(*args, **kwargs))
                made.append((path, history(new[0])[1]))
            mapped.update({id(old): t for old, t in zip(node.outputs, new, strict=True)})

    mapped = {id(t): t for t in inputs}
    run(model, "", mapped)
    flat_outputs = [mapped[id(t)] for t in outputs]
    return InlinedGraph(inputs, flat_outputs, topological_nodes(flat_outputs, inputs), made)


def inline_around(model: Any, path: str) -> InlinedGraph:
    """The graph with exactly the nested models that hold ``path`` inlined (the others stay whole).

    Examples
    --------
    >>> graph = inline_around(unet, "down_stack/block_16_project")  # doctest: +SKIP
    """
    return inline_nested(model, lambda nested: path.startswith(nested + "/"))


# ----------------------------------------------------------------------------
# what the decoder outputs


def ends_with_softmax(decoder: Any) -> bool | None:
    """True if the decoder's scores come from a softmax, False if from a linear layer (logits), None if unknown.

    Looks through layers that only move or resample values (resizing,
    upsampling, reshaping, cropping, dropout) and into nested models, to the
    layer that computed the scores: keras-hub segmenters end with a linear
    convolution and a ``Resizing`` (logits).
    """
    import keras

    passing = tuple(getattr(keras.layers, name) for name in _PASS_THROUGH if hasattr(keras.layers, name))
    t = decoder.outputs[0]
    while True:
        op, node, index = history(t)
        if is_graph_model(op):
            t = list(op.outputs)[index]
            continue
        if isinstance(op, keras.layers.Softmax):
            return True
        name = getattr(getattr(op, "activation", None), "__name__", None)
        if name == "softmax":
            return True
        if name == "linear" and not isinstance(op, keras.layers.Activation):
            return False
        if (isinstance(op, passing) or name == "linear") and len(node.input_tensors) == 1:
            t = node.input_tensors[0]
            continue
        return None


def describe_layers(model: Any, limit: int = 12) -> str:
    """The layer names of a model, the last ``limit`` of them when there are more (for error messages)."""
    names = [layer.name for layer in model.layers]
    shown = ", ".join(repr(n) for n in names[-limit:])
    return f"{len(names)} layers, the last ones: {shown}" if len(names) > limit else shown
