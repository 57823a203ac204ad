"""The explorer's state without widgets: :class:`ExplorerSession`, driven from a script or observed by the widgets.

One module per concern: :mod:`~latent_widgets.session.explorer_session` (the
session, the one object the views observe), the parts it is made of,
:mod:`~latent_widgets.session.runner` (its two lanes, their generations, busy
and errors), :mod:`~latent_widgets.session.encodings` (the start-up and what is
encoded), :mod:`~latent_widgets.session.predictor` (the predicted masks),
:mod:`~latent_widgets.session.map_state` (the map points, the maps, the path on
them), :mod:`~latent_widgets.session.quality` (the maps' per-point quality),
:mod:`~latent_widgets.session.color_fields` (the map's colours),
:mod:`~latent_widgets.session.path` (the strip, the slider's mask, the scrub
grid) and :mod:`~latent_widgets.session.reports` (the selection's report);
:mod:`~latent_widgets.session.jobs` (a lane of background jobs),
:mod:`~latent_widgets.session.predictions` (the masks predicted so far),
:mod:`~latent_widgets.session.persistence` (saving, loading, exporting),
:mod:`~latent_widgets.session.validation` (what the traits accept),
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
