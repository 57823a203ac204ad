"""How good a 2-D map of a latent set is: neighbourhoods, spread, group separation.

The measures compare a map ``Y`` (N, n_components) with the latents ``X`` it
was made from (N, ...), or look at the map alone:

- :func:`trustworthiness`: :func:`sklearn.manifold.trustworthiness` on exact
  float64 latent distances;
- :func:`knn_preservation`: the fraction of k-NN kept;
- :func:`local_trustworthiness`, :func:`local_knn_preservation`: the same
  figures point by point (their means are the global ones), to colour a map
  by where it can be trusted;
- :func:`coordinate_ranges`: the extent of the map, the study's figure;
- :func:`spread`: mean nearest-neighbour distance over median pairwise
  distance, scale-free;
- :func:`group_separation`: silhouette and k-NN group agreement of known
  groups (CamVid sequences);
- :func:`quality_table` computes them all for several maps of the same
  latents in one call (maps from :func:`latent_widgets.analysis.projection.project`),
  and :func:`format_table` renders it as Markdown.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.map_quality import knn_preservation, trustworthiness
>>> x = np.random.default_rng(0).normal(size=(40, 5))
>>> trustworthiness(x, x[:, :2]) > 0.7, knn_preservation(x, 2 * x, k=5)
(True, 1.0)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from ..core.arrays import BLOCK_BYTES, as_float_rows, is_row_store, iter_row_blocks
from .features import column_mean_std, latent_features, standardized
from .projection import METHODS, fit_cached

__all__ = [
    "coordinate_ranges",
    "format_table",
    "group_separation",
    "knn_preservation",
    "local_knn_preservation",
    "local_trustworthiness",
    "quality_table",
    "spread",
    "trustworthiness",
]


def _distance_order(d: np.ndarray) -> np.ndarray:
    """Each row's other points, nearest first, ties by index (self excluded)."""
    d = np.array(d, np.float64)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, : len(d) - 1]


def _reference_distances(x: np.ndarray) -> np.ndarray:
    # Exact float64 squared distances, a block of features at a time: the
    # latents are not converted to float64 whole (325 MB for SegNet's).
    from .distances import pairwise_distances

    return pairwise_distances(x, squared=True)


def _reference_order(x: np.ndarray) -> np.ndarray:
    return _distance_order(_reference_distances(x))


def _trust_from_distances(dx: np.ndarray, y: np.ndarray, n_neighbors: int) -> float:
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    # Squared distances rank like distances, so they serve as "precomputed".
    return float(sk_trustworthiness(dx, y, n_neighbors=n_neighbors, metric="precomputed"))


def _map_order(y: np.ndarray) -> np.ndarray:
    return _reference_order(np.asarray(y, np.float64))


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fx, fy = as_float_rows(x, "X"), as_float_rows(y, "Y")
    if len(fx) != len(fy):
        raise ValueError(f"X has {len(fx)} rows and Y {len(fy)}; they must be the same points")
    return fx, fy


def trustworthiness(x: np.ndarray, y: np.ndarray, n_neighbors: int = 5) -> float:
    """How much the map's neighbourhoods are true neighbourhoods of the latents.

    :func:`sklearn.manifold.trustworthiness` (euclidean): 1 minus a penalty
    for every map neighbour that is not among the ``n_neighbors`` nearest
    latents, weighted by its latent-space rank. The latent distances are
    computed here, exact in float64 (float32 latents are converted a block of
    features at a time), and handed to scikit-learn as ``"precomputed"``.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
        The latents (or their features).
    y : ndarray, shape (N, n_components)
        The map.
    n_neighbors : int
        Must be below ``N / 2``.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(40, 5))
    >>> trustworthiness(x, x[:, :2]) > 0.7
    True
    """
    fx, fy = _check_xy(x, y)
    return _trust_from_distances(_reference_distances(fx), fy, int(n_neighbors))


def _knn_pres_from_orders(order_x: np.ndarray, order_y: np.ndarray, k: int) -> float:
    a, b = order_x[:, :k], order_y[:, :k]
    return float((a[:, :, None] == b[:, None, :]).any(axis=2).mean())


def knn_preservation(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's ``k`` nearest latents that are also its ``k`` nearest on the map.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : ndarray, shape (N, n_components)
    k : int

    Returns
    -------
    float in [0, 1]
        1 = every neighbourhood kept; about ``k / (N - 1)`` for a random map.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(30, 2))
    >>> knn_preservation(x, 3 * x + 1, k=5)
    1.0
    """
    fx, fy = _check_xy(x, y)
    if not 1 <= k < len(fx):
        raise ValueError(f"k must be in 1..{len(fx) - 1}, got {k}")
    return _knn_pres_from_orders(_reference_order(fx), _map_order(fy), int(k))


# ----------------------------------------------------------------------------- per point


def _rows_of(x: Any, name: str) -> tuple[Any, int, bool]:
    """The latents as rows (a flat ndarray, or the store as given), their count, and whether streamed."""
    if is_row_store(x):
        shape = tuple(int(s) for s in x.shape)
        if len(shape) < 2:
            raise ValueError(f"{name} must have shape (N, ...) with one latent per row, got {shape}")
        return x, shape[0], True
    fx = as_float_rows(x, name)
    return fx, len(fx), False


def _read_flat(x: Any, rows: slice) -> np.ndarray:
    block = np.asarray(x[rows])
    return block.reshape(len(block), -1)


def _distance_rows(x: Any, streamed: bool, n: int, block: int) -> Iterator[np.ndarray]:
    """Squared float64 distances of blocks of ``block`` rows to all ``n`` rows, self at +inf.

    One block holding every row is the very matrix of :func:`trustworthiness`
    (so the means agree to the last bit); smaller blocks compare each block
    with the rows in memory, or with a store read a bounded block at a time.
    """
    from .distances import pairwise_distances

    if block >= n and not streamed:
        d = _reference_distances(x)
        np.fill_diagonal(d, np.inf)
        yield d
        return
    for rows in iter_row_blocks(n, block):
        q = _read_flat(x, rows) if streamed else x[rows]
        if streamed:
            d = np.empty((len(q), n), np.float64)
            step = max(1, BLOCK_BYTES // (8 * max(q.shape[1], 1)))
            for cols in iter_row_blocks(n, step):
                d[:, cols] = pairwise_distances(q, _read_flat(x, cols), squared=True)
        else:
            d = pairwise_distances(q, x, squared=True)
        d[np.arange(len(q)), np.arange(rows.start, rows.stop)] = np.inf
        yield d


def _nearest(d: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` smallest entries, nearest first, ties in index order (as a stable argsort)."""
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(d, part, 1)
    order = np.lexsort((part, vals), axis=1)
    out = np.take_along_axis(part, order, 1)
    # argpartition breaks ties at the k-th distance arbitrarily: redo those rows stably.
    tied = np.flatnonzero((d <= vals.max(axis=1, keepdims=True)).sum(axis=1) > k)
    if len(tied):
        out[tied] = np.argsort(d[tied], axis=1, kind="stable")[:, :k]
    return out


def _local_scores(x: Any, y: np.ndarray, k: int, what: Literal["trust", "knn"]) -> np.ndarray:
    fx, n, streamed = _rows_of(x, "X")
    fy = np.asarray(y, np.float64)
    if fy.ndim != 2 or len(fy) != n:
        raise ValueError(f"Y must be the map of the same points, shape ({n}, n_components), got {fy.shape}")
    if not np.isfinite(fy).all():
        raise ValueError("Y has NaN or infinite coordinates; recompute the map")
    # Rows per block: the (B, N) distances of both spaces and the (B, k, N) rank comparisons stay bounded.
    block = n if n * n * 8 <= BLOCK_BYTES else max(1, BLOCK_BYTES // ((16 + 2 * k) * n))
    out = np.empty(n, np.float64)
    start = 0
    for dx, dy in zip(_distance_rows(fx, streamed, n, block), _distance_rows(fy, False, n, block), strict=True):
        rows = slice(start, start + len(dx))
        start = rows.stop
        near_y = _nearest(dy, k)
        if what == "knn":
            near_x = _nearest(dx, k)
            out[rows] = (near_x[:, :, None] == near_y[:, None, :]).any(axis=2).mean(axis=1)
            continue
        # Latent-space rank of each map neighbour (1 = nearest), ties in index order as in a stable argsort.
        v = np.take_along_axis(dx, near_y, 1)[:, :, None]
        closer = (dx[:, None, :] < v).sum(axis=2)
        tied = ((dx[:, None, :] == v) & (np.arange(n) < near_y[:, :, None])).sum(axis=2)
        penalty = np.maximum(closer + tied + 1 - k, 0).sum(axis=1)
        out[rows] = 1.0 - penalty * (2.0 / (k * (2.0 * n - 3.0 * k - 1.0)))
    return out


def local_trustworthiness(x: np.ndarray, y: np.ndarray, n_neighbors: int = 5) -> np.ndarray:
    """Each point's share of :func:`trustworthiness`: whether its map neighbours are latent neighbours.

    Point ``i`` scores ``1 - 2 / (k (2N - 3k - 1)) * sum_j max(r(i, j) - k, 0)``
    over its ``k`` nearest map neighbours ``j``, where ``r(i, j)`` is the
    rank of ``j`` among ``i``'s nearest latents: 1 when every map neighbour
    is among its ``k`` nearest latents, lower the farther in latent space
    they really are. The mean over the points is :func:`trustworthiness`
    (the normalisation of :func:`sklearn.manifold.trustworthiness`), so a
    low point shows where the map's figure is lost.

    Parameters
    ----------
    x : ndarray or row-indexable store, shape (N, ...)
        The latents (or their features). A store (a Zarr array, a
        :class:`~latent_widgets.latents.stored_array.StoredArray`, a memmap) is read in
        row blocks; above about 2900 points the distances are computed a
        block of rows at a time, never as one N x N matrix.
    y : ndarray, shape (N, n_components)
        The map.
    n_neighbors : int
        Must be below ``N / 2``.

    Returns
    -------
    ndarray, float64, shape (N,)
        In [0, 1]: 0 when a point's map neighbours are its farthest latents.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(40, 5))
    >>> t = local_trustworthiness(x, x[:, :2])
    >>> t.shape, bool(abs(t.mean() - trustworthiness(x, x[:, :2])) < 1e-12)
    ((40,), True)
    >>> float(local_trustworthiness(x, 2 * x).min())
    1.0
    """
    k = int(n_neighbors)
    n = int(np.shape(x)[0])
    if not 1 <= k < n / 2:
        raise ValueError(f"n_neighbors ({k}) should be at least 1 and less than n_samples / 2 ({n / 2})")
    return _local_scores(x, y, k, "trust")


def local_knn_preservation(x: np.ndarray, y: np.ndarray, k: int = 10) -> np.ndarray:
    """Each point's fraction of its ``k`` nearest latents that are also its ``k`` nearest on the map.

    The mean over the points is :func:`knn_preservation`; ties are broken
    by index as there.

    Parameters
    ----------
    x : ndarray or row-indexable store, shape (N, ...)
        As in :func:`local_trustworthiness` (streamed, in row blocks).
    y : ndarray, shape (N, n_components)
    k : int
        In ``1 .. N - 1``.

    Returns
    -------
    ndarray, float64, shape (N,)
        Multiples of ``1 / k`` in [0, 1].

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(30, 3))
    >>> float(local_knn_preservation(x, 3 * x + 1, k=5).min())
    1.0
    >>> p = local_knn_preservation(x, x[:, :2], k=5)
    >>> bool(abs(p.mean() - knn_preservation(x, x[:, :2], k=5)) < 1e-12)
    True
    """
    n = int(np.shape(x)[0])
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..{n - 1}, got {k}")
    return _local_scores(x, y, int(k), "knn")


def coordinate_ranges(y: np.ndarray) -> np.ndarray:
    """``[[xmin, xmax], [ymin, ymax]]`` of a map (one row per axis).

    The figure the study reported: SegNet's PCA coordinates spanned about
    -236000..254400, DeepLabv3+'s -9.3..10.3.

    Examples
    --------
    >>> coordinate_ranges(np.array([[0.0, 5.0], [2.0, -1.0]])).tolist()
    [[0.0, 2.0], [-1.0, 5.0]]
    """
    a = np.asarray(y, np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise ValueError(f"a map must have shape (N, n_components) with N >= 1, got {a.shape}")
    return np.stack([a.min(axis=0), a.max(axis=0)], axis=1)


def spread(y: np.ndarray, *, max_points: int = 5000, random_state: int = 0) -> float:
    """Mean nearest-neighbour distance over the median pairwise distance.

    Scale-free, so maps in very different units compare: near 0 when points
    sit in tight clumps far apart, larger when they are evenly spread.
    Above ``max_points`` points the median uses a seeded sample of them.

    Examples
    --------
    >>> g = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
    >>> round(spread(g), 3) == round(spread(1000 * g + 7), 3)
    True
    """
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import pdist

    a = np.asarray(y, np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"spread needs a map of shape (N >= 2, n_components), got {a.shape}")
    nn = cKDTree(a).query(a, k=2)[0][:, 1]
    sample = a
    if len(a) > max_points:
        rng = np.random.default_rng(random_state)
        sample = a[rng.choice(len(a), max_points, replace=False)]
    med = float(np.median(pdist(sample)))
    return float(nn.mean() / med) if med > 0 else float("nan")


def _group_stats(order: np.ndarray, groups: np.ndarray, k: int) -> tuple[float, float]:
    nb = order[:, :k]
    agreement = float((groups[nb] == groups[:, None]).mean())
    _, counts = np.unique(groups, return_counts=True)
    n = len(groups)
    chance = float((counts * (counts - 1)).sum() / (n * (n - 1)))
    return agreement, chance


def group_separation(y: np.ndarray, groups: np.ndarray, k: int = 10) -> dict[str, float]:
    """How well known groups (CamVid sequences, synthetic drives) separate on a map.

    Parameters
    ----------
    y : ndarray, shape (N, d)
        A map (or any points, e.g. latent features).
    groups : ndarray of int, shape (N,)
    k : int

    Returns
    -------
    dict
        ``silhouette``: :func:`sklearn.metrics.silhouette_score` (-1..1, NaN
        with fewer than 2 groups); ``knn_agreement``: mean fraction of each
        point's ``k`` nearest others in the same group; ``knn_chance``: that
        fraction for random neighbours (what a map without structure scores).

    Examples
    --------
    >>> y = np.r_[np.zeros((10, 2)), np.ones((10, 2))] + np.random.default_rng(0).normal(0, .05, (20, 2))
    >>> g = np.repeat([0, 1], 10)
    >>> s = group_separation(y, g, k=3)
    >>> s["knn_agreement"], round(s["knn_chance"], 3)
    (1.0, 0.474)
    """
    from sklearn.metrics import silhouette_score

    a = np.asarray(y, np.float64).reshape(len(y), -1)
    g = np.asarray(groups).reshape(-1)
    if len(g) != len(a):
        raise ValueError(f"got {len(g)} group ids for {len(a)} points")
    if not 1 <= k < len(a):
        raise ValueError(f"k must be in 1..{len(a) - 1}, got {k}")
    n_groups = len(np.unique(g))
    sil = float(silhouette_score(a, g)) if 2 <= n_groups <= len(a) - 1 else float("nan")
    agreement, chance = _group_stats(_map_order(a), g, int(k))
    return {"silhouette": sil, "knn_agreement": agreement, "knn_chance": chance}


def quality_table(
    latents: np.ndarray,
    groups: np.ndarray | None = None,
    methods: Sequence[str] = METHODS,
    *,
    n_neighbors: int = 5,
    k: int = 10,
    features: Literal["flatten", "pooled"] = "flatten",
    standardize: bool = False,
    pca_dims: int | None = None,
    random_state: int = 0,
    method_kwargs: dict[str, dict[str, Any]] | None = None,
    include_latent: bool = False,
    cache: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Spread, quality and group separation of several maps of the same latents, in one call.

    The latent-space reference for trustworthiness and k-NN preservation is
    the features the maps start from (``features`` and ``standardize``),
    before any ``pca_dims`` reduction, so the table also shows what that
    reduction costs. Maps come from :func:`project` (disk-cached).

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    groups : ndarray of int, shape (N,), optional
        E.g. ``dataset.groups`` (CamVid sequences); adds the separation columns.
    methods : sequence of {"pca", "tsne", "umap"}
    n_neighbors : int
        Of trustworthiness.
    k : int
        Of k-NN preservation and k-NN group agreement.
    features, standardize, random_state
        For every method.
    pca_dims : int, optional
        PCA pre-reduction for t-SNE and UMAP (not PCA, where it changes nothing).
    method_kwargs : dict, optional
        Extra arguments per method, e.g. ``{"tsne": {"perplexity": 20}}``.
    include_latent : bool
        Add a row ``method="latent"`` with the group separation of the
        features themselves (a reference for the maps' columns).
    cache, progress
        As in :func:`project`.

    Returns
    -------
    list of dict
        One per method: ``method``, ``seconds`` (fit time, also when read
        from the cache), ``trustworthiness``, ``knn_preservation``,
        ``spread``, ``x_min``, ``x_max``, ``y_min``, ``y_max`` and, with
        groups, ``silhouette``, ``knn_agreement``, ``knn_chance``.
        :func:`format_table` turns it into Markdown.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(40, 3, 3, 4)).astype(np.float32)
    >>> rows = quality_table(z, np.repeat([0, 1], 20), methods=("pca",), progress=False)
    >>> sorted(rows[0])[:4]
    ['knn_agreement', 'knn_chance', 'knn_preservation', 'method']
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown projection method {m!r}; choose from {METHODS}")
    extra = method_kwargs or {}
    f = latent_features(latents, features)
    if standardize:
        f = standardized(f, *column_mean_std(f))
    n = len(f)
    if n_neighbors >= n / 2:  # before fitting any map (scikit-learn checks it too, late)
        raise ValueError(f"n_neighbors ({n_neighbors}) should be less than n_samples / 2 ({n / 2})")
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..{n - 1}, got {k}")
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None and len(g) != n:
        raise ValueError(f"got {len(g)} group ids for {n} latents")
    dx = _reference_distances(f)  # shared by every method's row
    order_x = _distance_order(dx)
    rows: list[dict[str, Any]] = []
    if include_latent and g is not None:
        from sklearn.metrics import silhouette_score

        n_groups = len(np.unique(g))
        sil = float(silhouette_score(np.sqrt(dx), g, metric="precomputed")) if 2 <= n_groups <= n - 1 else float("nan")
        agreement, chance = _group_stats(order_x, g, k)
        nan = float("nan")
        rows.append(
            dict(
                method="latent",
                seconds=0.0,
                trustworthiness=1.0,
                knn_preservation=1.0,
                spread=nan,
                x_min=nan,
                x_max=nan,
                y_min=nan,
                y_max=nan,
                silhouette=sil,
                knn_agreement=agreement,
                knn_chance=chance,
            )
        )
    for m in methods:
        kw = dict(features=features, standardize=standardize, random_state=random_state)
        if m != "pca" and pca_dims is not None:
            kw["pca_dims"] = pca_dims
        kw.update(extra.get(m, {}))
        _, y, seconds = fit_cached(latents, m, cache, progress, kw, need_model=False)
        y = np.asarray(y, np.float64)
        order_y = _map_order(y)
        ranges = coordinate_ranges(y)
        row: dict[str, Any] = dict(
            method=m,
            seconds=seconds,
            trustworthiness=_trust_from_distances(dx, y, n_neighbors),
            knn_preservation=_knn_pres_from_orders(order_x, order_y, k),
            spread=spread(y),
            x_min=float(ranges[0, 0]),
            x_max=float(ranges[0, 1]),
            y_min=float(ranges[1, 0]),
            y_max=float(ranges[1, 1]) if len(ranges) > 1 else float("nan"),
        )
        if g is not None:
            row.update(group_separation(y, g, k))
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """A Markdown table of :func:`quality_table` rows.

    Examples
    --------
    >>> print(format_table([{"method": "pca", "spread": 0.12345}]))
    | method | spread |
    |---|---|
    | pca | 0.123 |
    """
    if not rows:
        return ""
    cols = list(rows[0])
    for r in rows[1:]:
        cols += [c for c in r if c not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if not np.isfinite(v):
                return "–"
            # Large coordinates (SegNet's PCA spans +-2e5) read best without decimals.
            return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)
