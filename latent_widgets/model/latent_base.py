"""What every latent-model adapter shares: input checks, batching, the dataset encode.

:class:`LatentModelBase` holds the framework-free half of
:class:`~latent_widgets.model.latent_model.LatentModel` (Keras) and
:class:`~latent_widgets.model.onnx_model.OnnxLatentModel` (ONNX Runtime): the
checks of images, latents and skips with their error messages, the split
into batches, the progress bar, and :meth:`~LatentModelBase.encode_dataset`
with its on-disk cache and latent store. An adapter sets the shape
attributes and implements four calls on one batch of checked numpy arrays:
``_encode_numpy``, ``_decode_numpy``, ``_masks_numpy`` and
``weights_hash``.

Examples
--------
>>> from latent_widgets.model.latent_base import Encoding
>>> import numpy as np
>>> enc = Encoding(np.zeros((2, 3, 4, 8), np.float32), ())
>>> enc.latents.shape, enc.skips
((2, 3, 4, 8), ())
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..core.arrays import iter_row_blocks
from .errors import LatentModelError

if TYPE_CHECKING:  # pragma: no cover
    from ..data.dataset import SegmentationDataset

__all__ = ["Encoding", "LatentModelBase"]

# Show a progress bar in encode() from this many batches on (progress=None).
_AUTO_PROGRESS_BATCHES = 8
# encode_dataset(store=None) streams into a latent store above this many bytes of latents and skips.
_STORE_ABOVE_BYTES = 1 << 30


class Encoding(NamedTuple):
    """What :meth:`LatentModel.encode` and :meth:`LatentModel.encode_dataset` return.

    Attributes
    ----------
    latents : ndarray, float32, shape (N, *latent_shape)
        From ``encode_dataset`` with a store: a read-only
        :class:`~latent_widgets.latents.store.StoredArray` on disk, indexed like numpy.
    skips : tuple of ndarray
        One array ``(N, *skip_shape)`` per skip input of the decoder, in the
        decoder's order; ``()`` for a network without skips. From
        ``encode_dataset`` with a store: stored arrays, or
        :class:`~latent_widgets.latents.lazy_skips.LazySkipColumn` objects that re-encode
        the samples they are indexed with.
    """

    latents: np.ndarray
    skips: tuple[np.ndarray, ...]


class LatentModelBase:
    """The checks, batching and dataset encode of a latent model; an adapter adds the four calls.

    Attributes an adapter sets: ``input_shape`` ``(H, W, C)``,
    ``latent_shape``, ``skip_shapes``, ``has_skips``, ``n_classes``.
    Methods it implements, each on one batch of checked float32 numpy
    arrays: ``_encode_numpy(x) -> (latent, *skips)``,
    ``_decode_numpy(z, skips, masks) -> probs`` or ``(probs, int32 masks)``
    (probabilities ``(N, H, W, n_classes)`` at the image size),
    ``_masks_numpy(x) -> (N, H, W) int32``, and ``weights_hash()``.

    Examples
    --------
    >>> class Zeros(LatentModelBase):  # a latent model of 2x2 zeros, one class
    ...     input_shape, latent_shape, skip_shapes, has_skips, n_classes = (4, 4, 3), (2, 2, 1), (), False, 1
    ...     def _encode_numpy(self, x):
    ...         return (np.zeros((len(x), 2, 2, 1), np.float32),)
    >>> Zeros().encode(np.ones((3, 4, 4, 3))).latents.shape
    (3, 2, 2, 1)
    """

    input_shape: tuple[int, int, int]
    latent_shape: tuple[int, ...]
    skip_shapes: tuple[tuple[int, ...], ...]
    has_skips: bool
    n_classes: int

    # ------------------------------------------------------------------ the adapter's calls

    def _encode_numpy(self, x: np.ndarray) -> tuple[Any, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode_numpy(self, z: np.ndarray, skips: list[np.ndarray], masks: bool) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _masks_numpy(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights_hash(self) -> str:  # pragma: no cover - abstract
        """Hash of what the latents are computed from (the encoder's architecture and weights): a cache key."""
        raise NotImplementedError

    # ------------------------------------------------------------------ validation

    def _check_images(self, images: Any) -> np.ndarray:
        x = np.asarray(images)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / np.float32(255)  # 0..255 images -> the 0..1 the models expect
        elif x.dtype != np.float32:
            if not np.issubdtype(x.dtype, np.number):
                raise LatentModelError(f"images must be numeric arrays, got dtype {x.dtype}.")
            x = x.astype(np.float32)
        if x.ndim == 3:
            x = x[None]
        h, w, c = self.input_shape
        if x.ndim != 4:
            raise LatentModelError(f"images must have shape (N, {h}, {w}, {c}) or ({h}, {w}, {c}), got {x.shape}.")
        if x.shape[3] != c:
            raise LatentModelError(
                f"images have {x.shape[3]} channel(s) but the model expects {c}; "
                + ("convert them to RGB (e.g. PIL Image.convert('RGB'))." if c == 3 else f"give {c}-channel images.")
            )
        if x.shape[1:3] != (h, w):
            raise LatentModelError(
                f"images are {x.shape[1]}x{x.shape[2]} (HxW) but the model expects {h}x{w}; resize them "
                f"first, e.g. load_camvid(..., size=({h}, {w}))."
            )
        return x

    def _check_latents(self, latents: Any, skips: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        z = np.asarray(latents, dtype=np.float32)
        single = z.shape == self.latent_shape
        if single:
            z = z[None]
        elif z.ndim != len(self.latent_shape) + 1 or z.shape[1:] != self.latent_shape:
            raise LatentModelError(
                f"latents must have shape (N, {', '.join(map(str, self.latent_shape))}) or "
                f"{self.latent_shape} for one latent, got {z.shape}."
            )
        if not np.isfinite(z).all():
            bad = np.flatnonzero(~np.isfinite(z.reshape(len(z), -1)).all(axis=1))
            raise LatentModelError(
                f"latent {int(bad[0])} contains NaN or Inf ({len(bad)} of {len(z)} latents); the decoder "
                "would return garbage. Check the edit, interpolation or inverse projection that produced it."
            )
        n_skips = len(self.skip_shapes)
        if n_skips == 0:
            if skips is not None and len(skips):
                raise LatentModelError(f"this decoder takes no skip features, got {len(skips)}; call decode(latents).")
            return z, []
        if skips is None:
            raise LatentModelError(
                f"this decoder needs {n_skips} skip feature array(s) beside the latent (shapes "
                f"{list(self.skip_shapes)}); pass skips=encode(images).skips."
            )
        if (
            isinstance(skips, np.ndarray)
            and n_skips == 1
            and skips.ndim
            in (
                len(self.skip_shapes[0]),
                len(self.skip_shapes[0]) + 1,
            )
        ):
            skips = (skips,)
        if len(skips) != n_skips:
            raise LatentModelError(
                f"this decoder needs {n_skips} skip feature array(s), got {len(skips)}; "
                "pass skips=encode(images).skips."
            )
        out = []
        for k, (s, shape) in enumerate(zip(skips, self.skip_shapes, strict=False)):
            s = np.asarray(s, dtype=np.float32)
            if s.shape == shape:
                s = s[None]
            if len(s) == 1 and len(z) > 1 and s.shape[1:] == shape:
                # One image's skips for many latents (e.g. an interpolation path).
                s = np.broadcast_to(s, (len(z), *shape))
            if s.shape[1:] != shape or len(s) != len(z):
                raise LatentModelError(
                    f"skip {k} must have shape ({len(z)}, {', '.join(map(str, shape))}) to go with "
                    f"{len(z)} latent(s), got {s.shape}."
                )
            if not np.isfinite(s).all():
                raise LatentModelError(f"skip {k} contains NaN or Inf; recompute it with encode().")
            out.append(s)
        return z, out

    # ------------------------------------------------------------------ public API

    def encode(
        self,
        images: Any,
        batch_size: int = 32,
        progress: bool | None = None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        """Map images to latents (and skip features).

        Parameters
        ----------
        images : array, (N, H, W, C) or (H, W, C)
            Floats in 0..1 (uint8 images are divided by 255).
        batch_size : int
            Images per compiled call.
        progress : bool, optional
            Show a progress bar; default: when there are 8 batches or more.
        on_batch : callable, optional
            ``on_batch(images_done, n)``, called before the first batch and
            after each one: progress, or other work done between batches.

        Returns
        -------
        Encoding
            ``latents`` ``(N, *latent_shape)`` and ``skips``, float32 numpy.

        Examples
        --------
        >>> enc = lm.encode(ds.images)  # doctest: +SKIP
        >>> enc.latents.shape  # doctest: +SKIP
        (367, 6, 8, 128)
        """
        x = self._check_images(images)
        n = len(x)
        batch_size = max(1, int(batch_size))
        blocks = list(iter_row_blocks(n, batch_size))
        if progress is None:
            progress = len(blocks) >= _AUTO_PROGRESS_BATCHES
        latents = np.empty((n, *self.latent_shape), np.float32)
        skips = tuple(np.empty((n, *s), np.float32) for s in self.skip_shapes)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="encoding", unit="img", leave=False)
        try:
            if on_batch is not None:
                on_batch(0, n)
            for rows in blocks:
                chunk = x[rows]
                outs = self._encode_numpy(chunk)
                latents[rows] = outs[0]
                for dst, src in zip(skips, outs[1:], strict=False):
                    dst[rows] = src
                if bar is not None:
                    bar.update(len(chunk))
                if on_batch is not None:
                    on_batch(rows.stop, n)
        finally:
            if bar is not None:
                bar.close()
        return Encoding(latents, skips)

    def decode(self, latents: Any, skips: Any = None, batch_size: int = 32) -> np.ndarray:
        """Map latents (and skips) to per-pixel class probabilities.

        Parameters
        ----------
        latents : array, (N, *latent_shape) or latent_shape, or Encoding
            One latent without a batch axis gives a batch of 1. An
            :class:`Encoding` (what :meth:`encode` returns) stands for its
            latents and skips: ``decode(encode(x))``.
        skips : sequence of arrays, optional
            Required when ``has_skips`` and ``latents`` is an array:
            ``encode(...).skips`` matching the latents, or one sample's skips
            (with or without batch axis), which are then used for every
            latent. Must be left out when ``latents`` is an Encoding.
        batch_size : int
            Latents per compiled call.

        Returns
        -------
        ndarray, float32, (N, H, W, n_classes)

        Raises
        ------
        LatentModelError
            Wrong shape, missing skips, skips given with an Encoding, NaN or
            Inf in a latent.

        Examples
        --------
        >>> probs = lm.decode(lm.encode(ds.images[:2]))  # doctest: +SKIP
        >>> probs = lm.decode(0.5 * (enc.latents[0] + enc.latents[1]))  # doctest: +SKIP
        >>> probs.shape  # doctest: +SKIP
        (1, 96, 128, 12)
        """
        return self._decode(latents, skips, batch_size, masks=False)

    def decode_with_masks(self, latents: Any, skips: Any = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and their argmax masks, from one compiled call.

        What the interpolation slider shows for each alpha: the same as
        ``probs = decode(...)`` and ``probs.argmax(-1)``, with the argmax done
        inside the graph. ``latents`` and ``skips`` as in :meth:`decode`
        (an :class:`Encoding` included).

        Returns
        -------
        probs : ndarray, float32, (N, H, W, n_classes)
        masks : ndarray, int32, (N, H, W)

        Examples
        --------
        >>> probs, masks = lm.decode_with_masks(enc.latents[:1], enc.skips)  # doctest: +SKIP
        >>> probs, masks = lm.decode_with_masks(lm.encode(ds.images[:1]))  # doctest: +SKIP
        """
        return self._decode(latents, skips, batch_size, masks=True)

    def _decode(self, latents: Any, skips: Any, batch_size: int, masks: bool) -> Any:
        if isinstance(latents, Encoding):
            if skips is not None:
                raise LatentModelError(
                    "got an Encoding and skips: an Encoding already carries its skips; call "
                    "decode(encoding) or decode(encoding.latents, skips), not decode(encoding, skips)."
                )
            latents, skips = latents.latents, latents.skips
        z, sk = self._check_latents(latents, skips)
        n = len(z)
        if n <= batch_size:  # the widgets' case: one call, no copies
            return self._decode_numpy(z, sk, masks)
        parts = [self._decode_numpy(z[rows], [s[rows] for s in sk], masks) for rows in iter_row_blocks(n, batch_size)]
        if masks:
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return np.concatenate(parts)

    def predict_masks(self, images: Any, batch_size: int = 32) -> np.ndarray:
        """Predicted class id per pixel, ``(N, H, W)`` int32.

        Examples
        --------
        >>> masks = lm.predict_masks(ds.images)  # doctest: +SKIP
        """
        x = self._check_images(images)
        batch_size = max(1, int(batch_size))
        parts = [self._masks_numpy(x[rows]) for rows in iter_row_blocks(len(x), batch_size)]
        if not parts:
            return np.empty((0, *self.input_shape[:2]), np.int32)
        return np.concatenate(parts)

    def encode_dataset(
        self,
        dataset: SegmentationDataset,
        batch_size: int = 32,
        cache: bool = True,
        *,
        store: str | os.PathLike[str] | bool | None = None,
        resume: bool = True,
        overwrite: bool = False,
        progress: bool | None = None,
        store_skips: bool = False,
        chunk_rows: int | None = None,
        client: Any = None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        """:meth:`encode` a dataset's images, cached on disk.

        Small in-memory datasets are encoded in memory and cached as one
        ``.npz``. Large or lazy datasets are streamed into a
        :class:`~latent_widgets.latents.store.LatentStore` (a Zarr folder): a
        background thread reads the next batch of images while the encoder
        runs, each finished chunk of rows is written and marked done, and an
        interrupted encode resumes where it stopped. Either way the key is
        the encoder's weights and architecture (:meth:`weights_hash`) and
        ``dataset.content_hash()``, so retraining the model or changing the
        data is a cache miss, never a stale answer.

        Parameters
        ----------
        dataset : SegmentationDataset
            Eager or lazy (``dataset.images[rows]`` is read batch by batch).
        batch_size : int
            Images per compiled encoder call.
        cache : bool
            ``False`` always re-encodes (and, without a store, writes nothing).
        store : path, bool or None
            Where the latents go. A path: a store folder there. ``True``: a
            store under ``cache_dir("latents")`` named by the hash. ``False``:
            in memory. ``None`` (default): a store for lazy datasets and when
            the latents and skips would exceed 1 GiB, memory otherwise.
        resume : bool
            Continue a partly written store (``False`` re-encodes it all).
        overwrite : bool
            Replace a store at ``store`` that belongs to another model or
            dataset (otherwise that raises :class:`~latent_widgets.latents.store.LatentStoreError`).
        progress : bool, optional
            A progress bar; default: for 8 batches or more. When resuming it
            starts at the rows already done.
        store_skips : bool
            With a store, keep the skip features on disk too. By default they
            are not stored (they are often 10-100x the latents): the returned
            ``skips`` are :class:`~latent_widgets.latents.lazy_skips.LazySkipColumn` objects
            that re-encode the requested samples when indexed.
        chunk_rows : int, optional
            Rows per store chunk (a multiple of ``batch_size``); default about 2 MiB.
        client : dask.distributed.Client, optional
            Encode on this Dask cluster's workers, one task per chunk, each
            writing straight into the store (:mod:`latent_widgets.latents.distributed`):
            needs a lazy dataset, a ``store`` path that every worker can
            reach, and ``pip install 'latent-widgets[dask]'``. ``None``: encode here.
        on_batch : callable, optional
            ``on_batch(images_done, n)`` before the first batch and after
            each (not called on a cache hit, nor with ``client``): progress,
            or other work between batches (the explorer session answers its
            slider there while it encodes the dataset).

        Returns
        -------
        Encoding
            In memory: numpy arrays. With a store: ``latents`` is the store's
            read-only :class:`~latent_widgets.latents.store.StoredArray` (indexable like
            numpy, nothing loaded until indexed) and ``skips`` are stored
            arrays or lazy columns.

        Raises
        ------
        LatentStoreError
            The store at ``store`` was computed by another model or from
            another dataset (pass a new path or ``overwrite=True``).

        Examples
        --------
        >>> enc = lm.encode_dataset(load_camvid(root, "train", size=(96, 128)))  # doctest: +SKIP
        >>> enc = lm.encode_dataset(synthetic_road_scenes(100_000, lazy=True), store="road.zarr")  # doctest: +SKIP
        >>> enc.latents[:10].shape  # doctest: +SKIP
        (10, 6, 8, 128)
        >>> enc = lm.encode_dataset(ds, store="/shared/road.zarr", client=dask_client)  # doctest: +SKIP
        """
        from ..core.cache import cache_dir, cached_arrays, content_hash

        if client is not None:
            from ..latents.distributed import encode_on_cluster

            st = encode_on_cluster(
                self,
                dataset,
                store,  # type: ignore[arg-type]  (checked there: a path, with a clear error otherwise)
                client,
                batch_size=batch_size,
                resume=resume and cache,
                overwrite=overwrite,
                store_skips=store_skips,
                chunk_rows=chunk_rows,
                progress=progress,
            )
            return self._store_encoding(st, dataset, batch_size)

        model_hash, data_hash = self.weights_hash(), dataset.content_hash()
        if store is None:
            store = bool(getattr(dataset, "is_lazy", False)) or self._encoded_bytes(len(dataset)) > _STORE_ABOVE_BYTES
        if store is not False:
            if store is True:
                name = content_hash("encode_dataset-store-v1", model_hash, data_hash)
                store = cache_dir("latents") / f"{name}{'-skips' if store_skips else ''}.zarr"
            return self._encode_to_store(
                dataset,
                Path(store),
                model_hash=model_hash,
                data_hash=data_hash,
                batch_size=batch_size,
                resume=resume and cache,
                overwrite=overwrite,
                progress=progress,
                store_skips=store_skips,
                chunk_rows=chunk_rows,
                on_batch=on_batch,
            )

        key = content_hash("encode_dataset-v1", model_hash, data_hash)

        def compute() -> dict[str, np.ndarray]:
            enc = self.encode(dataset.images, batch_size=batch_size, progress=progress, on_batch=on_batch)
            out = {"latents": enc.latents}
            out.update({f"skip_{k}": s for k, s in enumerate(enc.skips)})
            return out

        arrays = cached_arrays("latents", key, compute, use_cache=cache)
        return Encoding(
            arrays["latents"].astype(np.float32, copy=False),
            tuple(arrays[f"skip_{k}"].astype(np.float32, copy=False) for k in range(len(self.skip_shapes))),
        )

    def _encoded_bytes(self, n: int) -> int:
        """Bytes of ``n`` latents and their skips in float32."""
        shapes = (self.latent_shape, *self.skip_shapes)
        return 4 * int(n) * sum(int(np.prod(s)) for s in shapes)

    def _encode_batch(self, images: Any) -> tuple[Any, ...]:
        """One encoder call on a batch: ``(latent, *skips)`` (arrays, or tensors with a ``numpy()``)."""
        return self._encode_numpy(self._check_images(images))

    def _encode_batch_numpy(self, images: Any) -> tuple[np.ndarray, ...]:
        return tuple(t if isinstance(t, np.ndarray) else t.numpy() for t in self._encode_batch(images))

    def _encode_to_store(
        self,
        dataset: SegmentationDataset,
        path: Path,
        *,
        model_hash: str,
        data_hash: str,
        batch_size: int,
        resume: bool,
        overwrite: bool,
        progress: bool | None,
        store_skips: bool,
        chunk_rows: int | None,
        on_batch: Callable[[int, int], Any] | None = None,
    ) -> Encoding:
        from ..latents.encode import encode_to_store

        st = encode_to_store(
            self._encode_batch,
            dataset.images,
            path,
            model_hash=model_hash,
            data_hash=data_hash,
            latent_shape=self.latent_shape,
            skip_shapes=self.skip_shapes,
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            store_skips=store_skips,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            on_batch=on_batch,
        )
        return self._store_encoding(st, dataset, batch_size)

    def _store_encoding(self, st: Any, dataset: SegmentationDataset, batch_size: int) -> Encoding:
        if st.stored_skips or not self.skip_shapes:
            skips: tuple[Any, ...] = st.skips
        else:
            skips = st.lazy_skips(self._encode_batch_numpy, dataset.images, batch_size)
        return Encoding(st.latents, skips)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input {self.input_shape}, latent {self.latent_shape}, "
            f"{len(self.skip_shapes)} skip(s), {self.n_classes} classes)"
        )
