"""Write docs/img/camvid_segnet_cells_38_138.png: how far each SegNet latent cell moves on the path 38 -> 138.

The network is the docs' SegNet of ``docs/results.md`` (width 0.25, CamVid
train at 96x128, 20 epochs, batch 8, Adam 1e-3, class-balanced loss,
"Unlabelled" ignored, seed 0), loaded from the model cache that
``docs/scripts/train_camvid.py`` fills; if it is not there it is trained
first with those settings (about 8 minutes on 2 idle CPU cores, 33 on a busy one; ``--epochs`` for a
shorter run, which the figure's title then says). The path is the study's:
12 evenly spaced steps of the linear path between training samples 38 and
138. Run from the repository root::

    LATENT_WIDGETS_CACHE_DIR=.cache .venv/bin/python docs/scripts/cell_heatmap.py [--camvid ../shared/camvid]

It prints the latent grid, the cells that move most with the true class
under them in A and in B, and the movement summed by grid row and column.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

__all__ = ["main"]

SIZE, WIDTH, EPOCHS = (96, 128), 0.25, 20
OUT = REPO / "docs" / "img" / "camvid_segnet_cells_38_138.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--camvid", default=os.environ.get("LATENT_WIDGETS_CAMVID", str(REPO.parent / "shared" / "camvid"))
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    import latent_widgets as lw
    from latent_widgets.analysis import interpolation
    from latent_widgets.latents import cells
    from latent_widgets.model import training, zoo
    from latent_widgets.study import STUDY_PATH, STUDY_STEPS
    from latent_widgets.views import figures, movement_figures, render

    (a, b), n_steps = STUDY_PATH, STUDY_STEPS
    train_data = lw.load_camvid(args.camvid, "train", size=SIZE)
    val_data = lw.load_camvid(args.camvid, "val", size=SIZE)
    net = zoo.segnet(train_data.n_classes, (*SIZE, 3), width=WIDTH)
    # The same call as docs/scripts/camvid_results.py, so the same cache entry.
    result = training.train(
        net, train_data, val_data, epochs=args.epochs, class_weighting="balanced", ignore_class=11, seed=0
    )
    print(f"model {'loaded from' if result.from_cache else 'trained and saved to'} {result.path}")
    lm = lw.LatentModel.from_model(result.model)

    alphas = interpolation.steps(n_steps)
    path = interpolation.decode_path(lm, train_data.images[a], train_data.images[b], alphas)
    move = cells.cell_movement(path.latents)
    h, w = move.grid
    names = train_data.class_names
    under = cells.cell_classes(
        train_data.masks[[a, b]], lm.latent_shape, train_data.n_classes, ignore_index=train_data.ignore_index
    )

    total = move.total
    print(f"latent {lm.latent_shape}: a {h}x{w} grid; each cell covers {SIZE[0] // h}x{SIZE[1] // w} pixels")
    print(f"|B - A| over the whole latent: {np.linalg.norm(path.latents[-1] - path.latents[0]):.2f}")
    print(f"cell totals: min {total.min():.2f}, median {np.median(total):.2f}, max {total.max():.2f}")
    print("cells moving most (row, col: total, share of the sum, true class under A / under B):")
    for r, c, v in move.top(8):
        print(f"  ({r}, {c}): {v:.2f} ({v / total.sum():.1%}), {names[under[0, r, c]]} / {names[under[1, r, c]]}")
    print("cells moving least:")
    for i in np.argsort(total.ravel(), kind="stable")[:4]:
        r, c = divmod(int(i), w)
        print(f"  ({r}, {c}): {total[r, c]:.2f}, {names[under[0, r, c]]} / {names[under[1, r, c]]}")
    print("sum by grid row (top to bottom):", np.round(total.sum(axis=1), 1).tolist())
    print("sum by grid column (left to right):", np.round(total.sum(axis=0), 1).tolist())
    changed = under[0] != under[1]
    print(
        f"cells whose dominant true class differs between A and B: {int(changed.sum())} of {h * w}; "
        f"their mean total {total[changed].mean():.2f} vs {total[~changed].mean():.2f} for the others"
    )
    steps_share = move.per_step.sum(axis=(1, 2)) / total.sum()
    print("share of the movement per step:", np.round(steps_share, 3).tolist())

    fig = figures.PaperFigure(figsize=(13.0, 5.3), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.65, 1.0])
    axes = top.subplots(1, 3)
    for ax, idx, label in ((axes[0], a, "A"), (axes[1], b, "B")):
        ax.imshow(render.as_uint8(train_data.images[idx]), interpolation="nearest")
        ax.set_title(f"{label}: train #{idx} ({train_data.names[idx]})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    movement_figures.cell_movement_figure(
        train_data.images[a], move, ax=axes[2], alpha=0.55, title=f"summed over the path, over A ({h}x{w} cells)"
    )
    masks = render.colorize(path.masks[1:], train_data.palette)
    movement_figures.cell_movement_strip(move, backgrounds=masks, alphas=alphas, alpha=0.55, fig=bottom, annotate=False)
    bottom.suptitle("per step, over the decoded mask the step lands on", fontsize=9)
    trained = "" if args.epochs == EPOCHS else f", {args.epochs} epochs"
    fig.suptitle(
        f"SegNet (width {WIDTH}, {SIZE[0]}x{SIZE[1]}{trained}): L2 movement of each latent cell, "
        f"linear path {a} -> {b} in {n_steps} steps",
        fontsize=10,
    )
    written = figures.save(fig, args.out, formats=("png",))
    print("wrote", *written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
