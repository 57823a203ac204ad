"""The records of a latent store's chunks: each one's done flag and checksums, which say what is written.

A chunk's rows are written, then their checksums, then its done flag (a
kill in between leaves it not done). :meth:`ChunkRecords.scan` tells the
chunks done and intact from the damaged ones without reading a latent
(flags, checksums, file sizes); :meth:`ChunkRecords.verify` also reads the
rows; :meth:`ChunkRecords.repair` makes a damaged store fit to resume.

Examples
--------
>>> from latent_widgets.latents.chunk_records import open_records
>>> records = open_records("z.zarr")  # doctest: +SKIP
>>> records.scan()  # doctest: +SKIP
(array([ True,  True, False]), {2: 'it is marked done but its file latents/c/2/0 is missing'})
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checksums import HAS_SUM, chunk_checksum
from .store_arrays import StoreArrays
from .store_errors import DamagedArrayError, LatentStoreWarning, describe_chunks
from .store_format import check_attributes, read_attributes
from .zarr_arrays import import_zarr, read_plain_chunks, writable

__all__ = ["ChunkRecords", "open_records"]


class ChunkRecords:
    """The done flags and checksums of a store's chunks, read, checked and written.

    Parameters
    ----------
    arrays : StoreArrays
        The store's arrays.
    checksum : str or None
        The chunk checksum (``"crc32c"``), None in stores written without.
    """

    def __init__(self, arrays: StoreArrays, checksum: str | None) -> None:
        self.arrays = arrays
        self.checksum = checksum

    def _read_files(self, name: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        return read_plain_chunks(self.arrays.get(name), str(self.arrays.path), idx)

    def flags(self, idx: np.ndarray) -> np.ndarray:
        """Done flags of chunks ``idx`` as int16; -1 where a flag file cannot be read (cut short by a kill)."""
        direct = self._read_files("done", idx)
        if direct is not None:
            flags = direct[0].astype(np.int16)
            flags[direct[1]] = -1
            return flags
        done = self.arrays.get("done")
        try:
            all_flags = len(idx) == self.arrays.n_chunks
            flags = np.asarray(done[: self.arrays.n_chunks] if all_flags else done.get_orthogonal_selection((idx,)))
            return flags.astype(np.int16)
        except Exception:
            out = np.empty(len(idx), np.int16)
            for j, c in enumerate(idx):
                try:
                    out[j] = int(done[int(c)])
                except Exception:
                    out[j] = -1
            return out

    def sums(self, idx: np.ndarray) -> np.ndarray:
        """Recorded checksums of chunks ``idx``, ``(len(idx), arrays)`` uint64; 0 where none or unreadable."""
        direct = self._read_files("checksums", idx)
        if direct is not None:
            values = direct[0].astype(np.uint64)
            values[direct[1]] = 0
            return values
        sums = self.arrays.get("checksums")
        try:
            all_rows = len(idx) == self.arrays.n_chunks
            n = self.arrays.n_chunks
            return np.asarray(sums[:n] if all_rows else sums.get_orthogonal_selection((idx,)), np.uint64)
        except Exception:
            out = np.zeros((len(idx), len(self.arrays.data_names)), np.uint64)
            for j, c in enumerate(idx):
                with contextlib.suppress(Exception):
                    out[j] = sums[int(c)]
            return out

    def scan(self, chunks: Sequence[int] | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """(done and intact, per chunk of ``chunks``; {chunk: why it is damaged}). Reads no latent.

        A chunk is done when its flag is 1, its checksums are recorded (in
        stores that have them) and its files exist with the size of a chunk.
        A flag or checksum that cannot be read, or a flag other than 0 or 1,
        is damage too.
        """
        idx = np.arange(self.arrays.n_chunks) if chunks is None else np.asarray(chunks, np.int64).reshape(-1)
        flags = self.flags(idx)
        damage: dict[int, str] = {}
        for j in np.flatnonzero(flags == -1):
            damage[int(idx[j])] = "its done flag cannot be read"
        for j in np.flatnonzero((flags != -1) & (flags != 0) & (flags != 1)):
            damage[int(idx[j])] = f"its done flag holds {int(flags[j])}, not 0 or 1"
        marked = flags == 1
        if self.checksum and marked.any():
            sums = self.sums(idx)
            for j in np.flatnonzero(marked & ~np.all(sums & np.uint64(HAS_SUM), axis=1)):
                damage[int(idx[j])] = "it is marked done but no checksum of it was recorded"
        for j in np.flatnonzero(marked):
            c = int(idx[j])
            if c in damage:
                continue
            for name in self.arrays.data_names:
                problem = self.arrays.file_problem(name, c)
                if problem is not None:
                    damage[c] = f"it is marked done but {problem}"
                    break
        done = marked & ~np.isin(idx, list(damage))
        return done, damage

    def verify(self, repair: bool = False) -> dict[int, str]:
        """Read every chunk marked done and compare it with its checksum: ``{chunk: why}`` of the damaged ones.

        With ``repair``, the damaged chunks are marked not done.
        """
        done, damage = self.scan()
        if self.checksum:
            sums = self.sums(np.arange(self.arrays.n_chunks))
            for c in np.flatnonzero(done):
                rows = self.arrays.chunk_slice(int(c))
                for k, name in enumerate(self.arrays.data_names):
                    if chunk_checksum(self.checksum, np.asarray(self.arrays.get(name)[rows])) != int(sums[c, k]):
                        damage[int(c)] = f"its {name} do not match the checksum recorded when it was written"
                        break
        if repair and damage:
            self.clear(list(damage))
        return damage

    def clear(self, chunks: Sequence[int]) -> None:
        """Mark ``chunks`` not done (the next encode re-encodes them)."""
        done = self.arrays.get("done")  # a 0 (the fill value) deletes the flag's file: as never written
        for c in chunks:
            done[int(c)] = 0

    def mark_done(self, c: int, sums: Sequence[int]) -> None:
        """Record chunk ``c``'s checksums (one per array of rows; none without checksums), then its done flag."""
        if self.checksum:
            writable(self.arrays.get("checksums"))[c] = np.asarray(sums, np.uint64)
        writable(self.arrays.get("done"))[c] = 1

    def reset(self) -> None:
        """Mark every chunk as not done (the next fill re-encodes everything)."""
        self.arrays.get("done")[:] = 0
        if self.checksum:
            self.arrays.get("checksums")[:] = 0

    def repair(self) -> None:
        """Make a reused store fit to resume: damaged arrays rebuilt, damaged chunks marked not done.

        Warns (:class:`~latent_widgets.latents.store_errors.LatentStoreWarning`, for the caller of
        the method that calls this one) when something was damaged.
        """
        arrays = self.arrays
        lost: dict[str, str] = {}
        for name in [*arrays.data_names, *(["checksums"] if self.checksum else []), "done"]:
            try:
                arrays.get(name)
            except DamagedArrayError as exc:
                lost[name] = exc.what
        for name in lost:
            arrays.recreate(name)
        if set(lost) - {"done"}:
            # Rows without their array, or without their checksums, cannot be trusted: all are encoded again.
            self.reset()
        elif "done" in lost:
            self._rebuild_flags()
        if lost:
            notes = "; ".join(lost.values())
            verified = int(self.scan()[0].sum())
            warnings.warn(
                f"the latent store {arrays.path} was damaged ({notes}); rebuilt it: "
                f"{verified} of {arrays.n_chunks} chunks verified, the others are encoded again.",
                LatentStoreWarning,
                stacklevel=3,
            )
            return
        damage = self.scan()[1]
        if damage:
            self.clear(list(damage))
            warnings.warn(
                f"the latent store {arrays.path} is damaged: {describe_chunks(damage, arrays.chunk_rows, arrays.n)}. "
                "They are marked not done and encoded again.",
                LatentStoreWarning,
                stacklevel=3,
            )

    def _rebuild_flags(self) -> None:
        """Done flags from the checksums: a chunk whose rows match its recorded checksum is done."""
        if not self.checksum:
            return  # no way to tell a written chunk: every chunk is encoded again
        arrays = self.arrays
        sums = self.sums(np.arange(arrays.n_chunks))
        done = writable(arrays.get("done"))
        for c in range(arrays.n_chunks):
            if not np.all(sums[c] & np.uint64(HAS_SUM)):
                continue
            if any(arrays.file_problem(name, c) for name in arrays.data_names):
                continue
            rows = arrays.chunk_slice(c)
            blocks = [np.asarray(arrays.get(name)[rows]) for name in arrays.data_names]
            if all(chunk_checksum(self.checksum, b) == int(s) for b, s in zip(blocks, sums[c], strict=True)):
                done[c] = 1


def open_records(path: str | os.PathLike[str]) -> ChunkRecords:
    """The chunk records of the store at ``path``, its attributes and arrays of rows checked as when it is opened.

    Raises
    ------
    LatentStoreError
        Not a store, or damaged attributes or array metadata.
    """
    path = Path(path)
    attrs = check_attributes(path, read_attributes(path))
    arrays = StoreArrays.from_attributes(path, import_zarr().open_group(str(path), mode="a"), attrs)
    arrays.check_data()
    return ChunkRecords(arrays, attrs.get("checksum"))
