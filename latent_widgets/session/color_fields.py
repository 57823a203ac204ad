"""The colour fields of the session's map: what each point's colour says (a group, a class, a score, a split).

A field is per sample ("group", "dominant class", "mean IoU", "IoU: <class>",
"split", "none"; a map of cells repeats a sample's value on each of its
cells), per cell ("cell class") or per point of the current map (its
quality, :mod:`~latent_widgets.session.quality`). :class:`ColorFields`
computes them, the IoU fields from what is predicted so far while the
predictions are computed.

Examples
--------
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(6, -1), methods=("pca",), asynchronous=False)
>>> field = s.coloring.values("dominant class")
>>> field.kind, field.values.shape
('categorical', (6,))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import colors
from .quality import QUALITY_FIELDS
from .values import ColorField

__all__ = ["ColorFields"]


class ColorFields:
    """The colour fields of a session's map.

    Parameters
    ----------
    session : ExplorerSession
        Its ``dataset``, ``ignore_index``, ``splits``, ``map_points`` and
        ``color_by``, the points of its ``map_state``, the predictions of
        its ``predictor`` and the quality of its ``map_quality``.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._cell_classes: np.ndarray | None = None
        self._class_iou: dict[int, np.ndarray] = {}

    def default_field(self) -> str:
        """The field a session shows when none is given."""
        s = self.session
        if s.map_points == "cells":
            return "cell class"
        return "group" if s.dataset.groups is not None else "dominant class"

    def set_splits(self, splits: Sequence[str] | np.ndarray | None) -> None:
        """Give each sample a split name ("train", "val"...) for the "split" colour field."""
        s = self.session
        if splits is None:
            s.splits = None
            return
        arr = np.asarray([str(v) for v in splits])
        if len(arr) != len(s.dataset):
            raise ValueError(f"{len(arr)} split names for {len(s.dataset)} samples")
        s.splits = arr

    def fields(self) -> tuple[str, ...]:
        """The colour fields of the map (what ``color_by`` accepts)."""
        s = self.session
        # The ignored class has no IoU: its pixels are left out.
        names = tuple(f"IoU: {c}" for i, c in enumerate(s.dataset.class_names) if i != s.ignore_index)
        cells = ("cell class",) if s.map_points == "cells" else ()
        return (*cells, "group", "dominant class", "mean IoU", *names, *QUALITY_FIELDS, "split", "none")

    def cell_classes(self) -> np.ndarray:
        """The dominant true class under each latent cell, (N, h, w).

        :func:`~latent_widgets.latents.cells.cell_classes` of the dataset's masks, cached.
        """
        if self._cell_classes is None:
            from ..latents.cells import cell_classes

            s = self.session
            grid = s.map_state.grid()
            if grid is None:
                raise ValueError(f"latents of shape {s.encodings.latent_shape()} have no grid: no cell classes")
            ds = s.dataset
            self._cell_classes = cell_classes(ds.masks, grid, ds.n_classes, ignore_index=s.ignore_index)
        return self._cell_classes

    def values(self, field: str | None = None) -> ColorField:
        """The values of colour field ``field`` (default ``color_by``) for each point of the map.

        "mean IoU" and "IoU: <class>" need the predicted masks;
        "trustworthiness" and "kNN preservation" are those of the current
        map (:func:`~latent_widgets.analysis.map_quality.local_trustworthiness`,
        :func:`~latent_widgets.analysis.map_quality.local_knn_preservation`),
        computed on the map lane: until they arrive the values are NaN and
        ``note`` says "computing…"; above
        :data:`~latent_widgets.session.quality.POINT_QUALITY_MAX` samples
        they are not computed.
        """
        s = self.session
        field = field or s.color_by
        ds, n_pts = s.dataset, s.map_state.n_points()
        if field not in self.fields():
            raise ValueError(f"unknown colour field {field!r}; choose one of {self.fields()}")
        if field == "cell class":
            return ColorField(
                field,
                "categorical",
                self.cell_classes().reshape(-1),
                tuple(ds.class_names),
                tuple(colors.hex_colours(ds.palette)),
            )
        if field in QUALITY_FIELDS:
            return s.map_quality.color_field(field)
        f = self._sample_values(field)
        if n_pts == len(ds):
            return f
        # A sample's value goes to each of its cells (points are sample-major).
        return dataclasses.replace(f, values=np.repeat(f.values, n_pts // len(ds)))

    def _sample_values(self, field: str) -> ColorField:
        """A per-sample colour field (N,)."""
        s = self.session
        ds, n = s.dataset, len(s.dataset)
        if field == "group":
            if ds.groups is None:
                return ColorField(
                    field, "categorical", np.zeros(n, np.int64), ("all samples",), (colors.NO_VALUE_COLOUR,)
                )
            ids, codes = np.unique(ds.groups, return_inverse=True)
            names = [ds.group_names[g] if ds.group_names and g < len(ds.group_names) else f"group {g}" for g in ids]
            return ColorField(
                field, "categorical", codes.astype(np.int64), tuple(names), tuple(colors.categorical_colours(len(ids)))
            )
        if field == "dominant class":
            fractions = np.array(ds.class_fractions(), np.float64)
            if s.ignore_index is not None:
                # The class a sample is mostly made of, among the scored ones (not CamVid's Unlabelled).
                fractions[:, s.ignore_index] = -1.0
            dominant = fractions.argmax(axis=1).astype(np.int64)
            return ColorField(
                field, "categorical", dominant, tuple(ds.class_names), tuple(colors.hex_colours(ds.palette))
            )
        if field in ("mean IoU",) or field.startswith("IoU: "):
            pending = self._pending_scores(field)
            if pending is not None:
                return pending
        if field == "mean IoU":
            return ColorField(field, "continuous", s.predictor.sample_iou())
        if field.startswith("IoU: "):
            cls = list(ds.class_names).index(field[5:])
            if cls not in self._class_iou:
                from ..analysis.failures import per_class_sample_iou

                pred = s.predictor.predictions_or_raise(field)
                self._class_iou[cls] = np.asarray(
                    per_class_sample_iou(ds.masks, pred, ds.n_classes, cls, ignore_index=s.ignore_index), np.float64
                )
            return ColorField(field, "continuous", self._class_iou[cls])
        if field == "split":
            if s.splits is None:
                return ColorField(
                    field, "categorical", np.zeros(n, np.int64), ("all samples",), (colors.NO_VALUE_COLOUR,)
                )
            names_, codes = np.unique(s.splits, return_inverse=True)
            return ColorField(
                field,
                "categorical",
                codes.astype(np.int64),
                tuple(names_),
                tuple(colors.categorical_colours(len(names_))),
            )
        return ColorField(field, "categorical", np.zeros(n, np.int64), ("",), (colors.NO_VALUE_COLOUR,))

    def _pending_scores(self, field: str) -> ColorField | None:
        """While the predictions are computed: what is known of an IoU field (NaN for the rest) and a note."""
        s, predictor = self.session, self.session.predictor
        if s.predictions is not None or not predictor.wants_all() or (s.ready and not predictor.predicting):
            return None
        n = len(s.dataset)
        known = predictor.known
        done = 0 if known.done is None else int(known.done.sum())
        note = f"predicting {done:,}/{n:,}…" if s.ready else "after the dataset is encoded…"
        values = known.mean_iou() if field == "mean IoU" else np.full(n, np.nan)
        return ColorField(field, "continuous", values, note=note)
