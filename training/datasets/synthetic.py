"""The embedded default dataset: procedural indoor rooms and outdoor streets, ray cast.

No real dataset can be downloaded everywhere this project runs, so every method can train
and be tested on these scenes. A sample has everything the five papers' methods need, all
exact by construction: RGB, metric depth (NaN for sky and outside the sensor range), a
rectified right view with the left view's disparity d = fx * B / Z, an NIR image with its
own reflectances and illumination, and the semi-dense mask an LSD-SLAM-like system would
reconstruct (depth_nodes.core.semidense).

Option ``variety`` draws the issue-21 world meant to carry over to real images: the scene
elements of synthetic_scenes (robot camera poses, clutter, curved and slanted surfaces,
occluders, photograph textures), a focal length per sample (ROBOT_FOV_DEG) and the imaging
of real cameras (draw_imaging: exposure, white balance, tone curve, blur, read noise).

Sample ``index`` of split ``split`` is a pure function of (seed, split, index): the
Generator is seeded with SeedSequence([seed, split code, index]), so the splits draw from
disjoint streams and a sample never changes between runs, processes or DataLoader workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.semidense import semidense_mask_from_gradient
from training.datasets.base import SPLITS, Sample, register_dataset
from training.datasets.synthetic_geometry import CameraPose, Scene, cast_rays
from training.datasets.synthetic_render import shade
from training.datasets.synthetic_scenes import (DEFAULT_FOV_DEG, DEPTH_RANGE, Trajectory,
                                                build_scene)

OUTPUTS = ('rgb', 'depth', 'right', 'disparity', 'nir', 'semidense_mask')
DEFAULT_SIZE = {'train': 2000, 'val': 200, 'test': 200}
DEFAULT_BASELINE = {'indoor': 0.12, 'outdoor': 0.54}     # metres; 0.54 m is KITTI's rig
SCENE_KINDS = ('indoor', 'outdoor', 'mixed')
# Mean linear brightness auto-exposure aims for, and sensor read noise (grey levels).
EXPOSURE_KEY = (0.16, 0.3)
RGB_NOISE, NIR_NOISE = 1.5, 2.5
NOISE_BANK_SEED = 1234567
# variety=True: horizontal field of view of robot cameras, from a long lens to a wide one.
ROBOT_FOV_DEG = (45.0, 95.0)


@dataclass(frozen=True)
class Imaging:
    """How a camera turns radiance into an 8-bit image (variety=True draws one per sample)."""
    exposure_key: float                 # mean linear brightness auto-exposure aims for
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)   # per-channel gains
    gamma: float = 1 / 2.2              # tone curve exponent
    blur_sigma: float = 0.0             # pixels: defocus / motion, Gaussian
    noise_std: float = RGB_NOISE        # read noise, grey levels


def draw_imaging(rng: np.random.Generator) -> Imaging:
    """Under- to over-exposed, a white balance off by up to 20 %, tone curves from flat to
    contrasty, blur up to 1.2 px and read noise 0.5-5 grey levels."""
    return Imaging(exposure_key=float(rng.uniform(0.06, 0.45)),
                   white_balance=tuple(float(g) for g in rng.uniform(0.8, 1.2, size=3)),
                   gamma=float(1 / rng.uniform(1.8, 2.6)),
                   blur_sigma=float(rng.uniform(0.0, 1.2)) if rng.random() < 0.6 else 0.0,
                   noise_std=float(rng.uniform(0.5, 5.0)))


def pinhole_camera(width: int, height: int, fov_deg: float) -> CameraIntrinsics:
    """Square pixels, principal point at the image centre, horizontal field of view."""
    fx = (width / 2.0) / np.tan(np.radians(fov_deg) / 2.0)
    return CameraIntrinsics(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


def render_sample(scene: Scene, camera: CameraIntrinsics, pose: CameraPose, baseline: float,
                  rng: np.random.Generator, outputs=OUTPUTS, noise: bool = True,
                  semidense_density: float = 0.125, imaging: Imaging | None = None) -> Sample:
    """Render the requested outputs of one frame (see the module docstring for the keys).
    ``imaging`` (RGB and right views): None = the default camera, key drawn in
    EXPOSURE_KEY."""
    unknown = set(outputs) - set(OUTPUTS)
    if unknown:
        raise ValueError(f'unknown synthetic outputs {sorted(unknown)}; choose from {OUTPUTS}')
    hits = cast_rays(scene, camera, pose)
    depth = hits.depth
    radiance, nir_radiance = shade(scene, camera, pose, hits, with_nir='nir' in outputs)
    if imaging is None:
        imaging = Imaging(float(rng.uniform(*EXPOSURE_KEY)))
    radiance = _camera_optics(radiance, imaging)
    exposure = imaging.exposure_key / max(float(radiance.mean()), 1e-6)
    sample: Sample = {'camera': camera, 'baseline': float(baseline)}
    rgb_noise = imaging.noise_std if noise else 0.0
    rgb = _to_uint8(radiance, exposure, rng, rgb_noise, imaging.gamma)
    if 'rgb' in outputs or 'semidense_mask' in outputs:
        sample['rgb'] = rgb
    if 'depth' in outputs:
        lo, hi = DEPTH_RANGE[scene.kind]
        metric = depth.copy()
        # Like the real sensors' ground truth: no depth for sky or outside the range.
        metric[~((metric >= lo) & (metric <= hi))] = np.nan
        sample['depth'] = metric
    if 'disparity' in outputs:
        # Exact by construction; the sky is at infinity, i.e. disparity 0.
        with np.errstate(divide='ignore'):
            sample['disparity'] = np.where(np.isfinite(depth), np.float32(camera.fx * baseline)
                                           / depth, np.float32(0.0)).astype(np.float32)
    if 'right' in outputs:
        right_pose = pose.shifted(baseline)
        r_radiance, _ = shade(scene, camera, right_pose, cast_rays(scene, camera, right_pose),
                              with_nir=False)
        # Same exposure as the left camera: a synchronised rig shares its settings.
        sample['right'] = _to_uint8(_camera_optics(r_radiance, imaging), exposure, rng,
                                    rgb_noise, imaging.gamma)
    if 'nir' in outputs:
        nir_key = rng.uniform(*EXPOSURE_KEY)
        nir_exposure = nir_key / max(float(nir_radiance.mean()), 1e-6)
        sample['nir'] = _to_uint8(nir_radiance, nir_exposure, rng, NIR_NOISE if noise else 0.0)
    if 'semidense_mask' in outputs:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        sample['semidense_mask'] = semidense_mask_from_gradient(gray, semidense_density)
    if 'rgb' not in outputs:
        sample.pop('rgb', None)
    return sample


@lru_cache(maxsize=1)
def _read_noise_bank() -> np.ndarray:
    """2^20 standard normal values drawn once from a fixed seed; each image reads a window
    at a random offset instead of drawing fresh normals per pixel."""
    return np.random.default_rng(NOISE_BANK_SEED).standard_normal(1 << 20, dtype=np.float32)


def _camera_optics(radiance: np.ndarray, imaging: Imaging) -> np.ndarray:
    """White balance gains and Gaussian blur on linear radiance (H, W, 3); no-op by default."""
    if imaging.white_balance != (1.0, 1.0, 1.0):
        radiance = radiance * np.asarray(imaging.white_balance, np.float32)
    if imaging.blur_sigma > 0:
        radiance = cv2.GaussianBlur(radiance, (0, 0), imaging.blur_sigma)
    return radiance


def _to_uint8(radiance: np.ndarray, exposure: float, rng: np.random.Generator,
              noise_std: float, gamma: float = 1 / 2.2) -> np.ndarray:
    """Exposure, a soft highlight roll-off 1 - exp(-x), gamma tone curve, read noise."""
    x = radiance * np.float32(-exposure)
    value = np.exp(x, out=x)
    np.subtract(1.0, value, out=value)
    np.power(value, np.float32(gamma), out=value)
    value *= np.float32(255.0)
    if noise_std > 0:
        bank = _read_noise_bank()
        if value.size < bank.size:
            start = int(rng.integers(0, bank.size - value.size))
            noise = bank[start:start + value.size]
        else:   # an image larger than the bank reads it cyclically from a random offset
            start = int(rng.integers(0, bank.size))
            noise = bank.take(np.arange(start, start + value.size) % bank.size)
        value += noise.reshape(value.shape) * np.float32(noise_std)
    value += np.float32(0.5)
    return np.clip(value, 0, 255, out=value).astype(np.uint8)


def _check_kind(scene: str) -> None:
    if scene not in SCENE_KINDS:
        raise ValueError(f'scene must be one of {SCENE_KINDS}, got {scene!r}')


@register_dataset('synthetic')
class SyntheticScenes:
    """Deterministic procedural scenes; see the module docstring.

    Options: size (samples in the split; defaults train 2000 / val 200 / test 200),
    height, width (pixels, default 256x256), baseline (metres; default 0.12 indoor,
    0.54 outdoor), scene ('indoor' | 'outdoor' | 'mixed'), fov (horizontal degrees; default
    60 indoor, 70 outdoor; with variety drawn in ROBOT_FOV_DEG), seed, outputs (subset of
    OUTPUTS; fewer is faster), noise (sensor read noise on the images), semidense_density,
    variety (the issue-21 world, module docstring; indoor scenes): True, or the fraction of
    samples drawn from it (the rest are the classic scenes).
    """

    def __init__(self, split: str, root: str | None = None, *, size: int | None = None,
                 height: int = 256, width: int = 256, baseline: float | None = None,
                 scene: str = 'mixed', fov: float | None = None, seed: int = 0,
                 outputs=OUTPUTS, noise: bool = True, semidense_density: float = 0.125,
                 variety: bool | float = False):
        if split not in SPLITS:
            raise ValueError(f'split {split!r} not in {SPLITS}')
        if root is not None:
            raise ValueError(f'the synthetic dataset is generated, it has no root (got {root!r})')
        _check_kind(scene)
        if baseline is not None and baseline <= 0:
            raise ValueError(f'baseline must be > 0 metres, got {baseline}')
        self.split, self.scene, self.seed = split, scene, int(seed)
        self.size = DEFAULT_SIZE[split] if size is None else int(size)
        self.height, self.width = int(height), int(width)
        self.baseline, self.fov = baseline, fov
        self.outputs, self.noise = tuple(outputs), bool(noise)
        self.semidense_density = semidense_density
        if not 0.0 <= float(variety) <= 1.0:
            raise ValueError(f'variety must be a boolean or a fraction in [0, 1], got {variety}')
        self.variety = float(variety)

    def __len__(self) -> int:
        return self.size

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLITS.index(self.split), int(index)]))

    def __getitem__(self, index: int) -> Sample:
        if not -self.size <= index < self.size:
            raise IndexError(f'sample {index} out of range for {self.size} samples')
        index %= self.size
        rng = self.rng(index)
        kind = self.scene if self.scene != 'mixed' else ('indoor', 'outdoor')[rng.integers(2)]
        # A fraction draws once per sample; True (1.0) and False (0.0) draw nothing.
        variety = self.variety == 1.0 or (self.variety > 0 and rng.random() < self.variety)
        scene, trajectory = build_scene(kind, rng, variety=variety)
        fov = self.fov or (float(rng.uniform(*ROBOT_FOV_DEG)) if variety
                           else DEFAULT_FOV_DEG[kind])
        camera = pinhole_camera(self.width, self.height, fov)
        baseline = self.baseline or DEFAULT_BASELINE[kind]
        imaging = draw_imaging(rng) if variety else None
        sample = render_sample(scene, camera, trajectory.start, baseline, rng, self.outputs,
                               self.noise, self.semidense_density, imaging)
        sample['name'] = f'synthetic/{self.split}/{index:06d}/{kind}'
        return sample


class SyntheticSequence:
    """Consecutive frames of a camera moving smoothly through ONE procedural scene.

    Forward motion at ``speed`` m/s with a slight constant turn (``yaw_rate`` rad/s),
    frames at ``rate_hz``; each sample also carries ``stamp`` (seconds from the first frame)
    and ``pose`` (4x4 world_from_optical). Defaults: 8 m/s outdoors, 0.4 m/s indoors.
    """

    def __init__(self, seed: int = 0, scene: str = 'outdoor', frames: int = 20,
                 rate_hz: float = 10.0, height: int = 256, width: int = 256,
                 baseline: float | None = None, fov: float | None = None,
                 speed: float | None = None, yaw_rate: float | None = None,
                 outputs=OUTPUTS, noise: bool = True):
        if scene not in ('indoor', 'outdoor'):
            raise ValueError(f"a sequence needs scene 'indoor' or 'outdoor', got {scene!r}")
        if frames < 1 or rate_hz <= 0:
            raise ValueError(f'need frames >= 1 and rate_hz > 0, got {frames}, {rate_hz}')
        self.seed, self.frames, self.rate_hz = int(seed), int(frames), float(rate_hz)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7919]))
        speed = (8.0 if scene == 'outdoor' else 0.4) if speed is None else float(speed)
        if yaw_rate is None:
            yaw_rate = rng.uniform(-1, 1) * (0.035 if scene == 'outdoor' else 0.08)
        duration = (self.frames - 1) / self.rate_hz
        self.scene, start = build_scene(scene, rng, travel=speed * duration)
        self.trajectory = Trajectory(start.start, start.yaw, start.pitch, start.roll, speed,
                                     float(yaw_rate))
        self.camera = pinhole_camera(width, height, fov or DEFAULT_FOV_DEG[scene])
        self.baseline = baseline or DEFAULT_BASELINE[scene]
        self.outputs, self.noise, self.kind = tuple(outputs), noise, scene

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.frames:
            raise IndexError(f'frame {index} out of range for {self.frames} frames')
        stamp = index / self.rate_hz
        pose = self.trajectory.pose(stamp)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7919, index]))
        sample = render_sample(self.scene, self.camera, pose, self.baseline, rng, self.outputs,
                               self.noise)
        sample.update(stamp=stamp, pose=pose.matrix(),
                      name=f'synthetic_sequence/{self.seed}/{self.kind}/{index:04d}')
        return sample


def render_sequence(seed: int = 0, scene: str = 'outdoor', frames: int = 20, **options
                    ) -> list[Sample]:
    """All frames of a SyntheticSequence as a list (for demos and sample bags)."""
    sequence = SyntheticSequence(seed, scene, frames, **options)
    return [sequence[i] for i in range(len(sequence))]
