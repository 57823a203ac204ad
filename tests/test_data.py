"""Datasets: CamVid on disk, any folder pair, the synthetic default, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latent_widgets import (
    CAMVID_CLASSES,
    DatasetError,
    SegmentationDataset,
    load_camvid,
    load_folder,
    synthetic_road_scenes,
)

# From ../shared/camvid/README.md: pixel count per class over trainannot/.
README_COUNTS = [
    10682767,
    14750079,
    623349,
    20076880,
    2845085,
    6166762,
    743859,
    714595,
    3719877,
    405385,
    184967,
    2503995,
]


@pytest.fixture(scope="module")
def camvid_train_full(camvid_root: Path) -> SegmentationDataset:
    return load_camvid(camvid_root, "train", progress=False)


def test_camvid_train_counts_names_and_groups(camvid_train_full: SegmentationDataset) -> None:
    ds = camvid_train_full
    assert len(ds) == 367
    assert ds.names[0] == "0001TP_006690.png"
    assert list(ds.names) == sorted(ds.names)
    assert ds.images.shape == (367, 360, 480, 3) and ds.images.dtype == np.float32
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
    assert ds.masks.shape == (367, 360, 480)
    assert ds.class_pixel_counts().tolist() == README_COUNTS
    assert ds.class_names == CAMVID_CLASSES
    sizes = np.bincount(ds.groups).tolist()
    assert sizes == [62, 101, 204]
    assert ds.group_names == ("0001TP", "0006R0", "0016E5")
    # group ids follow index order: the first sequence is samples 0..61
    assert (ds.groups[:62] == 0).all() and ds.groups[62] == 1


def test_camvid_leaves_unlabelled_out_of_the_scores(camvid_root: Path) -> None:
    import dataclasses

    from latent_widgets.data.camvid import CAMVID_IGNORE_INDEX

    ds = load_camvid(camvid_root, "val", size=(24, 32), progress=False)
    assert ds.ignore_index == CAMVID_IGNORE_INDEX == ds.class_names.index("Unlabelled") == 11
    # subsets and lazy views keep it
    assert ds[[2, 0]].ignore_index == 11 and ds[:3].ignore_index == 11
    assert load_camvid(camvid_root, "val", size=(24, 32), progress=False, lazy=True).ignore_index == 11
    # the summary says so; the content hash is the data's alone (caches keyed by it stay valid)
    unlabelled_line = next(line for line in ds.summary().splitlines() if line.startswith("Unlabelled"))
    assert "ignore_index" in unlabelled_line
    assert "ignore_index" not in ds.summary().replace(unlabelled_line, "")
    assert dataclasses.replace(ds, ignore_index=None).content_hash() == ds.content_hash()


def test_camvid_pixels_match_the_files(camvid_root: Path, camvid_train_full: SegmentationDataset) -> None:
    i = 138
    name = camvid_train_full.names[i]
    raw = np.asarray(Image.open(camvid_root / "train" / name).convert("RGB"))
    np.testing.assert_allclose(camvid_train_full.images[i], raw / 255.0, atol=1e-6)
    raw_mask = np.asarray(Image.open(camvid_root / "trainannot" / name))
    np.testing.assert_array_equal(camvid_train_full.masks[i], raw_mask)


def test_camvid_val_and_resize(camvid_root: Path) -> None:
    val = load_camvid(camvid_root, "val", size=(96, 128), progress=False)
    assert len(val) == 101
    assert val.images.shape == (101, 96, 128, 3)
    # nearest resize keeps label ids valid (no averaged, in-between ids)
    assert set(np.unique(val.masks)) <= set(range(12))
    ref = np.asarray(Image.open(camvid_root / "valannot" / val.names[0]).resize((128, 96), Image.NEAREST))
    np.testing.assert_array_equal(val.masks[0], ref)


def test_camvid_unknown_split(camvid_root: Path) -> None:
    with pytest.raises(DatasetError, match=r"split 'dev' does not exist.*choose one of"):
        load_camvid(camvid_root, "dev")


def _write_pair(root: Path, name: str, size=(8, 6), value: int = 1, mask_size=None) -> None:
    (root / "img").mkdir(exist_ok=True)
    (root / "ann").mkdir(exist_ok=True)
    w, h = size
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(root / "img" / name)
    mw, mh = mask_size or size
    Image.fromarray(np.full((mh, mw), value, np.uint8)).save(root / "ann" / name)


def test_dataset1_layout(tmp_path: Path) -> None:
    for split in ("train", "test"):
        d = tmp_path / f"images_prepped_{split}"
        a = tmp_path / f"annotations_prepped_{split}"
        d.mkdir()
        a.mkdir()
        for k in range(3):
            Image.fromarray(np.full((6, 8, 3), k, np.uint8)).save(d / f"0016E5_{k:05d}.png")
            Image.fromarray(np.full((6, 8), k, np.uint8)).save(a / f"0016E5_{k:05d}.png")
    ds = load_camvid(tmp_path, "test", progress=False)
    assert len(ds) == 3 and ds.masks[2].max() == 2
    with pytest.raises(DatasetError, match=r"split 'val' does not exist in the image-segmentation-keras"):
        load_camvid(tmp_path, "val")


def test_load_folder_pairs_by_stem_and_groups(tmp_path: Path) -> None:
    for name, v in (("b_1.png", 2), ("a_1.png", 1), ("a_2.png", 0)):
        _write_pair(tmp_path, name, value=v)
    ds = load_folder(
        tmp_path / "img", tmp_path / "ann", ("x", "y", "z"), group_fn=lambda n: n.split("_")[0], progress=False
    )
    assert ds.names == ("a_1.png", "a_2.png", "b_1.png")
    assert ds.groups.tolist() == [0, 0, 1]
    assert [int(m.max()) for m in ds.masks] == [1, 0, 2]
    # without class names, the classes are inferred from the largest id
    assert load_folder(tmp_path / "img", tmp_path / "ann", progress=False).n_classes == 3


# ---------------------------------------------------------------- bad input


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"images folder .*nope does not exist; check the path"):
        load_folder(tmp_path / "nope", tmp_path)
    with pytest.raises(DatasetError, match=r"CamVid folder .*nope does not exist"):
        load_camvid(tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"is not a CamVid folder: expected train/ and trainannot/"):
        load_camvid(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    with pytest.raises(DatasetError, match=r"images folder .*img holds no image files"):
        load_folder(tmp_path / "img", tmp_path / "ann")


def test_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a.png")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "img" / "lonely.png")
    with pytest.raises(DatasetError, match=r"image .*lonely\.png has no mask in .*ann.*add the masks"):
        load_folder(tmp_path / "img", tmp_path / "ann")
    (tmp_path / "img" / "lonely.png").unlink()
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "ann" / "orphan.png")
    with pytest.raises(DatasetError, match=r"mask .*orphan\.png has no image in .*img"):
        load_folder(tmp_path / "img", tmp_path / "ann")


def test_size_mismatch_between_image_and_mask(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a.png", size=(8, 6), mask_size=(4, 3))
    with pytest.raises(DatasetError, match=re.escape("is 8x6 but its mask") + r".*4x3.*pass size=\(H, W\)"):
        load_folder(tmp_path / "img", tmp_path / "ann")
    # asking for a size resizes both and fixes it
    ds = load_folder(tmp_path / "img", tmp_path / "ann", size=(6, 8), progress=False)
    assert ds.masks.shape == (1, 6, 8)


def test_mask_value_outside_class_range(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a.png", value=1)
    _write_pair(tmp_path, "b.png", value=12)
    with pytest.raises(DatasetError, match=r"mask .*b\.png holds class id 12 but only 12 classes"):
        load_folder(tmp_path / "img", tmp_path / "ann", CAMVID_CLASSES)


def test_unreadable_image(tmp_path: Path) -> None:
    _write_pair(tmp_path, "a.png")
    (tmp_path / "img" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*a\.png.*not a readable image"):
        load_folder(tmp_path / "img", tmp_path / "ann")


def test_container_validation() -> None:
    imgs = np.zeros((2, 4, 4, 3), np.float32)
    with pytest.raises(DatasetError, match=r"masks must have shape \(N, H, W\)"):
        SegmentationDataset(imgs, np.zeros((2, 4, 5), np.uint8), ("a", "b"), ("c",))
    with pytest.raises(DatasetError, match=r"sample 1 \('b'\) has values in \[0, 3\] but there are 2 classes"):
        masks = np.zeros((2, 4, 4), np.uint8)
        masks[1, 0, 0] = 3
        SegmentationDataset(imgs, masks, ("a", "b"), ("c", "d"))
    with pytest.raises(DatasetError, match=r"images must have shape \(N, H, W, 3\)"):
        SegmentationDataset(np.zeros((2, 4, 4), np.float32), np.zeros((2, 4, 4), np.uint8), ("a", "b"), ("c",))
    with pytest.raises(DatasetError, match=r"masks must hold integer class ids"):
        SegmentationDataset(imgs, np.zeros((2, 4, 4), np.float32), ("a", "b"), ("c",))
    masks = np.zeros((2, 4, 4), np.uint8)
    assert SegmentationDataset(imgs, masks, ("a", "b"), ("c", "d"), ignore_index=np.int64(1)).ignore_index == 1
    with pytest.raises(DatasetError, match=r"ignore_index 2 is not a class id \(0\.\.1\)"):
        SegmentationDataset(imgs, masks, ("a", "b"), ("c", "d"), ignore_index=2)
    with pytest.raises(DatasetError, match=r"ignore_index must be a class id"):
        SegmentationDataset(imgs, masks, ("a", "b"), ("c", "d"), ignore_index="d")


def test_indexing_and_subsets(synthetic_small: SegmentationDataset) -> None:
    ds = synthetic_small
    s = ds[-1]
    assert s.index == len(ds) - 1 and s.name == ds.names[-1]
    sub = ds[[3, 1]]
    assert sub.names == (ds.names[3], ds.names[1])
    np.testing.assert_array_equal(sub.masks[0], ds.masks[3])
    assert len(ds[ds.groups == 0]) == int((ds.groups == 0).sum())
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


def test_class_fractions_against_loop(synthetic_small: SegmentationDataset) -> None:
    ds = synthetic_small[:5]
    ref = np.array([[np.mean(m == c) for c in range(ds.n_classes)] for m in ds.masks])
    np.testing.assert_allclose(ds.class_fractions(), ref)


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_per_seed() -> None:
    a = synthetic_road_scenes(12, size=(48, 64), seed=3, frames_per_drive=6)
    b = synthetic_road_scenes(12, size=(48, 64), seed=3, frames_per_drive=6)
    c = synthetic_road_scenes(12, size=(48, 64), seed=4, frames_per_drive=6)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_synthetic_every_class_over_100_samples() -> None:
    ds = synthetic_road_scenes(100, size=(96, 128), seed=0)
    present = (ds.class_fractions() > 0).any(axis=0)
    assert present.all(), [ds.class_names[c] for c in np.flatnonzero(~present)]
    # Road scenes: sky on top, road at the bottom centre, as in CamVid
    top = np.bincount(ds.masks[:, :5].ravel(), minlength=12)
    assert top.argmax() in (0, 1, 5)  # sky, building or tree above
    assert np.bincount(ds.masks[:, 70:80, 50:78].ravel(), minlength=12).argmax() == 3


def test_synthetic_drives_are_groups_of_similar_frames() -> None:
    ds = synthetic_road_scenes(60, size=(48, 64), seed=0, frames_per_drive=20)
    assert np.bincount(ds.groups).tolist() == [20, 20, 20]
    flat = ds.masks.reshape(len(ds), -1)
    same = np.mean([np.mean(flat[i] == flat[i + 1]) for i in range(19)])
    cross = np.mean([np.mean(flat[i] == flat[20 + i]) for i in range(19)])
    assert same > cross + 0.1, (same, cross)


def test_synthetic_bad_arguments() -> None:
    with pytest.raises(DatasetError, match="n must be at least 1"):
        synthetic_road_scenes(0)
    with pytest.raises(DatasetError, match=r"size must be at least \(16, 16\)"):
        synthetic_road_scenes(2, size=(8, 8))
