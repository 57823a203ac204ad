"""The format of a latent store folder: its attributes, how a folder is recognised as one, its chunk size.

Layout of a store folder (a Zarr group)::

    zarr.json    attributes: format, version, model_hash, data_hash, n,
                 latent_shape, skip_shapes, chunk_rows, stored_skips,
                 dtype, checksum, attributes_checksum
    latents/     (n, *latent_shape) float32, chunks of chunk_rows rows
    skip_<k>/    (n, *skip_shape) float32, only with store_skips=True
    done/        (n_chunks,) uint8, one Zarr chunk per flag
    checksums/   (n_chunks, arrays) uint64, one Zarr chunk per row

The attributes are written last, in one write: a folder killed before that
is not taken for a store. Reading them checks their format, version, kinds
and checksum (:func:`check_attributes`), and what they were computed from
(:func:`check_hashes`).

Examples
--------
>>> from latent_widgets.latents.store_format import default_chunk_rows, stored_row_bytes
>>> default_chunk_rows(10_000, 32, stored_row_bytes((4, 4, 128)))
256
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checksums import attributes_checksum, default_checksum
from .store_errors import LatentStoreError
from .zarr_arrays import import_zarr

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "check_attributes",
    "check_hashes",
    "check_reusable",
    "default_chunk_rows",
    "is_store",
    "looks_like_store",
    "new_attributes",
    "read_attributes",
    "stored_row_bytes",
]

#: The ``format`` attribute of every latent store (how a folder is recognised as one).
STORE_FORMAT = "latent-widgets/latent-store"
#: Version of the layout; a store of another version is refused.
STORE_VERSION = 1

_REQUIRED_ATTRS = {
    "format",
    "version",
    "model_hash",
    "data_hash",
    "n",
    "latent_shape",
    "skip_shapes",
    "stored_skips",
    "chunk_rows",
}
# Target bytes of one chunk of rows (latents plus stored skips): big enough that
# a file per chunk is cheap for 10^5 rows, small enough that a killed encode
# loses little and that reading one sample reads little.
_CHUNK_BYTES = 2 << 20


def stored_row_bytes(
    latent_shape: Sequence[int], skip_shapes: Sequence[Sequence[int]] = (), store_skips: bool = False
) -> int:
    """Bytes one sample takes in a store: its float32 latent, and its skips when they are stored.

    Examples
    --------
    >>> stored_row_bytes((3,), [(2, 2)], store_skips=True)
    28
    """
    shapes = [latent_shape, *(skip_shapes if store_skips else ())]
    return sum(4 * int(np.prod(s)) for s in shapes)


def default_chunk_rows(n: int, batch_size: int, row_bytes: int) -> int:
    """Rows per chunk: a multiple of ``batch_size``, about 2 MiB of rows, no more than ``n`` needs.

    Examples
    --------
    >>> default_chunk_rows(10, 4, 12)
    12
    """
    batch_size = max(1, int(batch_size))
    per_batch = max(1, batch_size * int(row_bytes))
    k = max(1, _CHUNK_BYTES // per_batch)
    k = min(k, max(1, -(-int(n) // batch_size)))
    return k * batch_size


def _json_shape(shape: Sequence[int]) -> list[int]:
    return [int(s) for s in shape]


def new_attributes(
    *,
    model_hash: str,
    data_hash: str,
    n: int,
    latent_shape: Sequence[int],
    skip_shapes: Sequence[Sequence[int]],
    stored_skips: bool,
    chunk_rows: int,
) -> dict[str, Any]:
    """The attributes of a new store, their checksum included (written last, in one write).

    Examples
    --------
    >>> a = new_attributes(model_hash="m", data_hash="d", n=10, latent_shape=(3,), skip_shapes=(),
    ...                    stored_skips=False, chunk_rows=8)
    >>> a["format"] == STORE_FORMAT, a["latent_shape"]
    (True, [3])
    """
    attrs = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "model_hash": str(model_hash),
        "data_hash": str(data_hash),
        "n": int(n),
        "latent_shape": _json_shape(latent_shape),
        "skip_shapes": [_json_shape(s) for s in skip_shapes],
        "stored_skips": bool(stored_skips),
        "chunk_rows": int(chunk_rows),
        "dtype": "float32",
        "checksum": default_checksum(),
    }
    attrs["attributes_checksum"] = attributes_checksum(attrs)
    return attrs


def read_attributes(path: Path) -> dict[str, Any] | None:
    """The attributes of the Zarr group at ``path``, or None when it holds no readable Zarr group."""
    try:
        group = import_zarr().open_group(str(path), mode="r")
    except Exception:
        return None
    return dict(group.attrs)


def looks_like_store(path: Path) -> bool:
    """A folder with a store's arrays (whatever its zarr.json says)."""
    return (path / "latents").is_dir() and (path / "done").is_dir()


def is_store(path: Path) -> bool:
    """Whether ``path`` is a latent store's folder (its attributes name the store format).

    Examples
    --------
    >>> import tempfile
    >>> is_store(Path(tempfile.mkdtemp()))
    False
    """
    attrs = read_attributes(path) if path.is_dir() else None
    return attrs is not None and attrs.get("format") == STORE_FORMAT


def _attribute_problems(attrs: dict[str, Any]) -> list[str]:
    """What is wrong with a store's attributes (values of the wrong kind, a checksum that does not match)."""
    problems = []
    recorded = attrs.get("attributes_checksum")
    if recorded is not None and recorded != attributes_checksum(attrs):
        problems.append("they do not match the checksum written with them")

    def count(v: Any, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    def shape(v: Any) -> bool:
        return isinstance(v, list) and all(count(s, 1) for s in v)

    checks = {
        "model_hash": isinstance(attrs.get("model_hash"), str),
        "data_hash": isinstance(attrs.get("data_hash"), str),
        "n": count(attrs.get("n"), 0),
        "chunk_rows": count(attrs.get("chunk_rows"), 1),
        "latent_shape": shape(attrs.get("latent_shape")),
        "skip_shapes": isinstance(attrs.get("skip_shapes"), list) and all(map(shape, attrs["skip_shapes"])),
        "stored_skips": isinstance(attrs.get("stored_skips"), bool),
    }
    problems += [f"{k}={attrs.get(k)!r} is not valid" for k, ok in checks.items() if not ok]
    return problems


def check_attributes(path: Path, attrs: dict[str, Any] | None) -> dict[str, Any]:
    """``attrs``, the attributes read at ``path``, if they are a sound store's; else a :class:`LatentStoreError`.

    Raises
    ------
    LatentStoreError
        Not a store, a store of another version, or damaged attributes.
    """
    if (attrs is None or attrs.get("format") != STORE_FORMAT) and looks_like_store(path):
        raise LatentStoreError(
            f"{path} holds a latent store's arrays (latents/, done/) but its group metadata (zarr.json, or "
            ".zattrs in Zarr format 2) is missing, unreadable or not a store's: the store is damaged (a partial "
            "copy?) and what it was computed from is unknown. Restore it from a good copy, or delete the folder "
            "and encode again."
        )
    if attrs is None or attrs.get("format") != STORE_FORMAT:
        raise LatentStoreError(
            f"{path} is not a latent store (no {STORE_FORMAT!r} Zarr group there); pass the path of a "
            "store written by encode_dataset(..., store=path), or a new path to create one."
        )
    if attrs.get("version") != STORE_VERSION:
        raise LatentStoreError(
            f"{path} is a latent store of version {attrs.get('version')}, this library reads version "
            f"{STORE_VERSION}; encode again into a new path, or pass overwrite=True."
        )
    missing = sorted(_REQUIRED_ATTRS - set(attrs))
    if missing:
        raise LatentStoreError(
            f"{path} is a damaged latent store (attributes {missing} are missing); encode again into a "
            "new path, or pass overwrite=True."
        )
    problems = _attribute_problems(attrs)
    if problems:
        raise LatentStoreError(
            f"{path} is a damaged latent store: its attributes were edited or corrupted "
            f"({'; '.join(problems)}), so its hashes and shapes cannot be trusted. Encode again with "
            "overwrite=True (or into a new path), or restore the store from a good copy."
        )
    return attrs


def check_hashes(path: Path, attrs: dict[str, Any], model_hash: str | None, data_hash: str | None) -> None:
    """Raise :class:`LatentStoreError` when the store was computed from another model or data than asked."""
    differs = []
    if model_hash is not None and attrs.get("model_hash") != model_hash:
        differs.append(("model", attrs.get("model_hash"), model_hash))
    if data_hash is not None and attrs.get("data_hash") != data_hash:
        differs.append(("data", attrs.get("data_hash"), data_hash))
    if differs:
        what = " and ".join(d[0] for d in differs)
        detail = "; ".join(f"{w} hash: store {s}, requested {r}" for w, s, r in differs)
        raise LatentStoreError(
            f"the latent store {path} was computed from another {what} ({detail}); its latents do not "
            "belong to this model and dataset. Pass a new store path, or overwrite=True to replace it."
        )


def check_reusable(
    path: Path,
    attrs: dict[str, Any],
    n: int,
    latent_shape: tuple[int, ...],
    skip_shapes: tuple[tuple[int, ...], ...],
    store_skips: bool,
) -> None:
    """Raise :class:`LatentStoreError` unless the store with (checked) ``attrs`` holds what is asked for.

    A store is reused to resume an encode when it has the same number of
    samples, latent and skip shapes, and holds the skips if they are asked for.
    """
    held = (int(attrs["n"]), tuple(attrs["latent_shape"]), tuple(tuple(s) for s in attrs["skip_shapes"]))
    if held != (n, latent_shape, skip_shapes):
        raise LatentStoreError(
            f"the latent store {path} holds {held[0]} latents of shape {held[1]} "
            f"(skips {held[2]}), not {n} of shape {latent_shape} (skips {skip_shapes}); "
            "pass a new path or overwrite=True."
        )
    if store_skips and not bool(attrs["stored_skips"]) and skip_shapes:
        raise LatentStoreError(
            f"the latent store {path} was written without skip features and store_skips=True asks "
            "for them; pass a new path or overwrite=True to re-encode with the skips."
        )
