"""latent_widgets.views.render: colours, overlays, error maps and PNG bytes."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from latent_widgets.data import CAMVID_PALETTE, colors
from latent_widgets.views import render

PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)


def decode_png(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_colorize_is_a_palette_lookup(rng):
    mask = rng.integers(0, 4, size=(5, 7))
    rgb = render.colorize(mask, PALETTE)
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(rgb, PALETTE[mask])


def test_colorize_batches_and_clips_unknown_ids():
    masks = np.array([[[0, 3]], [[9, 1]]])  # 9 is past the palette
    rgb = render.colorize(masks, PALETTE)
    assert rgb.shape == (2, 1, 2, 3)
    assert rgb[1, 0, 0].tolist() == PALETTE[-1].tolist()


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.float32), np.zeros((2, 2), bool)])
def test_colorize_rejects_non_integer_masks(bad):
    with pytest.raises(ValueError, match="integer"):
        render.colorize(bad, PALETTE)


def test_colorize_rejects_bad_palette():
    with pytest.raises(ValueError, match="palette"):
        render.colorize(np.zeros((2, 2), int), np.zeros((3, 4), np.uint8))


def test_as_uint8_scales_floats_and_keeps_bytes():
    assert render.as_uint8(np.array([0.0, 0.5, 1.0, -1.0, 3.0])).tolist() == [0, 128, 255, 0, 255]
    u8 = np.array([1, 2, 3], np.uint8)
    assert render.as_uint8(u8) is u8
    assert render.as_uint8(np.array([-5, 300])).tolist() == [0, 255]


def test_overlay_blends_image_and_mask_colours():
    image = np.full((2, 2, 3), 0.5, np.float32)
    mask = np.array([[0, 1], [2, 3]])
    assert np.array_equal(render.overlay(image, mask, PALETTE, 0.0), np.full((2, 2, 3), 128, np.uint8))
    np.testing.assert_array_equal(render.overlay(image, mask, PALETTE, 1.0), PALETTE[mask])
    half = render.overlay(image, mask, PALETTE, 0.5)
    assert half[0, 1].tolist() == [191, 64, 64]  # (127.5 + 255) / 2, 127.5 / 2
    # uint8 images are read as 0..255, opacity is clipped to 0..1
    np.testing.assert_array_equal(render.overlay((image * 255).astype(np.uint8), mask, PALETTE, 7.0), PALETTE[mask])


def test_overlay_rejects_size_mismatch():
    with pytest.raises(ValueError, match="differ"):
        render.overlay(np.zeros((2, 3, 3)), np.zeros((2, 2), int), PALETTE)


def test_error_map_marks_wrong_pixels():
    true = np.array([[0, 1], [2, 3]])
    pred = np.array([[0, 1], [3, 3]])
    em = render.error_map(pred, true)
    assert em[1, 0].tolist() == list(render.ERROR_COLOUR)
    assert (em[pred == true] == 0).all()
    # with an image, right pixels are the darkened grey image
    image = np.ones((2, 2, 3), np.float32)
    em = render.error_map(pred, true, image)
    assert em[0, 0].tolist() == [102, 102, 102] and em[1, 0].tolist() == list(render.ERROR_COLOUR)


def test_error_map_without_truth_and_with_ignore_index():
    pred = np.zeros((3, 4), int)
    assert np.unique(render.error_map(pred, None).reshape(-1, 3), axis=0).shape == (1, 3)
    true = np.array([[0, 0, 0, 5]] * 3)
    em = render.error_map(pred, true, ignore_index=5)
    assert em[0, 3].tolist() != list(render.ERROR_COLOUR)
    with pytest.raises(ValueError, match="differ"):
        render.error_map(pred, true[:, :2])


def test_to_png_round_trips_exact_pixels(rng):
    rgb = render.colorize(rng.integers(0, 4, size=(6, 9)), PALETTE)
    png = render.to_png(rgb)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(decode_png(png), rgb)
    big = decode_png(render.to_png(rgb, scale=3))
    assert big.shape == (18, 27, 3)
    np.testing.assert_array_equal(big[::3, ::3], rgb)  # nearest-neighbour upscaling


def test_to_png_accepts_grey_float_and_rgba():
    grey = Image.open(io.BytesIO(render.to_png(np.zeros((4, 5)))))
    assert grey.mode == "L" and grey.size == (5, 4)
    assert decode_png(render.to_png(np.ones((2, 2, 3), np.float32)))[0, 0].tolist() == [255, 255, 255]
    assert Image.open(io.BytesIO(render.to_png(np.zeros((2, 2, 4), np.uint8)))).mode == "RGBA"
    with pytest.raises(ValueError, match="pixels"):
        render.to_png(np.zeros((2, 2, 5), np.uint8))


def test_to_png_compression_levels_trade_size_for_speed(rng):
    rgb = render.colorize(rng.integers(0, 4, size=(96, 128)), PALETTE)
    fast, small = render.to_png(rgb, compress_level=1), render.to_png(rgb, compress_level=9)
    np.testing.assert_array_equal(decode_png(fast), decode_png(small))
    assert len(small) <= len(fast)


def test_display_scale_and_upscale():
    assert render.display_scale(48, 64) == 4
    assert render.display_scale(96, 128) == 2
    assert render.display_scale(360, 480) == 1
    assert render.display_scale(2, 3, max_scale=8) == 8
    assert render.upscale(np.array([[1, 2]]), 1).tolist() == [[1, 2]]
    assert render.upscale(np.array([[1, 2]]), 2).shape == (2, 4)


def test_thumbnail_puts_image_and_mask_side_by_side():
    image = np.zeros((48, 64, 3), np.float32)
    mask = np.ones((48, 64), int)
    thumb = render.thumbnail(image, mask, PALETTE, height=24, gap=2)
    assert thumb.shape == (24, 32 + 2 + 32, 3)
    assert thumb[0, 0].tolist() == [0, 0, 0]
    assert thumb[0, -1].tolist() == PALETTE[1].tolist()
    assert thumb[0, 32].tolist() == [255, 255, 255]  # the gap
    assert render.thumbnail(image, height=12).shape == (12, 16, 3)
    with pytest.raises(ValueError, match="palette"):
        render.thumbnail(image, mask)


def test_hstack_checks_heights():
    with pytest.raises(ValueError, match="height"):
        render.hstack([np.zeros((2, 2, 3)), np.zeros((3, 2, 3))])
    with pytest.raises(ValueError):
        render.hstack([])


def test_hex_colours_and_data_uri():
    assert colors.hex_colours(CAMVID_PALETTE)[3] == "#804080"  # Road
    assert render.data_uri(b"\x89PNG").startswith("data:image/png;base64,")


def test_render_and_figures_do_not_import_ipywidgets():
    code = (
        "import sys, latent_widgets.views.render, latent_widgets.views.figures; "
        "bad = [m for m in ('ipywidgets', 'bqplot', 'tensorflow') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_mask_png_matches_the_rgb_rendering(rng):
    mask = rng.integers(0, 12, size=(24, 32))
    png = render.mask_png(mask, CAMVID_PALETTE, scale=2)
    assert Image.open(io.BytesIO(png)).mode == "P"
    np.testing.assert_array_equal(decode_png(png), render.upscale(render.colorize(mask, CAMVID_PALETTE), 2))
    # ids past the palette take its last colour, as in colorize
    assert decode_png(render.mask_png(np.array([[40]]), PALETTE))[0, 0].tolist() == PALETTE[-1].tolist()
    # more classes than a PNG colour table holds: RGB fallback, same pixels
    big = np.tile(PALETTE, (80, 1))
    np.testing.assert_array_equal(decode_png(render.mask_png(np.array([[300]]), big)), [[big[300]]])
    with pytest.raises(ValueError):
        render.mask_png(np.zeros((2, 2, 2), int), PALETTE)
    with pytest.raises(ValueError, match="integer"):
        render.mask_png(np.zeros((2, 2)), PALETTE)


@pytest.mark.parametrize("shape", [(96, 128), (45, 61), (1, 1)])  # odd widths: rows padded to 4 bytes
def test_mask_bmp_is_an_8bit_palette_bmp_with_the_rgb_pixels(rng, shape):
    mask = rng.integers(0, 12, size=shape)
    bmp = render.mask_bmp(mask, CAMVID_PALETTE)
    im = Image.open(io.BytesIO(bmp))
    assert im.format == "BMP" and im.mode == "P" and im.size == shape[::-1]
    np.testing.assert_array_equal(np.asarray(im.convert("RGB")), render.colorize(mask, CAMVID_PALETTE))
    # the same pixels as PIL's own BMP writer
    ref = Image.fromarray(mask.astype(np.uint8))
    ref.putpalette(CAMVID_PALETTE.ravel().tolist())
    buf = io.BytesIO()
    ref.save(buf, format="BMP")
    assert np.array_equal(np.asarray(Image.open(buf).convert("RGB")), np.asarray(im.convert("RGB")))
    # ids past the palette take its last colour, as in colorize
    assert (
        np.asarray(Image.open(io.BytesIO(render.mask_bmp(np.array([[40]]), PALETTE))).convert("RGB"))[0, 0].tolist()
        == PALETTE[-1].tolist()
    )


def test_to_png_scale_matches_upscale(rng):
    img = rng.integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    for scale in (1, 2, 3):
        np.testing.assert_array_equal(decode_png(render.to_png(img, scale=scale)), render.upscale(img, scale))


def _cielab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0..255) to CIELAB under D65, from the standard formulas."""
    c = np.asarray(rgb, np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_the_no_value_colour_is_a_grey_apart_from_the_scales_and_palettes():
    rgb = np.array([int(colors.NO_VALUE_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    assert rgb[0] == rgb[1] == rgb[2], "not a grey"
    others = {
        "viridis": colors.colormap_rgb("viridis", np.linspace(0, 1, 256)),
        "tab10": colors.colormap_rgb("tab10", np.arange(10)),
        "tab20": colors.colormap_rgb("tab20", np.arange(20)),
        "CamVid": CAMVID_PALETTE,
    }
    for name, palette in others.items():
        # A CIELAB distance of 10 is a difference seen at a glance, even between small markers.
        distance = np.linalg.norm(_cielab(palette) - _cielab(rgb), axis=1).min()
        assert distance >= 10, f"{colors.NO_VALUE_COLOUR} is {distance:.1f} from a colour of {name}"
