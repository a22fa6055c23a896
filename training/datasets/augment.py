"""Training augmentations used by the papers, applied to a whole sample dict consistently.

Every random choice comes from the numpy Generator passed in, so a (seed, epoch, index)
triple reproduces an augmented sample exactly (AugmentedDataset). Geometry:

- horizontal flip: a mono sample is mirrored (cx -> W - 1 - cx). A stereo sample swaps its
  views, as monodepth-style training does: new left = flip(right), new right = flip(left);
  the left-view depth/disparity/semi-dense mask of the new left (the old right view) are
  forward-warped from the old left along x_right = x_left - d to the nearest pixel (the
  nearer surface wins; pixels the old left did not see become unknown).
- rotation: a small roll about the principal point; depth by nearest neighbour (Z does not
  change under a roll), unknown outside the image. Refused for stereo pairs, whose
  rectification a rotation would break.
- crop: all images cropped alike; the principal point moves, the disparity does not. The
  aspect crop takes the largest window of a random aspect ratio (a camera of another shape).

Photometric: colour jitter (gamma, brightness, contrast, saturation) with the same draw for
both views of a stereo pair (their photometric consistency is the training signal); the NIR
channel gets its own brightness/contrast/gamma draw (another sensor).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.semidense import semidense_mask_from_gradient
from training.datasets.base import Sample

IMAGE_KEYS = ('rgb', 'right', 'nir', 'right_nir')
DEPTH_KEYS = ('depth', 'disparity')
MASK_KEYS = ('semidense_mask',)
SPATIAL_KEYS = IMAGE_KEYS + DEPTH_KEYS + MASK_KEYS


def crop_intrinsics(camera: CameraIntrinsics, x0: int, y0: int, width: int, height: int
                    ) -> CameraIntrinsics:
    """Intrinsics of the sub-image [y0:y0 + height, x0:x0 + width]."""
    return replace(camera, width=int(width), height=int(height), cx=camera.cx - x0,
                   cy=camera.cy - y0)


def _size(sample: Sample) -> tuple[int, int]:
    for key in SPATIAL_KEYS:
        if key in sample:
            return sample[key].shape[:2]
    raise ValueError(f'sample has no image (keys: {sorted(sample)})')


def _refuse_pose(sample: Sample, what: str) -> None:
    if 'pose' in sample:
        raise ValueError(f'{what} would invalidate the sample\'s camera pose; augment samples '
                         'without "pose"')


# ----------------------------------------------------------------------------- geometry

def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """The window [top:top + height, left:left + width] of every image of the sample."""
    rows, cols = _size(sample)
    if not (0 <= top and 0 <= left and height > 0 and width > 0 and top + height <= rows
            and left + width <= cols):
        raise ValueError(f'crop {width}x{height} at ({left}, {top}) does not fit a '
                         f'{cols}x{rows} image')
    out = dict(sample)
    for key in SPATIAL_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][top:top + height, left:left + width])
    if 'camera' in sample:
        out['camera'] = crop_intrinsics(sample['camera'], left, top, width, height)
    return out


def random_crop(sample: Sample, rng: np.random.Generator, height: int, width: int) -> Sample:
    rows, cols = _size(sample)
    if height > rows or width > cols:
        raise ValueError(f'cannot crop {width}x{height} from a {cols}x{rows} image')
    return crop(sample, int(rng.integers(0, rows - height + 1)),
                int(rng.integers(0, cols - width + 1)), height, width)


def random_aspect_crop(sample: Sample, rng: np.random.Generator,
                       aspects: tuple[float, float]) -> Sample:
    """A window of a random aspect ratio (width / height, drawn in ``aspects``) at a random
    place, as large as the image allows: a square render becomes what a 4:3 or 16:9 camera
    with the same focal length sees. A letterboxing model trains on these as it runs on
    cameras (training.models.base.depth_targets, letterbox)."""
    rows, cols = _size(sample)
    aspect = float(rng.uniform(*aspects))
    if aspect >= cols / rows:
        height, width = max(1, round(cols / aspect)), cols
    else:
        height, width = rows, max(1, round(rows * aspect))
    return random_crop(sample, rng, height, width)


def center_crop(sample: Sample, height: int, width: int) -> Sample:
    rows, cols = _size(sample)
    return crop(sample, (rows - height) // 2, (cols - width) // 2, height, width)


def horizontal_flip(sample: Sample) -> Sample:
    """Mirror a mono sample; swap and mirror the views of a stereo sample (module doc)."""
    _refuse_pose(sample, 'a flip')
    if 'right_nir' in sample:
        raise ValueError('an RGB (left) / NIR (right) pair cannot be flipped: the swapped '
                         'pair would have NIR on the left; flip its images separately')
    if 'right' in sample:
        return _swap_stereo_views(sample)
    out = dict(sample)
    for key in SPATIAL_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(sample[key][:, ::-1])
    if 'camera' in sample:
        cam = sample['camera']
        out['camera'] = replace(cam, cx=cam.width - 1 - cam.cx)
    return out


def _left_disparity(sample: Sample) -> np.ndarray:
    if 'disparity' in sample:
        return sample['disparity']
    if 'depth' in sample and 'camera' in sample and sample.get('baseline'):
        with np.errstate(divide='ignore', invalid='ignore'):
            return (np.float32(sample['camera'].fx * sample['baseline']) / sample['depth']
                    - np.float32(sample.get('disparity_offset', 0.0)))
    raise ValueError('flipping a stereo sample needs its disparity, or depth + camera + '
                     'baseline, to move the ground truth to the other view')


def _swap_stereo_views(sample: Sample) -> Sample:
    if 'nir' in sample:
        raise ValueError("a stereo sample with 'nir' (registered to the left view only) "
                         "cannot swap its views; drop 'nir' or 'right' before flipping")
    height, width = _size(sample)
    disparity = _left_disparity(sample)
    valid = np.isfinite(disparity)
    rows, cols = np.nonzero(valid)
    d = disparity[rows, cols]
    target = np.rint(cols - d).astype(np.int64)     # x_right = x_left - d
    inside = (target >= 0) & (target < width)
    rows, cols, target, d = rows[inside], cols[inside], target[inside], d[inside]
    # Z-buffer: where several left pixels land on one right pixel the largest disparity
    # (nearest surface) is what the right camera sees.
    order = np.argsort(-d, kind='stable')
    flat = rows[order] * width + target[order]
    flat, first = np.unique(flat, return_index=True)
    source = (rows[order][first], cols[order][first])

    def to_right(image: np.ndarray, fill) -> np.ndarray:
        moved = np.full(height * width, fill, dtype=image.dtype)
        moved[flat] = image[source]
        return moved.reshape(height, width)

    out = dict(sample)
    out['rgb'] = np.ascontiguousarray(sample['right'][:, ::-1])
    out['right'] = np.ascontiguousarray(sample['rgb'][:, ::-1])
    if 'disparity' in sample:
        out['disparity'] = np.ascontiguousarray(to_right(disparity, np.nan)[:, ::-1])
    if 'depth' in sample:
        out['depth'] = np.ascontiguousarray(to_right(sample['depth'], np.nan)[:, ::-1])
    if 'semidense_mask' in sample:
        # The mask marks high-gradient pixels of the reference image: recompute it on the
        # new reference at the same density.
        gray = cv2.cvtColor(out['rgb'], cv2.COLOR_RGB2GRAY)
        density = float(np.clip(sample['semidense_mask'].mean(), 1e-3, 0.999))
        out['semidense_mask'] = semidense_mask_from_gradient(gray, density)
    if 'camera' in sample:
        cam = sample['camera']
        right_cx = cam.cx + sample.get('disparity_offset', 0.0)   # cx1 = cx0 + doffs
        out['camera'] = replace(cam, cx=cam.width - 1 - right_cx)
    return out


def random_horizontal_flip(sample: Sample, rng: np.random.Generator, p: float = 0.5
                           ) -> Sample:
    return horizontal_flip(sample) if rng.random() < p else sample


def rotate(sample: Sample, degrees: float) -> Sample:
    """Roll by ``degrees`` (counter-clockwise in the image) about the principal point."""
    if 'right' in sample or 'right_nir' in sample:
        raise ValueError('rotating one view of a stereo pair breaks its rectification')
    _refuse_pose(sample, 'a rotation')
    height, width = _size(sample)
    if 'camera' in sample:
        centre = (sample['camera'].cx, sample['camera'].cy)
    else:
        centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    out = dict(sample)
    for key in SPATIAL_KEYS:
        if key not in sample:
            continue
        image = sample[key]
        if key in IMAGE_KEYS:
            out[key] = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        elif key in DEPTH_KEYS:
            out[key] = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        else:
            out[key] = cv2.warpAffine(image.astype(np.uint8), matrix, (width, height),
                                      flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return out


def random_rotation(sample: Sample, rng: np.random.Generator, max_degrees: float) -> Sample:
    return rotate(sample, float(rng.uniform(-max_degrees, max_degrees)))


# ----------------------------------------------------------------------------- photometric

def _jitter_image(image: np.ndarray, gamma: float, brightness: float, contrast: float,
                  saturation: float) -> np.ndarray:
    x = (image.astype(np.float32) * np.float32(1 / 255.0)) ** np.float32(gamma)
    x *= np.float32(brightness)
    gray = x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - gray.mean()) * np.float32(contrast) + gray.mean()
    if x.ndim == 3:
        gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        x = gray + (x - gray) * np.float32(saturation)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def color_jitter(sample: Sample, rng: np.random.Generator, brightness: float = 0.2,
                 contrast: float = 0.2, saturation: float = 0.2,
                 gamma: tuple[float, float] = (0.8, 1.2)) -> Sample:
    """Random gamma, brightness, contrast and saturation, each factor uniform in
    [1 - x, 1 + x] (gamma in its range); one draw for both views of a pair."""
    def draw(with_saturation: bool):
        return (float(rng.uniform(*gamma)), float(rng.uniform(1 - brightness, 1 + brightness)),
                float(rng.uniform(1 - contrast, 1 + contrast)),
                float(rng.uniform(1 - saturation, 1 + saturation)) if with_saturation else 1.0)
    out = dict(sample)
    colour = draw(True)
    for key in ('rgb', 'right'):
        if key in sample:
            out[key] = _jitter_image(sample[key], *colour)
    if 'nir' in sample or 'right_nir' in sample:
        infrared = draw(False)
        for key in ('nir', 'right_nir'):
            if key in sample:
                out[key] = _jitter_image(sample[key], *infrared)
    return out


# ----------------------------------------------------------------------------- pipeline

@dataclass(frozen=True)
class AugmentConfig:
    """What ``augment`` does; a zero/None field switches that step off."""
    flip_probability: float = 0.5
    max_rotation_degrees: float = 0.0        # Eigen et al.: +-5
    crop: tuple[int, int] | None = None      # (height, width) random crop
    # With this probability, a random window of aspect ratio (width / height) drawn in
    # aspect_crop (random_aspect_crop), after the fixed-size crop.
    aspect_crop: tuple[float, float] | None = None
    aspect_crop_probability: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        if self.aspect_crop is not None and not (
                len(self.aspect_crop) == 2 and 0 < self.aspect_crop[0] <= self.aspect_crop[1]):
            raise ValueError(f'aspect_crop must be [low, high] width / height ratios with '
                             f'0 < low <= high, got {self.aspect_crop}')
        if not 0.0 <= self.aspect_crop_probability <= 1.0:
            raise ValueError(f'aspect_crop_probability must be in [0, 1], got '
                             f'{self.aspect_crop_probability}')


def augment(sample: Sample, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
            ) -> Sample:
    """Flip, rotation, crop, aspect crop, then colour jitter, in that order."""
    if config.flip_probability > 0:
        sample = random_horizontal_flip(sample, rng, config.flip_probability)
    if config.max_rotation_degrees > 0:
        sample = random_rotation(sample, rng, config.max_rotation_degrees)
    if config.crop is not None:
        sample = random_crop(sample, rng, *config.crop)
    if config.aspect_crop is not None and config.aspect_crop_probability > 0 \
            and rng.random() < config.aspect_crop_probability:
        sample = random_aspect_crop(sample, rng, config.aspect_crop)
    if config.brightness or config.contrast or config.saturation or config.gamma != (1, 1):
        sample = color_jitter(sample, rng, config.brightness, config.contrast,
                              config.saturation, config.gamma)
    return sample


class AugmentedDataset:
    """A dataset whose samples are augmented with a Generator seeded by
    (seed, epoch, index): reproducible, yet different every epoch (``set_epoch``)."""

    def __init__(self, dataset, config: AugmentConfig = AugmentConfig(), seed: int = 0):
        self.dataset, self.config, self.seed, self.epoch = dataset, config, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, index]))
        return augment(self.dataset[index], rng, self.config)
