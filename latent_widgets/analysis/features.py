"""The features a map is made of: one vector per latent, flattened or pooled, standardised, in row blocks.

``features="flatten"`` is one vector per latent (a view of the array when it
is contiguous); ``features="pooled"`` averages over the spatial axes, one
value per channel: the average pooling that the explorer's
``map_points="pooled"`` and :func:`~latent_widgets.latents.cells.pooled`
compute. A row-indexable store too big for memory (a Zarr array, a
``np.memmap``) is read a block of rows at a time (:class:`FeatureRows`).

Examples
--------
>>> import numpy as np
>>> latent_features(np.ones((2, 3, 3, 4), np.float32), "pooled").shape
(2, 4)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from ..core.arrays import BLOCK_BYTES, is_row_store, iter_row_blocks

__all__ = [
    "FEATURES",
    "FeatureRows",
    "check_features",
    "check_finite",
    "check_latents",
    "column_mean_std",
    "latent_block_rows",
    "latent_features",
    "standardized",
]

#: Feature options of the projections.
FEATURES: tuple[str, ...] = ("flatten", "pooled")


def check_features(features: Any, who: str = "") -> None:
    """Raise a ValueError unless ``features`` is one of :data:`FEATURES`; ``who`` starts the message.

    The average over the grid has one name across the library, ``"pooled"``
    (as ``map_points="pooled"`` and :func:`~latent_widgets.latents.cells.pooled`);
    ``"gap"`` (global average pooling) is refused with that name, not taken
    as an alias.

    Examples
    --------
    >>> check_features("pooled")
    >>> check_features("gap")
    Traceback (most recent call last):
    ...
    ValueError: features='gap' is named 'pooled' here (the average over the spatial axes): pass features='pooled'
    """
    if features in FEATURES:
        return
    if features == "gap":
        raise ValueError(
            f"{who}features='gap' is named 'pooled' here (the average over the spatial axes): pass features='pooled'"
        )
    raise ValueError(f"{who}features must be one of {FEATURES}, got {features!r}")


def check_latents(shape: tuple[int, ...], dtype: Any) -> None:
    if len(shape) < 2:
        raise ValueError(f"latents must have shape (N, ...) with one latent per row, got {tuple(shape)}")
    if np.dtype(dtype).kind not in "biuf":
        raise ValueError(f"latents must be real numbers, got dtype {dtype}; convert them with np.asarray(z, float)")


def latent_block_rows(shape: tuple[int, ...]) -> int:
    return max(1, BLOCK_BYTES // (8 * max(int(np.prod(shape[1:])), 1)))


class FeatureRows:
    """The feature vectors of a latent store, computed a block of rows at a time.

    Row-indexable like the store (``len``, ``shape`` (N, d), ``[a:b]``), so
    that statistics, a PCA pre-reduction or a blocked PCA read the features
    without a full copy of them; ``mean`` and ``scale`` standardise each block.
    """

    def __init__(
        self,
        latents: Any,
        features: str,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> None:
        self.latents = latents
        self.features = features
        self.mean = mean
        self.scale = scale
        first = self[0:1]
        self.shape = (int(latents.shape[0]), int(first.shape[1]))
        self.dtype = first.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        f = latent_features(np.asarray(self.latents[rows]), self.features)  # type: ignore[arg-type]
        if self.mean is not None:
            f = ((f - self.mean) / self.scale).astype(np.float32)
        return f

    def scaled(self, mean: np.ndarray, scale: np.ndarray) -> FeatureRows:
        return FeatureRows(self.latents, self.features, mean, scale)

    def blocks(self) -> Iterator[slice]:
        return iter_row_blocks(len(self), latent_block_rows(tuple(self.latents.shape)))

    def check_finite(self) -> None:
        for rows in self.blocks():
            check_finite(self[rows])

    def to_array(self) -> np.ndarray:
        """All features in one array, filled block by block (the only full copy)."""
        out = np.empty(self.shape, self.dtype)
        for rows in self.blocks():
            out[rows] = self[rows]
        return out


def latent_features(latents: Any, features: Literal["flatten", "pooled"] = "flatten") -> np.ndarray:
    """One feature vector per latent.

    Parameters
    ----------
    latents : ndarray or row-indexable store, shape (N, *latent_shape)
        An array, or a store too big for memory (a Zarr array, a ``np.memmap``:
        ``len``, ``shape``, ``dtype`` and row slices), whose features are
        computed a block of rows at a time into the result, with no second
        full copy of the latents.
    features : {"flatten", "pooled"}
        ``"flatten"``: ``(N, prod(latent_shape))``, a view when contiguous.
        ``"pooled"``: mean over every axis but the first and the last (the
        spatial axes of ``(N, H, W, C)``), shape ``(N, C)``.

    Returns
    -------
    ndarray, float32 or float64, shape (N, d)

    Examples
    --------
    >>> latent_features(np.ones((2, 3, 3, 4), np.float32), "pooled").shape
    (2, 4)
    """
    check_features(features)
    if is_row_store(latents):
        check_latents(tuple(latents.shape), getattr(latents, "dtype", np.float32))
        return FeatureRows(latents, features).to_array()
    x = np.asarray(latents)
    if x.ndim < 2:
        raise ValueError(f"latents must have shape (N, ...) with one latent per row, got {x.shape}")
    if features == "flatten":
        f = x.reshape(len(x), -1)
    else:
        if x.ndim < 3:
            raise ValueError(
                f"features='pooled' pools spatial latents (N, H, W, C); these are vectors {x.shape}. "
                "Use features='flatten'."
            )
        f = x.mean(axis=tuple(range(1, x.ndim - 1)), dtype=np.float64)
    if f.dtype not in (np.float32, np.float64):
        f = f.astype(np.float32)
    return f


def column_mean_std(f: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std in float64, a bounded block of rows at a time."""
    n, d = f.shape
    step = max(1, BLOCK_BYTES // (8 * max(d, 1)))
    total = np.zeros(d, np.float64)
    for rows in iter_row_blocks(n, step):
        total += f[rows].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(d, np.float64)
    for rows in iter_row_blocks(n, step):
        block = f[rows].astype(np.float64)
        block -= mean
        sq += np.einsum("ij,ij->j", block, block)
    std = np.sqrt(sq / n)
    std[std == 0] = 1.0  # constant features become 0, not NaN
    return mean, std


def standardized(f: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out = np.empty(f.shape, np.float32)
    step = max(1, BLOCK_BYTES // (8 * max(f.shape[1], 1)))
    for rows in iter_row_blocks(len(f), step):
        out[rows] = (f[rows] - mean) / std
    return out


def check_finite(f: np.ndarray) -> None:
    """Raise a ValueError naming the fix when the features hold a NaN or an infinity."""
    # A float64-accumulated sum is non-finite exactly when an entry is: one
    # pass, without an N x d boolean mask the size of the latents.
    if not np.isfinite(f.sum(dtype=np.float64)):
        raise ValueError(
            "latents contain NaN or infinity; drop those samples or replace the values (np.nan_to_num) first"
        )
