"""The figures of docs/failures.md: lasso -> confusion matrix -> worst samples, on CamVid.

Trains (or loads from the cache) a small SegNet on the 367 CamVid training
images, builds an :class:`~latent_widgets.session.ExplorerSession` on them
(what the explorer's widgets show) and does from Python what the page's
lasso does: selects the samples inside a closed path drawn on the map
around the region where the model fails most, then reads the selection's
report. Run from the repository root::

    LATENT_WIDGETS_CACHE_DIR=.cache .venv/bin/python docs/scripts/failures_camvid.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.path import Path as Polygon

import latent_widgets as lw
from latent_widgets.model import training, zoo
from latent_widgets.session import ExplorerSession
from latent_widgets.views import figures, render
from latent_widgets.views.figures import PaperFigure

CAMVID = Path(os.environ.get("LATENT_WIDGETS_CAMVID", REPO.parent / "shared" / "camvid"))
SIZE, WIDTH, EPOCHS = (64, 96), 0.25, 12
IMG = REPO / "docs" / "img"
NEAR = 25  # the lasso goes around the map's worst neighbourhood of this many samples


def lasso_around(points: np.ndarray, iou: np.ndarray, near: int = NEAR) -> np.ndarray:
    """A closed path (24-gon) around the neighbourhood of the map whose samples have the lowest mean IoU."""
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    order = np.argsort(d, axis=1)[:, :near]
    centre = int(np.argmin(np.nanmean(iou[order], axis=1)))
    radius = float(d[centre, order[centre, -1]]) * 1.02
    t = np.linspace(0, 2 * np.pi, 25)
    return points[centre] + radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def main() -> None:
    data = lw.load_camvid(CAMVID, "train", size=SIZE)
    result = training.train(
        zoo.segnet(12, (*SIZE, 3), width=WIDTH),
        data,
        epochs=EPOCHS,
        class_weighting="balanced",
        ignore_class=11,
        seed=0,
    )
    lm = lw.LatentModel.from_model(result.model)
    s = ExplorerSession(
        lm, data, methods=("pca", "tsne"), map_method="tsne", asynchronous=False, scrub_steps=0, color_by="mean IoU"
    )
    iou = s.color_values().values
    ring = lasso_around(s.points, iou)
    # What the lasso does in the page: the points inside the closed path become the selection.
    s.selection = Polygon(ring).contains_points(s.points)
    report = s.selection_report()
    print(f"selection: {len(report.indices)} samples, mean IoU {report.mean_iou:.3f} (all {report.mean_iou_all:.3f})")
    worst_iou = report.sample_iou[np.searchsorted(report.indices, report.worst[:6])]
    print("worst:", report.worst[:6].tolist(), np.round(worst_iou, 3).tolist())
    names = list(report.class_names)
    delta = report.iou - s.selection_report(np.arange(len(data))).iou
    for c in np.argsort(delta)[:4]:
        print(f"  {names[c]}: IoU {report.iou[c]:.3f} in the selection, {report.iou[c] - delta[c]:.3f} overall")
    norm = report.normalized()
    for c in range(len(names)):
        row = norm[c]
        if np.isfinite(row).all():
            j = int(np.argmax(np.where(np.arange(len(names)) == c, -1, row)))
            print(f"  true {names[c]}: {row[c]:.2f} right, {row[j]:.2f} as {names[j]}")

    # 1. the map coloured by mean IoU, the lasso and the selection
    fig = figures.annotated_scatter(
        s.points,
        labels=False,
        values=iou,
        categorical=False,
        highlight=report.indices,
        title=f"CamVid train: t-SNE of SegNet latents by mean IoU, a lasso around {len(report.indices)} samples",
        figsize=(7.0, 5.6),
    )
    fig.axes[0].plot(ring[:, 0], ring[:, 1], "--", color="#d62728", lw=1.5)
    figures.save(fig, IMG / "failures_lasso.png", formats=["png"])
    # 2. the selection's confusion matrix
    figures.save(figures.confusion_figure(report), IMG / "failures_confusion.png", formats=["png"])
    # 3. the worst samples: image, truth, prediction, errors
    worst = report.worst[:4]
    fig = PaperFigure(figsize=(8.4, 1.75 * len(worst) + 0.3), layout="constrained")
    for r, i in enumerate(worst):
        pred = s.prediction(i)
        tiles = [
            (data.images[i], f"#{i} {data.names[i]}"),
            (render.colorize(data.masks[i], data.palette), "truth"),
            (render.colorize(pred, data.palette), f"prediction (IoU {iou[i]:.2f})"),
            (render.error_map(pred, data.masks[i], data.images[i]), "errors"),
        ]
        for k, (pixels, caption) in enumerate(tiles):
            ax = fig.add_subplot(len(worst), 4, r * 4 + k + 1)
            ax.imshow(pixels, interpolation="nearest")
            ax.set_title(caption, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figures.save(fig, IMG / "failures_worst.png", formats=["png"])
    out = Path(tempfile.mkdtemp())
    print("export:", [p.name for p in s.export(out)])
    print((out / "session.json").read_text())
    s.close()


if __name__ == "__main__":
    main()
