"""A tiny numpy stand-in for :class:`latent_widgets.LatentModel`, for fast tests.

It follows the same protocol (``encode`` -> ``Encoding``, ``decode`` ->
probabilities, ``predict_masks``, ``latent_shape``, ``skip_shapes``,
``n_classes``, ``input_shape``, ``has_skips``) with closed-form maths, so a
test can compute the expected answer by hand:

- encoder: 4x4 average pooling of the image, then a fixed linear map of the
  3 channels to ``latent_channels``; the skip (if any) is 2x2 average pooling
  of the image.
- decoder: a fixed linear map of the latent channels (plus the skip, pooled
  to the latent grid) to class logits, nearest upsampling x4, softmax.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Encoding(NamedTuple):
    latents: np.ndarray
    skips: tuple[np.ndarray, ...]


class ToyLatentModel:
    def __init__(
        self,
        input_shape: tuple[int, int, int] = (16, 16, 3),
        n_classes: int = 4,
        latent_channels: int = 5,
        with_skip: bool = False,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        h, w, _ = input_shape
        self.latent_shape = (h // 4, w // 4, latent_channels)
        self.has_skips = with_skip
        self.skip_shapes: tuple[tuple[int, ...], ...] = ((h // 2, w // 2, 3),) if with_skip else ()
        self.w_enc = rng.normal(size=(3, latent_channels)).astype(np.float32)
        self.w_dec = rng.normal(size=(latent_channels, n_classes)).astype(np.float32)
        self.w_skip = rng.normal(size=(3, n_classes)).astype(np.float32)
        self.decode_calls = 0

    @staticmethod
    def _pool(x: np.ndarray, f: int) -> np.ndarray:
        n, h, w, c = x.shape
        return x.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))

    def encode(self, images: np.ndarray, batch_size: int = 32, progress: bool | None = None) -> Encoding:
        images = np.asarray(images, np.float32)
        z = self._pool(images, 4) @ self.w_enc
        skips = (self._pool(images, 2),) if self.has_skips else ()
        return Encoding(z.astype(np.float32), skips)

    def decode(
        self, latents: np.ndarray, skips: Sequence[np.ndarray] | None = None, batch_size: int = 32
    ) -> np.ndarray:
        self.decode_calls += 1
        z = np.asarray(latents, np.float32)
        if z.shape[1:] != self.latent_shape:
            z = z.reshape((-1, *self.latent_shape))
        logits = z @ self.w_dec
        if self.has_skips:
            if not skips:
                raise ValueError("this decoder needs skip features")
            logits = logits + self._pool(np.asarray(skips[0], np.float32), 2) @ self.w_skip
        logits = logits.repeat(4, axis=1).repeat(4, axis=2)
        logits -= logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)

    def decode_with_masks(
        self, latents: np.ndarray, skips: Sequence[np.ndarray] | None = None, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        probs = self.decode(latents, skips, batch_size)
        return probs, probs.argmax(-1)

    def predict_masks(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        enc = self.encode(images)
        return self.decode(enc.latents, enc.skips).argmax(-1)


def iou_loop(truth: np.ndarray, pred: np.ndarray, n_classes: int, ignore: int | None = None) -> np.ndarray:
    """Reference per-class IoU of one pair, counted pixel by pixel (the ignored class NaN, its true pixels dropped)."""
    keep = np.ones(truth.shape, bool) if ignore is None else truth != ignore
    iou = np.full(n_classes, np.nan)
    for c in range(n_classes):
        if c == ignore:
            continue
        inter = np.sum((truth == c) & (pred == c) & keep)
        union = np.sum(((truth == c) | (pred == c)) & keep)
        if union:
            iou[c] = inter / union
    return iou


class SlowToyModel:
    """A :class:`ToyLatentModel` whose encode, decode and predict sleep per sample: a big network's pace.

    The answers are the toy's; only the time changes (``encode_s`` and
    ``decode_s`` seconds per sample; a prediction costs both). ``decoded``
    counts the latents decoded, ``predicted`` the images predicted.
    """

    def __init__(self, model: ToyLatentModel, encode_s: float = 0.0, decode_s: float = 0.0) -> None:
        self.model, self.encode_s, self.decode_s = model, encode_s, decode_s
        self.encoded = self.decoded = self.predicted = 0

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def encode(self, images: np.ndarray, batch_size: int = 32, progress: bool | None = None) -> Encoding:
        time.sleep(self.encode_s * len(images))
        self.encoded += len(images)
        return self.model.encode(images)

    def decode(self, latents: np.ndarray, skips: Sequence[np.ndarray] | None = None, batch_size: int = 32):
        time.sleep(self.decode_s * len(latents))
        self.decoded += len(latents)
        return self.model.decode(latents, skips)

    def decode_with_masks(self, latents: np.ndarray, skips: Sequence[np.ndarray] | None = None, batch_size: int = 32):
        probs = self.decode(latents, skips)
        return probs, probs.argmax(-1)

    def predict_masks(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        time.sleep((self.encode_s + self.decode_s) * len(images))
        self.predicted += len(images)
        return self.model.predict_masks(images)
