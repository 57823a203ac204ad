"""The per-point quality of the session's maps (trustworthiness, kNN preservation), computed on the map lane.

Each map's quality is computed once, when a quality colour field is shown,
in the background (bulk); until it arrives the field is NaN and says
"computing…". Above :data:`POINT_QUALITY_MAX` samples it is not computed; a
large map of cells is scored on :data:`CELL_QUALITY_SAMPLE` random cells
(:func:`quality_rows`).

Examples
--------
>>> quality_rows(5, "flatten").tolist()
[0, 1, 2, 3, 4]
>>> QUALITY_FIELDS
('trustworthiness', 'kNN preservation')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .jobs import BULK
from .values import ColorField

__all__ = ["CELL_QUALITY_SAMPLE", "POINT_QUALITY_MAX", "QUALITY_FIELDS", "MapQuality", "quality_rows"]

#: Above this many samples the per-point map quality (trustworthiness, kNN preservation) is not computed:
#: its exact neighbour ranks cost O(N^2) time.
POINT_QUALITY_MAX = 20_000
#: On a map of more cells than this, the per-point quality is computed on this many cells drawn at random
#: (seed 0), their neighbours taken among them; the other cells are NaN (grey). CamVid's 17,616 cells of
#: a 6 x 8 grid took 101 s exactly on 2 shared cores, 4,000 cells 5 s.
CELL_QUALITY_SAMPLE = 4_000
#: The colour fields of the map quality.
QUALITY_FIELDS = ("trustworthiness", "kNN preservation")


def quality_rows(n_points: int, map_points: str) -> np.ndarray:
    """The points whose per-point map quality is computed: all, or :data:`CELL_QUALITY_SAMPLE` random cells.

    Examples
    --------
    >>> quality_rows(5, "flatten").tolist()
    [0, 1, 2, 3, 4]
    >>> len(quality_rows(17_616, "cells")) == CELL_QUALITY_SAMPLE
    True
    """
    if map_points != "cells" or n_points <= CELL_QUALITY_SAMPLE:
        return np.arange(n_points)
    # Seeded: the same cells every time, so a reloaded session colours the same points.
    return np.sort(np.random.default_rng(0).choice(n_points, CELL_QUALITY_SAMPLE, replace=False))


class MapQuality:
    """Computes the quality of a session's maps (map lane) and makes colour fields of it.

    Parameters
    ----------
    session : ExplorerSession
        Its ``maps``, ``color_by``, ``map_points`` and ``ready`` traits and
        its ``map_state``; its ``quality`` trait (map key -> {field: (N,)})
        is set here.

    Examples
    --------
    >>> s.color_by = "trustworthiness"; s.wait()  # doctest: +SKIP
    >>> s.map_quality.color_field("kNN preservation").values.shape  # doctest: +SKIP
    (24,)
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._queued: set[str] = set()

    def refresh(self, force: bool = False) -> None:
        """Queue the per-point quality of the current map when a quality field is shown (or ``force``)."""
        s = self.session
        if not (force or s.color_by in QUALITY_FIELDS) or not s.ready:
            return
        key = s.map_state.map_key()
        if key in s.quality or key not in s.maps:
            return
        if s.map_state.n_points() > POINT_QUALITY_MAX and s.map_points != "cells":
            return
        if key in self._queued:
            return
        self._queued = self._queued | {key}
        s.jobs.map_lane.submit("map quality", lambda: self._job(key), BULK)

    def on_color_by(self, _change: Any) -> None:
        """The colour field changed: a quality field shown is computed."""
        self.refresh()

    def _job(self, key: str) -> None:
        from ..analysis.map_quality import local_knn_preservation, local_trustworthiness

        s = self.session
        try:
            map_points = key.split(":", 1)[0] if ":" in key else "flatten"
            z = np.asarray(s.map_state.map_latents(map_points)[:], np.float32)
            x = z.reshape(len(z), -1)
            y = np.asarray(s.maps[key])
            rows = quality_rows(len(x), map_points)
            xs, ys = x[rows], y[rows]
            k = min(10, len(xs) - 1)
            result = {}
            for name, values in (
                ("trustworthiness", local_trustworthiness(xs, ys, min(5, len(xs) - 1))),
                ("kNN preservation", local_knn_preservation(xs, ys, k)),
            ):
                full = np.full(len(x), np.nan)
                full[rows] = values
                result[name] = full
        finally:
            self._queued = self._queued - {key}
        s.quality = {**s.quality, key: result}

    def color_field(self, field: str) -> ColorField:
        """Quality field ``field`` of the current map, per point (per cell on a map of cells)."""
        s = self.session
        n_pts = s.map_state.n_points()
        # Per point of the current map: per cell on a map of cells (on a sample of them above the limit).
        nan = np.full(n_pts, np.nan)
        if n_pts > POINT_QUALITY_MAX and s.map_points != "cells":
            return ColorField(
                field,
                "continuous",
                nan,
                note=f"not available at this size ({n_pts} points; at most {POINT_QUALITY_MAX})",
            )
        got = s.quality.get(s.map_state.map_key())
        if got is None:
            self.refresh(force=True)
            got = s.quality.get(s.map_state.map_key())
        if got is None:
            return ColorField(field, "continuous", nan, note="computing…")
        m = int(np.isfinite(got[field]).sum())
        note = "" if m == n_pts else f"on {m:,} random cells of {n_pts:,}, neighbours among them; others grey"
        return ColorField(field, "continuous", got[field], note=note)
