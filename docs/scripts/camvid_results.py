"""Write docs/results.md and docs/img/camvid_*.png from the longer CamVid runs.

Needs the two models trained by ``docs/scripts/train_camvid.py`` (SegNet and
DeepLabv3+, width 0.25, 96x128, 20 epochs) in the same cache folder; they
load in seconds. Run from the repository root::

    LATENT_WIDGETS_CACHE_DIR=.cache .venv/bin/python docs/scripts/camvid_results.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import matplotlib

matplotlib.use("Agg")
import numpy as np

import latent_widgets as lw
from latent_widgets.analysis import interpolation, map_quality, metrics, neighbors, projection
from latent_widgets.model import training, zoo
from latent_widgets.model.training import evaluate
from latent_widgets.study import STUDY_PATH, STUDY_STEPS, findings
from latent_widgets.views import figures

CAMVID = Path(os.environ.get("LATENT_WIDGETS_CAMVID", REPO.parent / "shared" / "camvid"))
SIZE, WIDTH, EPOCHS = (96, 128), 0.25, 20
(A, B), STEPS = STUDY_PATH, STUDY_STEPS
IMG = REPO / "docs" / "img"


def main() -> None:
    train_data = lw.load_camvid(CAMVID, "train", size=SIZE)
    val_data = lw.load_camvid(CAMVID, "val", size=SIZE)
    nets = {
        "segnet": zoo.segnet(12, (*SIZE, 3), width=WIDTH),
        "deeplabv3plus": zoo.deeplabv3_plus(12, (*SIZE, 3), backbone_width=WIDTH),
    }
    names = {"segnet": "SegNet", "deeplabv3plus": "DeepLabv3+"}
    out = [
        "# Results on CamVid",
        "",
        f"SegNet and DeepLabv3+ at width {WIDTH}, trained {EPOCHS} epochs on the 367 CamVid training",
        f"images at {SIZE[0]}x{SIZE[1]} on 2 CPU cores (`docs/scripts/train_camvid.py`: batch 8, Adam 1e-3,",
        "class-balanced cross-entropy, horizontal flips, *Unlabelled* ignored), then analysed with",
        "`docs/scripts/camvid_results.py`, which writes this page. The study used full-width networks",
        "at 288x384: the figures here are the same analysis on smaller networks.",
        "",
    ]
    for key, net in nets.items():
        result = training.train(
            net, train_data, val_data, epochs=EPOCHS, class_weighting="balanced", ignore_class=11, seed=0
        )
        if not result.from_cache:
            print(f"warning: {key} was trained now, not loaded", file=sys.stderr)
        ev = evaluate(result.model, val_data, ignore_class=11)
        lm = lw.LatentModel.from_model(result.model)
        enc = lm.encode_dataset(train_data)
        latents = enc.latents
        out += [
            f"## {names[key]}",
            "",
            f"Validation (101 images): mean IoU **{ev['mean_iou']:.3f}** over 11 classes, pixel accuracy "
            f"{ev['pixel_accuracy']:.3f} (always predicting the majority class: {ev['majority_accuracy']:.3f}). "
            f"Latent {lm.latent_shape} = {int(np.prod(lm.latent_shape))} floats per sample"
            + (f"; skips {list(lm.skip_shapes)}." if lm.has_skips else "."),
            "",
        ]

        rows = map_quality.quality_table(latents, train_data.groups, include_latent=True)
        out += [
            "### Maps of the 367 training latents",
            "",
            "Spread = mean nearest-neighbour distance / median pairwise distance (scale-free);",
            "trustworthiness and k-NN preservation against the flattened latents; separation of",
            "the three video sequences (silhouette, 10-NN group agreement, and its chance level).",
            "",
            map_quality.format_table(rows),
            "",
        ]
        maps = {m: projection.project(latents, m) for m in ("tsne", "pca", "umap")}
        for m in ("tsne", "pca"):
            fig = figures.annotated_scatter(
                maps[m],
                labels=True,
                values=train_data.groups,
                categorical=True,
                value_names=train_data.group_names,
                highlight=[A, B],
                title=f"{names[key]}: {m.upper()} of the CamVid train latents",
            )
            figures.save(fig, IMG / f"camvid_{key}_{m}.png")
            out += [f"![{names[key]} {m}](img/camvid_{key}_{m}.png)", ""]

        alphas = interpolation.steps(STEPS)
        ends = dict(
            encoding_a=lm.encode(train_data.images[A : A + 1]), encoding_b=lm.encode(train_data.images[B : B + 1])
        )
        index = neighbors.LatentIndex().fit(latents)
        policies = interpolation.SKIP_POLICIES if lm.has_skips else ("image",)
        paths = {}
        for policy in policies:
            paths[policy] = interpolation.decode_path(
                lm, train_data.images[A], train_data.images[B], alphas, skip_policy=policy, **ends
            )
        nn = neighbors.path_neighbors(paths["image"].latents, index)
        out += [f"### {STEPS}-step interpolation {A} -> {B}", ""]
        for policy, p in paths.items():
            suffix = f"_{policy}" if lm.has_skips else ""
            fig = figures.strip_from_path(
                p,
                nn,
                train_data,
                index_a=A,
                index_b=B,
                title=f"{names[key]}, linear path {A} -> {B}" + (f', skip_policy="{policy}"' if lm.has_skips else ""),
            )
            figures.save(fig, IMG / f"camvid_{key}_strip{suffix}.png")
            out += [f"![{names[key]} strip {policy}](img/camvid_{key}_strip{suffix}.png)", ""]
        if lm.has_skips:
            out += [
                "| skip policy | smoothness (mean IoU of consecutive masks) | mean IoU vs `image` |",
                "|---|---|---|",
            ]
            for policy, p in paths.items():
                smooth = np.nanmean(metrics.consecutive_iou(p.masks, 12))
                vs = metrics.mean_iou(p.masks, paths["image"].masks, 12)
                out.append(f"| `{policy}` | {smooth:.3f} | {vs:.3f} |")
            out.append("")
        rows = findings.study_findings(
            groups=train_data.groups, maps=maps, path=paths["image"], path_neighbors=nn, n_classes=12, network=key
        )
        out += [findings.findings_markdown(rows, title=f"Findings: {names[key]}"), ""]
        matplotlib.pyplot.close("all")
        print(f"{key} done", flush=True)
    (REPO / "docs" / "results.md").write_text("\n".join(out))
    print("wrote docs/results.md")


if __name__ == "__main__":
    main()
