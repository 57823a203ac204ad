"""What the session's settings accept: its trait validators, and the checks of its constructor's arguments.

Each validator takes the session and traitlets' ``proposal`` and returns
the value (made plain) or raises a :class:`traitlets.TraitError` whose
message names the field, the value and what is allowed; the session
registers them with :func:`traitlets.validate`.

Examples
--------
>>> valid_n_steps(None, {"value": 12})
12
>>> try:
...     valid_alpha(None, {"value": 1.5})
... except traitlets.TraitError as exc:
...     print(exc)
alpha=1.5 is outside [0, 1] (0: sample index_a, 1: sample index_b)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import traitlets

from .values import SessionStateError, is_int

__all__ = [
    "MAP_POINTS",
    "N_STEPS_RANGE",
    "apply_settings",
    "capped_scrub_steps",
    "check_arguments",
    "check_ignore_index",
    "check_projections",
    "valid_alpha",
    "valid_color_by",
    "valid_index",
    "valid_map_method",
    "valid_map_points",
    "valid_n_steps",
    "valid_path_method",
    "valid_selected_cell",
    "valid_skip_policy",
]

#: What each point of the map is: a sample's flattened latent, its average over the grid, or one grid cell.
MAP_POINTS: tuple[str, ...] = ("flatten", "pooled", "cells")
#: The strip's step counts (``n_steps``), smallest and largest.
N_STEPS_RANGE = (2, 64)


def check_arguments(model: Any, dataset: Any, latents: Any, encoding: Any, predict: Any) -> None:
    """Raise ValueError for a session that cannot be made: under 2 samples, nothing to map, an unknown ``predict``.

    Examples
    --------
    >>> check_arguments(None, range(3), None, None, "auto")
    Traceback (most recent call last):
    ValueError: ExplorerSession needs a model, or latents=... for a maps-only session
    """
    n = len(dataset)
    if n < 2:
        raise ValueError(f"the explorer needs at least 2 samples, got {n}")
    if model is None and latents is None and encoding is None:
        raise ValueError("ExplorerSession needs a model, or latents=... for a maps-only session")
    if predict != "auto" and not isinstance(predict, bool):
        raise ValueError(f"predict={predict!r}: pass True, False or 'auto'")


def capped_scrub_steps(steps: int, image_size: tuple[int, int]) -> int:
    """The scrub grid's frames: 0 (off) below 2, else capped so that a grid holds at most 16 MiB of masks.

    Examples
    --------
    >>> capped_scrub_steps(64, (96, 128)), capped_scrub_steps(64, (2048, 4096)), capped_scrub_steps(1, (96, 128))
    (64, 2, 0)
    """
    h, w = image_size
    return 0 if steps < 2 else int(min(steps, max(2, (16 << 20) // max(h * w, 1))))


def check_projections(projections: Mapping[str, Any] | None, n: int) -> dict[str, np.ndarray]:
    """The precomputed maps, float64, each checked to be (n, 2)."""
    given = {k: np.asarray(v, np.float64) for k, v in (projections or {}).items()}
    for k, v in given.items():
        if v.shape != (n, 2):
            raise ValueError(f"projection {k!r} has shape {v.shape}, expected ({n}, 2)")
    return given


def apply_settings(obj: Any, settings: Sequence[tuple[str, Callable[[], Any]]], invalid: list[Exception]) -> None:
    """Set each trait ``name`` of ``obj`` to ``value()``, in order; raise all the invalid ones together.

    ``invalid`` holds the errors found before; one error is raised as it
    is, several as one :class:`~latent_widgets.session.values.SessionStateError`.
    """
    invalid = list(invalid)
    for name, value in settings:
        try:
            setattr(obj, name, value())
        except traitlets.TraitError as exc:
            invalid.append(exc)
    if len(invalid) == 1:
        raise invalid[0]
    if invalid:
        raise SessionStateError(invalid)


def check_ignore_index(value: Any, dataset: Any) -> int | None:
    """The session's ``ignore_index``: ``"dataset"`` resolved, a class id checked.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> check_ignore_index("dataset", SimpleNamespace(n_classes=4, ignore_index=3)), check_ignore_index(None, None)
    (3, None)
    """
    if isinstance(value, str):
        if value != "dataset":
            raise ValueError(f"ignore_index={value!r}: pass a class id, None, or 'dataset' (the dataset's own)")
        return getattr(dataset, "ignore_index", None)
    if value is None:
        return None
    n = dataset.n_classes
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n:
        raise ValueError(
            f"ignore_index={value!r} is not a class id of this dataset (0..{n - 1}); "
            "pass the id of the class to leave out of the scores, or None to score every class"
        )
    return int(value)


def valid_path_method(session: Any, proposal: Mapping[str, Any]) -> str:
    """``path_method``: one of the interpolation's path methods."""
    from ..analysis.interpolation import PATH_METHODS

    if proposal["value"] not in PATH_METHODS:
        raise traitlets.TraitError(f"path_method {proposal['value']!r}: choose one of {PATH_METHODS}")
    return proposal["value"]


def valid_skip_policy(session: Any, proposal: Mapping[str, Any]) -> str:
    """``skip_policy``: one of the interpolation's skip policies."""
    from ..analysis.interpolation import SKIP_POLICIES

    if proposal["value"] not in SKIP_POLICIES:
        raise traitlets.TraitError(f"skip_policy {proposal['value']!r}: choose one of {SKIP_POLICIES}")
    return proposal["value"]


def valid_map_method(session: Any, proposal: Mapping[str, Any]) -> str:
    """``map_method``: one of the session's ``methods``."""
    if proposal["value"] not in session.methods:
        raise traitlets.TraitError(f"map_method {proposal['value']!r}: choose one of {session.methods}")
    return proposal["value"]


def valid_color_by(session: Any, proposal: Mapping[str, Any]) -> str:
    """``color_by``: one of the session's ``color_fields()``."""
    fields = session.color_fields()
    if proposal["value"] not in fields:
        raise traitlets.TraitError(f"color_by {proposal['value']!r}: choose one of {fields}")
    return proposal["value"]


def valid_map_points(session: Any, proposal: Mapping[str, Any]) -> str:
    """``map_points``: one of :data:`MAP_POINTS`; "pooled" and "cells" need latent grids (h, w, C)."""
    value = proposal["value"]
    if value not in MAP_POINTS:
        raise traitlets.TraitError(f"map_points {value!r}: choose one of {MAP_POINTS}")
    if value != "flatten" and len(shape := session.encodings.latent_shape()) != 3:
        what = "averages a latent grid" if value == "pooled" else "makes a point of each cell of a latent grid"
        raise traitlets.TraitError(
            f"map_points {value!r} {what} (h, w, C); these latents have shape "
            f"{shape or 'unknown (still encoding)'}: use 'flatten'"
        )
    return value


def valid_selected_cell(session: Any, proposal: Mapping[str, Any]) -> tuple[int, int] | None:
    """``selected_cell``: None, or ``(row, col)`` of the latent grid on a map of cells."""
    value = proposal["value"]
    if value is None:
        return None
    if session.map_points != "cells":
        raise traitlets.TraitError(
            f"selected_cell={value!r}: a cell is selected only on a map of cells (map_points='cells'), "
            f"not {session.map_points!r}"
        )
    h, w = session.grid
    try:
        row, col = value
    except (TypeError, ValueError):
        row = col = None
    if not (is_int(row) and is_int(col)):
        raise traitlets.TraitError(
            f"selected_cell={value!r}: pass (row, col), two ints in 0..{h - 1} and 0..{w - 1}, or None"
        )
    if not (0 <= row < h and 0 <= col < w):
        raise traitlets.TraitError(
            f"selected_cell={(int(row), int(col))} is outside the {h}x{w} latent grid (row 0..{h - 1}, col 0..{w - 1})"
        )
    return int(row), int(col)


def valid_index(session: Any, proposal: Mapping[str, Any]) -> int | None:
    """``index_a``, ``index_b``, ``selected``: a sample index (``selected`` may be None)."""
    i, n, name = proposal["value"], len(session.dataset), proposal["trait"].name
    if i is None:
        return None
    if not is_int(i):
        raise traitlets.TraitError(f"{name}={i!r} is not a sample index: pass an int in 0..{n - 1}")
    if not 0 <= i < n:
        raise traitlets.TraitError(f"{name}={i} is out of range for {n} samples (0..{n - 1})")
    return int(i)


def valid_n_steps(session: Any, proposal: Mapping[str, Any]) -> int:
    """``n_steps``: an int in :data:`N_STEPS_RANGE`."""
    value, (lo, hi) = proposal["value"], N_STEPS_RANGE
    if not is_int(value) or not lo <= value <= hi:
        raise traitlets.TraitError(f"n_steps={value!r}: the strip has {lo} to {hi} steps (an int in {lo}..{hi})")
    return int(value)


def valid_alpha(session: Any, proposal: Mapping[str, Any]) -> float:
    """``alpha``: in [0, 1]."""
    value = proposal["value"]
    # NaN fails both comparisons; the slider goes from sample index_a (0) to index_b (1), no further.
    if not 0.0 <= value <= 1.0:
        raise traitlets.TraitError(f"alpha={value!r} is outside [0, 1] (0: sample index_a, 1: sample index_b)")
    return float(value)
