"""An encoder and a decoder that belong together: their shapes, and which decoder input takes what.

:class:`~latent_widgets.model.latent_model.LatentModel` checks the pair it
is given with :func:`check_pair` before anything else: one image input of a
fixed size, one output of per-pixel class scores, a latent input (named
``"latent"``, given, or the only one), the skip inputs in the order of the
encoder's extra outputs, and encoder outputs that fit the decoder's inputs.
Each refusal says why and how to fix it.

Examples
--------
>>> layout = check_pair(encoder, decoder)  # doctest: +SKIP
>>> layout.latent_shape, layout.skip_indices  # doctest: +SKIP
((6, 8, 128), ())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .errors import LatentModelError
from .keras_cut import LATENT_LAYER
from .keras_graph import graph_io, require_keras_model, static_shape

__all__ = ["PairLayout", "check_pair"]


class PairLayout(NamedTuple):
    """What :func:`check_pair` reads from an encoder / decoder pair."""

    #: The encoder's image input, ``(H, W, C)``.
    input_shape: tuple[int, int, int]
    #: The decoder output's last axis.
    n_classes: int
    #: The latent (encoder output 0) without the batch axis.
    latent_shape: tuple[int, ...]
    #: The skips (encoder outputs 1, 2, ...).
    skip_shapes: tuple[tuple[int, ...], ...]
    #: Which decoder input is the latent.
    latent_index: int
    #: The decoder inputs of the skips, in the order of the encoder's outputs.
    skip_indices: tuple[int, ...]
    n_decoder_inputs: int
    #: The decoder output's ``(H', W')``: resized to the image size when it differs.
    output_hw: tuple[Any, ...]


def check_pair(
    encoder: Any,
    decoder: Any,
    *,
    latent_input: str | int | None = None,
    skip_inputs: Sequence[str | int] | None = None,
) -> PairLayout:
    """The shapes and the input order of a Keras encoder / decoder pair; a LatentModelError if they do not fit.

    Parameters
    ----------
    encoder, decoder : keras.Model
    latent_input, skip_inputs
        As for :class:`~latent_widgets.model.latent_model.LatentModel`.

    Raises
    ------
    LatentModelError
        Not Keras models, no graph, not one image input of a fixed size, not
        one output of class scores, an unknown or ambiguous latent input,
        skip inputs that do not name each other input once, encoder outputs
        that do not fit the decoder's inputs.

    Examples
    --------
    >>> check_pair(encoder, decoder, latent_input="z").latent_index  # doctest: +SKIP
    0
    """
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
    input_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
    out_shape = tuple(dec_out[0].shape[1:])
    if len(out_shape) != 3 or out_shape[-1] is None:
        raise LatentModelError(
            f"the decoder output must be (H, W, n_classes) per-pixel scores, its shape is {out_shape}."
        )
    n_classes = int(out_shape[-1])

    # Which decoder input is the latent, which are skips.
    names = [t.name for t in dec_in]

    def index_of(key: str | int, role: str) -> int:
        if isinstance(key, (int, np.integer)):
            if not 0 <= int(key) < len(dec_in):
                raise LatentModelError(f"{role}={key} is out of range: the decoder has {len(dec_in)} input(s) {names}.")
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
    latent_shape = static_shape(enc_out[0], "the latent (encoder output 0)", "build the model with a fixed image size.")
    skip_shapes = tuple(
        static_shape(t, f"skip {k} (encoder output {k + 1})", "build the model with a fixed image size.")
        for k, t in enumerate(enc_out[1:])
    )
    return PairLayout(
        input_shape=input_shape,
        n_classes=n_classes,
        latent_shape=latent_shape,
        skip_shapes=skip_shapes,
        latent_index=li,
        skip_indices=tuple(si),
        n_decoder_inputs=len(dec_in),
        output_hw=tuple(dec_out[0].shape[1:3]),
    )
