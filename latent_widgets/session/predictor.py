"""The session's predictions: every mask in the background (bulk), one sample on request, their scores and cache.

The bulk job predicts the dataset's masks on the model lane in chunks that
let the interactive jobs pass, from a disk cache keyed by the model's and
the data's hashes when a session computed them before; a view asks for the
sample it shows ahead of them (:meth:`Predictor.request_prediction`). What
is known so far lives in a :class:`~latent_widgets.session.predictions.PredictedMasks`.

Examples
--------
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(6, -1), predictions=ds.masks, asynchronous=False)
>>> s.predictor.sample_iou().tolist()  # the true masks as predictions: a perfect score
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from .identity import data_hash, model_hash
from .jobs import BULK
from .predictions import PredictedMasks

__all__ = ["PREDICT_ALL_PIXELS", "PREDICT_BLOCK", "Predictor"]

#: ``predict="auto"`` predicts every mask at start up to this many pixels in all.
PREDICT_ALL_PIXELS = 1 << 26
#: Samples predicted in one call where nothing is waiting for the lane (a script, a selection's report).
PREDICT_BLOCK = 256


class Predictor:
    """Predicts a session's masks: all of them (bulk, model lane) or one sample at a time, and scores them.

    Parameters
    ----------
    session : ExplorerSession
        Its ``model``, ``dataset``, ``encoding``, ``predict`` and
        ``asynchronous``; its ``predictions`` (set once every mask is
        predicted) and ``predicted`` trait are set here.

    Attributes
    ----------
    known : PredictedMasks
        The predictions so far (the bulk job's, the requested samples').
    predicting : bool
        The bulk job is queued or runs.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.known = PredictedMasks(session.dataset, session.ignore_index)
        self.predicting = False
        self._requests: dict[int, Future] = {}
        self._sample_iou: np.ndarray | None = None

    def wants_all(self) -> bool:
        """Whether the session predicts every mask (it has a model, and ``predict`` asks for it)."""
        s = self.session
        if s.model is None:
            return False
        if s.predict == "auto":
            h, w = s.dataset.image_size
            return len(s.dataset) * h * w <= PREDICT_ALL_PIXELS
        return bool(s.predict)

    def cache_path(self) -> Path | None:
        """Where the predictions of this model on this data are cached (None: the model cannot be hashed)."""
        from ..core.cache import cache_dir, content_hash

        s = self.session
        try:
            key = content_hash("session-predictions-v1", model_hash(s.model), data_hash(s.dataset))
        except TypeError:
            return None
        return cache_dir("predictions") / f"{key}.npz"

    def load_cached(self) -> bool:
        """Fill the predictions from the disk cache; whether it held them."""
        if not self.wants_all() or not self.known.load(self.cache_path()):
            return False
        self.publish(force=True)
        return True

    def submit_all(self) -> Future:
        """Queue :meth:`predict_all` on the model lane (bulk)."""
        self.predicting = True
        return self.session.jobs.model_lane.submit("predict", self.predict_all, BULK)

    def predict_all(self) -> None:
        """Predict every mask, in chunks (bulk), with each chunk's mean IoU; cache them on disk."""
        s = self.session
        jobs, n, known = s.jobs, len(s.dataset), self.known
        hit = known.complete or self.load_cached()
        bar = None
        if jobs.show_bars() and not hit:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="predicting", unit="img", leave=False)
        step = jobs.bulk_step("predict")
        try:
            # The first block predicted is one row, timed to size the others (a script's: large blocks).
            rows, timed, start = (1, False, 0) if s.asynchronous else (PREDICT_BLOCK, True, 0)
            step(0, n)
            while start < n:
                block = slice(start, min(n, start + rows))
                if known.done is None or not known.done[block].all():
                    t0 = time.perf_counter()
                    known.store(block, self.predict_block(block))
                    if not timed:
                        seconds = (time.perf_counter() - t0) / (block.stop - block.start)
                        rows, timed = jobs.chunk_rows(seconds, row_bytes=s.path.row_bytes), True
                else:  # from the cache, or the shown sample's: its mean IoU
                    known.store(block, known.masks[block])  # type: ignore[index]
                if bar is not None:
                    bar.update(block.stop - block.start)
                start = block.stop
                self.publish()
                step(start, n)
            masks = known.masks
            masks.flags.writeable = False  # type: ignore[union-attr]
            self._sample_iou = known.mean_iou()
            s.predictions = masks
        finally:
            if bar is not None:
                bar.close()
            self.predicting = False  # (after the predictions are set: the colours never see neither)
            jobs.end_progress("predict")
        if not hit:
            known.save(self.cache_path())
        self.publish(force=True)
        if len(s.selection):
            s.reports.on_selection(None)  # now with the whole set's scores beside the selection's

    def predict_block(self, rows: slice) -> np.ndarray:
        """The model's masks of the samples ``rows``: decoded from the encoding when it is in memory.

        ``decoder(encoder(x))`` is ``predict_masks(x)``: with the latents at
        hand only the decoder runs (a 288x384 VGG SegNet: 0.18 s a sample
        instead of 0.8 s).
        """
        s = self.session
        model, enc = s.model, s.encoding
        if enc is None and rows.stop - rows.start == 1 and rows.start in s.encodings.samples:
            enc, rows = s.encodings.samples[rows.start], slice(0, 1)
        if (
            enc is not None
            and isinstance(enc.latents, np.ndarray)
            and all(isinstance(sk, np.ndarray) for sk in enc.skips)
            and hasattr(model, "decode_with_masks")
        ):
            skips = [sk[rows] for sk in enc.skips] if model.has_skips else None
            return np.asarray(model.decode_with_masks(enc.latents[rows], skips)[1])
        return np.asarray(model.predict_masks(s.dataset.images[rows]))

    def publish(self, force: bool = False) -> None:
        """Set the session's ``predicted`` to the count known (at most twice a second unless ``force``)."""
        if self.session.jobs.due("predicted", force=force):
            self.session.predicted = self.known.count

    # ------------------------------------------------------------------ one sample

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
        if self.session.predictions is not None:
            return np.asarray(self.session.predictions[i])
        return self.known.get(i)

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
        if self.session.model is None:
            raise ValueError("no model to predict with: pass predictions=... or a model")
        if self.known_prediction(i) is not None:
            return None
        queued = self._requests.get(i)
        if queued is not None and not queued.done():
            return queued  # (a view asks again each time other samples are predicted)

        def job() -> None:
            startup = self.session.encodings.startup_job
            if startup.done() and not startup.cancelled() and startup.exception() is not None:
                return  # the model refused the dataset at start: that error is reported once, not per view
            if self.known_prediction(i) is None:
                self.predict_sample(i)

        fut = self.session.jobs.model_lane.submit("predict sample", job)
        self._requests = {k: f for k, f in self._requests.items() if not f.done()}
        if not fut.done():
            self._requests[i] = fut
        return fut

    def predict_sample(self, i: int) -> np.ndarray:
        """Predict one sample now (in the caller's thread) and keep it; the session's ``predicted`` moves."""
        mask = self.predict_block(slice(i, i + 1))
        if self.wants_all():
            self.known.store(slice(i, i + 1), mask)
        else:  # no bulk prediction to fill in: a few of them kept aside
            self.known.put_aside(i, mask[0])
        self.publish(force=True)
        return mask[0]

    def prediction(self, index: int) -> np.ndarray:
        """The predicted mask of sample ``index``: the session's, else the model's (one call, kept)."""
        known = self.known_prediction(index)
        if known is not None:
            return known
        if self.session.model is None:
            raise ValueError("no predicted masks: pass predictions=... or a model")
        return self.predict_sample(int(index))

    # ------------------------------------------------------------------ scores

    def predictions_or_raise(self, what: str) -> np.ndarray:
        """The session's predictions; a ValueError saying that ``what`` needs them when there are none."""
        if self.session.predictions is None:
            raise ValueError(
                f"colouring by {what} needs predictions=... (the predicted masks); a session with a model "
                "predicts them at start with predict=True"
            )
        return self.session.predictions

    def sample_iou(self) -> np.ndarray:
        """Mean IoU of each sample's prediction against its mask, shape (N,) (NaN: no class present)."""
        if self._sample_iou is None:
            from ..analysis.metrics import per_sample_mean_iou

            ds, pred = self.session.dataset, self.predictions_or_raise("mean IoU")
            scores = per_sample_mean_iou(pred, ds.masks, ds.n_classes, ignore_index=self.session.ignore_index)
            self._sample_iou = np.asarray(scores, np.float64)
        return self._sample_iou
