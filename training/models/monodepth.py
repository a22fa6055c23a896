"""Shen et al.'s Depth Prediction Network trained without ground truth from stereo pairs
(``method:=monodepth``): the network sees the left image only and predicts left and right
disparities at four scales; each view is rebuilt from the other by warping, and the
appearance, smoothness and left-right consistency terms (training/losses/
stereo_reconstruction.py, eq. 1-5) train it. Adam, lr 5e-4 in the paper.

At run time the model is monocular: its output is the left disparity as a fraction of the
width, turned into metres by depth = (fx / W) B / d with the camera's fx (camera_info) or
the training rig's ``focal_fraction``, and the training rig's baseline (both in the spec).

Augmentation (``training_dataset``), each with probability 0.5 as in the paper: horizontal
flip, which swaps the views (new left = mirrored right, training/datasets/augment.py), and
colour jitter with one draw for both views. The paper's rotation is not applied: rolling
both views of a rectified pair moves a correspondence of disparity d by d sin(theta)
vertically, which the horizontal warping cannot explain (augment.rotate refuses pairs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from depth_nodes.core.model_spec import ModelSpec
from training.datasets.augment import color_jitter, horizontal_flip, random_crop
from training.losses.stereo_reconstruction import StereoReconstructionLoss
from training.models.base import (DepthMethod, TrainContext, depth_targets, images_to_batch,
                                  require_keys, rgb_image_spec)
from training.networks.dpn import DepthPredictionNetwork, DpnArchitecture, LeftDisparityNetwork

# Normalisation of the network input (monodepth2's): x = (pixel / 255 - 0.45) / 0.225.
DPN_MEAN = (0.45, 0.45, 0.45)
DPN_STD = (0.225, 0.225, 0.225)
# Sample keys of other methods, dropped before augmenting training samples: the view swap of
# a flip refuses NIR registered to the left view only and would recompute semi-dense masks.
# Depth / disparity stay: the flip needs one of them to move the ground truth with the views.
UNUSED_TRAINING_KEYS = ('semidense_mask', 'nir', 'right_nir')


@dataclass(frozen=True)
class MonodepthConfig:
    """Defaults: a small network that exports in seconds (the TensorRT check exports every
    method with its defaults); the paper's 512x256, full-width settings are in
    training/configs/monodepth_kitti.yaml."""
    input_height: int = 128
    input_width: int = 256
    width_scale: float = 0.25
    blocks_per_group: int = 2
    max_disparity: float = 0.3          # fraction of the width
    initial_disparity: float = 0.01     # what the heads output before training (dpn.py)
    ssim_alpha: float = 0.85            # eq. 2
    appearance_weight: float = 1.0      # eq. 1 weights
    smoothness_weight: float = 0.1
    lr_consistency_weight: float = 1.0
    occlusion_mask: bool = False        # eq. 2 only where the other view sees the pixel
    learning_rate: float = 5e-4         # Adam
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_halving_steps: tuple[int, ...] = ()   # iterations after which the lr halves
    flip_probability: float = 0.5
    color_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    gamma: tuple[float, float] = (0.8, 1.2)
    crop: tuple[int, int] | None = None  # (height, width) random crop of training samples
    # The training rig, written into the model spec: the baseline (m) and fx / width, which
    # turn the predicted disparity into metres when the node has no camera_info.
    rig_baseline: float = 0.54
    rig_focal_fraction: float = 0.71407  # synthetic outdoor camera: 70 deg horizontal FOV
    min_depth: float = 0.1               # metres: validation range and the spec's range
    max_depth: float = 80.0
    mean: tuple[float, ...] = DPN_MEAN
    std: tuple[float, ...] = DPN_STD

    def __post_init__(self) -> None:
        if self.rig_baseline <= 0 or self.rig_focal_fraction <= 0:
            raise ValueError('rig_baseline and rig_focal_fraction must be positive')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError('need 0 < min_depth < max_depth')
        for name in ('flip_probability', 'color_probability'):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f'{name} must be in [0, 1]')
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
            raise ValueError(f'crop must be (height, width), got {self.crop}')
        self.architecture   # validates the network size

    @property
    def architecture(self) -> DpnArchitecture:
        return DpnArchitecture(self.input_height, self.input_width, self.width_scale,
                               self.blocks_per_group, self.max_disparity,
                               initial_disparity=self.initial_disparity)


class StereoTrainingSamples:
    """Training samples with the paper's augmentation (module docstring). Random draws
    come from numpy's global generator, which the trainer seeds per process and DataLoader
    worker and saves in checkpoints, so runs are reproducible."""

    def __init__(self, dataset: Sequence, config: MonodepthConfig):
        self.dataset, self.config = dataset, config

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        require_keys(sample, ('rgb', 'right'), MonodepthMethod.name)
        c = self.config
        sample = {k: v for k, v in sample.items() if k not in UNUSED_TRAINING_KEYS}
        rng = np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
        if c.crop is not None:
            sample = random_crop(sample, rng, *c.crop)
        if rng.random() < c.flip_probability:
            sample = horizontal_flip(sample)
        if rng.random() < c.color_probability:
            sample = color_jitter(sample, rng, c.brightness, c.contrast, c.saturation, c.gamma)
        return sample


class MonodepthMethod(DepthMethod):
    name = 'monodepth'
    config_class = MonodepthConfig
    stages = ('main',)
    sample_keys = ('rgb', 'right')

    def __init__(self, config: MonodepthConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        self.network = DepthPredictionNetwork(config.architecture).to(context.device)
        self.loss = StereoReconstructionLoss(config.ssim_alpha, config.appearance_weight,
                                             config.smoothness_weight,
                                             config.lr_consistency_weight,
                                             config.occlusion_mask)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate,
                                          betas=config.adam_betas)
        self._trained: nn.Module = self.network
        self._image_mean = torch.tensor(config.mean).view(1, 3, 1, 1)
        self._image_std = torch.tensor(config.std).view(1, 3, 1, 1)
        self.begin_stage(self.stages[0])

    def networks(self) -> dict[str, nn.Module]:
        return {'dpn': self.network}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'dpn': self.optimizer}

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        self._trained = self.context.parallel(self.network)
        self.train()

    def training_dataset(self, dataset: Sequence, seed: int) -> Sequence:
        return StereoTrainingSamples(dataset, self.config)

    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """left / right network inputs, the metres-per-disparity factor (fx / W) B of each
        sample, and ground truth at the input size when the samples have it (validation)."""
        for sample in samples:
            require_keys(sample, ('rgb',), self.name)
        c = self.config
        spec = self.model_spec()
        batch = {'image': images_to_batch([s['rgb'] for s in samples], 'rgb8', spec)}
        if all(s.get('right') is not None for s in samples):
            batch['right'] = images_to_batch([s['right'] for s in samples], 'rgb8', spec)
        batch['depth_scale'] = torch.tensor([self._depth_scale(s) for s in samples],
                                            dtype=torch.float32)
        depths = [s['depth'] if s.get('depth') is not None else
                  np.full((c.input_height, c.input_width), np.nan, np.float32) for s in samples]
        batch['log_depth'], batch['valid'] = depth_targets(
            depths, c.input_height, c.input_width, c.min_depth, c.max_depth)
        return batch

    def _depth_scale(self, sample: Mapping[str, Any]) -> float:
        """(fx / W) B: depth = this / disparity fraction. From the sample's camera and
        baseline; the configured rig when the sample has none."""
        camera, baseline = sample.get('camera'), sample.get('baseline')
        focal_fraction = camera.fx / camera.width if camera is not None else \
            self.config.rig_focal_fraction
        return float(focal_fraction * (baseline or self.config.rig_baseline))

    def unit_images(self, normalised: torch.Tensor) -> torch.Tensor:
        """Network inputs back to [0, 1] pixels: the images the photometric loss compares."""
        mean = self._image_mean.to(normalised.device)
        std = self._image_std.to(normalised.device)
        return normalised * std + mean

    def learning_rate(self, step: int) -> float:
        halvings = sum(step >= s for s in self.config.lr_halving_steps)
        return self.config.learning_rate * 0.5 ** halvings

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        if 'right' not in batch:
            raise KeyError('monodepth trains on stereo pairs: the batch has no right image')
        for group in self.optimizer.param_groups:
            group['lr'] = self.learning_rate(step)
        disparities = self._trained(batch['image'])
        loss, terms = self.loss(disparities, self.unit_images(batch['image']),
                                self.unit_images(batch['right']))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        logs = {'stereo_loss': float(loss.detach())}
        logs.update({f'{k}_loss': float(v) for k, v in terms.items()})
        logs['mean_disparity'] = float(disparities[0][:, 0].detach().mean())
        return logs

    @torch.no_grad()
    def predict_disparity(self, image: torch.Tensor) -> torch.Tensor:
        """(B, H, W) left disparity, fraction of the width, in eval mode."""
        was_training = self.network.training
        self.network.eval()
        try:
            return self.export_module()(image)[:, 0]
        finally:
            self.network.train(was_training)

    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        disparity = self.predict_disparity(batch['image'])
        scale = batch['depth_scale'].to(disparity.device).view(-1, 1, 1)
        return scale / disparity.clamp(min=1e-6)

    def model_spec(self) -> ModelSpec:
        c = self.config
        return rgb_image_spec(self.name, c, output_name='disparity',
                              output_kind='disparity_fraction', baseline=c.rig_baseline,
                              focal_fraction=c.rig_focal_fraction,
                              extras={'max_disparity': c.max_disparity,
                                      'width_scale': c.width_scale})

    def export_module(self) -> nn.Module:
        return LeftDisparityNetwork(self.network)
