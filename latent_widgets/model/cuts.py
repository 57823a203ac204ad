"""Where to split a network: one record for a proposed cut, shared by the Keras and ONNX paths.

:func:`keras_cut.candidate_cuts <latent_widgets.model.keras_cut.candidate_cuts>`
(layers of a Keras model) and :func:`onnx_model.candidate_cuts
<latent_widgets.model.onnx_model.candidate_cuts>` (tensors of an ONNX graph) both
answer with :class:`CandidateCut` records, in the same order: fewest skips
first, then nearest the output. The errors for a model with no obvious cut
list them with :func:`format_cuts`.

Examples
--------
>>> cut = CandidateCut("down_stack/block_16_project", (2, 2, 320), 4, "Conv2D")
>>> print(format_cuts([cut]))
  'down_stack/block_16_project'  shape (2, 2, 320)  4 skips  (Conv2D)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["CandidateCut", "format_cuts"]


class CandidateCut(NamedTuple):
    """A place to split a network at.

    Attributes
    ----------
    name : str
        What to pass to split there: a Keras layer's path (``latent_layer=``:
        its name, prefixed by the nested models it is in, as in
        ``"down_stack/block_16_project"``) or an ONNX tensor's name (``latent=``).
    shape : tuple of int
        The latent's shape without the batch axis (NHWC, what ``latent_shape`` would be).
    n_skips : int
        How many skip tensors the cut makes (extra encoder outputs, extra decoder inputs).
    op : str
        What computes it: the Keras layer's class or the ONNX operator.
    """

    name: str
    shape: tuple[int | None, ...]
    n_skips: int
    op: str


def format_cuts(cuts: Sequence[CandidateCut]) -> str:
    """A table of cuts, one a line: name, shape, skips, what computes it."""
    return "\n".join(
        f"  {c.name!r}  shape {c.shape}  {c.n_skips} skip{'' if c.n_skips == 1 else 's'}  ({c.op})" for c in cuts
    )
