"""The study's static figures: maps, interpolation strip, triptych and findings table.

The study interpolated between training samples 38 and 138 of CamVid in 12
steps; :data:`STUDY_PATH` and :data:`STUDY_STEPS` hold those choices, and
:func:`write_study_figures` draws the figures it reported (the CLI's
``figures`` and ``demo`` commands call it).

Examples
--------
>>> from latent_widgets.study.figures import STUDY_PATH, STUDY_STEPS
>>> STUDY_PATH, STUDY_STEPS
((38, 138), 12)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STUDY_METHODS", "STUDY_PATH", "STUDY_STEPS", "default_endpoints", "write_study_figures"]

#: The endpoints (training-sample indices) of the study's interpolation path.
STUDY_PATH: tuple[int, int] = (38, 138)
#: The number of steps of that path.
STUDY_STEPS: int = 12
#: The maps the study drew.
STUDY_METHODS: tuple[str, ...] = ("pca", "tsne", "umap")


def default_endpoints(n: int, index_a: int | None = None, index_b: int | None = None) -> tuple[int, int]:
    """The interpolation endpoints the figures and the explorer open on, for ``n`` samples.

    The study's 38 and 138 (:data:`STUDY_PATH`) where the data has them
    (more than 138 samples), otherwise the first and the last sample. An
    endpoint given is kept; only the missing ones are filled in.

    Examples
    --------
    >>> default_endpoints(367), default_endpoints(139), default_endpoints(138), default_endpoints(40)
    ((38, 138), (38, 138), (0, 137), (0, 39))
    >>> default_endpoints(1), default_endpoints(367, index_b=200), default_endpoints(40, 5)
    ((0, 0), (38, 200), (5, 39))
    """
    a, b = STUDY_PATH if n > max(STUDY_PATH) else (0, max(n - 1, 0))
    return (a if index_a is None else index_a, b if index_b is None else index_b)


def write_study_figures(
    train_data: Any,
    lm: Any,
    out: str | Path,
    *,
    path: tuple[int, int] | None = None,
    steps: int = STUDY_STEPS,
) -> list[Path]:
    """Write the study's figures to ``out`` (PNG and SVG) and ``findings.md``; return the PNG paths.

    Parameters
    ----------
    train_data : SegmentationDataset
        The samples to encode and map (e.g. CamVid train).
    lm : LatentModel
        The network to encode and decode with.
    out : str or Path
        Folder, created if missing.
    path : (int, int), optional
        Interpolation endpoints; default :func:`default_endpoints` (the
        study's 38 and 138 when the data has them, else its first and last
        sample: where the explorer opens too). Indices past the end of
        ``train_data`` are clipped to its last sample.
    steps : int
        Steps of the interpolation path.

    Returns
    -------
    list of Path
        ``map_pca.png``, ``map_tsne.png``, ``map_umap.png``,
        ``interpolation_strip.png`` and ``triptych.png`` (each with an SVG
        beside it). ``findings.md`` sets the study's statements beside the
        numbers only for CamVid (:func:`~latent_widgets.study.findings.is_camvid`).

    Examples
    --------
    >>> write_study_figures(train_data, lm, "figures/")  # doctest: +SKIP
    [PosixPath('figures/map_pca.png'), ...]
    """
    import matplotlib

    # Files only: no display, also where a GUI backend would be picked.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis import interpolation, metrics, neighbors, projection
    from ..views import figures
    from .findings import findings_markdown, is_camvid, study_findings

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    a, b = (min(i, len(train_data) - 1) for i in (path or default_endpoints(len(train_data))))
    encoding = lm.encode_dataset(train_data)
    latents = encoding.latents
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        figures.save(fig, out / f"{name}.png")
        figures.save(fig, out / f"{name}.svg")
        written.append(out / f"{name}.png")

    maps = {m: projection.project(latents, m) for m in STUDY_METHODS}
    for method, points in maps.items():
        save(
            figures.annotated_scatter(
                points,
                labels=True,
                values=train_data.groups,
                categorical=True,
                value_names=train_data.group_names,
                highlight=[a, b],
                title=f"{method.upper()} of {len(points)} latents",
            ),
            f"map_{method}",
        )
    ends = dict(encoding_a=lm.encode(train_data.images[a : a + 1]), encoding_b=lm.encode(train_data.images[b : b + 1]))
    interp = interpolation.decode_path(
        lm, train_data.images[a], train_data.images[b], interpolation.steps(steps), **ends
    )
    nn = neighbors.path_neighbors(interp.latents, neighbors.LatentIndex().fit(latents))
    save(
        figures.strip_from_path(
            interp, nn, train_data, index_a=a, index_b=b, title=f"{steps}-step linear path {a} -> {b}"
        ),
        "interpolation_strip",
    )
    pred = lm.predict_masks(train_data.images[[a]])[0]
    iou = metrics.iou_per_class(pred, train_data.masks[a], train_data.n_classes)
    save(
        figures.mask_triptych(
            train_data.images[a],
            train_data.masks[a],
            pred,
            train_data.palette,
            class_names=train_data.class_names,
            iou=iou,
            title=f"sample {a}",
        ),
        "triptych",
    )
    rows = study_findings(
        groups=train_data.groups,
        maps=maps,
        path=interp,
        path_neighbors=nn,
        n_classes=train_data.n_classes,
        camvid=is_camvid(train_data),
    )
    (out / "findings.md").write_text(findings_markdown(rows) + "\n")
    plt.close("all")
    return written
