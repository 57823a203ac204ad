"""Train the study's networks at the study's full setting (288x384, full width, 24 epochs) on a GPU machine.

The CPU-sized runs of ``study_networks.py`` (96x128, SegNet at width 0.25)
are what a 2-core CPU affords; this is the study's own setting. Each network
is trained with :func:`latent_widgets.model.training.train` (cached: a second run
loads it), then measured exactly as in ``study_networks.py`` (PCA ranges of
the 367 training latents, spread, separation of the first sequence,
distinct neighbours along 38 -> 138), untrained and trained. The figures are
printed as the "Study networks" table and written to ``--out`` as JSON. Run
from the repository root::

    LATENT_WIDGETS_CACHE_DIR=.cache python docs/scripts/train_study_full.py \\
        [--camvid ../shared/camvid] [--epochs 24] [--models vgg_segnet deeplabv3plus_mobilenetv2] \\
        [--vgg-weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5] [--out study_full.json]

``--vgg-weights`` starts SegNet's encoder from a local ImageNet VGG16 file
(as ``image-segmentation-keras`` does by default); nothing is downloaded.
Cost (estimated, not measured): SegNet at 288x384, width 1.0 has 11.6 M
parameters and about 30 G multiply-adds per image forward, so an epoch of
367 images should take well under a minute on one H100 and hours on a CPU.
Trained models then get their batch-norm statistics recomputed on 128
training images, as in ``study_networks.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

__all__ = ["FULL_SIZE", "main"]

FULL_SIZE = (288, 384)
BUILDERS = {
    "vgg_segnet": ("vgg_segnet", {"width": 1.0}),
    "deeplabv3plus_mobilenetv2": ("deeplabv3_plus", {"backbone": "mobilenetv2", "backbone_width": 1.0}),
    "deeplabv3plus_xception": ("deeplabv3_plus", {"backbone": "xception", "backbone_width": 1.0}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--camvid", default=os.environ.get("LATENT_WIDGETS_CAMVID", str(REPO.parent / "shared" / "camvid"))
    )
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=FULL_SIZE, metavar=("H", "W"), help="image size")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0: the study's networks)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--models", nargs="+", choices=sorted(BUILDERS), default=["vgg_segnet", "deeplabv3plus_mobilenetv2"]
    )
    parser.add_argument("--vgg-weights", default=None, help="local VGG16 '_notop' weight file for SegNet's encoder")
    parser.add_argument("--out", default="study_full.json", help="JSON file of the measured figures")
    args = parser.parse_args(argv)

    import study_networks as sn

    import latent_widgets as lw  # before keras: it turns TensorFlow's oneDNN custom operations off (tensorflow#117700)
    from latent_widgets.model import zoo
    from latent_widgets.model.training import evaluate, train

    # isort: split
    import keras

    size = tuple(args.size)
    train_data = lw.load_camvid(args.camvid, "train", size=size)
    val_data = lw.load_camvid(args.camvid, "val", size=size)
    rows, results = [], {}
    for name in args.models:
        builder, kwargs = BUILDERS[name]
        kwargs = {k: args.width if k in ("width", "backbone_width") else v for k, v in kwargs.items()}
        weights = args.vgg_weights if name == "vgg_segnet" else None

        def build(kwargs=kwargs, builder=builder, weights=weights):
            extra = {"weights": weights} if weights else {}
            return getattr(zoo, builder)(train_data.n_classes, (*size, 3), **kwargs, **extra)

        keras.utils.set_random_seed(0)
        state = "ImageNet encoder, untrained decoder" if weights else "untrained"
        rows.append(sn.measure(name, state, sn.calibrated(build(), train_data), train_data, kind="untrained"))
        settings = sn.train_settings(args.epochs) | {"batch_size": args.batch_size}
        t0 = time.perf_counter()
        # With ImageNet weights, keep them: reinitialize=False starts from the built model's weights.
        res = train(build(), train_data, val_data, reinitialize=weights is None, **settings)
        print(f"{name}: {'loaded' if res.from_cache else 'trained'} in {time.perf_counter() - t0:.0f} s", flush=True)
        results[name] = res
        raw = evaluate(res.model, val_data, ignore_class=11)["mean_iou"]
        # As in study_networks.py: batch-norm statistics recomputed on training images, weights unchanged.
        model = sn.calibrated(res.model, train_data)
        ev = evaluate(model, val_data, ignore_class=11)
        row = sn.measure(
            name, f"trained {res.history.epochs} epochs", model, train_data, ev["mean_iou"], kind="trained"
        )
        rows.append(row | {"val_miou_raw": raw})
    print("\n".join(sn.table(rows)[0]))
    Path(args.out).write_text(
        json.dumps({"size": size, "width": args.width, "epochs": args.epochs, "rows": rows}, indent=1, default=str)
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
