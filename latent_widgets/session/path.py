"""The session's current interpolation path, decoded: its strip, the slider's mask and the scrub grid.

All on the model lane: a path change queues its strip (its steps decoded
in chunks, their nearest samples once the dataset is encoded) and its
scrub grid (the masks on a fine alpha grid, batch after batch, the frames
nearest the slider first); a slider move shows the strip's step at that
alpha, or queues an on-demand decode (the newest request wins). Strips and
grids are kept for the paths seen last.

Examples
--------
>>> s = ExplorerSession(lm, data, asynchronous=False)  # doctest: +SKIP
>>> s.path.decode_masks(np.linspace(0.0, 1.0, 5)).shape, len(s.path.strips)  # doctest: +SKIP
((5, 96, 128), 1)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..views import render
from .jobs import FRAMES, NOW
from .values import PathKey, ScrubFrames, Strip, StripStep

__all__ = ["PARTIAL_GRID_SECONDS", "PathDecodes", "PathEnds"]

#: A partial scrub grid (all its frames: 7 MiB at 288x384) is sent to the page at most this often.
PARTIAL_GRID_SECONDS = 1.0


def _joined_paths(parts: Sequence[Any]) -> Any:
    """One :class:`~latent_widgets.analysis.interpolation.PathResult` of the consecutive parts of a path."""
    from ..analysis.interpolation import PathResult

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    skips = tuple(np.concatenate([p.skips[k] for p in parts]) for k in range(len(parts[0].skips)))
    return PathResult(cat("alphas"), cat("latents"), skips, cat("probs"), cat("masks"))


class PathEnds(NamedTuple):
    """A path's endpoints as its decodes take them: images (H, W, 3) and single-sample encodings."""

    image_a: np.ndarray
    image_b: np.ndarray
    encoding_a: Any
    encoding_b: Any


class PathDecodes:
    """Decodes a session's current path: its strip, the mask at the slider's alpha, the scrub grid.

    Parameters
    ----------
    session : ExplorerSession
        Its path traits (``key``, ``alpha``), ``model``, ``dataset``,
        ``scrub_steps``, ``max_cached_strips``, ``latent_index``, its
        ``jobs`` and ``encodings``; its ``strip``, ``current`` and
        ``frames`` traits and ``ondemand_decodes`` are set here.

    Attributes
    ----------
    strips : OrderedDict PathKey -> Strip
        The strips decoded, least recently used first.
    decode_seconds : float
        The fastest single decode seen (sizes the scrub grid's batches).
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.strips: OrderedDict[PathKey, Strip] = OrderedDict()
        self.decode_seconds = math.inf
        self._frames_cache: OrderedDict[tuple, ScrubFrames] = OrderedDict()
        # Grids being decoded: path -> (masks, which frames are decoded), and the paths whose job chain runs.
        self._frames_wip: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._frames_running: set[tuple] = set()
        self._published: dict[str, float] = {}
        self._movement: tuple[Strip, Any] | None = None
        self._ends: tuple[tuple[int, int], tuple[Any, Any, Any], PathEnds] | None = None

    # ------------------------------------------------------------------ strip

    def on_path(self, _change: Any) -> None:
        """The path changed: show what is kept of it, queue its strip, the mask at alpha and its grid."""
        s = self.session
        if not s.live or s.model is None:
            return
        key = s.key
        self._show_frames(key)
        if key in self.strips:
            self.strips.move_to_end(key)
            s.strip = self.strips[key]
            self.request_alpha(s.alpha)
            self._request_frames(key)
            return
        s.jobs.model_lane.submit("strip", lambda: self._strip_job(key))
        self.request_alpha(s.alpha)

    def _strip_job(self, key: PathKey) -> None:
        s = self.session
        if key != s.key:
            return  # the path changed again meanwhile: its own job is queued
        strip = self.compute_strip(key)
        self.strips[key] = strip
        while len(self.strips) > max(1, s.max_cached_strips):
            self.strips.popitem(last=False)
        if key == s.key:
            s.strip = strip
            # The slider may sit on a strip step that was decoded on demand meanwhile.
            step = strip.step_at(s.alpha)
            if step is not None:
                self._show(step, s.jobs.next_generation("decode"))
            self._request_frames(key)

    def compute_strip(self, key: PathKey | None = None) -> Strip:
        """Decode the strip of a path (default: the current one).

        In one batch; on the session's model lane in batches of about a
        quarter of a second (a 288x384 SegNet's 12 steps take 2-4 s on 2
        cores), between which the slider's decodes run.
        """
        from ..analysis.interpolation import decode_path, steps
        from ..analysis.metrics import class_fractions

        s = self.session
        key = key or s.key
        ds, ends = s.dataset, self.endpoints(key)
        alphas = np.asarray(steps(key.n_steps), np.float64)
        rows = s.jobs.chunk_rows(self._alpha_seconds(key), cap=len(alphas), row_bytes=self.row_bytes)
        parts = []
        for start in range(0, len(alphas), rows):
            if start:
                s.jobs.model_lane.yield_point()
            parts.append(
                decode_path(
                    s.model,
                    ends.image_a,
                    ends.image_b,
                    alphas[start : start + rows],
                    method=key.method,
                    skip_policy=key.skip_policy,
                    encoding_a=ends.encoding_a,
                    encoding_b=ends.encoding_b,
                )
            )
        result = parts[0] if len(parts) == 1 else _joined_paths(parts)
        masks, probs, latents = np.asarray(result.masks), np.asarray(result.probs), np.asarray(result.latents)
        step_list = tuple(
            StripStep(float(al), latents[i], probs[i], masks[i], render.mask_bmp(masks[i], ds.palette), cached=True)
            for i, al in enumerate(np.asarray(result.alphas, np.float64))
        )
        fractions = np.asarray(class_fractions(masks, ds.n_classes), np.float64)
        return Strip(key, result, step_list, *self.strip_neighbors(latents), fractions)

    def strip_neighbors(self, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(indices, distances, n_distinct) of the steps' nearest samples; -1, NaN, 0 until the dataset is encoded."""
        from ..analysis.neighbors import path_neighbors

        index = self.session.latent_index
        if index is None:
            return np.full(len(latents), -1, np.int64), np.full(len(latents), np.nan), 0
        nb = path_neighbors(latents, index)
        return np.asarray(nb.indices).reshape(-1), np.asarray(nb.distances, np.float64).reshape(-1), nb.n_distinct

    def fill_in_neighbors(self) -> None:
        """Give the strips decoded before the dataset was encoded their nearest samples."""
        for key in list(self.strips):
            strip = self.strips.get(key)
            if strip is not None and not strip.has_neighbors:
                idx, dist, n_distinct = self.strip_neighbors(strip.latents)
                self.strips[key] = dataclasses.replace(
                    strip, neighbor_indices=idx, neighbor_distances=dist, n_distinct=n_distinct
                )
        current = self.session.strip
        if current is not None and not current.has_neighbors and current.key in self.strips:
            self.session.strip = self.strips[current.key]

    def cell_movement(self) -> Any:
        """How far each latent cell moves along the current strip, or None.

        :func:`~latent_widgets.latents.cells.cell_movement` of the strip's latents:
        ``per_step`` (n_steps - 1, h, w) L2 per cell between consecutive
        steps and ``total`` (h, w). None while the strip is decoded, and for
        flat latents (no grid).
        """
        strip = self.session.strip
        if strip is None or self.session.grid is None:
            return None
        if self._movement is not None and self._movement[0] is strip:
            return self._movement[1]
        from ..latents.cells import cell_movement

        movement = cell_movement(strip.latents)
        self._movement = (strip, movement)
        return movement

    # ------------------------------------------------------------------ scrub frames

    def _show_frames(self, key: PathKey) -> None:
        """Set the session's ``frames`` to the path's grid, complete or partial, if any of it is decoded, else None."""
        fk = tuple(key[:4])
        frames = self._frames_cache.get(fk)
        if frames is not None:
            self._frames_cache.move_to_end(fk)
        elif fk in self._frames_wip and self._frames_wip[fk][1].any():
            masks, ready = self._frames_wip[fk]
            frames = ScrubFrames(fk, np.linspace(0.0, 1.0, self.session.scrub_steps), masks.copy(), ready.copy())
        self.session.frames = frames

    def _request_frames(self, key: PathKey) -> None:
        s = self.session
        fk = tuple(key[:4])
        if not s.scrub_steps or fk in self._frames_cache or fk in self._frames_running:
            return
        if fk not in self._frames_wip:  # (a grid left half done when the path changed goes on where it stopped)
            h, w = s.dataset.image_size
            self._frames_wip[fk] = (np.zeros((s.scrub_steps, h, w), np.uint8), np.zeros(s.scrub_steps, bool))
            while len(self._frames_wip) > max(1, s.max_cached_strips):
                self._frames_wip.pop(next(iter(self._frames_wip)))
        self._frames_running.add(fk)
        s.jobs.model_lane.submit("frames", lambda: self._frames_job(key), FRAMES)

    @property
    def row_bytes(self) -> int:
        """Bytes of one decoded frame's probabilities (float32, every class): what sizes a decode batch."""
        h, w = self.session.dataset.image_size
        return 4 * h * w * max(1, self.session.dataset.n_classes)

    def _alpha_seconds(self, key: PathKey) -> float:
        """What one alpha of path ``key`` costs: a decode, and with the "image" skip policy a blend's encode."""
        seconds = self.decode_seconds
        if getattr(self.session.model, "has_skips", False) and key.skip_policy == "image":
            seconds += self.session.encodings.encode_seconds
        return seconds

    def _frames_job(self, key: PathKey) -> None:
        # One batch per job (about a quarter of a second), each queueing the next: slider decodes requested
        # meanwhile run between batches instead of waiting for the grid (at 288x384 on 2 cores a batch is no
        # cheaper per frame than single frames). Each batch is the missing frames nearest to the slider
        # *now*, so that the frames around where the person drags arrive first; the grid so far is sent as a
        # partial grid, at most once a second.
        s = self.session
        fk = tuple(key[:4])
        wip = self._frames_wip.get(fk)
        if fk != tuple(s.key[:4]) or fk in self._frames_cache or wip is None:
            self._frames_running.discard(fk)  # the path changed: this grid waits for a return to it
            return
        masks, ready = wip
        alphas = np.linspace(0.0, 1.0, s.scrub_steps)
        batch = s.jobs.chunk_rows(self._alpha_seconds(key), cap=16, row_bytes=self.row_bytes)
        todo = np.flatnonzero(~ready)
        nearest = np.sort(todo[np.argsort(np.abs(alphas[todo] - float(s.alpha)), kind="stable")[:batch]])
        try:
            masks[nearest] = self.decode_masks(alphas[nearest], key)
        except BaseException:
            self._frames_running.discard(fk)
            raise
        ready[nearest] = True
        if not ready.all():
            now = time.monotonic()
            due = not s.asynchronous or now - self._published.get(f"frames {fk}", -math.inf) >= PARTIAL_GRID_SECONDS
            if tuple(s.key[:4]) == fk and due:
                self._published[f"frames {fk}"] = now
                s.frames = ScrubFrames(fk, alphas, masks.copy(), ready.copy())
            s.jobs.model_lane.submit("frames", lambda: self._frames_job(key), FRAMES)
            return
        self._published.pop(f"frames {fk}", None)
        self._frames_running.discard(fk)
        self._frames_wip.pop(fk, None)
        masks.flags.writeable = False
        frames = ScrubFrames(fk, alphas, masks)
        self._frames_cache[frames.key] = frames
        while len(self._frames_cache) > max(1, s.max_cached_strips):
            self._frames_cache.popitem(last=False)
        if tuple(s.key[:4]) == frames.key:
            s.frames = frames

    # ------------------------------------------------------------------ alpha

    def on_alpha(self, change: Mapping[str, Any]) -> None:
        """The slider moved: show the mask at the new alpha."""
        self.request_alpha(float(change["new"]))

    def request_alpha(self, alpha: float) -> None:
        """Show the mask at ``alpha``: the strip's step there, else an on-demand decode (model lane, first)."""
        s = self.session
        if not s.live or s.model is None:
            return
        gen = s.jobs.next_generation("decode")
        strip = s.strip
        if strip is not None and strip.key == s.key:
            step = strip.step_at(alpha)
            if step is not None:
                self._show(step, gen)
                return
        key = s.key
        s.jobs.model_lane.submit("decode", lambda: self._decode_job(gen, alpha, key), NOW)

    def _decode_job(self, gen: int, alpha: float, key: PathKey) -> None:
        s = self.session
        if not s.jobs.is_newest("decode", gen):
            return  # a newer request is queued behind this one: skip the decode
        strip = s.strip
        step = strip.step_at(alpha) if strip is not None and strip.key == key else None
        if step is not None:  # the strip arrived while this request waited
            self._show(step, gen)
            return
        step = self.decode_alpha(alpha, key)
        s.ondemand_decodes += 1
        if key == s.key:  # else: a mask of a path no longer shown
            self._show(step, gen)

    def _show(self, step: StripStep, gen: int) -> None:
        self.session.jobs.show_newest(gen, lambda: setattr(self.session, "current", step))

    # ------------------------------------------------------------------ decoding

    def decode_masks(self, alphas: np.ndarray, key: PathKey | None = None) -> np.ndarray:
        """Masks (len(alphas), H, W) of the path at ``alphas``, one decoder call."""
        return self.decode(alphas, key)[2]

    def decode_alpha(self, alpha: float, key: PathKey | None = None) -> StripStep:
        """Decode the path at one ``alpha`` (no caching, no display)."""
        latents, probs, masks = self.decode(np.array([alpha]), key)
        probs, mask = probs[0], masks[0]
        if probs.shape[-1] <= 256:  # as decode_path does; also spares mask_bmp a cast
            mask = mask.astype(np.uint8)
        # BMP: writing it takes microseconds, zlib (PNG) a sizeable share of a decode.
        return StripStep(float(alpha), latents[0], probs, mask, render.mask_bmp(mask, self.session.dataset.palette))

    def endpoints(self, key: PathKey | None = None) -> PathEnds:
        """The endpoints of path ``key`` (default: the current one): their images and encodings.

        Read once per pair of endpoints, not once per decoded alpha: a lazy dataset renders or loads an
        image at each read (a procedural scene at 288x384 takes ~18 ms), an on-disk store reads its
        rows. Read again once the dataset's own encoding replaces the samples' (or the dataset or model changes).
        """
        s = self.session
        key = key or s.key
        tag = (key.index_a, key.index_b)
        sources = (s.dataset, s.encoding, s.model)
        cached = self._ends
        if cached is not None and cached[0] == tag and all(x is y for x, y in zip(cached[1], sources, strict=True)):
            return cached[2]
        ds, encodings = s.dataset, s.encodings
        ends = PathEnds(
            np.asarray(ds.images[key.index_a]),
            np.asarray(ds.images[key.index_b]),
            encodings.encoding_of(key.index_a),
            encodings.encoding_of(key.index_b),
        )
        self._ends = (tag, sources, ends)
        return ends

    def decode(self, alphas: np.ndarray, key: PathKey | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latents, probabilities, masks) of the path ``key`` (default: the current one) at ``alphas``."""
        from ..analysis.interpolation import path_inputs

        s = self.session
        key = key or s.key
        model, ends = s.model, self.endpoints(key)
        latents, skips = path_inputs(
            model,
            ends.image_a,
            ends.image_b,
            np.asarray(alphas, np.float32),
            method=key.method,
            skip_policy=key.skip_policy,
            encoding_a=ends.encoding_a,
            encoding_b=ends.encoding_b,
        )
        t0 = time.perf_counter()
        probs, masks = model.decode_with_masks(latents, skips if model.has_skips else None)
        if len(latents) == 1:  # the fastest single decode seen (the first also compiles): sizes the grid's batches
            self.decode_seconds = min(self.decode_seconds, time.perf_counter() - t0)
        return np.asarray(latents), np.asarray(probs), np.asarray(masks)
