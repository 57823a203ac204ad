"""The session's job runner: lanes of jobs, each a worker thread that runs the most urgent job first.

A :class:`Lane` queues jobs by priority (:data:`NOW` ... :data:`BULK`); a
bulk job calls :meth:`Lane.yield_point` between its chunks, where the more
urgent jobs queued meanwhile run. The lane reports what it runs through two
callbacks: ``on_busy(label, +1 / -1)`` and ``on_error(exception, label)``.

Examples
--------
>>> seen = []
>>> lane = Lane("demo", asynchronous=False, on_busy=lambda label, d: seen.append((label, d)),
...             on_error=lambda exc, label: None)
>>> lane.submit("add", lambda: 1 + 1).result(), seen
(2, [('add', 1), ('add', -1)])
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["BULK", "FRAMES", "INTERACTIVE", "NOW", "Lane", "LaneClosed", "close_lanes", "succeeded"]

#: Job priorities of a lane, most urgent first: the slider's decode; what a person waits for (the endpoints,
#: the strip, the shown sample's prediction, a report, a map); the scrub grid; bulk work (the dataset's
#: encoding and predictions, map quality), which runs in chunks and lets the others pass between them.
NOW, INTERACTIVE, FRAMES, BULK = 0, 1, 2, 3


def succeeded(fut: Future) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


class LaneClosed(Exception):
    """Raised at a bulk job's yield point once its lane is closed: the job stops there."""


_OPEN_LANES: weakref.WeakSet[Lane] = weakref.WeakSet()
_WORKERS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
# On a worker thread: its lane and the lane's epoch when it started (a closed lane has moved on).
_WORKER = threading.local()


@atexit.register
def close_lanes() -> None:
    # The workers are daemon threads (an idle one must not hold up the exit); a job still running (a closed
    # lane's too) finishes its chunk, and a bulk job stops at its next yield point, before the interpreter
    # shuts down: TensorFlow running in a thread then aborts the process ("terminate called...").
    for lane in list(_OPEN_LANES):
        lane.close()
    deadline = time.monotonic() + 30.0
    for thread in list(_WORKERS):
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))


class Lane:
    """One worker thread (or inline calls) running a session's jobs, most urgent first.

    Jobs wait in a priority queue (``NOW`` ... ``BULK``, first come first
    served within one). A bulk job calls :meth:`yield_point` between its
    chunks: the more urgent jobs queued meanwhile run there, on the same
    thread. A slider decode thus waits for at most one chunk and never
    shares the cores with it: run side by side on two cores, a bulk encode
    made a 288x384 decode three times slower (0.36 s -> 1.2 s).
    """

    def __init__(
        self,
        name: str,
        asynchronous: bool,
        on_busy: Callable[[str, int], None],
        on_error: Callable[[BaseException, str], None],
    ) -> None:
        self.name, self.asynchronous = name, asynchronous
        self._on_busy, self._on_error = on_busy, on_error
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int, str, Callable[[], Any], Future]] = []
        self._order = itertools.count()
        self._futures: list[Future] = []
        self._thread: threading.Thread | None = None
        self._epoch = 0  # close() starts a new one: the old worker stops, a later submit starts a new worker
        self._running: list[int] = []  # priorities of the jobs running on the worker, nested at yield points

    def submit(self, label: str, fn: Callable[[], Any], priority: int = INTERACTIVE) -> Future:
        if not self.asynchronous:
            fut: Future = Future()
            self._on_busy(label, +1)
            try:
                fut.set_result(fn())  # errors propagate to the caller: a script sees them
            finally:
                self._on_busy(label, -1)
            return fut
        # Busy from the request on: a queued job is work the user waits for too.
        self._on_busy(label, +1)
        fut = Future()
        with self._cond:
            heapq.heappush(self._queue, (priority, next(self._order), label, fn, fut))
            # A failed job stays until wait() has seen it (or errors are cleared): a job that failed
            # before wait() was called still raises there. Finished good ones are dropped.
            self._futures = [f for f in self._futures if not succeeded(f)] + [fut]
            if self._thread is None:
                # The worker holds the lane weakly: a session dropped without close() is freed, its worker ends.
                self._thread = threading.Thread(
                    target=Lane._work,
                    args=(weakref.ref(self), self._cond, self._epoch),
                    name=f"latent-widgets-{self.name}",
                    daemon=True,
                )
                self._thread.start()
                _OPEN_LANES.add(self)
                _WORKERS.add(self._thread)
            self._cond.notify()
        return fut

    @staticmethod
    def _work(ref: weakref.ref[Lane], cond: threading.Condition, epoch: int) -> None:
        _WORKER.lane, _WORKER.epoch = ref, epoch
        while True:
            with cond:
                lane = ref()
                if lane is None or epoch != lane._epoch:
                    return
                if not lane._queue:
                    del lane
                    cond.wait(timeout=1.0)
                    continue
                job = heapq.heappop(lane._queue)
            lane._run(job)
            del lane, job

    def _run(self, job: tuple[int, int, str, Callable[[], Any], Future]) -> None:
        priority, _, label, fn, fut = job
        if not fut.set_running_or_notify_cancel():
            self._on_busy(label, -1)
            return
        self._running.append(priority)
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn()
        except LaneClosed:
            pass  # closed while it ran: stopped, not failed
        except Exception as exc:
            self._on_error(exc, label)
            error = exc
        except BaseException as exc:  # (an interrupt: not the job's error, but its future must end)
            error = exc
        finally:
            self._running.pop()
            self._on_busy(label, -1)
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)

    def yield_point(self) -> None:
        """Run the queued jobs more urgent than the running one; a bulk job calls this between chunks.

        A no-op outside the lane's worker (inline calls, a script's own
        thread). Raises :class:`LaneClosed` once the lane is closed.
        """
        ref = getattr(_WORKER, "lane", None)
        if not self.asynchronous or ref is None or ref() is not self:
            return
        while True:
            with self._cond:
                if _WORKER.epoch != self._epoch:
                    raise LaneClosed
                if not self._queue or self._queue[0][0] >= self._running[-1]:
                    return
                job = heapq.heappop(self._queue)
            self._run(job)

    def pending(self) -> list[Future]:
        with self._cond:
            return [f for f in self._futures if not f.done()]

    def take_finished(self) -> list[Future]:
        """The finished jobs not yet seen by ``wait()``, forgotten here."""
        with self._cond:
            done = [f for f in self._futures if f.done()]
            self._futures = [f for f in self._futures if not f.done()]
        return done

    def close(self) -> None:
        """Cancel the queued jobs and stop the worker (a running bulk job stops at its next yield point)."""
        with self._cond:
            self._epoch += 1
            self._thread = None
            queued, self._queue = self._queue, []
            self._cond.notify_all()
        for *_, label, _fn, fut in queued:
            if fut.cancel():
                self._on_busy(label, -1)
        _OPEN_LANES.discard(self)
