"""``MaskViewer``: image, ground truth, prediction, overlay and errors of one sample."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ..data import colors
from ..views import render
from ._common import ErrorSink, View, blank_png, image_pane, labelled, watch_session

__all__ = ["PANES", "MaskViewer"]

# Notebook 7 squeezes a slider's readout to a few px ("0.!"): keep it whole.
_READOUT_CSS = (
    "<style>.lw-opacity .widget-readout {min-width: 3.2em; flex: 0 0 auto; overflow: visible;}"
    ".lw-opacity .slider-container {min-width: 60px;}</style>"
)

#: The image panes of the viewer, in display order.
PANES: tuple[str, ...] = ("image", "truth", "prediction", "overlay", "errors")


class MaskViewer(View):
    """Show a sample (or a decoded latent): input, truth, prediction, overlay, errors.

    Parameters
    ----------
    model : LatentModel, optional
        Predicts masks of samples without ``predictions`` and decodes
        latents for :meth:`show_latent`; ``None`` with ``predictions``.
    dataset : SegmentationDataset
        Images, masks, class names and the palette.
    predictions : ndarray of int, shape (N, H, W), optional
        Precomputed predicted masks (the explorer computes them once).
    index : int, optional
        Sample to show first.
    opacity : float
        Opacity of the mask in the overlay pane.
    display_width : int
        Width of each pane in px; small masks are upscaled with nearest
        neighbour (integer factor) so class boundaries stay sharp.
    errors : ErrorSink, optional
    session : ExplorerSession, optional
        Show the session's selected sample and use its dataset, model and
        predictions.

    Attributes
    ----------
    index : int or None (trait)
        The sample shown; ``None`` while showing a decoded latent.
    opacity : float (trait)
    image, true_mask, pred_mask : ndarray or None
        What is shown (``image`` float HxWx3, masks HxW int).
    iou : ndarray (n_classes,) or None
        Per-class IoU of the prediction (NaN for classes in neither mask).
    values : dict str -> bytes
        PNG bytes of each pane (:data:`PANES`).
    image_value : bytes
        PNG bytes of the prediction pane.

    Examples
    --------
    >>> from latent_widgets import synthetic_road_scenes
    >>> ds = synthetic_road_scenes(4, size=(48, 64), seed=0)
    >>> viewer = MaskViewer(dataset=ds, predictions=ds.masks, index=1)
    >>> viewer.pred_mask.shape, float(np.nanmean(viewer.iou))
    ((48, 64), 1.0)
    """

    index = traitlets.Int(None, allow_none=True)
    opacity = traitlets.Float(0.5, min=0.0, max=1.0)

    def __init__(
        self,
        model: Any = None,
        dataset: Any = None,
        *,
        session: Any = None,
        predictions: np.ndarray | None = None,
        index: int | None = None,
        opacity: float = 0.5,
        display_width: int = 256,
        errors: ErrorSink | None = None,
    ) -> None:
        super().__init__()
        if session is not None:
            dataset, model = session.dataset, session.model
        if dataset is None:
            raise ValueError("MaskViewer needs a dataset, or session=...")
        if not hasattr(dataset, "masks"):
            raise ValueError(
                f"MaskViewer's dataset must be a SegmentationDataset, got {type(dataset).__name__}; "
                "it takes (model, dataset), like the other widgets (model=None with predictions=...)"
            )
        self.dataset = dataset
        self.model = model
        self.session = session
        self._predictions = None if predictions is None else np.asarray(predictions)
        if self._predictions is not None and self._predictions.shape != dataset.masks.shape:
            raise ValueError(f"predictions {self._predictions.shape} do not match the masks {dataset.masks.shape}")
        self.errors = errors or ErrorSink()
        self._predicted: dict[int, np.ndarray] = {}
        h, w = dataset.image_size
        self.scale = render.display_scale(h, w, display_width)
        self.display_width = display_width
        self.image: np.ndarray | None = None
        self.true_mask: np.ndarray | None = None
        self.pred_mask: np.ndarray | None = None
        self.iou: np.ndarray | None = None
        self.title = ""

        self.panes = {name: image_pane(display_width) for name in PANES}
        self._captions = {name: W.HTML(f"<b style='font-size:12px'>{name}</b>") for name in PANES}
        self._title = W.HTML()
        self._opacity_slider = W.FloatSlider(
            min=0.0,
            max=1.0,
            step=0.05,
            description="opacity",
            continuous_update=True,
            readout_format=".2f",
            layout=W.Layout(width=f"{display_width}px", max_width="100%"),
            style={"description_width": "50px"},
        )
        self._opacity_slider.add_class("lw-opacity")
        self.legend = W.HTML(layout=W.Layout(width=f"{display_width}px", max_width="100%"))
        for name, pane in self.panes.items():
            pane.add_class(f"lw-viewer-{name}")  # CSS hooks for the browser tests
        boxes = {name: labelled(self.panes[name], self._captions[name]) for name in PANES}
        overlay_box = W.VBox([boxes["overlay"], self._opacity_slider])
        # Rows of panes wrap in a narrow output area instead of overflowing it.
        wrap = W.Layout(flex_flow="row wrap", align_items="flex-start")
        self.widget = W.VBox(
            [
                W.HTML(_READOUT_CSS),
                self._title,
                W.HBox([boxes["image"], boxes["truth"], boxes["prediction"]], layout=wrap),
                W.HBox([overlay_box, boxes["errors"], labelled(self.legend, "classes (IoU)")], layout=wrap),
            ],
            layout=W.Layout(max_width="100%", flex="0 1 auto"),
        )
        self.widget.add_class("lw-mask-viewer")
        self.set_trait("opacity", opacity)
        W.link((self, "opacity"), (self._opacity_slider, "value"))
        self._observe_guarded(self._on_opacity, "opacity")
        self._observe_guarded(self._on_index, "index")
        if index is not None:
            self.index = index
        if session is not None:
            # Follow the session's selected sample, once its prediction exists (the session predicts it on
            # request, on its model lane ahead of the bulk work: "predicted" moves when it is there).
            watch_session(self, session, self._follow_session, ["selected", "ready", "predicted"])
            # The clicked cell of a map of cells is outlined on the image.
            watch_session(self, session, self._on_selected_cell, "selected_cell")
            self._follow_session(None)

    def _follow_session(self, change: Any) -> None:
        s = self.session
        if s.selected is None:
            return
        if self._predictions is None and s.known_prediction(s.selected) is None:
            if s.model is not None and s.asynchronous:
                self._title.value = f"<b>#{s.selected}</b> <i>predicting…</i>"
                s.request_prediction(s.selected)
                return
            if not s.ready:
                self._title.value = f"<b>#{s.selected}</b> <i>encoding the dataset…</i>"
                return
        shown = self.index == s.selected and self.pred_mask is not None
        if shown and change is not None and change["name"] == "predicted":
            return  # already shown: other samples were predicted
        self.show_sample(s.selected)

    # ------------------------------------------------------------------ public

    @property
    def predictions(self) -> np.ndarray | None:
        """Predicted masks of the dataset (given, or the session's), or None."""
        if self._predictions is None and self.session is not None:
            return self.session.predictions
        return self._predictions

    @property
    def values(self) -> dict[str, bytes]:
        """PNG bytes currently shown in each pane."""
        return {name: bytes(pane.value) for name, pane in self.panes.items()}

    @property
    def image_value(self) -> bytes:
        """PNG bytes of the prediction pane."""
        return bytes(self.panes["prediction"].value)

    def predicted(self, index: int) -> np.ndarray:
        """Predicted mask of sample ``index`` (from ``predictions``, the session's, or the model, kept)."""
        if self.predictions is not None:
            return self.predictions[index]
        if self.session is not None and self.session.model is not None:
            return self.session.prediction(index)
        if index not in self._predicted:
            if self.model is None:
                raise ValueError("MaskViewer needs a model or predictions=... to show a predicted mask")
            self._predicted[index] = np.asarray(self.model.predict_masks(self.dataset.images[index : index + 1]))[0]
        return self._predicted[index]

    def show_sample(self, index: int) -> None:
        """Show sample ``index`` (same as setting ``viewer.index``)."""
        index = int(index)
        if self.index == index:
            self._show_sample(index)
        else:
            self.index = index

    def show_mask(
        self,
        pred_mask: np.ndarray,
        *,
        image: np.ndarray | None = None,
        true_mask: np.ndarray | None = None,
        title: str = "decoded latent",
    ) -> None:
        """Show an arbitrary predicted mask, e.g. of a decoded latent.

        Without ``image`` the image pane is blank and the overlay is drawn
        on grey; without ``true_mask`` the truth pane is blank, the error
        map is grey and there is no IoU.
        """
        self.set_trait("index", None)
        self._show(image, true_mask, np.asarray(pred_mask), title)

    def show_latent(
        self,
        latent: np.ndarray,
        skips: Any = None,
        *,
        image: np.ndarray | None = None,
        true_mask: np.ndarray | None = None,
        title: str = "decoded latent",
    ) -> None:
        """Decode one latent with the model and show its mask (see :meth:`show_mask`)."""
        if self.model is None:
            raise ValueError("MaskViewer needs a model to decode latents")
        z = np.asarray(latent, np.float32)
        if z.ndim == len(self.model.latent_shape):
            z = z[None]
        probs = np.asarray(self.model.decode(z, skips))
        self.show_mask(probs[0].argmax(-1), image=image, true_mask=true_mask, title=title)

    # ------------------------------------------------------------------ drawing

    def _on_index(self, change: Mapping[str, Any]) -> None:
        if change["new"] is not None:
            self._show_sample(int(change["new"]))

    def _show_sample(self, index: int) -> None:
        ds = self.dataset
        if not 0 <= index < len(ds):
            raise IndexError(f"sample {index} is out of range for a dataset of {len(ds)} samples")
        group = ""
        if ds.groups is not None:
            g = int(ds.groups[index])
            group = f" · {ds.group_names[g] if ds.group_names and g < len(ds.group_names) else f'group {g}'}"
        self._show(ds.images[index], ds.masks[index], self.predicted(index), f"#{index} {ds.names[index]}{group}")

    def _show(self, image: np.ndarray | None, true_mask: np.ndarray | None, pred_mask: np.ndarray, title: str) -> None:
        from ..analysis.metrics import iou_per_class

        ds, s = self.dataset, self.scale
        h, w = pred_mask.shape
        self.image, self.true_mask, self.pred_mask, self.title = image, true_mask, pred_mask, title
        # The session's ignored class (CamVid's Unlabelled) is not scored here either.
        ignore = getattr(self.session, "ignore_index", getattr(ds, "ignore_index", None))
        self.iou = (
            None
            if true_mask is None
            else np.asarray(iou_per_class(pred_mask, true_mask, ds.n_classes, ignore_index=ignore), float)
        )
        blank = blank_png(h * s, w * s)
        self.panes["image"].value = blank if image is None else self._image_png()
        self.panes["truth"].value = blank if true_mask is None else render.mask_png(true_mask, ds.palette, scale=s)
        self.panes["prediction"].value = render.mask_png(pred_mask, ds.palette, scale=s)
        self.panes["errors"].value = render.to_png(render.error_map(pred_mask, true_mask, image), scale=s)
        self._draw_overlay()
        if true_mask is None:
            self._captions["errors"].value = "<b style='font-size:12px'>errors</b> <i>(no ground truth)</i>"
        else:
            wrong = float((pred_mask != true_mask).mean())
            self._captions["errors"].value = f"<b style='font-size:12px'>errors</b> ({100 * wrong:.1f}% of pixels)"
        miou = "" if self.iou is None or np.isnan(self.iou).all() else f" · mean IoU {np.nanmean(self.iou):.3f}"
        self._title.value = f"<b>{html.escape(title)}</b>{miou}"
        self.legend.value = self.legend_html()

    @property
    def cell_box(self) -> tuple[int, int, int, int] | None:
        """The outlined cell on the image pane, ``(y0, x0, y1, x1)`` in displayed px, or None.

        The session's :attr:`~latent_widgets.session.ExplorerSession.selected_cell`
        (a cell clicked on a map of cells) when the pane shows its sample:
        :func:`~latent_widgets.latents.cells.cell_box` at the mask's resolution,
        times the display scale.
        """
        s = self.session
        if s is None or s.selected_cell is None or self.index is None or self.index != s.selected:
            return None
        from ..latents.cells import cell_box

        box = cell_box(s.grid, self.dataset.image_size, *s.selected_cell)
        return tuple(int(v) * self.scale for v in box)  # type: ignore[return-value]

    def _image_png(self) -> bytes:
        rgb = render.upscale(render.as_uint8(self.image), self.scale)
        box = self.cell_box
        if box is not None:
            from .cell_overlay import outline_box

            rgb = outline_box(rgb, box)
        return render.to_png(rgb)

    def _on_selected_cell(self, _change: Any) -> None:
        if self.image is not None and self.index is not None:
            self.panes["image"].value = self._image_png()

    def _draw_overlay(self) -> None:
        if self.pred_mask is None:
            return
        base = self.image if self.image is not None else np.full((*self.pred_mask.shape, 3), 0.5, np.float32)
        self.panes["overlay"].value = render.to_png(
            render.overlay(base, self.pred_mask, self.dataset.palette, self.opacity), scale=self.scale
        )

    def _on_opacity(self, change: Mapping[str, Any]) -> None:
        self._draw_overlay()

    def legend_html(self) -> str:
        """HTML of the class legend: colour, name, per-class IoU of the shown sample."""
        ds = self.dataset
        present = set()
        if self.pred_mask is not None:
            present |= set(np.unique(self.pred_mask).tolist())
        if self.true_mask is not None:
            present |= set(np.unique(self.true_mask).tolist())
        rows = []
        for c, (name, colour) in enumerate(zip(ds.class_names, colors.hex_colours(ds.palette), strict=False)):
            iou = "" if self.iou is None or c >= len(self.iou) or np.isnan(self.iou[c]) else f"{self.iou[c]:.2f}"
            style = "" if c in present else "opacity:0.45"
            rows.append(
                f"<tr style='{style}'><td><span style='display:inline-block;width:12px;height:12px;"
                f"background:{colour};border:1px solid #555'></span></td>"
                f"<td style='padding:0 6px'>{html.escape(name)}</td><td style='text-align:right'>{iou}</td></tr>"
            )
        return f"<table style='font-size:11px;line-height:1.2'>{''.join(rows)}</table>"
