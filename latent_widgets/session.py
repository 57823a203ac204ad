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

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import traitlets

from . import render

__all__ = ["PREDICT_ALL_PIXELS", "ExplorerSession", "PathKey", "ScrubFrames", "Strip", "StripStep"]

# Alphas closer than this to a strip step count as that step (the cached path).
_SNAP = 1e-6
#: ``predict="auto"`` predicts every mask at start up to this many pixels in all.
PREDICT_ALL_PIXELS = 1 << 26
_PREDICT_BLOCK = 256


class PathKey(NamedTuple):
    """What defines an interpolation path (and so a decoded strip)."""

    index_a: int
    index_b: int
    method: str
    skip_policy: str
    n_steps: int


@dataclass(frozen=True)
class StripStep:
    """One decoded point of the path, ready to display."""

    alpha: float
    latent: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    image: bytes  # 8-bit BMP of the mask (what the current-mask pane shows)
    cached: bool = False  # a strip step (True) or decoded on demand


@dataclass(frozen=True)
class Strip:
    """The decoded strip of one path: its steps and their nearest real samples."""

    key: PathKey
    result: Any  # interpolation.PathResult
    steps: tuple[StripStep, ...]
    neighbor_indices: np.ndarray
    neighbor_distances: np.ndarray
    n_distinct: int
    fractions: np.ndarray  # (n_steps, n_classes) class pixel fractions

    @property
    def alphas(self) -> np.ndarray:
        return np.asarray([s.alpha for s in self.steps], np.float64)

    @property
    def latents(self) -> np.ndarray:
        return np.asarray(self.result.latents)

    def step_at(self, alpha: float) -> StripStep | None:
        """The step at ``alpha``, if ``alpha`` is one of the strip's."""
        for step in self.steps:
            if abs(step.alpha - alpha) <= _SNAP:
                return step
        return None


@dataclass(frozen=True)
class ScrubFrames:
    """Masks of a path on a fine, even alpha grid: what the browser scrubs through.

    Sent to the page once per path; the slider then swaps frames on the
    front end, with no kernel round trip.
    """

    key: tuple[int, int, str, str]  # index_a, index_b, method, skip_policy
    alphas: np.ndarray  # (G,) evenly spaced from 0 to 1
    masks: np.ndarray  # (G, H, W) uint8 class ids

    def frame_at(self, alpha: float) -> int:
        """Index of the frame the browser shows at ``alpha`` (the nearest grid step)."""
        return int(np.clip(round(float(alpha) * (len(self.alphas) - 1)), 0, len(self.alphas) - 1))


def _sample_encoding(encoding: Any, i: int) -> Any:
    """One sample's encoding, keeping the batch axis (what path_inputs expects)."""
    return type(encoding)(encoding.latents[i : i + 1], tuple(s[i : i + 1] for s in encoding.skips))


class _Lane:
    """One worker thread (or inline calls) running a session's jobs in order."""

    def __init__(self, session: ExplorerSession, name: str, asynchronous: bool) -> None:
        self.session, self.name, self.asynchronous = session, name, asynchronous
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, label: str, fn: Callable[[], Any]) -> Future:
        if not self.asynchronous:
            fut: Future = Future()
            with self.session._busy_with(label):
                fut.set_result(fn())  # errors propagate to the caller: a script sees them
            return fut
        # Busy from the request on: a queued job is work the user waits for too.
        self.session._busy_change(label, +1)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"latent-widgets-{self.name}")
            fut = self._executor.submit(self._run, label, fn)
            self._futures = [f for f in self._futures if not f.done()] + [fut]
        return fut

    def _run(self, label: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            self.session._report(exc, label)
            raise
        finally:
            self.session._busy_change(label, -1)

    def pending(self) -> list[Future]:
        with self._lock:
            return [f for f in self._futures if not f.done()]

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


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
        Predicted masks; ``model.predict_masks`` by default (model lane).
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
        Predict the dataset's masks at start (the "mean IoU" colours need
        them; the viewer predicts the sample it shows when they are missing,
        and a slider alone needs none). ``"auto"``: only when all masks hold
        at most :data:`PREDICT_ALL_PIXELS` pixels (about 4,000 samples of
        128x128), so that a 100k-sample session starts without decoding
        everything.
    scrub_steps : int
        Frames of the fine alpha grid decoded in the background after each
        path change (:attr:`frames`); 0 turns it off. Capped so that a grid
        holds at most 16 MiB of masks.

    Attributes
    ----------
    index_a, index_b, n_steps, alpha, path_method, skip_policy, map_method, selected
        User input (traits).
    ready : bool (trait)
        Encoding and predictions are available.
    maps : dict method -> ndarray (N, 2) (trait)
        The maps computed so far.
    path_points : ndarray (n_steps, 2) or None (trait)
        The strip's steps placed on the current map.
    strip : Strip or None (trait)
    current : StripStep or None (trait)
        The mask at (the newest decoded) ``alpha``.
    frames : ScrubFrames or None (trait)
        The current path's masks on the fine alpha grid, once decoded.
    busy : tuple of str (trait)
        Labels of the queued and running jobs ("encode", "strip", "decode",
        "map: umap"...); empty when idle.
    errors : tuple of Exception (trait)
        The errors background jobs raised (``wait()`` raises them too).

    Examples
    --------
    >>> s = ExplorerSession(lm, data, asynchronous=False)  # doctest: +SKIP
    >>> s.alpha = 0.5; s.current.mask.shape  # doctest: +SKIP
    (96, 128)
    """

    index_a = traitlets.Int(0)
    index_b = traitlets.Int(0)
    n_steps = traitlets.Int(12, min=2, max=64)
    alpha = traitlets.Float(0.0, min=0.0, max=1.0)
    path_method = traitlets.Unicode("linear")
    skip_policy = traitlets.Unicode("image")
    map_method = traitlets.Unicode("pca")
    selected = traitlets.Int(None, allow_none=True)

    ready = traitlets.Bool(False)
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
        from .interpolation import PATH_METHODS

        if proposal["value"] not in PATH_METHODS:
            raise traitlets.TraitError(f"path_method {proposal['value']!r}: choose one of {PATH_METHODS}")
        return proposal["value"]

    @traitlets.validate("skip_policy")
    def _valid_policy(self, proposal: Mapping[str, Any]) -> str:
        from .interpolation import SKIP_POLICIES

        if proposal["value"] not in SKIP_POLICIES:
            raise traitlets.TraitError(f"skip_policy {proposal['value']!r}: choose one of {SKIP_POLICIES}")
        return proposal["value"]

    @traitlets.validate("map_method")
    def _valid_map_method(self, proposal: Mapping[str, Any]) -> str:
        if proposal["value"] not in self.methods:
            raise traitlets.TraitError(f"map_method {proposal['value']!r}: choose one of {self.methods}")
        return proposal["value"]

    @traitlets.validate("index_a", "index_b", "selected")
    def _valid_index(self, proposal: Mapping[str, Any]) -> int | None:
        i, n = proposal["value"], len(self.dataset)
        if i is not None and not 0 <= i < n:
            raise traitlets.TraitError(f"{proposal['trait'].name}={i} is out of range for {n} samples (0..{n - 1})")
        return i

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
        asynchronous: bool = True,
        max_cached_strips: int = 8,
        predict: bool | str = "auto",
        scrub_steps: int = 64,
    ) -> None:
        super().__init__()
        n = len(dataset)
        if n < 2:
            raise ValueError(f"the explorer needs at least 2 samples, got {n}")
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
        self._model_lane = _Lane(self, "model", asynchronous)
        self._map_lane = _Lane(self, "map", asynchronous)

        with self.hold_trait_notifications():
            self.maps = given
            self.index_a = index_a
            self.index_b = n - 1 if index_b is None else index_b
            self.n_steps = n_steps
            self.path_method = path_method
            self.skip_policy = skip_policy
            self.alpha = float(alpha)
            self.map_method = map_method or self.methods[0]
            self.selected = self.index_a if selected is None else selected
        self.observe(self._on_path, ["index_a", "index_b", "path_method", "skip_policy", "n_steps"])
        self.observe(self._on_alpha, "alpha")
        self.observe(self._on_map_method, "map_method")
        self.observe(self._on_strip, "strip")
        if asynchronous and {"tsne", "umap"} & set(self.methods):
            from .projection import warm_up_projections

            # Loads UMAP's compiled code (or compiles it, the first time on a machine) while the data encodes.
            warm_up_projections()
        self._model_lane.submit("encode", self._startup)

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
        from .neighbors import LatentIndex

        model, ds = self.model, self.dataset
        if self.encoding is None and self._latents is None:
            self.encoding = model.encode_dataset(ds) if hasattr(model, "encode_dataset") else model.encode(ds.images)
            self._check_lengths()
        if self.predictions is None and model is not None and self._predicts_all():
            self.predictions = self._predict_all()
        self.latent_index = LatentIndex(self.latents)
        self.ready = True
        self.request_map(self.map_method)
        if self.model is not None:
            self._on_path(None)

    def _predicts_all(self) -> bool:
        if self.predict == "auto":
            h, w = self.dataset.image_size
            return len(self.dataset) * h * w <= PREDICT_ALL_PIXELS
        return bool(self.predict)

    def _predict_all(self) -> np.ndarray:
        from .arrays import iter_row_blocks

        ds = self.dataset
        # Block by block, so that a lazy dataset is read (and its images held) one block at a time;
        # uint8 ids when they fit, a quarter of int32's memory.
        out = np.empty((len(ds), *ds.image_size), np.uint8 if ds.n_classes <= 256 else np.int32)
        for rows in iter_row_blocks(len(ds), _PREDICT_BLOCK):
            out[rows] = self.model.predict_masks(ds.images[rows])
        return out

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
        return self.maps.get(self.map_method)

    def wait(self, timeout: float | None = 60.0) -> None:
        """Block until every queued job has finished (a no-op when synchronous).

        Raises the first error a job raised, as scripts expect.
        """
        # Jobs queue jobs on the other lane (a strip, then its placement on the map).
        while pending := self._model_lane.pending() + self._map_lane.pending():
            for fut in pending:
                fut.result(timeout=timeout)

    def close(self) -> None:
        """Stop the worker threads."""
        self._model_lane.close()
        self._map_lane.close()

    def clear_errors(self) -> None:
        self.errors = ()

    # ------------------------------------------------------------------ busy and errors

    class _Busy:
        def __init__(self, session: ExplorerSession, label: str) -> None:
            self.session, self.label = session, label

        def __enter__(self) -> None:
            self.session._busy_change(self.label, +1)

        def __exit__(self, *exc: object) -> None:
            self.session._busy_change(self.label, -1)

    def _busy_with(self, label: str) -> ExplorerSession._Busy:
        return ExplorerSession._Busy(self, label)

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

    def request_map(self, method: str) -> Future | None:
        """Fit the map of ``method`` on the map lane unless it exists; ``None`` if it does."""
        if method in self.maps or not self.ready:
            return None
        return self._map_lane.submit(f"map: {method}", lambda: self._fit_map(method))

    def fit_map(self, method: str) -> np.ndarray:
        """The map of ``method``, fitted now (in the caller's thread) if it is missing."""
        if method not in self.maps:
            self._fit_map(method)
        return self.maps[method]

    def _fit_map(self, method: str) -> None:
        if method in self.maps:
            return
        from .projection import fit_projection

        try:
            kw = self._projection_kwargs.get(method, {})
            proj = fit_projection(self.latents, method=method, cache=True, progress=False, **kw)
            pts = np.asarray(proj.embedding_, np.float64)
            if pts.shape != (len(self.dataset), 2):
                raise ValueError(f"projection {method!r} returned shape {pts.shape}, expected ({len(pts)}, 2)")
        except Exception:
            # Keep showing the map that is drawn.
            if self.map_method == method:
                drawn = next((m for m in self.methods if m in self.maps), None)
                if drawn is not None:
                    self.map_method = drawn
            raise
        self.projectors[method] = proj
        self.maps = {**self.maps, method: pts}
        if method == self.map_method:
            self._place_path()

    def place(self, latents: np.ndarray, method: str | None = None) -> np.ndarray:
        """Place new latents (e.g. a path) on a map, shape (M, 2).

        The fitted projection's ``transform`` (exact for PCA, UMAP's own,
        neighbour placement for t-SNE); for a map given in ``projections``,
        the distance-weighted mean position of the 3 nearest samples.
        """
        method = method or self.map_method
        pts = self.fit_map(method)
        z = np.asarray(latents, np.float32).reshape((len(latents), *self.latents.shape[1:]))
        proj = self.projectors.get(method)
        if proj is not None:
            return np.asarray(proj.transform(z), np.float64)
        idx, dist = self.latent_index.query(z, k=min(3, len(pts)))
        w = 1.0 / np.maximum(np.asarray(dist, np.float64), 1e-9)
        return (pts[np.asarray(idx)] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)

    def _on_map_method(self, change: Mapping[str, Any]) -> None:
        if change["new"] in self.maps:
            self._place_path()
        else:
            self.request_map(change["new"])

    def _on_strip(self, _change: Any) -> None:
        self._place_path()

    def _place_path(self) -> None:
        strip, method = self.strip, self.map_method
        if strip is None or method not in self.maps:
            self.path_points = None
            return
        with self._gen_lock:
            self._place_gen += 1
            gen = self._place_gen

        def job() -> None:
            if gen != self._place_gen:
                return
            p = self.place(strip.latents, method)
            if gen == self._place_gen and self.strip is strip and self.map_method == method:
                self.path_points = p

        self._map_lane.submit("place path", job)

    # ------------------------------------------------------------------ strip

    def _on_path(self, _change: Any) -> None:
        if not self.ready or self.model is None:
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
        """Set :attr:`frames` to the path's grid if it is decoded, else None."""
        fk = tuple(key[:4])
        frames = self._frames_cache.get(fk)
        if frames is not None:
            self._frames_cache.move_to_end(fk)
        self.frames = frames

    def _request_frames(self, key: PathKey) -> None:
        if self.scrub_steps and tuple(key[:4]) not in self._frames_cache:
            self._model_lane.submit("frames", lambda: self._frames_job(key, 0, []))

    def _frames_job(self, key: PathKey, start: int, done: list[np.ndarray], batch: int = 16) -> None:
        # One batch per job, each queueing the next: slider decodes requested
        # meanwhile run between batches instead of waiting for the grid.
        if key != self.key or tuple(key[:4]) in self._frames_cache:
            return  # the path changed: this grid is no longer wanted
        alphas = np.linspace(0.0, 1.0, self.scrub_steps)
        done.append(self.decode_masks(alphas[start : start + batch], key))
        if start + batch < len(alphas):
            self._model_lane.submit("frames", lambda: self._frames_job(key, start + batch, done, batch))
            return
        frames = ScrubFrames(tuple(key[:4]), alphas, np.concatenate(done).astype(np.uint8, copy=False))
        self._frames_cache[frames.key] = frames
        while len(self._frames_cache) > max(1, self.max_cached_strips):
            self._frames_cache.popitem(last=False)
        if tuple(self.key[:4]) == frames.key:
            self.frames = frames

    def decode_masks(self, alphas: np.ndarray, key: PathKey | None = None) -> np.ndarray:
        """Masks (len(alphas), H, W) of the path at ``alphas``, one decoder call."""
        return self._decode(alphas, key)[2]

    def _decode(self, alphas: np.ndarray, key: PathKey | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latents, probabilities, masks) of the path ``key`` (default: the current one) at ``alphas``."""
        from .interpolation import path_inputs

        key = key or self.key
        ds, enc, model = self.dataset, self.encoding, self.model
        latents, skips = path_inputs(
            model,
            ds.images[key.index_a],
            ds.images[key.index_b],
            np.asarray(alphas, np.float32),
            method=key.method,
            skip_policy=key.skip_policy,
            encoding_a=_sample_encoding(enc, key.index_a),
            encoding_b=_sample_encoding(enc, key.index_b),
        )
        probs, masks = model.decode_with_masks(latents, skips if model.has_skips else None)
        return np.asarray(latents), np.asarray(probs), np.asarray(masks)

    def compute_strip(self, key: PathKey | None = None) -> Strip:
        """Decode the strip of a path (default: the current one) in one batch."""
        from .interpolation import decode_path, steps
        from .metrics import class_fractions
        from .neighbors import path_neighbors

        key = key or self.key
        ds, enc = self.dataset, self.encoding
        result = decode_path(
            self.model,
            ds.images[key.index_a],
            ds.images[key.index_b],
            np.asarray(steps(key.n_steps), np.float64),
            method=key.method,
            skip_policy=key.skip_policy,
            encoding_a=_sample_encoding(enc, key.index_a),
            encoding_b=_sample_encoding(enc, key.index_b),
        )
        masks, probs, latents = np.asarray(result.masks), np.asarray(result.probs), np.asarray(result.latents)
        step_list = tuple(
            StripStep(float(al), latents[i], probs[i], masks[i], render.mask_bmp(masks[i], ds.palette), cached=True)
            for i, al in enumerate(np.asarray(result.alphas, np.float64))
        )
        nb = path_neighbors(latents, self.latent_index)
        fractions = np.asarray(class_fractions(masks, ds.n_classes), np.float64)
        idx = np.asarray(nb.indices).reshape(-1)
        return Strip(
            key, result, step_list, idx, np.asarray(nb.distances, np.float64).reshape(-1), nb.n_distinct, fractions
        )

    # ------------------------------------------------------------------ alpha

    def _next_gen(self) -> int:
        with self._gen_lock:
            self._decode_gen += 1
            return self._decode_gen

    def _on_alpha(self, change: Mapping[str, Any]) -> None:
        self._request_alpha(float(change["new"]))

    def _request_alpha(self, alpha: float) -> None:
        if not self.ready or self.model is None:
            return
        gen = self._next_gen()
        strip = self.strip
        if strip is not None and strip.key == self.key:
            step = strip.step_at(alpha)
            if step is not None:
                self._show(step, gen)
                return
        key = self.key
        self._model_lane.submit("decode", lambda: self._decode_job(gen, alpha, key))

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
