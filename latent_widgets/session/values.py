"""The values a session holds and hands to its views: path keys, strips, scrub frames, colour fields, errors.

Plain data (frozen dataclasses, named tuples) and the trait type of the
sample selection: what a script reads from an :class:`ExplorerSession` and a
widget draws.

Examples
--------
>>> key = PathKey(3, 17, "linear", "interpolate", 12)
>>> key.index_b, key._replace(n_steps=6).n_steps
(17, 6)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import traitlets

__all__ = [
    "SNAP",
    "ColorField",
    "IndexSelection",
    "PathKey",
    "ScrubFrames",
    "SessionMismatchError",
    "SessionStateError",
    "Strip",
    "StripStep",
    "is_int",
]

# Alphas closer than this to a strip step count as that step (the cached path).
SNAP = 1e-6


class PathKey(NamedTuple):
    """What defines an interpolation path (and so a decoded strip)."""

    index_a: int
    index_b: int
    method: str
    skip_policy: str
    n_steps: int


@dataclass(frozen=True)
class StripStep:
    """One decoded point of the path, ready to display."""

    alpha: float
    latent: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    image: bytes  # 8-bit BMP of the mask (what the current-mask pane shows)
    cached: bool = False  # a strip step (True) or decoded on demand


@dataclass(frozen=True)
class Strip:
    """The decoded strip of one path: its steps and their nearest real samples."""

    key: PathKey
    result: Any  # interpolation.PathResult
    steps: tuple[StripStep, ...]
    neighbor_indices: np.ndarray
    neighbor_distances: np.ndarray
    n_distinct: int  # 0 (and neighbour indices -1) until the dataset is encoded
    fractions: np.ndarray  # (n_steps, n_classes) class pixel fractions

    @property
    def has_neighbors(self) -> bool:
        """Whether the nearest real samples are known (the dataset is encoded: :attr:`ExplorerSession.ready`)."""
        return bool(len(self.neighbor_indices)) and bool(np.all(self.neighbor_indices >= 0))

    @property
    def alphas(self) -> np.ndarray:
        return np.asarray([s.alpha for s in self.steps], np.float64)

    @property
    def latents(self) -> np.ndarray:
        return np.asarray(self.result.latents)

    def step_at(self, alpha: float) -> StripStep | None:
        """The step at ``alpha``, if ``alpha`` is one of the strip's."""
        for step in self.steps:
            if abs(step.alpha - alpha) <= SNAP:
                return step
        return None


@dataclass(frozen=True)
class ScrubFrames:
    """Masks of a path on a fine, even alpha grid: what the browser scrubs through.

    Sent to the page as the frames are decoded (nearest to the slider
    first); the slider then swaps frames on the front end, with no kernel
    round trip. A partial grid has ``ready`` False for the frames still to
    come (their masks are zeros): the page shows the kernel's decoded mask
    at those alphas.
    """

    key: tuple[int, int, str, str]  # index_a, index_b, method, skip_policy
    alphas: np.ndarray  # (G,) evenly spaced from 0 to 1
    masks: np.ndarray  # (G, H, W) uint8 class ids
    ready: np.ndarray | None = None  # (G,) bool: decoded frames of a partial grid; None: all

    @property
    def complete(self) -> bool:
        """Whether every frame of the grid is decoded."""
        return self.ready is None or bool(np.all(self.ready))

    def frame_at(self, alpha: float) -> int:
        """Index of the frame the browser shows at ``alpha`` (the nearest grid step)."""
        return int(np.clip(round(float(alpha) * (len(self.alphas) - 1)), 0, len(self.alphas) - 1))


class SessionMismatchError(ValueError):
    """A saved session does not belong to the model or the data it is loaded with."""


class SessionStateError(traitlets.TraitError, ValueError):
    """Several settings of a session (its arguments, a saved file) are invalid; ``errors`` holds each one's."""

    def __init__(self, errors: Sequence[Exception]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} invalid session settings: " + "; ".join(str(e) for e in self.errors))


def is_int(value: Any) -> bool:
    """An integer that is not a bool (``True`` is not a sample index)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class ColorField:
    """What a colour field gives each point of the map.

    Attributes
    ----------
    name : str
        The field (one of :meth:`ExplorerSession.color_fields`).
    kind : str
        ``"categorical"`` (``values`` are codes into ``labels`` and
        ``colours``) or ``"continuous"`` (``values`` are floats on
        ``[vmin, vmax]``, NaN where unknown).
    values : ndarray (N,)
    labels : tuple of str
        Name of each category (categorical fields).
    colours : tuple of str
        ``#rrggbb`` of each category (categorical fields).
    vmin, vmax : float
        The range of a continuous field.
    note : str
        Why values are missing: "computing…" while a background job runs,
        "not available at this size…" above the session's ``POINT_QUALITY_MAX``,
        "on 4,000 random cells of…" on a large map of cells (its ``quality_rows``).

    Examples
    --------
    >>> from latent_widgets.data import colors
    >>> f = ColorField("none", "categorical", np.zeros(3, np.int64), ("all samples",), (colors.NO_VALUE_COLOUR,))
    >>> f.categorical, f.values.tolist()
    (True, [0, 0, 0])
    """

    name: str
    kind: str
    values: np.ndarray
    labels: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    vmin: float = 0.0
    vmax: float = 1.0
    note: str = ""

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"


class IndexSelection(traitlets.TraitType):
    """A trait holding sample indices: a read-only int64 array, sorted, unique, range-checked.

    Accepts any sequence of ints or a boolean mask of one value per
    sample; ``None`` clears it. Setting an equal selection does not notify.
    """

    info_text = "sample indices (a sequence of int or a boolean mask)"

    def __init__(self, **kwargs: Any) -> None:
        empty = np.empty(0, np.int64)
        empty.flags.writeable = False
        super().__init__(default_value=empty, **kwargs)

    def validate(self, obj: Any, value: Any) -> np.ndarray:
        n = len(obj.dataset)
        if value is None:
            value = ()
        arr = np.asarray(value)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise traitlets.TraitError(
                    f"{self.name}: a boolean mask needs one value per sample ({n}), got shape {arr.shape}"
                )
            arr = np.flatnonzero(arr)
        arr = arr.reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise traitlets.TraitError(
                    f"{self.name}: expected sample indices (int) or a boolean mask, got {arr.dtype} values"
                )
        arr = np.unique(arr.astype(np.int64))
        bad = arr[(arr < 0) | (arr >= n)]
        if bad.size:
            raise traitlets.TraitError(
                f"{self.name}: indices {bad[:5].tolist()} are out of range for {n} samples (0..{n - 1})"
            )
        arr.flags.writeable = False
        return arr

    def set(self, obj: Any, value: Any) -> None:
        new = self._validate(obj, value)
        old = obj._trait_values.get(self.name, self.default_value)
        if isinstance(old, np.ndarray) and np.array_equal(old, new):
            return
        super().set(obj, new)
