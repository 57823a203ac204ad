"""Keras graph surgery: cut a functional model in two at a named layer, and find where to cut.

What :meth:`LatentModel.from_model <latent_widgets.model.latent_model.LatentModel.from_model>`
builds on, walking the layer graph with :mod:`latent_widgets.model.keras_graph`
(nested models seen through, a layer inside one named by its path). Every
tensor from before the cut that a layer after the cut consumes (U-Net skip
connections, DeepLabv3+'s low-level features) becomes an extra encoder
output and an extra decoder input, in topological order (nearest the model
input first): :func:`split_model`.

Finding the cut
---------------
:func:`candidate_cuts` lists the layers a person would split at: those on
the model's *main path* at its lowest spatial resolution, with the number of
skips each cut makes. The main path runs from the output back to the input
and, where layers merge (a concatenation, a residual sum), follows the
input with the most computation behind it (weights times output pixels of
every layer it depends on): through the U-Net's bottleneck, not its skip
connections; through DeepLab's atrous branches, not the image-pooling one.

Examples
--------
>>> from latent_widgets.model.keras_cut import candidate_cuts, split_model
>>> from latent_widgets.model.zoo import segnet
>>> encoder, decoder, name = split_model(segnet(12, (48, 64, 3), width=0.125))  # doctest: +SKIP
>>> [t.name for t in decoder.inputs]  # doctest: +SKIP
['latent']
>>> candidate_cuts(unet)[0]  # doctest: +SKIP
CandidateCut(name='down_stack/block_16_project', shape=(2, 2, 320), n_skips=4, op='Conv2D')
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from .cuts import CandidateCut
from .errors import LatentModelError
from .keras_graph import (
    InlinedGraph,
    describe_layers,
    graph_io,
    history,
    inlinable_inputs,
    inline_around,
    inline_nested,
    is_graph_model,
    layer_paths,
    nested_layer_names,
    require_keras_model,
    walk_nodes,
)

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["LATENT_LAYER", "candidate_cuts", "split_model"]

#: Layer name that :func:`split_model` splits at when none is given.
LATENT_LAYER = "latent"

# Candidates shown in an error message.
_SHOWN_CANDIDATES = 8


def _resolve(model: Any, name: str, default: bool) -> str:
    """The path that ``name`` (a path, or a bare name no other layer has) stands for."""
    paths = list(dict.fromkeys(layer_paths(model)))
    if name in paths:
        return name
    bare = [p for p in paths if "/" not in name and p.rsplit("/", 1)[-1] == name]
    if len(bare) == 1:
        return bare[0]
    if bare:
        raise LatentModelError(
            f"{len(bare)} layers in model {model.name!r} are named {name!r}, in different nested models: "
            f"{', '.join(map(repr, bare))}; pass one of these paths as latent_layer."
        )
    if name in {history(t)[0].name for t in model.inputs}:
        raise LatentModelError(f"{name!r} is the model's input layer; split at a layer after it.")
    for path, node in walk_nodes(model):
        if inlinable_inputs(node) is None and name.rsplit("/", 1)[-1] in nested_layer_names(node.operation):
            raise LatentModelError(
                f"layer {name!r} is inside {path!r}, a nested model the split cannot look into (its class "
                "defines its own call, or it is called with a mask or other arguments); split at "
                f"{path!r} itself or at a layer around it."
            )
    close = difflib.get_close_matches(name, paths + sorted({p.rsplit("/", 1)[-1] for p in paths}), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    if default:
        hint += " Zoo models name their split layer 'latent'; for another model pass latent_layer=<layer name>."
        hint += _candidates_text(model)
    nested = (
        " Layers inside nested models are named by path ('backbone/conv1') or by their bare name when it is unique."
        if any("/" in p for p in paths)
        else ""
    )
    raise LatentModelError(
        f"model {model.name!r} has no layer named {name!r}.{hint} Layers: {describe_layers(model)}.{nested}"
    )


def _latent_of(graph: InlinedGraph, path: str) -> Any:
    """The one tensor that the layer (or whole nested model) at ``path`` outputs in ``graph``."""
    nodes = [node for p, node in graph.made if p == path]
    if len(nodes) != 1:
        raise LatentModelError(
            f"layer {path!r} is called {len(nodes)} times in the model, so its output is not one tensor; "
            "split at a layer that is called once."
        )
    node = nodes[0]
    if len(node.outputs) != 1:
        op = node.operation
        if is_graph_model(op):
            inner = ", ".join(repr(f"{path}/{history(t)[0].name}") for t in op.outputs)
            raise LatentModelError(
                f"layer {path!r} is a nested model with {len(node.outputs)} outputs, so its output is not one "
                f"tensor; split at one of them ({inner}) or at another layer inside it."
            )
        raise LatentModelError(
            f"layer {path!r} has {len(node.outputs)} outputs, so its output is not one tensor; split at a "
            "layer with a single output."
        )
    return node.outputs[0]


def _plan(graph: InlinedGraph, latent: Any, path: str) -> tuple[list[Any], list[Any]]:
    """The decoder's nodes (those that depend on ``latent``) and the skips, nearest the input first."""
    if latent is graph.outputs[0]:
        raise LatentModelError(
            f"layer {path!r} is the model output; split at a layer before it (its latent must be decoded)."
        )
    depends: set[int] = {id(latent)}
    decoder_nodes = []
    for node in graph.nodes:
        if any(id(t) in depends for t in node.input_tensors):
            decoder_nodes.append(node)
            depends.update(id(t) for t in node.outputs)
    if id(graph.outputs[0]) not in depends:
        raise LatentModelError(
            f"the model output does not depend on layer {path!r} (nothing on the way to the output uses it), "
            "so it cannot be the latent; split at a layer between the input and the output."
        )
    # Skips: tensors from before the split consumed after it, ordered by
    # the position of their producing node (nearest the input first).
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    skip_tensors: dict[int, Any] = {}
    for node in decoder_nodes:
        for t in node.input_tensors:
            if id(t) not in depends and id(t) not in skip_tensors:
                skip_tensors[id(t)] = t
    skips = sorted(
        skip_tensors.values(),
        key=lambda t: (position.get(id(history(t)[1]), -1), history(t)[2]),
    )
    return decoder_nodes, skips


def _one_output(model: Any) -> list[Any]:
    """The inputs of a Keras model with a graph and one output; a LatentModelError otherwise."""
    require_keras_model(model, "model")
    inputs, outputs = graph_io(model, "model")
    if len(outputs) != 1:
        raise LatentModelError(
            f"model {model.name!r} has {len(outputs)} outputs; from_model needs one output of per-pixel "
            "class scores. Build a model with just the segmentation output first."
        )
    return inputs


def split_model(model: keras.Model, latent_layer: str | None = None) -> tuple[keras.Model, keras.Model, str]:
    """Cut a functional model into an encoder and a decoder at a named layer.

    Parameters
    ----------
    model : keras.Model
        A functional (or Sequential) model with one output.
    latent_layer : str, optional
        The layer whose output is the latent: its name, or its path through
        nested models (``"down_stack/block_16_project"``); a bare name works
        when no other layer in the model has it. A nested model's name
        stands for its output. :data:`LATENT_LAYER` by default.

    Returns
    -------
    encoder : keras.Model
        The model input -> ``[latent, skip_0, ...]`` (the latent alone
        without skips).
    decoder : keras.Model
        Inputs ``"latent"``, ``"skip_0"``, ... -> the model output, re-applying
        the model's layers after the cut (shared weights, no copy).
    name : str
        The split layer's path.

    Raises
    ------
    LatentModelError
        See :meth:`latent_widgets.model.latent_model.LatentModel.from_model`.

    Examples
    --------
    >>> encoder, decoder, name = split_model(unet, "bottleneck_relu")  # doctest: +SKIP
    >>> encoder, decoder, name = split_model(tutorial_unet, "block_16_project")  # doctest: +SKIP
    >>> name  # doctest: +SKIP
    'down_stack/block_16_project'
    """
    import keras

    inputs = _one_output(model)
    path = _resolve(model, LATENT_LAYER if latent_layer is None else latent_layer, default=latent_layer is None)
    graph = inline_around(model, path)
    latent = _latent_of(graph, path)
    decoder_nodes, skips = _plan(graph, latent, path)

    # Rebuild the layers after the split on new inputs (same layer
    # objects, hence shared weights).
    latent_in = keras.Input(shape=latent.shape[1:], dtype=latent.dtype, name=LATENT_LAYER)
    skip_ins = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"skip_{i}") for i, t in enumerate(skips)]
    mapped: dict[int, Any] = {id(latent): latent_in}
    mapped.update({id(t): s for t, s in zip(skips, skip_ins, strict=True)})
    for node in decoder_nodes:
        args, kwargs = node.arguments.fill_in(mapped)
        result = node.operation(*args, **kwargs)
        for old, new in zip(node.outputs, keras.tree.flatten(result), strict=True):
            mapped[id(old)] = new
    decoder = keras.Model(
        [latent_in, *skip_ins] if skip_ins else latent_in,
        mapped[id(graph.outputs[0])],
        name=f"{model.name}_decoder",
    )
    encoder = keras.Model(
        inputs if len(inputs) > 1 else inputs[0],
        [latent, *skips] if skips else latent,
        name=f"{model.name}_encoder",
    )
    return encoder, decoder, path


# ----------------------------------------------------------------------------
# finding the cut


def _pixels(tensor: Any) -> int | None:
    """Spatial size of a (N, ..., C) tensor (1 for a vector), None if not static."""
    shape = tuple(tensor.shape[1:-1])
    if any(d is None for d in shape):
        return None
    return math.prod(int(d) for d in shape)


def _main_path(graph: InlinedGraph) -> list[Any]:
    """Tensors from the output back to the first layer, following at each merge the heaviest input.

    An input's weight is the computation behind it: the sum, over the nodes
    it depends on, of the layer's weight count times its output pixels
    (about its multiply-adds for convolutions and dense layers); ties go to
    the input that depends on more nodes, then to the first argument.
    """
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    cost = [
        sum(math.prod(w.shape) for w in getattr(n.operation, "weights", ())) * (_pixels(n.outputs[0]) or 1)
        if n.outputs
        else 0
        for n in graph.nodes
    ]
    behind: list[int] = []  # bit i set: the node depends on node i (itself included)
    for i, node in enumerate(graph.nodes):
        mask = 1 << i
        for t in node.input_tensors:
            j = index.get(id(history(t)[1]))
            if j is not None:
                mask |= behind[j]
        behind.append(mask)

    def weight(t: Any) -> tuple[int, int]:
        mask = behind[index[id(history(t)[1])]]
        return sum(cost[k] for k in range(mask.bit_length()) if mask >> k & 1), mask.bit_count()

    spine = [graph.outputs[0]]
    while True:
        node = history(spine[-1])[1]
        ins = [t for t in node.input_tensors if id(history(t)[1]) in index]
        if id(node) not in index or not ins:
            return spine
        spine.append(max(ins, key=weight))


def candidate_cuts(model: keras.Model) -> list[CandidateCut]:
    """The layers a person would split at: the main path at its lowest spatial resolution.

    The main path is defined in the module's docstring; nested models are
    seen through (:mod:`latent_widgets.model.keras_graph`). The number of skips is what :func:`split_model` makes for
    that layer. Layers called more than once, or with several outputs, are
    left out.

    Parameters
    ----------
    model : keras.Model
        A functional (or Sequential) model with one output.

    Returns
    -------
    list of CandidateCut
        Fewest skips first, then nearest the output first; empty if no
        layer on the main path has a static shape.

    Examples
    --------
    >>> [(c.name, c.n_skips) for c in candidate_cuts(unet)][:2]  # doctest: +SKIP
    [('down_stack/block_16_project', 4), ('down_stack/block_16_depthwise_relu', 4)]
    """
    _one_output(model)
    full = inline_nested(model, lambda nested: True)
    path_of = {id(node): p for p, node in full.made}
    calls = Counter(p for p, _ in full.made)
    spots = []
    for distance, t in enumerate(_main_path(full)[1:], start=1):
        node = history(t)[1]
        pixels = _pixels(t)
        if pixels is not None and len(node.outputs) == 1 and calls[path_of[id(node)]] == 1:
            spots.append((pixels, distance, path_of[id(node)], t))
    if not spots:
        return []
    lowest = min(s[0] for s in spots)
    found = []
    graphs: dict[str, InlinedGraph] = {}  # one inlined graph per nested scope
    for _, distance, path, t in (s for s in spots if s[0] == lowest):
        scope = path.rpartition("/")[0]
        graph = graphs.get(scope) or graphs.setdefault(scope, inline_around(model, path))
        try:
            _, skips = _plan(graph, _latent_of(graph, path), path)
        except LatentModelError:
            continue
        shape = tuple(None if d is None else int(d) for d in t.shape[1:])
        found.append((len(skips), distance, CandidateCut(path, shape, len(skips), type(history(t)[0]).__name__)))
    return [c for *_, c in sorted(found, key=lambda f: f[:2])]


def _candidates_text(model: Any) -> str:
    """A sentence listing :func:`candidate_cuts`, for an error message ("" if there are none)."""
    try:
        cuts = candidate_cuts(model)
    except Exception:  # an error message must not fail on the analysis it merely suggests
        return ""
    if not cuts:
        return ""
    shown = "; ".join(
        f"{c.name!r} {c.shape}, {c.n_skips} skip{'' if c.n_skips == 1 else 's'}" for c in cuts[:_SHOWN_CANDIDATES]
    )
    more = f" and {len(cuts) - _SHOWN_CANDIDATES} more" if len(cuts) > _SHOWN_CANDIDATES else ""
    return (
        f" Candidate cuts (the main path at its lowest resolution, fewest skips first): {shown}{more}; "
        "keras_cut.candidate_cuts(model) lists them."
    )
