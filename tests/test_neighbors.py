"""Nearest neighbours against a brute-force Python loop (latent_widgets.analysis.neighbors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from latent_widgets.analysis.distances import pairwise_distances
from latent_widgets.analysis.neighbors import LatentIndex, knn, path_neighbors
from latent_widgets.analysis.recall import recall_at_k


def brute_knn(queries, data, k, metric="euclidean", exclude=None):
    """The reference: a float64 loop over every pair, sorted by (distance, index)."""
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    x = np.asarray(data, np.float64).reshape(len(data), -1)
    idx, dist = [], []
    for i, qi in enumerate(q):
        row = []
        for j, xj in enumerate(x):
            if exclude is not None and exclude[i] == j:
                continue
            if metric == "euclidean":
                d = math.sqrt(float(((qi - xj) ** 2).sum()))
            else:
                nq, nx = np.linalg.norm(qi), np.linalg.norm(xj)
                d = 1.0 - (float(qi @ xj) / (nq * nx) if nq > 0 and nx > 0 else 0.0)
                d = min(max(d, 0.0), 2.0)
            row.append((d, j))
        row.sort()
        idx.append([j for _, j in row[:k]])
        dist.append([d for d, _ in row[:k]])
    return np.array(idx), np.array(dist)


@pytest.mark.parametrize(
    "n, shape, dtype",
    [(50, (7,), np.float64), (33, (4, 3, 2), np.float32), (120, (900,), np.float32), (5, (2, 2), np.float64)],
)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 3])
def test_exact_knn_matches_brute_force(rng, n, shape, dtype, metric, k):
    data = rng.normal(size=(n, *shape)).astype(dtype)
    queries = rng.normal(size=(6, *shape)).astype(dtype)
    queries[0] = data[2]  # a query that is a dataset point
    idx, dist = LatentIndex(metric=metric).fit(data).query(queries, k=k)
    want_idx, want_dist = brute_knn(queries, data, k, metric)
    assert idx.dtype == np.int64 and dist.dtype == np.float64
    assert idx.shape == dist.shape == (6, k)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-10, atol=1e-12)


def test_ties_lowest_index_first():
    data = np.array([[2.0], [0.0], [1.0], [2.0], [0.0], [1.0]], np.float32)
    idx, dist = LatentIndex().fit(data).query(np.array([[1.0]], np.float32), k=4)
    # distance 0: 2, 5; distance 1: 0, 1, 3, 4 -> lower indices first
    assert idx.tolist() == [[2, 5, 0, 1]]
    assert dist.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    grid = np.array([[x, y] for x in range(5) for y in range(5)], np.float32)
    idx, _ = knn(np.array([[2.0, 2.0]]), grid, k=5)
    want, _ = brute_knn(np.array([[2.0, 2.0]]), grid, 5)
    assert idx.tolist() == want.tolist() == [[12, 7, 11, 13, 17]]


def test_float32_cancellation_is_refined(rng):
    # Latents with a large common offset: ||q||^2 + ||x||^2 - 2 q.x in float32
    # alone loses the small differences that decide the ranking.
    base = rng.normal(size=(1, 2000)) * 1e3
    data = (base + rng.normal(size=(80, 2000))).astype(np.float32)
    queries = (base + rng.normal(size=(10, 2000))).astype(np.float32)
    idx, dist = LatentIndex().fit(data).query(queries, k=5)
    want_idx, want_dist = brute_knn(queries, data, 5)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-12)


def test_query_forms_and_errors(rng):
    data = rng.normal(size=(20, 3, 4)).astype(np.float32)
    index = LatentIndex().fit(data)
    one = index.query(data[5])  # a single latent of the original shape
    assert one[0].tolist() == [[5]] and one[1][0, 0] == 0.0
    flat = index.query(data[5].reshape(1, -1))
    assert flat[0].tolist() == [[5]]
    with pytest.raises(ValueError, match="features per latent"):
        index.query(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match=r"k must be in 1\.\.20"):
        index.query(data[:1], k=21)
    with pytest.raises(ValueError, match="metric"):
        LatentIndex(metric="manhattan")
    assert len(index) == 20 and index.n_features == 12 and "exact" in repr(index)


def test_self_query_and_exclude(rng):
    data = rng.normal(size=(40, 6))
    data[7] = data[3]  # a duplicate: its nearest other point is at distance 0
    idx, dist = LatentIndex().fit(data).self_query(k=3)
    want_idx, want_dist = brute_knn(data, data, 3, exclude=np.arange(40))
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, atol=1e-12)
    assert idx[3, 0] == 7 and idx[7, 0] == 3 and dist[3, 0] == 0.0
    assert LatentIndex().fit(data).nn_distance_scale() == pytest.approx(np.median(want_dist[:, 0]))


def test_cosine_zero_vector():
    data = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    idx, dist = LatentIndex(metric="cosine").fit(data).query(np.array([[3.0, 0.1]]), k=3)
    assert idx.tolist() == [[1, 2, 0]]
    assert dist[0, 2] == 1.0  # a zero vector has cosine 0 to anything
    np.testing.assert_allclose(dist, brute_knn([[3.0, 0.1]], data, 3, "cosine")[1], atol=1e-15)


def clustered(rng, n=3000, d=48, centres=30):
    c = rng.normal(size=(centres, d)) * 4
    return (c[rng.integers(0, centres, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_approximate_svd_recall(rng):
    data = clustered(rng)
    index = LatentIndex("auto", threshold=10_000).fit(data)  # 3000 x 48 is above it
    assert index.approximate and index.algorithm_ == "svd"
    assert index.recall_ is not None and index.recall_ >= 0.9
    queries = data[:100] + rng.normal(size=(100, data.shape[1])).astype(np.float32) * 0.1
    got, got_d = index.query(queries, k=10)
    want, want_d = index.query(queries, k=10, exact=True)
    assert recall_at_k(got, want) >= 0.9
    # the approximate neighbours come with exact distances, nearest first
    assert np.all(np.diff(got_d, axis=1) >= 0)
    assert np.all(got_d[:, 0] >= want_d[:, 0] - 1e-9)
    assert not LatentIndex("auto").fit(data).approximate  # default threshold: exact


@pytest.mark.slow
def test_approximate_pynndescent_recall(rng):
    # The first NN-descent build in a process compiles with numba (a minute or more).
    data = clustered(rng, n=2000, d=16)
    index = LatentIndex("pynndescent", recall_queries=100).fit(data)
    assert index.recall_ >= 0.9
    got, _ = index.query(data[:50], k=5, exclude=np.arange(50))
    want, _ = index.query(data[:50], k=5, exclude=np.arange(50), exact=True)
    assert recall_at_k(got, want) >= 0.9


def test_recall_at_k():
    assert recall_at_k(np.array([[0, 1], [2, 5]]), np.array([[1, 0], [2, 3]])) == 0.75
    assert recall_at_k(np.array([1, 2]), np.array([1, 3])) == 0.5


def test_path_neighbors(rng):
    data = rng.normal(size=(30, 8)).astype(np.float32)
    path = np.linspace(0, 1, 12)[:, None] * (data[4] - data[9]) + data[9]
    pn = path_neighbors(path, data)
    assert pn.indices[0] == 9 and pn.indices[-1] == 4
    assert pn.distances[0] == 0.0 and pn.distances[-1] == pytest.approx(0.0, abs=1e-6)
    want, want_d = brute_knn(path, data, 1)
    np.testing.assert_array_equal(pn.indices, want[:, 0])
    np.testing.assert_allclose(pn.distances, want_d[:, 0], atol=1e-6)
    assert pn.n_distinct == len(set(want[:, 0].tolist()))
    assert path_neighbors(path, LatentIndex().fit(data)).n_distinct == pn.n_distinct


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distances_match_scipy(rng, metric):
    x = rng.normal(size=(25, 3, 7)).astype(np.float32)
    y = rng.normal(size=(9, 21))
    got = pairwise_distances(x, metric=metric)
    want = cdist(x.reshape(25, -1).astype(np.float64), x.reshape(25, -1).astype(np.float64), metric)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert np.all(np.diag(got) == 0) and np.array_equal(got, got.T)
    np.testing.assert_allclose(
        pairwise_distances(x, y, metric=metric), cdist(x.reshape(25, -1).astype(np.float64), y, metric), atol=1e-9
    )


# ---------------------------------------------------------------- stores, backends


class CountingRows:
    """A minimal row-indexable store: ``shape``, ``dtype``, slices only; records what was read."""

    def __init__(self, array):
        self._a = array
        self.shape, self.dtype = array.shape, array.dtype
        self.rows_read = 0
        self.largest_read = 0

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"only slices, got {type(key).__name__}")
        out = np.array(self._a[key])
        self.rows_read += len(out)
        self.largest_read = max(self.largest_read, out.nbytes)
        return out


def _memmap(tmp_path, data):
    mm = np.memmap(tmp_path / "latents.f32", data.dtype, "w+", shape=data.shape)
    mm[:] = data
    mm.flush()
    return np.memmap(tmp_path / "latents.f32", data.dtype, "r", shape=data.shape)


def _zarr(tmp_path, data, chunk_rows=16):
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(store=str(tmp_path / "z"), shape=data.shape, chunks=(chunk_rows, *data.shape[1:]), dtype="f4")
    z[:] = data
    return z


@pytest.mark.parametrize("kind", ["memmap", "zarr", "rows"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_over_store_matches_brute_force_and_sklearn(rng, tmp_path, kind, metric):
    from sklearn.neighbors import NearestNeighbors

    data = rng.normal(size=(150, 3, 2, 5)).astype(np.float32)
    data[40] = data[7]  # a duplicate: ties in index order across blocks
    data[90] = 0.0  # a zero vector (cosine)
    store = {"memmap": _memmap, "zarr": _zarr, "rows": lambda _p, d: CountingRows(d)}[kind](tmp_path, data)
    # 30 features x 4 bytes: blocks of 1200 // 120 = 10 rows (rounded to zarr's 16-row chunks: 16), many blocks.
    index = LatentIndex(metric=metric, block_bytes=1200).fit(store)
    queries = rng.normal(size=(7, 30)).astype(np.float32)
    queries[0] = data[7].ravel()
    idx, dist = index.query(queries, k=4)
    want_idx, want_dist = brute_knn(queries, data, 4, metric)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(idx, LatentIndex(metric=metric).fit(data).query(queries, k=4)[0])  # = in memory
    sk = NearestNeighbors(n_neighbors=4, metric=metric, algorithm="brute").fit(data.reshape(150, -1).astype(np.float64))
    sk_dist, sk_idx = sk.kneighbors(queries.astype(np.float64))
    np.testing.assert_allclose(dist, sk_dist, atol=1e-9)
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(sk_idx, 1))  # sklearn orders the tie 7 = 40 its own way
    s_idx, s_dist = index.self_query(2)
    b_idx, b_dist = brute_knn(data, data, 2, metric, exclude=np.arange(150))
    np.testing.assert_array_equal(s_idx, b_idx)
    np.testing.assert_allclose(s_dist, b_dist, atol=1e-12)
    assert "streamed from" in repr(index) and index.n_features == 30 and index.algorithm_ == "exact"
    if kind == "rows":  # bounded reads: never the whole store at once, one pass per batch of queries
        assert store.largest_read <= 1200
        before = store.rows_read
        index.query(queries, k=4)
        assert store.rows_read - before == 150


def test_store_blocks_follow_zarr_chunks(rng, tmp_path):
    data = rng.normal(size=(100, 8)).astype(np.float32)
    index = LatentIndex(block_bytes=8 * 4 * 30).fit(_zarr(tmp_path, data, chunk_rows=7))
    assert [s.stop - s.start for s in index.rows_.blocks(0)][:3] == [28, 28, 28]  # 30 rows -> 4 whole chunks
    ids = np.array([0, 3, 6, 7, 50, 99])
    np.testing.assert_array_equal(index.rows_.take(ids), data[ids])


def test_approximate_over_store_recall(rng, tmp_path):
    data = clustered(rng, n=2000, d=48)
    store = CountingRows(data)
    index = LatentIndex("svd", block_bytes=1 << 16).fit(store)
    assert index.approximate and not index.rerank  # a chunked store: no random row reads per query
    assert index.recall_ >= 0.9
    assert store.largest_read <= 1 << 16
    mm = LatentIndex("svd").fit(_memmap(tmp_path, data))
    assert mm.rerank and mm.recall_ >= 0.9
    got, got_d = mm.query(data[:20], k=5, exclude=np.arange(20))
    want, want_d = brute_knn(data[:20], data, 5, exclude=np.arange(20))
    assert recall_at_k(got, want) >= 0.9
    exact_pairs = got == want
    np.testing.assert_allclose(got_d[exact_pairs], want_d[exact_pairs], rtol=1e-10)  # re-ranked: true distances


def test_algorithm_selection_and_errors(rng):
    data = rng.normal(size=(30, 4)).astype(np.float32)
    assert LatentIndex().fit(data).algorithm_ == "exact"
    assert LatentIndex(threshold=10).fit(data).algorithm_ == "svd"  # auto above the threshold
    assert LatentIndex("exact", threshold=10).fit(data).algorithm_ == "exact"
    assert LatentIndex("svd").fit(data).approximate  # naming an approximate algorithm asks for it, at any size
    assert not LatentIndex("exact").fit(data).approximate
    with pytest.raises(ValueError, match=r"algorithm must be one of .*'exact'.*got 'faiss'"):
        LatentIndex("faiss")
    # Queries, and what the data decide, need fit(latents) first (scikit-learn's NotFittedError, a ValueError).
    unfitted = LatentIndex("svd")
    assert "not fitted" in repr(unfitted)
    with pytest.raises(ValueError, match=r"call index\.fit\(latents\) first"):
        unfitted.query(data[:1])
    with pytest.raises(ValueError, match="sketch_dims"):
        LatentIndex(sketch_dims=0)
    with pytest.raises(ValueError, match="in memory"):
        LatentIndex("pynndescent", sketch_dims=None).fit(CountingRows(data))
    points = clustered(rng, n=500, d=16)
    index = LatentIndex("svd", sketch_dims=8).fit(points, lazy=True)  # checked now, prepared on first use
    assert "recall@10 not measured yet" in repr(index)
    index.fit(points)
    assert f"recall@10 {index.recall_:.3f}" in repr(index)


def test_approximate_svd_cosine_and_no_rerank(rng):
    data = clustered(rng, n=2000, d=48)
    data[5] = 0.0  # a zero row: cosine 0 to anything
    index = LatentIndex("svd", "cosine", sketch_dims=16).fit(data)
    got, got_d = index.query(data[:50], k=10, exclude=np.arange(50))
    want, want_d = brute_knn(data[:50], data, 10, "cosine", exclude=np.arange(50))
    assert index.recall_ >= 0.9 and recall_at_k(got, want) >= 0.9
    same = got == want
    np.testing.assert_allclose(got_d[same], want_d[same], atol=1e-12)
    # Without re-ranking: the sketch's own neighbours and distances (a 16-d sketch of 48-d
    # clusters keeps the clusters, not the order within them: re-ranking is what makes it exact).
    raw = LatentIndex("svd", sketch_dims=16, rerank=False).fit(data)
    got, got_d = raw.query(data[:50], k=10, exclude=np.arange(50))
    proj = data.astype(np.float64) @ raw._approximate.components.T.astype(np.float64)
    want, want_d = brute_knn(proj[:50], proj, 10, exclude=np.arange(50))
    assert recall_at_k(got, want) >= 0.95  # float32 keys may swap near-ties
    np.testing.assert_allclose(got_d, want_d, rtol=1e-3)
    assert raw.recall_ < index.recall_


def test_a_lazy_fit_prepares_on_the_first_query_and_answers_as_an_eager_one(rng):
    """The session's ``LatentIndex().fit(latents, lazy=True)``: nothing prepared before a query, the same answers."""
    data = rng.normal(size=(40, 6)).astype(np.float32)
    index = LatentIndex().fit(data, lazy=True)
    assert not index._prepared and index.algorithm == "auto" and index.algorithm_ == "exact"
    got = index.query(data[:5] + 0.01, k=3)
    want = LatentIndex().fit(data).query(data[:5] + 0.01, k=3)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
