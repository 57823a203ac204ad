"""The content-hash disk cache: hits, misses, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest

from latent_widgets.core.cache import cache_dir, cached_arrays, content_hash, load_arrays, save_arrays


def test_content_hash_distinguishes_inputs() -> None:
    a = np.arange(6, dtype=np.float32)
    assert content_hash(a) == content_hash(a.copy())
    assert content_hash(a) != content_hash(a.astype(np.float64))
    assert content_hash(a) != content_hash(a.reshape(2, 3))
    assert content_hash("1") != content_hash(1)
    assert content_hash({"b": 1, "a": 2}) == content_hash({"a": 2, "b": 1})
    assert content_hash(a[::2]) == content_hash(np.ascontiguousarray(a[::2]))


def test_cached_arrays_computes_once() -> None:
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    key = content_hash("test_cached_arrays_computes_once")
    first = cached_arrays("test", key, compute)
    second = cached_arrays("test", key, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["x"], second["x"])
    cached_arrays("test", key, compute, use_cache=False)
    assert len(calls) == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_entry_is_recomputed(damage: str) -> None:
    key = content_hash("corrupt", damage)
    path = cache_dir("test") / f"{key}.npz"
    save_arrays(path, {"x": np.arange(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"junk" * 10)
    assert load_arrays(path) is None and not path.exists()
    out = cached_arrays("test", key, lambda: {"x": np.ones(2)})
    np.testing.assert_array_equal(out["x"], np.ones(2))


def test_object_arrays_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    assert load_arrays(path) is None


def test_a_changed_byte_inside_an_entry_is_found_by_its_crc() -> None:
    # Same size, the archive's directory intact: only the zip CRC-32 of the member tells.
    key = content_hash("corrupt", "flip")
    path = cache_dir("test") / f"{key}.npz"
    x = np.arange(100_000, dtype=np.float32)
    save_arrays(path, {"x": x})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    assert load_arrays(path) is None and not path.exists()
    np.testing.assert_array_equal(cached_arrays("test", key, lambda: {"x": x})["x"], x)
