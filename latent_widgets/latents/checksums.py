"""The checksums of a latent store: of each chunk's rows (written with its done flag), and of its attributes.

A chunk's checksum is recorded with ``HAS_SUM`` set, so that 0, the fill
value of a row never written, means "no checksum".

Examples
--------
>>> import numpy as np
>>> from latent_widgets.latents.checksums import HAS_SUM, chunk_checksum
>>> bool(chunk_checksum("crc32", np.zeros((2, 3), np.float32)) & HAS_SUM)
True
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from .store_errors import LatentStoreError

__all__ = ["HAS_SUM", "attributes_checksum", "chunk_checksum", "default_checksum"]

#: Set in every recorded chunk checksum, so that 0 (the fill value: nothing written) means "none".
HAS_SUM = 1 << 32


def default_checksum() -> str:
    """The checksum of new stores: CRC-32C (google-crc32c, which zarr 3 installs, ~7 GB/s), else zlib's CRC-32."""
    try:
        import google_crc32c  # noqa: F401
    except ImportError:  # pragma: no cover - zarr 2 without it
        return "crc32"
    return "crc32c"


def chunk_checksum(algorithm: str, data: np.ndarray) -> int:
    """The recorded checksum of a chunk's float32 rows (``HAS_SUM`` set)."""
    buf = np.ascontiguousarray(data, np.float32)
    if algorithm == "crc32c":
        try:
            import google_crc32c
        except ImportError:  # pragma: no cover - a store written where it was installed, read where it is not
            raise LatentStoreError(
                "this latent store's chunks carry CRC-32C checksums and google-crc32c is not installed; "
                "pip install google-crc32c (zarr 3 depends on it)."
            ) from None
        value = google_crc32c.value(buf)
    elif algorithm == "crc32":
        value = zlib.crc32(buf)
    else:
        raise LatentStoreError(f"unknown chunk checksum {algorithm!r}: the store was written by a newer version.")
    return int(value) | HAS_SUM


def attributes_checksum(attrs: dict[str, Any]) -> str:
    """A checksum of the store's other attributes, as canonical JSON (what a damaged zarr.json changes).

    Examples
    --------
    >>> attributes_checksum({"n": 3}) == attributes_checksum({"n": 3, "attributes_checksum": "x"})
    True
    """
    body = {k: v for k, v in attrs.items() if k != "attributes_checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"crc32:{zlib.crc32(text.encode()):08x}"
