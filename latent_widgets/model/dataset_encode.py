"""A latent model's dataset encode: in memory and cached as one ``.npz``, streamed into a store, or on a cluster.

What :meth:`LatentModelBase.encode_dataset
<latent_widgets.model.latent_base.LatentModelBase.encode_dataset>` does
(documented there): the route by size and laziness, the cache key (the
encoder's weights and the dataset's content), and the
:class:`~latent_widgets.model.encoding.Encoding` of a store, whose skips are
stored or re-encoded when indexed. The store and the cluster are the layer
above (:mod:`latent_widgets.latents`), imported at the call.

Examples
--------
>>> enc = encode_dataset(lm, ds, store=False)  # doctest: +SKIP
>>> enc.latents.shape  # doctest: +SKIP
(367, 6, 8, 128)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .encode_options import EncodeOptions
from .encoding import Encoding

if TYPE_CHECKING:  # pragma: no cover
    from ..data.dataset import SegmentationDataset

__all__ = ["STORE_ABOVE_BYTES", "BatchEncoder", "encode_dataset", "encode_to_store", "encoded_bytes", "store_encoding"]

#: ``encode_dataset(store=None)`` streams into a latent store above this many bytes of latents and skips.
STORE_ABOVE_BYTES = 1 << 30


class BatchEncoder(Protocol):
    """What the dataset encode calls on a latent model (:class:`~latent_widgets.model.latent_base.LatentModelBase`)."""

    latent_shape: tuple[int, ...]
    skip_shapes: tuple[tuple[int, ...], ...]

    def weights_hash(self) -> str: ...

    def encode(
        self, images: Any, batch_size: int = ..., progress: bool | None = ..., on_batch: Any = ...
    ) -> Encoding: ...

    def encode_batch(self, images: Any) -> tuple[Any, ...]: ...

    def encode_batch_numpy(self, images: Any) -> tuple[np.ndarray, ...]: ...


def encode_dataset(
    model: BatchEncoder,
    dataset: SegmentationDataset,
    options: EncodeOptions,
    *,
    cache: bool = True,
    store: str | os.PathLike[str] | bool | None = None,
    progress: bool | None = None,
    client: Any = None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> Encoding:
    """:meth:`~latent_widgets.model.latent_base.LatentModelBase.encode_dataset` of ``model`` (documented there).

    ``options``: what the encode writes (built once by the method from its
    keywords); the others say where it goes and how it reports.

    Examples
    --------
    >>> lazy = synthetic_road_scenes(100_000, lazy=True)  # doctest: +SKIP
    >>> enc = encode_dataset(lm, lazy, EncodeOptions(), store="road.zarr")  # doctest: +SKIP
    """
    from ..core.cache import cache_dir, cached_arrays, content_hash

    if client is not None:
        from ..latents.distributed import submit_encode

        # (store is checked there: a path, with a clear error otherwise)
        st = submit_encode(model, dataset, store, client, options).wait(progress)  # type: ignore[arg-type]
        return store_encoding(model, st, dataset, options.batch_size)

    model_hash, data_hash = model.weights_hash(), dataset.content_hash()
    if store is None:
        store = bool(getattr(dataset, "is_lazy", False)) or encoded_bytes(model, len(dataset)) > STORE_ABOVE_BYTES
    if store is not False:
        if store is True:
            name = content_hash("encode_dataset-store-v1", model_hash, data_hash)
            store = cache_dir("latents") / f"{name}{'-skips' if options.store_skips else ''}.zarr"
        return encode_to_store(
            model,
            dataset,
            Path(store),
            model_hash=model_hash,
            data_hash=data_hash,
            options=options,
            progress=progress,
            on_batch=on_batch,
        )

    key = content_hash("encode_dataset-v1", model_hash, data_hash)

    def compute() -> dict[str, np.ndarray]:
        enc = model.encode(dataset.images, batch_size=options.batch_size, progress=progress, on_batch=on_batch)
        out = {"latents": enc.latents}
        out.update({f"skip_{k}": s for k, s in enumerate(enc.skips)})
        return out

    arrays = cached_arrays("latents", key, compute, use_cache=cache)
    return Encoding(
        arrays["latents"].astype(np.float32, copy=False),
        tuple(arrays[f"skip_{k}"].astype(np.float32, copy=False) for k in range(len(model.skip_shapes))),
    )


def encoded_bytes(model: BatchEncoder, n: int) -> int:
    """Bytes of ``n`` latents and their skips in float32.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> encoded_bytes(SimpleNamespace(latent_shape=(2, 2, 8), skip_shapes=((4, 4, 2),)), 10)
    2560
    """
    shapes = (model.latent_shape, *model.skip_shapes)
    return 4 * int(n) * sum(int(np.prod(s)) for s in shapes)


def encode_to_store(
    model: BatchEncoder,
    dataset: SegmentationDataset,
    path: Path,
    *,
    model_hash: str,
    data_hash: str,
    options: EncodeOptions,
    progress: bool | None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> Encoding:
    """Stream ``dataset`` through the model's encoder into the store at ``path``.

    :func:`latent_widgets.latents.encode.encode_to_store` does the streaming.

    Examples
    --------
    >>> enc = encode_to_store(lm, ds, Path("road.zarr"), model_hash=lm.weights_hash(), data_hash=ds.content_hash(),
    ...                       options=EncodeOptions(batch_size=32), progress=None)  # doctest: +SKIP
    """
    from ..latents.encode import encode_to_store as stream_to_store

    st = stream_to_store(
        model.encode_batch,
        dataset.images,
        path,
        model_hash=model_hash,
        data_hash=data_hash,
        latent_shape=model.latent_shape,
        skip_shapes=model.skip_shapes,
        options=options,
        progress=progress,
        on_batch=on_batch,
    )
    return store_encoding(model, st, dataset, options.batch_size)


def store_encoding(model: BatchEncoder, st: Any, dataset: SegmentationDataset, batch_size: int) -> Encoding:
    """The Encoding of a written store: its latents, and its skips stored or re-encoded when indexed.

    Examples
    --------
    >>> enc = store_encoding(lm, LatentStore.open("road.zarr"), ds, 32)  # doctest: +SKIP
    """
    if st.stored_skips or not model.skip_shapes:
        skips: tuple[Any, ...] = st.skips
    else:
        skips = st.lazy_skips(model.encode_batch_numpy, dataset.images, batch_size)
    return Encoding(st.latents, skips)
