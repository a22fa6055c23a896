"""Pix2Pix depth (Isola et al., CVPR 2017, as used by "Simulating DoF by Monocular Depth
Estimation"): a U-Net generator maps RGB to a depth map normalised to [-1, 1] (brighter =
closer), a 70x70 PatchGAN judges (RGB, depth) pairs, and the generator minimises
L_cGAN + lambda * L1 with lambda = 100 (eq. 4). Adam, lr 2e-4, beta1 = 0.5; one D step, then
one G step per iteration (section 3.3).

Differences from the paper, on purpose:
- Inference runs in eval mode (running BatchNorm statistics, no dropout). The paper keeps
  dropout and test-batch statistics at test time to get diverse outputs; a depth sensor
  must give the same depth for the same image.
- Ground truth may have holes (NYU raw, DIML, out-of-range pixels): L1 is taken over valid
  pixels only, and in the real pair shown to D the holes hold the (detached) generated
  depth, so D cannot tell real from fake by the holes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from depth_nodes.core.model_spec import RESIZE_MODES, ModelSpec
from training.losses.gan import BinaryCrossEntropyGANLoss
from training.losses.masked_l1 import MaskedL1Loss
from training.models.base import (DepthMethod, TrainContext, depth_targets, images_to_batch,
                                  linear_decay_factor, require_keys, rgb_image_spec)
from training.networks.patchgan import NORMS, PatchGANDiscriminator
from training.networks.unet import UNetGenerator

OUTPUT_RANGE = (-1.0, 1.0)   # tanh


@dataclass(frozen=True)
class Pix2PixConfig:
    """Paper settings except the widths: generator_channels 16 (the paper's 64 is in the
    dataset configs) keeps the default model small, so exporting it stays quick."""
    input_height: int = 256
    input_width: int = 256
    num_downs: int = 8                 # 256 -> 1x1 bottleneck
    generator_channels: int = 16       # the paper: 64
    discriminator_channels: int = 64
    discriminator_layers: int = 3      # 70x70 patches
    norm: str = 'batch'
    dropout: float = 0.5
    dropout_blocks: int = 3            # CD512-CD1024-CD1024
    l1_weight: float = 100.0           # lambda, eq. 4
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # The paper's code schedule ('linear'): lr for lr_constant_steps, then linearly to 0 over
    # lr_decay_steps; 0 decay steps = a constant lr.
    lr_constant_steps: int = 0
    lr_decay_steps: int = 0
    min_depth: float = 0.1             # metres mapped to output +1 (brightest)
    max_depth: float = 10.0            # metres mapped to output -1
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)   # pixels to [-1, 1], as in pix2pix
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    # How an image of another size fits the input (depth_nodes.core.model_spec RESIZE_MODES),
    # in training and, through the exported spec, in the node. 'letterbox' keeps the aspect
    # ratio, so a square model sees a 4:3 or 3:2 camera undistorted.
    resize_mode: str = 'stretch'

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode '{self.resize_mode}' not in {RESIZE_MODES}")
        multiple = 2 ** self.num_downs
        if self.input_height % multiple or self.input_width % multiple:
            raise ValueError(f'input {self.input_width}x{self.input_height} must be a multiple '
                             f'of 2**num_downs = {multiple} on both sides')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError('need 0 < min_depth < max_depth')
        if self.norm not in NORMS:
            raise ValueError(f"norm '{self.norm}' not in {NORMS}")
        if self.l1_weight < 0:
            raise ValueError('l1_weight must be >= 0')
        if self.lr_constant_steps < 0 or self.lr_decay_steps < 0:
            raise ValueError('lr_constant_steps and lr_decay_steps must be >= 0')


def depth_to_normalized(depth: torch.Tensor, min_depth: float, max_depth: float
                        ) -> torch.Tensor:
    """Metres -> [-1, 1], min_depth -> +1 (bright, near), max_depth -> -1 (dark, far).

    The inverse of depth_nodes.core.postprocess.output_to_metres for normalized_depth with
    near_is_bright and output_range (-1, 1), so training and the node agree.
    """
    lo, hi = OUTPUT_RANGE
    return hi - (depth - min_depth) / (max_depth - min_depth) * (hi - lo)


def normalized_to_depth(value: torch.Tensor, min_depth: float, max_depth: float
                        ) -> torch.Tensor:
    lo, hi = OUTPUT_RANGE
    return min_depth + (hi - value) / (hi - lo) * (max_depth - min_depth)


class Pix2PixMethod(DepthMethod):
    name = 'pix2pix'
    config_class = Pix2PixConfig
    sample_keys = ('rgb', 'depth')

    def __init__(self, config: Pix2PixConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        c = config
        self.generator = UNetGenerator(3, 1, c.generator_channels, c.num_downs, c.norm,
                                       c.dropout, c.dropout_blocks).to(context.device)
        # Conditional: D sees the RGB input concatenated with a depth map (3 + 1 channels).
        self.discriminator = PatchGANDiscriminator(4, c.discriminator_channels,
                                                   c.discriminator_layers,
                                                   c.norm).to(context.device)
        self.gan_loss = BinaryCrossEntropyGANLoss()
        self.l1_loss = MaskedL1Loss()
        self._optimizers = {
            'generator': torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=c.betas),
            'discriminator': torch.optim.Adam(self.discriminator.parameters(), lr=c.lr,
                                              betas=c.betas)}
        self.begin_stage(self.stages[0])

    def networks(self) -> dict[str, nn.Module]:
        return {'generator': self.generator, 'discriminator': self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        self._generator = self.context.parallel(self.generator)
        self._discriminator = self.context.parallel(self.discriminator)
        self.train()

    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        for sample in samples:
            require_keys(sample, self.sample_keys, self.name)
        c = self.config
        # log_depth + valid: the targets the trainer's validation reads (metres = exp).
        log_depth, valid = depth_targets([s['depth'] for s in samples], c.input_height,
                                         c.input_width, c.min_depth, c.max_depth,
                                         letterbox=c.resize_mode == 'letterbox')
        normalized = torch.where(valid, depth_to_normalized(log_depth.exp(), c.min_depth,
                                                            c.max_depth),
                                 torch.zeros_like(log_depth))
        return {'image': images_to_batch([s['rgb'] for s in samples], 'rgb8',
                                         self.model_spec()),
                'normalized_depth': normalized, 'log_depth': log_depth, 'valid': valid}

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        image, target, valid = batch['image'], batch['normalized_depth'], batch['valid']
        c = self.config
        lr = c.lr * linear_decay_factor(step, c.lr_constant_steps, c.lr_decay_steps)
        for optimizer in self._optimizers.values():
            for group in optimizer.param_groups:
                group['lr'] = lr
        fake = self._generator(image)

        # D step: minimise [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)] / 2 (eq. 1, halved).
        real = torch.where(valid, target, fake.detach())   # holes carry no real/fake signal
        d_real = self._discriminator(torch.cat([image, real], dim=1))
        d_fake = self._discriminator(torch.cat([image, fake.detach()], dim=1))
        loss_d = 0.5 * (self.gan_loss(d_real, True) + self.gan_loss(d_fake, False))
        self._optimizers['discriminator'].zero_grad(set_to_none=True)
        loss_d.backward()
        self._optimizers['discriminator'].step()

        # G step: minimise BCE(D(x, G(x)), 1) + lambda * ||y - G(x)||_1 (eq. 4). D runs
        # unwrapped and frozen: gradients flow through it to G, none into its weights.
        self.discriminator.requires_grad_(False)
        try:
            loss_gan = self.gan_loss(self.discriminator(torch.cat([image, fake], dim=1)), True)
            loss_l1 = self.l1_loss(fake, target, valid)
            loss_g = loss_gan + self.config.l1_weight * loss_l1
            self._optimizers['generator'].zero_grad(set_to_none=True)
            loss_g.backward()
            self._optimizers['generator'].step()
        finally:
            self.discriminator.requires_grad_(True)
        return {'discriminator_loss': float(loss_d.detach()),
                'discriminator_real': float(torch.sigmoid(d_real.detach()).mean()),
                'discriminator_fake': float(torch.sigmoid(d_fake.detach()).mean()),
                'generator_gan_loss': float(loss_gan.detach()),
                'generator_l1_loss': float(loss_l1.detach()), 'lr': lr}

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.generator.training
        self.generator.eval()
        try:
            c = self.config
            return normalized_to_depth(self.generator(batch['image']), c.min_depth,
                                       c.max_depth)[:, 0]
        finally:
            self.generator.train(was_training)

    def model_spec(self) -> ModelSpec:
        c = self.config
        return rgb_image_spec(self.name, c, output_name='normalized_depth',
                              output_kind='normalized_depth', output_range=OUTPUT_RANGE,
                              near_is_bright=True, resize_mode=c.resize_mode,
                              extras={'generator': 'unet', 'num_downs': c.num_downs,
                                      'generator_channels': c.generator_channels})

    def export_module(self) -> nn.Module:
        return self.generator
