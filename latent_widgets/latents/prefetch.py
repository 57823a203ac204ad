"""Reading a dataset's images ahead of the encoder, on a background thread.

Reading a batch of a lazy dataset (rendering, decoding files) can cost as
much as encoding it: :class:`Prefetcher` reads the next batches while the
encoder runs on the current one, both on the client
(:func:`~latent_widgets.latents.encode.fill_store`) and on a cluster's
workers (:mod:`latent_widgets.latents.distributed`).

Examples
--------
>>> import numpy as np
>>> from latent_widgets.latents.prefetch import Prefetcher
>>> images = np.arange(10)
>>> [x.tolist() for _, x in Prefetcher(images, [slice(0, 4), slice(4, 10)])]
[[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["Prefetcher"]

# Batches read ahead of the encoder.
_PREFETCH = 2


class Prefetcher:
    """Reads ``images[rows]`` for the coming blocks on a background thread.

    Reading a batch of a lazy dataset (rendering, decoding files) can cost
    as much as encoding it; the queue holds at most ``depth`` batches, so
    memory does not grow with the dataset.
    """

    _END = object()

    def __init__(self, images: Any, blocks: Sequence[slice], depth: int = _PREFETCH) -> None:
        self._images = images
        self._blocks = list(blocks)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latent-store-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for rows in self._blocks:
                if self._stop.is_set():
                    return
                if not self._put((rows, np.asarray(self._images[rows]), None)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((None, None, exc))
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[tuple[slice, np.ndarray]]:
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                rows, x, exc = item
                if exc is not None:
                    raise exc
                yield rows, x
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader thread and wait for it (at once: it checks between batches and while it waits)."""
        self._stop.set()
        self._thread.join()
