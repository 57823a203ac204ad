"""How many of the true nearest neighbours an approximate search finds (recall@k).

:func:`recall_at_k` compares two neighbour lists; :func:`measure_recall`
measures a search against the exact one on a seeded sample of dataset
points, each excluded from its own result. An approximate
:class:`~latent_widgets.analysis.neighbors.LatentIndex` measures its
``recall_`` this way when it is fitted.

Examples
--------
>>> import numpy as np
>>> from latent_widgets.analysis.recall import recall_at_k
>>> recall_at_k(np.array([[0, 1]]), np.array([[1, 2]]))
0.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .latent_rows import LatentRows

__all__ = ["NeighborSearch", "measure_recall", "recall_at_k"]


class NeighborSearch(Protocol):
    """What :func:`measure_recall` queries: an exact or approximate search of the same rows."""

    def query(self, q: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, distances)`` of the ``k`` nearest rows of each query, leaving out ``exclude``."""
        ...


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Fraction of the exact k nearest neighbours that an approximate search found.

    Parameters
    ----------
    approx_idx, exact_idx : ndarray of int, shape (M, k)

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> recall_at_k(np.array([[0, 1], [2, 5]]), np.array([[1, 0], [2, 3]]))
    0.75
    """
    a, e = np.asarray(approx_idx), np.asarray(exact_idx)
    if a.ndim == 1:
        a, e = a[:, None], e[:, None]
    if a.shape[0] != e.shape[0]:
        raise ValueError(f"got {a.shape[0]} approximate rows and {e.shape[0]} exact rows")
    if e.size == 0:
        return float("nan")
    hits = (a[:, :, None] == e[:, None, :]).any(axis=1)
    return float(hits.mean())


def measure_recall(
    search: NeighborSearch,
    exact: NeighborSearch,
    rows: LatentRows,
    n_queries: int = 200,
    k: int = 10,
    random_state: int = 0,
) -> float:
    """Recall@k of ``search`` against ``exact``, both over ``rows``.

    The queries are ``n_queries`` dataset points drawn with ``random_state``
    (all of them when there are fewer), each excluded from its own result;
    ``k`` is capped at ``N - 1``. 1.0 when no other point is left to find.

    Examples
    --------
    >>> from latent_widgets.analysis.exact_search import ExactSearch
    >>> from latent_widgets.analysis.latent_rows import LatentRows
    >>> rows = LatentRows(np.random.default_rng(0).normal(size=(50, 3)))
    >>> exact = ExactSearch(rows, "euclidean", rows.sq_norms_and_sketch()[0])
    >>> measure_recall(exact, exact, rows)
    1.0
    """
    n = rows.n_samples
    k = min(k, n - 1)
    if k < 1:
        return 1.0
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, min(n_queries, n), replace=False))
    q = rows.take(sample)
    got, _ = search.query(q, k, sample)
    want, _ = exact.query(q, k, sample)
    return recall_at_k(got, want)
