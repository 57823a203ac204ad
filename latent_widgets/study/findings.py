"""The study's findings, measured: numbers beside the statements they test.

The study this package grew from looked at SegNet and DeepLabv3+ trained on
CamVid and read its figures by eye: does the first video sequence (samples
0-61) form its own cluster, how far do the PCA coordinates spread, how many
distinct real samples are the nearest neighbours of a 12-step interpolation
between samples 38 and 138. :func:`study_findings` computes each of these as
a number, and :func:`findings_markdown` renders the table the example
notebooks end with.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.study.findings import Finding, findings_markdown
>>> print(findings_markdown([Finding("PCA x range", "-9.3..10.3", "-8.1..9.9")]))
### Findings
<BLANKLINE>
| question | study | measured |
|---|---|---|
| PCA x range | -9.3..10.3 | -8.1..9.9 |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CAMVID_SEQUENCES",
    "STUDY",
    "STUDY_DATA_NOTE",
    "Finding",
    "findings_markdown",
    "is_camvid",
    "study_findings",
]

#: CamVid's video sequences: the group names :func:`latent_widgets.load_camvid` gives.
CAMVID_SEQUENCES: frozenset[str] = frozenset({"0001TP", "0006R0", "0016E5", "Seq05VD"})

#: Said once under a findings table of data other than CamVid.
STUDY_DATA_NOTE = "The study measured CamVid; its numbers are not set beside these, which come from other data."

#: What the study stated, per network, for the figures it reported.
STUDY: dict[str, dict[str, str]] = {
    "segnet": {
        "pca_range": "about -236000..254400",
        "distinct": "2 (only the endpoints 38 and 138)",
    },
    "deeplabv3plus": {
        "pca_range": "-9.3..10.3",
        "distinct": "3",
    },
}


@dataclass(frozen=True)
class Finding:
    """One row of a findings table (``study`` is None where the study's number does not apply)."""

    question: str
    study: str | None
    measured: str
    value: float | None = None


def is_camvid(dataset: Any) -> bool:
    """Whether ``dataset`` is CamVid: its groups are CamVid's video sequences.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> is_camvid(SimpleNamespace(group_names=("0001TP", "0006R0", "0016E5")))
    True
    >>> is_camvid(SimpleNamespace(group_names=("drive00", "drive01")))
    False
    >>> is_camvid(SimpleNamespace(group_names=None))
    False
    """
    names = getattr(dataset, "group_names", None) or ()
    return bool(names) and {str(n) for n in names} <= CAMVID_SEQUENCES


def _fmt(x: float) -> str:
    ax = abs(x)
    if ax >= 1000:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def study_findings(
    *,
    groups: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: Any,
    path_neighbors: Any,
    n_classes: int,
    network: str = "segnet",
    first_group: int = 0,
    k: int = 10,
    camvid: bool = True,
) -> list[Finding]:
    """Compute the study's figures from the maps and one interpolation path.

    Parameters
    ----------
    groups : ndarray of int, shape (N,)
        Group of each sample (CamVid's video sequence).
    maps : mapping of method name to ndarray (N, 2)
        2-D projections, e.g. ``{"tsne": ..., "pca": ..., "umap": ...}``.
    path : PathResult
        The decoded interpolation (:func:`latent_widgets.analysis.interpolation.decode_path`).
    path_neighbors : PathNeighbors
        Its nearest real neighbours (:func:`latent_widgets.analysis.neighbors.path_neighbors`).
    n_classes : int
    network : {"segnet", "deeplabv3plus"} or any name
        Which of the study's statements to set beside the numbers
        (unknown names get "-").
    first_group : int
        The group asked about (CamVid's first sequence, 0001TP, is 0).
    k : int
        Neighbours for the k-NN group agreement.
    camvid : bool
        Whether the data is CamVid (:func:`is_camvid`), the data of the
        study. Otherwise its statements do not apply: every row's ``study`` is
        None and :func:`findings_markdown` says so once instead.

    Returns
    -------
    list of Finding

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> g = np.repeat([0, 1], 10)
    >>> maps = {"pca": np.c_[5.0 * g, np.arange(20.0)]}
    >>> path = SimpleNamespace(masks=np.zeros((3, 4, 4), int), alphas=np.linspace(0, 1, 3))
    >>> nn = SimpleNamespace(indices=np.array([0, 4, 19]), distances=np.array([0, 1.5, 0]), n_distinct=3)
    >>> rows = study_findings(groups=g, maps=maps, path=path, path_neighbors=nn, n_classes=2, k=3)
    >>> rows[2].measured
    '3 (0, 4, 19)'
    >>> other = study_findings(groups=g, maps=maps, path=path, path_neighbors=nn, n_classes=2, k=3, camvid=False)
    >>> other[2].study is None
    True
    """
    from ..analysis.map_quality import coordinate_ranges, group_separation
    from ..analysis.metrics import consecutive_iou

    statements = STUDY.get(network, {})
    groups = np.asarray(groups)
    members = np.flatnonzero(groups == first_group)
    span = f"{members.min()}-{members.max()}" if members.size else "none"
    binary = (groups == first_group).astype(np.int64)
    rows: list[Finding] = []
    for method, points in maps.items():
        sep = group_separation(np.asarray(points), binary, k=k)
        rows.append(
            Finding(
                f"first sequence (samples {span}) forms its own cluster in the {method} map: "
                f"silhouette / {k}-NN group agreement",
                "its own cluster (read by eye)",
                f"{sep['silhouette']:.2f} / {sep['knn_agreement']:.2f}",
                float(sep["silhouette"]),
            )
        )
    if "pca" in maps:
        (x0, x1), (y0, y1) = coordinate_ranges(np.asarray(maps["pca"]))
        rows.append(
            Finding(
                "PCA coordinate range (x; y)",
                statements.get("pca_range", "-"),
                f"{_fmt(x0)}..{_fmt(x1)}; {_fmt(y0)}..{_fmt(y1)}",
                float(max(abs(x0), abs(x1), abs(y0), abs(y1))),
            )
        )
    idx = np.asarray(path_neighbors.indices)
    idx = idx[:, 0] if idx.ndim == 2 else idx
    steps = len(idx)
    rows.append(
        Finding(
            f"distinct nearest neighbours along the {steps}-step path",
            statements.get("distinct", "-"),
            f"{int(path_neighbors.n_distinct)} ({', '.join(map(str, dict.fromkeys(idx.tolist())))})",
            float(path_neighbors.n_distinct),
        )
    )
    smooth = consecutive_iou(np.asarray(path.masks), n_classes)
    rows.append(
        Finding(
            "path smoothness: mean IoU of consecutive decoded masks (min)",
            "-",
            f"{np.nanmean(smooth):.2f} ({np.nanmin(smooth):.2f})",
            float(np.nanmean(smooth)),
        )
    )
    dist = np.asarray(path_neighbors.distances)
    dist = dist[:, 0] if dist.ndim == 2 else dist
    worst = int(np.argmax(dist))
    rows.append(
        Finding(
            "how far the path leaves the data: largest distance of a step to its nearest sample",
            "-",
            f"{_fmt(float(dist[worst]))} at alpha={float(np.asarray(path.alphas)[worst]):.2f}",
            float(dist[worst]),
        )
    )
    if not camvid:
        rows = [Finding(r.question, None, r.measured, r.value) for r in rows]
    return rows


def findings_markdown(rows: Sequence[Finding], title: str = "Findings") -> str:
    """The rows as a Markdown table under a ``### Findings`` heading.

    The "study" column appears when a row has the study's statement; rows
    without (data other than CamVid, ``study=None``) leave it out and the
    table ends with :data:`STUDY_DATA_NOTE`, once.

    Examples
    --------
    >>> findings_markdown([Finding("q", "s", "m")], title="T").splitlines()[-1]
    '| q | s | m |'
    >>> print(findings_markdown([Finding("q", None, "m")], title="T"))
    ### T
    <BLANKLINE>
    | question | measured |
    |---|---|
    | q | m |
    <BLANKLINE>
    The study measured CamVid; its numbers are not set beside these, which come from other data.
    """
    if any(r.study is not None for r in rows):
        lines = [f"### {title}", "", "| question | study | measured |", "|---|---|---|"]
        lines += [f"| {r.question} | {'-' if r.study is None else r.study} | {r.measured} |" for r in rows]
        return "\n".join(lines)
    lines = [f"### {title}", "", "| question | measured |", "|---|---|"]
    lines += [f"| {r.question} | {r.measured} |" for r in rows]
    return "\n".join([*lines, "", STUDY_DATA_NOTE])
