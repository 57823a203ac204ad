"""Render docs/img/synthetic_grid.png: 12 embedded-default samples, image over mask.

Run from the repository root: ``.venv/bin/python docs/scripts/synthetic_grid.py``.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from latent_widgets import synthetic_road_scenes

ds = synthetic_road_scenes(240, size=(96, 128), seed=0)
picks = np.linspace(0, len(ds) - 1, 12).round().astype(int)
tiles = [np.concatenate([(ds.images[i] * 255).astype(np.uint8), ds.palette[ds.masks[i]]], axis=0) for i in picks]
rows = [np.concatenate(tiles[r * 6 : (r + 1) * 6], axis=1) for r in range(2)]
grid = np.concatenate(rows, axis=0)
out = Path("docs/img/synthetic_grid.png")
Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
print(f"wrote {out} (samples {picks.tolist()})")
