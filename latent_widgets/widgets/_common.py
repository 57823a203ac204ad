"""Shared pieces of the widgets: error reporting, image panes, display glue.

Every widget in this package is a thin view: a :class:`traitlets.HasTraits`
object holding state as traits, with its ipywidgets tree in ``.widget``.
Notebook display goes through ``_repr_mimebundle_``, so ``scatter`` on the
last line of a cell shows it like any widget.
"""

from __future__ import annotations

import functools
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import ipywidgets as W
import numpy as np
import traitlets

from ..views import render

__all__ = [
    "ErrorSink",
    "View",
    "blank_png",
    "busy_text",
    "image_pane",
    "labelled",
    "on_kernel_thread",
    "relay_session_errors",
    "wait_quietly",
    "watch_session",
]

F = TypeVar("F", bound=Callable[..., Any])


class ErrorSink:
    """Collects exceptions raised in widget callbacks and shows them in an Output.

    ipywidgets runs trait observers and button handlers inside the kernel's
    comm handler; an exception there only reaches the browser console (or
    the Jupyter log), where nobody sees it. Handlers are wrapped with
    :meth:`guard` so that the traceback lands in ``output`` instead, and in
    :attr:`messages` for tests.

    Examples
    --------
    >>> sink = ErrorSink()
    >>> @sink.guard
    ... def handler():
    ...     raise ValueError("boom")
    >>> handler()
    >>> sink.messages[-1]
    'ValueError: boom'
    """

    def __init__(self, output: W.Output | None = None, *, raise_errors: bool = False) -> None:
        self.output = output if output is not None else W.Output(layout=W.Layout(max_height="240px", overflow="auto"))
        #: One line per caught exception, ``"Type: message"``.
        self.messages: list[str] = []
        #: Re-raise after reporting (handy when debugging in a plain Python session).
        self.raise_errors = raise_errors
        self._lock = threading.Lock()

    def report(self, exc: BaseException, context: str | None = None) -> None:
        """Record ``exc`` and append its traceback to :attr:`output`."""
        line = f"{type(exc).__name__}: {exc}"
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if context:
            text = f"[{context}] {text}"
        with self._lock:
            self.messages.append(line)
            # append_stderr sets the Output's outputs trait directly, so it also
            # works from the decode thread and outside a kernel (tests).
            self.output.append_stderr(text)

    def clear(self) -> None:
        """Forget the reported errors and empty the Output."""
        with self._lock:
            self.messages.clear()
            self.output.outputs = ()

    def guard(self, fn: F, context: str | None = None) -> F:
        """Wrap a callback so that its exceptions are reported instead of propagated."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                self.report(exc, context or getattr(fn, "__qualname__", None))
                if self.raise_errors:
                    raise
                return None

        return wrapper  # type: ignore[return-value]


class View(traitlets.HasTraits):
    """Base of the widgets: traits for state, an ipywidgets tree in ``widget``."""

    #: The ipywidgets container shown in the notebook.
    widget: W.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _observe_guarded(self, handler: Callable[[Any], Any], names: str | list[str]) -> None:
        self.observe(self.errors.guard(handler), names=names)

    errors: ErrorSink


def _kernel_loop() -> Any:
    """The running IPython kernel's event loop (on the main thread), or None outside a kernel."""
    try:
        from IPython import get_ipython

        return getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    except ImportError:
        return None


def on_kernel_thread(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap an observer so that, called from a worker thread, it runs on the kernel's thread.

    Widgets are not thread-safe: state sent from a worker thread while the
    front end requests the widgets' state can be lost (a bqplot map drawn
    from the map thread stayed blank in Voilà). Inside a kernel the call is
    queued on its event loop, in order; elsewhere (scripts, tests) it runs
    at once.
    """

    @functools.wraps(fn)
    def wrapper(change: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            loop = _kernel_loop()
            if loop is not None:
                loop.add_callback(fn, change)
                return None
        return fn(change)

    return wrapper


def watch_session(
    view: View, session: Any, handler: Callable[[Any], Any], names: str | list[str]
) -> Callable[[Any], Any]:
    """Call ``handler`` when the session's ``names`` change, on the kernel's thread.

    Session traits change in the session's worker threads too; errors of
    the handler go to the view's sink. Returns the observer registered
    (``session.unobserve(it, names)`` stops it).
    """
    observer = on_kernel_thread(view.errors.guard(handler))
    session.observe(observer, names=names)
    return observer


def relay_session_errors(sink: ErrorSink, session: Any) -> None:
    """Show each error of the session's background jobs once in ``sink``."""
    shown = 0

    def relay(_change: Any) -> None:
        nonlocal shown
        errors = session.errors
        shown = min(shown, len(errors))  # the session's list was cleared
        for exc in errors[shown:]:
            sink.report(exc, "background job")
        shown = len(errors)

    session.observe(on_kernel_thread(relay), names="errors")
    relay(None)


def wait_quietly(session: Any, timeout: float | None) -> None:
    """Wait for the session's jobs; a failed job's error is shown by the views, left for ``session.wait()``."""
    session.wait(timeout, raise_errors=False)


def busy_text(jobs: Sequence[str], progress: Mapping[str, tuple[int, int]]) -> str:
    """What a busy indicator says: the jobs, with the fraction done of those that report one.

    Examples
    --------
    >>> busy_text(["decode", "predict"], {"predict": (128, 367)})
    'decode, predict 128/367'
    """
    return ", ".join(f"{j} {progress[j][0]}/{progress[j][1]}" if j in progress else j for j in jobs)


@functools.lru_cache(maxsize=8)
def blank_png(height: int, width: int, grey: int = 235) -> bytes:
    """A flat grey PNG, shown where there is nothing to show yet."""
    return render.to_png(np.full((height, width, 3), grey, np.uint8))


def image_pane(width: int, value: bytes | None = None) -> W.Image:
    """An ``Image(format="png")`` displayed ``width`` px wide."""
    return W.Image(
        value=value or blank_png(8, 8),
        format="png",
        layout=W.Layout(width=f"{width}px", height="auto", object_fit="contain"),
    )


def labelled(child: W.Widget, caption: str | W.Widget) -> W.VBox:
    """``child`` with a small caption above it."""
    label = caption if isinstance(caption, W.Widget) else W.HTML(f"<b style='font-size:12px'>{caption}</b>")
    return W.VBox([label, child], layout=W.Layout(margin="0 6px 4px 0"))
