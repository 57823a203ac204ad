"""PCA of row-indexable data too big for memory, by randomized SVD over row blocks.

:class:`BlockedPCA` fits from anything with ``len(x)`` and ``x[a:b]``
returning a 2-D block of rows: an ndarray, a ``np.memmap``, a Zarr array, a
lazy view that computes its rows on demand. It never holds more than one block
of rows plus ``(N, k + oversamples)`` and ``(d, k + oversamples)`` float64
matrices, where scikit-learn's ``PCA`` first makes a centred copy of the
whole data (and ``IncrementalPCA`` runs one dense SVD per batch, far slower
on wide latents).

The algorithm is the randomized range finder of Halko, Martinsson & Tropp
(2011), with QR-orthonormalised power iterations, one read of the data per
product, the centring folded into each product instead of applied to the data.
On data with a clear spectrum it gives scikit-learn's components and explained
variances to within rounding; the more power iterations, the closer on a flat
spectrum.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.blocked_pca import BlockedPCA
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 40)) * np.geomspace(10, 0.01, 40)
>>> pca = BlockedPCA(3, block_rows=64).fit(x)
>>> pca.transform(x[:4]).shape
(4, 3)
>>> from sklearn.decomposition import PCA
>>> ref = PCA(3, svd_solver="full").fit(x)
>>> bool(np.allclose(pca.explained_variance_, ref.explained_variance_, rtol=1e-6))
True
"""

from __future__ import annotations

from typing import Any, Protocol, Self

import numpy as np

from ..core.arrays import BLOCK_BYTES, iter_row_blocks

__all__ = ["BlockedPCA", "RowSource"]


class RowSource(Protocol):
    """What :class:`BlockedPCA` reads: ``len()``, ``shape`` (N, d) and row slices."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> Any: ...


class BlockedPCA:
    """Principal components by randomized SVD, reading the data a block of rows at a time.

    Parameters
    ----------
    n_components : int
        Components kept; at most ``min(N, d)``.
    n_oversamples : int
        Extra random directions in the range finder (scikit-learn's default: 10).
    n_iter : int
        Power iterations (two reads of the data each). 4 gives scikit-learn's
        answer on any spectrum with a gap after the kept components.
    block_rows : int, optional
        Rows per block; None sizes blocks to about 64 MiB of float64.
    random_state : int
        Seed of the random test matrix.

    Attributes
    ----------
    mean_, components_, explained_variance_, explained_variance_ratio_,
    singular_values_, n_components_, n_samples_, n_features_in_
        As in :class:`sklearn.decomposition.PCA`; each component's sign
        makes its largest-magnitude entry positive (scikit-learn's rule).

    Examples
    --------
    >>> x = np.arange(24.0).reshape(8, 3) ** 2
    >>> BlockedPCA(1, block_rows=3).fit(x).components_.shape
    (1, 3)
    """

    def __init__(
        self,
        n_components: int,
        *,
        n_oversamples: int = 10,
        n_iter: int = 4,
        block_rows: int | None = None,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.block_rows = block_rows
        self.random_state = random_state

    def _step(self, d: int, width: int) -> int:
        if self.block_rows is not None:
            return max(1, int(self.block_rows))
        return max(1, BLOCK_BYTES // (8 * max(d + width, 1)))

    def fit(self, x: RowSource) -> Self:
        """Fit to ``x`` of shape (N, d), reading it ``2 + 2 * n_iter`` times by row blocks."""
        n, d = len(x), int(x.shape[1])
        if n < 2:
            raise ValueError(f"PCA needs at least 2 rows, got {n}")
        k = int(self.n_components)
        if not 1 <= k <= min(n, d):
            raise ValueError(f"n_components must be between 1 and min(N, d) = {min(n, d)}, got {k}")
        width = min(k + int(self.n_oversamples), n, d)
        step = self._step(d, width)
        blocks = list(iter_row_blocks(n, step))
        rng = np.random.default_rng(self.random_state)
        omega = rng.standard_normal((d, width))

        # Pass 1: the mean and the uncentred sketch X @ omega; centred afterwards
        # as X @ omega - 1 (mean @ omega), so the mean costs no read of its own.
        total = np.zeros(d, np.float64)
        y = np.empty((n, width), np.float64)
        for rows in blocks:
            b = np.asarray(x[rows], np.float64)
            total += b.sum(axis=0)
            y[rows] = b @ omega
        mean = total / n
        y -= mean @ omega

        def left(q: np.ndarray) -> np.ndarray:  # (X - mean)^T q, shape (d, width)
            out = np.zeros((d, q.shape[1]), np.float64)
            for rows in blocks:
                b = np.asarray(x[rows], np.float64) - mean
                out += b.T @ q[rows]
            return out

        def right(z: np.ndarray) -> np.ndarray:  # (X - mean) z, shape (N, width)
            out = np.empty((n, z.shape[1]), np.float64)
            for rows in blocks:
                out[rows] = (np.asarray(x[rows], np.float64) - mean) @ z
            return out

        for _ in range(int(self.n_iter)):
            q, _ = np.linalg.qr(y)
            z, _ = np.linalg.qr(left(q))
            y = right(z)
        q, _ = np.linalg.qr(y)

        # Last pass: B = Q^T (X - mean), and the total variance, centred exactly.
        bt = np.zeros((d, width), np.float64)
        sq = 0.0
        for rows in blocks:
            b = np.asarray(x[rows], np.float64) - mean
            bt += b.T @ q[rows]
            sq += float(np.einsum("ij,ij->", b, b))
        _, s, vt = np.linalg.svd(bt.T, full_matrices=False)
        vt = vt[:k]
        biggest = np.argmax(np.abs(vt), axis=1)
        vt *= np.sign(vt[np.arange(k), biggest])[:, None]

        self.mean_ = mean
        self.components_ = vt
        self.singular_values_ = s[:k]
        self.explained_variance_ = s[:k] ** 2 / (n - 1)
        self.explained_variance_ratio_ = self.explained_variance_ / (sq / (n - 1)) if sq > 0 else np.zeros(k)
        self.n_components_ = k
        self.n_samples_ = n
        self.n_features_in_ = d
        return self

    def transform(self, x: RowSource) -> np.ndarray:
        """``(x - mean_) @ components_.T`` by row blocks, float64, shape (N, n_components_)."""
        n, d = len(x), int(x.shape[1])
        if d != self.n_features_in_:
            raise ValueError(f"x has {d} features; this PCA was fitted on {self.n_features_in_}")
        out = np.empty((n, self.n_components_), np.float64)
        for rows in iter_row_blocks(n, self._step(d, self.n_components_)):
            out[rows] = (np.asarray(x[rows], np.float64) - self.mean_) @ self.components_.T
        return out

    def fit_transform(self, x: RowSource) -> np.ndarray:
        """:meth:`fit`, then :meth:`transform` of the same rows."""
        return self.fit(x).transform(x)
