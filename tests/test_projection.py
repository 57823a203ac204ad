"""Projections and their quality figures against references (latent_widgets.analysis.projection, .map_quality)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from threadpoolctl import threadpool_limits

from latent_widgets.analysis import features as F
from latent_widgets.analysis import map_quality as Q
from latent_widgets.analysis import projection as P
from latent_widgets.analysis import projection_base as B
from latent_widgets.analysis import umap_runtime
from latent_widgets.analysis.pca_projection import PCAProjection
from latent_widgets.analysis.tsne_projection import TSNEProjection
from latent_widgets.analysis.umap_projection import UMAPProjection
from latent_widgets.core.cache import cache_dir
from latent_widgets.latents import cells


@pytest.fixture(autouse=True)
def _one_thread():
    # scikit-learn's Barnes-Hut t-SNE runs OpenMP threads; on a shared 2-core
    # machine their synchronisation makes a 60-point map take seconds, not ms.
    with threadpool_limits(1):
        yield


def blobs(rng, n_per=15, centres=3, shape=(2, 3, 4), sep=6.0):
    c = rng.normal(size=(centres, int(np.prod(shape)))) * sep
    groups = np.repeat(np.arange(centres), n_per)
    x = c[groups] + rng.normal(size=(len(groups), c.shape[1]))
    return x.reshape(len(groups), *shape).astype(np.float32), groups


def same_up_to_sign(a, b, **tol):
    signs = np.sign(np.sum(a * b, axis=0))
    np.testing.assert_allclose(a * signs, b, **tol)


# ----------------------------------------------------------------------------- PCA


def test_pca_matches_numpy_svd(rng):
    x = rng.normal(size=(40, 3, 4, 2)) * np.linspace(0.1, 3, 24).reshape(3, 4, 2)
    flat = x.reshape(40, -1)
    centred = flat - flat.mean(0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    pca = PCAProjection().fit(x)
    same_up_to_sign(pca.embedding_, u[:, :2] * s[:2], atol=1e-9)
    # transform is the same linear map: exact on the training points and on new ones
    np.testing.assert_allclose(pca.transform(x), pca.embedding_, atol=1e-9)
    new = rng.normal(size=(5, 3, 4, 2))
    same_up_to_sign(pca.transform(new), (new.reshape(5, -1) - flat.mean(0)) @ vt[:2].T, atol=1e-9)
    assert pca.transform(new[0]).shape == (1, 2)


def test_pca_feature_options(rng):
    x = rng.normal(size=(30, 4, 5, 6)).astype(np.float32) * rng.uniform(0.1, 5, size=6)
    pooled = x.mean(axis=(1, 2), dtype=np.float64)
    same_up_to_sign(
        PCAProjection(features="pooled").fit_transform(x),
        PCAProjection().fit_transform(pooled),
        rtol=1e-5,
        atol=1e-6,
    )
    flat = x.reshape(30, -1).astype(np.float64)
    z = (flat - flat.mean(0)) / flat.std(0)
    same_up_to_sign(
        PCAProjection(standardize=True).fit_transform(x), PCAProjection().fit_transform(z), rtol=1e-4, atol=1e-4
    )
    # a PCA pre-reduction keeps the top directions, so PCA after it is PCA
    same_up_to_sign(PCAProjection(pca_dims=10).fit_transform(x), PCAProjection().fit_transform(x), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="pooled"):
        PCAProjection(features="pooled").fit(flat)
    with pytest.raises(ValueError, match="features"):
        PCAProjection(features="max").fit(flat)


def test_gap_is_refused_with_its_one_name_pooled(rng):
    # one name for the average over the grid (map_points="pooled", cells.pooled): "gap" is no alias
    x = rng.normal(size=(10, 2, 2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"PCAProjection: features='gap' .*features='pooled'"):
        PCAProjection(features="gap").fit(x)
    with pytest.raises(ValueError, match=r"features='pooled'"):
        F.latent_features(x, "gap")
    with pytest.raises(ValueError, match=r"features='pooled'"):
        Q.quality_table(x, methods=("pca",), features="gap", progress=False)
    np.testing.assert_allclose(F.latent_features(x, "pooled"), cells.pooled(x), rtol=1e-6)


def spectrum_data(rng, n=400, d=60, rank=8):
    """Low-rank signal with a clear spectrum plus small noise, offset from zero."""
    scales = np.geomspace(20, 2, rank)
    return (rng.normal(size=(n, rank)) * scales) @ rng.normal(size=(rank, d)) + rng.normal(size=(n, d)) * 0.1 + 3.0


def test_blocked_pca_matches_sklearn(rng):
    from sklearn.decomposition import PCA

    from latent_widgets.analysis.blocked_pca import BlockedPCA

    x = spectrum_data(rng)
    ref = PCA(5, svd_solver="full").fit(x)
    mine = BlockedPCA(5, block_rows=37).fit(x)  # blocks that do not divide N
    np.testing.assert_allclose(mine.explained_variance_, ref.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(mine.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(mine.singular_values_, ref.singular_values_, rtol=1e-8)
    np.testing.assert_allclose(mine.mean_, ref.mean_, atol=1e-12)
    # the same subspace, component by component (up to sign)
    np.testing.assert_allclose(np.abs((mine.components_ * ref.components_).sum(axis=1)), 1.0, atol=1e-8)
    same_up_to_sign(mine.transform(x), ref.transform(x), atol=1e-6)
    with pytest.raises(ValueError, match="n_components must be between 1 and min"):
        BlockedPCA(61).fit(x)
    with pytest.raises(ValueError, match="fitted on 60"):
        mine.transform(x[:, :5])


@pytest.fixture
def small_blocks(monkeypatch):
    # a few KiB per block, so that the test data span many blocks
    monkeypatch.setattr(B, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(F, "BLOCK_BYTES", 4096)


@pytest.mark.parametrize("kind", ["memmap", "zarr"])
def test_pca_fits_a_store_by_blocks_like_an_array(rng, tmp_path, small_blocks, kind):
    x = spectrum_data(rng, d=48).astype(np.float32).reshape(400, 4, 4, 3)
    if kind == "memmap":
        store = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=x.dtype, shape=x.shape)
        store[:] = x
    else:
        import zarr

        store = zarr.create_array(tmp_path / "z.zarr", shape=x.shape, chunks=(50, 4, 4, 3), dtype=x.dtype)
        store[:] = x
    np.testing.assert_array_equal(F.latent_features(store), x.reshape(400, -1))
    np.testing.assert_allclose(F.latent_features(store, "pooled"), F.latent_features(x, "pooled"), rtol=1e-6)
    ref = PCAProjection().fit(x)
    mine = PCAProjection().fit(store)
    assert type(mine.pca_).__name__ == "BlockedPCA"
    np.testing.assert_allclose(mine.pca_.explained_variance_, ref.pca_.explained_variance_, rtol=1e-5)
    same_up_to_sign(mine.embedding_, ref.embedding_, atol=1e-3)
    same_up_to_sign(mine.transform(store), ref.embedding_, atol=1e-3)  # transform reads a store by blocks too
    # standardisation statistics by blocks
    std = PCAProjection(standardize=True).fit(store)
    np.testing.assert_allclose(std.scale_, x.reshape(400, -1).astype(np.float64).std(0), rtol=1e-5)
    # a PCA pre-reduction of a store for t-SNE: blocked, then the map from 10 numbers per latent
    tsne = TSNEProjection(pca_dims=10, max_iter=300).fit(store)
    assert type(tsne.pre_pca_).__name__ == "BlockedPCA" and tsne.train_features_.shape == (400, 10)
    assert tsne.transform(x[:2]).shape == (2, 2)
    # the disk cache keys a store by its blocks' content
    assert P.cache_key(store, PCAProjection()) == P.cache_key(store, PCAProjection())
    assert P.cache_key(store, PCAProjection()) != P.cache_key(store, PCAProjection(standardize=True))
    np.testing.assert_allclose(P.project(store, "pca", progress=False), mine.embedding_)


def test_large_features_in_memory_use_blocked_pca(rng, monkeypatch):
    x = spectrum_data(rng)
    monkeypatch.setattr(B, "BLOCKED_PCA_BYTES", x.nbytes - 1)
    ref = PCAProjection(method_kwargs={"svd_solver": "full"})
    monkeypatch.setattr(B, "BLOCKED_PCA_BYTES", x.nbytes)
    exact = ref.fit(x).embedding_
    monkeypatch.setattr(B, "BLOCKED_PCA_BYTES", x.nbytes - 1)
    blocked = PCAProjection(method_kwargs={"iterated_power": 6}).fit(x)
    assert type(blocked.pca_).__name__ == "BlockedPCA" and blocked.pca_.n_iter == 6
    same_up_to_sign(blocked.embedding_, exact, atol=1e-6)
    with pytest.raises(ValueError, match=r"method_kwargs \['svd_solver'\] are scikit-learn PCA's"):
        ref.fit(x)


def test_make_projection_and_errors(rng):
    assert isinstance(P.make_projection("PCA"), PCAProjection)
    assert isinstance(P.make_projection("tsne", pca_dims=5), TSNEProjection)
    with pytest.raises(ValueError, match=r"'pca', 'tsne', 'umap'"):
        P.make_projection("isomap")
    with pytest.raises(ValueError, match="not fitted"):
        PCAProjection().transform(np.zeros((1, 3)))
    pca = PCAProjection().fit(rng.normal(size=(10, 2, 3)))
    with pytest.raises(ValueError, match="like the fitted"):
        pca.transform(np.zeros((1, 3, 2)))


# ----------------------------------------------------------------------------- t-SNE


def test_tsne_deterministic_and_placement(rng):
    x, groups = blobs(rng)
    kw = dict(pca_dims=10, max_iter=300)
    a = TSNEProjection(**kw).fit(x)
    b = TSNEProjection(**kw).fit_transform(x)
    assert np.array_equal(a.embedding_, b)
    assert a.pre_pca_ is not None and a.pre_pca_.n_components_ == 10
    # a training latent lands on its own point, bit for bit
    np.testing.assert_array_equal(a.transform(x[[3, 20]]), a.embedding_[[3, 20]])
    # a slightly moved one lands in its own cluster on the map
    moved = x + rng.normal(size=x.shape).astype(np.float32) * 0.05
    placed = a.transform(moved)
    centroids = np.stack([a.embedding_[groups == g].mean(0) for g in range(3)])
    nearest = np.argmin(((placed[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == groups).mean() >= 0.95
    own = np.linalg.norm(placed - a.embedding_, axis=1)
    assert np.median(own) < 0.2 * np.median(pdist(a.embedding_))


def test_tsne_is_raw_opentsne_with_the_same_settings(rng):
    import openTSNE

    x, _ = blobs(rng, n_per=20)
    flat = x.reshape(len(x), -1)
    mine = TSNEProjection(max_iter=400, n_jobs=1, method_kwargs={"exaggeration": 1.5}).fit(x)
    raw = openTSNE.TSNE(
        perplexity=min(30.0, (len(x) - 1) / 3), n_iter=150, exaggeration=1.5, n_jobs=1, random_state=0
    ).fit(flat)
    np.testing.assert_allclose(mine.embedding_, np.asarray(raw), rtol=1e-6, atol=1e-9)
    other = TSNEProjection(max_iter=400, random_state=1, method_kwargs={"exaggeration": 1.5}).fit(x)
    assert not np.allclose(other.embedding_, mine.embedding_)


def test_tsne_places_held_out_points_inside_their_cluster(rng):
    # Two clusters, two islands on the map. Held-out points of cluster A on the
    # side facing B (a few of B's latents among their nearest): openTSNE's
    # optimisation against the map puts them among A's points (within about one
    # point spacing of the nearest), where the neighbour average used before
    # leaves them nearer the island's edge, towards the gap.
    from latent_widgets.analysis.neighbors import LatentIndex

    d = 20
    a, b = np.zeros(d), np.zeros(d)
    b[0] = 6.0
    x = np.concatenate([a + rng.normal(size=(40, d)), b + rng.normal(size=(40, d))]).astype(np.float32)
    cluster = np.repeat([0, 1], 40)
    held = (a + (b - a) * 0.2 + rng.normal(size=(20, d)) * 0.3).astype(np.float32)
    tsne = TSNEProjection(n_jobs=1).fit(x)
    emb = tsne.embedding_
    own = emb[cluster == 0]
    spacing = np.median(np.sort(np.linalg.norm(own[:, None] - own[None], axis=-1), axis=1)[:, 1])

    def gaps(points):  # distance to the nearest point of A's island, in A's point spacings
        return np.linalg.norm(points[:, None] - own[None], axis=-1).min(axis=1) / spacing

    placed = tsne.transform(held)
    nearest = np.argsort(np.linalg.norm(placed[:, None] - emb[None], axis=-1), axis=1)[:, :5]
    assert (cluster[nearest] == 0).all()
    assert np.median(gaps(placed)) < 1.0
    idx, _ = LatentIndex().fit(x).query(held, k=10)
    assert (cluster[idx] == 1).any()  # B's latents among the neighbours: the hard case
    average = emb[idx].mean(axis=1)
    assert gaps(placed).mean() < 0.8 * gaps(average).mean()


def test_tsne_trustworthiness_on_blobs(rng):
    from sklearn.manifold import trustworthiness

    x, _ = blobs(rng, n_per=30, centres=4)
    y = TSNEProjection(n_jobs=1).fit_transform(x)
    assert trustworthiness(x.reshape(len(x), -1), y, n_neighbors=5) > 0.9


def test_pca_dims_auto_reduces_large_wide_sets_only(rng, monkeypatch):
    assert TSNEProjection().pre_pca_dims(B.AUTO_PCA_MIN_SAMPLES, 6144) == B.AUTO_PCA_DIMS
    assert TSNEProjection().pre_pca_dims(B.AUTO_PCA_MIN_SAMPLES - 1, 6144) == 0
    assert UMAPProjection().pre_pca_dims(10**5, B.AUTO_PCA_DIMS) == 0  # no more features than that
    assert PCAProjection().pre_pca_dims(10**5, 6144) == 0
    assert TSNEProjection(pca_dims=None).pre_pca_dims(10**5, 6144) == 0
    assert TSNEProjection(pca_dims=20).pre_pca_dims(10, 6144) == 10
    monkeypatch.setattr(B, "AUTO_PCA_MIN_SAMPLES", 60)
    x, _ = blobs(rng, n_per=20, shape=(8, 10))
    fitted = UMAPProjection(n_epochs=30).fit(x)
    assert fitted.pre_pca_.n_components_ == B.AUTO_PCA_DIMS
    # the auto threshold is part of the cache key: another setting, another entry
    key = P.cache_key(x, UMAPProjection())
    monkeypatch.setattr(B, "AUTO_PCA_MIN_SAMPLES", 61)
    assert P.cache_key(x, UMAPProjection()) != key
    with pytest.raises(ValueError, match=r"pca_dims must be an int >= 1 .*'auto' or None"):
        TSNEProjection(pca_dims="all").fit(x)


# ----------------------------------------------------------------------------- UMAP


def test_umap_deterministic_and_transform(rng):
    x, _ = blobs(rng, n_per=12)
    kw = dict(n_epochs=60)
    a = UMAPProjection(**kw).fit(x)
    b = UMAPProjection(**kw).fit_transform(x)
    assert np.array_equal(a.embedding_, b) and b.shape == (36, 2)
    np.testing.assert_array_equal(a.transform(x[:2]), a.embedding_[:2])
    new = a.transform(x[:3] + 0.1)
    assert new.shape == (3, 2) and np.isfinite(new).all()


# ----------------------------------------------------------------------------- scikit-learn contract

ESTIMATORS = [
    PCAProjection(),
    TSNEProjection(pca_dims=5, max_iter=300),
    UMAPProjection(n_epochs=20, method_kwargs={"min_dist": 0.2}),
]
NAMES = [type(e).__name__ for e in ESTIMATORS]


@pytest.mark.parametrize("est", ESTIMATORS, ids=NAMES)
def test_params_and_clone(est):
    from sklearn.base import clone

    params = est.get_params()
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est and twin.get_params() == params
    assert twin.set_params(**params) is twin and twin.get_params() == params
    twin.set_params(random_state=3)
    assert twin.random_state == 3 and est.random_state == 0
    # the constructor stores its arguments unchanged: checks wait for fit
    odd = type(est)(n_components="two", pca_dims=1.5)
    assert odd.n_components == "two" and odd.pca_dims == 1.5


def test_clone_of_a_fitted_projection_is_unfitted(rng):
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    pca = PCAProjection(standardize=True).fit(rng.normal(size=(10, 4)))
    twin = clone(pca)
    assert twin.get_params() == pca.get_params() and not hasattr(twin, "embedding_")
    with pytest.raises(NotFittedError, match=r"This PCAProjection is not fitted yet: call fit\(latents\) first"):
        twin.transform(np.zeros((1, 4)))


SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_mixin_order",
]
FITTING_CHECKS = [
    "check_transformers_unfitted",
    "check_fit_check_is_fitted",
    "check_estimators_fit_returns_self",
    "check_dont_overwrite_parameters",
    "check_estimators_overwrite_params",
    "check_n_features_in",
]


@pytest.mark.parametrize("check", SKLEARN_CHECKS)
@pytest.mark.parametrize("est", ESTIMATORS, ids=NAMES)
def test_sklearn_estimator_checks(est, check):
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check)(type(est).__name__, est)


@pytest.mark.parametrize("check", FITTING_CHECKS)
@pytest.mark.parametrize("est", ESTIMATORS[:2], ids=NAMES[:2])
def test_sklearn_fitting_checks(est, check):
    # UMAP left out: the same base class, and each of its fits takes seconds
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check)(type(est).__name__, est)


def test_fit_checks_parameters_and_latents_with_clear_errors(rng):
    x = rng.normal(size=(12, 3, 4))
    cases = [
        (PCAProjection(n_components=0), r"PCAProjection: n_components must be an int >= 1"),
        (PCAProjection(pca_dims=0), r"pca_dims must be an int >= 1 \(e.g. 50\), 'auto' or None"),
        (PCAProjection(standardize="yes"), "standardize must be True or False"),
        (PCAProjection(method_kwargs=[("svd_solver", "full")]), "method_kwargs must be a dict"),
        (
            TSNEProjection(method_kwargs={"perplexity": 5}),
            r"set them directly, e.g. TSNEProjection\(perplexity=...\)",
        ),
        (TSNEProjection(transform_neighbors=0), "transform_neighbors must be an int >= 1"),
        (TSNEProjection(perplexity=-1.0), "perplexity must be a number > 0"),
        (UMAPProjection(n_neighbors=1), "n_neighbors must be an int >= 2"),
        (TSNEProjection(max_iter=250), r"TSNEProjection: max_iter must be an int >= 251 \(more than the 250"),
        (TSNEProjection(n_jobs=0), "n_jobs must be a non-zero int"),
    ]
    for est, message in cases:
        with pytest.raises(ValueError, match=message):
            est.fit(x)
    bad = x.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity; drop those samples or replace"):
        PCAProjection().fit(bad)
    with pytest.raises(ValueError, match="at least 2 latents"):
        PCAProjection().fit(x[:1])
    with pytest.raises(ValueError, match="real numbers"):
        PCAProjection().fit(x.astype(complex))
    assert P.make_projection("tsne", learning_rate=50.0).method_kwargs == {"learning_rate": 50.0}


@pytest.mark.parametrize("method, kw", [("pca", {"standardize": True}), ("tsne", {"pca_dims": 5, "max_iter": 300})])
def test_state_round_trip_restores_the_transform(rng, tmp_path, method, kw):
    x, _ = blobs(rng, n_per=8)
    fitted = P.make_projection(method, **kw).fit(x)
    np.savez(tmp_path / "state.npz", **fitted.to_state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as data:
        state = dict(data)
    restored = P.make_projection(method, **kw).from_state(state, x)
    new = x[:5] + rng.normal(size=x[:5].shape).astype(np.float32) * 0.1
    np.testing.assert_array_equal(restored.embedding_, fitted.embedding_)
    np.testing.assert_array_equal(restored.transform(new), fitted.transform(new))
    with pytest.raises(ValueError, match="same parameters"):
        P.make_projection(method, random_state=1).from_state(state, x)
    with pytest.raises(ValueError, match="the latents it was fitted on"):
        P.make_projection(method, **kw).from_state(state, x[:-1])
    with pytest.raises(ValueError, match="same parameters"):
        UMAPProjection().from_state(state, x)  # a state of another method


def test_umap_restores_its_map_at_once_and_refits_its_model_on_first_transform(rng):
    x, _ = blobs(rng, n_per=8)
    fitted = UMAPProjection(n_epochs=50).fit(x)
    restored = UMAPProjection(n_epochs=50).from_state(fitted.to_state(), x)
    assert restored.umap_ is None  # the map only: no UMAP fit yet
    np.testing.assert_array_equal(restored.embedding_, fitted.embedding_)
    new = x[:5] + rng.normal(size=x[:5].shape).astype(np.float32) * 0.1
    # seeded: the refitted model is the one the map came from
    np.testing.assert_allclose(restored.transform(new), fitted.transform(new), atol=1e-5)
    assert restored.umap_ is not None


# ----------------------------------------------------------------------------- project / cache


def test_project_caches_by_content(rng):
    x = rng.normal(size=(20, 3, 3)).astype(np.float32)
    before = set(cache_dir("projections").glob("*.npz"))
    y1 = P.project(x, "pca", progress=False)
    added = set(cache_dir("projections").glob("*.npz")) - before
    assert len(added) == 1
    y2 = P.project(x, "pca", progress=False)
    assert np.array_equal(y1, y2) and y1.dtype == np.float64
    assert len(set(cache_dir("projections").glob("*.npz")) - before) == 1  # a hit, not a new entry
    P.project(x, "pca", progress=False, standardize=True)  # other parameters: another entry
    P.project(x + 1, "pca", progress=False)  # other latents: another entry
    assert len(set(cache_dir("projections").glob("*.npz")) - before) == 3
    same = P.project(x, "pca", cache=False, progress=False)
    assert np.array_equal(same, y1)


def test_fit_projection_reuses_cached_tsne(rng):
    x, _ = blobs(rng, n_per=10)
    y = P.project(x, "tsne", progress=False, max_iter=300)
    proj = P.fit_projection(x, "tsne", progress=False, max_iter=300)
    assert not hasattr(proj, "tsne_")  # the map came from the cache, no refit
    assert np.array_equal(proj.embedding_, y)
    np.testing.assert_array_equal(proj.transform(x[:2]), y[:2])
    # the restored fit places new latents exactly as a fresh fit does
    new = x[:4] + rng.normal(size=x[:4].shape).astype(np.float32) * 0.1
    fresh = TSNEProjection(max_iter=300).fit(x)
    np.testing.assert_array_equal(proj.transform(new), fresh.transform(new))


# ----------------------------------------------------------------------------- quality


@pytest.mark.parametrize("shape, k", [((50, 6), 5), ((40, 30), 3), ((36, 2, 3, 50), 10)])
def test_trustworthiness_equals_sklearn(rng, shape, k):
    from sklearn.manifold import trustworthiness as sk_trust

    x = rng.normal(size=shape).astype(np.float32 if len(shape) > 2 else np.float64)
    y = rng.normal(size=(shape[0], 2)) + x.reshape(shape[0], -1)[:, :2]
    got = Q.trustworthiness(x, y, n_neighbors=k)
    want = sk_trust(x.reshape(shape[0], -1), y, n_neighbors=k)
    assert got == pytest.approx(want, abs=1e-12)
    assert Q.trustworthiness(x, x.reshape(shape[0], -1), n_neighbors=k) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_samples / 2"):
        Q.trustworthiness(x, y, n_neighbors=shape[0] // 2)


def test_trustworthiness_brute_force(rng):
    # Venna & Kaski's definition written out: every map neighbour outside the
    # k nearest latents costs its latent-space rank minus k.
    n, k = 30, 4
    x = rng.normal(size=(n, 8))
    y = x[:, :2] + rng.normal(size=(n, 2)) * 0.5
    dx = ((x[:, None] - x[None]) ** 2).sum(-1)
    dy = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    penalty = 0
    for i in range(n):
        rank = {j: r + 1 for r, j in enumerate(np.argsort(dx[i]))}
        penalty += sum(max(rank[j] - k, 0) for j in np.argsort(dy[i])[:k])
    want = 1 - 2 / (n * k * (2 * n - 3 * k - 1)) * penalty
    assert Q.trustworthiness(x, y, k) == pytest.approx(want, abs=1e-12)


def test_knn_preservation_brute_force(rng):
    x = rng.normal(size=(30, 8))
    y = x[:, :2] + rng.normal(size=(30, 2)) * 0.5
    k = 4
    dx = ((x[:, None] - x[None]) ** 2).sum(-1)
    dy = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    want = np.mean([len(set(np.argsort(dx[i])[:k]) & set(np.argsort(dy[i])[:k])) / k for i in range(30)])
    assert Q.knn_preservation(x, y, k) == pytest.approx(want)
    assert Q.knn_preservation(x, 2 * x + 3, k) == 1.0


def test_ranges_and_spread(rng):
    y = rng.normal(size=(50, 2)) * [3.0, 0.5]
    r = Q.coordinate_ranges(y)
    assert r.shape == (2, 2) and r.tolist() == [[y[:, 0].min(), y[:, 0].max()], [y[:, 1].min(), y[:, 1].max()]]
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    assert Q.spread(grid) == pytest.approx(1.0 / np.median(pdist(grid)))  # every NN is 1 apart
    assert Q.spread(1e5 * grid - 3) == pytest.approx(Q.spread(grid))
    clumps = np.repeat(np.array([[0.0, 0.0], [100.0, 0.0]]), 20, axis=0) + rng.normal(size=(40, 2)) * 0.1
    assert Q.spread(clumps) < 0.01 < Q.spread(grid)


def test_group_separation_references(rng):
    from sklearn.metrics import silhouette_score

    y = rng.normal(size=(40, 2))
    g = rng.integers(0, 3, 40)
    y[g == 1] += 4
    s = Q.group_separation(y, g, k=5)
    assert s["silhouette"] == pytest.approx(silhouette_score(y, g))
    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert s["knn_agreement"] == pytest.approx((g[nb] == g[:, None]).mean())
    counts = np.bincount(g)
    assert s["knn_chance"] == pytest.approx((counts * (counts - 1)).sum() / (40 * 39))
    assert np.isnan(Q.group_separation(y, np.zeros(40, int), k=5)["silhouette"])


def test_quality_table_one_call(rng):
    x, groups = blobs(rng, n_per=12)
    rows = Q.quality_table(
        x,
        groups,
        methods=("pca", "tsne"),
        k=5,
        include_latent=True,
        method_kwargs={"tsne": {"max_iter": 300}},
        progress=False,
    )
    assert [r["method"] for r in rows] == ["latent", "pca", "tsne"]
    for r in rows[1:]:
        y = P.project(x, r["method"], progress=False, **({"max_iter": 300} if r["method"] == "tsne" else {}))
        assert r["trustworthiness"] == pytest.approx(Q.trustworthiness(x, y, 5))
        assert r["knn_preservation"] == pytest.approx(Q.knn_preservation(x, y, 5))
        assert r["spread"] == pytest.approx(Q.spread(y))
        assert [[r["x_min"], r["x_max"]], [r["y_min"], r["y_max"]]] == Q.coordinate_ranges(y).tolist()
        assert r["knn_agreement"] > 0.8 > 0.4 > r["knn_chance"] and r["seconds"] >= 0
    table = Q.format_table(rows)
    assert table.splitlines()[0].startswith("| method | seconds | trustworthiness")
    assert len(table.splitlines()) == 5


def test_umap_compiles_once_per_machine_not_per_process():
    # umap-learn's jitted functions without cache=True get numba's disk cache
    from numba.core.caching import NullCache

    umap = umap_runtime.import_umap()
    for fn in (umap.umap_.smooth_knn_dist, umap.utils.fast_knn_indices, umap.layouts.optimize_layout_euclidean):
        assert not isinstance(getattr(fn, "_cache", None), NullCache), fn


def test_analysis_modules_stay_light():
    # No widget or TensorFlow import from the analysis modules, even when UMAP
    # is loaded; and the library core never imports the study's claims.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import latent_widgets.analysis.projection\n"
        "from latent_widgets.analysis import umap_runtime as p\n"
        "from latent_widgets.analysis import attributes, interpolation, map_quality, metrics, neighbors\n"
        "p.import_umap()\n"
        "heavy = ('tensorflow', 'keras', 'ipywidgets', 'bqplot', 'latent_widgets.study')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_umaps_import_hides_tensorflow_from_its_own_thread_only(tmp_path) -> None:
    """The warm-up imports umap (TensorFlow hidden) in a background thread while a user's thread may import keras."""
    import importlib
    import sys
    import threading

    from latent_widgets.analysis.umap_runtime import hidden_in_this_thread

    (tmp_path / "lw_probe_pkg").mkdir()
    (tmp_path / "lw_probe_pkg" / "__init__.py").write_text("VALUE = 7\n")
    sys.path.insert(0, str(tmp_path))
    seen: dict[str, object] = {}
    try:
        with hidden_in_this_thread("lw_probe_pkg"):
            with pytest.raises(ModuleNotFoundError, match="lw_probe_pkg"):
                importlib.import_module("lw_probe_pkg")
            other = threading.Thread(target=lambda: seen.update(mod=importlib.import_module("lw_probe_pkg")))
            other.start()
            other.join(10)
        assert getattr(seen.get("mod"), "VALUE", None) == 7, "another thread could not import the package"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lw_probe_pkg", None)


def test_the_first_compile_runs_in_a_child_process_once(tmp_path, monkeypatch) -> None:
    """numba holds the GIL while compiling: the warm-up compiles in a child, once, and leaves a marker."""
    import time

    from latent_widgets.analysis.warm_up import _compile_in_a_child

    monkeypatch.setenv("LATENT_WIDGETS_CACHE_DIR", str(tmp_path))
    _compile_in_a_child()
    markers = list((tmp_path / "numba").glob("compiled-*"))
    assert len(markers) == 1 and "py3" in markers[0].name, markers
    t0 = time.perf_counter()
    _compile_in_a_child()  # done: no child process this time
    assert time.perf_counter() - t0 < 0.5


def test_sessions_started_together_share_one_warm_up_that_ends() -> None:
    """Each session asks for the warm-up; two of them running at once waited for each other for 15 minutes."""
    import threading

    from latent_widgets.analysis import umap_runtime
    from latent_widgets.analysis.warm_up import warm_up_projections

    started = [warm_up_projections() for _ in range(6)]  # six sessions, as the widget tests start them
    assert all(t is started[0] for t in started) and umap_runtime.warm_up_thread is started[0]
    started[0].join(300)
    assert not started[0].is_alive()
    assert [t for t in threading.enumerate() if t.name == "latent-widgets-warm-up"] == []
    again = warm_up_projections()  # the next session: a new warm-up (cheap now), which ends too
    assert again is not started[0]
    again.join(300)
    assert not again.is_alive()
