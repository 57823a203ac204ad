"""The Zarr arrays of one latent store, each checked once against what the store's attributes say.

A store's arrays are the rows (``latents``, the stored ``skip_<k>``) and
the records of its chunks (``done``, ``checksums``). An array whose
metadata is missing, or whose shape, chunking or dtype differ from the
attributes, raises :class:`~latent_widgets.latents.store_errors.DamagedArrayError`
when it is first used, not wrong rows later.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from latent_widgets.latents.store_arrays import StoreArrays
>>> from latent_widgets.latents.zarr_arrays import import_zarr
>>> path = Path(tempfile.mkdtemp())
>>> arrays = StoreArrays(path, import_zarr().open_group(str(path), mode="w"), n=10, chunk_rows=4,
...                      latent_shape=(3,), skip_shapes=(), stored_skips=False)
>>> arrays.create_all()
>>> arrays.n_chunks, arrays.chunk_slice(2), arrays.get("latents").shape
(3, slice(8, 10, None), (10, 3))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .store_errors import DamagedArrayError
from .zarr_arrays import chunk_key, create_array, raw_chunk_bytes

__all__ = ["StoreArrays"]


class StoreArrays:
    """The writable arrays of the store at ``path``, opened from ``group`` and checked on first use.

    Parameters
    ----------
    path : Path
        The store's folder.
    group : zarr.Group
        Opened writable.
    n, chunk_rows, latent_shape, skip_shapes, stored_skips :
        The store's layout, as its attributes record it.
    """

    def __init__(
        self,
        path: Path,
        group: Any,
        *,
        n: int,
        chunk_rows: int,
        latent_shape: tuple[int, ...],
        skip_shapes: tuple[tuple[int, ...], ...],
        stored_skips: bool,
    ) -> None:
        self.path, self.group = path, group
        self.n, self.chunk_rows = n, chunk_rows
        self.latent_shape, self.skip_shapes, self.stored_skips = latent_shape, skip_shapes, stored_skips
        self._opened: dict[str, Any] = {}

    @classmethod
    def from_attributes(cls, path: Path, group: Any, attrs: dict[str, Any]) -> StoreArrays:
        """The arrays of a store whose (checked) attributes are ``attrs``."""
        return cls(
            path,
            group,
            n=int(attrs["n"]),
            chunk_rows=int(attrs["chunk_rows"]),
            latent_shape=tuple(attrs["latent_shape"]),
            skip_shapes=tuple(tuple(s) for s in attrs["skip_shapes"]),
            stored_skips=bool(attrs["stored_skips"]),
        )

    @property
    def n_chunks(self) -> int:
        """Number of row chunks."""
        return -(-self.n // self.chunk_rows)

    def chunk_slice(self, c: int) -> slice:
        """The rows of chunk ``c``."""
        return slice(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n))

    @property
    def data_names(self) -> list[str]:
        """The arrays of rows: the latents, then the stored skips (the columns of ``checksums``)."""
        skips = [f"skip_{k}" for k in range(len(self.skip_shapes))] if self.stored_skips else []
        return ["latents", *skips]

    def expected_layout(self, name: str) -> tuple[tuple[int, ...], int, str]:
        """(shape, rows per chunk, dtype) that array ``name`` must have."""
        n_flags = max(1, self.n_chunks)
        if name == "done":
            return (n_flags,), 1, "uint8"
        if name == "checksums":
            return (n_flags, len(self.data_names)), 1, "uint64"
        shape = self.latent_shape if name == "latents" else self.skip_shapes[int(name.split("_")[1])]
        return (self.n, *shape), self.chunk_rows, "float32"

    def create_all(self) -> None:
        """Create every array of a new store: the rows, then the done flags and the checksums.

        A flag and a row of checksums per chunk, each in its own file: workers writing different
        chunks never share one.
        """
        for name in [*self.data_names, "done", "checksums"]:
            shape, rows, dtype = self.expected_layout(name)
            create_array(self.group, name, shape, (rows, *shape[1:]), dtype)

    def get(self, name: str) -> Any:
        """The writable zarr array ``name``, checked against the attributes once.

        Raises
        ------
        DamagedArrayError
            Its metadata is missing or unreadable, or its layout is not the attributes'.
        """
        array = self._opened.get(name)
        if array is not None:
            return array
        try:
            array = self.group[name]
        except Exception as exc:
            what = f"the metadata of its {name!r} array is missing or unreadable ({type(exc).__name__}: {exc})"
            raise DamagedArrayError(self.path, what) from None
        shape, rows, dtype = self.expected_layout(name)
        got = (tuple(int(s) for s in array.shape), int(array.chunks[0]), np.dtype(array.dtype).name)
        if got != (shape, rows, dtype):
            what = (
                f"its {name!r} array has shape {got[0]}, {got[1]} rows per chunk and dtype {got[2]}, where its "
                f"attributes say {shape}, {rows} and {dtype}"
            )
            raise DamagedArrayError(self.path, what)
        self._opened[name] = array
        return array

    def check_data(self) -> None:
        """Open every array of rows (raises, naming the array and the fix)."""
        for name in self.data_names:
            self.get(name)

    def recreate(self, name: str) -> None:
        """Replace array ``name`` by an empty one of the expected layout (its rows are lost)."""
        shape, rows, dtype = self.expected_layout(name)
        create_array(self.group, name, shape, (rows, *shape[1:]), dtype, overwrite=True)
        self._opened.pop(name, None)

    def file_problem(self, name: str, c: int) -> str | None:
        """Why chunk ``c``'s file of array ``name`` cannot hold its rows (missing, wrong size), or None."""
        array = self.get(name)
        key = chunk_key(array, c)
        try:
            size = os.stat(f"{self.path}/{key}").st_size  # a str path: pathlib costs more than the stat
        except FileNotFoundError:
            return f"its file {key} is missing"
        expected = raw_chunk_bytes(array)
        if expected is not None and size != expected:
            return f"its file {key} holds {size} bytes, not {expected}"
        return None
