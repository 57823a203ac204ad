"""The latents a session decodes and maps, and its start-up: the endpoints' encodings, then the dataset's.

A session starts by encoding the slider's two endpoints alone (the session
goes :attr:`~latent_widgets.session.explorer_session.ExplorerSession.live`:
the mask, the strip and the scrub grid are decoded from them), then
encodes the dataset on the model lane in bulk chunks
(:attr:`~latent_widgets.session.explorer_session.ExplorerSession.ready`:
the map, the strip's nearest samples), then predicts the masks.
:class:`Encodings` holds what is encoded so far and runs that sequence.

Examples
--------
>>> import numpy as np
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=np.random.default_rng(0).normal(size=(6, 4, 4, 3)), asynchronous=False)
>>> s.encodings.latent_shape(), s.latents.shape
((4, 4, 3), (6, 4, 4, 3))
"""

from __future__ import annotations

import inspect
import math
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

import numpy as np

from .jobs import BULK

__all__ = ["Encodings"]

#: Single samples' encodings kept before the dataset's encoding is there.
_SAMPLE_ENCODINGS = 16


def _sample_encoding(encoding: Any, i: int) -> Any:
    """One sample's encoding, keeping the batch axis (what ``path_inputs`` expects)."""
    return type(encoding)(encoding.latents[i : i + 1], tuple(s[i : i + 1] for s in encoding.skips))


def _takes_on_batch(fn: Any) -> bool:
    """Whether ``fn`` (a model's ``encode_dataset``) takes the ``on_batch`` hook."""
    try:
        return callable(fn) and "on_batch" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class Encodings:
    """What a session has encoded so far, and the start-up that encodes it (on the model lane).

    Parameters
    ----------
    session : ExplorerSession
        Its ``model``, ``dataset`` and ``encoding`` (set here once the
        dataset is encoded); its ``live`` and ``ready`` traits are set here.
    latents : ndarray (N, ...), optional
        The latents of a maps-only session (no model).

    Attributes
    ----------
    given : ndarray or None
        ``latents`` as given.
    samples : OrderedDict sample -> Encoding
        Before the dataset is encoded: the encodings of single samples
        (the slider's endpoints), the newest 16.
    encode_seconds : float
        The fastest single-sample encode seen (sizes the bulk chunks).
    startup_job : Future or None
        The start-up's job, once :meth:`start` queued it.
    """

    def __init__(self, session: Any, latents: np.ndarray | None = None) -> None:
        self.session = session
        self.given = None if latents is None else np.asarray(latents)
        self.samples: OrderedDict[int, Any] = OrderedDict()
        self.encode_seconds = math.inf
        self.startup_job: Future | None = None
        self._warmed_up = False

    @property
    def latents(self) -> Any:
        """One latent per sample (N, ...); a latent store (Zarr) stays on disk."""
        if self.given is not None:
            return self.given
        encoding = self.session.encoding
        if encoding is None:
            raise RuntimeError("the dataset is still being encoded; wait() for the session to be ready")
        z = encoding.latents
        # A latent store (Zarr) stays on disk: the analysis layer reads it in blocks.
        return z if hasattr(z, "shape") and hasattr(z, "__getitem__") and not isinstance(z, list) else np.asarray(z)

    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent, or () while it is unknown (the dataset is still being encoded)."""
        if self.given is not None:
            return tuple(self.given.shape[1:])
        if self.session.encoding is not None:
            return tuple(self.session.encoding.latents.shape[1:])
        shape = getattr(self.session.model, "latent_shape", None)
        return tuple(shape) if shape is not None and None not in tuple(shape) else ()

    def check_lengths(self) -> None:
        """Raise ValueError if the encoding, the latents or the predictions do not match the dataset."""
        s = self.session
        n = len(s.dataset)
        # shape[0], not len(): a Zarr array has no len().
        if s.encoding is not None and s.encoding.latents.shape[0] != n:
            raise ValueError(f"encoding has {s.encoding.latents.shape[0]} latents for {n} samples")
        if self.given is not None and len(self.given) != n:
            raise ValueError(f"{len(self.given)} latents for a dataset of {n} samples")
        if s.predictions is not None and s.predictions.shape != s.dataset.masks.shape:
            raise ValueError(f"predictions {s.predictions.shape} do not match the masks {s.dataset.masks.shape}")

    def encoding_of(self, i: int) -> Any:
        """Sample ``i``'s encoding with its batch axis: the dataset's, or (before it is encoded) its own, kept."""
        s = self.session
        if s.encoding is not None:
            return _sample_encoding(s.encoding, i)
        got = self.samples.get(i)
        if got is None:
            t0 = time.perf_counter()
            got = s.model.encode(s.dataset.images[i : i + 1])
            # The fastest seen: the first call of a model also compiles it.
            self.encode_seconds = min(self.encode_seconds, time.perf_counter() - t0)
            self.samples[i] = got
            while len(self.samples) > _SAMPLE_ENCODINGS:
                self.samples.popitem(last=False)
        return got

    # ------------------------------------------------------------------ start-up

    def start(self) -> Future:
        """Queue the start-up (model lane): the endpoints, the dataset, then the predictions."""
        self.startup_job = self.session.jobs.model_lane.submit("encode", self._startup)
        return self.startup_job

    def _startup(self) -> None:
        s = self.session
        model, ds = s.model, s.dataset
        if s.encoding is None and self.given is None:
            if s.asynchronous:
                # The endpoints first (the mask, the strip, the scrub grid), then the dataset in chunks that let
                # them pass: the first mask costs two encodes and a decode, not the whole dataset's encoding
                # (nor the hashes of the weights and the data that key its cache: up to 0.4 s at 288x384).
                # Encoded here, not in the jobs that need them: a model that refuses the images fails this
                # one job, with one error, and nothing more is queued.
                for i in dict.fromkeys((s.index_a, s.index_b)):
                    self.encoding_of(i)
                self.go_live()
                s.jobs.model_lane.submit("encode dataset", self._encode_dataset_job, BULK)
                return
            s.encoding = model.encode_dataset(ds) if hasattr(model, "encode_dataset") else model.encode(ds.images)
            self.check_lengths()
        if s.encoding is not None and s.predictions is None and s.asynchronous:
            # A session on cached latents probably finds its predictions cached too: the IoU colours at once.
            s.predictor.load_cached()
        self.become_ready()

    def go_live(self) -> None:
        """The endpoints can be decoded: the mask, the strip and the scrub grid are requested (model lane)."""
        s = self.session
        s.live = True
        if s.model is not None:
            s.path.on_path(None)

    def become_ready(self) -> None:
        """The dataset is encoded: the map, the strip's nearest samples, then the predictions."""
        from ..analysis.neighbors import LatentIndex

        s = self.session
        if not s.asynchronous and s.predictions is None and s.predictor.wants_all():
            s.predictor.predict_all()  # a script finds them there when the constructor returns
        s.latent_index = LatentIndex().fit(self.latents, lazy=True)
        self.samples.clear()
        s.ready = True
        self._warm_up()
        # The current map: fitted now, or (given in `projections`, drawn before the latents were there)
        # its path and quality, which need the latents, placed now.
        s.map_state.on_map_method(None)
        if len(s.selection):
            s.reports.on_selection(None)
        if s.model is not None:
            if s.live:
                s.path.fill_in_neighbors()
            else:
                self.go_live()
        if s.asynchronous and s.predictions is None and s.predictor.wants_all():
            s.predictor.submit_all()

    def _warm_up(self) -> None:
        s = self.session
        if s.asynchronous and not self._warmed_up and {"tsne", "umap"} & set(s.methods):
            from ..analysis.warm_up import warm_up_projections

            # Loads UMAP's compiled code (or compiles it, the first time on a machine) while the slider is used:
            # after the first mask, as the warm-up takes the cores for a few seconds.
            warm_up_projections()
        self._warmed_up = True

    def _encode_dataset_job(self) -> None:
        """Encode the dataset for the map, in chunks between which the slider's requests run (bulk)."""
        from ..core.arrays import iter_row_blocks

        s = self.session
        model, ds, jobs = s.model, s.dataset, s.jobs
        rows = jobs.chunk_rows(self.encode_seconds)
        step = jobs.bulk_step("encode dataset")
        if _takes_on_batch(getattr(model, "encode_dataset", None)):  # a LatentModel: its cache, its store, its hook
            enc = model.encode_dataset(ds, batch_size=rows, progress=jobs.show_bars(), on_batch=step)
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
        jobs.end_progress("encode dataset")
        s.encoding = enc
        self.check_lengths()
        self.become_ready()
