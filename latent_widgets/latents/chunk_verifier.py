"""Chunks read from a latent store, checked against the checksums recorded when they were written.

A :class:`ChunkVerifier` holds plain attributes only, so that it travels
inside dask graphs to the workers
(:meth:`~latent_widgets.latents.store.LatentStore.dask_array`). A chunk
that fails its checksum is never served: it raises
:class:`~latent_widgets.latents.store_errors.LatentStoreError` naming its
rows, and its done flag is cleared so that the next encode re-encodes it.

Examples
--------
>>> verifier = ChunkVerifier("z.zarr", "latents", 0, n=24, chunk_rows=8, algorithm="crc32c")  # doctest: +SKIP
>>> verifier.check_rows(8, block)  # rows 8-15, as read  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .checksums import chunk_checksum
from .chunk_records import open_records
from .store_errors import LatentStoreError, describe_chunks

__all__ = ["ChunkVerifier", "verified_block"]


class ChunkVerifier:
    """Checks the chunks of one stored array against the checksums recorded with their done flags.

    Parameters
    ----------
    path : str
        The store's folder.
    name : str
        The array (``"latents"``, ``"skip_0"``...).
    column : int
        Its column in the store's checksums.
    n, chunk_rows : int
        The store's rows and rows per chunk.
    algorithm : str
        The store's chunk checksum.
    """

    def __init__(self, path: str, name: str, column: int, n: int, chunk_rows: int, algorithm: str) -> None:
        self.path, self.name, self.column = path, name, int(column)
        self.n, self.chunk_rows, self.algorithm = int(n), int(chunk_rows), algorithm
        self.expected = self._recorded()

    def _recorded(self) -> np.ndarray:
        records = open_records(self.path)
        return records.sums(np.arange(records.arrays.n_chunks))[:, self.column]

    def check(self, chunks: Sequence[int], blocks: Sequence[np.ndarray]) -> None:
        """Raise :class:`LatentStoreError` (and clear their done flags) for chunks whose rows differ."""
        got = {c: chunk_checksum(self.algorithm, b) for c, b in zip(chunks, blocks, strict=True)}
        if all(v == self.expected[c] for c, v in got.items()):
            return
        # The store may have been re-encoded since this view was made: compare with what is recorded now.
        self.expected = self._recorded()
        bad = [c for c, v in got.items() if v != self.expected[c]]
        if bad:
            raise _damaged_on_read(self, bad)

    def check_rows(self, start: int, block: np.ndarray) -> None:
        """Check a block of whole chunks that starts at row ``start`` (a multiple of ``chunk_rows``)."""
        cr = self.chunk_rows
        first = start // cr
        k = -(-len(block) // cr)
        self.check(range(first, first + k), [block[j * cr : (j + 1) * cr] for j in range(k)])


def _damaged_on_read(verifier: ChunkVerifier, chunks: Sequence[int]) -> LatentStoreError:
    """The error for chunks that fail their checksum; their done flags are cleared so that a resume re-encodes them."""
    why = {int(c): f"its {verifier.name} do not match the checksum recorded when it was written" for c in chunks}
    where = describe_chunks(why, verifier.chunk_rows, verifier.n)
    try:
        open_records(verifier.path).clear(list(why))
        fix = (
            "their done flags are now cleared: encode_dataset(dataset, store=path) (or encode_to_store) re-encodes "
            "these rows, and only these"
        )
    except Exception as exc:  # a read-only copy: nothing can be marked
        fix = (
            f"their done flags could not be cleared ({type(exc).__name__}: {exc}); restore the store from a good "
            "copy, or encode again into a writable path"
        )
    return LatentStoreError(
        f"the latent store {verifier.path} is damaged: {where} (a chunk file changed after it was written: disk "
        f"or copy corruption). These rows are not served; {fix}."
    )


def verified_block(block: np.ndarray, verifier: ChunkVerifier, block_info: Any = None) -> np.ndarray:
    """A dask block of whole chunks, checked: the task of
    :meth:`~latent_widgets.latents.store.LatentStore.dask_array`."""
    if block_info is not None and len(block):
        verifier.check_rows(int(block_info[0]["array-location"][0][0]), block)
    return block
