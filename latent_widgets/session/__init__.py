"""The explorer's state without widgets: :class:`ExplorerSession`, driven from a script or observed by the widgets.

One module per concern: :mod:`~latent_widgets.session.explorer_session` (the
session), :mod:`~latent_widgets.session.jobs` (its lanes of background jobs),
:mod:`~latent_widgets.session.values` (what it holds: path keys, strips, scrub
frames, colour fields) and :mod:`~latent_widgets.session.identity` (the hashes
a saved session is checked against).

Examples
--------
>>> from latent_widgets.session import ExplorerSession, PathKey
>>> PathKey(0, 5, "linear", "interpolate", 12).n_steps
12
"""

from .explorer_session import ExplorerSession
from .identity import data_hash, model_hash
from .values import (
    ColorField,
    PathKey,
    ScrubFrames,
    SessionMismatchError,
    SessionStateError,
    Strip,
    StripStep,
)

__all__ = [
    "ColorField",
    "ExplorerSession",
    "PathKey",
    "ScrubFrames",
    "SessionMismatchError",
    "SessionStateError",
    "Strip",
    "StripStep",
    "data_hash",
    "model_hash",
]
