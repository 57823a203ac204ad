"""latent_widgets.views.figures: the static matplotlib figures and their files."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from latent_widgets.data import colors
from latent_widgets.views import figures, movement_figures, render

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 200, 0]], np.uint8)


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def xlabels(fig: Figure) -> list[str]:
    return [ax.get_xlabel() for ax in fig.axes]


def test_annotated_scatter_labels_every_point_with_its_index(rng):
    pts = rng.normal(size=(25, 2))
    fig = figures.annotated_scatter(pts, title="PCA")
    assert isinstance(fig, Figure)
    assert texts(fig) == [str(i) for i in range(25)]
    assert fig.axes[0].get_title() == "PCA"
    # label positions are the points
    anchors = np.array([t.xy for t in fig.axes[0].texts])
    np.testing.assert_allclose(anchors, pts)


def test_annotated_scatter_label_switch(rng):
    pts = rng.normal(size=(10, 2))
    assert texts(figures.annotated_scatter(pts, labels=False)) == []
    assert texts(figures.annotated_scatter(pts, labels=list("abcdefghij")))[:2] == ["a", "b"]
    # many points: no labels unless asked for
    assert texts(figures.annotated_scatter(rng.normal(size=(500, 2)))) == []
    with pytest.raises(ValueError, match="labels"):
        figures.annotated_scatter(pts, labels=["x"])


def test_annotated_scatter_colours_categories_and_values(rng):
    pts = rng.normal(size=(12, 2))
    groups = np.repeat([0, 1, 2], 4)
    fig = figures.annotated_scatter(
        pts, values=groups, value_names=["road", "car", "sky"], colours=colors.hex_colours(PALETTE)
    )
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["road", "car", "sky"]
    # category 1 is drawn in the palette's colour 1
    coll = fig.axes[0].collections[1]
    np.testing.assert_allclose(coll.get_facecolor()[0][:3], [1.0, 0.0, 0.0])
    cont = figures.annotated_scatter(pts, values=rng.random(12))
    assert len(cont.axes) == 2  # the colour bar
    with pytest.raises(ValueError, match="values"):
        figures.annotated_scatter(pts, values=np.zeros(3))
    with pytest.raises(ValueError, match="points"):
        figures.annotated_scatter(np.zeros((3, 3)))


def test_annotated_scatter_draws_path_and_neighbours(rng):
    pts = rng.normal(size=(15, 2))
    path = np.linspace(pts[0], pts[1], 6)
    fig = figures.annotated_scatter(pts, path=path, neighbors=[0, 0, 4, 4, 1, 1], highlight=[0, 1])
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_xydata(), path)
    # point cloud, neighbour rings (3 distinct), path steps, endpoint rings
    assert [len(c.get_offsets()) for c in ax.collections] == [15, 3, 6, 2]


def test_interpolation_strip_layout():
    masks = np.zeros((5, 6, 8), int)
    masks[2:, :, 4:] = 1
    nb = np.array([3, 3, 9, 9, 11])
    fig = figures.interpolation_strip(
        masks,
        np.linspace(0, 1, 5),
        PALETTE,
        neighbor_masks=masks[::-1],
        neighbor_indices=nb,
        distances=np.arange(5.0),
        class_names=["bg", "red", "green"],
        title="A to B",
    )
    assert len(fig.axes) == 10
    labels = xlabels(fig)
    assert labels[:5] == ["α=0.00", "α=0.25", "α=0.50", "α=0.75", "α=1.00"]
    assert labels[5].startswith("#3") and "d=0" in labels[5] and labels[9].startswith("#11")
    # the decoded mask is drawn with the palette, pixel for pixel
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), render.colorize(masks[2], PALETTE))
    # legend lists only classes present
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["bg", "red"]


def test_interpolation_strip_with_endpoints_and_errors():
    masks = np.zeros((3, 4, 4), int)
    img = np.zeros((4, 4, 3))
    fig = figures.interpolation_strip(masks, [0, 0.5, 1], PALETTE, endpoint_images=(img, img))
    assert len(fig.axes) == 5 and xlabels(fig)[:2] == ["A", "B"]
    with pytest.raises(ValueError, match="alphas"):
        figures.interpolation_strip(masks, [0, 1], PALETTE)
    with pytest.raises(ValueError, match="neighbour"):
        figures.interpolation_strip(masks, [0, 0.5, 1], PALETTE, neighbor_masks=masks[:2])


class _Result(NamedTuple):
    alphas: np.ndarray
    masks: np.ndarray


class _Neighbors(NamedTuple):
    indices: np.ndarray
    distances: np.ndarray
    n_distinct: int


def test_strip_from_path_uses_the_neighbours_ground_truth(synthetic_small):
    ds = synthetic_small
    result = _Result(np.linspace(0, 1, 4), ds.masks[[0, 1, 2, 3]])
    nbrs = _Neighbors(np.array([[5], [6], [7], [8]]), np.ones((4, 1)), 4)
    fig = figures.strip_from_path(result, nbrs, ds, index_a=0, index_b=3)
    assert len(fig.axes) == 4 + 2 + 4
    assert xlabels(fig)[6].startswith("#5")
    bottom = [ax for ax in fig.axes if ax.get_xlabel().startswith("#")]
    np.testing.assert_array_equal(bottom[0].images[0].get_array(), render.colorize(ds.masks[5], ds.palette))
    assert len(figures.strip_from_path(result, None, ds).axes) == 4


def test_mask_triptych(synthetic_small):
    ds = synthetic_small
    pred = ds.masks[1].copy()
    pred[:10] = 0
    iou = np.full(ds.n_classes, np.nan)
    iou[0] = 0.5
    fig = figures.mask_triptych(
        ds.images[1], ds.masks[1], pred, ds.palette, class_names=ds.class_names, iou=iou, title="#1"
    )
    assert [ax.get_title() for ax in fig.axes] == ["image", "ground truth", "prediction"]
    assert "Sky (0.50)" in [t.get_text() for t in fig.legends[0].get_texts()]
    fig4 = figures.mask_triptych(ds.images[1], None, pred, ds.palette, error=True)
    assert [ax.get_title() for ax in fig4.axes] == ["image", "no ground truth", "prediction", "errors"]


def test_save_png_and_svg(tmp_path, rng):
    fig = figures.annotated_scatter(rng.normal(size=(8, 2)))
    out = figures.save(fig, tmp_path / "sub" / "scatter")
    assert [p.name for p in out] == ["scatter.png", "scatter.svg"]
    with Image.open(out[0]) as im:
        assert im.format == "PNG" and im.size[0] > 300
    svg = out[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert [p.name for p in figures.save(fig, tmp_path / "one.svg")] == ["one.svg"]
    assert [p.suffix for p in figures.save(fig, tmp_path / "x.png", formats=["pdf"])] == [".pdf"]
    with pytest.raises(ValueError, match="format"):
        figures.save(fig, tmp_path / "bad", formats=["gif"])


def test_saved_strip_shows_palette_colours(tmp_path):
    masks = np.ones((3, 16, 16), int)
    fig = figures.interpolation_strip(masks, [0, 0.5, 1], PALETTE)
    (png,) = figures.save(fig, tmp_path / "strip.png", dpi=80)
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    assert (pixels == [255, 0, 0]).all(axis=1).sum() > 100  # the red class tiles


def test_cell_movement_figure_paints_each_cells_movement_over_its_block(rng):
    from latent_widgets.latents.cells import cell_box, cell_movement

    path = rng.normal(size=(5, 3, 4, 6))
    m = cell_movement(path)
    image = rng.random((13, 17, 3))  # not a multiple of the 3x4 grid
    fig = movement_figures.cell_movement_figure(image, m, title="38 -> 138")
    ax, cbar = fig.axes
    heat = np.asarray(ax.images[-1].get_array())
    assert heat.shape == (13, 17)
    for r in range(3):
        for c in range(4):
            y0, x0, y1, x1 = cell_box((3, 4), (13, 17), r, c)
            assert np.allclose(heat[y0:y1, x0:x1], m.total[r, c])
    assert ax.images[-1].get_alpha() == 0.5 and ax.images[-1].get_clim() == (0.0, m.total.max())
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.3g}" for v in m.total.ravel())
    assert cbar.get_ylabel() == "summed L2 movement per cell" and ax.get_title() == "38 -> 138"
    # one step, into given axes, on a given scale
    host = figures.PaperFigure()
    target = host.add_subplot()
    assert movement_figures.cell_movement_figure(image, m, step=2, ax=target, vmax=10.0, annotate=False) is host
    np.testing.assert_allclose(target.images[-1].get_array()[0, 0], m.per_step[2, 0, 0])
    assert target.images[-1].get_clim() == (0.0, 10.0) and len(target.texts) == 0
    assert host.axes[-1].get_ylabel() == "L2 movement per cell, step 2→3"
    with pytest.raises(IndexError, match="outside the path's 4 steps"):
        movement_figures.cell_movement_figure(image, m, step=4)


def test_cell_movement_strip_draws_every_step_on_one_scale(rng):
    from latent_widgets.latents.cells import cell_movement

    m = cell_movement(rng.normal(size=(4, 2, 3, 5)))
    masks = rng.integers(0, 3, size=(3, 8, 12))
    fig = movement_figures.cell_movement_strip(
        m, backgrounds=render.colorize(masks, PALETTE), alphas=np.linspace(0, 1, 4)
    )
    tiles = fig.axes[:3]
    assert [ax.get_xlabel() for ax in tiles] == ["α 0.00→0.33", "α 0.33→0.67", "α 0.67→1.00"]
    for s, ax in enumerate(tiles):
        assert len(ax.images) == 2  # the background, then the heatmap
        np.testing.assert_array_equal(ax.images[0].get_array(), render.colorize(masks[s], PALETTE))
        np.testing.assert_allclose(ax.images[1].get_array()[-1, -1], m.per_step[s, -1, -1])
        assert ax.images[1].get_clim() == (0.0, m.per_step.max())
    assert fig.axes[-1].get_ylabel() == "L2 per cell"
    with pytest.raises(ValueError, match="got 3 alphas for a path of 4 steps"):
        movement_figures.cell_movement_strip(m, alphas=[0, 0.5, 1])


def test_confusion_figure_drops_the_ignored_row_and_keeps_its_column():
    from latent_widgets.analysis.failures import selection_report

    truth = np.array([[[0, 1, 2, 2]], [[1, 1, 0, 2]]])
    pred = np.array([[[0, 2, 2, 1]], [[1, 0, 0, 2]]])
    names = ("a", "b", "void")
    report = selection_report(truth, pred, [0, 1], 3, class_names=names, ignore_index=2)
    assert report.ignore_index == 2
    ax = figures.confusion_figure(report).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(names)
    # The image is the kept rows of the normalised matrix: "b" is predicted as "void" once in 3 pixels.
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, report.normalized()[:2])
    assert shown[1, 2] == pytest.approx(1 / 3)
    # Without ignore_index every class keeps its row.
    full = selection_report(truth, pred, [0, 1], 3, class_names=names)
    assert len(figures.confusion_figure(full).axes[0].get_yticklabels()) == 3
