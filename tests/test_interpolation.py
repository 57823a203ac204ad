"""Interpolation paths and skip policies (latent_widgets.analysis.interpolation) on the toy model."""

from __future__ import annotations

import numpy as np
import pytest
from toy import ToyLatentModel

from latent_widgets.analysis.interpolation import (
    PATH_METHODS,
    SKIP_POLICIES,
    decode_path,
    interpolate,
    lerp,
    path_inputs,
    slerp,
    steps,
)


def test_constants_and_steps():
    assert PATH_METHODS == ("linear", "spherical")
    assert SKIP_POLICIES == ("image", "skips", "hold_a", "hold_b")
    s = steps()
    assert len(s) == 12 and s[0] == 0.0 and s[-1] == 1.0
    np.testing.assert_allclose(np.diff(s), 1 / 11)
    with pytest.raises(ValueError):
        steps(0)


def test_lerp_endpoints_exact_and_shapes(rng):
    a = rng.normal(size=(3, 4, 5)).astype(np.float32) * 1e3
    b = rng.normal(size=(3, 4, 5)).astype(np.float32) * 1e-3
    path = lerp(a, b, steps(12))
    assert path.shape == (12, 3, 4, 5) and path.dtype == np.float32
    assert np.array_equal(path[0], a) and np.array_equal(path[-1], b)
    assert np.array_equal(lerp(a, b, 0.0), a) and np.array_equal(lerp(a, b, 1.0), b)
    assert lerp(a, b, 0.3).shape == a.shape
    np.testing.assert_allclose(lerp(a, b, 0.25), a + 0.25 * (b - a), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="same shape"):
        lerp(a, b[0], 0.5)
    with pytest.raises(ValueError, match="finite"):
        lerp(a, b, np.nan)


def test_slerp_hand_computed():
    a = np.array([3.0, 0.0, 0.0])
    b = np.array([0.0, 3.0, 0.0])
    # 90 degrees, equal norms: (a + b) / sqrt(2) at the midpoint
    np.testing.assert_allclose(slerp(a, b, 0.5), (a + b) / np.sqrt(2), atol=1e-12)
    # a third of the way: 30 degrees from a on the circle of radius 3
    np.testing.assert_allclose(slerp(a, b, 1 / 3), [3 * np.cos(np.pi / 6), 3 * np.sin(np.pi / 6), 0], atol=1e-12)
    path = slerp(a, b, steps(5))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3.0)
    assert np.array_equal(path[0], a) and np.array_equal(path[-1], b)


def test_slerp_equals_classic_formula_for_equal_norms(rng):
    a = rng.normal(size=(6, 7))
    b = rng.normal(size=(6, 7))
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    om = np.arccos(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    for t in (0.1, 0.5, 0.9):
        classic = np.sin((1 - t) * om) / np.sin(om) * a + np.sin(t * om) / np.sin(om) * b
        np.testing.assert_allclose(slerp(a, b, t), classic, atol=1e-12)


def test_slerp_unequal_norms_interpolates_norm_and_angle():
    a = np.array([1.0, 0.0])
    b = np.array([0.0, 4.0])
    for t in (0.25, 0.5, 0.75):
        p = slerp(a, b, t)
        assert np.linalg.norm(p) == pytest.approx(1 + 3 * t)
        assert np.arctan2(p[1], p[0]) == pytest.approx(t * np.pi / 2)


def test_slerp_edge_cases_are_finite():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    same = slerp(a, a, steps(12))
    assert np.isfinite(same).all()
    np.testing.assert_allclose(same, np.broadcast_to(a, same.shape), rtol=1e-6)
    anti = slerp(a, -a, steps(12))
    assert np.isfinite(anti).all()
    np.testing.assert_allclose(np.linalg.norm(anti, axis=1), np.linalg.norm(a), rtol=1e-6)
    assert np.array_equal(anti[0], a) and np.array_equal(anti[-1], -a)
    mid = slerp(a, -a, 0.5)
    assert abs(float(mid @ a)) < 1e-5  # passes through a perpendicular direction
    near = slerp(np.array([1.0, 0.0]), np.array([-1.0, 1e-12]), steps(7))
    assert np.isfinite(near).all()
    zero = slerp(np.zeros(3), np.array([0.0, 2.0, 0.0]), 0.5)
    np.testing.assert_allclose(zero, [0.0, 1.0, 0.0])


def test_interpolate_dispatch(rng):
    a, b = rng.normal(size=(2, 10))
    assert np.array_equal(interpolate(a, b, steps(4)), lerp(a, b, steps(4)))
    assert np.array_equal(interpolate(a, b, steps(4), "spherical"), slerp(a, b, steps(4)))
    with pytest.raises(ValueError, match="linear"):
        interpolate(a, b, 0.5, "cubic")


class CountingModel(ToyLatentModel):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.encoded: list[int] = []

    def encode(self, images, **kw):
        self.encoded.append(len(images))
        return super().encode(images, **kw)


@pytest.fixture()
def images(rng):
    return rng.random((2, 16, 16, 3), dtype=np.float32)


@pytest.mark.parametrize("method", PATH_METHODS)
def test_skip_policies_by_hand(images, method):
    model = ToyLatentModel(with_skip=True)
    a, b = images
    al = steps(5)
    enc = model.encode(images)
    za, zb = enc.latents
    sa, sb = enc.skips[0]
    want_latents = interpolate(za, zb, al, method)

    z, (sk,) = path_inputs(model, a, b, al, method, "image")
    np.testing.assert_allclose(z, want_latents, rtol=1e-6)
    for i, t in enumerate(al):
        blended = ((1 - t) * a + t * b).astype(np.float32)
        np.testing.assert_allclose(sk[i], model.encode(blended[None]).skips[0][0], rtol=1e-5, atol=1e-6)

    _, (sk,) = path_inputs(model, a, b, al, method, "skips")
    np.testing.assert_allclose(sk, interpolate(sa, sb, al, method), rtol=1e-6)
    _, (sk,) = path_inputs(model, a, b, al, method, "hold_a")
    assert sk.shape == (5, 8, 8, 3) and all(np.array_equal(s, sa) for s in sk)
    _, (sk,) = path_inputs(model, a, b, al, method, "hold_b")
    assert all(np.array_equal(s, sb) for s in sk)
    # the "image" and "skips" policies differ in between (the toy encoder is linear
    # in the image, so they agree for lerp: check the spherical skips instead)
    if method == "spherical":
        _, (img_sk,) = path_inputs(model, a, b, al, method, "image")
        _, (sk_sk,) = path_inputs(model, a, b, al, method, "skips")
        assert not np.allclose(img_sk[2], sk_sk[2])


def test_precomputed_encodings_are_not_re_encoded(images):
    model = CountingModel(with_skip=True)
    enc = model.encode(images)
    model.encoded.clear()
    ea = type(enc)(enc.latents[:1], tuple(s[:1] for s in enc.skips))
    eb = type(enc)(enc.latents[1:], tuple(s[1:] for s in enc.skips))
    for policy in ("skips", "hold_a", "hold_b"):
        path_inputs(model, images[0], images[1], steps(12), "linear", policy, encoding_a=ea, encoding_b=eb)
    assert model.encoded == []
    # "image" encodes only the 10 blended images strictly between the endpoints
    z, (sk,) = path_inputs(model, images[0], images[1], steps(12), "linear", "image", encoding_a=ea, encoding_b=eb)
    assert model.encoded == [10]
    assert np.array_equal(sk[0], enc.skips[0][0]) and np.array_equal(sk[-1], enc.skips[0][1])
    assert np.array_equal(z[0], enc.latents[0]) and np.array_equal(z[-1], enc.latents[1])
    # an endpoint alpha alone needs no encoding at all
    model.encoded.clear()
    path_inputs(
        model, images[0], images[1], np.array([0.0], np.float32), "linear", "image", encoding_a=ea, encoding_b=eb
    )
    assert model.encoded == []
    # latents without the batch axis work too
    ea1 = type(enc)(enc.latents[0], tuple(s[0] for s in enc.skips))
    z1, _ = path_inputs(model, images[0], images[1], 0.5, "linear", "hold_a", encoding_a=ea1, encoding_b=eb)
    assert z1.shape == (1, *model.latent_shape)
    # without encodings both endpoints are encoded in one call
    model.encoded.clear()
    path_inputs(model, images[0], images[1], steps(3), "linear", "hold_a")
    assert model.encoded == [2]


def test_model_without_skips(images):
    model = ToyLatentModel()
    z, skips = path_inputs(model, images[0], images[1], steps(4), skip_policy="hold_b")
    assert skips == () and z.shape == (4, *model.latent_shape)
    with pytest.raises(ValueError, match="skip_policy"):
        path_inputs(model, images[0], images[1], steps(4), skip_policy="pixels")


@pytest.mark.parametrize("with_skip", [False, True])
def test_decode_path(images, with_skip):
    model = ToyLatentModel(with_skip=with_skip)
    r = decode_path(model, images[0], images[1], steps(12), method="spherical", skip_policy="skips")
    assert r.alphas.tolist() == steps(12).tolist()
    assert r.probs.shape == (12, 16, 16, 4) and r.masks.shape == (12, 16, 16)
    want = model.decode(r.latents, r.skips if with_skip else None)
    np.testing.assert_allclose(r.probs, want)
    assert np.array_equal(r.masks, want.argmax(-1))
    # the endpoints decode to the samples' own predictions
    assert np.array_equal(r.masks[0], model.predict_masks(images[:1])[0])
    assert np.array_equal(r.masks[-1], model.predict_masks(images[1:])[0])
