"""Contrastive CycleGAN of Suarez, Carpio and Sappa, "A Deep Learning Based Approach for
Synthesizing Realistic Depth Maps" (``method: cyclegan``): unpaired translation of gray
(intensity) images X into depth maps Y with two generators, two PatchGAN discriminators and a
PatchNCE loss.

The networks, the objective (eq. 6) and its optimisation are the two-domain core of
training/models/two_domain.py (``CycleTranslation``, trained, saved and exported by its
``TranslationMethod``); plain CycleGAN and CUT-style one-sided training are options of that
core. This file adds what is specific to depth: X = gray images made from the samples' RGB by
the nodes' pre-processing (BT.601 luma, scaled to [-1, 1]), Y = depth maps normalised linearly
over [min_depth, max_depth] to [-1, 1] (near = +1 when near_is_bright; missing depth is far),
G1 exported as the depth model (spec output_kind normalized_depth). The two domains are
sampled unpaired (``UnpairedDomains``). DDP is not supported: the paper trains with batch
size 1 on one device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from depth_nodes.core.model_spec import ModelSpec
from training.models.base import depth_targets, images_to_batch, require_keys, resize_depth
from training.models.two_domain import TranslationConfig, TranslationMethod, UnpairedDomains


@dataclass(frozen=True)
class CycleGANConfig(TranslationConfig):
    """X = gray images, Y = normalised depth maps. Defaults are small (a quick export for the
    tests); training/configs/cyclegan_nyu.yaml holds the paper's settings."""
    input_height: int = 96
    input_width: int = 128
    generator_channels: int = 16
    generator_blocks: int = 4
    discriminator_channels: int = 16
    nce_layers: tuple[str, ...] = ('input', 'down1', 'down2', 'block1', 'block4')
    nce_patches: int = 64
    projection_dim: int = 64
    min_depth: float = 0.5                # metres: Y = depth normalised over [min, max]
    max_depth: float = 10.0
    near_is_bright: bool = True           # normalised value +1 = min_depth (near)
    disjoint_domains: bool = True         # X and Y drawn from disjoint halves of the data
    flip: bool = True                     # random horizontal flips, per domain (CycleGAN)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.x_channels, self.y_channels) != (1, 1):
            raise ValueError('cyclegan translates gray (1 channel) to depth (1 channel): '
                             'x_channels and y_channels must be 1')
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError('need 0 <= min_depth < max_depth')
        self.check_image_size('input', self.input_height, self.input_width)


def normalize_depth(depth: np.ndarray, min_depth: float, max_depth: float,
                    near_is_bright: bool) -> np.ndarray:
    """(H, W) metres (NaN unknown) -> values in [-1, 1]: linear in depth over [min, max]
    (clipped), +1 = near when near_is_bright; unknown depth counts as far. The inverse is
    depth_nodes.core.postprocess.output_to_metres with the method's spec."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        known = np.isfinite(depth) & (depth > 0)
    t = (np.clip(np.where(known, depth, max_depth), min_depth, max_depth) - min_depth) \
        / (max_depth - min_depth)
    if near_is_bright:
        t = 1.0 - t
    return (2.0 * t - 1.0).astype(np.float32)


class CycleGANMethod(TranslationMethod):
    name = 'cyclegan'
    config_class = CycleGANConfig
    sample_keys = ('rgb', 'depth')

    def training_dataset(self, dataset: Sequence, seed: int) -> Sequence:
        return UnpairedDomains(dataset, seed, self.config.disjoint_domains, self.config.flip)

    # --- batches -----------------------------------------------------------------------
    def _gray(self, samples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return images_to_batch([s['rgb'] for s in samples], 'rgb8', self.model_spec())

    def _normalized_depth(self, samples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        c = self.config
        maps = [normalize_depth(resize_depth(s['depth'], c.input_height, c.input_width),
                                c.min_depth, c.max_depth, c.near_is_bright) for s in samples]
        return torch.from_numpy(np.stack(maps)[:, None])

    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Unpaired items (training) -> x, y; plain samples (validation) -> x, y of the same
        frame plus log_depth / valid at the input size for the depth metrics."""
        if all('domain_x' in s for s in samples):
            xs, ys = [s['domain_x'] for s in samples], [s['domain_y'] for s in samples]
            for x_sample, y_sample in zip(xs, ys):
                require_keys(x_sample, ('rgb',), self.name)
                require_keys(y_sample, ('depth',), self.name)
            return {'x': self._gray(xs), 'y': self._normalized_depth(ys)}
        for sample in samples:
            require_keys(sample, self.sample_keys, self.name)
        c = self.config
        log_depth, valid = depth_targets([s['depth'] for s in samples], c.input_height,
                                         c.input_width, c.min_depth, c.max_depth)
        return {'x': self._gray(samples), 'y': self._normalized_depth(samples),
                'log_depth': log_depth, 'valid': valid}

    # --- inference ---------------------------------------------------------------------
    def normalized_to_metres(self, normalized: torch.Tensor) -> torch.Tensor:
        """The spec's normalized_depth mapping in torch (output_to_metres without the NaN
        masking): [-1, 1] -> [min_depth, max_depth]."""
        c = self.config
        t = (normalized + 1.0) / 2.0
        if c.near_is_bright:
            t = 1.0 - t
        return c.min_depth + t * (c.max_depth - c.min_depth)

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.normalized_to_metres(self.translate(batch['x']))[:, 0]

    def model_spec(self) -> ModelSpec:
        c = self.config
        return ModelSpec(method=self.name, input_kind='gray', input_names=('image',),
                         input_height=c.input_height, input_width=c.input_width,
                         input_channels=1, color_order='rgb', mean=(0.5,), std=(0.5,),
                         output_name='normalized_depth', output_kind='normalized_depth',
                         output_range=(-1.0, 1.0), near_is_bright=c.near_is_bright,
                         min_depth=c.min_depth, max_depth=c.max_depth,
                         extras={'translation': 'G1: gray -> depth',
                                 'one_sided': c.one_sided})
