"""The session's maps: what a map point is, the maps fitted (map lane), and the path placed on them.

A map point is a sample (``map_points`` "flatten" or "pooled") or one cell
of a sample's latent grid ("cells"); :class:`MapState` holds that one
definition (:meth:`MapState.point_sample`), fits the maps of each method
and kind of point on the map lane, and places the current strip on the
current map.

Examples
--------
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(6, -1), methods=("pca",), asynchronous=False)
>>> s.map_state.map_key("pca", "pooled"), s.map_state.n_points(), s.map_state.point_sample(4)
('pooled:pca', 6, (4, None, None))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

__all__ = ["MapState"]


class MapState:
    """The maps of a session and the geometry of their points.

    Parameters
    ----------
    session : ExplorerSession
        Its ``map_method``, ``map_points``, ``maps``, ``strip`` and
        ``ready`` traits (``maps`` and ``path_points`` are set here), its
        ``projectors``, ``latent_index`` and the latents of its
        ``encodings``.
    projection_kwargs : mapping method -> dict, optional
        Extra arguments of each method's fit.

    Attributes
    ----------
    projection_kwargs : dict method -> dict
    """

    def __init__(self, session: Any, projection_kwargs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.session = session
        self.projection_kwargs = {k: dict(v) for k, v in (projection_kwargs or {}).items()}
        # What the maps of pooled points and of cells are fitted on, made once.
        self._cells: np.ndarray | None = None
        self._pooled: np.ndarray | None = None

    # ------------------------------------------------------------------ points

    def map_key(self, method: str | None = None, map_points: str | None = None) -> str:
        """Key of a map in ``maps``: the method ("pca"), prefixed for pooled points ("pooled:pca")."""
        method = method or self.session.map_method
        map_points = map_points or self.session.map_points
        return method if map_points == "flatten" else f"{map_points}:{method}"

    def grid(self) -> tuple[int, int] | None:
        """``(h, w)`` of the latent grid, or None for flat latents (or while the shape is unknown)."""
        shape = self.session.encodings.latent_shape()
        return (int(shape[0]), int(shape[1])) if len(shape) == 3 else None

    def n_points(self, map_points: str | None = None) -> int:
        """How many points a map of ``map_points`` (default: the current) has: N, or N * h * w for cells."""
        n = len(self.session.dataset)
        if (map_points or self.session.map_points) != "cells":
            return n
        h, w = self.grid()  # type: ignore[misc]
        return n * h * w

    def point_sample(self, point: int) -> tuple[int, int | None, int | None]:
        """What point ``point`` of the current map is: ``(sample, row, col)``.

        The one definition of a map point: with ``map_points="cells"`` point
        ``k`` is cell ``(row, col)`` of ``sample`` (the order of
        :func:`~latent_widgets.latents.cells.cell_points`, sample-major then
        row-major cell, :func:`~latent_widgets.latents.cells.cell_ids`); otherwise
        point ``k`` is sample ``k`` and ``row``, ``col`` are None.

        Examples
        --------
        >>> s.map_points = "cells"; s.grid  # doctest: +SKIP
        (12, 16)
        >>> s.point_sample(12 * 16 + 17)  # doctest: +SKIP
        (1, 1, 1)
        """
        k, n_pts = int(point), self.n_points()
        if not 0 <= k < n_pts:
            raise IndexError(f"no point {k} on a map of {n_pts} points ({self.session.map_points})")
        if self.session.map_points != "cells":
            return k, None, None
        h, w = self.grid()  # type: ignore[misc]
        return k // (h * w), (k // w) % h, k % w

    def samples_of_points(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """The samples (sorted, unique, int64) the map points ``points`` belong to."""
        pts = np.asarray(points, np.int64).reshape(-1)
        n_pts = self.n_points()
        bad = pts[(pts < 0) | (pts >= n_pts)]
        if bad.size:
            raise IndexError(
                f"points {bad[:5].tolist()} are not on a map of {n_pts} points ({self.session.map_points})"
            )
        if self.session.map_points == "cells":
            h, w = self.grid()  # type: ignore[misc]
            pts = pts // (h * w)
        return np.unique(pts)

    def points_of_samples(self, samples: Sequence[int] | np.ndarray) -> np.ndarray:
        """The map points of ``samples``: the samples themselves, or all their cells (cells map)."""
        idx = np.asarray(samples, np.int64).reshape(-1)
        if self.session.map_points != "cells":
            return idx
        h, w = self.grid()  # type: ignore[misc]
        return (idx[:, None] * (h * w) + np.arange(h * w, dtype=np.int64)[None, :]).reshape(-1)

    def click_point(self, point: int) -> int:
        """Do what a click on map point ``point`` does; returns its sample.

        Shows the point's sample (``selected``) and, on a map of cells,
        sets ``selected_cell`` to the clicked cell (the viewer outlines it).
        """
        s = self.session
        sample, row, col = self.point_sample(point)
        with s.hold_trait_notifications():
            if row is not None:
                s.selected_cell = (row, col)
            s.selected = sample
        return sample

    def select_points(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """Select the samples of map points ``points`` (a lasso, a brush): sets the session's ``selection``.

        On a map of cells the selection is the samples that own at least one
        of the cells: it stays a set of samples.
        """
        self.session.selection = self.samples_of_points(points)
        return self.session.selection

    # ------------------------------------------------------------------ fitting

    def map_latents(self, map_points: str | None = None) -> Any:
        """What the maps of ``map_points`` (default: the current) are fitted on.

        "flatten": the latents as they are (the projections flatten them);
        "pooled": each latent averaged over its grid, (N, C), read block by
        block (a Zarr store stays on disk); "cells": every cell of every
        latent, (N * h * w, C) (:func:`~latent_widgets.latents.cells.cell_points`).
        """
        map_points = map_points or self.session.map_points
        latents = self.session.encodings.latents
        if map_points == "flatten":
            return latents
        if map_points == "cells":
            if self._cells is None:
                from ..latents.cells import cell_points

                self._cells = np.asarray(cell_points(latents), np.float32)
            return self._cells
        if self._pooled is None:
            from ..core.arrays import iter_row_blocks

            n, c = latents.shape[0], latents.shape[-1]
            pooled = np.empty((n, c), np.float32)
            for rows in iter_row_blocks(n, 4096):
                block = np.asarray(latents[rows], np.float32)
                pooled[rows] = block.reshape(len(block), -1, c).mean(axis=1)
            self._pooled = pooled
        return self._pooled

    def _map_input(self, latents: np.ndarray, map_points: str) -> np.ndarray:
        z = np.asarray(latents, np.float32).reshape((len(latents), *self.session.encodings.latents.shape[1:]))
        if map_points == "cells":
            return z.reshape(-1, z.shape[-1])
        return z if map_points == "flatten" else z.reshape(len(z), -1, z.shape[-1]).mean(axis=1)

    def request_map(self, method: str) -> Future | None:
        """Fit the map of ``method`` (current points) on the map lane unless it exists; ``None`` if it does."""
        s = self.session
        key = self.map_key(method)
        if key in s.maps or not s.ready:
            return None
        return s.jobs.map_lane.submit(f"map: {method}", lambda: self._fit(method, s.map_points))

    def fit_map(self, method: str, map_points: str | None = None) -> np.ndarray:
        """The map of ``method``, fitted now (in the caller's thread) if it is missing."""
        map_points = map_points or self.session.map_points
        key = self.map_key(method, map_points)
        if key not in self.session.maps:
            self._fit(method, map_points)
        return self.session.maps[key]

    def _fit(self, method: str, map_points: str = "flatten") -> None:
        s = self.session
        key = self.map_key(method, map_points)
        if key in s.maps:
            return
        from ..analysis.projection import fit_projection

        try:
            kw = self.projection_kwargs.get(method, {})
            proj = fit_projection(self.map_latents(map_points), method=method, cache=True, progress=False, **kw)
            pts = np.asarray(proj.embedding_, np.float64)
            n_pts = self.n_points(map_points)
            if pts.shape != (n_pts, 2):
                raise ValueError(f"projection {method!r} returned shape {pts.shape}, expected ({n_pts}, 2)")
        except Exception:
            # Keep showing the map that is drawn.
            if s.map_method == method and s.map_points == map_points:
                drawn = next((m for m in s.methods if self.map_key(m, map_points) in s.maps), None)
                if drawn is not None:
                    s.map_method = drawn
            raise
        s.projectors[key] = proj
        s.maps = {**s.maps, key: pts}
        if key == self.map_key():
            self.place_path()
            s.map_quality.refresh()

    def place(self, latents: np.ndarray, method: str | None = None) -> np.ndarray:
        """Place new latents (e.g. a path) on a map, shape (M, 2).

        The fitted projection's ``transform`` (exact for PCA, UMAP's own,
        neighbour placement for t-SNE); for a map given in ``projections``,
        the distance-weighted mean position of the 3 nearest samples.
        Pooled maps place the pooled latents; a map of cells places every
        cell of each latent, (M * h * w, 2).
        """
        s = self.session
        method = method or s.map_method
        map_points = s.map_points
        pts = self.fit_map(method, map_points)
        proj = s.projectors.get(self.map_key(method, map_points))
        if proj is not None:
            return np.asarray(proj.transform(self._map_input(latents, map_points)), np.float64)
        if map_points == "cells":
            raise ValueError("a precomputed map of cells has no projection to place new latents with")
        z = np.asarray(latents, np.float32).reshape((len(latents), *s.encodings.latents.shape[1:]))
        idx, dist = s.latent_index.query(z, k=min(3, len(pts)))
        w = 1.0 / np.maximum(np.asarray(dist, np.float64), 1e-9)
        return (pts[np.asarray(idx)] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------ following the traits

    def on_map_method(self, _change: Any) -> None:
        """The current map changed: its path and quality, or its fit (map lane)."""
        s = self.session
        if self.map_key() in s.maps:
            self.place_path()
            s.map_quality.refresh()
        else:
            self.request_map(s.map_method)

    def on_map_points(self, _change: Any) -> None:
        """The kind of point changed: the colours and the selected cell follow, then the map."""
        s = self.session
        with s.hold_trait_notifications():
            if s.map_points == "cells":
                # A cell's own class is the cells' counterpart of the sample's dominant class.
                if s.color_by in ("group", "dominant class", "none"):
                    s.color_by = "cell class"
            else:
                s.selected_cell = None
                if s.color_by == "cell class":
                    s.color_by = "dominant class"
        self.on_map_method(None)

    def place_path(self, _change: Any = None) -> None:
        """Place the strip on the current map (map lane), or clear ``path_points`` where it is not drawn."""
        s = self.session
        strip, method = s.strip, s.map_method
        # On a map of cells a path step is h * w points, not one: the path is not drawn there. Before the
        # dataset is encoded, a given map has no latents to place the path among (become_ready places it).
        if strip is None or not s.ready or self.map_key() not in s.maps or s.map_points == "cells":
            s.path_points = None
            return
        gen = s.jobs.next_generation("place")
        key = self.map_key()

        def job() -> None:
            if not s.jobs.is_newest("place", gen):
                return
            p = self.place(strip.latents, method)
            if s.jobs.is_newest("place", gen) and s.strip is strip and s.map_method == method and self.map_key() == key:
                s.path_points = p

        s.jobs.map_lane.submit("place path", job)
