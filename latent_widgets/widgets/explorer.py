"""``LatentExplorer``: the scatter, the mask viewer and the slider, linked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import traitlets

from ._common import ErrorSink, View
from .interpolation_slider import InterpolationSlider
from .mask_viewer import MaskViewer
from .scatter import DEFAULT_GL_THRESHOLD, ProjectionScatter

__all__ = ["CLICK_ACTIONS", "LatentExplorer"]

#: What a click on the map does besides showing the sample: nothing, set A, set B.
CLICK_ACTIONS: tuple[str, ...] = ("show", "set A", "set B")


class LatentExplorer(View):
    """Explore a model's latent space: map, sample viewer and interpolation, linked.

    Clicking a point shows the sample in the mask viewer and, depending on
    the "click" toggle (:attr:`click_action`), sets the interpolation's
    endpoint A or B; the strip's path, its nearest neighbours and the
    slider's current point are drawn on the map. Exceptions raised in any
    callback are shown in :attr:`output` (and listed in
    ``explorer.errors.messages``) instead of being lost in the browser
    console.

    Parameters
    ----------
    latent_model : LatentModel
        The encoder / decoder pair (``LatentModel.from_model(net)``).
    dataset : SegmentationDataset
    encoding : Encoding, optional
        The dataset's encoding; ``latent_model.encode_dataset(dataset)``
        (disk-cached) by default.
    predictions : ndarray (N, H, W), optional
        Predicted masks; computed with ``predict_masks`` by default.
    method : str
        Initial projection ("pca", "tsne", "umap").
    methods : sequence of str
        Projections offered on the map.
    projections : mapping, optional
        Precomputed maps (see :class:`ProjectionScatter`).
    splits : sequence of str, optional
        Split name per sample (colour field "split").
    index_a, index_b : int, optional
        Initial endpoints (default: the first sample and the last).
    n_steps : int
        Steps of the interpolation strip.
    asynchronous : bool
        Decode slider values in a background thread (newest request wins).
    selected : int, optional
        Sample shown first in the viewer (default ``index_a``).
    display_width : int
        Width of the mask panes in px.
    gl_threshold : int
        Points above which the map uses bqplot-gl's ScatterGL (if installed).

    Attributes
    ----------
    scatter : ProjectionScatter
    viewer : MaskViewer
    slider : InterpolationSlider
    output : ipywidgets.Output
        Callback errors.
    errors : ErrorSink
    click_action : str (trait)
        One of :data:`CLICK_ACTIONS`.
    widget : ipywidgets.VBox

    Examples
    --------
    >>> import latent_widgets as lw  # doctest: +SKIP
    >>> lw.LatentExplorer(lw.LatentModel.from_model(net), data)  # doctest: +SKIP
    """

    click_action = traitlets.Unicode("show")

    def __init__(
        self,
        latent_model: Any,
        dataset: Any,
        *,
        encoding: Any = None,
        predictions: np.ndarray | None = None,
        method: str = "pca",
        methods: Sequence[str] = ("pca", "tsne", "umap"),
        projections: Mapping[str, np.ndarray] | None = None,
        splits: Sequence[str] | None = None,
        index_a: int = 0,
        index_b: int | None = None,
        n_steps: int = 12,
        asynchronous: bool = True,
        selected: int | None = None,
        display_width: int = 256,
        gl_threshold: int = DEFAULT_GL_THRESHOLD,
    ) -> None:
        self.model = latent_model
        self.dataset = dataset
        self.output = W.Output(layout=W.Layout(max_height="260px", overflow="auto", border="1px solid #e0b0b0"))
        self.errors = ErrorSink(self.output)
        if encoding is None:
            encoding = (
                latent_model.encode_dataset(dataset)
                if hasattr(latent_model, "encode_dataset")
                else latent_model.encode(dataset.images)
            )
        self.encoding = encoding
        if predictions is None:
            # predict_masks batches itself and returns int masks, never all the probabilities.
            predictions = np.asarray(latent_model.predict_masks(dataset.images)).astype(np.int32, copy=False)
        self.predictions = np.asarray(predictions)
        latents = np.asarray(encoding.latents)

        from ..neighbors import LatentIndex

        # One index of the dataset latents: the strip's nearest neighbours.
        self.latent_index = LatentIndex(latents)
        self.scatter = ProjectionScatter(
            latents,
            dataset,
            method=method,
            methods=methods,
            projections=projections,
            predictions=self.predictions,
            splits=splits,
            gl_threshold=gl_threshold,
            latent_index=self.latent_index,
            errors=self.errors,
        )
        self.viewer = MaskViewer(
            dataset, latent_model, predictions=self.predictions, display_width=display_width, errors=self.errors
        )
        self.slider = InterpolationSlider(
            latent_model,
            dataset,
            encoding=encoding,
            index_a=index_a,
            index_b=index_b,
            n_steps=n_steps,
            asynchronous=asynchronous,
            latent_index=self.latent_index,
            display_width=display_width,
            errors=self.errors,
        )

        self._click_buttons = W.ToggleButtons(
            options=list(CLICK_ACTIONS),
            description="click:",
            style={"button_width": "64px", "description_width": "40px"},
            tooltips=["show the sample", "show it and make it endpoint A", "show it and make it endpoint B"],
        )
        W.link((self, "click_action"), (self._click_buttons, "value"))
        clear = W.Button(description="clear errors", layout=W.Layout(width="110px"))
        clear.on_click(lambda _: self.errors.clear())
        self.widget = W.VBox(
            [
                W.HTML(
                    f"<h3 style='margin:4px 0'>Latent space of {type(latent_model).__name__} "
                    f"· {len(dataset)} samples</h3>"
                ),
                W.HBox([W.VBox([self._click_buttons, self.scatter.widget]), self.viewer.widget]),
                self.slider.widget,
                W.HBox([W.HTML("<b>errors</b>"), clear]),
                self.output,
            ]
        )
        self.widget.add_class("latent-explorer")

        self.scatter.observe(self.errors.guard(self._on_selected), "selected")
        self.slider.observe(self.errors.guard(self._on_strip), "strip_version")
        self.slider.observe(self.errors.guard(self._on_alpha), "alpha")
        self._on_strip(None)
        self.scatter.selected = self.slider.index_a if selected is None else int(selected)

    def _on_selected(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        if index is None:
            return
        self.viewer.show_sample(index)
        if self.click_action == "set A":
            self.slider.index_a = int(index)
        elif self.click_action == "set B":
            self.slider.index_b = int(index)

    def _on_strip(self, _change: Any) -> None:
        s = self.slider
        self.scatter.show_path(np.asarray(s.strip.latents), s.neighbor_indices, (s.index_a, s.index_b))
        self.scatter.set_current(s.alpha)

    def _on_alpha(self, change: Mapping[str, Any]) -> None:
        self.scatter.set_current(float(change["new"]))

    def close(self) -> None:
        """Stop the slider's decode worker and close the widgets."""
        self.slider.close()
        self.widget.close()
