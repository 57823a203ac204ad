"""Compile UMAP's numba code and load openTSNE before the first map is asked for, in the background.

Examples
--------
>>> warm_up_projections().join()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from importlib import metadata

import numpy as np

from . import umap_runtime
from .tsne_projection import TSNEProjection
from .umap_projection import UMAPProjection

__all__ = ["warm_up_projections"]

_STARTING = threading.Lock()


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        UMAPProjection(n_epochs=5, pca_dims=None).fit(x)
        TSNEProjection(max_iter=260, pca_dims=None, n_jobs=1).fit(x)


def _compile_in_a_child() -> None:
    """Fill numba's disk cache with umap's compiled code from a child process, once per installation.

    numba holds the GIL while LLVM compiles (10 to 15 s, minutes on a loaded
    machine): compiled in the kernel, the warm-up would stall every other
    thread of it, the explorer's decodes included, the very first time on a
    machine. A child process compiles and writes the cache; this thread only
    waits for it (without the GIL), and the kernel then loads the code from
    disk. A marker file per umap, numba and Python version says it was done.
    """
    import subprocess

    from ..core.cache import cache_dir

    versions = "-".join(
        [_package_version("umap-learn"), _package_version("numba"), "py" + ".".join(map(str, sys.version_info[:2]))]
    )
    marker = cache_dir("numba") / f"compiled-{versions}"
    if marker.exists():
        return
    child = subprocess.run(
        [sys.executable, "-c", "from latent_widgets.analysis.warm_up import _warm_up; _warm_up()"],
        capture_output=True,
        timeout=900,
        check=False,
    )
    if child.returncode == 0:  # else the kernel compiles itself, as before
        marker.touch()


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _warm_up_in_the_background() -> None:
    with contextlib.suppress(Exception):  # a warm-up is an optimisation: the first map compiles if it fails
        _compile_in_a_child()
    _warm_up()


def warm_up_projections() -> threading.Thread:
    """Compile UMAP's numba code (and load openTSNE) in a background daemon thread.

    The first UMAP of a process compiles umap-learn's jitted functions: 10 to
    15 s the very first time on a machine, under a second once numba's disk
    cache holds them (turned on by :func:`~latent_widgets.analysis.umap_runtime.cache_numba_compiles`),
    but still the time to load it and import umap and openTSNE. Calling this
    when a session starts moves that out of the way of the first map: it
    fits a tiny UMAP and t-SNE (64 random points) on a daemon thread, which
    never delays the interpreter's exit. The very first time on a machine
    the compiling happens in a child process (numba holds the GIL meanwhile,
    which would stall the kernel's other threads), and the thread then loads
    the compiled code from the disk cache.

    Returns
    -------
    threading.Thread
        Started; ``join()`` it to wait for the warm-up.

    Examples
    --------
    >>> warm_up_projections().join()  # doctest: +SKIP
    """
    with _STARTING:
        # One warm-up at a time: a second one would only compile the same code, and two of them waited
        # for each other (each read the other as "the running warm-up" in wait_for_the_warm_up).
        running = umap_runtime.warm_up_thread
        if running is not None and running.is_alive():
            return running
        thread = threading.Thread(target=_warm_up_in_the_background, name="latent-widgets-warm-up", daemon=True)
        umap_runtime.warm_up_thread = thread  # before it starts: its own fits must see themselves in it
        thread.start()
    return thread
