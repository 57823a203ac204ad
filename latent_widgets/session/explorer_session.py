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
lane (PCA / t-SNE / UMAP fits and placing the path on a map), so a UMAP fit
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

import dataclasses
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import traitlets

from ..data import colors
from ..views import render
from .identity import data_hash, model_hash, points_hash
from .jobs import BULK, FRAMES, NOW, Lane
from .predictions import PredictedMasks
from .values import (
    ColorField,
    IndexSelection,
    PathKey,
    ScrubFrames,
    SessionMismatchError,
    SessionStateError,
    Strip,
    StripStep,
    is_int,
)

__all__ = [
    "CELL_QUALITY_SAMPLE",
    "MAP_POINTS",
    "N_STEPS_RANGE",
    "POINT_QUALITY_MAX",
    "PREDICT_ALL_PIXELS",
    "ExplorerSession",
    "quality_rows",
]

#: ``predict="auto"`` predicts every mask at start up to this many pixels in all.
PREDICT_ALL_PIXELS = 1 << 26
_PREDICT_BLOCK = 256
#: What each point of the map is: a sample's flattened latent, its average over the grid, or one grid cell.
MAP_POINTS: tuple[str, ...] = ("flatten", "pooled", "cells")
#: The strip's step counts (``n_steps``), smallest and largest.
N_STEPS_RANGE = (2, 64)
#: Above this many samples the per-point map quality (trustworthiness, kNN preservation) is not computed:
#: its exact neighbour ranks cost O(N^2) time.
POINT_QUALITY_MAX = 20_000
#: On a map of more cells than this, the per-point quality is computed on this many cells drawn at random
#: (seed 0), their neighbours taken among them; the other cells are NaN (grey). CamVid's 17,616 cells of
#: a 6 x 8 grid took 101 s exactly on 2 shared cores, 4,000 cells 5 s.
CELL_QUALITY_SAMPLE = 4_000
_QUALITY_FIELDS = ("trustworthiness", "kNN preservation")
_SESSION_FORMAT = "latent-widgets-session"


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


def _check_ignore_index(value: Any, dataset: Any) -> int | None:
    """The session's ``ignore_index``: ``"dataset"`` resolved, a class id checked."""
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


def _jsonable(value: Any, what: str) -> Any:
    """``value`` with numpy scalars and arrays made plain; a clear error for what JSON cannot hold."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, what) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{what} = {value!r} cannot be saved in a session file (JSON): use plain numbers and strings")


class _StripNeighbors(NamedTuple):
    indices: np.ndarray
    distances: np.ndarray


def _sample_encoding(encoding: Any, i: int) -> Any:
    """One sample's encoding, keeping the batch axis (what path_inputs expects)."""
    return type(encoding)(encoding.latents[i : i + 1], tuple(s[i : i + 1] for s in encoding.skips))


#: A bulk chunk takes about this long (rows per chunk are sized from a timed row): what a slider request
#: queued behind it waits at most, beside its own decode.
_CHUNK_SECONDS = 0.25
#: A partial scrub grid (all its frames: 7 MiB at 288x384) is sent to the page at most this often.
_PARTIAL_GRID_SECONDS = 1.0
#: Progress (the busy indicator's fraction, :attr:`ExplorerSession.predicted`) is published at most this often.
_PUBLISH_SECONDS = 0.5


def _takes_on_batch(fn: Any) -> bool:
    """Whether ``fn`` (a model's ``encode_dataset``) takes the ``on_batch`` hook."""
    import inspect

    try:
        return callable(fn) and "on_batch" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _joined_paths(parts: Sequence[Any]) -> Any:
    """One :class:`~latent_widgets.analysis.interpolation.PathResult` of the consecutive parts of a path."""
    from ..analysis.interpolation import PathResult

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    skips = tuple(np.concatenate([p.skips[k] for p in parts]) for k in range(len(parts[0].skips)))
    return PathResult(cat("alphas"), cat("latents"), skips, cat("probs"), cat("masks"))


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
        ``"auto"``: only when all masks hold
        at most :data:`PREDICT_ALL_PIXELS` pixels (about 4,000 samples of
        128x128), so that a 100k-sample session starts without decoding
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
        by "cell class" by default); see :data:`MAP_POINTS`,
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

    Examples
    --------
    >>> s = ExplorerSession(lm, data, asynchronous=False)  # doctest: +SKIP
    >>> s.alpha = 0.5; s.current.mask.shape  # doctest: +SKIP
    (96, 128)
    """

    # Ranges are checked by the validators below, whose messages name the field, the value and the range.
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

    # ------------------------------------------------------------------ validation

    @traitlets.validate("path_method")
    def _valid_path_method(self, proposal: Mapping[str, Any]) -> str:
        from ..analysis.interpolation import PATH_METHODS

        if proposal["value"] not in PATH_METHODS:
            raise traitlets.TraitError(f"path_method {proposal['value']!r}: choose one of {PATH_METHODS}")
        return proposal["value"]

    @traitlets.validate("skip_policy")
    def _valid_policy(self, proposal: Mapping[str, Any]) -> str:
        from ..analysis.interpolation import SKIP_POLICIES

        if proposal["value"] not in SKIP_POLICIES:
            raise traitlets.TraitError(f"skip_policy {proposal['value']!r}: choose one of {SKIP_POLICIES}")
        return proposal["value"]

    @traitlets.validate("map_method")
    def _valid_map_method(self, proposal: Mapping[str, Any]) -> str:
        if proposal["value"] not in self.methods:
            raise traitlets.TraitError(f"map_method {proposal['value']!r}: choose one of {self.methods}")
        return proposal["value"]

    @traitlets.validate("color_by")
    def _valid_color_by(self, proposal: Mapping[str, Any]) -> str:
        fields = self.color_fields()
        if proposal["value"] not in fields:
            raise traitlets.TraitError(f"color_by {proposal['value']!r}: choose one of {fields}")
        return proposal["value"]

    @traitlets.validate("map_points")
    def _valid_map_points(self, proposal: Mapping[str, Any]) -> str:
        value = proposal["value"]
        if value not in MAP_POINTS:
            raise traitlets.TraitError(f"map_points {value!r}: choose one of {MAP_POINTS}")
        if value != "flatten" and len(self._latent_shape()) != 3:
            what = "averages a latent grid" if value == "pooled" else "makes a point of each cell of a latent grid"
            raise traitlets.TraitError(
                f"map_points {value!r} {what} (h, w, C); these latents have shape "
                f"{self._latent_shape() or 'unknown (still encoding)'}: use 'flatten'"
            )
        return value

    @traitlets.validate("selected_cell")
    def _valid_selected_cell(self, proposal: Mapping[str, Any]) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        if self.map_points != "cells":
            raise traitlets.TraitError(
                f"selected_cell={value!r}: a cell is selected only on a map of cells (map_points='cells'), "
                f"not {self.map_points!r}"
            )
        h, w = self.grid  # type: ignore[misc]
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
                f"selected_cell={(int(row), int(col))} is outside the {h}x{w} latent grid "
                f"(row 0..{h - 1}, col 0..{w - 1})"
            )
        return int(row), int(col)

    @traitlets.validate("index_a", "index_b", "selected")
    def _valid_index(self, proposal: Mapping[str, Any]) -> int | None:
        i, n, name = proposal["value"], len(self.dataset), proposal["trait"].name
        if i is None:
            return None
        if not is_int(i):
            raise traitlets.TraitError(f"{name}={i!r} is not a sample index: pass an int in 0..{n - 1}")
        if not 0 <= i < n:
            raise traitlets.TraitError(f"{name}={i} is out of range for {n} samples (0..{n - 1})")
        return int(i)

    @traitlets.validate("n_steps")
    def _valid_n_steps(self, proposal: Mapping[str, Any]) -> int:
        value, (lo, hi) = proposal["value"], N_STEPS_RANGE
        if not is_int(value) or not lo <= value <= hi:
            raise traitlets.TraitError(f"n_steps={value!r}: the strip has {lo} to {hi} steps (an int in {lo}..{hi})")
        return int(value)

    @traitlets.validate("alpha")
    def _valid_alpha(self, proposal: Mapping[str, Any]) -> float:
        value = proposal["value"]
        # NaN fails both comparisons; the slider goes from sample index_a (0) to index_b (1), no further.
        if not 0.0 <= value <= 1.0:
            raise traitlets.TraitError(f"alpha={value!r} is outside [0, 1] (0: sample index_a, 1: sample index_b)")
        return float(value)

    # ------------------------------------------------------------------ construction

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
        n = len(dataset)
        if n < 2:
            raise ValueError(f"the explorer needs at least 2 samples, got {n}")
        # Checked with the traits below, so that a saved session's invalid fields are all reported together.
        invalid: list[Exception] = []
        try:
            self._ignore_index = _check_ignore_index(ignore_index, dataset)
        except ValueError as exc:
            invalid.append(exc)
            self._ignore_index = None
        if model is None and latents is None and encoding is None:
            raise ValueError("ExplorerSession needs a model, or latents=... for a maps-only session")
        self.model = model
        self.dataset = dataset
        self.methods = tuple(methods)
        self.asynchronous = asynchronous
        if predict != "auto" and not isinstance(predict, bool):
            raise ValueError(f"predict={predict!r}: pass True, False or 'auto'")
        self.predict = predict
        h, w = dataset.image_size
        self.scrub_steps = 0 if scrub_steps < 2 else int(min(scrub_steps, max(2, (16 << 20) // max(h * w, 1))))
        self._frames_cache: OrderedDict[tuple, ScrubFrames] = OrderedDict()
        # Grids being decoded: path -> (masks, which frames are decoded), and the paths whose job chain runs.
        self._frames_wip: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._frames_running: set[tuple] = set()
        self.max_cached_strips = max_cached_strips
        self.encoding = encoding
        self._latents = None if latents is None else np.asarray(latents)
        self.predictions = None if predictions is None else np.asarray(predictions)
        self._check_lengths()
        self.latent_index: Any = None
        self.projectors: dict[str, Any] = {}
        self._projection_kwargs = {k: dict(v) for k, v in (projection_kwargs or {}).items()}
        given = {k: np.asarray(v, np.float64) for k, v in (projections or {}).items()}
        for k, v in given.items():
            if v.shape != (n, 2):
                raise ValueError(f"projection {k!r} has shape {v.shape}, expected ({n}, 2)")
        self._strips: OrderedDict[PathKey, Strip] = OrderedDict()
        #: How many on-demand (non-strip) decodes ran; strip steps do not count.
        self.ondemand_decodes = 0
        # Newest request wins: each request takes a generation number; a job
        # whose number is no longer the newest is skipped, and a result is
        # shown only if nothing newer is on display.
        self._gen_lock = threading.RLock()
        self._decode_gen = 0
        self._shown_gen = 0
        self._place_gen = 0
        self._busy_counts: dict[str, int] = {}
        self._model_lane = Lane("model", asynchronous, self._busy_change, self._report)
        self._map_lane = Lane("map", asynchronous, self._busy_change, self._report)
        self.splits: np.ndarray | None = None
        self.set_splits(splits)
        self._sample_iou: np.ndarray | None = None
        self._class_iou: dict[int, np.ndarray] = {}
        self._whole_report: Any = None
        self._report_gen = 0
        self._quality_queued: set[str] = set()
        # Before the dataset is encoded: the encodings of single samples (the slider's endpoints).
        self._sample_encodings: OrderedDict[int, Any] = OrderedDict()
        self._encode_seconds = math.inf  # the fastest single-sample encode seen (sizes the bulk chunks)
        self._decode_seconds = math.inf  # the fastest single decode seen (sizes the scrub grid's batches)
        # The predictions as they come (bulk job, the shown sample), scored as they come.
        self._known = PredictedMasks(dataset, self._ignore_index)
        self._predicting = False
        self._prediction_requests: dict[int, Future] = {}
        self._published: dict[str, float] = {}
        self._warmed_up = False

        self.maps = given
        # One at a time, in this order (the colour fields and the selected cell depend on the points), with
        # no observer registered yet: every invalid setting is reported, not only the first.
        settings: list[tuple[str, Callable[[], Any]]] = [
            ("index_a", lambda: index_a),
            ("index_b", lambda: n - 1 if index_b is None else index_b),
            ("n_steps", lambda: n_steps),
            ("path_method", lambda: path_method),
            ("skip_policy", lambda: skip_policy),
            ("alpha", lambda: float(alpha) if isinstance(alpha, np.floating) else alpha),
            ("map_method", lambda: map_method or self.methods[0]),
            ("selected", lambda: self.index_a if selected is None else selected),
            ("selection", lambda: selection),
            ("map_points", lambda: map_points),
            ("color_by", lambda: color_by or self._default_color_by()),
            ("selected_cell", lambda: selected_cell),
        ]
        for name, value in settings:
            try:
                setattr(self, name, value())
            except traitlets.TraitError as exc:
                invalid.append(exc)
        if len(invalid) == 1:
            raise invalid[0]
        if invalid:
            raise SessionStateError(invalid)
        self.observe(self._on_selection, "selection")
        self.observe(self._on_color_by, "color_by")
        self.observe(self._on_map_points, "map_points")
        self.observe(self._on_path, ["index_a", "index_b", "path_method", "skip_policy", "n_steps"])
        self.observe(self._on_alpha, "alpha")
        self.observe(self._on_map_method, "map_method")
        self.observe(self._on_strip, "strip")
        self._startup_job = self._model_lane.submit("encode", self._startup)

    def _default_color_by(self) -> str:
        if self.map_points == "cells":
            return "cell class"
        return "group" if self.dataset.groups is not None else "dominant class"

    @property
    def ignore_index(self) -> int | None:
        """The class id whose true pixels are not scored (None: every class is)."""
        return self._ignore_index

    def _check_lengths(self) -> None:
        n = len(self.dataset)
        # shape[0], not len(): a Zarr array has no len().
        if self.encoding is not None and self.encoding.latents.shape[0] != n:
            raise ValueError(f"encoding has {self.encoding.latents.shape[0]} latents for {n} samples")
        if self._latents is not None and len(self._latents) != n:
            raise ValueError(f"{len(self._latents)} latents for a dataset of {n} samples")
        if self.predictions is not None and self.predictions.shape != self.dataset.masks.shape:
            raise ValueError(f"predictions {self.predictions.shape} do not match the masks {self.dataset.masks.shape}")

    def _startup(self) -> None:
        model, ds = self.model, self.dataset
        if self.encoding is None and self._latents is None:
            if self.asynchronous:
                # The endpoints first (the mask, the strip, the scrub grid), then the dataset in chunks that let
                # them pass: the first mask costs two encodes and a decode, not the whole dataset's encoding
                # (nor the hashes of the weights and the data that key its cache: up to 0.4 s at 288x384).
                # Encoded here, not in the jobs that need them: a model that refuses the images fails this
                # one job, with one error, and nothing more is queued.
                for i in dict.fromkeys((self.index_a, self.index_b)):
                    self._encoding_of(i)
                self._go_live()
                self._model_lane.submit("encode dataset", self._encode_dataset_job, BULK)
                return
            self.encoding = model.encode_dataset(ds) if hasattr(model, "encode_dataset") else model.encode(ds.images)
            self._check_lengths()
        if self.encoding is not None and self.predictions is None and self.asynchronous:
            # A session on cached latents probably finds its predictions cached too: the IoU colours at once.
            self._load_cached_predictions()
        self._become_ready()

    def _go_live(self) -> None:
        """The endpoints can be decoded: the mask, the strip and the scrub grid are requested (model lane)."""
        self.live = True
        if self.model is not None:
            self._on_path(None)

    def _become_ready(self) -> None:
        """The dataset is encoded: the map, the strip's nearest samples, then the predictions."""
        from ..analysis.neighbors import LatentIndex

        if not self.asynchronous and self.predictions is None and self._wants_predictions():
            self._predict_job()  # a script finds them there when the constructor returns
        self.latent_index = LatentIndex().fit(self.latents, lazy=True)
        self._sample_encodings.clear()
        self.ready = True
        self._warm_up()
        # The current map: fitted now, or (given in `projections`, drawn before the latents were there)
        # its path and quality, which need the latents, placed now.
        self._on_map_method(None)
        if len(self.selection):
            self._on_selection(None)
        if self.model is not None:
            if self.live:
                self._fill_in_neighbors()
            else:
                self._go_live()
        if self.asynchronous and self.predictions is None and self._wants_predictions():
            self._predicting = True
            self._model_lane.submit("predict", self._predict_job, BULK)

    def _warm_up(self) -> None:
        if self.asynchronous and not self._warmed_up and {"tsne", "umap"} & set(self.methods):
            from ..analysis.warm_up import warm_up_projections

            # Loads UMAP's compiled code (or compiles it, the first time on a machine) while the slider is used:
            # after the first mask, as the warm-up takes the cores for a few seconds.
            warm_up_projections()
        self._warmed_up = True

    def _encode_dataset_job(self) -> None:
        """Encode the dataset for the map, in chunks between which the slider's requests run (bulk)."""
        from ..core.arrays import iter_row_blocks

        model, ds = self.model, self.dataset
        rows = self._chunk_rows(self._encode_seconds)
        step = self._bulk_step("encode dataset")
        if _takes_on_batch(getattr(model, "encode_dataset", None)):  # a LatentModel: its cache, its store, its hook
            enc = model.encode_dataset(ds, batch_size=rows, progress=self._show_bars(), on_batch=step)
        elif hasattr(model, "encode_dataset"):
            enc = model.encode_dataset(ds)
        else:
            n = len(ds)
            parts = []
            step(0, n)
            for block in iter_row_blocks(n, rows):
                parts.append(model.encode(ds.images[block]))
                step(block.stop, n)
            enc = type(parts[0])(
                np.concatenate([p.latents for p in parts]),
                tuple(np.concatenate([p.skips[k] for p in parts]) for k in range(len(parts[0].skips))),
            )
        self._end_progress("encode dataset")
        self.encoding = enc
        self._check_lengths()
        self._become_ready()

    def _chunk_rows(self, seconds_per_row: float, cap: int = 32, budget: float = _CHUNK_SECONDS) -> int:
        """Rows of a chunk: a power of two (few compiled batch sizes) taking about ``budget`` seconds."""
        if not self.asynchronous or math.isinf(seconds_per_row):
            return cap  # (nothing to answer between chunks, or nothing timed yet)
        rows = budget / max(seconds_per_row, 1e-6)
        return int(min(cap, 2 ** max(0, math.floor(math.log2(max(rows, 1.0))))))

    def _bulk_step(self, label: str) -> Callable[[int, int], None]:
        """A bulk job's ``on_batch(done, total)``: publish its progress, then let queued interactive jobs run."""

        def step(done: int, total: int) -> None:
            self._set_progress(label, done, total)
            self._model_lane.yield_point()

        return step

    def _set_progress(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if 0 < done < total and now - self._published.get(label, -math.inf) < _PUBLISH_SECONDS:
            return
        self._published[label] = now
        with self._gen_lock:
            self.progress = {**self.progress, label: (int(done), int(total))}

    def _end_progress(self, label: str) -> None:
        with self._gen_lock:
            self.progress = {k: v for k, v in self.progress.items() if k != label}
        self._published.pop(label, None)

    def _show_bars(self) -> bool:
        """tqdm bars for bulk work in scripts; not in a Jupyter kernel, where the busy indicator shows it."""
        import sys

        return not self.asynchronous or "ipykernel" not in sys.modules

    def _wants_predictions(self) -> bool:
        return self.model is not None and self._predicts_all()

    def _predicts_all(self) -> bool:
        if self.predict == "auto":
            h, w = self.dataset.image_size
            return len(self.dataset) * h * w <= PREDICT_ALL_PIXELS
        return bool(self.predict)

    # ------------------------------------------------------------------ predictions

    def _predictions_path(self) -> Path | None:
        """Where the predictions of this model on this data are cached (None: the model cannot be hashed)."""
        from ..core.cache import cache_dir, content_hash

        try:
            key = content_hash("session-predictions-v1", model_hash(self.model), data_hash(self.dataset))
        except TypeError:
            return None
        return cache_dir("predictions") / f"{key}.npz"

    def _load_cached_predictions(self) -> bool:
        """Fill the predictions from the disk cache; whether it held them."""
        if not self._wants_predictions() or not self._known.load(self._predictions_path()):
            return False
        self._publish_predicted(force=True)
        return True

    def _predict_job(self) -> None:
        """Predict every mask, in chunks (bulk), with each chunk's mean IoU; cache them on disk."""
        n = len(self.dataset)
        known = self._known
        hit = known.complete or self._load_cached_predictions()
        bar = None
        if self._show_bars() and not hit:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="predicting", unit="img", leave=False)
        step = self._bulk_step("predict")
        try:
            # The first block predicted is one row, timed to size the others (a script's: large blocks).
            rows, timed, start = (1, False, 0) if self.asynchronous else (_PREDICT_BLOCK, True, 0)
            step(0, n)
            while start < n:
                block = slice(start, min(n, start + rows))
                if known.done is None or not known.done[block].all():
                    t0 = time.perf_counter()
                    known.store(block, self._predict_block(block))
                    if not timed:
                        rows, timed = self._chunk_rows((time.perf_counter() - t0) / (block.stop - block.start)), True
                else:  # from the cache, or the shown sample's: its mean IoU
                    known.store(block, known.masks[block])  # type: ignore[index]
                if bar is not None:
                    bar.update(block.stop - block.start)
                start = block.stop
                self._publish_predicted()
                step(start, n)
            masks = known.masks
            masks.flags.writeable = False  # type: ignore[union-attr]
            self._sample_iou = known.mean_iou()
            self.predictions = masks
        finally:
            if bar is not None:
                bar.close()
            self._predicting = False  # (after the predictions are set: the colours never see neither)
            self._end_progress("predict")
        if not hit:
            known.save(self._predictions_path())
        self._publish_predicted(force=True)
        if len(self.selection):
            self._on_selection(None)  # now with the whole set's scores beside the selection's

    def _predict_block(self, rows: slice) -> np.ndarray:
        """The model's masks of the samples ``rows``: decoded from the encoding when it is in memory.

        ``decoder(encoder(x))`` is ``predict_masks(x)``: with the latents at
        hand only the decoder runs (a 288x384 VGG SegNet: 0.18 s a sample
        instead of 0.8 s).
        """
        model, enc = self.model, self.encoding
        if enc is None and rows.stop - rows.start == 1 and rows.start in self._sample_encodings:
            enc, rows = self._sample_encodings[rows.start], slice(0, 1)
        if (
            enc is not None
            and isinstance(enc.latents, np.ndarray)
            and all(isinstance(sk, np.ndarray) for sk in enc.skips)
            and hasattr(model, "decode_with_masks")
        ):
            skips = [sk[rows] for sk in enc.skips] if model.has_skips else None
            return np.asarray(model.decode_with_masks(enc.latents[rows], skips)[1])
        return np.asarray(model.predict_masks(self.dataset.images[rows]))

    def _publish_predicted(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._published.get("predicted", -math.inf) >= _PUBLISH_SECONDS:
            self._published["predicted"] = now
            self.predicted = self._known.count

    def known_prediction(self, index: int) -> np.ndarray | None:
        """The predicted mask of sample ``index`` if the session has it (given, or predicted so far), else None.

        Computes nothing: a view asks this first and, while it is None,
        waits for :attr:`predicted` to move (the session predicts the
        :attr:`selected` sample ahead of the others) instead of predicting
        on the kernel's thread.

        Examples
        --------
        >>> s.known_prediction(3) is None or s.known_prediction(3).shape == s.dataset.image_size  # doctest: +SKIP
        True
        """
        i = int(index)
        if self.predictions is not None:
            return np.asarray(self.predictions[i])
        return self._known.get(i)

    def request_prediction(self, index: int) -> Future | None:
        """Predict sample ``index`` on the model lane, ahead of the bulk work; None if it is known already.

        What a view of the sample does instead of predicting on the
        kernel's thread: it shows the sample when :attr:`predicted` moves
        and :meth:`known_prediction` has it. Inline (and done when it
        returns) in a synchronous session.

        Examples
        --------
        >>> s.request_prediction(s.selected)  # doctest: +SKIP
        <Future at 0x... state=pending>
        """
        i = int(index)
        if self.model is None:
            raise ValueError("no model to predict with: pass predictions=... or a model")
        if self.known_prediction(i) is not None:
            return None
        queued = self._prediction_requests.get(i)
        if queued is not None and not queued.done():
            return queued  # (a view asks again each time other samples are predicted)

        def job() -> None:
            startup = self._startup_job
            if startup.done() and not startup.cancelled() and startup.exception() is not None:
                return  # the model refused the dataset at start: that error is reported once, not per view
            if self.known_prediction(i) is None:
                self._predict_sample(i)

        fut = self._model_lane.submit("predict sample", job)
        self._prediction_requests = {k: f for k, f in self._prediction_requests.items() if not f.done()}
        if not fut.done():
            self._prediction_requests[i] = fut
        return fut

    def _predict_sample(self, i: int) -> np.ndarray:
        """Predict one sample now (in the caller's thread) and keep it; :attr:`predicted` moves."""
        mask = self._predict_block(slice(i, i + 1))
        if self._wants_predictions():
            self._known.store(slice(i, i + 1), mask)
        else:  # no bulk prediction to fill in: a few of them kept aside
            self._known.put_aside(i, mask[0])
        self._publish_predicted(force=True)
        return mask[0]

    # ------------------------------------------------------------------ public

    @property
    def latents(self) -> np.ndarray:
        """One latent per sample (N, ...); available once :attr:`ready`."""
        if self._latents is not None:
            return self._latents
        if self.encoding is None:
            raise RuntimeError("the dataset is still being encoded; wait() for the session to be ready")
        z = self.encoding.latents
        # A latent store (Zarr) stays on disk: the analysis layer reads it in blocks.
        return z if hasattr(z, "shape") and hasattr(z, "__getitem__") and not isinstance(z, list) else np.asarray(z)

    @property
    def key(self) -> PathKey:
        """The current path."""
        return PathKey(self.index_a, self.index_b, self.path_method, self.skip_policy, self.n_steps)

    @property
    def points(self) -> np.ndarray | None:
        """The current map (N, 2), or None while it is computed."""
        return self.maps.get(self.map_key())

    def wait(self, timeout: float | None = 60.0, raise_errors: bool = True) -> None:
        """Block until every queued job has finished (a no-op when synchronous).

        Raises the first error (in the order of :attr:`errors`) of the jobs
        it waited for, the start-up encode included, also when the job
        failed before ``wait()`` was called; :attr:`errors` keeps them all.
        An error is raised once: the next ``wait()`` raises only newer ones.
        ``raise_errors=False`` only waits (what the widgets' ``wait()`` does:
        they show the errors), leaving them to the next ``wait()``.

        Raises
        ------
        TimeoutError
            A job still runs after ``timeout`` seconds (it keeps running).

        Examples
        --------
        >>> s = ExplorerSession(lm, images_of_another_size)  # doctest: +SKIP
        >>> s.wait()  # doctest: +SKIP
        Traceback (most recent call last):
        LatentModelError: ...
        """
        lanes = (self._model_lane, self._map_lane)
        # Jobs queue jobs on the other lane (a strip, then its placement on the map).
        while pending := [f for lane in lanes for f in lane.pending()]:
            for fut in pending:
                futures_wait([fut], timeout=timeout)
                if not fut.done():
                    raise TimeoutError(f"a session job still runs after {timeout} s (busy: {self.busy})")
        if not raise_errors:
            return
        finished = [f for lane in lanes for f in lane.take_finished()]
        failed = [f.exception() for f in finished if not f.cancelled() and f.exception() is not None]
        if failed:
            order = {id(e): k for k, e in enumerate(self.errors)}
            raise min(failed, key=lambda e: order.get(id(e), len(order)))

    def close(self) -> None:
        """Stop the worker threads."""
        self._model_lane.close()
        self._map_lane.close()

    def clear_errors(self) -> None:
        """Forget the errors of the background jobs (``wait()`` no longer raises them)."""
        for lane in (self._model_lane, self._map_lane):
            lane.take_finished()
        self.errors = ()

    # ------------------------------------------------------------------ busy and errors

    def _busy_change(self, label: str, delta: int) -> None:
        with self._gen_lock:
            count = self._busy_counts.get(label, 0) + delta
            if count > 0:
                self._busy_counts[label] = count
            else:
                self._busy_counts.pop(label, None)
            self.busy = tuple(sorted(self._busy_counts))

    def _report(self, exc: BaseException, context: str) -> None:
        with self._gen_lock:
            exc.add_note(f"in the session's {context!r} job")
            self.errors = (*self.errors, exc)

    # ------------------------------------------------------------------ maps

    def map_key(self, method: str | None = None, map_points: str | None = None) -> str:
        """Key of a map in :attr:`maps`: the method ("pca"), prefixed for pooled points ("pooled:pca")."""
        method = method or self.map_method
        map_points = map_points or self.map_points
        return method if map_points == "flatten" else f"{map_points}:{method}"

    def _latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent, or () while it is unknown (the dataset is still being encoded)."""
        if self._latents is not None:
            return tuple(self._latents.shape[1:])
        if self.encoding is not None:
            return tuple(self.encoding.latents.shape[1:])
        shape = getattr(self.model, "latent_shape", None)
        return tuple(shape) if shape is not None and None not in tuple(shape) else ()

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(h, w)`` of the latent grid, or None for flat latents (or while the shape is unknown)."""
        shape = self._latent_shape()
        return (int(shape[0]), int(shape[1])) if len(shape) == 3 else None

    def n_points(self, map_points: str | None = None) -> int:
        """How many points a map of ``map_points`` (default: the current) has: N, or N * h * w for cells."""
        n = len(self.dataset)
        if (map_points or self.map_points) != "cells":
            return n
        h, w = self.grid  # type: ignore[misc]
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
            raise IndexError(f"no point {k} on a map of {n_pts} points ({self.map_points})")
        if self.map_points != "cells":
            return k, None, None
        h, w = self.grid  # type: ignore[misc]
        return k // (h * w), (k // w) % h, k % w

    def point_samples(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """The samples (sorted, unique, int64) the map points ``points`` belong to."""
        pts = np.asarray(points, np.int64).reshape(-1)
        n_pts = self.n_points()
        bad = pts[(pts < 0) | (pts >= n_pts)]
        if bad.size:
            raise IndexError(f"points {bad[:5].tolist()} are not on a map of {n_pts} points ({self.map_points})")
        if self.map_points == "cells":
            h, w = self.grid  # type: ignore[misc]
            pts = pts // (h * w)
        return np.unique(pts)

    def sample_points(self, samples: Sequence[int] | np.ndarray) -> np.ndarray:
        """The map points of ``samples``: the samples themselves, or all their cells (cells map)."""
        idx = np.asarray(samples, np.int64).reshape(-1)
        if self.map_points != "cells":
            return idx
        h, w = self.grid  # type: ignore[misc]
        return (idx[:, None] * (h * w) + np.arange(h * w, dtype=np.int64)[None, :]).reshape(-1)

    def click_point(self, point: int) -> int:
        """Do what a click on map point ``point`` does; returns its sample.

        Shows the point's sample (:attr:`selected`) and, on a map of cells,
        sets :attr:`selected_cell` to the clicked cell (the viewer outlines it).
        """
        sample, row, col = self.point_sample(point)
        with self.hold_trait_notifications():
            if row is not None:
                self.selected_cell = (row, col)
            self.selected = sample
        return sample

    def select_points(self, points: Sequence[int] | np.ndarray) -> np.ndarray:
        """Select the samples of map points ``points`` (a lasso, a brush): sets :attr:`selection`.

        On a map of cells the selection is the samples that own at least one
        of the cells: it stays a set of samples.
        """
        self.selection = self.point_samples(points)
        return self.selection

    def map_latents(self, map_points: str | None = None) -> Any:
        """What the maps of ``map_points`` (default: the current) are fitted on.

        "flatten": :attr:`latents` as they are (the projections flatten
        them); "pooled": each latent averaged over its grid, (N, C), read
        block by block (a Zarr store stays on disk); "cells": every cell of
        every latent, (N * h * w, C) (:func:`~latent_widgets.latents.cells.cell_points`).
        """
        map_points = map_points or self.map_points
        if map_points == "flatten":
            return self.latents
        if map_points == "cells":
            cells = getattr(self, "_cells", None)
            if cells is None:
                from ..latents.cells import cell_points

                cells = self._cells = np.asarray(cell_points(self.latents), np.float32)
            return cells
        cached = getattr(self, "_pooled", None)
        if cached is None:
            from ..core.arrays import iter_row_blocks

            z = self.latents
            n, c = z.shape[0], z.shape[-1]
            cached = np.empty((n, c), np.float32)
            for rows in iter_row_blocks(n, 4096):
                block = np.asarray(z[rows], np.float32)
                cached[rows] = block.reshape(len(block), -1, c).mean(axis=1)
            self._pooled = cached
        return cached

    def _map_input(self, latents: np.ndarray, map_points: str) -> np.ndarray:
        z = np.asarray(latents, np.float32).reshape((len(latents), *self.latents.shape[1:]))
        if map_points == "cells":
            return z.reshape(-1, z.shape[-1])
        return z if map_points == "flatten" else z.reshape(len(z), -1, z.shape[-1]).mean(axis=1)

    def request_map(self, method: str) -> Future | None:
        """Fit the map of ``method`` (current points) on the map lane unless it exists; ``None`` if it does."""
        key = self.map_key(method)
        if key in self.maps or not self.ready:
            return None
        return self._map_lane.submit(f"map: {method}", lambda: self._fit_map(method, self.map_points))

    def fit_map(self, method: str, map_points: str | None = None) -> np.ndarray:
        """The map of ``method``, fitted now (in the caller's thread) if it is missing."""
        map_points = map_points or self.map_points
        key = self.map_key(method, map_points)
        if key not in self.maps:
            self._fit_map(method, map_points)
        return self.maps[key]

    def _fit_map(self, method: str, map_points: str = "flatten") -> None:
        key = self.map_key(method, map_points)
        if key in self.maps:
            return
        from ..analysis.projection import fit_projection

        try:
            kw = self._projection_kwargs.get(method, {})
            proj = fit_projection(self.map_latents(map_points), method=method, cache=True, progress=False, **kw)
            pts = np.asarray(proj.embedding_, np.float64)
            n_pts = self.n_points(map_points)
            if pts.shape != (n_pts, 2):
                raise ValueError(f"projection {method!r} returned shape {pts.shape}, expected ({n_pts}, 2)")
        except Exception:
            # Keep showing the map that is drawn.
            if self.map_method == method and self.map_points == map_points:
                drawn = next((m for m in self.methods if self.map_key(m, map_points) in self.maps), None)
                if drawn is not None:
                    self.map_method = drawn
            raise
        self.projectors[key] = proj
        self.maps = {**self.maps, key: pts}
        if key == self.map_key():
            self._place_path()
            self._refresh_quality()

    def place(self, latents: np.ndarray, method: str | None = None) -> np.ndarray:
        """Place new latents (e.g. a path) on a map, shape (M, 2).

        The fitted projection's ``transform`` (exact for PCA, UMAP's own,
        neighbour placement for t-SNE); for a map given in ``projections``,
        the distance-weighted mean position of the 3 nearest samples.
        Pooled maps place the pooled latents; a map of cells places every
        cell of each latent, (M * h * w, 2).
        """
        method = method or self.map_method
        map_points = self.map_points
        pts = self.fit_map(method, map_points)
        proj = self.projectors.get(self.map_key(method, map_points))
        if proj is not None:
            return np.asarray(proj.transform(self._map_input(latents, map_points)), np.float64)
        if map_points == "cells":
            raise ValueError("a precomputed map of cells has no projection to place new latents with")
        z = np.asarray(latents, np.float32).reshape((len(latents), *self.latents.shape[1:]))
        idx, dist = self.latent_index.query(z, k=min(3, len(pts)))
        w = 1.0 / np.maximum(np.asarray(dist, np.float64), 1e-9)
        return (pts[np.asarray(idx)] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)

    def _on_map_method(self, _change: Any) -> None:
        if self.map_key() in self.maps:
            self._place_path()
            self._refresh_quality()
        else:
            self.request_map(self.map_method)

    def _on_map_points(self, change: Mapping[str, Any] | None) -> None:
        with self.hold_trait_notifications():
            if self.map_points == "cells":
                # A cell's own class is the cells' counterpart of the sample's dominant class.
                if self.color_by in ("group", "dominant class", "none"):
                    self.color_by = "cell class"
            else:
                self.selected_cell = None
                if self.color_by == "cell class":
                    self.color_by = "dominant class"
        self._on_map_method(None)

    # ------------------------------------------------------------------ colour fields

    def set_splits(self, splits: Sequence[str] | np.ndarray | None) -> None:
        """Give each sample a split name ("train", "val"...) for the "split" colour field."""
        if splits is None:
            self.splits = None
            return
        arr = np.asarray([str(v) for v in splits])
        if len(arr) != len(self.dataset):
            raise ValueError(f"{len(arr)} split names for {len(self.dataset)} samples")
        self.splits = arr

    def color_fields(self) -> tuple[str, ...]:
        """The colour fields of the map (what :attr:`color_by` accepts).

        Examples
        --------
        >>> s.color_fields()[:3]  # doctest: +SKIP
        ('group', 'dominant class', 'mean IoU')
        """
        # The ignored class has no IoU: its pixels are left out.
        names = tuple(f"IoU: {c}" for i, c in enumerate(self.dataset.class_names) if i != self.ignore_index)
        cells = ("cell class",) if self.map_points == "cells" else ()
        return (*cells, "group", "dominant class", "mean IoU", *names, *_QUALITY_FIELDS, "split", "none")

    def cell_classes(self) -> np.ndarray:
        """The dominant true class under each latent cell, (N, h, w).

        :func:`~latent_widgets.latents.cells.cell_classes` of the dataset's masks, cached.
        """
        cached = getattr(self, "_cell_classes", None)
        if cached is None:
            from ..latents.cells import cell_classes

            if self.grid is None:
                raise ValueError(f"latents of shape {self._latent_shape()} have no grid: no cell classes")
            ds = self.dataset
            cached = self._cell_classes = cell_classes(
                ds.masks, self.grid, ds.n_classes, ignore_index=self.ignore_index
            )
        return cached

    def sample_iou(self) -> np.ndarray:
        """Mean IoU of each sample's prediction against its mask, shape (N,) (NaN: no class present)."""
        if self._sample_iou is None:
            from ..analysis.metrics import per_sample_mean_iou

            self._sample_iou = np.asarray(
                per_sample_mean_iou(
                    self._predictions_or_raise("mean IoU"),
                    self.dataset.masks,
                    self.dataset.n_classes,
                    ignore_index=self.ignore_index,
                ),
                np.float64,
            )
        return self._sample_iou

    def _predictions_or_raise(self, what: str) -> np.ndarray:
        if self.predictions is None:
            raise ValueError(
                f"colouring by {what} needs predictions=... (the predicted masks); a session with a model "
                "predicts them at start with predict=True"
            )
        return self.predictions

    def color_values(self, field: str | None = None) -> ColorField:
        """The values of colour field ``field`` (default :attr:`color_by`) for each point of the map.

        "mean IoU" and "IoU: <class>" need the predicted masks;
        "trustworthiness" and "kNN preservation" are those of the current
        map (:func:`~latent_widgets.analysis.map_quality.local_trustworthiness`,
        :func:`~latent_widgets.analysis.map_quality.local_knn_preservation`),
        computed on the map lane: until they arrive the values are NaN and
        ``note`` says "computing…"; above :data:`POINT_QUALITY_MAX`
        samples they are not computed.

        Examples
        --------
        >>> f = s.color_values("mean IoU")  # doctest: +SKIP
        >>> f.kind, f.values.shape  # doctest: +SKIP
        ('continuous', (24,))
        """
        field = field or self.color_by
        ds, n_pts = self.dataset, self.n_points()
        if field not in self.color_fields():
            raise ValueError(f"unknown colour field {field!r}; choose one of {self.color_fields()}")
        if field == "cell class":
            return ColorField(
                field,
                "categorical",
                self.cell_classes().reshape(-1),
                tuple(ds.class_names),
                tuple(colors.hex_colours(ds.palette)),
            )
        if field in _QUALITY_FIELDS:
            # Per point of the current map: per cell on a map of cells (on a sample of them above the limit).
            nan = np.full(n_pts, np.nan)
            if n_pts > POINT_QUALITY_MAX and self.map_points != "cells":
                return ColorField(
                    field,
                    "continuous",
                    nan,
                    note=f"not available at this size ({n_pts} points; at most {POINT_QUALITY_MAX})",
                )
            got = self.quality.get(self.map_key())
            if got is None:
                self._refresh_quality(force=True)
                got = self.quality.get(self.map_key())
            if got is None:
                return ColorField(field, "continuous", nan, note="computing…")
            m = int(np.isfinite(got[field]).sum())
            note = "" if m == n_pts else f"on {m:,} random cells of {n_pts:,}, neighbours among them; others grey"
            return ColorField(field, "continuous", got[field], note=note)
        f = self._sample_color_values(field)
        if n_pts == len(ds):
            return f
        # A sample's value goes to each of its cells (points are sample-major).
        return dataclasses.replace(f, values=np.repeat(f.values, n_pts // len(ds)))

    def _sample_color_values(self, field: str) -> ColorField:
        """A per-sample colour field (N,)."""
        ds, n = self.dataset, len(self.dataset)
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
            if self.ignore_index is not None:
                # The class a sample is mostly made of, among the scored ones (not CamVid's Unlabelled).
                fractions[:, self.ignore_index] = -1.0
            dominant = fractions.argmax(axis=1).astype(np.int64)
            return ColorField(
                field, "categorical", dominant, tuple(ds.class_names), tuple(colors.hex_colours(ds.palette))
            )
        if field in ("mean IoU",) or field.startswith("IoU: "):
            pending = self._pending_scores(field)
            if pending is not None:
                return pending
        if field == "mean IoU":
            return ColorField(field, "continuous", self.sample_iou())
        if field.startswith("IoU: "):
            cls = list(ds.class_names).index(field[5:])
            if cls not in self._class_iou:
                from ..analysis.failures import per_class_sample_iou

                pred = self._predictions_or_raise(field)
                self._class_iou[cls] = np.asarray(
                    per_class_sample_iou(ds.masks, pred, ds.n_classes, cls, ignore_index=self.ignore_index), np.float64
                )
            return ColorField(field, "continuous", self._class_iou[cls])
        if field == "split":
            if self.splits is None:
                return ColorField(
                    field, "categorical", np.zeros(n, np.int64), ("all samples",), (colors.NO_VALUE_COLOUR,)
                )
            names_, codes = np.unique(self.splits, return_inverse=True)
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
        if self.predictions is not None or not self._wants_predictions() or (self.ready and not self._predicting):
            return None
        n = len(self.dataset)
        done = 0 if self._known.done is None else int(self._known.done.sum())
        note = f"predicting {done:,}/{n:,}…" if self.ready else "after the dataset is encoded…"
        values = self._known.mean_iou() if field == "mean IoU" else np.full(n, np.nan)
        return ColorField(field, "continuous", values, note=note)

    def _on_color_by(self, _change: Any) -> None:
        self._refresh_quality()

    def _refresh_quality(self, force: bool = False) -> None:
        """Queue the per-point quality of the current map when a quality field is shown (or ``force``)."""
        if not (force or self.color_by in _QUALITY_FIELDS) or not self.ready:
            return
        key = self.map_key()
        if key in self.quality or key not in self.maps:
            return
        if self.n_points() > POINT_QUALITY_MAX and self.map_points != "cells":
            return
        if key in self._quality_queued:
            return
        self._quality_queued = self._quality_queued | {key}
        self._map_lane.submit("map quality", lambda: self._quality_job(key), BULK)

    def _quality_job(self, key: str) -> None:
        from ..analysis.map_quality import local_knn_preservation, local_trustworthiness

        try:
            map_points = key.split(":", 1)[0] if ":" in key else "flatten"
            z = np.asarray(self.map_latents(map_points)[:], np.float32)
            x = z.reshape(len(z), -1)
            y = np.asarray(self.maps[key])
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
            self._quality_queued = self._quality_queued - {key}
        self.quality = {**self.quality, key: result}

    # ------------------------------------------------------------------ selection

    def _on_selection(self, _change: Any) -> None:
        sel = self.selection
        with self._gen_lock:
            self._report_gen += 1
            gen = self._report_gen
        if not len(sel):
            self.report = None
            return
        if not self.ready or (self.predictions is None and self.model is None):
            self.report = None
            return  # computed once the session is ready (_startup); no report without predictions

        def job() -> None:
            if gen != self._report_gen:
                return  # a newer selection is queued
            report = self.selection_report(sel)
            if gen == self._report_gen:
                self.report = report

        self._model_lane.submit("selection report", job)

    def prediction(self, index: int) -> np.ndarray:
        """The predicted mask of sample ``index``: the session's, else the model's (one call, kept)."""
        known = self.known_prediction(index)
        if known is not None:
            return known
        if self.model is None:
            raise ValueError("no predicted masks: pass predictions=... or a model")
        return self._predict_sample(int(index))

    def selection_report(self, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """The :class:`~latent_widgets.analysis.failures.SelectionReport` of the selection (or of ``indices``).

        Pooled confusion matrix of the selected samples' pixels (rows: true
        class, columns: predicted), their per-class and mean IoU against
        the whole set's, and the samples ordered from worst to best. Uses
        the session's predictions, or predicts the selected samples with
        the model when there are none (``mean_iou_all`` is then NaN).

        Examples
        --------
        >>> s.selection = [3, 5, 8]  # doctest: +SKIP
        >>> s.selection_report().worst  # doctest: +SKIP
        array([8, 3, 5])
        """
        from ..analysis.failures import selection_report

        idx = self.selection if indices is None else IndexSelection().validate(self, indices)
        if not len(idx):
            raise ValueError(
                "the selection is empty: select samples on the map (lasso, brush) or set session.selection"
            )
        ds = self.dataset
        kw: dict[str, Any] = dict(class_names=tuple(ds.class_names), ignore_index=self.ignore_index)
        if self.predictions is not None:
            if self._whole_report is None:
                self._whole_report = selection_report(
                    ds.masks, self.predictions, np.arange(len(ds)), ds.n_classes, **kw
                )
            return selection_report(ds.masks, self.predictions, idx, ds.n_classes, reference=self._whole_report, **kw)
        if self.model is None:
            raise ValueError("the selection report needs the predicted masks: pass predictions=... or a model")
        from ..core.arrays import iter_row_blocks

        # Only the selected samples are predicted (those the background prediction has not reached yet):
        # a prediction of the selection alone, in sorted order.
        pred = np.empty((len(idx), *ds.image_size), np.int32)
        todo = []
        for k, i in enumerate(idx):
            known = self.known_prediction(i)
            if known is None:
                todo.append(k)
            else:
                pred[k] = known
        missing = np.asarray(todo, np.int64)
        for rows in iter_row_blocks(len(missing), _PREDICT_BLOCK):
            ks = missing[rows]
            pred[ks] = self.model.predict_masks(np.stack([ds.images[int(i)] for i in idx[ks]]))
        return selection_report(ds.masks, pred, idx, ds.n_classes, **kw)

    # ------------------------------------------------------------------ saving

    def to_json(self) -> str:
        """The session's view as JSON: map, colours, path, slider, selection, and what they belong to.

        :meth:`from_json` with the same model and data reproduces it; the
        model and data hashes are checked.

        Examples
        --------
        >>> text = s.to_json()  # doctest: +SKIP
        >>> ExplorerSession.from_json(text, model, data).selection  # doctest: +SKIP
        """
        from .. import __version__

        pts = self.points
        doc = {
            "format": _SESSION_FORMAT,
            "version": 1,
            "library_version": __version__,
            "model_hash": model_hash(self.model, self._latents),
            "data_hash": data_hash(self.dataset),
            "n_samples": len(self.dataset),
            "map": {
                "method": self.map_method,
                "methods": list(self.methods),
                "points": self.map_points,
                "projection_kwargs": _jsonable(self._projection_kwargs, "projection_kwargs"),
            },
            "color_by": self.color_by,
            "index_a": int(self.index_a),
            "index_b": int(self.index_b),
            "alpha": float(self.alpha),
            "n_steps": int(self.n_steps),
            "path_method": self.path_method,
            "skip_policy": self.skip_policy,
            "ignore_index": self.ignore_index,
            "selection": self.selection.tolist(),
            "selected": None if self.selected is None else int(self.selected),
            "selected_cell": None if self.selected_cell is None else [int(v) for v in self.selected_cell],
            "map_hash": None if pts is None else points_hash(pts),
        }
        return json.dumps(doc, indent=1)

    @classmethod
    def from_json(cls, text: str, model: Any, dataset: Any, **kwargs: Any) -> ExplorerSession:
        """A session restored from :meth:`to_json`'s text, on the same model and data.

        Parameters
        ----------
        text : str
            The JSON (or a path to a ``session.json``).
        model, dataset
            The model and data the session was saved with: their hashes
            must match the file's.
        **kwargs
            More :class:`ExplorerSession` arguments (``asynchronous``,
            ``latents`` for a maps-only session, ``projections``...).

        Raises
        ------
        SessionMismatchError
            The model or the data differ from the saved session's (the
            message says which).
        traitlets.TraitError
            A field holds a value the session refuses (an index out of
            range, an unknown colour field...): the message names it, its
            value and what is allowed. Several invalid fields raise one
            :class:`SessionStateError` (also a ``ValueError``) naming each.
        ValueError
            Not a session file, or one that lacks fields.
        """
        if not str(text).lstrip().startswith("{") and Path(str(text)).is_file():
            text = Path(str(text)).read_text()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a session file (invalid JSON: {exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != _SESSION_FORMAT:
            raise ValueError("not a latent-widgets session file (no 'format': 'latent-widgets-session')")
        wrong = []
        if doc.get("data_hash") != data_hash(dataset):
            wrong.append(
                f"the data differ (saved {str(doc.get('data_hash'))[:12]}, {doc.get('n_samples')} samples; "
                f"given {data_hash(dataset)[:12]}, {len(dataset)} samples)"
            )
        got = model_hash(model, kwargs.get("latents"))
        if doc.get("model_hash") != got:
            wrong.append(f"the model differs (saved {str(doc.get('model_hash'))[:12]}, given {got[:12]})")
        if wrong:
            raise SessionMismatchError(
                "this session was saved with another model or dataset: "
                + "; ".join(wrong)
                + ". Load it with the model and data it was saved with."
            )
        m = doc.get("map")
        m = m if isinstance(m, dict) else {}
        needed = ("index_a", "index_b", "n_steps", "path_method", "skip_policy", "alpha", "selected", "selection")
        missing = [k for k in needed if k not in doc] + [f"map.{k}" for k in ("method", "methods") if k not in m]
        if missing:
            raise ValueError(
                f"the session file lacks {missing}: it was not written by ExplorerSession.to_json, or was cut short"
            )
        methods = m["methods"]
        if not (isinstance(methods, list) and methods and all(isinstance(v, str) for v in methods)):
            raise ValueError(f"map.methods={methods!r} in the session file: expected a list of method names")
        # Every field is checked by the session's validators; all the invalid ones are reported at once
        # (SessionStateError), each naming the field, the value and what is allowed.
        kw: dict[str, Any] = dict(
            methods=tuple(methods),
            map_method=m["method"],
            projection_kwargs=m.get("projection_kwargs") or None,
            index_a=doc["index_a"],
            index_b=doc["index_b"],
            n_steps=doc["n_steps"],
            path_method=doc["path_method"],
            skip_policy=doc["skip_policy"],
            alpha=doc["alpha"],
            selected=doc["selected"],
            selection=doc["selection"],
            color_by=doc.get("color_by"),
            map_points=m.get("points", "flatten"),
            selected_cell=doc.get("selected_cell"),
            # A file written before the key existed scored every class.
            ignore_index=doc.get("ignore_index"),
        )
        kw.update(kwargs)
        return cls(model, dataset, **kw)

    def export(self, folder: str | Path) -> list[Path]:
        """Write ``session.json`` and the current figures (PNG and SVG) into ``folder``.

        The map (:func:`~latent_widgets.views.figures.annotated_scatter`, in the
        current colours, with the path and the selection), the strip
        (:func:`~latent_widgets.views.figures.strip_from_path`) when there is one,
        and the selection's confusion matrix
        (:func:`~latent_widgets.views.figures.confusion_figure`) when samples are
        selected. Returns the files written.

        Examples
        --------
        >>> [p.name for p in s.export("out")]  # doctest: +SKIP
        ['session.json', 'map.png', 'map.svg', 'strip.png', 'strip.svg']
        """
        from ..views import figures

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "session.json"]
        written[0].write_text(self.to_json())
        pts = self.fit_map(self.map_method)
        field = self.color_values()
        kw: dict[str, Any] = {}
        if field.categorical:
            kw.update(
                values=field.values, categorical=True, colours=list(field.colours), value_names=list(field.labels)
            )
        elif np.isfinite(field.values).any():
            kw.update(values=np.nan_to_num(field.values, nan=float(np.nanmin(field.values))), categorical=False)
        strip = self.strip
        highlight = self.selection.tolist() or ([] if self.selected is None else [int(self.selected)])
        on_samples = self.map_points != "cells"  # a map of cells draws no path (see map_points)
        fig = figures.annotated_scatter(
            pts,
            path=self.path_points if strip is not None and on_samples else None,
            neighbors=strip.neighbor_indices if strip is not None and on_samples else None,
            highlight=self.sample_points(highlight).tolist(),
            title=f"{self.map_method} map · colour: {self.color_by}",
            **kw,
        )
        written += figures.save(fig, folder / "map")
        if strip is not None:
            fig = figures.strip_from_path(
                strip.result,
                _StripNeighbors(strip.neighbor_indices, strip.neighbor_distances),
                self.dataset,
                index_a=strip.key.index_a,
                index_b=strip.key.index_b,
            )
            written += figures.save(fig, folder / "strip")
        if len(self.selection):
            report = (
                self.report
                if self.report is not None and np.array_equal(self.report.indices, self.selection)
                else self.selection_report()
            )
            written += figures.save(figures.confusion_figure(report), folder / "confusion")
        return written

    def _on_strip(self, _change: Any) -> None:
        self._place_path()

    def _place_path(self) -> None:
        strip, method = self.strip, self.map_method
        # On a map of cells a path step is h * w points, not one: the path is not drawn there. Before the
        # dataset is encoded, a given map has no latents to place the path among (_become_ready places it).
        if strip is None or not self.ready or self.map_key() not in self.maps or self.map_points == "cells":
            self.path_points = None
            return
        with self._gen_lock:
            self._place_gen += 1
            gen = self._place_gen

        key = self.map_key()

        def job() -> None:
            if gen != self._place_gen:
                return
            p = self.place(strip.latents, method)
            if gen == self._place_gen and self.strip is strip and self.map_method == method and self.map_key() == key:
                self.path_points = p

        self._map_lane.submit("place path", job)

    # ------------------------------------------------------------------ strip

    def _on_path(self, _change: Any) -> None:
        if not self.live or self.model is None:
            return
        key = self.key
        self._show_frames(key)
        if key in self._strips:
            self._strips.move_to_end(key)
            self.strip = self._strips[key]
            self._request_alpha(self.alpha)
            self._request_frames(key)
            return
        self._model_lane.submit("strip", lambda: self._strip_job(key))
        self._request_alpha(self.alpha)

    def _strip_job(self, key: PathKey) -> None:
        if key != self.key:
            return  # the path changed again meanwhile: its own job is queued
        strip = self.compute_strip(key)
        self._strips[key] = strip
        while len(self._strips) > max(1, self.max_cached_strips):
            self._strips.popitem(last=False)
        if key == self.key:
            self.strip = strip
            # The slider may sit on a strip step that was decoded on demand meanwhile.
            step = strip.step_at(self.alpha)
            if step is not None:
                self._show(step, self._next_gen())
            self._request_frames(key)

    # ------------------------------------------------------------------ scrub frames

    def _show_frames(self, key: PathKey) -> None:
        """Set :attr:`frames` to the path's grid, complete or partial, if any of it is decoded, else None."""
        fk = tuple(key[:4])
        frames = self._frames_cache.get(fk)
        if frames is not None:
            self._frames_cache.move_to_end(fk)
        elif fk in self._frames_wip and self._frames_wip[fk][1].any():
            masks, ready = self._frames_wip[fk]
            frames = ScrubFrames(fk, np.linspace(0.0, 1.0, self.scrub_steps), masks.copy(), ready.copy())
        self.frames = frames

    def _request_frames(self, key: PathKey) -> None:
        fk = tuple(key[:4])
        if not self.scrub_steps or fk in self._frames_cache or fk in self._frames_running:
            return
        if fk not in self._frames_wip:  # (a grid left half done when the path changed goes on where it stopped)
            h, w = self.dataset.image_size
            self._frames_wip[fk] = (np.zeros((self.scrub_steps, h, w), np.uint8), np.zeros(self.scrub_steps, bool))
            while len(self._frames_wip) > max(1, self.max_cached_strips):
                self._frames_wip.pop(next(iter(self._frames_wip)))
        self._frames_running.add(fk)
        self._model_lane.submit("frames", lambda: self._frames_job(key), FRAMES)

    def _alpha_seconds(self, key: PathKey) -> float:
        """What one alpha of path ``key`` costs: a decode, and with the "image" skip policy a blend's encode."""
        seconds = self._decode_seconds
        if getattr(self.model, "has_skips", False) and key.skip_policy == "image":
            seconds += self._encode_seconds
        return seconds

    def _frames_job(self, key: PathKey) -> None:
        # One batch per job (about a quarter of a second), each queueing the next: slider decodes requested
        # meanwhile run between batches instead of waiting for the grid (at 288x384 on 2 cores a batch is no
        # cheaper per frame than single frames). Each batch is the missing frames nearest to the slider
        # *now*, so that the frames around where the person drags arrive first; the grid so far is sent as a
        # partial grid, at most once a second.
        fk = tuple(key[:4])
        wip = self._frames_wip.get(fk)
        if fk != tuple(self.key[:4]) or fk in self._frames_cache or wip is None:
            self._frames_running.discard(fk)  # the path changed: this grid waits for a return to it
            return
        masks, ready = wip
        alphas = np.linspace(0.0, 1.0, self.scrub_steps)
        batch = self._chunk_rows(self._alpha_seconds(key), cap=16)
        todo = np.flatnonzero(~ready)
        nearest = np.sort(todo[np.argsort(np.abs(alphas[todo] - float(self.alpha)), kind="stable")[:batch]])
        try:
            masks[nearest] = self.decode_masks(alphas[nearest], key)
        except BaseException:
            self._frames_running.discard(fk)
            raise
        ready[nearest] = True
        if not ready.all():
            now = time.monotonic()
            due = not self.asynchronous or now - self._published.get(f"frames {fk}", -math.inf) >= _PARTIAL_GRID_SECONDS
            if tuple(self.key[:4]) == fk and due:
                self._published[f"frames {fk}"] = now
                self.frames = ScrubFrames(fk, alphas, masks.copy(), ready.copy())
            self._model_lane.submit("frames", lambda: self._frames_job(key), FRAMES)
            return
        self._published.pop(f"frames {fk}", None)
        self._frames_running.discard(fk)
        self._frames_wip.pop(fk, None)
        masks.flags.writeable = False
        frames = ScrubFrames(fk, alphas, masks)
        self._frames_cache[frames.key] = frames
        while len(self._frames_cache) > max(1, self.max_cached_strips):
            self._frames_cache.popitem(last=False)
        if tuple(self.key[:4]) == frames.key:
            self.frames = frames

    def cell_movement(self) -> Any:
        """How far each latent cell moves along the current strip, or None.

        :func:`~latent_widgets.latents.cells.cell_movement` of the strip's latents:
        ``per_step`` (n_steps - 1, h, w) L2 per cell between consecutive
        steps and ``total`` (h, w). None while the strip is decoded, and for
        flat latents (no grid).

        Examples
        --------
        >>> m = s.cell_movement()  # doctest: +SKIP
        >>> m.per_step.shape, m.top(1)  # doctest: +SKIP
        ((11, 12, 16), [(7, 3, 4.2)])
        """
        strip = self.strip
        if strip is None or self.grid is None:
            return None
        cached = getattr(self, "_movement", None)
        if cached is not None and cached[0] is strip:
            return cached[1]
        from ..latents.cells import cell_movement

        movement = cell_movement(strip.latents)
        self._movement = (strip, movement)
        return movement

    def decode_masks(self, alphas: np.ndarray, key: PathKey | None = None) -> np.ndarray:
        """Masks (len(alphas), H, W) of the path at ``alphas``, one decoder call."""
        return self._decode(alphas, key)[2]

    def _decode(self, alphas: np.ndarray, key: PathKey | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latents, probabilities, masks) of the path ``key`` (default: the current one) at ``alphas``."""
        from ..analysis.interpolation import path_inputs

        key = key or self.key
        ds, model = self.dataset, self.model
        latents, skips = path_inputs(
            model,
            ds.images[key.index_a],
            ds.images[key.index_b],
            np.asarray(alphas, np.float32),
            method=key.method,
            skip_policy=key.skip_policy,
            encoding_a=self._encoding_of(key.index_a),
            encoding_b=self._encoding_of(key.index_b),
        )
        t0 = time.perf_counter()
        probs, masks = model.decode_with_masks(latents, skips if model.has_skips else None)
        if len(latents) == 1:  # the fastest single decode seen (the first also compiles): sizes the grid's batches
            self._decode_seconds = min(self._decode_seconds, time.perf_counter() - t0)
        return np.asarray(latents), np.asarray(probs), np.asarray(masks)

    def compute_strip(self, key: PathKey | None = None) -> Strip:
        """Decode the strip of a path (default: the current one).

        In one batch; on the session's model lane in batches of about a
        quarter of a second (a 288x384 SegNet's 12 steps take 2-4 s on 2
        cores), between which the slider's decodes run.
        """
        from ..analysis.interpolation import decode_path, steps
        from ..analysis.metrics import class_fractions

        key = key or self.key
        ds = self.dataset
        alphas = np.asarray(steps(key.n_steps), np.float64)
        rows = self._chunk_rows(self._alpha_seconds(key), cap=len(alphas))
        parts = []
        for start in range(0, len(alphas), rows):
            if start:
                self._model_lane.yield_point()
            parts.append(
                decode_path(
                    self.model,
                    ds.images[key.index_a],
                    ds.images[key.index_b],
                    alphas[start : start + rows],
                    method=key.method,
                    skip_policy=key.skip_policy,
                    encoding_a=self._encoding_of(key.index_a),
                    encoding_b=self._encoding_of(key.index_b),
                )
            )
        result = parts[0] if len(parts) == 1 else _joined_paths(parts)
        masks, probs, latents = np.asarray(result.masks), np.asarray(result.probs), np.asarray(result.latents)
        step_list = tuple(
            StripStep(float(al), latents[i], probs[i], masks[i], render.mask_bmp(masks[i], ds.palette), cached=True)
            for i, al in enumerate(np.asarray(result.alphas, np.float64))
        )
        fractions = np.asarray(class_fractions(masks, ds.n_classes), np.float64)
        return Strip(key, result, step_list, *self._strip_neighbors(latents), fractions)

    def _strip_neighbors(self, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(indices, distances, n_distinct) of the steps' nearest samples; -1, NaN, 0 until the dataset is encoded."""
        from ..analysis.neighbors import path_neighbors

        if self.latent_index is None:
            return np.full(len(latents), -1, np.int64), np.full(len(latents), np.nan), 0
        nb = path_neighbors(latents, self.latent_index)
        return np.asarray(nb.indices).reshape(-1), np.asarray(nb.distances, np.float64).reshape(-1), nb.n_distinct

    def _fill_in_neighbors(self) -> None:
        """Give the strips decoded before the dataset was encoded their nearest samples."""
        for key in list(self._strips):
            strip = self._strips.get(key)
            if strip is not None and not strip.has_neighbors:
                idx, dist, n_distinct = self._strip_neighbors(strip.latents)
                self._strips[key] = dataclasses.replace(
                    strip, neighbor_indices=idx, neighbor_distances=dist, n_distinct=n_distinct
                )
        current = self.strip
        if current is not None and not current.has_neighbors and current.key in self._strips:
            self.strip = self._strips[current.key]

    def _encoding_of(self, i: int) -> Any:
        """Sample ``i``'s encoding with its batch axis: the dataset's, or (before it is encoded) its own, kept."""
        if self.encoding is not None:
            return _sample_encoding(self.encoding, i)
        got = self._sample_encodings.get(i)
        if got is None:
            t0 = time.perf_counter()
            got = self.model.encode(self.dataset.images[i : i + 1])
            # The fastest seen: the first call of a model also compiles it.
            self._encode_seconds = min(self._encode_seconds, time.perf_counter() - t0)
            self._sample_encodings[i] = got
            while len(self._sample_encodings) > 16:
                self._sample_encodings.popitem(last=False)
        return got

    # ------------------------------------------------------------------ alpha

    def _next_gen(self) -> int:
        with self._gen_lock:
            self._decode_gen += 1
            return self._decode_gen

    def _on_alpha(self, change: Mapping[str, Any]) -> None:
        self._request_alpha(float(change["new"]))

    def _request_alpha(self, alpha: float) -> None:
        if not self.live or self.model is None:
            return
        gen = self._next_gen()
        strip = self.strip
        if strip is not None and strip.key == self.key:
            step = strip.step_at(alpha)
            if step is not None:
                self._show(step, gen)
                return
        key = self.key
        self._model_lane.submit("decode", lambda: self._decode_job(gen, alpha, key), NOW)

    def _decode_job(self, gen: int, alpha: float, key: PathKey) -> None:
        if gen != self._decode_gen:
            return  # a newer request is queued behind this one: skip the decode
        strip = self.strip
        step = strip.step_at(alpha) if strip is not None and strip.key == key else None
        if step is not None:  # the strip arrived while this request waited
            self._show(step, gen)
            return
        step = self.decode_alpha(alpha, key)
        self.ondemand_decodes += 1
        if key == self.key:  # else: a mask of a path no longer shown
            self._show(step, gen)

    def _show(self, step: StripStep, gen: int) -> None:
        with self._gen_lock:
            if gen < self._shown_gen:
                return  # something newer is already on display
            self._shown_gen = gen
            self.current = step

    def decode_alpha(self, alpha: float, key: PathKey | None = None) -> StripStep:
        """Decode the path at one ``alpha`` (no caching, no display)."""
        latents, probs, masks = self._decode(np.array([alpha]), key)
        probs, mask = probs[0], masks[0]
        if probs.shape[-1] <= 256:  # as decode_path does; also spares mask_bmp a cast
            mask = mask.astype(np.uint8)
        # BMP: writing it takes microseconds, zlib (PNG) a sizeable share of a decode.
        return StripStep(float(alpha), latents[0], probs, mask, render.mask_bmp(mask, self.dataset.palette))
