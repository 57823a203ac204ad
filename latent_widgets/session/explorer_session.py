"""``ExplorerSession``: the explorer's state and its long jobs, in plain Python.

The widgets are views of one session: they observe its traits and write
user input into it. Everything they show is reachable here, so a script or
a test drives the explorer with no widget at all::

    session = ExplorerSession(lm, data, asynchronous=False)
    session.index_b = 138
    session.alpha = 0.37
    session.current.mask        # the decoded mask at alpha 0.37
    session.strip.n_distinct    # distinct nearest samples along the path

Long work runs on two background lanes (one thread each) when
``asynchronous``: the *model* lane (encode and predict at start, strip
decode, on-demand decode, the scrub grid: one TensorFlow call at a time) and the *map*
lane (PCA / t-SNE / UMAP fits, map quality and placing the path on a map), so a UMAP fit
never holds up the alpha slider. In each lane the newest request wins:
queued requests that are no longer the newest are skipped and a result
that no longer matches the state is dropped. :attr:`busy` says what runs.
This module imports neither ipywidgets nor bqplot.

Interactive work goes first: a lane runs its queued jobs most urgent first
(the slider's decode; the strip, the shown sample's prediction; the scrub
grid; then bulk work), and bulk work (encoding the dataset for the map,
predicting every mask, map quality) runs in chunks of about a quarter of a
second that let the queued interactive jobs run between them. A session
starts by encoding the slider's two endpoints alone (:attr:`live`: the
mask, the strip and the scrub grid work), then encodes the dataset
(:attr:`ready`: the map), then predicts the masks in the background
(:attr:`predicted`, :attr:`progress`), from a disk cache keyed by the
model's and the data's hashes when a session computed them before.

The session is the one object the views observe: it holds the traits and
the public attributes, and is made of parts, plain objects that hold the
logic and the state of one concern each (each given the session):
:class:`~.runner.JobRunner` (``jobs``: the two lanes, the newest-request
generations, :attr:`busy`, :attr:`errors`, :attr:`progress`),
:class:`~.encodings.Encodings` (the start-up and what is encoded),
:class:`~.predictor.Predictor` (the predicted masks and their scores),
:class:`~.map_state.MapState` (the map points, the maps, the path placed on
them), :class:`~.quality.MapQuality`, :class:`~.color_fields.ColorFields`
(``coloring``), :class:`~.path.PathDecodes` (``path``: the strip, the
slider's mask, the scrub grid) and :class:`~.reports.SelectionReports`
(``reports``); :mod:`~.persistence` saves and exports a session and
:mod:`~.validation` holds the traits' validators.

Examples
--------
>>> import numpy as np
>>> from latent_widgets import synthetic_road_scenes
>>> ds = synthetic_road_scenes(12, size=(48, 64), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(12, -1)[:, ::50], asynchronous=False)
>>> s.maps["pca"].shape, s.busy
((12, 2), ())
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import traitlets

from .color_fields import ColorFields
from .encodings import Encodings
from .map_state import MapState
from .path import PathDecodes
from .persistence import export_session, session_arguments, session_json
from .predictor import Predictor
from .quality import MapQuality
from .reports import SelectionReports
from .runner import JobRunner
from .validation import (
    apply_settings,
    capped_scrub_steps,
    check_arguments,
    check_ignore_index,
    check_projections,
    valid_alpha,
    valid_color_by,
    valid_index,
    valid_map_method,
    valid_map_points,
    valid_n_steps,
    valid_path_method,
    valid_selected_cell,
    valid_skip_policy,
)
from .values import ColorField, IndexSelection, PathKey, ScrubFrames, Strip, StripStep

__all__ = ["ExplorerSession"]


class ExplorerSession(traitlets.HasTraits):
    """All state of the explorer and the jobs that compute it.

    Parameters
    ----------
    model : LatentModel or None
        The encoder / decoder pair. ``None`` gives a maps-only session
        (``latents`` required): no strip, no decoding.
    dataset : SegmentationDataset
    encoding : Encoding, optional
        The dataset's encoding; ``model.encode_dataset(dataset)`` (disk
        cached) by default, computed on the model lane.
    latents : ndarray (N, ...), optional
        Latents for a maps-only session (no model).
    predictions : ndarray (N, H, W), optional
        Predicted masks; by default the model's, computed in the background
        (model lane, after the interactive work) and cached on disk by the
        model's and the data's content hashes.
    methods : sequence of str
        Map methods offered ("pca", "tsne", "umap").
    map_method : str
        The map shown first.
    projections : mapping method -> ndarray (N, 2), optional
        Precomputed maps (no fitted object: paths are placed by their 3
        nearest samples).
    projection_kwargs : mapping method -> dict, optional
        Extra arguments of each method's fit.
    index_a, index_b : int, optional
        Endpoints (default: the first and the last sample).
    n_steps, path_method, skip_policy, alpha
        The interpolation path and the slider's start value.
    asynchronous : bool
        Run long jobs on background threads (the widgets' default); when
        False every job runs inline and errors propagate (scripts, tests).
    max_cached_strips : int
        Decoded strips kept (least recently used dropped first).
    predict : bool or "auto"
        Predict the dataset's masks in the background once it is encoded
        (the "mean IoU" colours need them and fill in as they come; the
        viewer's sample is predicted first, and a slider alone needs none).
        ``"auto"``: only when all masks hold at most
        :data:`~.predictor.PREDICT_ALL_PIXELS` pixels (about 4,000 samples
        of 128x128), so that a 100k-sample session starts without decoding
        everything.
    scrub_steps : int
        Frames of the fine alpha grid decoded in the background after each
        path change (:attr:`frames`); 0 turns it off. Capped so that a grid
        holds at most 16 MiB of masks.
    ignore_index : int, None or "dataset"
        A class id whose true pixels are left out of every IoU and confusion
        matrix (the report, "mean IoU", "IoU: <class>", the cell classes);
        ``"dataset"`` (default): the dataset's own ``ignore_index``
        (CamVid's "Unlabelled", see :func:`~latent_widgets.data.camvid.load_camvid`);
        ``None``: every class is scored.

    Attributes
    ----------
    index_a, index_b, n_steps, alpha, path_method, skip_policy, map_method, selected
        User input (traits).
    live : bool (trait)
        The slider's endpoints are encoded: the current mask, the strip and
        the scrub grid are decoded (the dataset may still be encoding).
    ready : bool (trait)
        The dataset's encoding is available (the map, the strip's nearest
        samples). Predictions may still be computed in the background.
    predicted : int (trait)
        How many samples have a predicted mask so far (``len(dataset)`` once
        :attr:`predictions` is set); bumped as the background prediction
        goes, at most twice a second.
    progress : dict (trait)
        Bulk jobs under way: label ("encode dataset", "predict") -> ``(done,
        total)``, what the busy indicator shows ("predict 128/367").
    maps : dict method -> ndarray (N, 2) (trait)
        The maps computed so far.
    path_points : ndarray (n_steps, 2) or None (trait)
        The strip's steps placed on the current map.
    strip : Strip or None (trait)
    current : StripStep or None (trait)
        The mask at (the newest decoded) ``alpha``.
    frames : ScrubFrames or None (trait)
        The current path's masks on the fine alpha grid, once decoded.
    selection : ndarray of int64 (trait)
        The samples selected on the map (lasso, brush) or from Python:
        sorted, unique; empty by default. Set any int sequence or a
        boolean mask.
    color_by : str (trait)
        The colour field of the map, one of :meth:`color_fields`.
    map_points : str (trait)
        What a map point is: ``"flatten"`` (the whole latent),
        ``"pooled"`` (its average over the latent grid) or ``"cells"``
        (each cell of each latent grid a point, N * h * w in all, coloured
        by "cell class" by default); see :data:`~.validation.MAP_POINTS`,
        :meth:`point_sample` and :meth:`n_points`. A map of cells draws
        no path (a path step is h * w points there).
    selected_cell : (int, int) or None (trait)
        The clicked cell ``(row, col)`` of the :attr:`selected` sample on
        a map of cells (:meth:`click_point`); None on other maps.
    report : SelectionReport or None (trait)
        :meth:`selection_report` of the current selection, kept up to
        date (on the model lane); None when nothing is selected.
    quality : dict (trait)
        Per-point map quality computed so far: map key -> {"trustworthiness":
        (N,), "kNN preservation": (N,)}.
    splits : ndarray of str or None
        A split name per sample (the "split" colour field).
    ignore_index : int or None
        The class left out of the scores (read-only; saved by :meth:`to_json`).
    busy : tuple of str (trait)
        Labels of the queued and running jobs ("encode", "strip", "decode",
        "frames", "encode dataset", "predict", "map: umap"...); empty when idle.
    errors : tuple of Exception (trait)
        The errors background jobs raised (``wait()`` raises them too).
    jobs, encodings, predictor, map_state, map_quality, coloring, path, reports
        The parts the session is made of, one per concern (see the module
        docstring); its methods delegate to them.

    Examples
    --------
    >>> s = ExplorerSession(lm, data, asynchronous=False)  # doctest: +SKIP
    >>> s.alpha = 0.5; s.current.mask.shape  # doctest: +SKIP
    (96, 128)
    """

    # Ranges are checked by the validators (.validation), whose messages name the field, the value and the range.
    index_a = traitlets.Int(0)
    index_b = traitlets.Int(0)
    n_steps = traitlets.Int(12)
    alpha = traitlets.Float(0.0)
    path_method = traitlets.Unicode("linear")
    skip_policy = traitlets.Unicode("image")
    map_method = traitlets.Unicode("pca")
    selected = traitlets.Int(None, allow_none=True)
    selection = IndexSelection()
    color_by = traitlets.Unicode("group")
    map_points = traitlets.Unicode("flatten")
    selected_cell = traitlets.Any(None, allow_none=True)

    live = traitlets.Bool(False)
    ready = traitlets.Bool(False)
    predicted = traitlets.Int(0)
    progress = traitlets.Dict()
    report = traitlets.Any(None, allow_none=True)
    quality = traitlets.Dict()
    maps = traitlets.Dict()
    path_points = traitlets.Instance(np.ndarray, allow_none=True)
    strip = traitlets.Instance(Strip, allow_none=True)
    current = traitlets.Instance(StripStep, allow_none=True)
    frames = traitlets.Instance(ScrubFrames, allow_none=True)
    busy = traitlets.Tuple()
    errors = traitlets.Tuple()

    _valid_path_method = traitlets.validate("path_method")(valid_path_method)
    _valid_policy = traitlets.validate("skip_policy")(valid_skip_policy)
    _valid_map_method = traitlets.validate("map_method")(valid_map_method)
    _valid_color_by = traitlets.validate("color_by")(valid_color_by)
    _valid_map_points = traitlets.validate("map_points")(valid_map_points)
    _valid_selected_cell = traitlets.validate("selected_cell")(valid_selected_cell)
    _valid_index = traitlets.validate("index_a", "index_b", "selected")(valid_index)
    _valid_n_steps = traitlets.validate("n_steps")(valid_n_steps)
    _valid_alpha = traitlets.validate("alpha")(valid_alpha)

    def __init__(
        self,
        model: Any,
        dataset: Any,
        *,
        encoding: Any = None,
        latents: np.ndarray | None = None,
        predictions: np.ndarray | None = None,
        methods: Sequence[str] = ("pca", "tsne", "umap"),
        map_method: str | None = None,
        projections: Mapping[str, np.ndarray] | None = None,
        projection_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        index_a: int = 0,
        index_b: int | None = None,
        n_steps: int = 12,
        path_method: str = "linear",
        skip_policy: str = "image",
        alpha: float = 0.0,
        selected: int | None = None,
        selection: Sequence[int] | np.ndarray | None = None,
        color_by: str | None = None,
        map_points: str = "flatten",
        selected_cell: tuple[int, int] | None = None,
        splits: Sequence[str] | np.ndarray | None = None,
        asynchronous: bool = True,
        max_cached_strips: int = 8,
        predict: bool | str = "auto",
        scrub_steps: int = 64,
        ignore_index: int | str | None = "dataset",
    ) -> None:
        super().__init__()
        check_arguments(model, dataset, latents, encoding, predict)
        # Checked with the traits below, so that a saved session's invalid fields are all reported together.
        invalid: list[Exception] = []
        try:
            self._ignore_index = check_ignore_index(ignore_index, dataset)
        except ValueError as exc:
            invalid.append(exc)
            self._ignore_index = None
        self.model, self.dataset, self.methods, self.asynchronous = model, dataset, tuple(methods), asynchronous
        self.predict = predict
        self.scrub_steps = capped_scrub_steps(scrub_steps, dataset.image_size)
        self.max_cached_strips = max_cached_strips
        self.encoding = encoding
        self.predictions = None if predictions is None else np.asarray(predictions)
        self.encodings = Encodings(self, latents)
        self.encodings.check_lengths()
        self.latent_index: Any = None
        self.projectors: dict[str, Any] = {}
        self.maps = check_projections(projections, len(dataset))
        #: How many on-demand (non-strip) decodes ran; strip steps do not count.
        self.ondemand_decodes = 0
        self.jobs = JobRunner(self, asynchronous)
        self.splits: np.ndarray | None = None
        self.coloring = ColorFields(self)
        self.coloring.set_splits(splits)
        self.predictor = Predictor(self)
        self.map_state = MapState(self, projection_kwargs)
        self.map_quality = MapQuality(self)
        self.path = PathDecodes(self)
        self.reports = SelectionReports(self)
        # One at a time, in this order (the colour fields and the selected cell depend on the points), with
        # no observer registered yet: every invalid setting is reported, not only the first.
        settings: list[tuple[str, Callable[[], Any]]] = [
            ("index_a", lambda: index_a),
            ("index_b", lambda: len(dataset) - 1 if index_b is None else index_b),
            ("n_steps", lambda: n_steps),
            ("path_method", lambda: path_method),
            ("skip_policy", lambda: skip_policy),
            ("alpha", lambda: float(alpha) if isinstance(alpha, np.floating) else alpha),
            ("map_method", lambda: map_method or self.methods[0]),
            ("selected", lambda: self.index_a if selected is None else selected),
            ("selection", lambda: selection),
            ("map_points", lambda: map_points),
            ("color_by", lambda: color_by or self.coloring.default_field()),
            ("selected_cell", lambda: selected_cell),
        ]
        apply_settings(self, settings, invalid)
        self.observe(self.reports.on_selection, "selection")
        self.observe(self.map_quality.on_color_by, "color_by")
        self.observe(self.map_state.on_map_points, "map_points")
        self.observe(self.path.on_path, ["index_a", "index_b", "path_method", "skip_policy", "n_steps"])
        self.observe(self.path.on_alpha, "alpha")
        self.observe(self.map_state.on_map_method, "map_method")
        self.observe(self.map_state.place_path, "strip")
        self.encodings.start()

    @property
    def ignore_index(self) -> int | None:
        """The class id whose true pixels are not scored (None: every class is)."""
        return self._ignore_index

    @property
    def latents(self) -> np.ndarray:
        """One latent per sample (N, ...); available once :attr:`ready`."""
        return self.encodings.latents

    @property
    def key(self) -> PathKey:
        """The current path."""
        return PathKey(self.index_a, self.index_b, self.path_method, self.skip_policy, self.n_steps)

    @property
    def points(self) -> np.ndarray | None:
        """The current map (N, 2), or None while it is computed."""
        return self.maps.get(self.map_key())

    def wait(self, timeout: float | None = 60.0, raise_errors: bool = True) -> None:
        """Block until every queued job has finished (a no-op when synchronous); see :meth:`.JobRunner.wait`."""
        self.jobs.wait(timeout, raise_errors)

    def close(self) -> None:
        """Stop the worker threads."""
        self.jobs.close()

    def clear_errors(self) -> None:
        """Forget the errors of the background jobs (``wait()`` no longer raises them)."""
        self.jobs.clear_errors()

    def known_prediction(self, index: int) -> np.ndarray | None:
        """Sample ``index``'s predicted mask if known, else None; see :meth:`.Predictor.known_prediction`."""
        return self.predictor.known_prediction(index)

    def request_prediction(self, index: int) -> Future | None:
        """Predict sample ``index`` ahead of the bulk work; see :meth:`.Predictor.request_prediction`."""
        return self.predictor.request_prediction(index)

    def prediction(self, index: int) -> np.ndarray:
        """The predicted mask of sample ``index``: the session's, else the model's (one call, kept)."""
        return self.predictor.prediction(index)

    def sample_iou(self) -> np.ndarray:
        """Mean IoU of each sample's prediction against its mask, shape (N,) (NaN: no class present)."""
        return self.predictor.sample_iou()

    def map_key(self, method: str | None = None, map_points: str | None = None) -> str:
        """Key of a map in :attr:`maps`: the method ("pca"), prefixed for pooled points ("pooled:pca")."""
        return self.map_state.map_key(method, map_points)

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(h, w)`` of the latent grid, or None for flat latents (or while the shape is unknown)."""
        return self.map_state.grid()

    def n_points(self, map_points: str | None = None) -> int:
        """How many points a map of ``map_points`` (default: the current) has: N, or N * h * w for cells."""
        return self.map_state.n_points(map_points)

    def point_sample(self, point: int) -> tuple[int, int | None, int | None]:
        """What point ``point`` of the current map is: ``(sample, row, col)``; see :meth:`.MapState.point_sample`."""
        return self.map_state.point_sample(point)

    def samples_of_points(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """The samples (sorted, unique, int64) the map points ``points`` belong to."""
        return self.map_state.samples_of_points(points)

    def points_of_samples(self, samples: Sequence[int] | np.ndarray) -> np.ndarray:
        """The map points of ``samples``: the samples themselves, or all their cells (cells map)."""
        return self.map_state.points_of_samples(samples)

    def click_point(self, point: int) -> int:
        """Do what a click on map point ``point`` does (:attr:`selected`, :attr:`selected_cell`); its sample."""
        return self.map_state.click_point(point)

    def select_points(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """Select the samples of map points ``points`` (a lasso, a brush): sets :attr:`selection`."""
        return self.map_state.select_points(points)

    def map_latents(self, map_points: str | None = None) -> Any:
        """What the maps of ``map_points`` (default: the current) are fitted on; see :meth:`.MapState.map_latents`."""
        return self.map_state.map_latents(map_points)

    def request_map(self, method: str) -> Future | None:
        """Fit the map of ``method`` (current points) on the map lane unless it exists; ``None`` if it does."""
        return self.map_state.request_map(method)

    def fit_map(self, method: str, map_points: str | None = None) -> np.ndarray:
        """The map of ``method``, fitted now (in the caller's thread) if it is missing."""
        return self.map_state.fit_map(method, map_points)

    def place(self, latents: np.ndarray, method: str | None = None) -> np.ndarray:
        """Place new latents (e.g. a path) on a map, shape (M, 2); see :meth:`.MapState.place`."""
        return self.map_state.place(latents, method)

    def set_splits(self, splits: Sequence[str] | np.ndarray | None) -> None:
        """Give each sample a split name ("train", "val"...) for the "split" colour field."""
        self.coloring.set_splits(splits)

    def color_fields(self) -> tuple[str, ...]:
        """The colour fields of the map (what :attr:`color_by` accepts)."""
        return self.coloring.fields()

    def cell_classes(self) -> np.ndarray:
        """The dominant true class under each latent cell, (N, h, w); see :meth:`.ColorFields.cell_classes`."""
        return self.coloring.cell_classes()

    def color_values(self, field: str | None = None) -> ColorField:
        """The values of colour field ``field`` (default :attr:`color_by`); see :meth:`.ColorFields.values`."""
        return self.coloring.values(field)

    def selection_report(self, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """The report of the selection (or ``indices``); see :meth:`.SelectionReports.selection_report`."""
        return self.reports.selection_report(indices)

    def cell_movement(self) -> Any:
        """How far each latent cell moves along the current strip, or None; see :meth:`.PathDecodes.cell_movement`."""
        return self.path.cell_movement()

    def decode_masks(self, alphas: np.ndarray, key: PathKey | None = None) -> np.ndarray:
        """Masks (len(alphas), H, W) of the path at ``alphas``, one decoder call."""
        return self.path.decode_masks(alphas, key)

    def compute_strip(self, key: PathKey | None = None) -> Strip:
        """Decode the strip of a path (default: the current one); see :meth:`.PathDecodes.compute_strip`."""
        return self.path.compute_strip(key)

    def decode_alpha(self, alpha: float, key: PathKey | None = None) -> StripStep:
        """Decode the path at one ``alpha`` (no caching, no display)."""
        return self.path.decode_alpha(alpha, key)

    def to_json(self) -> str:
        """The session's view as JSON, for :meth:`from_json`; see :func:`.persistence.session_json`."""
        return session_json(self)

    @classmethod
    def from_json(cls, text: str, model: Any, dataset: Any, **kwargs: Any) -> ExplorerSession:
        """A session restored from :meth:`to_json`'s text; see :func:`.persistence.session_arguments`."""
        return cls(model, dataset, **session_arguments(text, model, dataset, **kwargs))

    def export(self, folder: str | Path) -> list[Path]:
        """Write ``session.json`` and the current figures into ``folder``; see :func:`.persistence.export_session`."""
        return export_session(self, folder)
