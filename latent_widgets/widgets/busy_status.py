"""What a busy indicator says: the session's jobs that have run a moment, so that quick ones do not flicker.

The slider's on-demand decode takes a few milliseconds with a small model;
shown at once, "decode…" would flash on and off with each step of a drag
(two messages to the browser each time, 40 times a second) and say
nothing a person can read. A :class:`BusyStatus` shows a job once it has
been busy for :data:`SHOW_AFTER_S` (from when the session's runner says it
began, :meth:`~latent_widgets.session.runner.JobRunner.busy_since`) and
clears it the moment it ends. A slow model's decode, a map's fit and the
bulk predictions all show, with their fractions.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from ._common import View, busy_text, on_kernel_thread, watch_session

__all__ = ["SHOW_AFTER_S", "BusyStatus"]

#: A job appears on a busy indicator once it has been busy this long (seconds).
SHOW_AFTER_S = 0.25


class _Wakeups:
    """One daemon thread that calls functions at given times (a ``threading.Timer`` each would start a thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the wake-up thread at ``time.monotonic() == when`` (or just after)."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="latent-widgets-wakeups", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when = self._heap[0][0]
                left = when - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                _, _, fn = heapq.heappop(self._heap)
            fn()  # outside the lock: fn may schedule again


_WAKEUPS = _Wakeups()


class BusyStatus:
    """Follow a session's busy jobs for one indicator: ``render(text)`` when what it should say changes.

    Parameters
    ----------
    view : View
        The view the indicator belongs to (its error sink catches the render's errors).
    session : ExplorerSession
        Its ``busy`` and ``progress`` traits, and ``jobs.busy_since``.
    render : callable(str)
        Puts the text on the indicator: the jobs with their fractions
        (:func:`~latent_widgets.widgets._common.busy_text`), ``""`` when
        none is to be shown. Called on the kernel's thread.
    keep : callable(str) -> bool, optional
        Which of the session's job labels this indicator reports (default all).
    delay : float
        Seconds a job is busy before it is shown.

    Examples
    --------
    >>> import sys, types; sys.path.insert(0, "tests")
    >>> from toy import ToyLatentModel
    >>> from latent_widgets import synthetic_road_scenes
    >>> from latent_widgets.session import ExplorerSession
    >>> from latent_widgets.widgets._common import ErrorSink
    >>> ds = synthetic_road_scenes(8, size=(48, 64))
    >>> session = ExplorerSession(ToyLatentModel(input_shape=(48, 64, 3)), ds, asynchronous=False, predict=False)
    >>> said = []
    >>> status = BusyStatus(types.SimpleNamespace(errors=ErrorSink()), session, said.append)
    >>> session.alpha = 0.37  # a decode of a millisecond: not worth a word
    >>> said, status.text, session.ondemand_decodes
    ([], '', 1)
    """

    def __init__(
        self,
        view: View,
        session: Any,
        render: Callable[[str], None],
        keep: Callable[[str], bool] | None = None,
        delay: float = SHOW_AFTER_S,
    ) -> None:
        self.session = session
        self.delay = float(delay)
        #: What the indicator says now.
        self.text = ""
        self._render, self._keep = render, keep
        self._lock = threading.Lock()
        self._woken = on_kernel_thread(view.errors.guard(self._on_wakeup))
        self._waking = False  # a wake-up is set
        self.observer = watch_session(view, session, self.update, ["busy", "progress"])
        self.update()

    def update(self, _change: Any = None) -> None:
        """Say the jobs busy for :attr:`delay` or longer; wake up when the next of the others is due."""
        session = self.session
        now = time.monotonic()
        with self._lock:
            shown, due = [], None
            for job in session.busy:
                if self._keep is not None and not self._keep(job):
                    continue
                since = session.jobs.busy_since(job)
                if since is None:
                    continue  # it ended while busy was read: the change that ends it follows
                at = since + self.delay
                if at <= now:
                    shown.append(job)
                elif due is None or at < due:
                    due = at
            text = busy_text(shown, session.progress) if shown else ""
            if text != self.text:
                self.text = text
                self._render(text)
            # One wake-up at a time: when it comes, it looks again and sets the next.
            if due is not None and not self._waking:
                self._waking = True
                _WAKEUPS.at(due, lambda: self._woken(None))

    def _on_wakeup(self, _change: Any) -> None:
        with self._lock:
            self._waking = False
        self.update()
