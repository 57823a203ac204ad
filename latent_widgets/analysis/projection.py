"""2-D maps of a latent set (PCA, t-SNE, UMAP), disk-cached: :func:`project`, :func:`fit_projection`.

Projections
-----------
:class:`~latent_widgets.analysis.pca_projection.PCAProjection`,
:class:`~latent_widgets.analysis.tsne_projection.TSNEProjection` and
:class:`~latent_widgets.analysis.umap_projection.UMAPProjection`
(:func:`make_projection` makes one by name; what they share is
:class:`~latent_widgets.analysis.projection_base.Projection`) are
scikit-learn estimators (``get_params``/``set_params``,
:func:`sklearn.base.clone`, ``fit``, ``fit_transform``, ``transform``,
``embedding_``; ``to_state``/``from_state`` for the disk cache) and take the
latents as they come, ``(N, *latent_shape)``. Features are computed inside:

- ``features="flatten"`` (default, as the study did): one vector per
  latent, a view of the array when it is contiguous (no copy);
- ``features="pooled"``: average pooling over the spatial axes, one value
  per channel (C numbers instead of H x W x C; positions are lost), as
  :func:`~latent_widgets.latents.cells.pooled`;
- ``standardize=True``: zero mean, unit variance per feature (one float32
  copy of the features);
- ``pca_dims="auto"`` (default): for t-SNE and UMAP, a PCA reduction to
  ``AUTO_PCA_DIMS`` (50) dimensions when there are more features than that
  and at least ``AUTO_PCA_MIN_SAMPLES`` (1000) latents (both in
  :mod:`latent_widgets.analysis.projection_base`), the standard
  practice for speed; ``pca_dims=k`` always reduces to ``k``, ``None``
  never. It keeps the ``k`` directions of largest variance, so
  neighbourhoods are computed in that subspace: noise in the discarded
  directions is dropped (often helping t-SNE), but structure that lives in
  low-variance directions is lost too, and the map then shows the
  neighbourhoods of the reduced data rather than of the latents.

Latents may also be a row-indexable store too big for memory (a Zarr array,
a ``np.memmap``): features, statistics and PCA
(:class:`~latent_widgets.analysis.blocked_pca.BlockedPCA`) are then computed a block
of rows at a time.

All seeds are fixed (``random_state=0``): the same input gives the same map.

Placing new latents (interpolation steps, arithmetic results) on a fitted
map with ``transform``: exact for PCA; UMAP's own ``transform``; for t-SNE
(openTSNE), openTSNE's ``transform``, which starts each new point at the
median map position of its nearest training latents and optimises it
against the fixed map. For t-SNE and UMAP a new latent equal to a training
latent lands exactly on that latent's point, so an interpolation path
starts and ends on its endpoints.

The first UMAP of a process compiles umap-learn's numba code;
:mod:`latent_widgets.analysis.umap_runtime` turns on numba's disk cache for
it, so that only the first process on a machine pays (see
:func:`~latent_widgets.analysis.warm_up.warm_up_projections` to do it in the
background).

How good a map is (trustworthiness, k-NN preservation, spread, group
separation) is measured in :mod:`latent_widgets.analysis.map_quality`.

Examples
--------
>>> import numpy as np
>>> z = np.random.default_rng(0).normal(size=(30, 4, 4, 8)).astype(np.float32)
>>> pca = make_projection("pca").fit(z)
>>> pca.embedding_.shape, pca.transform(z[:2]).shape
((30, 2), (2, 2))
>>> np.allclose(pca.transform(z[:2]), pca.embedding_[:2], atol=1e-4)
True
"""

from __future__ import annotations

import hashlib
import time
from importlib import metadata
from typing import Any, Literal

import numpy as np

from ..core.arrays import is_row_store, iter_row_blocks
from ..core.cache import cache_dir, content_hash
from .features import latent_block_rows
from .pca_projection import PCAProjection
from .projection_base import Projection, preprocessing_settings
from .tsne_projection import TSNEProjection
from .umap_projection import UMAPProjection

__all__ = [
    "METHODS",
    "cache_key",
    "fit_cached",
    "fit_projection",
    "make_projection",
    "project",
]

#: Projection methods of :func:`make_projection` and :func:`project`.
METHODS: tuple[str, ...] = ("pca", "tsne", "umap")

_CACHE_NS = "projections"
_CACHE_VERSION = "projection-v3"  # v3: openTSNE, pca_dims="auto", blocked PCA


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


_CLASSES: dict[str, type[Projection]] = {
    "pca": PCAProjection,
    "tsne": TSNEProjection,
    "umap": UMAPProjection,
}


def make_projection(method: str, **kw: Any) -> Projection:
    """A projection object by name.

    Parameters
    ----------
    method : {"pca", "tsne", "umap"}
    **kw
        Parameters of the class (``n_components``, ``features``,
        ``standardize``, ``pca_dims``, ``random_state``, its own such as
        ``perplexity``); any other keyword is the library's and goes into
        ``method_kwargs`` (e.g. ``learning_rate`` of t-SNE).

    Examples
    --------
    >>> make_projection("tsne", pca_dims=50).get_params()["pca_dims"]
    50
    >>> make_projection("tsne", early_exaggeration=8).method_kwargs
    {'early_exaggeration': 8}
    """
    cls = _CLASSES.get(str(method).lower())
    if cls is None:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    own = cls().get_params()
    extra = {k: kw.pop(k) for k in list(kw) if k not in own}
    if extra:
        kw["method_kwargs"] = {**(kw.get("method_kwargs") or {}), **extra}
    return cls(**kw)


def _latents_digest(latents: Any) -> Any:
    """What the cache key hashes for the latents: the array, or for a store a digest of its blocks."""
    if not is_row_store(latents):
        return np.asarray(latents)
    h = hashlib.sha256(f"{np.dtype(latents.dtype).str}{tuple(latents.shape)}".encode())
    for rows in iter_row_blocks(int(latents.shape[0]), latent_block_rows(tuple(latents.shape))):
        h.update(np.ascontiguousarray(latents[rows]).tobytes())
    return "store:" + h.hexdigest()


def cache_key(latents: Any, proj: Projection) -> str:
    """The disk cache's key of a map: the latents (a store by its blocks), the method, its parameters, the versions.

    Examples
    --------
    >>> z = np.zeros((4, 3), np.float32)
    >>> cache_key(z, make_projection("pca")) == cache_key(z.copy(), make_projection("pca"))
    True
    """
    versions = {"sklearn": _version("scikit-learn"), "numpy": np.__version__}
    if proj.method == "umap":
        versions["umap"] = _version("umap-learn")
    if proj.method == "tsne":
        versions["openTSNE"] = _version("openTSNE")
    # What pca_dims="auto" and the blocked PCA resolve to depends on these too.
    return content_hash(
        _CACHE_VERSION, _latents_digest(latents), proj.method, proj.get_params(), versions, preprocessing_settings()
    )


def fit_cached(
    latents: Any, method: str, cache: bool, progress: bool, kw: dict[str, Any], need_model: bool
) -> tuple[Projection | None, np.ndarray, float]:
    """(fitted projection or None, embedding, fit seconds) through the disk cache.

    What :func:`project`, :func:`fit_projection` and
    :func:`~latent_widgets.analysis.map_quality.quality_table` share: a hit
    gives the map (and the fit time it took) without fitting; with
    ``need_model`` the projection is restored from it for ``transform``.

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    >>> _, emb, seconds = fit_cached(z, "pca", True, False, {}, need_model=False)
    >>> emb.shape
    (20, 2)
    """
    from ..core.cache import load_arrays, save_arrays

    proj = make_projection(method, **kw)
    path = cache_dir(_CACHE_NS) / f"{cache_key(latents, proj)}.npz" if cache else None
    hit = load_arrays(path) if path is not None else None
    if hit is not None and not {"embedding", "params"} <= hit.keys():
        hit = None  # not one of ours: recompute and overwrite
    if hit is not None:
        seconds = float(hit["seconds"]) if "seconds" in hit else float("nan")
        if need_model:  # the map from the cache, only the cheap preprocessing refitted
            proj.from_state(hit, latents)
        return (proj if need_model else None), hit["embedding"], seconds
    from tqdm.auto import tqdm

    n = int(latents.shape[0]) if is_row_store(latents) else len(latents)
    with tqdm(total=1, desc=f"{method.upper()} map of {n} latents", disable=not progress, leave=False) as bar:
        t0 = time.perf_counter()
        proj.fit(latents)
        seconds = time.perf_counter() - t0
        bar.update(1)
    if path is not None:
        save_arrays(path, {**proj.to_state(), "seconds": np.float64(seconds)})
    return proj, proj.embedding_, seconds


def project(
    latents: np.ndarray,
    method: Literal["pca", "tsne", "umap"] = "pca",
    cache: bool = True,
    progress: bool = True,
    **kw: Any,
) -> np.ndarray:
    """The 2-D map of ``latents``, disk-cached by content hash.

    Parameters
    ----------
    latents : ndarray, shape (N, *latent_shape)
    method : {"pca", "tsne", "umap"}
    cache : bool
        Look up / store the map under the cache folder, keyed by a hash of
        the latents, the method, every parameter and the library versions.
    progress : bool
        Show a progress bar while fitting.
    **kw
        Projection parameters (see :func:`make_projection`).

    Returns
    -------
    ndarray, float64, shape (N, n_components)

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 3, 3, 2)).astype(np.float32)
    >>> project(z, "pca", progress=False).shape
    (20, 2)
    """
    _, emb, _ = fit_cached(latents, method, cache, progress, kw, need_model=False)
    return np.asarray(emb, np.float64)


def fit_projection(
    latents: np.ndarray,
    method: Literal["pca", "tsne", "umap"] = "pca",
    cache: bool = True,
    progress: bool = True,
    **kw: Any,
) -> Projection:
    """A fitted projection (with ``transform``) whose map is shared with :func:`project`'s cache.

    A cached t-SNE map is reused as is (only the feature preprocessing is
    refitted, for ``transform``); PCA refits (it is cheap and exact); UMAP
    refits, since ``transform`` needs its model (the seeded fit gives the
    cached map again).

    Examples
    --------
    >>> z = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    >>> fit_projection(z, "pca", progress=False).transform(z[:1]).shape
    (1, 2)
    """
    proj, _, _ = fit_cached(latents, method, cache, progress, kw, need_model=True)
    assert proj is not None
    return proj
