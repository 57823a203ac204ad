"""Scale: 2k -> 100k samples from disk to the map (issue 12).

Each goal is the project against a floor measured in the same run:

- ``encode_vs_raw``: streaming a lazy synthetic dataset (64x64, narrow SegNet)
  into a Zarr latent store vs the raw compiled encoder over the same batches
  (read ``images[rows]``, encode, drop); median of repeats.
- ``encode_rss_growth``: peak RSS above the process baseline (model built,
  dataset constructed, nothing encoded yet) while encoding 20k samples into
  a store over the same for 2k (each in a fresh process, median of 3);
  beside it, one run per size measured after a compiled warm-up encode and
  one of the in-memory encode (the control: its ratio shows growth with N);
  the full run adds one 100k encode's peak and seconds.
- ``tsne_vs_raw_100k``: the library's t-SNE of 100k PCA-50 points vs raw
  openTSNE with the same settings.
- ``map_100k_vs_raw``, ``map_100k_vs_bqplot_gl``: panning fps of the
  explorer's map of 100k samples in Chromium (software WebGL) over a bare
  jupyter-scatter widget and over bqplot-gl's ScatterGL of the same points,
  one browser, one Voilà server, same run.
- ``first_maps_vs_warm``: PCA + t-SNE + UMAP of 367 x 6144 latents in a fresh
  interpreter over the same in a warm one.

The 100k map needs 100k encoded samples: the script encodes them first into
the user's latent store (``~/.cache/latent-widgets`` or
``$LATENT_WIDGETS_CACHE_DIR``), timed, which also gives the encode cost at
100k; the Voilà kernel then opens that store.

Run from the repository root: ``python benchmarks/bench_scale.py``
(``--quick``: 2k/20k only, no 100k map or t-SNE). Ends with one line per goal;
exits 0 either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests")]

from _scale_browser import BQPLOT_FOR_GL, GOAL_VS_BQPLOT_GL, GOAL_VS_RAW, map_fps  # noqa: E402
from _scale_encode import encode_rss_growth, encode_rss_once, encode_vs_raw, rss_report  # noqa: E402
from _scale_projection import first_maps_vs_warm, tsne_vs_raw_100k  # noqa: E402


def encode_100k(n: int) -> float:
    """Encode the browser benchmark's ``n`` lazy scenes into the store (what its notebook opens); seconds."""
    from browser_harness import scale_notebook_cells

    os.environ["QUERY_STRING"] = f"n={n}"
    t0 = time.perf_counter()
    exec(scale_notebook_cells(n)[0], {})  # the notebook's own first cell: data, model, encode_dataset
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k and 20k only: no 100k t-SNE, no 100k map")
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args(argv)
    lines: list[str] = []

    print("== encode (lazy synthetic 64x64, narrow SegNet, into a Zarr store)", flush=True)
    speed = encode_vs_raw(2000, (64, 64), 3)
    print(
        f"  2k: raw {speed['raw_s']:.1f} s ({1e3 * speed['raw_s_per_sample']:.2f} ms/sample), "
        f"store {speed['store_s']:.1f} s ({1e3 * speed['store_s_per_sample']:.2f} ms/sample), median of 3",
        flush=True,
    )
    lines.append(f"encode_vs_raw = {speed['ratio']:.3f} (goal <= 1.10)")
    rss = encode_rss_growth(2000, 20000, (64, 64))
    print("\n".join("  " + line for line in rss_report(rss)), flush=True)
    for mode in ("warm", "memory"):
        other = encode_rss_growth(2000, 20000, (64, 64), repeats=1, mode=mode)
        print("\n".join("  " + line for line in rss_report(other)), flush=True)
    lines.append(f"encode_rss_growth = {rss['ratio']:.3f} (goal <= 1.2)")
    if not args.quick:
        big = encode_rss_once(args.n, (64, 64))
        print(
            f"  cold {big['n']}: +{big['growth_mb']:.1f} MiB peak RSS over {big['baseline_mb']:.0f} MiB (one process; "
            f"its images would be {big['n'] * 64 * 64 * 3 * 4 / 2**30:.1f} GiB), "
            f"{big['seconds']:.1f} s ({1e3 * big['s_per_sample']:.2f} ms/sample)",
            flush=True,
        )

    print("== first maps (367 x 6144: PCA + t-SNE + UMAP)", flush=True)
    first = first_maps_vs_warm()
    print(
        f"  first-ever (empty numba cache) {first['first_ever_s']:.1f} s, fresh {first['fresh_s']:.1f} s, "
        f"warm {first['warm_s']:.1f} s",
        flush=True,
    )
    lines.append(f"first_maps_vs_warm = {first['first_maps_vs_warm']:.2f} (goal <= 1.5)")

    if not args.quick:
        print(f"== t-SNE of {args.n} x 50 (openTSNE)", flush=True)
        t = tsne_vs_raw_100k(args.n, repeats=1)
        for m, row in t["seconds_by_n"].items():
            print(f"  {m}: {row['seconds']:.1f} s ({row['seconds_per_1000']:.2f} s per 1000)", flush=True)
        print(
            f"  library {t['library_s']:.1f} s, raw openTSNE {t['raw_s']:.1f} s (one run each, n_jobs={t['n_jobs']}, "
            f"same map: {t['same_map']})",
            flush=True,
        )
        lines.append(f"tsne_vs_raw_100k = {t['tsne_vs_raw_100k']:.2f} (goal <= 1.10)")

        print(f"== the map of {args.n} samples in Chromium", flush=True)
        s = encode_100k(args.n)
        print(f"  {args.n} lazy 32x32 scenes encoded into the store (or its finished store opened): {s:.0f} s")
        out = map_fps(args.n)
        r = out["results"][args.n]
        e, b, g = r["explorer"], r["bare"], r["scattergl"]
        for name, m in (("explorer", e), ("bare jupyter-scatter", b), ("bqplot-gl ScatterGL", g)):
            print(f"  {name}: {m['fps']:.1f} fps panning, first draw {m['first_draw_s']:.2f} s", flush=True)
        lines.append(f"map_100k_vs_raw = {out['map_100k_vs_raw']:.2f} (goal >= {GOAL_VS_RAW})")
        lines.append(f"map_100k_vs_bqplot_gl = {out['map_100k_vs_bqplot_gl']:.2f} (goal >= {GOAL_VS_BQPLOT_GL})")
        if g["first_draw_s"] != g["first_draw_s"]:  # nan: the baseline drew nothing
            print(
                "  ScatterGL drew no point, so there is no baseline fps: its server runs bqplot "
                f"{BQPLOT_FOR_GL} (bqplot-gl 0.1.1's front end fails on 0.13.1); see the browser console"
            )

    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
