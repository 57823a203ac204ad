"""What goes wrong with a latent store, and how it is said: the errors, the warning, the chunks named by rows.

Every message names the store, what is wrong and how to fix it; a damaged
chunk is named with the rows it holds (``chunk 3 (rows 24-31)``), the unit
a user can check against their dataset.

Examples
--------
>>> from latent_widgets.latents.store_errors import describe_chunks
>>> describe_chunks({3: "its file is missing"}, chunk_rows=8, n=30)
'chunk 3 (rows 24-29): its file is missing'
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DamagedArrayError", "LatentStoreError", "LatentStoreWarning", "describe_chunks"]


class LatentStoreError(ValueError):
    """A latent store cannot be used as asked; the message says why and how to fix it."""


class LatentStoreWarning(UserWarning):
    """A latent store was found damaged and is being repaired (its damaged rows are re-encoded)."""


class DamagedArrayError(LatentStoreError):
    """One array of a store cannot be opened as the attributes describe it (``what``: the short reason).

    Examples
    --------
    >>> DamagedArrayError(Path("z.zarr"), "its 'done' array is missing").what
    "its 'done' array is missing"
    """

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"the latent store {path} is damaged: {what}. Resuming the encode (encode_dataset(dataset, "
            "store=path)) rebuilds it; or restore the store from a good copy."
        )
        self.what = what


def _rows_text(rows: slice) -> str:
    return f"rows {rows.start}-{rows.stop - 1}"


def describe_chunks(problems: dict[int, str], chunk_rows: int, n: int, limit: int = 3) -> str:
    """``chunk 3 (rows 24-31): why; ...`` for the first ``limit`` chunks, then how many more.

    Examples
    --------
    >>> describe_chunks({0: "a", 1: "b"}, chunk_rows=4, n=8, limit=1)
    'chunk 0 (rows 0-3): a; and 1 more chunks'
    """
    parts = []
    for c in sorted(problems)[:limit]:
        rows = slice(c * chunk_rows, min((c + 1) * chunk_rows, n))
        parts.append(f"chunk {c} ({_rows_text(rows)}): {problems[c]}")
    more = len(problems) - limit
    return "; ".join(parts) + (f"; and {more} more chunks" if more > 0 else "")
