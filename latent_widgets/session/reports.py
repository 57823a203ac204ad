"""The report of the session's selection: how the selected samples are segmented, kept up to date.

Each new selection queues its
:class:`~latent_widgets.analysis.failures.SelectionReport` on the model lane
(the newest selection wins); the whole set's report, which the selection's
is compared with, is made once.

Examples
--------
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(6, -1), predictions=ds.masks, methods=("pca",),
...                     asynchronous=False)
>>> s.selection = [1, 4]
>>> s.report.indices.tolist(), float(s.report.mean_iou)
([1, 4], 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .predictor import PREDICT_BLOCK
from .values import IndexSelection

__all__ = ["SelectionReports"]


class SelectionReports:
    """Makes the reports of a session's selection.

    Parameters
    ----------
    session : ExplorerSession
        Its ``dataset``, ``model``, ``predictions``, ``ignore_index`` and
        ``predictor``; its ``report`` trait is set here.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self._whole: Any = None

    def on_selection(self, _change: Any) -> None:
        """The selection changed: its report is queued (model lane), or None when there is none to make."""
        s = self.session
        sel = s.selection
        gen = s.jobs.next_generation("report")
        if not len(sel):
            s.report = None
            return
        if not s.ready or (s.predictions is None and s.model is None):
            s.report = None
            return  # computed once the session is ready; no report without predictions

        def job() -> None:
            if not s.jobs.is_newest("report", gen):
                return  # a newer selection is queued
            report = self.selection_report(sel)
            if s.jobs.is_newest("report", gen):
                s.report = report

        s.jobs.model_lane.submit("selection report", job)

    def selection_report(self, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """The :class:`~latent_widgets.analysis.failures.SelectionReport` of the selection (or of ``indices``).

        Pooled confusion matrix of the selected samples' pixels (rows: true
        class, columns: predicted), their per-class and mean IoU against
        the whole set's, and the samples ordered from worst to best. Uses
        the session's predictions, or predicts the selected samples with
        the model when there are none (``mean_iou_all`` is then NaN).
        """
        from ..analysis.failures import selection_report

        s = self.session
        idx = s.selection if indices is None else IndexSelection().validate(s, indices)
        if not len(idx):
            raise ValueError(
                "the selection is empty: select samples on the map (lasso, brush) or set session.selection"
            )
        ds = s.dataset
        kw: dict[str, Any] = dict(class_names=tuple(ds.class_names), ignore_index=s.ignore_index)
        if s.predictions is not None:
            if self._whole is None:
                self._whole = selection_report(ds.masks, s.predictions, np.arange(len(ds)), ds.n_classes, **kw)
            return selection_report(ds.masks, s.predictions, idx, ds.n_classes, reference=self._whole, **kw)
        if s.model is None:
            raise ValueError("the selection report needs the predicted masks: pass predictions=... or a model")
        from ..core.arrays import iter_row_blocks

        # Only the selected samples are predicted (those the background prediction has not reached yet):
        # a prediction of the selection alone, in sorted order.
        pred = np.empty((len(idx), *ds.image_size), np.int32)
        todo = []
        for k, i in enumerate(idx):
            known = s.predictor.known_prediction(i)
            if known is None:
                todo.append(k)
            else:
                pred[k] = known
        missing = np.asarray(todo, np.int64)
        for rows in iter_row_blocks(len(missing), PREDICT_BLOCK):
            ks = missing[rows]
            pred[ks] = s.model.predict_masks(np.stack([ds.images[int(i)] for i in idx[ks]]))
        return selection_report(ds.masks, pred, idx, ds.n_classes, **kw)
