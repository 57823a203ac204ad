"""latent_widgets.latents.cells: per-cell points, the class under each cell, cell boxes and cell movement.

Every function is checked against plain Python loops over samples, rows and
columns written straight from the definitions (a cell (r, c) of an h x w grid
over an H x W mask covers rows floor(r H / h) .. floor((r + 1) H / h)).
"""

from __future__ import annotations

import numpy as np
import pytest

from latent_widgets.analysis import metrics
from latent_widgets.latents import cells

N, H, W, GRID, K = 5, 13, 17, (3, 4), 4  # H and W are not multiples of the grid


class RowReader:
    """A lazy row-indexable array that records what was read (a stand-in for Zarr)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: slice) -> np.ndarray:
        assert isinstance(key, slice), "read by row blocks only"
        self.reads.append((key.start, key.stop))
        return self.data[key].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was materialised")


def bounds(size: int, cells_: int, k: int) -> tuple[int, int]:
    return (k * size) // cells_, ((k + 1) * size) // cells_


def brute_classes(masks: np.ndarray, grid, n_classes: int, ignore=None) -> np.ndarray:
    h, w = grid
    out = np.zeros((len(masks), h, w), int)
    for n in range(len(masks)):
        for r in range(h):
            for c in range(w):
                y0, y1 = bounds(masks.shape[1], h, r)
                x0, x1 = bounds(masks.shape[2], w, c)
                counts = [0] * n_classes
                for v in masks[n, y0:y1, x0:x1].ravel():
                    if v != ignore:
                        counts[v] += 1
                best = max(range(n_classes), key=lambda k: (counts[k], -k))  # most votes, then lowest id
                out[n, r, c] = ignore if ignore is not None and sum(counts) == 0 else best
    return out


@pytest.fixture()
def latents(rng) -> np.ndarray:
    return rng.normal(size=(N, *GRID, 6)).astype(np.float32)


def test_cell_points_and_ids_are_sample_major_then_row_major(latents):
    pts, ids = cells.cell_points(latents), cells.cell_ids(N, GRID)
    assert pts.shape == (N * 12, 6) and ids.shape == (N * 12, 3) and ids.dtype == np.int64
    k = 0
    for n in range(N):
        for r in range(GRID[0]):
            for c in range(GRID[1]):
                assert ids[k].tolist() == [n, r, c]
                np.testing.assert_array_equal(pts[k], latents[n, r, c])
                k += 1
    # the latent shape (h, w, C) is accepted as the grid
    np.testing.assert_array_equal(cells.cell_ids(N, latents.shape[1:]), ids)


def test_cell_points_of_flattened_latents_with_their_grid(latents):
    np.testing.assert_array_equal(cells.cell_points(latents.reshape(N, -1), grid=GRID), cells.cell_points(latents))


def test_cell_points_and_pooled_stream_a_lazy_array(latents, monkeypatch):
    monkeypatch.setattr(cells, "_BLOCK_ITEMS", 2 * 12 * 6)  # two samples per block
    lazy = RowReader(latents)
    np.testing.assert_array_equal(cells.cell_points(lazy), latents.reshape(-1, 6))
    assert (0, 2) in lazy.reads and (4, 5) in lazy.reads
    lazy.reads.clear()
    np.testing.assert_allclose(cells.pooled(lazy), latents.mean((1, 2)), rtol=1e-5, atol=1e-7)
    assert max(b - a for a, b in lazy.reads) <= 2


def test_pooled_is_the_mean_over_the_grid(latents):
    out = cells.pooled(latents)
    assert out.shape == (N, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out, latents.mean(axis=(1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cells.pooled(latents.reshape(N, -1), grid=GRID), out, rtol=1e-6)


def test_cell_classes_equals_the_brute_force_vote(rng):
    masks = rng.integers(0, K, size=(N, H, W))
    got = cells.cell_classes(masks, GRID, K)
    assert got.shape == (N, *GRID) and got.dtype == np.int64
    np.testing.assert_array_equal(got, brute_classes(masks, GRID, K))
    # one (H, W) mask gives an (h, w) grid
    np.testing.assert_array_equal(cells.cell_classes(masks[2], GRID, K), got[2])


def test_cell_classes_with_an_ignored_label_and_an_all_void_cell(rng):
    masks = rng.integers(0, K + 1, size=(N, H, W))  # label K is void
    masks[1, :4, :4] = K  # cell (0, 0) of sample 1 covers rows 0..3, cols 0..3: all void
    got = cells.cell_classes(masks, GRID, K, ignore_index=K)
    np.testing.assert_array_equal(got, brute_classes(masks, GRID, K, ignore=K))
    assert got[1, 0, 0] == K
    # 255 as void, far outside the class range
    np.testing.assert_array_equal(
        cells.cell_classes(np.where(masks == K, 255, masks), GRID, K, ignore_index=255),
        np.where(got == K, 255, got),
    )


def test_cell_classes_ties_go_to_the_lowest_class():
    mask = np.array([[3, 1], [1, 3]])  # two 1s and two 3s
    assert cells.cell_classes(mask, (1, 1), 4).tolist() == [[1]]


def test_a_one_cell_grid_is_each_masks_majority_class(rng):
    masks = rng.integers(0, K, size=(N, H, W))
    majority = np.argmax(metrics.class_fractions(masks, K), axis=1)
    np.testing.assert_array_equal(cells.cell_classes(masks, (1, 1), K)[:, 0, 0], majority)


def test_cell_classes_streams_a_lazy_masks_array(rng, monkeypatch):
    masks = rng.integers(0, K, size=(N, H, W))
    monkeypatch.setattr(cells, "_BLOCK_ITEMS", 2 * H * W)
    lazy = RowReader(masks)
    np.testing.assert_array_equal(cells.cell_classes(lazy, GRID, K), brute_classes(masks, GRID, K))
    assert lazy.reads == [(0, 2), (2, 4), (4, 5)]


def test_cell_boxes_tile_the_image_and_match_cell_classes(rng):
    cover = np.zeros((H, W), int)
    masks = rng.integers(0, K, size=(1, H, W))
    classes = cells.cell_classes(masks, GRID, K)[0]
    for r in range(GRID[0]):
        for c in range(GRID[1]):
            y0, x0, y1, x1 = cells.cell_box(GRID, (H, W), r, c)
            assert (y0, y1) == bounds(H, GRID[0], r) and (x0, x1) == bounds(W, GRID[1], c)
            cover[y0:y1, x0:x1] += 1
            assert classes[r, c] == np.argmax(np.bincount(masks[0, y0:y1, x0:x1].ravel(), minlength=K))
    assert (cover == 1).all()
    assert cells.cell_box(GRID, (H, W, 3), 2, 3) == (8, 12, 13, 17)
    with pytest.raises(IndexError, match="outside the 3x4 grid"):
        cells.cell_box(GRID, (H, W), 3, 0)


def test_cell_movement_equals_the_loops(rng):
    path = rng.normal(size=(7, *GRID, 5)).astype(np.float32)
    m = cells.cell_movement(path)
    assert m.per_step.shape == (6, *GRID) and m.total.shape == GRID and m.grid == GRID
    for s in range(6):
        for r in range(GRID[0]):
            for c in range(GRID[1]):
                d = path[s + 1, r, c].astype(float) - path[s, r, c]
                assert m.per_step[s, r, c] == pytest.approx(np.sqrt((d**2).sum()), rel=1e-6)
    np.testing.assert_allclose(m.total, m.per_step.sum(0))
    # a linear path moves each cell by equal steps that add up to |B - A|
    a, b = path[0], path[-1]
    line = np.stack([a + t * (b - a) for t in np.linspace(0, 1, 12)])
    lm = cells.cell_movement(line)
    np.testing.assert_allclose(lm.total, np.linalg.norm(b.astype(float) - a, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(lm.per_step, np.broadcast_to(lm.total / 11, lm.per_step.shape), rtol=1e-4)
    top = m.top(3)
    assert [v for _, _, v in top] == sorted(m.total.ravel(), reverse=True)[:3]
    assert all(m.total[r, c] == v for r, c, v in top)


def test_flat_latents_are_refused_with_the_fix(latents):
    flat = latents.reshape(N, -1)
    for fn in (cells.cell_points, cells.pooled, cells.cell_movement):
        with pytest.raises(ValueError, match=r"flat \(N, D\).*grid=\(h, w\).*'flatten' or 'pooled'"):
            fn(flat)
    with pytest.raises(ValueError, match="do not split into a 5x5 grid"):
        cells.cell_points(flat, grid=(5, 5))
    with pytest.raises(ValueError, match=r"have grid \(3, 4\) but grid=\(2, 2\)"):
        cells.cell_points(latents, grid=(2, 2))
    with pytest.raises(ValueError, match="no grid"):
        cells.cell_ids(3, (72,))


def test_bad_masks_and_paths_are_refused(rng):
    masks = rng.integers(0, K, size=(2, 4, 5))
    with pytest.raises(ValueError, match="finer than the 4x5 masks"):
        cells.cell_classes(masks, (5, 5), K)
    with pytest.raises(ValueError, match=r"label 3 is outside 0\.\.2.*ignore_index"):
        cells.cell_classes(np.full((1, 4, 5), 3), (2, 2), 3)
    with pytest.raises(ValueError, match="at least 2 steps"):
        cells.cell_movement(np.zeros((1, 2, 2, 3)))


def test_upsample_cells_paints_each_cell_box(rng):
    values = rng.normal(size=GRID)
    up = cells.upsample_cells(values, (H, W))
    assert up.shape == (H, W)
    for r in range(GRID[0]):
        for c in range(GRID[1]):
            y0, x0, y1, x1 = cells.cell_box(GRID, (H, W), r, c)
            assert (up[y0:y1, x0:x1] == values[r, c]).all()
    steps = rng.normal(size=(3, *GRID))
    np.testing.assert_array_equal(cells.upsample_cells(steps, (H, W, 3))[1], cells.upsample_cells(steps[1], (H, W)))
    with pytest.raises(ValueError, match="finer than"):
        cells.upsample_cells(np.zeros((20, 2)), (H, W))
