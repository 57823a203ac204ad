"""``SelectionPanel``: what the selected samples get wrong.

A view of the session's selection (``session.selection``, set by the
map's lasso or brush or from Python) and of its report
(``session.report``, a :class:`~latent_widgets.analysis.failures.SelectionReport`):
the count, the selection's mean IoU against the whole set's, the
row-normalised confusion matrix with class names and a gallery of the
worst samples (image, truth, prediction, error map). Clicking a gallery
item shows that sample (``session.selected``).
"""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as W
import numpy as np

from ..session import ExplorerSession
from ..views import render
from ._common import ErrorSink, View, blank_png, watch_session

__all__ = ["SelectionPanel"]

_EMPTY = (
    "<span class='lw-selection-empty' style='font-size:12px;color:#555'>No selection: switch the map to "
    "<b>lasso</b> or <b>brush</b> and draw around points, or set <code>session.selection</code>.</span>"
)


class SelectionPanel(View):
    """The selection's summary, confusion matrix and worst samples.

    Parameters
    ----------
    session : ExplorerSession
    errors : ErrorSink, optional
        Where callback exceptions go.
    n_worst : int
        Samples in the gallery (worst per-sample mean IoU first).
    thumb_height : int
        Height of each gallery tile in px.
    confusion_px : int
        Displayed width of the confusion matrix.

    Attributes
    ----------
    report : SelectionReport or None
        What the panel shows (the session's report).
    summary : ipywidgets.HTML
        "N samples selected · mean IoU x (whole set y)".
    confusion : ipywidgets.Image
        The normalised confusion matrix (PNG, :func:`~latent_widgets.views.figures.confusion_figure`).
    gallery_indices : list of int
        The samples in the gallery, worst first.
    widget : ipywidgets.VBox

    Examples
    --------
    >>> panel = SelectionPanel(session)  # doctest: +SKIP
    >>> session.selection = [3, 5, 8]; panel.gallery_indices  # doctest: +SKIP
    [8, 3, 5]
    """

    def __init__(
        self,
        session: ExplorerSession,
        *,
        errors: ErrorSink | None = None,
        n_worst: int = 6,
        thumb_height: int = 56,
        confusion_px: int = 460,
    ) -> None:
        super().__init__()
        self.session = session
        self.errors = errors or ErrorSink()
        self.n_worst = int(n_worst)
        self.thumb_height = int(thumb_height)
        self.report: Any = None
        self.gallery_indices: list[int] = []
        self.summary = W.HTML(_EMPTY)
        self.summary.add_class("lw-selection-summary")
        self.confusion = W.Image(
            value=blank_png(8, 8),
            format="png",
            layout=W.Layout(width=f"{confusion_px}px", max_width="100%", height="auto", display="none"),
        )
        self.confusion.add_class("lw-confusion")
        self.gallery = W.VBox(layout=W.Layout(max_width="100%"))
        self.gallery.add_class("lw-worst-gallery")
        self.widget = W.VBox(
            [
                W.HTML("<b style='font-size:13px'>selection</b>"),
                self.summary,
                W.HBox(
                    [self.confusion, self.gallery],
                    layout=W.Layout(flex_flow="row wrap", align_items="flex-start", grid_gap="4px 12px"),
                ),
            ],
            layout=W.Layout(max_width="100%", border="1px solid #ddd", padding="4px", margin="4px 0"),
        )
        self.widget.add_class("lw-selection-panel")
        watch_session(self, session, self._on_selection, "selection")
        watch_session(self, session, self._on_report, "report")
        self._on_selection(None)
        self._on_report(None)

    def _on_selection(self, _change: Any) -> None:
        n = len(self.session.selection)
        if not n:
            self.summary.value = _EMPTY
        elif self.report is None or not np.array_equal(self.report.indices, self.session.selection):
            self.summary.value = f"<span style='font-size:12px'><b>{n}</b> samples selected · <i>computing…</i></span>"

    def _on_report(self, _change: Any) -> None:
        report = self.session.report
        self.report = report
        if report is None:
            self.confusion.layout.display = "none"
            self.gallery.children = ()
            self.gallery_indices = []
            if not len(self.session.selection):
                self.summary.value = _EMPTY
            return
        self.summary.value = self.summary_html(report)
        self.confusion.value = self.confusion_png(report)
        self.confusion.layout.display = None
        self._fill_gallery(report)

    @staticmethod
    def summary_html(report: Any) -> str:
        """The panel's summary line of ``report``."""
        line = f"<b>{len(report.indices)}</b> samples selected · mean IoU <b>{report.mean_iou:.3f}</b>"
        if np.isfinite(report.mean_iou_all):
            delta = report.mean_iou - report.mean_iou_all
            line += f" (whole set {report.mean_iou_all:.3f}, {delta:+.3f})"
        return f"<span style='font-size:12px'>{line}</span>"

    @staticmethod
    def confusion_png(report: Any) -> bytes:
        """PNG of :func:`~latent_widgets.views.figures.confusion_figure` of ``report``."""
        from ..views.figures import confusion_figure

        fig = confusion_figure(report)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        return buf.getvalue()

    def tile(self, index: int) -> np.ndarray:
        """One gallery tile of sample ``index``: image, truth, prediction, error map (RGB)."""
        ds, h = self.session.dataset, self.thumb_height
        image, truth = ds.images[index], ds.masks[index]
        pred = self.session.prediction(index)
        return render.hstack(
            [
                render.thumbnail(image, height=h),
                render.thumbnail(render.colorize(truth, ds.palette), height=h),
                render.thumbnail(render.colorize(pred, ds.palette), height=h),
                render.thumbnail(render.error_map(pred, truth, image), height=h),
            ]
        )

    def _fill_gallery(self, report: Any) -> None:
        worst = [int(i) for i in np.asarray(report.worst)[: self.n_worst]]
        iou = dict(zip(np.asarray(report.indices).tolist(), np.asarray(report.sample_iou).tolist(), strict=True))
        items = []
        for i in worst:
            img = W.Image(value=render.to_png(self.tile(i)), format="png", layout=W.Layout(width="auto"))
            button = W.Button(
                description=f"#{i} · IoU {iou.get(i, float('nan')):.2f}",
                tooltip=f"show sample #{i} ({html.escape(str(self.session.dataset.names[i]))})",
                layout=W.Layout(width="auto"),
            )
            button.add_class("lw-worst-item")
            button.on_click(self.errors.guard(lambda _b, i=i: self.show(i)))
            items.append(W.HBox([button, img], layout=W.Layout(align_items="center")))
        header = W.HTML(
            "<span style='font-size:12px'>worst samples: image · truth · prediction · errors (click to show)</span>"
        )
        self.gallery.children = (header, *items)
        self.gallery_indices = worst

    def show(self, index: int) -> None:
        """Show sample ``index`` (what clicking its gallery item does)."""
        self.session.selected = int(index)
