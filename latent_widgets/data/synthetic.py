"""The embedded default dataset: procedural road scenes with CamVid's 12 classes.

A new user sees every widget work without downloading anything. Scenes are
drawn with a pin-hole camera over a flat ground plane: a road with lane
markings, pavements, buildings, trees, poles with signs, fences, cars,
pedestrians and bicyclists, under a sky; the ego vehicle's bonnet is
"Unlabelled", as in CamVid. Samples come in *drives*: consecutive frames of
one drive move the camera forward a little, so, as with CamVid's video
sequences, neighbouring frames of a group look alike.

Every sample depends only on ``(seed, drive, frame)`` and the parameters, never
on which other samples were drawn, so a lazy dataset
(``synthetic_road_scenes(100_000, lazy=True)``) renders sample ``i`` on demand,
identical to the eager one.

Examples
--------
>>> from latent_widgets.data.synthetic import synthetic_road_scenes
>>> ds = synthetic_road_scenes(24, size=(96, 128), seed=1, frames_per_drive=8)
>>> ds.images.shape, sorted(set(ds.groups.tolist()))
((24, 96, 128, 3), [0, 1, 2])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .camvid import CAMVID_CLASSES, CAMVID_PALETTE
from .dataset import DatasetError, SegmentationDataset
from .lazy_array import LazyArray, SampleSource, resolve_lazy

__all__ = ["synthetic_road_scenes"]

SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST, UNLABELLED = range(12)

# Natural-looking base colours (not the label palette) for the rendered image.
_BUILDING_COLOURS = np.array(
    [[150, 120, 100], [170, 160, 150], [120, 100, 90], [190, 180, 160], [110, 115, 125]], float
)
_CAR_COLOURS = np.array(
    [[180, 20, 20], [30, 60, 150], [220, 220, 220], [30, 30, 30], [120, 120, 130], [200, 170, 40]], float
)
_CLOTHES = np.array([[60, 60, 120], [150, 40, 40], [40, 40, 40], [200, 190, 150], [60, 110, 60]], float)

# Last word of the pixel-noise seed [seed, drive, frame, _NOISE_TAG]: a non-zero
# tag keeps it distinct from the drive's seed [seed, drive] (numpy's seed
# sequences ignore trailing zeros, so [s, d, 0] would equal [s, d]).
_NOISE_TAG = 0x6E6F6973
# Bumped whenever the pictures change, so that lazy content hashes change too.
_RENDER_VERSION = 2


@dataclass
class _Thing:
    kind: int
    x: float  # lateral position (m), + is right
    z: float  # world depth along the drive (m)
    height: float
    width: float
    length: float
    colour: np.ndarray
    speed: float = 0.0  # m per frame, for moving objects


def _drive_objects(rng: np.random.Generator, length: float) -> tuple[list[_Thing], dict[str, float]]:
    """Lay out the static and moving objects of one drive."""
    road_half = rng.uniform(3.0, 5.0)
    pave = rng.uniform(1.8, 3.2)
    edge = road_half + pave
    things: list[_Thing] = []
    for side in (-1.0, 1.0):
        z = rng.uniform(-5.0, 5.0)
        while z < length:  # buildings, with gaps
            blen = rng.uniform(8.0, 25.0)
            if rng.random() < 0.85:
                things.append(
                    _Thing(
                        BUILDING,
                        side * (edge + rng.uniform(0.5, 4.0)),
                        z,
                        rng.uniform(6.0, 22.0),
                        0.0,
                        blen,
                        _BUILDING_COLOURS[rng.integers(len(_BUILDING_COLOURS))],
                    )
                )
            z += blen + rng.uniform(0.0, 6.0)
        z = rng.uniform(0.0, 10.0)
        while z < length:  # trees
            things.append(
                _Thing(
                    TREE,
                    side * (edge - rng.uniform(0.3, 0.9)),
                    z,
                    rng.uniform(4.0, 7.0),
                    rng.uniform(1.8, 3.2),
                    0.0,
                    np.array([50.0, 110 + 40 * rng.random(), 40]),
                )
            )
            z += rng.uniform(8.0, 20.0)
        z = rng.uniform(0.0, 8.0)
        while z < length:  # poles, most carrying a sign
            things.append(
                _Thing(POLE, side * (road_half + 0.4), z, rng.uniform(4.0, 6.5), 0.2, 0.0, np.array([140.0, 140, 135]))
            )
            if rng.random() < 0.7:
                things.append(
                    _Thing(
                        SIGN,
                        side * (road_half + 0.4),
                        z - 0.01,
                        2.6 + rng.random(),
                        0.9,
                        0.0,
                        np.array([200.0, 40, 40]) if rng.random() < 0.5 else np.array([30.0, 80, 190]),
                    )
                )
            z += rng.uniform(10.0, 22.0)
        z = rng.uniform(0.0, 20.0)
        while z < length:  # fence runs along the outer pavement edge
            flen = rng.uniform(6.0, 18.0)
            things.append(
                _Thing(FENCE, side * (edge - 0.1), z, rng.uniform(0.9, 1.4), 0.0, flen, np.array([110.0, 100, 80]))
            )
            z += flen + rng.uniform(10.0, 30.0)
        z = rng.uniform(0.0, 6.0)
        while z < length:  # pedestrians walk along the pavement
            things.append(
                _Thing(
                    PEDESTRIAN,
                    side * (road_half + rng.uniform(0.6, pave - 0.4)),
                    z,
                    rng.uniform(1.55, 1.9),
                    0.55,
                    0.0,
                    _CLOTHES[rng.integers(len(_CLOTHES))],
                    speed=rng.uniform(-0.05, 0.05),
                )
            )
            z += rng.uniform(4.0, 14.0)
    z = rng.uniform(4.0, 12.0)
    while z < length:  # cars in both lanes
        lane = rng.choice([-0.5, 0.5]) * road_half + rng.uniform(-0.3, 0.3)
        things.append(
            _Thing(
                CAR,
                lane,
                z,
                rng.uniform(1.35, 1.8),
                rng.uniform(1.7, 2.0),
                4.2,
                _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))],
                speed=rng.uniform(0.1, 0.4) if lane > 0 else -rng.uniform(0.1, 0.4),
            )
        )
        z += rng.uniform(7.0, 20.0)
    z = rng.uniform(3.0, 15.0)
    while z < length:  # bicyclists near the kerb
        side = rng.choice([-1.0, 1.0])
        things.append(
            _Thing(
                BICYCLIST,
                side * (road_half - 0.7),
                z,
                1.75,
                0.6,
                1.7,
                _CLOTHES[rng.integers(len(_CLOTHES))],
                speed=0.15 * side,
            )
        )
        z += rng.uniform(12.0, 30.0)
    scene = {"road_half": road_half, "edge": edge, "bonnet": rng.uniform(0.06, 0.13)}
    return things, scene


def _rgb(colour: np.ndarray) -> tuple[int, ...]:
    """A PIL colour: ``colour`` clipped to 0..255 and truncated (as ``np.clip`` then ``int``, a few times faster)."""
    return tuple(int(min(max(v, 0.0), 255.0)) for v in colour.tolist())


def _render_frame(
    things: list[_Thing],
    scene: dict[str, float],
    cam_z: float,
    frame: int,
    size: tuple[int, int],
    light: np.ndarray,
    horizon: float,
    rng: np.random.Generator,
    noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw

    h, w = size
    # Draw at 2x and downsample the image (smooth edges); the mask is drawn at
    # 1x with the same geometry so labels stay crisp integer ids.
    ss = 2
    H, W = h * ss, w * ss
    focal = 0.9 * W
    cam_h = 1.4
    hy = horizon * H

    def px(x: float, z: float, y: float = 0.0) -> tuple[float, float]:
        return W / 2 + focal * x / z, hy + focal * (cam_h - y) / z

    img = Image.new("RGB", (W, H))
    msk = Image.new("L", (W, H), SKY)
    di, dm = ImageDraw.Draw(img), ImageDraw.Draw(msk)

    def fill(
        poly: list[tuple[float, float]] | tuple[float, float, float, float],
        cls: int,
        colour: np.ndarray,
        shape: str = "polygon",
    ) -> None:
        col = _rgb(colour * light)
        if shape != "polygon":
            # tiny far-away objects can round to an inverted box; PIL refuses those
            x0, y0, x1, y1 = poly  # type: ignore[misc]
            poly = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        getattr(di, shape)(poly, fill=col)
        getattr(dm, shape)(poly, fill=cls)

    # sky gradient
    top, bottom = np.array([90.0, 140, 210]), np.array([200.0, 215, 230])
    for y in range(0, int(hy) + 2, 2):
        t = y / max(hy, 1)
        col = _rgb((top * (1 - t) + bottom * t) * light)
        di.rectangle((0, y, W, y + 2), fill=col)

    near, far = 1.0, 250.0
    rh, edge = scene["road_half"], scene["edge"]
    ground = [(-400.0, near), (400.0, near), (400.0, far), (-400.0, far)]
    fill([px(x, z) for x, z in ground], PAVEMENT, np.array([120.0, 115, 105]))  # verge beyond pavement
    for sign in (-1.0, 1.0):
        fill(
            [px(sign * rh, near), px(sign * (edge + 30), near), px(sign * (edge + 30), far), px(sign * rh, far)],
            PAVEMENT,
            np.array([165.0, 160, 150]),
        )
    fill([px(-rh, near), px(rh, near), px(rh, far), px(-rh, far)], ROAD, np.array([85.0, 85, 90]))
    # dashed centre line (road class: CamVid labels markings as road)
    dash0 = -((cam_z) % 6.0)
    for k in range(40):
        z0, z1 = near + dash0 + 6.0 * k, near + dash0 + 6.0 * k + 3.0
        if z1 <= near:
            continue
        z0 = max(z0, near)
        poly = [px(-0.08, z0), px(0.08, z0), px(0.08, z1), px(-0.08, z1)]
        di.polygon(poly, fill=_rgb(np.array([230.0, 230, 220]) * light))

    visible = []
    for t in things:
        z = t.z + t.speed * frame - cam_z
        if z + t.length > near and z < 120.0:
            visible.append((z, t))
    visible.sort(key=lambda item: -item[0])  # painter's algorithm: far to near
    for z, t in visible:
        zc = max(z, near)
        if t.kind in (BUILDING, FENCE):
            z1 = z + t.length
            poly = [px(t.x, zc), px(t.x, zc, t.height), px(t.x, z1, t.height), px(t.x, z1)]
            fill(poly, t.kind, t.colour)
            if t.kind == BUILDING:  # windows as darker rows, still "building"
                for level in np.arange(2.5, t.height - 1.0, 3.0):
                    a, b = px(t.x, zc, level), px(t.x, z1, level + 1.2)
                    c, d = px(t.x, z1, level), px(t.x, zc, level + 1.2)
                    di.polygon([a, d, b, c], fill=_rgb(t.colour * 0.55 * light))
            else:
                for k in np.arange(0.0, t.length, 0.8):  # fence posts
                    zz = z + k
                    if zz > near:
                        u0, v0 = px(t.x, zz)
                        _, v1 = px(t.x, zz, t.height)
                        di.line([(u0, v0), (u0, v1)], fill=(70, 60, 50), width=max(1, int(6 / zz)))
            continue
        if z < near + 0.5:
            continue
        u, v = px(t.x, z)
        s = focal / z  # pixels per metre at this depth
        half = max(t.width * s / 2, 0.6)
        if t.kind == POLE:
            fill((u - half, v - t.height * s, u + half, v), POLE, t.colour, "rectangle")
        elif t.kind == SIGN:
            cy = v - t.height * s
            r = max(t.width * s / 2, 1.0)
            fill((u - r, cy - r, u + r, cy + r), SIGN, t.colour, "ellipse" if t.colour[0] > 100 else "rectangle")
        elif t.kind == TREE:
            trunk = max(0.25 * s, 0.6)
            fill((u - trunk, v - t.height * 0.6 * s, u + trunk, v), TREE, np.array([90.0, 65, 40]), "rectangle")
            cr = t.width * s
            cy = v - t.height * s + cr
            fill((u - cr, cy - cr, u + cr, cy + cr), TREE, t.colour, "ellipse")
        elif t.kind == CAR:
            body_top = v - t.height * s
            fill((u - half, v - 0.35 * s, u + half, v - 0.05 * s), CAR, np.array([25.0, 25, 25]), "rectangle")
            fill((u - half, body_top + 0.5 * s, u + half, v - 0.3 * s), CAR, t.colour, "rectangle")
            fill((u - half * 0.8, body_top, u + half * 0.8, body_top + 0.55 * s), CAR, t.colour * 0.6, "rectangle")
            di.rectangle(
                (u - half * 0.7, body_top + 0.08 * s, u + half * 0.7, body_top + 0.45 * s),
                fill=_rgb(np.array([60.0, 80, 100]) * light),
            )
        elif t.kind == PEDESTRIAN:
            head = max(0.13 * s, 0.6)
            top = v - t.height * s
            fill((u - head, top, u + head, top + 2 * head), PEDESTRIAN, np.array([220.0, 180, 150]), "ellipse")
            fill((u - half, top + 2 * head, u + half, v - 0.8 * s), PEDESTRIAN, t.colour, "rectangle")
            fill((u - half * 0.7, v - 0.85 * s, u + half * 0.7, v), PEDESTRIAN, np.array([40.0, 40, 60]), "rectangle")
        elif t.kind == BICYCLIST:
            wr = max(0.33 * s, 0.8)
            for du in (-0.55 * s, 0.55 * s):
                fill((u + du - wr, v - 2 * wr, u + du + wr, v), BICYCLIST, np.array([30.0, 30, 30]), "ellipse")
            top = v - t.height * s
            head = max(0.12 * s, 0.6)
            fill((u - head, top, u + head, top + 2 * head), BICYCLIST, np.array([220.0, 180, 150]), "ellipse")
            fill((u - half * 0.6, top + 2 * head, u + half * 0.6, v - wr), BICYCLIST, t.colour, "rectangle")

    # ego vehicle bonnet at the bottom: "Unlabelled", as in CamVid
    bh = scene["bonnet"] * H
    fill((-0.2 * W, H - bh, 1.2 * W, H + bh), UNLABELLED, np.array([35.0, 35, 40]), "ellipse")

    image = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
    mask = np.asarray(msk.resize((w, h), Image.NEAREST), dtype=np.uint8)
    if noise > 0:
        image = image + rng.normal(0.0, noise, image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), mask


@dataclass(frozen=True)
class _Drive:
    things: list[_Thing]
    scene: dict[str, float]
    light: np.ndarray
    horizon: float


@functools.lru_cache(maxsize=16)
def _drive(seed: int, drive: int, frames_per_drive: int, speed: float) -> _Drive:
    """The layout, light and horizon of one drive (memoised: its frames are usually read together)."""
    # One generator per drive keeps a drive identical whatever n is.
    rng = np.random.default_rng([seed, drive])
    length = frames_per_drive * speed + 140.0
    things, scene = _drive_objects(rng, length)
    light = rng.uniform(0.75, 1.15) * np.array([1.0, rng.uniform(0.95, 1.05), rng.uniform(0.9, 1.1)])
    horizon = rng.uniform(0.38, 0.5)
    return _Drive(things, scene, light, horizon)


def _sample_name(index: int, frames_per_drive: int) -> str:
    d, f = divmod(index, frames_per_drive)
    return f"drive{d:02d}_frame{f:03d}.png"


def _sample_names(n: int, frames_per_drive: int) -> tuple[str, ...]:
    """``_sample_name(i)`` for all ``i < n``, built from per-drive prefixes (100,000 names in a few ms)."""
    frames = [f"_frame{f:03d}.png" for f in range(frames_per_drive)]
    n_drives = -(-n // frames_per_drive)
    names = [prefix + frame for prefix in (f"drive{d:02d}" for d in range(n_drives)) for frame in frames]
    return tuple(names[:n])


class _RoadScenes(SampleSource):
    """Renders synthetic road scenes by index (the source behind eager and lazy datasets alike)."""

    def __init__(
        self, n: int, size: tuple[int, int], seed: int, frames_per_drive: int, speed: float, noise: float
    ) -> None:
        super().__init__(n, size, np.uint8)
        self.seed = int(seed)
        self.frames_per_drive = int(frames_per_drive)
        self.speed = float(speed)
        self.noise = float(noise)

    def read_pairs(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.image_size
        images = np.empty((len(indices), h, w, 3), np.float32)
        masks = np.empty((len(indices), h, w), np.uint8)
        for k, i in enumerate(np.asarray(indices).tolist()):
            d, f = divmod(i, self.frames_per_drive)
            drive = _drive(self.seed, d, self.frames_per_drive, self.speed)
            rng = np.random.default_rng([self.seed, d, f, _NOISE_TAG])
            images[k], masks[k] = _render_frame(
                drive.things, drive.scene, f * self.speed, f, (h, w), drive.light, drive.horizon, rng, self.noise
            )
        return images, masks

    def describe(self) -> dict[str, object]:
        return {
            "generator": "synthetic_road_scenes",
            "version": _RENDER_VERSION,
            "n": self.n,
            "size": self.image_size,
            "seed": self.seed,
            "frames_per_drive": self.frames_per_drive,
            "speed": self.speed,
            "noise": self.noise,
        }

    def sample_label(self, index: int) -> str:  # pragma: no cover - rendered masks are always in range
        return f"mask of {_sample_name(index, self.frames_per_drive)}"


def synthetic_road_scenes(
    n: int = 240,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
    *,
    frames_per_drive: int = 40,
    speed: float = 1.5,
    noise: float = 0.02,
    lazy: bool | None = None,
) -> SegmentationDataset:
    """Procedural road scenes with CamVid's 12 classes, grouped in drives.

    Parameters
    ----------
    n : int
        Number of samples.
    size : (H, W)
        Image size; CamVid's aspect ratio is 3:4.
    seed : int
        Same seed, same arrays.
    frames_per_drive : int
        Consecutive samples that share one drive (group); the last drive may
        be shorter.
    speed : float
        Metres the camera moves forward between frames of a drive: small
        values give near-identical neighbours, large values less related ones.
    noise : float
        Standard deviation of pixel noise added to the images.
    lazy : bool, optional
        Render samples when they are read instead of now (the dataset holds
        :class:`~latent_widgets.data.lazy_array.LazyArray` images and masks). By
        default lazy when the eager arrays would exceed
        :data:`~latent_widgets.data.lazy_array.AUTO_LAZY_BYTES` (1 GiB: about
        6,700 scenes at 96x128). Lazy and eager datasets hold identical
        samples.

    Returns
    -------
    SegmentationDataset
        Names ``drive00_frame000.png``..., ``groups`` = drive index,
        the CamVid class names and palette.

    Examples
    --------
    >>> ds = synthetic_road_scenes(4, size=(48, 64), seed=0)
    >>> ds.class_names[3], ds.masks.dtype.name
    ('Road', 'uint8')
    >>> big = synthetic_road_scenes(100_000, size=(48, 64), seed=0)  # nothing rendered yet
    >>> big.is_lazy, big.names[-1], bool((big[3].mask == ds[3].mask).all())
    (True, 'drive2499_frame039.png', True)
    """
    if n < 1:
        raise DatasetError(f"n must be at least 1, got {n}.")
    h, w = size
    if h < 16 or w < 16:
        raise DatasetError(f"size must be at least (16, 16) to draw a scene, got {size}.")
    if frames_per_drive < 1:
        raise DatasetError(f"frames_per_drive must be at least 1, got {frames_per_drive}.")
    n, fpd = int(n), int(frames_per_drive)
    n_drives = -(-n // fpd)
    source = _RoadScenes(n, (h, w), seed, fpd, speed, noise)
    if resolve_lazy(lazy, n, (h, w)):
        images: np.ndarray | LazyArray = LazyArray(source, "images")
        masks: np.ndarray | LazyArray = LazyArray(source, "masks")
    else:
        images, masks = source.read_pairs(np.arange(n))
    return SegmentationDataset(
        images=images,
        masks=masks,
        names=_sample_names(n, fpd),
        class_names=CAMVID_CLASSES,
        palette=CAMVID_PALETTE,
        groups=np.arange(n, dtype=np.int64) // fpd,
        group_names=tuple(f"drive{d:02d}" for d in range(n_drives)),
    )
