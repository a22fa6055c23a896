"""Procedural, tileable surface textures for the synthetic scenes, with their mip-maps.

Every texture is a (T, T, 5) float32 tile: linear RGB albedo, NIR reflectance and a tint
weight w. A surface instance multiplies the tintable part of the tile by its own colour and
NIR gain (albedo = tile * (1 - w + w * tint)), so the same brick or facade pattern appears in
many colours, and its near-infrared appearance is chosen independently of that colour:
vegetation and clay are bright in NIR, many dyes and printing inks are transparent in NIR
(wallpaper stripes vanish), glass is dark. That is what makes NIR -> RGB a translation task
rather than a per-pixel colour lookup.

The bank is generated once per process from a fixed seed (tiles are identical in every
process and every run); per-sample variety comes from tints, gains, scales and offsets.

Besides the procedural tiles, the bank holds ``photo_<name>`` tiles cut from photographs that
scikit-image ships (PHOTOS): real-world texture statistics for models that must carry over to
real images (issue 21). Images of stereo or depth datasets (skimage.data.stereo_motorcycle,
Middlebury) are never used: they are kept for evaluation.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TILE = 256          # texels per tile side
MIP_LEVELS = 5      # 256, 128, 64, 32, 16 texels
BANK_SEED = 20240611
RGB, NIR, TINT = slice(0, 3), 3, 4


def periodic_noise(rng: np.random.Generator, size: int = TILE, beta: float = 2.0,
                   stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Zero-mean, unit-std 1/f^beta noise that tiles seamlessly (spectral synthesis).

    ``stretch`` > 1 along an axis lowers the frequencies along it (wood grain, streaks).
    """
    fy = np.fft.fftfreq(size)[:, None] * stretch[0]
    fx = np.fft.rfftfreq(size)[None, :] * stretch[1]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    amplitude = radius ** (-beta / 2.0)
    amplitude[0, 0] = 0.0
    spectrum = (rng.standard_normal(radius.shape) + 1j * rng.standard_normal(radius.shape))
    field = np.fft.irfft2(spectrum * amplitude, s=(size, size))
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _tile(rgb, nir, tint) -> np.ndarray:
    tile = np.empty((TILE, TILE, 5), dtype=np.float32)
    tile[:, :, RGB] = rgb
    tile[:, :, NIR] = nir
    tile[:, :, TINT] = tint
    return np.clip(tile, 0.0, 1.0)


def _grid(n: int = TILE) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:n, 0:n].astype(np.float32) / n
    return u, v


def _plaster(rng):
    rgb = 0.82 + 0.025 * periodic_noise(rng, beta=1.2) + 0.03 * periodic_noise(rng, beta=2.8)
    nir = 0.85 + 0.03 * periodic_noise(rng, beta=2.2)
    return _tile(rgb[..., None], nir, 1.0)


def _wallpaper(rng):
    # Printed stripes and dots: visible in RGB, the ink is transparent in NIR.
    u, v = _grid()
    stripes = (np.sin(2 * np.pi * 8 * u) > 0.3).astype(np.float32)
    dots = (np.hypot((u * 16) % 1 - 0.5, (v * 16) % 1 - 0.5) < 0.18).astype(np.float32)
    ink = np.clip(stripes + 0.7 * dots * (1 - stripes), 0, 1)
    rgb = 0.85 - 0.35 * ink + 0.02 * periodic_noise(rng, beta=1.5)
    nir = 0.8 + 0.02 * periodic_noise(rng, beta=1.5)
    return _tile(rgb[..., None], nir, 1.0)


def _brick(rng):
    # One tile = 4 bricks x 12 courses (0.9 m x 0.9 m at 284 texels/m); mortar ~1 cm.
    u, v = _grid()
    course = np.floor(v * 12)
    shift = (course % 2) * 0.5
    col = np.floor((u * 4 + shift) % 4)
    mortar = (((u * 4 + shift) % 1) < 0.05) | (((v * 12) % 1) < 0.12)
    tones = rng.uniform(0.7, 1.2, size=(12, 4)).astype(np.float32)
    tone = tones[course.astype(int), col.astype(int)]
    grain = 0.06 * periodic_noise(rng, beta=1.0)
    brick_rgb = np.stack([0.45, 0.18, 0.11]) * (tone + grain)[..., None]
    mortar_rgb = np.full(3, 0.55, np.float32) + 0.05 * periodic_noise(rng, beta=1.5)[..., None]
    rgb = np.where(mortar[..., None], mortar_rgb, brick_rgb)
    nir = np.where(mortar, 0.5, 0.62 * tone + 0.05 * grain)
    return _tile(rgb, nir, np.where(mortar, 0.0, 0.4))


def _wood(rng):
    # Floor planks along u: 8 planks per 1.2 m tile, grain stretched along the plank.
    u, v = _grid()
    plank = np.floor(v * 8).astype(int)
    grain = periodic_noise(rng, beta=2.0, stretch=(1.0, 12.0))
    rings = np.sin(40 * v + 6 * periodic_noise(rng, beta=3.0, stretch=(1.0, 6.0)))
    tone = rng.uniform(0.75, 1.25, size=8).astype(np.float32)[plank]
    ends = rng.uniform(0, 1, size=8).astype(np.float32)[plank]
    gap = (((v * 8) % 1) < 0.04) | (np.abs(u - ends) < 0.004)
    base = tone * (1 + 0.1 * grain + 0.06 * rings)
    rgb = np.stack([0.42, 0.26, 0.14]) * base[..., None]
    rgb = np.where(gap[..., None], 0.06, rgb)
    nir = np.where(gap, 0.08, 0.6 * tone * (1 + 0.05 * grain))
    return _tile(rgb, nir, 0.35)


def _floor_tiles(rng):
    u, v = _grid()
    grout = (((u * 4) % 1) < 0.03) | (((v * 4) % 1) < 0.03)
    tone = rng.uniform(0.9, 1.08, size=(4, 4)).astype(np.float32)[
        np.floor(v * 4).astype(int), np.floor(u * 4).astype(int)]
    body = 0.78 * tone + 0.03 * periodic_noise(rng, beta=1.6)
    rgb = np.where(grout, 0.35, body)[..., None]
    nir = np.where(grout, 0.3, 0.75 * tone)
    return _tile(rgb, nir, np.where(grout, 0.0, 1.0))


def _fabric(rng):
    u, v = _grid()
    weave = 0.5 + 0.25 * (np.sin(2 * np.pi * 64 * u) * np.sin(2 * np.pi * 64 * v))
    fibres = 0.08 * periodic_noise(rng, beta=0.8)
    rgb = (0.75 + 0.1 * weave + fibres)[..., None]
    nir = 0.7 + 0.06 * periodic_noise(rng, beta=0.8)
    return _tile(rgb, nir, 1.0)


def _asphalt(rng):
    speck = periodic_noise(rng, beta=0.3)
    patches = periodic_noise(rng, beta=3.0)
    rgb = (0.11 + 0.025 * speck + 0.02 * patches)[..., None]
    nir = 0.13 + 0.02 * periodic_noise(rng, beta=0.3) + 0.015 * patches
    return _tile(rgb, nir, 0.0)


def _paving(rng):
    u, v = _grid()
    joint = (((u * 2) % 1) < 0.02) | (((v * 2) % 1) < 0.02)
    body = 0.38 + 0.04 * periodic_noise(rng, beta=1.2) + 0.03 * periodic_noise(rng, beta=3)
    rgb = np.where(joint, 0.2, body)[..., None]
    nir = np.where(joint, 0.22, 0.42 + 0.03 * periodic_noise(rng, beta=1.2))
    return _tile(rgb, nir, 0.3)


def _facade(rng):
    # One window bay per tile; u across the facade, v downwards (texel rows).
    u, v = _grid()
    glass = (np.abs(u - 0.5) < 0.2) & (np.abs(v - 0.45) < 0.25)
    frame = (np.abs(u - 0.5) < 0.23) & (np.abs(v - 0.45) < 0.28) & ~glass
    sill = (np.abs(u - 0.5) < 0.26) & (np.abs(v - 0.745) < 0.02)
    wall = 0.7 + 0.04 * periodic_noise(rng, beta=1.5) + 0.04 * periodic_noise(rng, beta=3)
    reflection = 0.1 + 0.06 * (1 - v) + 0.02 * periodic_noise(rng, beta=3)
    rgb = np.repeat(wall[..., None], 3, axis=2)
    rgb[glass] = np.stack([0.7, 0.85, 1.0]) * reflection[glass][:, None]
    rgb[frame | sill] = 0.6
    nir = np.where(glass, 0.04, np.where(frame | sill, 0.5, 0.75 + 0.03 * wall))
    tint = np.where(glass | frame | sill, 0.0, 1.0)
    return _tile(rgb, nir, tint)


def _foliage(rng):
    clusters = periodic_noise(rng, beta=1.6)
    leaves = clusters > -0.6
    shade = 0.75 + 0.3 * np.tanh(clusters)
    rgb = np.stack([0.07, 0.16, 0.04]) * shade[..., None] * 1.6
    rgb[~leaves] = 0.015
    # Chlorophyll absorbs red but cell walls reflect NIR strongly: the "red edge".
    nir = np.where(leaves, 0.62 * shade, 0.05)
    return _tile(rgb, nir, 0.3)


def _car_paint(rng):
    rgb = (0.8 + 0.015 * periodic_noise(rng, beta=2.5))[..., None]
    nir = 0.8 + 0.015 * periodic_noise(rng, beta=2.5)
    return _tile(rgb, nir, 1.0)


def _glass(rng):
    _, v = _grid()
    rgb = np.stack([0.05, 0.06, 0.08]) * (1.2 - 0.5 * v)[..., None]
    return _tile(rgb, 0.03 + 0.01 * (1 - v), 0.0)


def _bark(rng):
    streaks = periodic_noise(rng, beta=1.8, stretch=(10.0, 1.0))
    rgb = np.stack([0.2, 0.14, 0.09]) * (1 + 0.25 * streaks)[..., None]
    return _tile(rgb, 0.35 + 0.06 * streaks, 0.2)


def _concrete(rng):
    rgb = (0.62 + 0.05 * periodic_noise(rng, beta=1.0) + 0.04 * periodic_noise(rng, beta=3))
    return _tile(rgb[..., None], 0.6 + 0.05 * periodic_noise(rng, beta=2), 0.5)


def _painting(rng):
    # Pictures and posters: colourful blobs whose NIR pattern is unrelated to their colour.
    rgb = np.stack([0.5 + 0.22 * periodic_noise(rng, beta=3.2) for _ in range(3)], axis=-1)
    return _tile(rgb, 0.5 + 0.2 * periodic_noise(rng, beta=3.2), 0.0)


def _clouds(rng):
    cover = np.clip(periodic_noise(rng, beta=3.0) * 0.5 + periodic_noise(rng, beta=1.5) * 0.15,
                    0, None)
    return _tile(cover[..., None], cover, 0.0)


# Photographs bundled with scikit-image (no download). Grey ones take the surface's tint.
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'brick', 'grass', 'gravel', 'camera',
          'coins', 'clock', 'moon', 'page', 'immunohistochemistry')
EVALUATION_ONLY = frozenset({'stereo_motorcycle'})   # depth/stereo data: never a texture


def photo_tile(name: str) -> np.ndarray:
    """A (TILE, TILE, 5) tile from skimage.data.<name>(): the centre square, area-resized to
    TILE / 2, mirrored 2 x 2 so that it tiles without seams; sRGB -> linear (gamma 2.2);
    NIR = the luminance (a photograph has no NIR band: a neutral guess)."""
    if name in EVALUATION_ONLY:
        raise ValueError(f'skimage.data.{name} is evaluation data, never a training texture')
    from skimage import data
    image = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
    grey = image.ndim == 2
    if grey:
        image = np.repeat(image[..., None], 3, axis=2)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    half = cv2.resize(np.ascontiguousarray(image[top:top + side, left:left + side, :3]),
                      (TILE // 2, TILE // 2), interpolation=cv2.INTER_AREA)
    rgb = np.concatenate([np.concatenate([half, half[:, ::-1]], axis=1)] * 2, axis=0)
    rgb[TILE // 2:] = rgb[TILE // 2:][::-1]
    rgb = np.clip(rgb, 0, 1) ** 2.2
    nir = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return _tile(rgb, nir, 1.0 if grey else 0.25)


def _photo_generator(name: str):
    def generate(rng):
        return photo_tile(name)
    return generate


TEXTURE_GENERATORS = {
    'plaster': _plaster, 'wallpaper': _wallpaper, 'brick': _brick, 'wood': _wood,
    'floor_tiles': _floor_tiles, 'fabric': _fabric, 'asphalt': _asphalt, 'paving': _paving,
    'facade': _facade, 'foliage': _foliage, 'car_paint': _car_paint, 'glass': _glass,
    'bark': _bark, 'concrete': _concrete, 'painting': _painting, 'clouds': _clouds,
    # Appended after the procedural tiles: their bank seeds (by index) stay as they were.
    **{f'photo_{name}': _photo_generator(name) for name in PHOTOS},
}
PHOTO_TEXTURES = tuple(f'photo_{name}' for name in PHOTOS)


@lru_cache(maxsize=1)
def texture_bank() -> dict[str, list[np.ndarray]]:
    """name -> mip chain [level 0 (TILE x TILE), level 1 (TILE/2), ...] of (n, n, 5) tiles.

    Level k averages 2^k x 2^k texels (INTER_AREA by exact halving, which stays periodic), so
    a distant surface samples a pre-filtered tile instead of aliasing.
    """
    bank = {}
    for index, (name, generate) in enumerate(TEXTURE_GENERATORS.items()):
        rng = np.random.default_rng([BANK_SEED, index])
        chain = [np.ascontiguousarray(generate(rng), dtype=np.float32)]
        for _ in range(1, MIP_LEVELS):
            size = chain[-1].shape[0] // 2
            chain.append(cv2.resize(chain[-1], (size, size), interpolation=cv2.INTER_AREA))
        bank[name] = chain
    return bank


class TextureAtlas:
    """Every tile and every mip level in one image, each with a 1-texel wrap-around border,
    so a single cv2.remap samples all surfaces of a view at their own mip levels.

    Layout: texture i occupies a column block (TILE + 2 wide); its levels are stacked
    downwards in it, level k being a (TILE >> k) + 2 square.
    """

    def __init__(self, bank: dict[str, list[np.ndarray]]):
        self.index = {name: i for i, name in enumerate(bank)}
        sizes = [TILE >> level for level in range(MIP_LEVELS)]
        tops = np.cumsum([0] + [size + 2 for size in sizes[:-1]])
        self.image = np.zeros((int(tops[-1]) + sizes[-1] + 2, len(bank) * (TILE + 2), 5),
                              np.float32)
        # Per (texture, level): top-left texel of the tile proper (inside its border).
        self.x0 = np.zeros((len(bank), MIP_LEVELS), np.float32)
        self.y0 = np.zeros((len(bank), MIP_LEVELS), np.float32)
        for name, i in self.index.items():
            for level, size in enumerate(sizes):
                x, y = i * (TILE + 2), int(tops[level])
                self.image[y:y + size + 2, x:x + size + 2] = np.pad(
                    bank[name][level], ((1, 1), (1, 1), (0, 0)), 'wrap')
                self.x0[i, level], self.y0[i, level] = x + 1, y + 1
        self.x0, self.y0 = self.x0.ravel(), self.y0.ravel()
        self.size = np.tile(np.array(sizes, np.float32), len(bank))

    def sample(self, tile: np.ndarray | int, u_texels: np.ndarray, v_texels: np.ndarray,
               footprint_texels: np.ndarray) -> list[np.ndarray]:
        """Bilinear, wrapped look-up at (n,) level-0 texel coordinates -> 5 arrays (n,):
        R, G, B, NIR and tint weight.

        Each pixel reads the mip level whose texels are about as large as its footprint on
        the surface (``footprint_texels``: level-0 texels covered by one pixel): level
        floor(log2(footprint)), found with comparisons (cheaper than a log).
        """
        level = (footprint_texels >= 2).view(np.uint8).astype(np.intp)
        for k in range(2, MIP_LEVELS):
            level += footprint_texels >= (1 << k)
        key = np.asarray(tile, np.intp) * MIP_LEVELS + level
        size = self.size.take(key)
        # Every level repeats once per TILE level-0 texels: wrap to a fraction of the tile
        # first (remap's fixed-point maps also need coordinates < 2^15).
        fu = u_texels * np.float32(1.0 / TILE)
        fu -= np.floor(fu)
        fv = v_texels * np.float32(1.0 / TILE)
        fv -= np.floor(fv)
        return remap_points(self.image, fu * size + self.x0.take(key),
                            fv * size + self.y0.take(key), cv2.BORDER_REPLICATE)


@lru_cache(maxsize=1)
def texture_atlas() -> TextureAtlas:
    return TextureAtlas(texture_bank())


def remap_points(image: np.ndarray, x: np.ndarray, y: np.ndarray, border_mode: int,
                 border_value: float = 0.0) -> list[np.ndarray]:
    """Bilinear samples of ``image`` at (n,) float coordinates -> one (n,) array per channel.

    cv2.remap wants 2D maps under 32767 rows and columns, so the points are laid out in
    rows of 256.
    """
    n = x.shape[0]
    cols = 256
    rows = max(-(-n // cols), 1)
    maps = np.zeros((2, rows * cols), np.float32)
    maps[0, :n], maps[1, :n] = x, y
    # Fixed-point maps: what remap converts float maps to internally, done in one pass.
    fixed, fraction = cv2.convertMaps(maps[0].reshape(rows, cols), maps[1].reshape(rows, cols),
                                      cv2.CV_16SC2)
    res = cv2.remap(image, fixed, fraction, cv2.INTER_LINEAR, borderMode=border_mode,
                    borderValue=border_value)
    if res.ndim == 2:
        return [res.reshape(-1)[:n]]
    # Channel-first copy (faster than cv2.split, which is slow for 5 channels).
    return list(np.ascontiguousarray(res.reshape(-1, res.shape[2])[:n].T))
