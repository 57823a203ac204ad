"""Train a zoo network (SegNet or DeepLabv3+, width 0.25) at 96x128 on CamVid train and report val figures.

This is the run behind the figure in ``docs/training.md``. The trained model
is cached (``cache_dir("models")``), so running it again, or calling
:func:`latent_widgets.model.training.train` with the same arguments from a
notebook, loads it in a second. Run from the repository root::

    LATENT_WIDGETS_CACHE_DIR=.cache .venv/bin/python docs/scripts/train_camvid.py \\
        [--camvid ../shared/camvid] [--epochs 20] [--model segnet|deeplabv3plus]

It prints the validation mean IoU (11 classes, "Unlabelled" ignored), the
pixel accuracy, and the pixel accuracy of always predicting the most
frequent class (the majority baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default=str(REPO.parent / "shared" / "camvid"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", choices=("segnet", "deeplabv3plus"), default="segnet")
    args = parser.parse_args(argv)

    import numpy as np

    from latent_widgets import load_camvid
    from latent_widgets.core.cache import cache_dir
    from latent_widgets.model.training import evaluate, train
    from latent_widgets.model.zoo import deeplabv3_plus, segnet

    size = (96, 128)
    train_data = load_camvid(args.camvid, "train", size=size)
    val_data = load_camvid(args.camvid, "val", size=size)
    if args.model == "segnet":
        model = segnet(train_data.n_classes, (*size, 3), width=args.width)
    else:
        model = deeplabv3_plus(train_data.n_classes, (*size, 3), backbone_width=args.width)
    print(
        f"{len(train_data)} train / {len(val_data)} val images at {size[0]}x{size[1]}; "
        f"{args.model} width {args.width}: {model.count_params():,} parameters; cache {cache_dir('models')}"
    )
    t0 = time.perf_counter()
    result = train(
        model,
        train_data,
        val_data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=1e-3,
        class_weighting="balanced",
        ignore_class=11,  # "Unlabelled": void, as in the SegNet CamVid benchmark
        seed=0,
    )
    elapsed = time.perf_counter() - t0
    h = result.history
    print(f"{'loaded from cache' if result.from_cache else 'trained'} in {elapsed:.0f} s: {result.path}")
    if h.seconds:
        print(f"seconds per epoch (train + val): median {np.median(h.seconds):.1f}")
    for e in range(h.epochs):
        print(
            f"epoch {e + 1:2d}: loss {h.loss[e]:.3f}  train acc {h.pixel_accuracy[e]:.3f}  "
            f"val acc {h.val_pixel_accuracy[e]:.3f}  val mIoU {h.val_mean_iou[e]:.3f}"
        )
    ev = evaluate(result.model, val_data, ignore_class=11)
    print(h.iou_table())
    print(f"val mean IoU (11 classes): {ev['mean_iou']:.3f}")
    print(f"val pixel accuracy: {ev['pixel_accuracy']:.3f}")
    print(f"majority-class baseline pixel accuracy: {ev['majority_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
