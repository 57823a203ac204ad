"""On-disk cache for long computations, keyed by a content hash.

Encoding a dataset, training a model and computing a t-SNE map all take long
enough that a notebook should not redo them on every run. Results are stored
as ``.npz`` files (loaded with ``allow_pickle=False``) under a cache folder
named by a SHA-256 hash of everything the result depends on, so that a change
in any input is a cache miss and never a stale answer.

Example
-------
>>> import numpy as np
>>> from latent_widgets.core.cache import cached_arrays, content_hash
>>> key = content_hash("squares", np.arange(4))
>>> out = cached_arrays("doc-example", key, lambda: {"y": np.arange(4) ** 2})
>>> out["y"].tolist()
[0, 1, 4, 9]
"""

from __future__ import annotations

import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Re-exported: the cache is keyed by it, and callers import it from here.
from .hashing import content_hash

__all__ = [
    "atomic_path",
    "cache_dir",
    "cached_arrays",
    "content_hash",
    "load_arrays",
    "save_arrays",
]

_ENV = "LATENT_WIDGETS_CACHE_DIR"


def cache_dir(subdir: str | None = None) -> Path:
    """Return (and create) the cache folder.

    The folder is ``$LATENT_WIDGETS_CACHE_DIR`` when set, otherwise
    ``~/.cache/latent-widgets``.

    Parameters
    ----------
    subdir : str, optional
        A namespace inside the cache folder (``"models"``, ``"latents"``...).

    Examples
    --------
    >>> cache_dir("projections").name
    'projections'
    """
    root = Path(os.environ.get(_ENV) or Path.home() / ".cache" / "latent-widgets")
    path = root / subdir if subdir else root
    path.mkdir(parents=True, exist_ok=True)
    return path


class atomic_path:
    """Context manager yielding a temporary path that replaces ``target`` on success.

    A crash midway leaves no half-written file under the final name, so a
    cache entry is either complete or absent.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".tmp-", suffix=self.target.suffix)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)


def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` (``.npz``) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray] | None:
    """Read an ``.npz`` written by :func:`save_arrays`.

    Returns ``None`` when the file is missing, truncated or corrupt (and
    deletes a corrupt file), so that the caller recomputes instead of using it.
    Every array is read whole inside the archive, so that the CRC-32 the zip
    format keeps of each one is checked (a changed byte raises there, is
    never returned). Object arrays are refused (``allow_pickle=False``).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError):
        path.unlink(missing_ok=True)
        return None


def cached_arrays(
    namespace: str,
    key: str,
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    use_cache: bool = True,
) -> dict[str, np.ndarray]:
    """Return ``compute()``, stored under ``cache_dir(namespace)/key.npz``.

    Parameters
    ----------
    namespace : str
        Sub-folder of the cache.
    key : str
        Usually :func:`content_hash` of every input of ``compute``.
    compute : callable
        Returns a mapping of array name to array.
    use_cache : bool
        ``False`` always recomputes and does not write.
    """
    if not use_cache:
        return {k: np.asarray(v) for k, v in compute().items()}
    path = cache_dir(namespace) / f"{key}.npz"
    hit = load_arrays(path)
    if hit is not None:
        return hit
    result = {k: np.asarray(v) for k, v in compute().items()}
    save_arrays(path, result)
    return result
