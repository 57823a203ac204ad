"""umap-learn at run time: imported without TensorFlow, its numba code cached on disk, the warm-up waited for.

umap's ``__init__`` imports TensorFlow for ParametricUMAP when it can;
:func:`import_umap` hides it from the importing thread. Its jitted functions
are compiled without ``cache=True``: :func:`cache_numba_compiles` turns numba's
disk cache on for them, so that only the first process on a machine pays.

Examples
--------
>>> import importlib.util
>>> with hidden_in_this_thread("lw_no_such_probe"):
...     importlib.util.find_spec("lw_no_such_probe") is None
Traceback (most recent call last):
ModuleNotFoundError: No module named 'lw_no_such_probe'
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from ..core.cache import cache_dir

__all__ = ["cache_numba_compiles", "hidden_in_this_thread", "import_umap", "wait_for_the_warm_up"]


def import_umap() -> Any:
    # umap's __init__ imports TensorFlow for ParametricUMAP when it can (seconds
    # and hundreds of MB). When TensorFlow is not loaded yet, hide it for the
    # duration of the import: UMAP itself does not need it.
    if "umap" in sys.modules or "tensorflow" in sys.modules:
        import umap
    else:
        # Hidden from this thread alone: the warm-up imports umap in a background thread, while the
        # user's code may import keras (so TensorFlow) in another one.
        with hidden_in_this_thread("tensorflow"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            import umap
    cache_numba_compiles()
    return umap


class HiddenModule(importlib.abc.MetaPathFinder):
    """A finder that makes one thread's imports of a package fail as if it were not installed."""

    def __init__(self, name: str) -> None:
        self.name, self.thread = name, threading.get_ident()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.thread and (fullname == self.name or fullname.startswith(self.name + ".")):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None  # the other finders decide


@contextlib.contextmanager
def hidden_in_this_thread(name: str) -> Iterator[None]:
    """Within the block, ``import name`` fails in the calling thread only; other threads import it as usual.

    Examples
    --------
    >>> import importlib
    >>> with hidden_in_this_thread("lw_no_such_probe"):
    ...     importlib.util.find_spec("lw_no_such_probe")
    Traceback (most recent call last):
    ModuleNotFoundError: No module named 'lw_no_such_probe'
    """
    finder = HiddenModule(name)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


_numba_cache_lock = threading.Lock()
_numba_cached = False


def cache_numba_compiles() -> None:
    """Turn on numba's on-disk cache for umap's (and pynndescent's) jitted functions.

    umap-learn compiles about ten dispatchers without ``cache=True``
    (``umap.utils.fast_knn_indices``, ``umap.umap_.smooth_knn_dist``,
    ``compute_membership_strengths``, ``umap.layouts``' epoch loop...): 10 to 15 s
    of LLVM on the first UMAP of every new process. ``Dispatcher.enable_caching``
    (numba's public method, what ``cache=True`` calls) makes the first process
    write the machine code to disk and every later one load it (under a
    second). Where it is written is numba's choice: ``$NUMBA_CACHE_DIR`` when
    set, else ``__pycache__`` beside umap's sources when writable, else a
    per-user folder; when numba finds none, our cache folder
    (``cache_dir("numba")``).
    """
    global _numba_cached
    with _numba_cache_lock:
        if _numba_cached:
            return
        _numba_cached = True
        try:
            import numba
            from numba.core.caching import NullCache
            from numba.core.dispatcher import Dispatcher
        except ImportError:  # pragma: no cover - umap always brings numba
            return
        for name, module in list(sys.modules.items()):
            if module is None or name.split(".")[0] not in ("umap", "pynndescent"):
                continue
            for obj in list(vars(module).values()):
                if not (isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache)):
                    continue
                if getattr(obj.py_func, "__module__", None) != name:
                    continue  # imported from elsewhere: enabled (or not) where it is defined
                try:
                    obj.enable_caching()
                except RuntimeError:  # numba found no writable folder for this file
                    if numba.config.CACHE_DIR:
                        continue
                    numba.config.CACHE_DIR = str(cache_dir("numba"))
                    try:
                        obj.enable_caching()
                    except RuntimeError:  # pragma: no cover - read-only cache folder too
                        continue


#: The running warm-up (:func:`~latent_widgets.analysis.warm_up.warm_up_projections`), if any.
warm_up_thread: threading.Thread | None = None


def wait_for_the_warm_up() -> None:
    """Let a running warm-up finish before a UMAP fit, rather than compiling the same code beside it.

    Compiling in this process holds the GIL (the explorer's decodes would
    stall); the warm-up compiles in a child process, and waiting for it
    (``join``) leaves the GIL to the other threads.
    """
    thread = warm_up_thread
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join(timeout=900)
