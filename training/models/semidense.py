"""Makarov et al., "Depth Map Interpolation using Perceptual Loss": semi-dense (LSD-SLAM) or
sparse (LiDAR-like) depth + its mask [+ intensity] -> dense depth, here as a learnt
correction of the nearest-neighbour fill in scale-free log depth
(training/networks/semidense_net.py), Adam at 1e-4 then 1e-5 as in the paper.

Training inputs: semi-dense depth recorded with the frame (sample key ``semidense_depth``,
e.g. a bag's ``semidense`` topic beside a dense target), else masks drawn over the dense
depth: the pixels a semi-dense SLAM would reconstruct (adaptive threshold of the
intensity gradient, as the paper simulates LSD-SLAM), uniform random samples, and LiDAR-like
scan lines; ``mask_kind`` picks one or mixes all three. Batches are made with the node's own
pre-processing (depth_nodes.core.semidense.semidense_fill_tensor) on the whole image and then
cropped (``crop_height`` x ``crop_width``), so the crops see the fill, the distances and the
gaps between samples that the node sees at the full resolution.

Loss, in log depth on the pixels that were not given (known pixels pass through exactly):

    L = 1/n sum_i |log d_i - log d*_i|  +  beta L_grad  +  alpha TV(log d - c)

L_grad is multi-scale gradient matching (training/losses/gradient_matching.py), which takes
the place of the paper's VGG16 perceptual loss: no ImageNet weights can be downloaded here.
With a torchvision-format file in ``vgg16_weights`` the perceptual loss on depth relative to
the frame's geometric mean replaces the L1 term, as in the paper. The loss used is recorded
in the model spec (extras.loss) and the checkpoints' config.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import resize_image
from depth_nodes.core.semidense import (FILL_CHANNELS, FILL_NORMALIZATION, random_sample_mask,
                                        semidense_fill_tensor, semidense_mask_from_gradient)
from training.losses.gradient_matching import GradientMatchingLoss
from training.losses.total_variation import TotalVariationLoss
from training.models.base import DepthMethod, TrainContext, require_keys, resize_depth
from training.networks.semidense_net import (SemiDenseArchitecture, SemiDenseNet,
                                             frame_log_mean)

MASK_KINDS = ('gradient', 'random', 'scanlines', 'mixed')
BASE_FILLS = ('nearest', 'blend')
log = logging.getLogger(__name__)


def scanline_mask(shape: tuple[int, int], lines: int, step: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """(H, W) bool mask of a LiDAR-like scan: ``lines`` gently curved rows over a random band
    of the image, a sample every ``step`` pixels along each (random phase)."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    top, bottom = sorted(rng.uniform(0.0, 1.0, 2) * height)
    bottom = max(bottom, top + 0.3 * height)
    u = np.arange(rng.integers(step), width, step)
    bend = rng.uniform(-0.15, 0.15) * height * ((u - width / 2) / width) ** 2 * 4
    for row in np.linspace(top, bottom, lines):
        v = np.round(row + bend).astype(int)
        inside = (v >= 0) & (v < height)
        mask[v[inside], u[inside]] = True
    return mask


@dataclass(frozen=True)
class SemiDenseConfig:
    """Defaults: the paper's building blocks at a size that exports in seconds; the dataset
    configs (training/configs/semidense_*.yaml) set their resolutions."""
    input_height: int = 240
    input_width: int = 320
    use_intensity: bool = True          # intensity image as the fourth input channel
    # The first guess the network corrects: 'nearest' (the nearest-neighbour fill) or 'blend'
    # (core.semidense.neighbourhood_fill near samples, linear_fill far from them: the
    # fifth and sixth input channels, after the intensity; the blend weight learnt).
    base_fill: str = 'nearest'
    stem_channels: int = 16
    channels: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dropout: float = 0.5
    activation: str = 'elu'             # the paper's ELU, or 'relu' (faster on the CPU)
    # Training crops of the model-size image (0 = the whole image).
    crop_height: int = 0
    crop_width: int = 0
    # Training masks: 'gradient' (LSD-SLAM-like), 'random', 'scanlines' (LiDAR) or 'mixed'.
    mask_kind: str = 'mixed'
    gradient_density: tuple[float, float] = (0.10, 0.15)   # drawn log-uniformly per sample
    random_density: tuple[float, float] = (0.01, 0.10)
    scanlines: tuple[int, int] = (16, 64)                  # lines per scan
    mixed_weights: tuple[float, float, float] = (0.6, 0.2, 0.2)   # gradient, random, lines
    # Older configs' share of gradient masks in 'mixed' (the rest uniform, no scan lines):
    # when set, it replaces mixed_weights by (p, 1 - p, 0).
    gradient_probability: float | None = None
    depth_noise: float = 0.0            # relative std of multiplicative noise on the samples
    min_depth: float = 0.1              # metres: ground truth outside is masked, and the
    max_depth: float = 100.0            # model spec's valid output range
    # Loss: log L1 (or perceptual) + grad_weight * gradient matching + tv_weight * TV.
    grad_weight: float = 0.5            # beta
    grad_scales: int = 4
    vgg16_weights: str = ''             # torchvision vgg16 state dict file; '' = log L1
    perceptual_layer: str = 'relu2_2'
    tv_weight: float = 0.0              # alpha
    lr: float = 1e-4                    # stage high_lr (the paper's first 40k iterations)
    lr_decayed: float = 1e-5            # stage low_lr (the last 30k)
    adam_betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.base_fill not in BASE_FILLS:
            raise ValueError(f"base_fill '{self.base_fill}' not in {BASE_FILLS}")
        if self.base_fill != 'nearest' and not self.use_intensity:
            raise ValueError(f"base_fill '{self.base_fill}' comes after the intensity channel: "
                             'it needs use_intensity: true')
        if self.mask_kind not in MASK_KINDS:
            raise ValueError(f"mask_kind '{self.mask_kind}' not in {MASK_KINDS}")
        if self.input_height % 2 or self.input_width % 2 or min(self.input_height,
                                                                self.input_width) < 2:
            raise ValueError(f'input size must be even (one 2x downsampling), got '
                             f'{self.input_width}x{self.input_height}')
        if self.crop_height % 2 or self.crop_width % 2 or self.crop_height > \
                self.input_height or self.crop_width > self.input_width:
            raise ValueError('crop size must be even and inside the input size')
        for name in ('gradient_density', 'random_density'):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi < 1.0:
                raise ValueError(f'{name} must be (low, high) with 0 < low <= high < 1')
        if self.gradient_probability is not None:
            if not 0.0 <= self.gradient_probability <= 1.0:
                raise ValueError('gradient_probability must be in [0, 1]')
            object.__setattr__(self, 'mixed_weights', (self.gradient_probability,
                                                       1.0 - self.gradient_probability, 0.0))
        if len(self.mixed_weights) != 3 or min(self.mixed_weights) < 0 or \
                sum(self.mixed_weights) <= 0:
            raise ValueError('mixed_weights: three non-negative weights, not all 0')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError('need 0 < min_depth < max_depth')

    @property
    def input_channels(self) -> int:
        """FILL_CHANNELS[:n]: nearest depth, mask, distance [, intensity [, neighbourhood,
        linear]]."""
        if self.base_fill == 'blend':
            return 6
        return 4 if self.use_intensity else 3

    @property
    def architecture(self) -> SemiDenseArchitecture:
        return SemiDenseArchitecture(self.input_channels, self.stem_channels,
                                     self.channels, tuple(self.dilations), self.dropout,
                                     self.activation)


class SemiDenseMethod(DepthMethod):
    name = 'semidense'
    config_class = SemiDenseConfig
    stages = ('high_lr', 'low_lr')
    sample_keys = ('rgb', 'depth')

    def __init__(self, config: SemiDenseConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        self.network = SemiDenseNet(config.architecture).to(context.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.lr,
                                          betas=config.adam_betas)
        self.tv_loss = TotalVariationLoss()
        self.gradient_loss = GradientMatchingLoss(config.grad_scales)
        self.perceptual_loss = None
        data = 'log_l1'
        if config.vgg16_weights:
            from training.losses.perceptual import PerceptualLoss
            from training.networks.vgg16 import load_vgg16_features
            features = load_vgg16_features(config.vgg16_weights, config.perceptual_layer)
            self.perceptual_loss = PerceptualLoss(features).to(context.device)
            data = 'perceptual'
        self.loss_name = '+'.join([data] + [name for name, w in (
            ('gradient_matching', config.grad_weight), ('tv', config.tv_weight)) if w > 0])
        self._trained: nn.Module = self.network
        self.begin_stage(self.stages[0])

    def networks(self) -> dict[str, nn.Module]:
        return {'network': self.network}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'adam': self.optimizer}

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        lr = self.config.lr if stage == 'high_lr' else self.config.lr_decayed
        for group in self.optimizer.param_groups:
            group['lr'] = lr
        self._trained = self.context.parallel(self.network)
        self.train()

    # --- data ------------------------------------------------------------------------
    def draw_mask(self, gray: np.ndarray, known: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
        """The training mask of one sample: gradient (SLAM-like), uniform or scan lines
        (LiDAR-like), restricted to pixels with ground truth. Densities are drawn
        log-uniformly, so 1 % inputs are trained as often as 10 % ones."""
        c = self.config
        kind = c.mask_kind
        if kind == 'mixed':
            weights = np.asarray(c.mixed_weights, dtype=float)
            kind = MASK_KINDS[int(rng.choice(3, p=weights / weights.sum()))]
        if kind == 'gradient':
            density = float(np.exp(rng.uniform(*np.log(c.gradient_density))))
            mask = semidense_mask_from_gradient(gray, density)
        elif kind == 'random':
            density = float(np.exp(rng.uniform(*np.log(c.random_density))))
            mask = random_sample_mask(gray.shape, density, rng)
        else:
            mask = scanline_mask(gray.shape, int(rng.integers(c.scanlines[0],
                                                              c.scanlines[1] + 1)),
                                 int(rng.integers(1, 5)), rng)
        mask &= known
        if not mask.any():   # a textureless image: keep one known pixel so a scale exists
            v, u = np.nonzero(known)
            pick = int(rng.integers(v.size))
            mask[v[pick], u[pick]] = True
        return mask

    def make_batch(self, samples: Sequence[Mapping[str, Any]],
                   rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """Samples -> network inputs (the node's pre-processing at the model size, then
        cropped) and log-depth targets. The sparse input is the sample's recorded semi-dense
        depth (``semidense_depth``) when it has one, else a mask drawn over its dense depth.
        Masks and crops are drawn from ``rng`` (default: numpy's global generator, which the
        trainer seeds and checkpoints)."""
        c = self.config
        spec = self.model_spec()
        rng = rng if rng is not None else np.random.default_rng(np.random.randint(2 ** 31))
        crop_h, crop_w = c.crop_height or c.input_height, c.crop_width or c.input_width
        inputs, targets = [], []
        for sample in samples:
            given = sample.get('semidense_depth')
            require_keys(sample, ('depth',) if given is not None and not c.use_intensity
                         else self.sample_keys, self.name)
            depth = resize_depth(sample['depth'], c.input_height, c.input_width)
            with np.errstate(invalid='ignore'):
                known = np.isfinite(depth) & (depth >= c.min_depth) & (depth <= c.max_depth)
            if not known.any():
                raise ValueError(f"sample '{sample.get('name', '?')}' has no ground truth in "
                                 f'[{c.min_depth}, {c.max_depth}] m')
            gray = None
            if sample.get('rgb') is not None:
                rgb = resize_image(sample['rgb'], c.input_height, c.input_width)
                gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            if given is None:
                mask = self.draw_mask(gray, known, rng)
                sparse = np.where(mask, depth, np.float32(np.nan)).astype(np.float32)
                if c.depth_noise > 0:
                    noise = rng.normal(1.0, c.depth_noise, sparse.shape).astype(np.float32)
                    sparse = np.where(mask, sparse * np.maximum(noise, 0.1), sparse)
            else:
                # As recorded, at its own size: the fill moves it to the model grid as the
                # node does (resample_sparse_depth).
                sparse = given
            try:
                tensor = semidense_fill_tensor(sparse, spec, gray)
            except ValueError as exc:
                raise ValueError(f"sample '{sample.get('name', '?')}': {exc}") from None
            top = int(rng.integers(c.input_height - crop_h + 1))
            left = int(rng.integers(c.input_width - crop_w + 1))
            window = np.s_[top:top + crop_h, left:left + crop_w]
            inputs.append(tensor[(0, slice(None)) + window])
            targets.append(np.where(known, depth, np.float32(np.nan))[window])
        target = np.stack(targets)[:, None]
        valid = np.isfinite(target)
        log_depth = np.zeros_like(target)
        log_depth[valid] = np.log(target[valid])
        return {'input': torch.from_numpy(np.stack(inputs)),
                'log_depth': torch.from_numpy(log_depth), 'valid': torch.from_numpy(valid)}

    # --- training and inference ------------------------------------------------------
    def loss_terms(self, relative: torch.Tensor, log_target: torch.Tensor,
                   valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss on log depth relative to the frame's geometric mean (``relative`` =
        log d - c, ``log_target`` = log d* - c) over the ``valid`` pixels (the unknown ones
        with ground truth)."""
        c = self.config
        terms = {}
        if self.perceptual_loss is not None:
            terms['perceptual_loss'] = self.perceptual_loss(relative.exp(), log_target.exp(),
                                                            valid)
            data = terms['perceptual_loss']
        else:
            # 1/n sum_i |log d_i - log d*_i| over the n pixels with ground truth
            diff = torch.where(valid, (relative - log_target).abs(),
                               torch.zeros_like(relative))
            terms['log_l1_loss'] = diff.sum() / valid.sum().clamp(min=1)
            data = terms['log_l1_loss']
        loss = data
        if c.grad_weight > 0:
            terms['gradient_loss'] = self.gradient_loss(relative, log_target, valid)
            loss = loss + c.grad_weight * terms['gradient_loss']
        if c.tv_weight > 0:
            terms['tv_loss'] = self.tv_loss(relative)
            loss = loss + c.tv_weight * terms['tv_loss']
        # L = L_data + beta L_grad + alpha TV
        terms['loss'] = loss
        return terms

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        known = batch['input'][:, 1:2] > 0.5
        valid = batch['valid'] & ~known
        c = frame_log_mean(batch['input'])
        relative = torch.log(self._trained(batch['input'])) - c
        log_target = torch.where(batch['valid'], batch['log_depth'] - c,
                                 torch.zeros_like(relative))
        terms = self.loss_terms(relative, log_target, valid)
        self.optimizer.zero_grad(set_to_none=True)
        terms['loss'].backward()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.network.training
        self.network.eval()
        try:
            return self.network(batch['input'])[:, 0]
        finally:
            self.network.train(was_training)

    def model_spec(self) -> ModelSpec:
        c = self.config
        channels = c.input_channels
        return ModelSpec(method=self.name, input_kind='semidense', input_names=('semidense',),
                         input_height=c.input_height, input_width=c.input_width,
                         input_channels=channels, mean=(0.0,) * channels,
                         std=(1.0,) * channels, output_name='depth',
                         output_kind='metric_depth', min_depth=c.min_depth,
                         max_depth=c.max_depth,
                         extras={'channels': list(FILL_CHANNELS[:channels]),
                                 'depth_normalization': FILL_NORMALIZATION,
                                 'loss': self.loss_name})

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        """A valid input (positive depths, a 0/1 mask, distances >= 0) of the spec's size."""
        spec = self.model_spec()
        generator = torch.Generator().manual_seed(0)
        shape = (1, spec.input_channels, spec.input_height, spec.input_width)
        x = torch.rand(shape, generator=generator)
        x[:, 0] = 0.5 + 10 * x[:, 0]
        x[:, 1] = (x[:, 1] < 0.1).float()
        x[:, 2] = 20 * x[:, 2]
        for fill in range(4, spec.input_channels):
            x[:, fill] = 0.5 + 10 * x[:, fill]
        return (x,)

    def export_module(self) -> nn.Module:
        return self.network
