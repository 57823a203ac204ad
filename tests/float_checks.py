"""Comparisons of a network's float32 outputs that hold on any CPU.

Two code paths through the same float32 network (compiled against eager, one
batch size against another, oneDNN on or off, AVX-512 against AVX2 kernels,
another CPU's cache sizes and so another blocking of the sums) add the same
terms in another order, and their outputs differ in the last bits. Measured
on an AVX-512 machine: up to 4.5e-8 in probabilities (1.5 units in the last
place of 0.25) between ``predict_masks`` and the eager model. Comparisons in
the tests therefore leave that much room and no more:

- probabilities or latents: to :data:`REL` of the arrays' scale (80 units in
  the last place), where an error (rows swapped, a sample's skips given to
  another) moves values by a good part of the scale;
- masks, the argmax of probabilities: exactly wherever the two best classes
  are more than :data:`TIE` apart, and elsewhere one of the classes within
  :data:`TIE` of the best. An untrained network's probabilities are near
  uniform: one of the suite's has 16 of 15,360 pixels whose two best classes
  are less than 1e-7 apart, where the two paths' argmax may differ.

Examples
--------
>>> import numpy as np
>>> probs = np.array([[0.5, 0.3, 0.2], [0.4, 0.4 - 1e-7, 0.2]])
>>> near_ties(probs).tolist()
[False, True]
>>> assert_argmax_up_to_ties(np.array([0, 1]), probs)  # the tied pixel may go to class 1
>>> assert_close_to_scale(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-6]))
"""

from __future__ import annotations

import numpy as np

__all__ = ["REL", "TIE", "assert_argmax_up_to_ties", "assert_close_to_scale", "near_ties"]

#: Tolerance relative to an array's largest magnitude (see the module docstring).
REL = 1e-5
#: Probabilities closer than this are a tie that another CPU or code path may break the other way.
TIE = 1e-5


def near_ties(probs: np.ndarray, tol: float = TIE) -> np.ndarray:
    """Where the two largest probabilities (last axis) are within ``tol``: shape ``probs.shape[:-1]``."""
    top2 = np.sort(np.asarray(probs, np.float64), axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0] <= tol


def assert_argmax_up_to_ties(masks: np.ndarray, probs: np.ndarray, tol: float = TIE) -> None:
    """``masks`` is ``probs.argmax(-1)``, but where two classes are within ``tol`` of the best it may be either."""
    masks = np.asarray(masks)
    probs = np.asarray(probs, np.float64)
    assert masks.shape == probs.shape[:-1], (masks.shape, probs.shape)
    ties = near_ties(probs, tol)
    np.testing.assert_array_equal(masks[~ties], probs.argmax(-1)[~ties])
    chosen = np.take_along_axis(probs, masks[..., None].astype(np.intp), axis=-1)[..., 0]
    assert np.all(chosen >= probs.max(-1) - tol), "a pixel's class is not among its best ones"


def assert_close_to_scale(actual: np.ndarray, desired: np.ndarray, rel: float = REL) -> None:
    """``actual`` equals ``desired`` to ``rel`` of ``desired``'s largest magnitude."""
    desired = np.asarray(desired, np.float64)
    scale = float(np.abs(desired).max())
    assert scale > 0, "a comparison of two zero arrays proves nothing"
    np.testing.assert_allclose(np.asarray(actual, np.float64), desired, rtol=0, atol=rel * scale)
