"""A session saved and restored: its view as JSON (checked against the model's and the data's hashes), and exported.

:func:`session_json` writes what a person set up (the map, the colours, the
path, the slider, the selection) and what it belongs to (the hashes of the
model and the data); :func:`session_arguments` reads it back into the
arguments of a new session, refusing another model or dataset;
:func:`export_session` writes the file and the current figures.

Examples
--------
>>> import json
>>> from latent_widgets import ExplorerSession, synthetic_road_scenes
>>> ds = synthetic_road_scenes(6, size=(16, 16), seed=0)
>>> s = ExplorerSession(None, ds, latents=ds.images.reshape(6, -1), methods=("pca",), asynchronous=False)
>>> s.selection = [2, 3]
>>> kw = session_arguments(session_json(s), None, ds, latents=s.latents)
>>> kw["selection"], json.loads(session_json(s))["format"]
([2, 3], 'latent-widgets-session')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .identity import data_hash, model_hash, points_hash
from .values import SessionMismatchError

__all__ = ["SESSION_FORMAT", "export_session", "jsonable", "session_arguments", "session_json"]

#: The ``format`` of a session file.
SESSION_FORMAT = "latent-widgets-session"


def jsonable(value: Any, what: str) -> Any:
    """``value`` with numpy scalars and arrays made plain; a clear error for what JSON cannot hold.

    Examples
    --------
    >>> jsonable({"perplexity": np.float32(5.0), "sizes": np.arange(2)}, "projection_kwargs")
    {'perplexity': 5.0, 'sizes': [0, 1]}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, what) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{what} = {value!r} cannot be saved in a session file (JSON): use plain numbers and strings")


def session_json(session: Any) -> str:
    """The view of ``session`` as JSON: map, colours, path, slider, selection, and what they belong to.

    ``ExplorerSession.from_json`` with the same model and data reproduces
    it; the model and data hashes are checked.

    Examples
    --------
    >>> text = s.to_json()  # doctest: +SKIP
    >>> ExplorerSession.from_json(text, model, data).selection  # doctest: +SKIP
    """
    from .. import __version__

    s = session
    pts = s.points
    doc = {
        "format": SESSION_FORMAT,
        "version": 1,
        "library_version": __version__,
        "model_hash": model_hash(s.model, s.encodings.given),
        "data_hash": data_hash(s.dataset),
        "n_samples": len(s.dataset),
        "map": {
            "method": s.map_method,
            "methods": list(s.methods),
            "points": s.map_points,
            "projection_kwargs": jsonable(s.map_state.projection_kwargs, "projection_kwargs"),
        },
        "color_by": s.color_by,
        "index_a": int(s.index_a),
        "index_b": int(s.index_b),
        "alpha": float(s.alpha),
        "n_steps": int(s.n_steps),
        "path_method": s.path_method,
        "skip_policy": s.skip_policy,
        "ignore_index": s.ignore_index,
        "selection": s.selection.tolist(),
        "selected": None if s.selected is None else int(s.selected),
        "selected_cell": None if s.selected_cell is None else [int(v) for v in s.selected_cell],
        "map_hash": None if pts is None else points_hash(pts),
    }
    return json.dumps(doc, indent=1)


def session_arguments(text: str, model: Any, dataset: Any, **kwargs: Any) -> dict[str, Any]:
    """The ``ExplorerSession`` arguments of a saved session, for the same model and data.

    Parameters
    ----------
    text : str
        :func:`session_json`'s text (or a path to a ``session.json``).
    model, dataset
        The model and data the session was saved with: their hashes
        must match the file's.
    **kwargs
        More ``ExplorerSession`` arguments (``asynchronous``, ``latents``
        for a maps-only session, ``projections``...), added.

    Raises
    ------
    SessionMismatchError
        The model or the data differ from the saved session's (the
        message says which).
    ValueError
        Not a session file, or one that lacks fields.

    Notes
    -----
    The values are checked by the session made of them (``ExplorerSession.from_json``):
    a field holding a value the session refuses (an index out of range,
    an unknown colour field...) raises a ``traitlets.TraitError`` naming
    it, its value and what is allowed; several invalid fields raise one
    :class:`~latent_widgets.session.values.SessionStateError` (also a
    ``ValueError``) naming each.
    """
    if not str(text).lstrip().startswith("{") and Path(str(text)).is_file():
        text = Path(str(text)).read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a session file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
        raise ValueError("not a latent-widgets session file (no 'format': 'latent-widgets-session')")
    wrong = []
    if doc.get("data_hash") != data_hash(dataset):
        wrong.append(
            f"the data differ (saved {str(doc.get('data_hash'))[:12]}, {doc.get('n_samples')} samples; "
            f"given {data_hash(dataset)[:12]}, {len(dataset)} samples)"
        )
    got = model_hash(model, kwargs.get("latents"))
    if doc.get("model_hash") != got:
        wrong.append(f"the model differs (saved {str(doc.get('model_hash'))[:12]}, given {got[:12]})")
    if wrong:
        raise SessionMismatchError(
            "this session was saved with another model or dataset: "
            + "; ".join(wrong)
            + ". Load it with the model and data it was saved with."
        )
    m = doc.get("map")
    m = m if isinstance(m, dict) else {}
    needed = ("index_a", "index_b", "n_steps", "path_method", "skip_policy", "alpha", "selected", "selection")
    missing = [k for k in needed if k not in doc] + [f"map.{k}" for k in ("method", "methods") if k not in m]
    if missing:
        raise ValueError(
            f"the session file lacks {missing}: it was not written by ExplorerSession.to_json, or was cut short"
        )
    methods = m["methods"]
    if not (isinstance(methods, list) and methods and all(isinstance(v, str) for v in methods)):
        raise ValueError(f"map.methods={methods!r} in the session file: expected a list of method names")
    # Every field is checked by the session's validators; all the invalid ones are reported at once
    # (SessionStateError), each naming the field, the value and what is allowed.
    kw: dict[str, Any] = dict(
        methods=tuple(methods),
        map_method=m["method"],
        projection_kwargs=m.get("projection_kwargs") or None,
        index_a=doc["index_a"],
        index_b=doc["index_b"],
        n_steps=doc["n_steps"],
        path_method=doc["path_method"],
        skip_policy=doc["skip_policy"],
        alpha=doc["alpha"],
        selected=doc["selected"],
        selection=doc["selection"],
        color_by=doc.get("color_by"),
        map_points=m.get("points", "flatten"),
        selected_cell=doc.get("selected_cell"),
        # A file written before the key existed scored every class.
        ignore_index=doc.get("ignore_index"),
    )
    kw.update(kwargs)
    return kw


class _StripNeighbors(NamedTuple):
    indices: np.ndarray
    distances: np.ndarray


def export_session(session: Any, folder: str | Path) -> list[Path]:
    """Write ``session``'s ``session.json`` and the current figures (PNG and SVG) into ``folder``.

    The map (:func:`~latent_widgets.views.figures.annotated_scatter`, in the
    current colours, with the path and the selection), the strip
    (:func:`~latent_widgets.views.figures.strip_from_path`) when there is one,
    and the selection's confusion matrix
    (:func:`~latent_widgets.views.figures.confusion_figure`) when samples are
    selected. Returns the files written.

    Examples
    --------
    >>> [p.name for p in s.export("out")]  # doctest: +SKIP
    ['session.json', 'map.png', 'map.svg', 'strip.png', 'strip.svg']
    """
    from ..views import figures

    s = session
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "session.json"]
    written[0].write_text(session_json(s))
    pts = s.fit_map(s.map_method)
    field = s.color_values()
    kw: dict[str, Any] = {}
    if field.categorical:
        kw.update(values=field.values, categorical=True, colours=list(field.colours), value_names=list(field.labels))
    elif np.isfinite(field.values).any():
        kw.update(values=np.nan_to_num(field.values, nan=float(np.nanmin(field.values))), categorical=False)
    strip = s.strip
    highlight = s.selection.tolist() or ([] if s.selected is None else [int(s.selected)])
    on_samples = s.map_points != "cells"  # a map of cells draws no path (see map_points)
    fig = figures.annotated_scatter(
        pts,
        path=s.path_points if strip is not None and on_samples else None,
        neighbors=strip.neighbor_indices if strip is not None and on_samples else None,
        highlight=s.points_of_samples(highlight).tolist(),
        title=f"{s.map_method} map · colour: {s.color_by}",
        **kw,
    )
    written += figures.save(fig, folder / "map")
    if strip is not None:
        fig = figures.strip_from_path(
            strip.result,
            _StripNeighbors(strip.neighbor_indices, strip.neighbor_distances),
            s.dataset,
            index_a=strip.key.index_a,
            index_b=strip.key.index_b,
        )
        written += figures.save(fig, folder / "strip")
    if len(s.selection):
        report = (
            s.report if s.report is not None and np.array_equal(s.report.indices, s.selection) else s.selection_report()
        )
        written += figures.save(figures.confusion_figure(report), folder / "confusion")
    return written
