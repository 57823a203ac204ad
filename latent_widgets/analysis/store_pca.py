"""The PCA of a latent store where the store is, with ``dask.array`` (on a cluster or in threads).

:func:`pca_of_store` takes one of two routes that :func:`pca_solver` picks
from the multiply-adds per latent: for narrow latents (``d`` up to about
1,250 floats at 50 components and 4 power iterations) the exact PCA from the
float64 covariance, ``X^T X`` and the column sums tree-reduced on the
workers, ``eigh`` on the client, in two reads of the store; for wide ones
(10^4-10^5 floats) the randomized SVD ``svd_compressed``, a dozen reads.
t-SNE and UMAP then run on the client on the PCA-reduced points
(:func:`project_store`): 10^6 x 50 float32 is 200 MB. Dask is the extra
``pip install 'latent-widgets[dask]'``: without it this module imports, and
:func:`pca_of_store` raises an ``ImportError`` naming the extra.

Examples
--------
>>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
>>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
>>> pca = pca_of_store("/shared/road.zarr", 50, client=client)  # doctest: +SKIP
>>> xy = project_store(pca, "tsne")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Literal

import numpy as np

from ..core.optional import optional_import
from ..latents.store import LatentStore

__all__ = ["StorePCA", "pca_of_store", "pca_solver", "project_store"]

# Bytes of float32 latents per block of the PCA's dask array.
_PCA_BLOCK_BYTES = 32 << 20
# The PCA keeps the latents in the workers' memory below this fraction of it.
_PCA_PERSIST_FRACTION = 0.25


class StorePCA:
    """The PCA of a latent store computed by :func:`pca_of_store`.

    Attributes
    ----------
    mean_, components_, explained_variance_, explained_variance_ratio_, singular_values_
        As in :class:`sklearn.decomposition.PCA`; each component's sign makes
        its largest-magnitude entry positive.
    points : ndarray, float32, (n, n_components)
        Every latent's coordinates, ``(x - mean_) @ components_.T``.
    n_samples_, n_features_in_, n_components_ : int
    solver_ : {"covariance", "randomized"}
        The route :func:`pca_of_store` took (see :func:`pca_solver`).
    """

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        singular_values: np.ndarray,
        total_var: float,
        points: Any,
        solver: str = "randomized",
    ) -> None:
        n = len(points)
        self.solver_ = solver
        self.mean_ = mean
        self.components_ = components
        self.singular_values_ = singular_values
        self.explained_variance_ = singular_values**2 / max(n - 1, 1)
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total_var if total_var > 0 else np.zeros_like(singular_values)
        )
        self.points = points
        self.n_samples_ = n
        self.n_features_in_ = int(mean.shape[0])
        self.n_components_ = int(components.shape[0])

    def transform(self, x: Any) -> np.ndarray:
        """Coordinates of new latents ``(m, *latent_shape)`` or ``(m, d)``; float64."""
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return (x - self.mean_) @ self.components_.T

    def __repr__(self) -> str:
        return f"StorePCA({self.n_samples_} x {self.n_features_in_} -> {self.n_components_})"


def _cluster_memory(client: Any) -> int:
    """Bytes of memory of the cluster's workers (their memory limits; 0 when unknown)."""
    workers = client.scheduler_info().get("workers", {})
    return int(sum(int(w.get("memory_limit") or 0) for w in workers.values()))


def _worker_memory(client: Any) -> int:
    """Bytes of memory of the smallest worker (0 when unknown)."""
    workers = client.scheduler_info().get("workers", {})
    return min((int(w.get("memory_limit") or 0) for w in workers.values()), default=0)


def _open_store(store: LatentStore | str | os.PathLike[str]) -> LatentStore:
    return store if isinstance(store, LatentStore) else LatentStore.open(store)


def pca_solver(d: int, width: int, n_iter: int, memory: int = 0) -> Literal["covariance", "randomized"]:
    """Which route :func:`pca_of_store` takes for latents of ``d`` floats: the cheaper per row.

    Per latent (row) of the store, the covariance route does ``d^2 / 2``
    multiply-adds in float64 (a symmetric rank-k update; float64 runs at half
    float32's rate, so it costs about ``d^2`` float32 multiply-adds), once. The
    randomized SVD does ``2 n_iter + 2`` products of ``d x width`` float32
    multiply-adds (``width = n_components + n_oversamples``) and ``2 n_iter + 1``
    tall-and-skinny QRs, each about ``width^2`` multiply-adds per row at a
    twenty-fifth of a product's rate (measured: Householder QR of a
    ``16384 x 60`` block ran at 0.6 G multiply-adds/s against 14-17 G for the
    products and the rank-k update, on one core). So the covariance route is
    chosen when::

        d^2 <= (2 n_iter + 2) d width + 25 (2 n_iter + 1) width^2

    that is ``d <= 1,250`` at the defaults (50 components, 10 oversamples, 4
    iterations), and while its ``d x d`` float64 matrix, four times over
    (partial sums being added, the eigensolver's copies), takes at most a
    quarter of the smallest worker's ``memory`` (when known).

    Parameters
    ----------
    d : int
        Floats per latent.
    width : int
        ``n_components + n_oversamples``.
    n_iter : int
        Power iterations of the randomized SVD.
    memory : int
        Bytes of the smallest worker's memory; 0 when unknown (no memory bound).

    Examples
    --------
    >>> pca_solver(512, 60, 4), pca_solver(6144, 60, 4)
    ('covariance', 'randomized')
    """
    gram = float(d) * d
    randomized = (2 * n_iter + 2) * float(d) * width + 25 * (2 * n_iter + 1) * float(width) ** 2
    fits = memory <= 0 or 4 * 8 * gram <= memory / 4
    return "covariance" if gram <= randomized and fits else "randomized"


# Tasks of the covariance route (module level so that the workers unpickle them by reference).


def _gram_part(block: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums and ``X^T X`` of a block of rows minus ``shift``, in float64."""
    xb = np.asarray(block, np.float64).reshape(len(block), -1)
    xb -= shift
    # numpy runs ``a.T @ a`` as one symmetric rank-k update (BLAS syrk): half a general product.
    return xb.sum(axis=0), xb.T @ xb


def _add_parts(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    sums, grams = zip(*parts, strict=True)
    return np.sum(sums, axis=0), np.sum(grams, axis=0)


def _tree_sum(parts: list[Any], fan_in: int = 8) -> Any:
    """Delayed sum of delayed ``(sums, gram)`` pairs, added ``fan_in`` at a time on the workers."""
    import dask

    add = dask.delayed(_add_parts, pure=True)
    while len(parts) > 1:
        parts = [add(*parts[i : i + fan_in]) for i in range(0, len(parts), fan_in)]
    return parts[0]


def _project_block(block: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """A block's PCA coordinates ``(x - mean) @ components.T``, computed in float64, returned in float32."""
    xb = np.asarray(block, np.float64).reshape(len(block), -1)
    xb -= mean
    return (xb @ components.T).astype(np.float32)


def _covariance_pca(x: Any, n: int, k: int, shift: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, components, singular values, total variance and points by the covariance route."""
    import dask

    parts = [dask.delayed(_gram_part, pure=True)(b, shift) for b in x.to_delayed().ravel()]
    ((sums, gram),) = dask.compute(_tree_sum(parts))
    # Shifted by the first chunk's mean, not by zero: X^T X - n m m^T would otherwise cancel
    # catastrophically when the latents' mean is large against their spread.
    delta = sums / n
    mean = shift + delta
    cov = (gram - n * np.outer(delta, delta)) / max(n - 1, 1)
    cov = (cov + cov.T) / 2  # syrk fills one triangle; numpy mirrors it, this guards against rounding
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:k]
    variance = np.clip(values[order], 0, None)
    vt = vectors[:, order].T.copy()
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    vt *= signs[:, None]
    points = x.map_blocks(_project_block, mean, vt, dtype=np.float32, chunks=(x.chunks[0], (k,)))
    (points,) = dask.compute(points)
    singular = np.sqrt(variance * max(n - 1, 1))
    return mean, vt, singular, float(np.trace(cov)), np.asarray(points)


def _randomized_pca(
    x: Any, n: int, k: int, oversamples: int, n_iter: int, seed: int, in_memory: bool
) -> tuple[np.ndarray, ...]:
    """Mean, components, singular values, total variance and points by dask's randomized SVD."""
    import dask
    import dask.array as da

    if in_memory:
        x = x.persist()
    # The mean and the total variance in one pass, accumulated in float64.
    total, total_sq = dask.compute(x.sum(axis=0, dtype=np.float64), (x.astype(np.float64) ** 2).sum())
    mean = np.asarray(total) / n
    sq = float(total_sq) - n * float(mean @ mean)
    # Centred chunk by chunk as it is read, never stored; the products run in the latents' float32,
    # as scikit-learn's randomized PCA of float32 data does (float64 doubles the time). The subtraction
    # is in float64: a mean rounded to float32 would shift every point when the mean dwarfs the spread.
    xc = (x.astype(np.float64) - mean).astype(x.dtype)
    if in_memory:
        xc = xc.persist()
        del x  # the uncentred copy leaves the workers' memory
    # iterator="QR" orthonormalises after every product ("power" does not, and loses the smaller
    # components in float64 after a few iterations); compute=True keeps only the (n, k + p) sketch
    # between the passes, each of which reads the store again, so memory does not grow with d.
    u, s, vt = da.linalg.svd_compressed(
        xc, k, iterator="QR", n_power_iter=n_iter, n_oversamples=oversamples, seed=seed, compute=True
    )
    u, s, vt = (np.asarray(a, np.float64) for a in dask.compute(u, s, vt))
    # scikit-learn's sign rule on the components (the largest-magnitude entry positive), the points follow.
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    vt *= signs[:, None]
    points = (u * (s * signs)).astype(np.float32)
    return mean, vt, s, sq / max(n - 1, 1), points


def pca_of_store(
    store: LatentStore | str | os.PathLike[str],
    n_components: int = 50,
    *,
    client: Any = None,
    solver: Literal["auto", "covariance", "randomized"] = "auto",
    n_oversamples: int = 10,
    n_iter: int = 4,
    random_state: int = 0,
) -> StorePCA:
    """PCA of a store's latents, computed where the store is (``dask.array`` on the cluster's workers).

    Two routes, chosen by :func:`pca_solver` from the cost per latent:

    - ``"covariance"`` (narrow latents, ``d`` up to about 1,250 at the
      defaults): one pass computes the column sums and ``X^T X`` of each
      block of rows in float64 on the workers, added up in a tree there; the
      client takes the ``d x d`` covariance's eigenvectors (``numpy.linalg.eigh``);
      a second pass computes the points. This is the exact PCA, in two reads
      of the store instead of a dozen. Forming ``X^T X`` squares the condition
      number, which is why it is done in float64: a component of variance
      ``l_i`` comes out with an error of about ``1e-16 l_1 / gap_i``, as good as
      or better than a float32 SVD of the latents themselves (``6e-8 s_1 / gap_i``
      in singular values; scikit-learn's randomized PCA of float32 latents).
      The rows are shifted by the first chunk's mean before the products, so
      a large mean does not cancel away the digits of the spread.
    - ``"randomized"`` (wide latents, 10^4-10^5 floats, where a ``d x d``
      matrix is too big or too slow): :func:`dask.array.linalg.svd_compressed`
      of the centred rows (power iterations, each a tall-and-skinny QR over
      the row blocks), in the latents' float32.

    Only ``(d, k)`` matrices (or the ``d x d`` covariance) and the ``(n, k)``
    points come back to the client.

    Parameters
    ----------
    store : LatentStore or path
        A complete store; with a client its path must be reachable by the workers.
    n_components : int
        Components kept (50 for a t-SNE or UMAP pre-reduction).
    client : dask.distributed.Client, optional
        Where to compute; None uses Dask's default scheduler (the current
        client if there is one, else threads in this process).
    solver : {"auto", "covariance", "randomized"}
        ``"auto"`` asks :func:`pca_solver`.
    n_oversamples, n_iter, random_state :
        Of the randomized SVD (and of the cost rule): extra random
        directions, power iterations and the seed of the test matrix.

    Returns
    -------
    StorePCA
        With ``solver_`` naming the route taken.

    Examples
    --------
    >>> import tempfile
    >>> from latent_widgets.latents.encode import encode_to_store
    >>> from latent_widgets.model.encode_options import EncodeOptions
    >>> x = np.random.default_rng(0).normal(size=(300, 8)) * np.geomspace(5, 0.1, 8)
    >>> st = encode_to_store(lambda b: (b,), x.astype(np.float32), tempfile.mkdtemp(), model_hash="m", data_hash="d",
    ...                      latent_shape=(8,), options=EncodeOptions(batch_size=50, chunk_rows=100), progress=False)
    >>> pca = pca_of_store(st, 2)
    >>> pca.points.shape, pca.solver_, bool(pca.explained_variance_ratio_[0] > 0.5)
    ((300, 2), 'covariance', True)
    """
    dask = optional_import("dask", extra="dask", what="pca_of_store (the PCA of a store with dask.array)")

    st = _open_store(store)
    latents = st.latents  # raises, with the fix, when the store is incomplete or damaged
    n, d = st.n, int(np.prod(st.latent_shape))
    k = int(n_components)
    if not 1 <= k <= min(n, d):
        raise ValueError(f"n_components must be between 1 and min(N, d) = {min(n, d)}, got {k}")
    if solver not in ("auto", "covariance", "randomized"):
        raise ValueError(f"solver must be 'auto', 'covariance' or 'randomized', got {solver!r}")
    oversamples = max(0, min(int(n_oversamples), min(n, d) - k))
    if solver == "auto":
        memory = _worker_memory(client) if client is not None else 0
        solver = pca_solver(d, k + oversamples, int(n_iter), memory)
    # Blocks of whole store chunks, about 32 MiB each and at least two per worker: the scheduler's cost
    # per task, times the passes, is what makes a store's many 2 MiB chunks slow.
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else (os.cpu_count() or 1)
    per_block = max(1, min(_PCA_BLOCK_BYTES // (4 * d * st.chunk_rows), -(-st.n_chunks // (2 * max(1, workers)))))
    rows = per_block * st.chunk_rows
    # Each block is checked against the chunks' checksums where it is read (StoredArray's rule, on the workers).
    x = st.dask_array("latents", rows).reshape(n, d)
    # Held in the workers' memory when the latents take less than a quarter of it: the passes then
    # read memory, not the store (each pass re-reads the store otherwise, so any size works).
    in_memory = client is not None and 4 * n * d < _cluster_memory(client) * _PCA_PERSIST_FRACTION
    with dask.config.set(scheduler=client) if client is not None else contextlib.nullcontext():
        if solver == "covariance":
            if in_memory:  # read once, used by both passes
                x = x.persist()
            shift = np.asarray(latents[: min(n, st.chunk_rows)], np.float64).reshape(-1, d).mean(axis=0)
            mean, vt, s, total_var, points = _covariance_pca(x, n, k, shift)
        else:
            mean, vt, s, total_var, points = _randomized_pca(
                x, n, k, oversamples, int(n_iter), int(random_state), in_memory
            )
    return StorePCA(mean, vt, s, total_var, points, solver=solver)


def project_store(
    pca: StorePCA,
    method: Literal["tsne", "umap", "pca"] = "tsne",
    **kwargs: Any,
) -> np.ndarray:
    """A 2-D map of a store from its PCA points, computed on the client (t-SNE or UMAP of ``pca.points``).

    Parameters
    ----------
    pca : StorePCA
        From :func:`pca_of_store` (50 components: 10^6 points are 200 MB).
    method : {"tsne", "umap", "pca"}
        ``"pca"`` returns the first two components.
    **kwargs
        For :class:`~latent_widgets.analysis.tsne_projection.TSNEProjection` or
        :class:`~latent_widgets.analysis.umap_projection.UMAPProjection`.

    Returns
    -------
    ndarray, (n, 2)

    Examples
    --------
    >>> xy = project_store(pca_of_store("/shared/z.zarr", 50, client=client), "umap")  # doctest: +SKIP
    """
    if method == "pca":
        return np.asarray(pca.points[:, :2], np.float32)
    from .tsne_projection import TSNEProjection
    from .umap_projection import UMAPProjection

    classes = {"tsne": TSNEProjection, "umap": UMAPProjection}
    if method not in classes:
        raise ValueError(f"method must be 'tsne', 'umap' or 'pca', got {method!r}")
    return np.asarray(classes[method](pca_dims=None, **kwargs).fit_transform(pca.points), np.float32)
