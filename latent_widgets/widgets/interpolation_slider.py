"""``InterpolationSlider``: decode the path between two samples as an alpha slider moves."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import bqplot as bq
import ipywidgets as W
import numpy as np
import traitlets

from .. import render
from ._common import ErrorSink, View, image_pane, labelled

__all__ = ["InterpolationSlider", "StripStep"]

# Alphas closer than this to a strip step count as that step (the cached path).
_SNAP = 1e-6


@dataclass(frozen=True)
class StripStep:
    """One decoded point of the path, ready to display."""

    alpha: float
    latent: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    image: bytes  # BMP of the mask (what the current-mask pane shows)


def _sample_encoding(encoding: Any, i: int) -> Any:
    """One sample's encoding, keeping the batch axis (what path_inputs expects)."""
    return type(encoding)(encoding.latents[i : i + 1], tuple(s[i : i + 1] for s in encoding.skips))


# CSS class of images the browser upscales without smoothing.
_PIXELATED = "lw-pixelated"


class InterpolationSlider(View):
    """Interpolate between two samples' latents and decode as ``alpha`` moves.

    The strip of ``n_steps`` evenly spaced alphas is decoded in one batch
    and cached per ``(index_a, index_b, method, skip_policy, n_steps)``;
    setting ``alpha`` to one of its steps only swaps PNG bytes. Any other
    alpha is decoded on demand: in a single background worker when
    ``asynchronous`` (the newest request wins: stale queued requests are
    skipped and an older result never replaces a newer one), or inline
    otherwise (tests, benchmarks).

    Parameters
    ----------
    model : LatentModel
        ``encode`` / ``decode`` / ``has_skips`` / ``latent_shape``.
    dataset : SegmentationDataset
    encoding : Encoding, optional
        The dataset's encoding (``model.encode_dataset(dataset)`` if omitted).
    index_a, index_b : int
        Endpoints (``index_b`` defaults to the last sample).
    n_steps : int
        Steps of the strip (default 12).
    method : {"linear", "spherical"}
    skip_policy : {"image", "skips", "hold_a", "hold_b"}
        How skip features are formed along the path (decoders with skips).
    alpha : float
        Initial slider value.
    asynchronous : bool
        Decode non-strip alphas in a background thread.
    latent_index : LatentIndex, optional
        Index of the dataset's latents for the strip's nearest neighbours
        (built on first use if omitted).
    display_width : int
        Width of the current mask in px; strip tiles are a third of that.
    max_cached_strips : int
        Decoded strips kept (least recently used dropped first).
    errors : ErrorSink, optional

    Attributes
    ----------
    index_a, index_b, n_steps : int (traits)
    alpha : float (trait)
    method, skip_policy : str (traits)
    strip_version : int (trait)
        Incremented each time a new strip is shown (observe it to follow the path).
    current_alpha : float
        Alpha of the mask on display (lags ``alpha`` while a decode runs).
    current_mask, current_probs, current_latent : ndarray
    image_value : bytes
        Image bytes (8-bit BMP, see :func:`latent_widgets.render.mask_bmp`)
        of the current mask.
    strip : PathResult
        The decoded strip; ``strip_neighbors`` its nearest real samples.
    fractions : ndarray (n_steps, n_classes)
        Per-class pixel fraction of each strip step.

    Examples
    --------
    >>> slider = InterpolationSlider(model, ds, asynchronous=False)  # doctest: +SKIP
    >>> slider.alpha = 0.37; slider.current_mask.shape  # doctest: +SKIP
    (96, 128)
    """

    index_a = traitlets.Int(0)
    index_b = traitlets.Int(1)
    alpha = traitlets.Float(0.0, min=0.0, max=1.0)
    method = traitlets.Unicode("linear")
    skip_policy = traitlets.Unicode("image")
    n_steps = traitlets.Int(12, min=2, max=64)
    strip_version = traitlets.Int(0)

    @traitlets.validate("method")
    def _valid_method(self, proposal: Mapping[str, Any]) -> str:
        from ..interpolation import PATH_METHODS

        if proposal["value"] not in PATH_METHODS:
            raise traitlets.TraitError(f"method {proposal['value']!r}: choose one of {PATH_METHODS}")
        return proposal["value"]

    @traitlets.validate("skip_policy")
    def _valid_policy(self, proposal: Mapping[str, Any]) -> str:
        from ..interpolation import SKIP_POLICIES

        if proposal["value"] not in SKIP_POLICIES:
            raise traitlets.TraitError(f"skip_policy {proposal['value']!r}: choose one of {SKIP_POLICIES}")
        return proposal["value"]

    @traitlets.validate("index_a", "index_b")
    def _valid_index(self, proposal: Mapping[str, Any]) -> int:
        i, n = proposal["value"], len(self.dataset)
        if not 0 <= i < n:
            raise traitlets.TraitError(f"{proposal['trait'].name}={i} is out of range for {n} samples")
        return i

    def __init__(
        self,
        model: Any,
        dataset: Any,
        *,
        encoding: Any = None,
        index_a: int = 0,
        index_b: int | None = None,
        n_steps: int = 12,
        method: str = "linear",
        skip_policy: str = "image",
        alpha: float = 0.0,
        asynchronous: bool = True,
        latent_index: Any = None,
        display_width: int = 256,
        max_cached_strips: int = 8,
        errors: ErrorSink | None = None,
    ) -> None:
        from ..interpolation import PATH_METHODS, SKIP_POLICIES

        self.model = model
        self.dataset = dataset
        self.errors = errors or ErrorSink()
        self.asynchronous = asynchronous
        n = len(dataset)
        if encoding is None:
            encoding = (
                model.encode_dataset(dataset) if hasattr(model, "encode_dataset") else model.encode(dataset.images)
            )
        if len(encoding.latents) != n:
            raise ValueError(f"encoding has {len(encoding.latents)} latents for {n} samples")
        self.encoding = encoding
        self._latent_index = latent_index
        index_b = n - 1 if index_b is None else index_b
        for name, i in (("index_a", index_a), ("index_b", index_b)):
            if not 0 <= i < n:
                raise ValueError(f"{name}={i} is out of range for {n} samples")
        if method not in PATH_METHODS:
            raise ValueError(f"method {method!r}: choose one of {PATH_METHODS}")
        if skip_policy not in SKIP_POLICIES:
            raise ValueError(f"skip_policy {skip_policy!r}: choose one of {SKIP_POLICIES}")

        # Decoded strips by path, least recently used first; bounded because
        # each holds the strip's probabilities (n_steps x H x W x classes).
        self._strips: OrderedDict[tuple, tuple[Any, Any, list[StripStep], np.ndarray]] = OrderedDict()
        self.max_cached_strips = max_cached_strips
        self._strip_key: tuple | None = None
        self._steps: list[StripStep] = []
        self.strip: Any = None
        self.strip_neighbors: Any = None
        self.fractions: np.ndarray | None = None
        self.current_alpha: float | None = None
        self.current_mask: np.ndarray | None = None
        self.current_probs: np.ndarray | None = None
        self.current_latent: np.ndarray | None = None
        #: How many on-demand (non-strip) decodes ran; strip steps do not count.
        self.ondemand_decodes = 0
        # Newest request wins: every alpha change takes a generation number;
        # the worker skips requests that are no longer the newest and a
        # result is applied only if nothing newer has been shown.
        self._generation = 0
        self._shown_generation = 0
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

        h, w = dataset.image_size
        # The current mask is sent at its own size and the browser upscales it
        # (CSS "pixelated", so class edges stay sharp): the hot path encodes
        # H x W bytes, not an upscaled copy.
        self.scale = 1
        shown_scale = render.display_scale(h, w, display_width)
        self.tile_scale = render.display_scale(h, w, max(64, display_width // 3))
        self.tile_width = max(64, display_width // 3)

        # ---- controls
        bounded = dict(min=0, max=n - 1, layout=W.Layout(width="130px"), style={"description_width": "20px"})
        self._a_box = W.BoundedIntText(description="A", **bounded)
        self._b_box = W.BoundedIntText(description="B", **bounded)
        self._method_buttons = W.ToggleButtons(options=list(PATH_METHODS), style={"button_width": "84px"})
        self._policy_dropdown = W.Dropdown(
            options=list(SKIP_POLICIES),
            description="skips",
            disabled=not getattr(model, "has_skips", False),
            layout=W.Layout(width="170px"),
            style={"description_width": "38px"},
        )
        self._steps_box = W.BoundedIntText(
            min=2, max=64, description="steps", layout=W.Layout(width="120px"), style={"description_width": "38px"}
        )
        self.slider = W.FloatSlider(
            min=0.0,
            max=1.0,
            step=0.01,
            description="alpha",
            continuous_update=True,
            readout_format=".2f",
            layout=W.Layout(width="460px"),
            style={"description_width": "40px"},
        )
        self._status = W.HTML(layout=W.Layout(width="120px"))
        self.image = image_pane(display_width)
        self.image.format = "bmp"
        self._caption = W.HTML()
        self._a_image = image_pane(self.tile_width)
        self._b_image = image_pane(self.tile_width)
        self._a_caption, self._b_caption = W.HTML(), W.HTML()

        # ---- per-class pixel fraction against alpha
        self._fx = bq.LinearScale(min=0.0, max=1.0)
        self._fy = bq.LinearScale(min=0.0, max=1.0)
        palette = render.hex_colours(dataset.palette)
        self.fraction_lines = bq.Lines(
            x=np.zeros(2),
            y=np.zeros((dataset.n_classes, 2)),
            scales={"x": self._fx, "y": self._fy},
            colors=palette,
            labels=list(dataset.class_names),
            stroke_width=2,
        )
        self.fraction_cursor = bq.Lines(
            x=np.zeros(2),
            y=np.array([0.0, 1.0]),
            scales={"x": self._fx, "y": self._fy},
            colors=["black"],
            line_style="dashed",
            stroke_width=1,
        )
        self.fraction_figure = bq.Figure(
            marks=[self.fraction_lines, self.fraction_cursor],
            axes=[
                bq.Axis(scale=self._fx, label="alpha", num_ticks=5, tick_format=".2f"),
                bq.Axis(scale=self._fy, side="left", label="pixel fraction", num_ticks=5, tick_format=".1f"),
            ],
            fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 20},
            display_toolbar=False,
            layout=W.Layout(width="320px", height=f"{max(200, int(h * shown_scale) + 40)}px"),
        )

        # ---- strip: decoded step over its nearest real neighbour
        self.strip_box = W.GridBox(layout=W.Layout(grid_gap="2px 4px"))
        self._strip_caption = W.HTML()
        # (top image, top caption, bottom image, bottom caption, top box, bottom box) per step
        self._tiles: list[tuple[Any, ...]] = []
        self.neighbor_values: list[bytes] = []
        self.n_distinct = 0
        self.widget = W.VBox(
            [
                W.HTML(f"<style>img.{_PIXELATED} {{ image-rendering: pixelated; }}</style>"),
                W.HBox([self._a_box, self._b_box, self._method_buttons, self._policy_dropdown, self._steps_box]),
                W.HBox([self.slider, self._status]),
                W.HBox(
                    [
                        W.VBox([labelled(self._a_image, self._a_caption), labelled(self._b_image, self._b_caption)]),
                        labelled(self.image, self._caption),
                        labelled(self.fraction_figure, "class pixel fraction"),
                    ]
                ),
                labelled(self.strip_box, self._strip_caption),
            ]
        )

        # CSS hooks for the browser tests and for styling.
        self.slider.add_class("lw-alpha-slider")
        self.image.add_class("lw-current-mask")
        self.image.add_class(_PIXELATED)
        self.strip_box.add_class("lw-strip")

        # ---- state
        self.set_trait("index_a", index_a)
        self.set_trait("index_b", index_b)
        self.set_trait("method", method)
        self.set_trait("skip_policy", skip_policy)
        self.set_trait("n_steps", n_steps)
        self.set_trait("alpha", float(alpha))
        for box, trait in (
            (self._a_box, "index_a"),
            (self._b_box, "index_b"),
            (self._method_buttons, "method"),
            (self._policy_dropdown, "skip_policy"),
            (self._steps_box, "n_steps"),
            (self.slider, "alpha"),
        ):
            W.link((self, trait), (box, "value"))
        self._observe_guarded(self._on_path_change, ["index_a", "index_b", "method", "skip_policy", "n_steps"])
        self._observe_guarded(self._on_alpha, "alpha")
        self._update_strip()
        self._request(self.alpha)

    # ------------------------------------------------------------------ public

    @property
    def image_value(self) -> bytes:
        """Image bytes (BMP) of the mask on display."""
        return bytes(self.image.value)

    @property
    def alphas(self) -> np.ndarray:
        """Alphas of the strip steps."""
        from ..interpolation import steps

        return np.asarray(steps(self.n_steps), np.float64)

    @property
    def strip_values(self) -> list[bytes]:
        """Image bytes (BMP) of the strip steps' masks, as the current-mask pane shows them."""
        return [s.image for s in self._steps]

    @property
    def busy(self) -> bool:
        """Whether an on-demand decode is queued or running."""
        return self._pending is not None and not self._pending.done()

    def wait(self, timeout: float | None = 30.0) -> None:
        """Block until the pending on-demand decode (if any) is shown."""
        fut = self._pending
        if fut is not None:
            fut.result(timeout=timeout)

    def close(self) -> None:
        """Stop the decode worker."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def decode_alpha(self, alpha: float, key: tuple | None = None) -> StripStep:
        """Decode the path at one ``alpha`` (no caching, no display).

        ``key`` is ``(index_a, index_b, method, skip_policy, n_steps)``;
        default: the current path.
        """
        from ..interpolation import path_inputs

        a, b, method, policy, _ = key or self._key()
        ds, enc = self.dataset, self.encoding
        with self._model_lock:
            latents, skips = path_inputs(
                self.model,
                ds.images[a],
                ds.images[b],
                np.array([alpha], np.float32),
                method=method,
                skip_policy=policy,
                encoding_a=_sample_encoding(enc, a),
                encoding_b=_sample_encoding(enc, b),
            )
            probs, masks = self.model.decode_with_masks(latents, skips if self.model.has_skips else None)
        probs, mask = np.asarray(probs)[0], np.asarray(masks)[0]
        if probs.shape[-1] <= 256:  # as decode_path does; also spares mask_bmp a cast
            mask = mask.astype(np.uint8)
        # BMP: writing it takes microseconds, zlib (PNG) a sizeable share of a decode.
        image = render.mask_bmp(mask, ds.palette)
        return StripStep(float(alpha), np.asarray(latents)[0], probs, mask, image)

    # ------------------------------------------------------------------ strip

    def _key(self) -> tuple:
        return (self.index_a, self.index_b, self.method, self.skip_policy, self.n_steps)

    def _on_path_change(self, change: Mapping[str, Any]) -> None:
        self._update_strip()
        self._request(self.alpha)

    def _neighbors_of(self, latents: np.ndarray) -> Any:
        from ..neighbors import LatentIndex, path_neighbors

        if self._latent_index is None:
            z = self.encoding.latents
            self._latent_index = LatentIndex(z)
        return path_neighbors(np.asarray(latents), self._latent_index)

    def _compute_strip(self, key: tuple) -> tuple[Any, Any, list[StripStep], np.ndarray]:
        from ..interpolation import decode_path
        from ..metrics import class_fractions

        a, b, method, policy, _n = key
        ds, enc = self.dataset, self.encoding
        alphas = self.alphas
        with self._model_lock:
            result = decode_path(
                self.model,
                ds.images[a],
                ds.images[b],
                alphas,
                method=method,
                skip_policy=policy,
                encoding_a=_sample_encoding(enc, a),
                encoding_b=_sample_encoding(enc, b),
            )
        masks = np.asarray(result.masks)
        probs = np.asarray(result.probs)
        latents = np.asarray(result.latents)
        steps = [
            StripStep(float(al), latents[i], probs[i], masks[i], render.mask_bmp(masks[i], ds.palette))
            for i, al in enumerate(np.asarray(result.alphas, np.float64))
        ]
        neighbors = self._neighbors_of(latents)
        fractions = np.asarray(class_fractions(masks, ds.n_classes), np.float64)
        return result, neighbors, steps, fractions

    def _update_strip(self) -> None:
        key = self._key()
        if key in self._strips:
            self._strips.move_to_end(key)
        else:
            self._status.value = "<i>decoding strip…</i>"
            try:
                self._strips[key] = self._compute_strip(key)
            finally:
                self._status.value = ""
            while len(self._strips) > max(1, self.max_cached_strips):
                self._strips.popitem(last=False)
        with self._lock:
            self.strip, self.strip_neighbors, self._steps, self.fractions = self._strips[key]
            self._strip_key = key
        self._draw_strip()
        self.strip_version += 1

    @property
    def neighbor_indices(self) -> np.ndarray:
        """Index of the nearest real sample of each strip step, shape (n_steps,)."""
        idx = np.asarray(self.strip_neighbors.indices)
        return idx[:, 0] if idx.ndim == 2 else idx

    @property
    def neighbor_distances(self) -> np.ndarray:
        """Latent distance of each strip step to its nearest real sample."""
        d = np.asarray(self.strip_neighbors.distances, np.float64)
        return d[:, 0] if d.ndim == 2 else d

    def _draw_strip(self) -> None:
        ds = self.dataset
        a, b = self.index_a, self.index_b
        self._a_image.value = render.to_png(ds.images[a], scale=self.tile_scale)
        self._b_image.value = render.to_png(ds.images[b], scale=self.tile_scale)
        self._a_caption.value = f"<b style='font-size:12px'>A = #{a}</b>"
        self._b_caption.value = f"<b style='font-size:12px'>B = #{b}</b>"
        nb, dist = self.neighbor_indices, self.neighbor_distances
        n = len(self._steps)
        # Tile widgets are reused across strips (new widgets per strip would
        # pile up in the kernel and the page).
        while len(self._tiles) < n:
            top_img, top_cap, bottom_img, bottom_cap = (
                image_pane(self.tile_width),
                W.HTML(),
                image_pane(self.tile_width),
                W.HTML(),
            )
            self._tiles.append(
                (top_img, top_cap, bottom_img, bottom_cap, W.VBox([top_cap, top_img]), W.VBox([bottom_img, bottom_cap]))
            )
        for i, step in enumerate(self._steps):
            top_img, top_cap, bottom_img, bottom_cap, _, _ = self._tiles[i]
            j = int(nb[i])
            top_img.value = render.mask_png(step.mask, ds.palette, scale=self.tile_scale)
            top_cap.value = f"<b style='font-size:12px'>α={step.alpha:.2f}</b>"
            bottom_img.value = render.mask_png(ds.masks[j], ds.palette, scale=self.tile_scale)
            bottom_cap.value = f"<span style='font-size:10px;white-space:nowrap'>#{j} d={dist[i]:.2g}</span>"
        tiles = self._tiles[:n]
        #: PNG bytes of the nearest real sample's mask under each strip step.
        self.neighbor_values = [bytes(t[2].value) for t in tiles]
        self.n_distinct = int(getattr(self.strip_neighbors, "n_distinct", len(set(nb.tolist()))))
        self._strip_caption.value = (
            f"<b style='font-size:12px'>strip: {n} decoded steps (top), each over its nearest real sample "
            f"(bottom, latent distance d): {self.n_distinct} distinct samples</b>"
        )
        self.strip_box.layout.grid_template_columns = f"repeat({n}, {self.tile_width}px)"
        self.strip_box.children = [t[4] for t in tiles] + [t[5] for t in tiles]
        with self.fraction_lines.hold_sync():
            self.fraction_lines.x = np.asarray([st.alpha for st in self._steps])
            self.fraction_lines.y = self.fractions.T

    # ------------------------------------------------------------------ alpha

    def _on_alpha(self, change: Mapping[str, Any]) -> None:
        self._request(float(change["new"]))

    def _cached_step(self, alpha: float) -> StripStep | None:
        for step in self._steps:
            if abs(step.alpha - alpha) <= _SNAP:
                return step
        return None

    def _request(self, alpha: float) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
        self.fraction_cursor.x = np.array([alpha, alpha])
        step = self._cached_step(alpha)
        if step is not None:
            self._show(step, gen, cached=True)
            return
        key = self._key()
        if not self.asynchronous:
            self._show(self._decode_counted(alpha, key), gen, cached=False)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="latent-widgets-decode")
        self._status.value = "<i>decoding…</i>"
        self._pending = self._executor.submit(self._work, gen, alpha, key)

    def _decode_counted(self, alpha: float, key: tuple) -> StripStep:
        step = self.decode_alpha(alpha, key)
        self.ondemand_decodes += 1
        return step

    def _work(self, gen: int, alpha: float, key: tuple) -> None:
        try:
            if gen != self._generation:
                return  # a newer request is queued behind this one: skip the decode
            step = self._decode_counted(alpha, key)
            if key != self._key():
                return  # the endpoints or path changed meanwhile: a mask of the old path
            self._show(step, gen, cached=False)
        except Exception as exc:
            self.errors.report(exc, "InterpolationSlider decode")
        finally:
            if gen == self._generation:
                self._status.value = ""

    def _show(self, step: StripStep, gen: int, cached: bool) -> None:
        with self._lock:
            if gen < self._shown_generation:
                return  # something newer is already on display
            self._shown_generation = gen
            self.current_alpha = step.alpha
            self.current_latent = step.latent
            self.current_probs = step.probs
            self.current_mask = step.mask
            where = "strip step" if cached else "decoded on demand"
            self._caption.value = (
                f"<b style='font-size:12px'>α = {step.alpha:.3f}</b> <span style='font-size:11px'>({where})</span>"
            )
            # Last: observers of the bytes (benchmark, tests) see a complete state.
            self.image.value = step.image
