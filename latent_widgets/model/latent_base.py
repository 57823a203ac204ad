"""What every latent-model adapter shares: input checks, batching, the dataset encode.

:class:`LatentModelBase` holds the framework-free half of
:class:`~latent_widgets.model.latent_model.LatentModel` (Keras) and
:class:`~latent_widgets.model.onnx_model.OnnxLatentModel` (ONNX Runtime): the
checks of images, latents and skips with their error messages
(:mod:`latent_widgets.model.input_checks`), the split into batches, the
progress bar, and :meth:`~LatentModelBase.encode_dataset` with its on-disk
cache and latent store (:mod:`latent_widgets.model.dataset_encode`). An adapter sets the shape
attributes and implements four calls on one batch of checked numpy arrays:
``_encode_numpy``, ``_decode_numpy``, ``_masks_numpy`` and
``weights_hash``.

Examples
--------
>>> import numpy as np
>>> class Zeros(LatentModelBase):  # a latent model of 2x2 zeros, one class
...     input_shape, latent_shape, skip_shapes, has_skips, n_classes = (4, 4, 3), (2, 2, 1), (), False, 1
...     def _encode_numpy(self, x):
...         return (np.zeros((len(x), 2, 2, 1), np.float32),)
>>> Zeros().encode(np.ones((2, 4, 4, 3))).latents.shape
(2, 2, 2, 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.arrays import iter_row_blocks
from .dataset_encode import encode_dataset
from .encode_options import EncodeOptions
from .encoding import Encoding
from .errors import LatentModelError
from .input_checks import check_images, check_latents

if TYPE_CHECKING:  # pragma: no cover
    from ..data.dataset import SegmentationDataset

__all__ = ["LatentModelBase"]

# Show a progress bar in encode() from this many batches on (progress=None).
_AUTO_PROGRESS_BATCHES = 8


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
        return check_images(images, self.input_shape)

    def _check_latents(self, latents: Any, skips: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        return check_latents(latents, skips, self.latent_shape, self.skip_shapes)

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
        options = EncodeOptions(
            batch_size=batch_size,
            chunk_rows=chunk_rows,
            store_skips=store_skips,
            resume=resume and cache,
            overwrite=overwrite,
        )
        return encode_dataset(
            self, dataset, options, cache=cache, store=store, progress=progress, client=client, on_batch=on_batch
        )

    def encode_batch(self, images: Any) -> tuple[Any, ...]:
        """One encoder call on a batch: ``(latent, *skips)`` (arrays, or tensors with a ``numpy()``).

        What the dataset encode streams with (into a store, on cluster workers).

        Examples
        --------
        >>> latent, *skips = lm.encode_batch(ds.images[:8])  # doctest: +SKIP
        """
        return self._encode_numpy(self._check_images(images))

    def encode_batch_numpy(self, images: Any) -> tuple[np.ndarray, ...]:
        """:meth:`encode_batch` as numpy arrays (what lazy skip columns re-encode with)."""
        return tuple(t if isinstance(t, np.ndarray) else t.numpy() for t in self.encode_batch(images))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input {self.input_shape}, latent {self.latent_shape}, "
            f"{len(self.skip_shapes)} skip(s), {self.n_classes} classes)"
        )
