"""Keras graph surgery: walk a functional model's layer graph and cut it in two.

What :meth:`LatentModel.from_model <latent_widgets.latent_model.LatentModel.from_model>`
builds on, with the Keras 3 public API only (``keras.Model``, ``keras.Input``,
``keras.tree``; a symbolic tensor's ``_keras_history`` and a layer's
``_inbound_nodes`` are the one exception, as Keras exposes no public graph
walk). Every tensor from before the cut that a layer after the cut consumes
(U-Net skip connections, DeepLabv3+'s low-level features) becomes an extra
encoder output and an extra decoder input, in topological order (nearest the
model input first).

Examples
--------
>>> from latent_widgets.keras_graph import split_model
>>> from latent_widgets.models import segnet
>>> encoder, decoder, name = split_model(segnet(12, (48, 64, 3), width=0.125))  # doctest: +SKIP
>>> [t.name for t in decoder.inputs]  # doctest: +SKIP
['latent']
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = [
    "LATENT_LAYER",
    "LatentModelError",
    "describe_layers",
    "ends_with_softmax",
    "graph_io",
    "history",
    "require_keras_model",
    "split_model",
    "static_shape",
    "topological_nodes",
]

#: Layer name that :func:`split_model` splits at when none is given.
LATENT_LAYER = "latent"


class LatentModelError(ValueError):
    """A model or an input that :class:`~latent_widgets.latent_model.LatentModel` cannot use.

    The message says why and how to fix it.
    """


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


def topological_nodes(outputs: Sequence[Any]) -> list[Any]:
    """Nodes that produce ``outputs``, parents first (iterative DFS post-order).

    Inputs of a node are visited in argument order, which makes the order
    deterministic for a given graph.
    """
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = []
    for t in reversed(list(outputs)):
        node = history(t)[1]
        if node is not None:
            stack.append((node, False))
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
            parent = history(t)[1]
            if parent is not None and id(parent) not in seen:
                stack.append((parent, False))
    return order


def ends_with_softmax(decoder: Any) -> bool | None:
    """True if the decoder's output layer is a softmax, False if it is linear, None if unknown."""
    import keras

    op = history(decoder.outputs[0])[0]
    if isinstance(op, keras.layers.Softmax):
        return True
    act = getattr(op, "activation", None)
    if act is None:
        return None
    name = getattr(act, "__name__", "")
    if name == "softmax":
        return True
    if name == "linear":
        return False
    return None


def describe_layers(model: Any, limit: int = 12) -> str:
    """The layer names of a model, the last ``limit`` of them when there are more (for error messages)."""
    names = [layer.name for layer in model.layers]
    shown = ", ".join(repr(n) for n in names[-limit:])
    return f"{len(names)} layers, the last ones: {shown}" if len(names) > limit else shown


def split_model(model: keras.Model, latent_layer: str | None = None) -> tuple[keras.Model, keras.Model, str]:
    """Cut a functional model into an encoder and a decoder at a named layer.

    Parameters
    ----------
    model : keras.Model
        A functional (or Sequential) model with one output.
    latent_layer : str, optional
        The layer whose output is the latent; :data:`LATENT_LAYER` by default.

    Returns
    -------
    encoder : keras.Model
        The model input -> ``[latent, skip_0, ...]`` (the latent alone
        without skips).
    decoder : keras.Model
        Inputs ``"latent"``, ``"skip_0"``, ... -> the model output, re-applying
        the model's layers after the cut (shared weights, no copy).
    name : str
        The split layer's name.

    Raises
    ------
    LatentModelError
        See :meth:`latent_widgets.latent_model.LatentModel.from_model`.

    Examples
    --------
    >>> encoder, decoder, name = split_model(unet, "bottleneck_relu")  # doctest: +SKIP
    """
    import keras

    require_keras_model(model, "model")
    inputs, outputs = graph_io(model, "model")
    name = LATENT_LAYER if latent_layer is None else latent_layer
    try:
        layer = model.get_layer(name)
    except ValueError:
        close = difflib.get_close_matches(name, [layer.name for layer in model.layers], n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        default = (
            " Zoo models name their split layer 'latent'; for another model pass "
            "latent_layer=<layer name> (model.summary() lists them)."
            if latent_layer is None
            else ""
        )
        raise LatentModelError(
            f"model {model.name!r} has no layer named {name!r}.{hint}{default} Layers: {describe_layers(model)}."
        ) from None
    if len(outputs) != 1:
        raise LatentModelError(
            f"model {model.name!r} has {len(outputs)} outputs; from_model needs one output of per-pixel "
            "class scores. Build a model with just the segmentation output first."
        )
    try:
        latent = layer.output
    except (AttributeError, ValueError, RuntimeError):
        latent = None
    if latent is None or isinstance(latent, (list, tuple)):
        raise LatentModelError(
            f"layer {name!r} has several outputs or is used several times in the model, so its output is "
            "not one tensor; split at a layer with a single output that is called once."
        )

    nodes = topological_nodes(outputs)
    node_ids = {id(n) for n in nodes}
    if id(history(latent)[1]) not in node_ids:
        raise LatentModelError(
            f"layer {name!r} is not on the path from the model input to its output; split at a layer "
            "the output depends on."
        )
    # Which tensors depend on the latent (decoder side)?
    depends: set[int] = {id(latent)}
    decoder_nodes = []
    for node in nodes:
        if any(id(t) in depends for t in node.input_tensors):
            decoder_nodes.append(node)
            depends.update(id(t) for t in node.outputs)
    if id(outputs[0]) not in depends:
        raise LatentModelError(
            f"the model output does not depend on layer {name!r}, so it cannot be the latent; "
            "split at a layer between the input and the output."
        )
    if not decoder_nodes:
        raise LatentModelError(
            f"layer {name!r} is the model output; split at a layer before it (its latent must be decoded)."
        )

    # Skips: tensors from before the split consumed after it, ordered by
    # the position of their producing node (nearest the input first).
    position = {id(n): i for i, n in enumerate(nodes)}
    skip_tensors: dict[int, Any] = {}
    for node in decoder_nodes:
        for t in node.input_tensors:
            if id(t) not in depends and id(t) not in skip_tensors:
                skip_tensors[id(t)] = t
    skips = sorted(
        skip_tensors.values(),
        key=lambda t: (position.get(id(history(t)[1]), -1), history(t)[2]),
    )

    # Rebuild the layers after the split on new inputs (same layer
    # objects, hence shared weights).
    latent_in = keras.Input(shape=latent.shape[1:], dtype=latent.dtype, name=LATENT_LAYER)
    skip_ins = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"skip_{i}") for i, t in enumerate(skips)]
    mapped: dict[int, Any] = {id(latent): latent_in}
    mapped.update({id(t): s for t, s in zip(skips, skip_ins, strict=False)})
    for node in decoder_nodes:
        args, kwargs = node.arguments.fill_in(mapped)
        result = node.operation(*args, **kwargs)
        flat = keras.tree.flatten(result)
        for old, new in zip(node.outputs, flat, strict=False):
            mapped[id(old)] = new
    decoder = keras.Model(
        [latent_in, *skip_ins] if skip_ins else latent_in,
        mapped[id(outputs[0])],
        name=f"{model.name}_decoder",
    )
    encoder = keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        [latent, *skips] if skips else latent,
        name=f"{model.name}_encoder",
    )
    return encoder, decoder, name
