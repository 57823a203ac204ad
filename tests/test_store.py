"""The latent store: what it holds, resuming, refusing other models and data, lazy skips."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import REPO
from toy import ToyLatentModel

from latent_widgets.core.hashing import content_hash
from latent_widgets.latents.chunk_records import ChunkRecords
from latent_widgets.latents.encode import encode_to_store
from latent_widgets.latents.lazy_skips import LazySkipColumn
from latent_widgets.latents.store import LatentStore
from latent_widgets.latents.store_errors import LatentStoreError, LatentStoreWarning
from latent_widgets.latents.stored_array import StoredArray
from latent_widgets.model.encode_options import EncodeOptions

# Metadata files of a Zarr format 3 (zarr.json) or 2 (.zarray, .zattrs, .zgroup) store.
_METADATA = {"zarr.json", ".zarray", ".zattrs", ".zgroup"}


class RecordingImages:
    """A lazy array-like stand-in: records the rows read, and can fail when asked for given rows."""

    def __init__(self, images: np.ndarray, fail_at: int | None = None) -> None:
        self._images = images
        self.shape, self.dtype = images.shape, images.dtype
        self.fail_at = fail_at
        self.reads: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, rows):
        if isinstance(rows, slice) and rows.start == self.fail_at:
            raise RuntimeError(f"reader failed at row {rows.start}")
        if isinstance(rows, slice):
            self.reads.append((rows.start, rows.stop))
        return self._images[rows]


class LazyDataset:
    """What encode_dataset needs of a lazy dataset, until the real one lands."""

    is_lazy = True

    def __init__(self, images: np.ndarray, tag: str = "a", fail_at: int | None = None) -> None:
        self.images = RecordingImages(images, fail_at)
        self._tag = tag

    def __len__(self) -> int:
        return len(self.images)

    def content_hash(self) -> str:
        return content_hash("lazy-stand-in", self._tag)


def toy_encoder(model: ToyLatentModel, calls: list[int] | None = None):
    def encode(x: np.ndarray) -> tuple[np.ndarray, ...]:
        if calls is not None:
            calls.append(len(x))
        enc = model.encode(x)
        return (enc.latents, *enc.skips)

    return encode


def fill(model, images, path, *, calls=None, model_hash="toy", data_hash="ds", progress=False, **kw) -> LatentStore:
    kw.setdefault("batch_size", 4)
    kw.setdefault("chunk_rows", 8)
    return encode_to_store(
        toy_encoder(model, calls),
        images,
        path,
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=model.latent_shape,
        skip_shapes=model.skip_shapes,
        options=EncodeOptions(**kw),
        progress=progress,
    )


# ----------------------------------------------------------------------------- contents and reading


def test_store_holds_the_encoders_latents_and_reads_like_numpy(model, ds, tmp_path: Path) -> None:
    want = model.encode(ds.images).latents
    store = fill(model, ds.images, tmp_path / "z.zarr", batch_size=5, chunk_rows=10)
    assert store.is_complete and store.n_chunks == 3 and store.chunk_rows == 10
    z = store.latents
    assert isinstance(z, StoredArray)
    assert len(z) == 24 and z.shape == want.shape and z.dtype == np.float32 and z.ndim == 4
    np.testing.assert_allclose(np.asarray(z), want, rtol=1e-6)
    mask = np.arange(24) % 3 == 0
    for key in (7, -1, slice(3, 17), slice(None, None, 5), slice(20, 2, -4), [5, 0, 5, -2], np.array([], int), mask):
        np.testing.assert_allclose(z[key], want[key], rtol=1e-6, err_msg=str(key))
    np.testing.assert_allclose(z[2:4, 1, :, 3], want[2:4, 1, :, 3], rtol=1e-6)
    for bad in (24, -25, [0, 24], np.ones(5, bool)):
        with pytest.raises(IndexError):
            z[bad]
    blocks = list(store.iter_blocks(7))
    assert [(s.start, s.stop) for s, _ in blocks] == [(0, 7), (7, 14), (14, 21), (21, 24)]
    np.testing.assert_allclose(np.concatenate([b for _, b in blocks]), want, rtol=1e-6)
    with pytest.raises((ValueError, PermissionError), match="read-only"):
        z.zarr[0] = 0.0


def test_attributes_record_hashes_shapes_and_version(model, ds, tmp_path: Path) -> None:
    import zarr

    path = tmp_path / "z.zarr"
    fill(model, ds.images, path, model_hash="m1", data_hash="d1")
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    assert attrs["format"] == "latent-widgets/latent-store" and attrs["version"] == 1
    assert (attrs["model_hash"], attrs["data_hash"], attrs["n"]) == ("m1", "d1", 24)
    assert attrs["latent_shape"] == [12, 16, 8] and attrs["chunk_rows"] == 8 and attrs["stored_skips"] is False
    latents = zarr.open_group(str(path), mode="r")["latents"]
    assert latents.dtype == np.float32 and latents.chunks == (8, 12, 16, 8)
    # No compression: the chunk files hold the raw float32 bytes, 3 chunks of 8 rows.
    data = [f for f in (path / "latents").rglob("*") if f.is_file() and f.name not in _METADATA]
    assert len(data) == 3 and all(f.stat().st_size == 8 * 12 * 16 * 8 * 4 for f in data)


def test_default_chunk_is_a_multiple_of_the_batch(model, ds, tmp_path: Path) -> None:
    store = fill(model, ds.images, tmp_path / "z.zarr", batch_size=5, chunk_rows=None)
    assert store.chunk_rows % 5 == 0 and store.chunk_rows >= 24  # 24 small rows: one chunk
    with pytest.raises(LatentStoreError, match="multiple of batch_size=4"):
        fill(model, ds.images, tmp_path / "y.zarr", batch_size=4, chunk_rows=6)


# ----------------------------------------------------------------------------- resuming


def test_interrupted_encode_resumes_with_only_the_missing_chunks(model, ds, tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    failing = RecordingImages(ds.images, fail_at=12)  # the 2nd batch of chunk 1 (rows 8-16)
    with pytest.raises(RuntimeError, match="reader failed at row 12"):
        fill(model, failing, path)
    store = LatentStore.open(path)
    assert store.chunks_done().tolist() == [True, False, False]
    assert not store.is_complete and store.rows_done == 8
    with pytest.raises(LatentStoreError, match="incomplete: 1 of 3 chunks"):
        _ = store.latents

    again, calls = RecordingImages(ds.images), []
    store = fill(model, again, path, calls=calls)
    # Chunk 0 is neither read nor encoded again; chunks 1 and 2 are, batch by batch.
    assert again.reads == [(8, 12), (12, 16), (16, 20), (20, 24)]
    assert calls == [4, 4, 4, 4]
    assert store.is_complete
    np.testing.assert_allclose(np.asarray(store.latents), model.encode(ds.images).latents, rtol=1e-6)

    # Complete: nothing to do. resume=False: everything again.
    calls.clear()
    fill(model, ds.images, path, calls=calls)
    assert calls == []
    fill(model, ds.images, path, calls=calls, resume=False)
    assert calls == [4] * 6


def test_an_encoder_error_stops_the_reader_and_keeps_finished_chunks(model, ds, tmp_path: Path) -> None:
    encode, calls = toy_encoder(model), []

    def failing(x: np.ndarray):
        calls.append(len(x))
        if len(calls) == 5:  # the 1st batch of chunk 2
            raise KeyboardInterrupt
        return encode(x)

    path = tmp_path / "z.zarr"
    with pytest.raises(KeyboardInterrupt):
        encode_to_store(failing, ds.images, path, model_hash="toy", data_hash="ds", latent_shape=model.latent_shape,
                        options=EncodeOptions(batch_size=4, chunk_rows=8), progress=False)  # fmt: skip
    assert not [t for t in threading.enumerate() if t.name == "latent-store-reader"]
    assert LatentStore.open(path).chunks_done().tolist() == [True, True, False]


def test_resuming_with_another_batch_size_fills_whole_chunks(model, ds, tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    with pytest.raises(RuntimeError):
        fill(model, RecordingImages(ds.images, fail_at=16), path)  # chunks 0, 1 done
    again = RecordingImages(ds.images)
    store = fill(model, again, path, batch_size=3)
    assert again.reads == [(16, 19), (19, 22), (22, 24)]
    np.testing.assert_allclose(np.asarray(store.latents), model.encode(ds.images).latents, rtol=1e-6)


def test_progress_bar_starts_at_the_rows_already_done(model, ds, tmp_path: Path, monkeypatch) -> None:
    bars = []

    class FakeBar:
        def __init__(self, **kw) -> None:
            self.kw, self.updates = kw, []
            bars.append(self)

        def update(self, k: int) -> None:
            self.updates.append(k)

        def close(self) -> None:
            pass

    monkeypatch.setattr("tqdm.auto.tqdm", FakeBar)
    path = tmp_path / "z.zarr"
    with pytest.raises(RuntimeError):
        fill(model, RecordingImages(ds.images, fail_at=8), path, progress=True)
    fill(model, ds.images, path, progress=True)
    assert bars[1].kw["total"] == 24 and bars[1].kw["initial"] == 8 and sum(bars[1].updates) == 16


_KILLED_CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from latent_widgets.latents.encode import encode_to_store
from latent_widgets.model.encode_options import EncodeOptions

class Slow:
    def __init__(self, x): self.x, self.shape = x, x.shape
    def __len__(self): return len(self.x)
    def __getitem__(self, rows):
        time.sleep(0.15)
        return self.x[rows]

images = np.random.default_rng(0).random((40, 4, 4, 3), dtype=np.float32)
encode_to_store(lambda x: (x.mean(axis=(1, 2)),), Slow(images), sys.argv[1], model_hash="m", data_hash="d",
                latent_shape=(3,), options=EncodeOptions(batch_size=4, chunk_rows=8), progress=False)
"""


def test_a_killed_encode_resumes(tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(path), str(REPO)])
    try:
        deadline = time.monotonic() + 60
        done = 0
        while done < 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
            with contextlib.suppress(LatentStoreError):  # not created yet
                done = int(LatentStore.open(path).chunks_done().sum())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    store = LatentStore.open(path)
    finished = store.chunks_done()
    assert 2 <= finished.sum() < 5 and not store.is_complete
    images = np.random.default_rng(0).random((40, 4, 4, 3), dtype=np.float32)
    reader = RecordingImages(images)
    store = encode_to_store(
        lambda x: (x.mean(axis=(1, 2)),),
        reader,
        path,
        model_hash="m",
        data_hash="d",
        latent_shape=(3,),
        options=EncodeOptions(batch_size=4, chunk_rows=8),
        progress=False,
    )
    missing = [c for c in range(5) if not finished[c]]
    assert reader.reads == [(s, s + 4) for c in missing for s in (8 * c, 8 * c + 4)]
    np.testing.assert_allclose(np.asarray(store.latents), images.mean(axis=(1, 2)), rtol=1e-6)


def test_a_partly_written_store_is_never_complete(model, ds, tmp_path: Path) -> None:
    store = LatentStore.create(
        tmp_path / "z.zarr", model_hash="m", data_hash="d", n=24, latent_shape=(3,), options=EncodeOptions(chunk_rows=8)
    )
    assert store.missing_chunks() == [0, 1, 2] and not store.is_complete
    store.write_chunk(2, np.ones((8, 3), np.float32))
    assert store.missing_chunks() == [0, 1] and not store.is_complete
    with pytest.raises(LatentStoreError, match="incomplete"):
        store.iter_blocks()
    # A folder cut off before its attributes were written is not taken for a store.
    (tmp_path / "cut.zarr").mkdir()
    (tmp_path / "cut.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(LatentStoreError, match="is not a latent store"):
        LatentStore.open(tmp_path / "cut.zarr")


# ----------------------------------------------------------------------------- refusing


def test_another_model_or_dataset_is_refused_and_overwrite_replaces(model, ds, tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path, model_hash="model-a", data_hash="data-a")
    with pytest.raises(LatentStoreError) as err:
        fill(model, ds.images, path, model_hash="model-b", data_hash="data-a")
    msg = str(err.value)
    assert "another model" in msg and "model-a" in msg and "model-b" in msg
    assert "new store path" in msg and "overwrite=True" in msg and "data hash" not in msg
    with pytest.raises(LatentStoreError, match=r"another data \(data hash: store data-a, requested data-b\)"):
        fill(model, ds.images, path, model_hash="model-a", data_hash="data-b")
    with pytest.raises(LatentStoreError, match="another model and data"):
        LatentStore.open(path, model_hash="x", data_hash="y")

    other = ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, seed=7)
    calls: list[int] = []
    store = fill(other, ds.images, path, calls=calls, model_hash="model-b", data_hash="data-a", overwrite=True)
    assert sum(calls) == 24 and store.model_hash == "model-b"
    np.testing.assert_allclose(np.asarray(store.latents), other.encode(ds.images).latents, rtol=1e-6)


def test_a_folder_that_is_not_a_store_is_never_deleted(model, ds, tmp_path: Path) -> None:
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(LatentStoreError, match="non-empty folder that is not a latent store"):
        fill(model, ds.images, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(LatentStoreError, match="is a file"):
        fill(model, ds.images, mine / "notes.txt")


def test_images_of_another_length_are_refused(model, ds, tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    store = fill(model, ds.images, path)
    from latent_widgets.latents.encode import fill_store

    with pytest.raises(LatentStoreError, match="got 10 images for a store of 24"):
        fill_store(store, toy_encoder(model), ds.images[:10])


# ----------------------------------------------------------------------------- skips


@pytest.fixture()
def skip_model() -> ToyLatentModel:
    return ToyLatentModel(input_shape=(48, 64, 3), n_classes=12, latent_channels=8, with_skip=True, seed=2)


def test_lazy_skips_equal_the_eager_ones_and_encode_once(skip_model, ds, tmp_path: Path) -> None:
    eager = skip_model.encode(ds.images)
    store = fill(skip_model, ds.images, tmp_path / "z.zarr")
    assert not store.stored_skips and not (tmp_path / "z.zarr" / "skip_0").exists()
    with pytest.raises(LatentStoreError, match="does not hold the skip features"):
        _ = store.skips
    calls: list[int] = []
    (col,) = store.lazy_skips(toy_encoder(skip_model, calls), ds.images, batch_size=5)
    assert isinstance(col, LazySkipColumn) and col.shape == eager.skips[0].shape and len(col) == 24
    np.testing.assert_allclose(col[7:8], eager.skips[0][7:8], rtol=1e-6)  # how the session reads an endpoint
    np.testing.assert_allclose(col[7:8], eager.skips[0][7:8], rtol=1e-6)
    assert calls == [1]  # the second read is the remembered one
    np.testing.assert_allclose(col[-3], eager.skips[0][-3], rtol=1e-6)
    np.testing.assert_allclose(col[[9, 2, 9]], eager.skips[0][[9, 2, 9]], rtol=1e-6)
    calls.clear()
    np.testing.assert_allclose(np.asarray(col), eager.skips[0], rtol=1e-6)
    assert calls == [5, 5, 5, 5, 4]  # batched


def test_store_skips_keeps_them_on_disk(skip_model, ds, tmp_path: Path) -> None:
    eager = skip_model.encode(ds.images)
    store = fill(skip_model, ds.images, tmp_path / "z.zarr", store_skips=True)
    assert store.stored_skips
    (skip,) = store.skips
    np.testing.assert_allclose(np.asarray(skip), eager.skips[0], rtol=1e-6)
    # A store without skips is not silently reused when they are asked for.
    fill(skip_model, ds.images, tmp_path / "y.zarr")
    with pytest.raises(LatentStoreError, match="without skip features"):
        fill(skip_model, ds.images, tmp_path / "y.zarr", store_skips=True)


# ----------------------------------------------------------------------------- LatentModel.encode_dataset


def tiny_unet(seed: int, size: tuple[int, int] = (16, 16)):
    keras = pytest.importorskip("keras")
    layers = keras.layers
    keras.utils.set_random_seed(seed)
    inp = keras.Input((*size, 3))
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    p1 = layers.MaxPooling2D()(c1)
    z = layers.Conv2D(6, 3, padding="same", activation="relu", name="latent")(p1)
    x = layers.UpSampling2D()(z)
    x = layers.Concatenate()([x, c1])
    out = layers.Conv2D(3, 1, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def unet_lm():
    from latent_widgets import LatentModel

    return LatentModel.from_model(tiny_unet(0))


@pytest.fixture(scope="module")
def small_images() -> np.ndarray:
    return np.random.default_rng(3).random((20, 16, 16, 3), dtype=np.float32)


def test_encode_dataset_streams_a_lazy_dataset_into_a_store(unet_lm, small_images, tmp_path: Path) -> None:
    from latent_widgets.core.cache import cache_dir

    eager = unet_lm.encode(small_images)
    lazy = LazyDataset(small_images)
    before = set(cache_dir("latents").glob("*.zarr"))
    enc = unet_lm.encode_dataset(lazy, batch_size=4)  # lazy: a store, chosen automatically
    assert isinstance(enc.latents, StoredArray) and len(set(cache_dir("latents").glob("*.zarr")) - before) == 1
    np.testing.assert_allclose(np.asarray(enc.latents), eager.latents, atol=1e-5)
    assert isinstance(enc.skips[0], LazySkipColumn)
    np.testing.assert_allclose(enc.skips[0][3:4], eager.skips[0][3:4], atol=1e-5)
    # Again: the complete store is reused, no image is read.
    lazy.images.reads.clear()
    again = unet_lm.encode_dataset(lazy, batch_size=4)
    assert lazy.images.reads == []
    np.testing.assert_array_equal(np.asarray(again.latents), np.asarray(enc.latents))

    # An explicit path, interrupted, then resumed.
    path = tmp_path / "road.zarr"
    with pytest.raises(RuntimeError):
        unet_lm.encode_dataset(LazyDataset(small_images, fail_at=8), batch_size=4, store=path, chunk_rows=8)
    resumed = LazyDataset(small_images)
    enc = unet_lm.encode_dataset(resumed, batch_size=4, store=path, chunk_rows=8)
    assert resumed.images.reads == [(8, 12), (12, 16), (16, 20)]
    np.testing.assert_allclose(np.asarray(enc.latents), eager.latents, atol=1e-5)


def test_encode_dataset_refuses_a_store_of_other_weights_or_data(unet_lm, small_images, tmp_path: Path) -> None:
    from latent_widgets import LatentModel

    path = tmp_path / "z.zarr"
    unet_lm.encode_dataset(LazyDataset(small_images), batch_size=4, store=path)
    retrained = LatentModel.from_model(tiny_unet(1))
    with pytest.raises(LatentStoreError, match="another model") as err:
        retrained.encode_dataset(LazyDataset(small_images), batch_size=4, store=path)
    assert unet_lm.weights_hash() in str(err.value) and retrained.weights_hash() in str(err.value)
    with pytest.raises(LatentStoreError, match="another data"):
        unet_lm.encode_dataset(LazyDataset(small_images, tag="b"), batch_size=4, store=path)
    enc = retrained.encode_dataset(LazyDataset(small_images), batch_size=4, store=path, overwrite=True)
    np.testing.assert_allclose(np.asarray(enc.latents), retrained.encode(small_images).latents, atol=1e-5)


def test_encode_dataset_keeps_small_datasets_in_memory_without_pickle(unet_lm, ds, tmp_path: Path) -> None:
    from latent_widgets import LatentModel
    from latent_widgets.core.cache import cache_dir

    lm = LatentModel.from_model(tiny_unet(2))
    images = ds.images[:6, :16, :16]

    class Eager:
        def __init__(self) -> None:
            self.images = images

        def __len__(self) -> int:
            return len(images)

        def content_hash(self) -> str:
            return content_hash(images)

    before = set(cache_dir("latents").glob("*.npz"))
    enc = lm.encode_dataset(Eager(), batch_size=4)
    assert isinstance(enc.latents, np.ndarray) and isinstance(enc.skips[0], np.ndarray)
    np.testing.assert_allclose(enc.latents, lm.encode(images).latents, atol=1e-6)
    (new,) = set(cache_dir("latents").glob("*.npz")) - before
    with np.load(new, allow_pickle=False) as data:
        assert sorted(data.files) == ["latents", "skip_0"]
    # Stored skips, and every metadata file of a store is JSON: nothing to unpickle anywhere.
    enc = lm.encode_dataset(Eager(), batch_size=4, store=tmp_path / "s.zarr", store_skips=True)
    np.testing.assert_allclose(np.asarray(enc.skips[0]), lm.encode(images).skips[0], atol=1e-6)
    metadata = [f for f in (tmp_path / "s.zarr").rglob("*") if f.name in _METADATA]
    assert metadata
    for meta in metadata:
        json.loads(meta.read_text())


def test_encode_dataset_of_a_lazy_synthetic_dataset(tmp_path: Path) -> None:
    from latent_widgets import LatentModel, synthetic_road_scenes

    lm = LatentModel.from_model(tiny_unet(4, (48, 64)))
    lazy = synthetic_road_scenes(40, size=(48, 64), seed=0, lazy=True)
    assert lazy.is_lazy
    enc = lm.encode_dataset(lazy, batch_size=8, store=tmp_path / "road.zarr", chunk_rows=16, progress=False)
    assert isinstance(enc.latents, StoredArray)
    eager = lm.encode(synthetic_road_scenes(40, size=(48, 64), seed=0, lazy=False).images)
    np.testing.assert_allclose(np.asarray(enc.latents), eager.latents, atol=1e-5)
    np.testing.assert_allclose(enc.skips[0][[33, 2]], eager.skips[0][[33, 2]], atol=1e-5)


# ----------------------------------------------------------------------------- damage


def chunk_file(path: Path, c: int, name: str = "latents") -> Path:
    """The file of row chunk ``c`` of array ``name`` (whatever zarr's chunk key encoding)."""
    import zarr

    from latent_widgets.latents.zarr_arrays import chunk_key

    return path / chunk_key(zarr.open_group(str(path), mode="r")[name], c)


def metadata_file(path: Path, array: str | None = None) -> Path:
    """The JSON file of the group's attributes, or of one array's metadata, in Zarr format 3 or 2."""
    base = path if array is None else path / array
    if (base / "zarr.json").is_file():
        return base / "zarr.json"
    return base / (".zattrs" if array is None else ".zarray")


def damage(f: Path, how: str) -> None:
    data = f.read_bytes()
    if how == "deleted":  # a partial copy, an interrupted rsync
        f.unlink()
    elif how == "truncated":  # a copy cut off halfway (a full disk)
        f.write_bytes(data[: len(data) // 2])
    else:  # changed in place, same size: a flipped bit, a block from elsewhere; only the checksum tells
        b = bytearray(data)
        b[400:404] = np.float32(123.0).tobytes()
        f.write_bytes(bytes(b))


@pytest.fixture()
def clean(model, ds, tmp_path: Path) -> np.ndarray:
    """The latents of a clean encode into a store (the reference a repaired store must equal exactly)."""
    return np.asarray(fill(model, ds.images, tmp_path / "clean.zarr").latents)


@pytest.mark.parametrize("how", ["deleted", "truncated", "corrupt"])
def test_a_damaged_chunk_is_never_served_and_a_resume_re_encodes_only_it(model, ds, clean, tmp_path, how) -> None:
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path)
    damage(chunk_file(path, 1), how)
    store = LatentStore.open(path)
    rows = r"chunk 1 \(rows 8-15\)"
    if how == "corrupt":
        # Presence and size are right: the chunk's checksum finds it when it is read, whatever the reader.
        assert store.is_complete and store.damaged_chunks() == {}
        z = store.latents
        np.testing.assert_array_equal(z[0:8], clean[0:8])  # the intact chunks are served
        for read in (
            lambda: z[5:10],
            lambda: np.asarray(z),
            lambda: z[[20, 9]],
            lambda: z[12],
            lambda: list(z.iter_blocks()),
        ):
            with pytest.raises(LatentStoreError, match=rows + r": its latents do not match the checksum"):
                read()
        # Its done flag is cleared on the way: a resume re-encodes it.
        assert store.chunks_done().tolist() == [True, False, True]
        expect_warning: Any = contextlib.nullcontext()
    else:
        # Found without reading a latent: the file of a chunk marked done is missing or short.
        why = "is missing" if how == "deleted" else "holds 24576 bytes, not 49152"
        assert store.chunks_done().tolist() == [True, False, True] and not store.is_complete
        assert list(store.damaged_chunks()) == [1] and why in store.damaged_chunks()[1]
        with pytest.raises(LatentStoreError, match=rows + ".*marked done but its file .*" + why + ".*encode_dataset"):
            _ = store.latents
        expect_warning = pytest.warns(LatentStoreWarning, match=rows + ".*encoded again")
    reader, calls = RecordingImages(ds.images), []
    with expect_warning:
        store = fill(model, reader, path, calls=calls)
    assert reader.reads == [(8, 12), (12, 16)] and calls == [4, 4]  # only the damaged chunk
    np.testing.assert_array_equal(np.asarray(store.latents), clean)


def test_encode_dataset_re_encodes_a_deleted_chunk_of_a_lazy_dataset(unet_lm, small_images, tmp_path: Path) -> None:
    # The case: a lazy dataset encoded into a store, one chunk file deleted, encode_dataset again.
    path = tmp_path / "road.zarr"
    first = np.asarray(
        unet_lm.encode_dataset(LazyDataset(small_images), batch_size=4, store=path, chunk_rows=8).latents
    )
    assert np.abs(first[8:16]).max() > 0  # not a chunk of zeros that a fill value would look like
    chunk_file(path, 1).unlink()
    again = LazyDataset(small_images)
    with pytest.warns(LatentStoreWarning, match=r"chunk 1 \(rows 8-15\)"):
        enc = unet_lm.encode_dataset(again, batch_size=4, store=path, chunk_rows=8)
    assert again.images.reads == [(8, 12), (12, 16)]
    np.testing.assert_array_equal(np.asarray(enc.latents), first)


@pytest.mark.parametrize(
    ("how", "why", "re_encoded"),
    [
        ("flag holds 7", r"chunk 2 \(rows 16-23\): its done flag holds 7, not 0 or 1", [(16, 20), (20, 24)]),
        ("flag file cut", r"chunk 2 \(rows 16-23\): its done flag cannot be read", [(16, 20), (20, 24)]),
        ("checksum lost", r"chunk 0 \(rows 0-7\): it is marked done but no checksum", [(0, 4), (4, 8)]),
        ("done metadata lost", r"the metadata of its 'done' array is missing or unreadable", []),
    ],
)
def test_damaged_done_flags_are_refused_then_rebuilt(model, ds, clean, tmp_path, how, why, re_encoded) -> None:
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path)
    if how == "flag holds 7":
        chunk_file(path, 2, "done").write_bytes(b"\x07")
    elif how == "flag file cut":
        chunk_file(path, 2, "done").write_bytes(b"")
    elif how == "checksum lost":
        chunk_file(path, 0, "checksums").unlink()
    else:
        metadata_file(path, "done").unlink()
    with pytest.raises(LatentStoreError, match=why):
        _ = LatentStore.open(path).latents
    reader = RecordingImages(ds.images)
    # With the done array lost, the flags are rebuilt from the checksums: each chunk read and verified.
    with pytest.warns(LatentStoreWarning, match=why if re_encoded else r"rebuilt it: 3 of 3 chunks verified"):
        store = fill(model, reader, path)
    assert reader.reads == re_encoded
    np.testing.assert_array_equal(np.asarray(store.latents), clean)


def test_damaged_metadata_is_refused_or_rebuilt(model, ds, clean, tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path)
    meta = metadata_file(path)
    good = meta.read_text()
    # An attribute changed by hand or by corruption: its checksum no longer matches; nothing is trusted.
    doc = json.loads(good)
    doc.get("attributes", doc)["n"] = 23  # format 3 nests them, format 2's .zattrs is them
    meta.write_text(json.dumps(doc))
    for step in (lambda: LatentStore.open(path), lambda: fill(model, ds.images, path)):
        with pytest.raises(LatentStoreError, match=r"its attributes were edited or corrupted.*overwrite=True"):
            step()
    calls: list[int] = []
    np.testing.assert_array_equal(np.asarray(fill(model, ds.images, path, calls=calls, overwrite=True).latents), clean)
    assert sum(calls) == 24
    # The group's metadata gone: what the store was computed from is unknown; it is refused, never deleted.
    meta.unlink()
    for step in (lambda: LatentStore.open(path), lambda: fill(model, ds.images, path, overwrite=True)):
        with pytest.raises(
            LatentStoreError, match=r"holds a latent store's arrays .* group metadata \(zarr\.json.* is missing"
        ):
            step()
    assert (path / "latents").is_dir()
    meta.write_text(good)
    # An array's metadata gone: refused when read, rebuilt (every chunk encoded again) on resume.
    metadata_file(path, "latents").unlink()
    with pytest.raises(LatentStoreError, match=r"the metadata of its 'latents' array is missing.*Resuming the encode"):
        LatentStore.open(path)
    calls.clear()
    with pytest.warns(LatentStoreWarning, match=r"'latents' array is missing.*0 of 3 chunks verified"):
        store = fill(model, ds.images, path, calls=calls)
    assert sum(calls) == 24
    np.testing.assert_array_equal(np.asarray(store.latents), clean)


def test_a_chunk_of_zero_latents_is_written_and_served(model, ds, tmp_path: Path) -> None:
    # zarr 3 skips writing a chunk of fill values: the store would then take it for a deleted file.
    encode = toy_encoder(model)
    images = ds.images.copy()
    images[8:16] = 0  # the toy encoder is linear: these rows encode to zeros
    path = tmp_path / "z.zarr"
    fill(model, images, path)
    assert chunk_file(path, 1).is_file()
    store = LatentStore.open(path)
    assert store.is_complete and store.damaged_chunks() == {} and store.verify() == {}
    z = np.asarray(store.latents)
    assert not z[8:16].any() and z[16:].any()
    np.testing.assert_array_equal(z, encode(images)[0])


def test_verify_reads_every_chunk_and_repair_marks_the_damaged_ones(model, ds, clean, tmp_path, monkeypatch) -> None:
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path)
    damage(chunk_file(path, 2), "corrupt")
    store = LatentStore.open(path)
    assert store.damaged_chunks() == {}  # the cheap check cannot see an in-place change
    assert list(store.verify()) == [2] and store.is_complete  # found, not yet marked
    assert list(store.verify(repair=True)) == [2] and store.missing_chunks() == [2]
    reader = RecordingImages(ds.images)
    np.testing.assert_array_equal(np.asarray(fill(model, reader, path).latents), clean)
    assert reader.reads == [(16, 20), (20, 24)]
    # A store whose flags cannot be written (a read-only copy) still refuses the rows, and says so.
    damage(chunk_file(path, 0), "corrupt")
    monkeypatch.setattr(ChunkRecords, "clear", lambda self, chunks: (_ for _ in ()).throw(PermissionError("ro")))
    with pytest.raises(LatentStoreError, match=r"chunk 0 \(rows 0-7\).*could not be cleared.*restore the store"):
        np.asarray(LatentStore.open(path).latents)


def test_a_store_written_without_checksums_is_still_checked_for_missing_chunks(model, ds, clean, tmp_path) -> None:
    import zarr

    # As stores written before the checksums: no "checksum" attribute, no checksums array.
    path = tmp_path / "z.zarr"
    fill(model, ds.images, path)
    group = zarr.open_group(str(path), mode="a")
    attrs = {k: v for k, v in group.attrs.items() if k not in ("checksum", "attributes_checksum")}
    group.attrs.put(attrs)
    import shutil

    shutil.rmtree(path / "checksums")
    store = LatentStore.open(path)
    assert store.checksum is None and store.is_complete
    np.testing.assert_array_equal(np.asarray(store.latents), clean)
    chunk_file(path, 1).unlink()
    with pytest.raises(LatentStoreError, match=r"chunk 1 \(rows 8-15\): it is marked done but its file"):
        _ = store.latents
    reader = RecordingImages(ds.images)
    with pytest.warns(LatentStoreWarning, match=r"chunk 1"):
        store = fill(model, reader, path)
    assert reader.reads == [(8, 12), (12, 16)]
    np.testing.assert_array_equal(np.asarray(store.latents), clean)
