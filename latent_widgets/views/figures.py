"""Static matplotlib versions of the explorer's views, for papers and reports.

- :func:`annotated_scatter`: a projection map with each point labelled by its
  sample index, optionally with an interpolation path and its neighbours;
- :func:`interpolation_strip`: the decoded masks of N interpolation steps in
  a row, each step's nearest real neighbour under it (the layout of the
  study's interpolation figures); :func:`strip_from_path` builds it from a
  ``PathResult`` / ``PathNeighbors`` pair;
- :func:`mask_triptych`: image, ground truth and prediction with a class
  legend;
- :func:`confusion_figure`: the normalised confusion matrix of a selection
  (:class:`~latent_widgets.analysis.failures.SelectionReport`) with class names;
- the cell-movement heatmaps are in :mod:`latent_widgets.views.movement_figures`;
- :func:`save`: write a figure as PNG and/or SVG.

Figures are built on :class:`matplotlib.figure.Figure` directly rather than
through ``pyplot``, so making one never opens a window, leaks a global
figure or depends on the notebook backend; they are :class:`PaperFigure`
objects, which display themselves in Jupyter (a PNG ``_repr_png_``) without
``pyplot`` or ``%matplotlib inline``. Colours come from
:mod:`latent_widgets.views.render`, so a figure matches the widget pixel for pixel.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.views.figures import annotated_scatter, save
>>> fig = annotated_scatter(np.random.default_rng(0).normal(size=(20, 2)))
>>> [p.suffix for p in save(fig, "/tmp/lw-doc-scatter", formats=("png", "svg"))]
['.png', '.svg']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..data.colors import NO_VALUE_COLOUR
from . import render

__all__ = [
    "PaperFigure",
    "annotated_scatter",
    "confusion_figure",
    "interpolation_strip",
    "mask_triptych",
    "save",
    "strip_from_path",
]


class PaperFigure(Figure):
    """A :class:`matplotlib.figure.Figure` that shows itself in Jupyter as a PNG.

    Examples
    --------
    >>> fig = PaperFigure(figsize=(1, 1))
    >>> fig._repr_png_()[1:4]
    b'PNG'
    """

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()


# Above this many points index labels overlap into a grey blob; callers can
# still force them with labels=True.
_AUTO_LABEL_LIMIT = 400


def _class_legend(
    fig: Figure,
    palette: np.ndarray,
    class_names: Sequence[str] | None,
    present: np.ndarray | None = None,
    iou: np.ndarray | None = None,
) -> None:
    if class_names is None:
        return
    handles = []
    for c, name in enumerate(class_names):
        if present is not None and not present[c]:
            continue
        label = name
        if iou is not None and c < len(iou) and np.isfinite(iou[c]):
            label = f"{name} ({iou[c]:.2f})"
        handles.append(Patch(facecolor=np.asarray(palette[c]) / 255.0, edgecolor="0.3", label=label))
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(6, len(handles)),
            fontsize=7,
            frameon=False,
            handlelength=1.0,
            columnspacing=1.0,
        )


def annotated_scatter(
    points: np.ndarray,
    *,
    labels: bool | Sequence[str] | None = None,
    values: np.ndarray | None = None,
    categorical: bool | None = None,
    colours: Sequence[str] | np.ndarray | None = None,
    value_names: Sequence[str] | None = None,
    cmap: str = "viridis",
    path: np.ndarray | None = None,
    neighbors: Sequence[int] | np.ndarray | None = None,
    highlight: Sequence[int] | None = None,
    title: str | None = None,
    xlabel: str = "dim 1",
    ylabel: str = "dim 2",
    figsize: tuple[float, float] = (6.0, 5.0),
    fontsize: float = 6.0,
) -> Figure:
    """A 2-D projection with each point annotated by its sample index.

    Parameters
    ----------
    points : ndarray, shape (N, 2)
        Map coordinates (:func:`latent_widgets.analysis.projection.project`).
    labels : bool or sequence of str, optional
        ``True``: the sample index; a sequence: one label per point;
        ``False``: none. Default: indices up to 400 points.
    values : ndarray, shape (N,), optional
        Colour field (group id, dominant class, mean IoU...).
    categorical : bool, optional
        Treat ``values`` as categories (default: integer dtype).
    colours : sequence, optional
        One colour per category (e.g. ``colors.hex_colours(dataset.palette)``
        for the dominant class).
    value_names : sequence of str, optional
        Legend name of each category.
    cmap : str
        Colormap for continuous values (and categories without ``colours``).
    path : ndarray, shape (M, 2), optional
        An interpolation path in map coordinates, drawn as a line with steps.
    neighbors : ndarray of int, shape (M,), optional
        Index of each step's nearest real sample, ringed on the map.
    highlight : sequence of int, optional
        Samples to ring in black (e.g. the endpoints A and B).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> pts = np.arange(10.0).reshape(5, 2)
    >>> fig = annotated_scatter(pts, values=np.array([0, 0, 1, 1, 2]), value_names=["a", "b", "c"])
    >>> len(fig.axes[0].texts)
    5
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    n = len(pts)
    fig = PaperFigure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    size = 18 if n < 500 else 6
    if values is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=size, c=NO_VALUE_COLOUR, linewidths=0)
    else:
        vals = np.asarray(values)
        if vals.shape != (n,):
            raise ValueError(f"values must have shape ({n},), got {vals.shape}")
        if categorical is None:
            categorical = np.issubdtype(vals.dtype, np.integer) or vals.dtype.kind in "OUSb"
        if categorical:
            cats = list(dict.fromkeys(vals.tolist()))
            with contextlib.suppress(TypeError):
                cats.sort()
            from matplotlib import colormaps

            cm = colormaps["tab10" if len(cats) <= 10 else "tab20"]
            for k, cat in enumerate(cats):
                sel = vals == cat
                if colours is not None and isinstance(cat, (int, np.integer)) and 0 <= cat < len(colours):
                    colour = colours[int(cat)]
                    if not isinstance(colour, str):
                        colour = np.asarray(colour, float) / (255.0 if np.max(colour) > 1 else 1.0)
                else:
                    colour = cm(k % cm.N)
                name = str(cat)
                if value_names is not None and isinstance(cat, (int, np.integer)) and 0 <= cat < len(value_names):
                    name = value_names[int(cat)]
                ax.scatter(pts[sel, 0], pts[sel, 1], s=size, color=colour, linewidths=0.3, edgecolors="0.3", label=name)
            if len(cats) <= 20:
                ax.legend(fontsize=7, markerscale=1.2, frameon=False, loc="best")
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], s=size, c=vals.astype(float), cmap=cmap, linewidths=0)
            fig.colorbar(sc, ax=ax, shrink=0.8)
    if labels is None:
        labels = n <= _AUTO_LABEL_LIMIT
    if labels is not False:
        texts = [str(i) for i in range(n)] if labels is True else [str(t) for t in labels]  # type: ignore[union-attr]
        if len(texts) != n:
            raise ValueError(f"got {len(texts)} labels for {n} points")
        for (x, y), t in zip(pts, texts, strict=False):
            # A small offset keeps the label off its own marker.
            ax.annotate(t, (x, y), xytext=(2, 2), textcoords="offset points", fontsize=fontsize, color="0.2")
    if neighbors is not None:
        nb = np.unique(np.asarray(neighbors, dtype=int))
        ax.scatter(
            pts[nb, 0],
            pts[nb, 1],
            s=size * 4,
            facecolors="none",
            edgecolors="#ff8c00",
            linewidths=1.2,
            label="nearest neighbours",
        )
    if path is not None:
        p = np.asarray(path, dtype=float)
        ax.plot(p[:, 0], p[:, 1], "-", color="#d62728", lw=1.2, zorder=3)
        ax.scatter(p[:, 0], p[:, 1], s=14, color="#d62728", zorder=4, label="interpolation path")
    if highlight is not None:
        hl = np.asarray(list(highlight), dtype=int)
        ax.scatter(pts[hl, 0], pts[hl, 1], s=size * 5, facecolors="none", edgecolors="k", linewidths=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


def interpolation_strip(
    masks: np.ndarray,
    alphas: Sequence[float] | np.ndarray,
    palette: np.ndarray,
    *,
    neighbor_masks: np.ndarray | None = None,
    neighbor_indices: Sequence[int] | np.ndarray | None = None,
    distances: Sequence[float] | np.ndarray | None = None,
    endpoint_images: tuple[np.ndarray, np.ndarray] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    tile_width: float = 1.1,
) -> Figure:
    """Decoded masks along an interpolation path, each step's nearest real neighbour under it.

    Parameters
    ----------
    masks : ndarray of int, shape (N, H, W)
        The decoded mask of each step.
    alphas : sequence of float, length N
    palette : ndarray, uint8, shape (n_classes, 3)
    neighbor_masks : ndarray of int, shape (N, H, W), optional
        The ground-truth mask of each step's nearest real sample (second row).
    neighbor_indices : sequence of int, optional
        Their sample indices (captions of the second row).
    distances : sequence of float, optional
        Latent distance of each step to its neighbour (added to the caption).
    endpoint_images : (image_a, image_b), optional
        Input images of the endpoints, drawn at both ends of the first row.
    class_names : sequence of str, optional
        Adds a class legend (classes present in the strip only).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> m = np.zeros((4, 8, 8), int); m[2:] = 1
    >>> fig = interpolation_strip(m, np.linspace(0, 1, 4), np.array([[0, 0, 0], [255, 0, 0]]),
    ...                           neighbor_masks=m, neighbor_indices=[3, 3, 7, 7])
    >>> len(fig.axes)
    8
    """
    masks = np.asarray(masks)
    alphas = np.asarray(alphas, dtype=float)
    n = len(masks)
    if len(alphas) != n:
        raise ValueError(f"got {len(alphas)} alphas for {n} masks")
    rows = 1 + (neighbor_masks is not None)
    cols = n + (2 if endpoint_images is not None else 0)
    h, w = masks.shape[1:3]
    fig = PaperFigure(
        figsize=(tile_width * cols, tile_width * h / w * rows + 0.9 + (0.3 if class_names else 0)), layout="constrained"
    )
    grid = fig.add_gridspec(rows, cols)
    offset = 1 if endpoint_images is not None else 0

    def tile(r: int, c: int, pixels: np.ndarray, caption: str) -> None:
        ax = fig.add_subplot(grid[r, c])
        ax.imshow(pixels, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(caption, fontsize=7, labelpad=2)

    if endpoint_images is not None:
        tile(0, 0, render.as_uint8(endpoint_images[0]), "A")
        tile(0, cols - 1, render.as_uint8(endpoint_images[1]), "B")
    for i in range(n):
        tile(0, offset + i, render.colorize(masks[i], palette), f"α={alphas[i]:.2f}")
    if neighbor_masks is not None:
        nm = np.asarray(neighbor_masks)
        if len(nm) != n:
            raise ValueError(f"got {len(nm)} neighbour masks for {n} steps")
        for i in range(n):
            caption = "" if neighbor_indices is None else f"#{int(neighbor_indices[i])}"
            if distances is not None:
                caption += f" d={float(distances[i]):.3g}"
            tile(1, offset + i, render.colorize(nm[i], palette), caption.strip())
    if class_names is not None:
        present = np.zeros(len(class_names), bool)
        ids = np.unique(masks)
        if neighbor_masks is not None:
            ids = np.union1d(ids, np.unique(neighbor_masks))
        present[ids[ids < len(class_names)]] = True
        _class_legend(fig, palette, class_names, present)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def strip_from_path(
    result: Any, neighbors: Any, dataset: Any, *, index_a: int | None = None, index_b: int | None = None, **kwargs: Any
) -> Figure:
    """:func:`interpolation_strip` from a ``PathResult`` and ``PathNeighbors``.

    Parameters
    ----------
    result : latent_widgets.analysis.interpolation.PathResult
        Uses ``result.masks`` and ``result.alphas``.
    neighbors : latent_widgets.analysis.neighbors.PathNeighbors or None
        Uses ``neighbors.indices`` (first column if 2-D) and ``distances``.
    dataset : SegmentationDataset
        For the palette, class names and the neighbours' ground truth.
    index_a, index_b : int, optional
        Endpoint samples: their images are drawn at both ends.

    Examples
    --------
    >>> fig = strip_from_path(result, nbrs, dataset, index_a=3, index_b=17)  # doctest: +SKIP
    """
    kw: dict[str, Any] = dict(class_names=dataset.class_names)
    if neighbors is not None:
        idx = np.asarray(neighbors.indices)
        dist = np.asarray(neighbors.distances)
        if idx.ndim == 2:
            idx, dist = idx[:, 0], dist[:, 0]
        kw.update(neighbor_masks=dataset.masks[idx], neighbor_indices=idx, distances=dist)
    if index_a is not None and index_b is not None:
        kw["endpoint_images"] = (dataset.images[index_a], dataset.images[index_b])
    kw.update(kwargs)
    return interpolation_strip(result.masks, result.alphas, dataset.palette, **kw)


def mask_triptych(
    image: np.ndarray,
    true_mask: np.ndarray | None,
    pred_mask: np.ndarray,
    palette: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    iou: np.ndarray | None = None,
    error: bool = False,
    title: str | None = None,
    tile_width: float = 2.4,
) -> Figure:
    """Image, ground truth and predicted mask side by side, with a class legend.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
    true_mask : ndarray of int, shape (H, W), or None
        ``None`` for a decoded latent (the panel says "no ground truth").
    pred_mask : ndarray of int, shape (H, W)
    palette : ndarray, uint8, shape (n_classes, 3)
    class_names : sequence of str, optional
        Adds a legend of the classes present.
    iou : ndarray, shape (n_classes,), optional
        Per-class IoU, shown in the legend.
    error : bool
        Add a fourth panel with :func:`latent_widgets.views.render.error_map`.

    Examples
    --------
    >>> img = np.zeros((8, 8, 3)); m = np.zeros((8, 8), int)
    >>> len(mask_triptych(img, m, m, np.zeros((1, 3), np.uint8), error=True).axes)
    4
    """
    panels: list[tuple[np.ndarray, str]] = [(render.as_uint8(image), "image")]
    h, w = np.shape(pred_mask)
    if true_mask is None:
        panels.append((np.full((h, w, 3), 230, np.uint8), "no ground truth"))
    else:
        panels.append((render.colorize(true_mask, palette), "ground truth"))
    panels.append((render.colorize(pred_mask, palette), "prediction"))
    if error:
        panels.append((render.error_map(pred_mask, true_mask, image), "errors"))
    fig = PaperFigure(
        figsize=(tile_width * len(panels), tile_width * h / w + 0.6 + (0.5 if class_names else 0)), layout="constrained"
    )
    for k, (pixels, caption) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(pixels, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(caption, fontsize=9)
    if class_names is not None:
        present = np.zeros(len(class_names), bool)
        ids = np.unique(pred_mask) if true_mask is None else np.union1d(np.unique(pred_mask), np.unique(true_mask))
        present[ids[ids < len(class_names)]] = True
        _class_legend(fig, palette, class_names, present, iou)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def confusion_figure(report: Any, ax: Any = None, *, title: str | None = None, annotate: bool | None = None) -> Figure:
    """The row-normalised confusion matrix of a selection, with class names.

    Rows are the true classes, columns the predicted ones; each row sums to
    1 (a true class absent from the selection is a blank row). The report's
    ``ignore_index`` class has no row (its pixels were left out) but keeps
    its column: a prediction of it on a labelled pixel is an error. The
    title gives the selection's mean IoU against the whole set's.

    Parameters
    ----------
    report : SelectionReport
        :func:`latent_widgets.analysis.failures.selection_report` (or
        ``ExplorerSession.selection_report()``): uses ``normalized()``,
        ``class_names``, ``indices``, ``mean_iou``, ``mean_iou_all``.
    ax : matplotlib Axes, optional
        Draw into it (its figure is returned); a new figure by default.
    title : str, optional
        Default: "N samples · mean IoU x (all y)".
    annotate : bool, optional
        Write each cell's fraction (default: up to 15 classes).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> cm = np.array([[3, 1], [0, 4]])
    >>> r = SimpleNamespace(normalized=lambda: cm / cm.sum(1, keepdims=True), class_names=("a", "b"),
    ...                     indices=np.arange(2), mean_iou=0.7, mean_iou_all=0.8)
    >>> [t.get_text() for t in confusion_figure(r).axes[0].get_yticklabels()]
    ['a', 'b']
    """
    norm = np.asarray(report.normalized(), np.float64)
    names = [str(c) for c in report.class_names]
    c = len(names)
    ignored = getattr(report, "ignore_index", None)
    rows = [i for i in range(c) if i != ignored]
    norm = norm[rows]
    if ax is None:
        side = min(2.0 + 0.42 * c, 9.0)
        fig: Any = PaperFigure(figsize=(side + 1.0, side), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    shown = np.ma.masked_invalid(norm)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(c), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [names[i] for i in rows], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if annotate is None:
        annotate = c <= 15
    if annotate:
        for i in range(len(rows)):
            for j in range(c):
                v = norm[i, j]
                if np.isfinite(v) and v >= 0.005:
                    ax.text(
                        j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.6 else "0.15"
                    )
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class's pixels")
    if title is None:
        title = f"{len(report.indices)} samples · mean IoU {report.mean_iou:.3f}"
        if np.isfinite(report.mean_iou_all):
            title += f" (all {report.mean_iou_all:.3f})"
    ax.set_title(title, fontsize=10)
    return fig


def save(
    fig: Figure, path: str | os.PathLike[str], *, formats: Sequence[str] | None = None, dpi: int = 150
) -> list[Path]:
    """Save a figure as PNG and/or SVG.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path
        With a ``.png`` / ``.svg`` suffix, that one file; without a suffix
        (or with ``formats``), one file per format next to each other.
    formats : sequence of {"png", "svg", "pdf"}, optional
    dpi : int
        Resolution of raster output.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import numpy as np
    >>> out = save(annotated_scatter(np.zeros((3, 2))), "/tmp/lw-doc-fig.svg")
    >>> out[0].name
    'lw-doc-fig.svg'
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if formats is None:
        formats = (suffix,) if suffix in ("png", "svg", "pdf") else ("png", "svg")
    stem = path.with_suffix("") if suffix in ("png", "svg", "pdf") else path
    written = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("png", "svg", "pdf"):
            raise ValueError(f"unsupported format {fmt!r}; use png, svg or pdf")
        target = stem.with_name(stem.name + "." + fmt)
        # SVG text stays text (searchable, editable in a paper's figure).
        fig.savefig(target, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
        written.append(target)
    return written
