"""The session's job runner: its two lanes, the newest-request-wins generations, what is busy and what failed.

A session runs its long work on two :class:`~latent_widgets.session.jobs.Lane`
objects, the *model* lane (TensorFlow, one call at a time) and the *map*
lane (the projections' fits). :class:`JobRunner` owns both and publishes
what they do on an owner (the session's ``busy``, ``errors`` and
``progress`` traits): the labels of the queued and running jobs, the errors
the jobs raised, and the bulk jobs' progress. It also numbers the requests
of each kind (a generation): a job whose request is no longer the newest
skips its work, and a decoded mask is shown only when nothing newer is.

Examples
--------
>>> from types import SimpleNamespace
>>> owner = SimpleNamespace(busy=(), errors=(), progress={})
>>> jobs = JobRunner(owner, asynchronous=False)
>>> jobs.model_lane.submit("add", lambda: 1 + 1).result(), owner.busy
(2, ())
>>> first, second = jobs.next_generation("decode"), jobs.next_generation("decode")
>>> jobs.is_newest("decode", first), jobs.is_newest("decode", second)
(False, True)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import wait as futures_wait
from typing import Any

from .jobs import Lane

__all__ = ["CHUNK_SECONDS", "DECODE_BATCH_BYTES", "PUBLISH_SECONDS", "JobRunner"]

#: A bulk chunk takes about this long (rows per chunk are sized from a timed row): what a slider request
#: queued behind it waits at most, beside its own decode.
CHUNK_SECONDS = 0.25
#: A decode batch's output (its probabilities) stays within this many bytes: past it a bigger batch is slower
#: per frame, not faster (DeepLabv3+ with MobileNetV2 at 288x384 on 2 cores: 6 ms a frame in batches of 1 to
#: 4, 8-12 ms in batches of 8 to 32 (idle), where the decoder's full-size activations outgrow the cache).
DECODE_BATCH_BYTES = 24 << 20
#: Progress (the busy indicator's fraction, the session's ``predicted``) is published at most this often.
PUBLISH_SECONDS = 0.5


class JobRunner:
    """The model lane and the map lane of a session, and what they publish on ``owner``.

    Parameters
    ----------
    owner : object
        Where the runner publishes: its ``busy`` (tuple of the labels of
        the queued and running jobs), ``errors`` (tuple of the exceptions
        the jobs raised) and ``progress`` (dict label -> ``(done,
        total)``) attributes are set here, under :attr:`lock`.
    asynchronous : bool
        Run jobs on the lanes' worker threads; when False they run inline
        and their errors propagate to the caller.

    Attributes
    ----------
    model_lane, map_lane : Lane
        The lanes (see the module docstring).
    lock : threading.RLock
        Held while a generation is taken or a newest result is shown, and
        while ``owner``'s traits are written from a job.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> owner = SimpleNamespace(busy=(), errors=(), progress={})
    >>> jobs = JobRunner(owner, asynchronous=False)
    >>> jobs.set_progress("predict", 3, 10); owner.progress
    {'predict': (3, 10)}
    >>> jobs.end_progress("predict"); owner.progress
    {}
    """

    def __init__(self, owner: Any, asynchronous: bool) -> None:
        self.owner = owner
        self.asynchronous = asynchronous
        # Newest request wins: each request takes a generation number of its kind ("decode", "place",
        # "report"); a job whose number is no longer the newest is skipped, and a decoded mask is shown
        # only if nothing newer is on display.
        self.lock = threading.RLock()
        self._generations: dict[str, int] = {}
        self._shown = 0
        self._busy_counts: dict[str, int] = {}
        self._busy_since: dict[str, float] = {}
        self._published: dict[str, float] = {}
        self.model_lane = Lane("model", asynchronous, self._busy_change, self._report)
        self.map_lane = Lane("map", asynchronous, self._busy_change, self._report)

    # ------------------------------------------------------------------ generations

    def next_generation(self, kind: str) -> int:
        """A new request of ``kind``: its number, now the newest."""
        with self.lock:
            gen = self._generations[kind] = self._generations.get(kind, 0) + 1
            return gen

    def is_newest(self, kind: str, gen: int) -> bool:
        """Whether request ``gen`` is still the newest of its ``kind``."""
        return self._generations.get(kind, 0) == gen

    def show_newest(self, gen: int, show: Callable[[], None]) -> None:
        """Call ``show`` unless the result of a newer decode request than ``gen`` is on display already."""
        with self.lock:
            if gen < self._shown:
                return
            self._shown = gen
            show()

    # ------------------------------------------------------------------ bulk work

    def chunk_rows(
        self, seconds_per_row: float, cap: int = 32, budget: float = CHUNK_SECONDS, row_bytes: int = 0
    ) -> int:
        """Rows of a chunk: a power of two (few compiled batch sizes) taking about ``budget`` seconds.

        ``row_bytes``: the output of one row of a decode; the chunk's then
        stays within :data:`DECODE_BATCH_BYTES`.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> jobs = JobRunner(SimpleNamespace(busy=(), errors=(), progress={}), asynchronous=True)
        >>> jobs.chunk_rows(0.03), jobs.chunk_rows(math.inf)
        (8, 32)
        >>> jobs.chunk_rows(0.001, row_bytes=288 * 384 * 12 * 4)  # a 288x384 decode into 12 classes
        4
        """
        if row_bytes > 0:
            fit = max(1, DECODE_BATCH_BYTES // row_bytes)
            cap = min(cap, 2 ** (fit.bit_length() - 1))
        if not self.asynchronous or math.isinf(seconds_per_row):
            return cap  # (nothing to answer between chunks, or nothing timed yet)
        rows = budget / max(seconds_per_row, 1e-6)
        return int(min(cap, 2 ** max(0, math.floor(math.log2(max(rows, 1.0))))))

    def bulk_step(self, label: str) -> Callable[[int, int], None]:
        """A bulk job's ``on_batch(done, total)``: publish its progress, then let queued interactive jobs run."""

        def step(done: int, total: int) -> None:
            self.set_progress(label, done, total)
            self.model_lane.yield_point()

        return step

    def due(self, label: str, seconds: float = PUBLISH_SECONDS, force: bool = False) -> bool:
        """Whether ``label`` may be published now (``seconds`` since it last was, or ``force``); if so, noted."""
        now = time.monotonic()
        if not force and now - self._published.get(label, -math.inf) < seconds:
            return False
        self._published[label] = now
        return True

    def set_progress(self, label: str, done: int, total: int) -> None:
        """Publish a bulk job's progress (at most every :data:`PUBLISH_SECONDS`, its start and end always)."""
        if not self.due(label, force=not 0 < done < total):
            return
        with self.lock:
            self.owner.progress = {**self.owner.progress, label: (int(done), int(total))}

    def end_progress(self, label: str) -> None:
        """The bulk job ``label`` is over: off the progress."""
        with self.lock:
            self.owner.progress = {k: v for k, v in self.owner.progress.items() if k != label}
        self._published.pop(label, None)

    def show_bars(self) -> bool:
        """tqdm bars for bulk work in scripts; not in a Jupyter kernel, where the busy indicator shows it."""
        import sys

        return not self.asynchronous or "ipykernel" not in sys.modules

    # ------------------------------------------------------------------ waiting, errors

    def wait(self, timeout: float | None = 60.0, raise_errors: bool = True) -> None:
        """Block until every queued job has finished (inline jobs: nothing to wait for).

        Raises the first error (in the order of the owner's ``errors``) of the jobs
        it waited for, the start-up encode included, also when the job
        failed before ``wait()`` was called; ``errors`` keeps them all.
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
        lanes = (self.model_lane, self.map_lane)
        # Jobs queue jobs on the other lane (a strip, then its placement on the map).
        while pending := [f for lane in lanes for f in lane.pending()]:
            for fut in pending:
                futures_wait([fut], timeout=timeout)
                if not fut.done():
                    raise TimeoutError(f"a session job still runs after {timeout} s (busy: {self.owner.busy})")
        if not raise_errors:
            return
        finished = [f for lane in lanes for f in lane.take_finished()]
        failed = [f.exception() for f in finished if not f.cancelled() and f.exception() is not None]
        if failed:
            order = {id(e): k for k, e in enumerate(self.owner.errors)}
            raise min(failed, key=lambda e: order.get(id(e), len(order)))

    def close(self) -> None:
        """Stop the worker threads."""
        self.model_lane.close()
        self.map_lane.close()

    def clear_errors(self) -> None:
        """Forget the errors of the jobs (``wait()`` no longer raises them)."""
        for lane in (self.model_lane, self.map_lane):
            lane.take_finished()
        self.owner.errors = ()

    def busy_since(self, label: str) -> float | None:
        """When (``time.monotonic()``) ``label`` last became busy, or None while it is not.

        A busy indicator shows a job once it has lasted a moment (a slider's 3 ms decode never flickers).

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> jobs = JobRunner(SimpleNamespace(busy=(), errors=(), progress={}), asynchronous=False)
        >>> jobs.model_lane.submit("add", lambda: jobs.busy_since("add") is not None).result(), jobs.busy_since("add")
        (True, None)
        """
        return self._busy_since.get(label)

    def _busy_change(self, label: str, delta: int) -> None:
        with self.lock:
            count = self._busy_counts.get(label, 0) + delta
            if count > 0:
                self._busy_counts[label] = count
                self._busy_since.setdefault(label, time.monotonic())
            else:
                self._busy_counts.pop(label, None)
                self._busy_since.pop(label, None)
            self.owner.busy = tuple(sorted(self._busy_counts))

    def _report(self, exc: BaseException, context: str) -> None:
        with self.lock:
            exc.add_note(f"in the session's {context!r} job")
            self.owner.errors = (*self.owner.errors, exc)
