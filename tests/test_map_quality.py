"""Per-point faithfulness of a map and distance off the data (latent_widgets.analysis.map_quality, .off_manifold)."""

from __future__ import annotations

import numpy as np
import pytest

from latent_widgets.analysis import map_quality as Q
from latent_widgets.analysis.neighbors import LatentIndex
from latent_widgets.analysis.off_manifold import off_manifold


def _data(rng: np.random.Generator, shape: tuple[int, ...] = (40, 8)) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=shape)
    flat = x.reshape(len(x), -1)
    y = flat[:, :2] + rng.normal(size=(len(x), 2)) * 0.5  # a map that keeps some neighbourhoods
    return x, y


def _sq(a: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    d = ((a[:, None] - a[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return d


@pytest.mark.parametrize(("shape", "k"), [((40, 8), 5), ((36, 2, 3, 5), 3), ((25, 4), 1)])
def test_local_trustworthiness_averages_to_the_global_figure(rng, shape, k):
    from sklearn.manifold import trustworthiness as sk_trust

    x, y = _data(rng, shape)
    x = x.astype(np.float32) if len(shape) > 2 else x
    local = Q.local_trustworthiness(x, y, n_neighbors=k)
    assert local.shape == (shape[0],)
    assert local.mean() == pytest.approx(Q.trustworthiness(x, y, n_neighbors=k), abs=1e-12)
    assert local.mean() == pytest.approx(sk_trust(x.reshape(len(x), -1), y, n_neighbors=k), abs=1e-12)
    assert 0.0 <= local.min() < local.max() <= 1.0  # a figure per point, not one value spread over all


def test_local_trustworthiness_point_by_point(rng):
    # Venna & Kaski's penalty written out per point: each map neighbour outside
    # the k nearest latents costs its latent-space rank minus k.
    n, k = 30, 4
    x, y = _data(rng, (n, 6))
    dx, dy = _sq(x), _sq(y)
    want = []
    for i in range(n):
        rank = {j: r + 1 for r, j in enumerate(np.argsort(dx[i]))}
        penalty = sum(max(rank[j] - k, 0) for j in np.argsort(dy[i])[:k])
        want.append(1 - 2 / (k * (2 * n - 3 * k - 1)) * penalty)
    np.testing.assert_allclose(Q.local_trustworthiness(x, y, k), want, atol=1e-12)


def test_local_knn_preservation_point_by_point(rng):
    n, k = 30, 5
    x, y = _data(rng, (n, 6))
    dx, dy = _sq(x), _sq(y)
    want = [len(set(np.argsort(dx[i])[:k]) & set(np.argsort(dy[i])[:k])) / k for i in range(n)]
    local = Q.local_knn_preservation(x, y, k)
    np.testing.assert_allclose(local, want)
    assert local.mean() == pytest.approx(Q.knn_preservation(x, y, k), abs=1e-12)
    assert Q.local_knn_preservation(x, 2 * x + 3, k).tolist() == [1.0] * n


def test_ties_on_the_map_are_broken_as_the_global_figure_does(rng):
    # A map on an integer grid: many points at equal distances, whose order is by index.
    x = rng.normal(size=(36, 5))
    y = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)
    for k in (1, 3, 4, 8):
        assert Q.local_knn_preservation(x, y, k).mean() == pytest.approx(Q.knn_preservation(x, y, k), abs=1e-12)


def test_blocks_and_stores_give_the_same_points(rng, monkeypatch, tmp_path):
    import zarr

    x, y = _data(rng, (60, 3, 2, 4))
    x = x.astype(np.float32)
    whole_t = Q.local_trustworthiness(x, y, 5)
    whole_k = Q.local_knn_preservation(x, y, 7)
    # rows in blocks of a few, latents read from a chunked store a few rows at a time
    monkeypatch.setattr(Q, "BLOCK_BYTES", 8 * 60 * 60 // 4)
    z = zarr.create_array(tmp_path / "x.zarr", shape=x.shape, chunks=(7, 3, 2, 4), dtype="float32")
    z[:] = x
    for latents in (x, z):
        np.testing.assert_allclose(Q.local_trustworthiness(latents, y, 5), whole_t, atol=1e-12)
        np.testing.assert_allclose(Q.local_knn_preservation(latents, y, 7), whole_k, atol=1e-12)


def test_blocked_rows_never_build_the_whole_matrix(rng, monkeypatch):
    import latent_widgets.analysis.distances as N

    x, y = _data(rng, (50, 4))
    monkeypatch.setattr(Q, "BLOCK_BYTES", 8 * 50 * 10)
    shapes = []
    real = N.pairwise_distances

    def spy(a, b=None, *args, **kwargs):
        out = real(a, b, *args, **kwargs)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(N, "pairwise_distances", spy)
    Q.local_knn_preservation(x, y, 3)
    assert shapes and max(s[0] for s in shapes) < 50


def test_local_errors(rng):
    x, y = _data(rng, (20, 4))
    with pytest.raises(ValueError, match=r"n_samples / 2 \(10.0\)"):
        Q.local_trustworthiness(x, y, 10)
    with pytest.raises(ValueError, match=r"k must be in 1..19"):
        Q.local_knn_preservation(x, y, 20)
    with pytest.raises(ValueError, match=r"same points, shape \(20, n_components\)"):
        Q.local_knn_preservation(x, y[:15], 3)
    bad = y.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Q.local_trustworthiness(x, bad, 3)


# ----------------------------------------------------------------------------- off the data


def test_off_manifold_hand_computed():
    # nearest-neighbour distances 1, 1, 2, 4: the median spacing is 1.5
    latents = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]]).reshape(4, 1, 1, 2)
    points = np.array([[3.0, 0.0], [3.0, 2.0], [5.0, 0.0], [7.0, -3.0]]).reshape(4, 1, 1, 2)
    np.testing.assert_allclose(off_manifold(points, latents), [0.0, 2 / 1.5, 2 / 1.5, 3 / 1.5])
    one = off_manifold(points[1], latents)  # one latent, not a batch
    np.testing.assert_allclose(one, [2 / 1.5])


def test_off_manifold_real_samples_score_zero_and_the_index_agrees(rng, tmp_path):
    import zarr

    latents = rng.normal(size=(50, 2, 2, 3)).astype(np.float32)
    assert off_manifold(latents[[3, 17]], latents).tolist() == [0.0, 0.0]
    points = latents[:5] + rng.normal(size=(5, 2, 2, 3)).astype(np.float32)
    flat = latents.reshape(50, -1).astype(np.float64)
    d = np.sqrt(((points.reshape(5, -1)[:, None] - flat[None]) ** 2).sum(-1)).min(axis=1)
    scale = np.median(np.sqrt(_sq(flat)).min(axis=1))
    want = d / scale
    np.testing.assert_allclose(off_manifold(points, latents), want, rtol=1e-6)
    index = LatentIndex().fit(latents)
    np.testing.assert_allclose(off_manifold(points, latents, index=index), want, rtol=1e-6)
    z = zarr.create_array(tmp_path / "l.zarr", shape=latents.shape, chunks=(8, 2, 2, 3), dtype="float32")
    z[:] = latents
    np.testing.assert_allclose(off_manifold(points, z), want, rtol=1e-6)
    assert off_manifold(np.zeros((0, 2, 2, 3), np.float32), latents).shape == (0,)


def test_off_manifold_errors(rng):
    latents = rng.normal(size=(10, 4))
    with pytest.raises(ValueError, match="index holds 10 latents but latents has 9"):
        off_manifold(latents[:2], latents[:9], index=LatentIndex().fit(latents))
    with pytest.raises(ValueError, match="at least 2 real latents"):
        off_manifold(latents[:1], latents[:1])
    with pytest.raises(ValueError, match="median nearest-neighbour distance is 0"):
        off_manifold(latents[:1], np.repeat(latents[:3], 3, axis=0))
    with pytest.raises(ValueError, match="features per latent"):
        off_manifold(rng.normal(size=(2, 5)), latents)
