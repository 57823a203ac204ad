"""Attribute vectors from masks and latent arithmetic (latent_widgets.analysis.attributes)."""

from __future__ import annotations

import numpy as np
import pytest
from toy import ToyLatentModel

from latent_widgets.analysis.attributes import (
    analogy,
    apply_attribute,
    attribute_effect,
    attribute_vector,
)


def masks_with_fractions(fractions, size=(8, 10), n_classes=3, cls=1):
    """Masks whose pixel fraction of ``cls`` is exactly ``fractions[i]`` (the rest class 0)."""
    h, w = size
    out = np.zeros((len(fractions), h, w), np.uint8)
    for i, f in enumerate(fractions):
        flat = out[i].reshape(-1)
        flat[: round(f * h * w)] = cls
    return out


def test_known_answer_on_constructed_toy(rng):
    # z_i = u + f_i * v + noise_i, where f_i is the fraction of class 1 and the
    # noise is the same in both groups: the vector is (mean f_high - mean f_low) v.
    n = 40
    fractions = np.round(np.linspace(0, 1, n) * 80) / 80
    masks = masks_with_fractions(fractions)
    u = rng.normal(size=(2, 3, 4))
    v = rng.normal(size=(2, 3, 4))
    latents = (u + fractions[:, None, None, None] * v).astype(np.float32)
    av = attribute_vector(latents, masks, 1)  # quartiles by default
    assert av.class_id == 1 and av.vector.shape == (2, 3, 4) and av.vector.dtype == np.float32
    hi, lo = fractions >= np.quantile(fractions, 0.75), fractions <= np.quantile(fractions, 0.25)
    assert av.high_idx.tolist() == np.flatnonzero(hi).tolist()
    assert av.low_idx.tolist() == np.flatnonzero(lo).tolist()
    scale = fractions[hi].mean() - fractions[lo].mean()
    np.testing.assert_allclose(av.vector, scale * v, rtol=1e-5, atol=1e-6)
    # the same from class fractions (N, C) and from the class's fraction (N,)
    frac_nc = np.stack([1 - fractions, fractions, np.zeros(n)], 1)
    np.testing.assert_allclose(attribute_vector(latents, frac_nc, 1).vector, av.vector, rtol=1e-6)
    np.testing.assert_allclose(attribute_vector(latents, fractions, 1).vector, av.vector, rtol=1e-6)


def test_threshold_split(rng):
    fractions = np.array([0.0, 0.0, 0.05, 0.3, 0.5, 0.9])
    latents = rng.normal(size=(6, 4))
    av = attribute_vector(latents, fractions, 0, by="threshold", high=0.3, low=0.0)
    assert av.high_idx.tolist() == [3, 4, 5] and av.low_idx.tolist() == [0, 1]
    assert (av.high_threshold, av.low_threshold) == (0.3, 0.0)
    np.testing.assert_allclose(av.vector, latents[3:].mean(0) - latents[:2].mean(0))


def test_errors(rng):
    latents = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="no sample has a high"):
        attribute_vector(latents, np.zeros(5), 0, by="threshold", high=0.5, low=0.0)
    with pytest.raises(ValueError, match="overlap"):
        attribute_vector(latents, np.zeros(5), 0)  # constant fraction: quantiles coincide
    with pytest.raises(ValueError, match="4 masks"):
        attribute_vector(latents, np.zeros(4), 0)
    with pytest.raises(ValueError, match="by must be"):
        attribute_vector(latents, np.arange(5) / 5, 0, by="median")


def test_analogy_and_apply(rng):
    a, b, c = rng.normal(size=(3, 2, 5)).astype(np.float32)
    np.testing.assert_allclose(analogy(a, b, c), b + c - a, rtol=1e-6)
    assert analogy(a, b, c).dtype == np.float32
    with pytest.raises(ValueError):
        analogy(a, b, c[:1])
    zs = apply_attribute(a[None], b, [-1.0, 0.0, 2.0])
    assert zs.shape == (3, 2, 5)
    np.testing.assert_allclose(zs, [a - b, a, a + 2 * b], rtol=1e-6)


def test_attribute_effect_follows_the_vector():
    # The toy decoder's logits are z @ w_dec at each position: a latent step
    # v with v @ w_dec = e_c raises class c's logit alone, so the decoded
    # fraction of c grows monotonically from 0 to 1 with t.
    model = ToyLatentModel()
    c = 2
    v_ch = np.eye(model.n_classes)[c] @ np.linalg.pinv(model.w_dec)
    v = np.broadcast_to(v_ch, model.latent_shape).astype(np.float32) * 2
    z = np.zeros(model.latent_shape, np.float32)
    ts = np.linspace(-3, 3, 13)
    eff = attribute_effect(model, z, v, ts, c)
    assert eff.ts.tolist() == ts.tolist() and eff.masks.shape == (13, 16, 16)
    assert eff.fractions[0] == 0.0 and eff.fractions[-1] == 1.0
    assert np.all(np.diff(eff.fractions) >= 0) and np.all(np.diff(eff.mean_probs) > 0)
    probs = model.decode(z[None] + ts[:, None, None, None].astype(np.float32) * v)
    np.testing.assert_allclose(eff.fractions, (probs.argmax(-1) == c).mean(axis=(1, 2)))


def test_attribute_effect_with_skips(rng):
    model = ToyLatentModel(with_skip=True)
    img = rng.random((1, 16, 16, 3), dtype=np.float32)
    enc = model.encode(img)
    v = rng.normal(size=model.latent_shape).astype(np.float32)
    with pytest.raises(ValueError, match="skip"):
        attribute_effect(model, enc.latents[0], v, [0.0, 1.0], 0)
    eff = attribute_effect(model, enc.latents, v, [0.0, 1.0], 0, skips=enc.skips)
    assert np.array_equal(eff.masks[0], model.predict_masks(img)[0])
