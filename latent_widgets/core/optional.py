"""Optional dependencies: imported where they are used, with an error that names the extra to install.

The core installs without Dask (``pip install 'latent-widgets[dask]'`` adds
it), so a module that needs it imports it here, at the call, not at the top
of the file: ``import latent_widgets`` and everything that does not touch a
cluster work without it.

Examples
--------
>>> optional_import("numpy", extra="dask", what="this example").__name__
'numpy'
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]


def optional_import(name: str, *, extra: str, what: str) -> ModuleType:
    """Module ``name``, or an ``ImportError`` saying that ``what`` needs the extra ``extra``.

    Parameters
    ----------
    name : str
        The module, e.g. ``"dask.array"``.
    extra : str
        The extra of ``latent-widgets`` that installs it, e.g. ``"dask"``.
    what : str
        What needs it, as the user called it (``"encode_dataset(..., client=...)"``).

    Raises
    ------
    ImportError
        ``name`` (or a package it needs) is not installed; the message
        names the missing package and ``pip install 'latent-widgets[extra]'``.

    Examples
    --------
    >>> optional_import("no_such_package_lw", extra="dask", what="a cluster")
    Traceback (most recent call last):
    ...
    ImportError: a cluster needs no_such_package_lw, which is not installed: pip install 'latent-widgets[dask]'
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or name
        raise ImportError(
            f"{what} needs {missing}, which is not installed: pip install 'latent-widgets[{extra}]'"
        ) from exc
