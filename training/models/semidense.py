"""Makarov et al., "Depth Map Interpolation using Perceptual Loss": semi-dense (LSD-SLAM) or
sparse (LiDAR-like) depth + its mask [+ intensity] -> dense depth, trained with a VGG16
perceptual loss plus alpha * total variation, Adam at 1e-4 then 1e-5.

Training masks as in the paper: the pixels a semi-dense SLAM would reconstruct (adaptive
threshold of the intensity gradient, 10-15 % of the pixels), and uniform random samples at
a given density for LiDAR-like input; ``mask_kind`` picks one or mixes both. The network
works on depth divided by a per-frame scale (depth_nodes.core.semidense.semidense_to_tensor,
the node's own pre-processing), so one model serves rooms, streets and scale-free SLAM maps.

Perceptual loss needs ImageNet VGG16 weights, which this project cannot download: give a
torchvision-format file in ``vgg16_weights``. Without one, training uses masked L1 + alpha *
TV instead and says so in the log, the model spec (extras.loss) and the checkpoints' config.
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
from depth_nodes.core.semidense import (DEFAULT_SCALE_PERCENTILE, DEPTH_NORMALIZATION,
                                        SEMIDENSE_CHANNELS, random_sample_mask,
                                        semidense_mask_from_gradient, semidense_to_tensor)
from training.losses.total_variation import TotalVariationLoss
from training.models.base import DepthMethod, TrainContext, require_keys, resize_depth
from training.networks.semidense_net import SemiDenseArchitecture, SemiDenseNet

MASK_KINDS = ('gradient', 'random', 'mixed')
LOSS_PERCEPTUAL = 'perceptual+tv'
LOSS_FALLBACK = 'l1+tv (no VGG16 weights)'
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SemiDenseConfig:
    """Defaults: the paper's building blocks at a size that exports in seconds; the dataset
    configs (training/configs/semidense_*.yaml) set their resolutions."""
    input_height: int = 240
    input_width: int = 320
    use_intensity: bool = False         # intensity image as a third input channel
    stem_channels: int = 16
    channels: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    dropout: float = 0.5
    # Training masks: 'gradient' (LSD-SLAM-like), 'random' (LiDAR-like) or 'mixed'.
    mask_kind: str = 'mixed'
    gradient_density: tuple[float, float] = (0.10, 0.15)   # drawn uniformly per sample
    random_density: tuple[float, float] = (0.01, 0.10)
    gradient_probability: float = 0.5                      # 'mixed': share of gradient masks
    depth_noise: float = 0.0            # relative std of multiplicative noise on the samples
    scale_percentile: float = DEFAULT_SCALE_PERCENTILE
    min_depth: float = 0.1              # metres: ground truth outside is masked, and the
    max_depth: float = 100.0            # model spec's valid output range
    # Loss: perceptual (VGG16 features up to perceptual_layer) + tv_weight * TV.
    vgg16_weights: str = ''             # torchvision vgg16 state dict file; '' = L1 fallback
    perceptual_layer: str = 'relu2_2'
    tv_weight: float = 0.01             # alpha
    lr: float = 1e-4                    # stage high_lr (the paper's first 40k iterations)
    lr_decayed: float = 1e-5            # stage low_lr (the last 30k)
    adam_betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.mask_kind not in MASK_KINDS:
            raise ValueError(f"mask_kind '{self.mask_kind}' not in {MASK_KINDS}")
        if self.input_height % 2 or self.input_width % 2 or min(self.input_height,
                                                                self.input_width) < 2:
            raise ValueError(f'input size must be even (one 2x downsampling), got '
                             f'{self.input_width}x{self.input_height}')
        for name in ('gradient_density', 'random_density'):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi < 1.0:
                raise ValueError(f'{name} must be (low, high) with 0 < low <= high < 1')
        if not 0.0 <= self.gradient_probability <= 1.0:
            raise ValueError('gradient_probability must be in [0, 1]')
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError('need 0 < min_depth < max_depth')
        if not 0 < self.scale_percentile <= 100:
            raise ValueError('scale_percentile must be in (0, 100]')

    @property
    def architecture(self) -> SemiDenseArchitecture:
        return SemiDenseArchitecture(3 if self.use_intensity else 2, self.stem_channels,
                                     self.channels, tuple(self.dilations), self.dropout)


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
        self.perceptual_loss = None
        if config.vgg16_weights:
            from training.losses.perceptual import PerceptualLoss
            from training.networks.vgg16 import load_vgg16_features
            features = load_vgg16_features(config.vgg16_weights, config.perceptual_layer)
            self.perceptual_loss = PerceptualLoss(features).to(context.device)
            self.loss_name = LOSS_PERCEPTUAL
        else:
            self.loss_name = LOSS_FALLBACK
            log.warning('semidense: no VGG16 weights (method.options.vgg16_weights), so no '
                        'perceptual loss; training with masked L1 + %g * TV instead',
                        config.tv_weight)
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
        """The training mask of one sample: gradient (SLAM-like) or uniform (LiDAR-like),
        restricted to pixels with ground truth."""
        c = self.config
        gradient = c.mask_kind == 'gradient' or (
            c.mask_kind == 'mixed' and rng.random() < c.gradient_probability)
        if gradient:
            mask = semidense_mask_from_gradient(gray, float(rng.uniform(*c.gradient_density)))
        else:
            mask = random_sample_mask(gray.shape, float(rng.uniform(*c.random_density)), rng)
        mask &= known
        if not mask.any():   # a textureless image: keep one known pixel so a scale exists
            v, u = np.nonzero(known)
            pick = int(rng.integers(v.size))
            mask[v[pick], u[pick]] = True
        return mask

    def make_batch(self, samples: Sequence[Mapping[str, Any]],
                   rng: np.random.Generator | None = None) -> dict[str, torch.Tensor]:
        """Samples -> network inputs (the node's pre-processing) and targets at the model
        size. Masks are drawn from ``rng`` (default: numpy's global generator, which the
        trainer seeds and checkpoints)."""
        c = self.config
        spec = self.model_spec()
        rng = rng if rng is not None else np.random.default_rng(np.random.randint(2 ** 31))
        inputs, targets, scales = [], [], []
        for sample in samples:
            require_keys(sample, self.sample_keys, self.name)
            depth = resize_depth(sample['depth'], c.input_height, c.input_width)
            with np.errstate(invalid='ignore'):
                known = np.isfinite(depth) & (depth >= c.min_depth) & (depth <= c.max_depth)
            if not known.any():
                raise ValueError(f"sample '{sample.get('name', '?')}' has no ground truth in "
                                 f'[{c.min_depth}, {c.max_depth}] m')
            rgb = resize_image(sample['rgb'], c.input_height, c.input_width)
            gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            mask = self.draw_mask(gray, known, rng)
            sparse = np.where(mask, depth, np.float32(np.nan)).astype(np.float32)
            if c.depth_noise > 0:
                noise = rng.normal(1.0, c.depth_noise, sparse.shape).astype(np.float32)
                sparse = np.where(mask, sparse * np.maximum(noise, 0.1), sparse)
            tensor, scale = semidense_to_tensor(sparse, spec, gray)
            inputs.append(tensor)
            targets.append(np.where(known, depth, np.float32(np.nan)))
            scales.append(scale)
        target = np.stack(targets)[:, None]
        valid = np.isfinite(target)
        log_depth = np.zeros_like(target)
        log_depth[valid] = np.log(target[valid])
        return {'input': torch.from_numpy(np.concatenate(inputs)),
                'scale': torch.tensor(scales, dtype=torch.float32),
                'log_depth': torch.from_numpy(log_depth), 'valid': torch.from_numpy(valid)}

    # --- training and inference ------------------------------------------------------
    def loss_terms(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
        """Loss on normalised depth (depth / frame scale): the paper's perceptual + alpha TV,
        or the fallback masked L1 + alpha TV."""
        terms = {'tv_loss': self.tv_loss(pred)}
        if self.perceptual_loss is not None:
            terms['perceptual_loss'] = self.perceptual_loss(pred, target, valid)
            data = terms['perceptual_loss']
        else:
            # 1/n sum_i |y_i - y*_i| over the n pixels with ground truth
            diff = torch.where(valid, (pred - target).abs(), torch.zeros_like(pred))
            terms['l1_loss'] = diff.sum() / valid.sum().clamp(min=1)
            data = terms['l1_loss']
        # L = L_data + alpha * TV(y)
        terms['loss'] = data + self.config.tv_weight * terms['tv_loss']
        return terms

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        scale = batch['scale'].view(-1, 1, 1, 1)
        valid = batch['valid']
        target = torch.where(valid, batch['log_depth'].exp() / scale,
                             torch.zeros_like(batch['log_depth']))
        pred = self._trained(batch['input'])
        terms = self.loss_terms(pred, target, valid)
        self.optimizer.zero_grad(set_to_none=True)
        terms['loss'].backward()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.network.training
        self.network.eval()
        try:
            return self.network(batch['input'])[:, 0] * batch['scale'].view(-1, 1, 1)
        finally:
            self.network.train(was_training)

    def model_spec(self) -> ModelSpec:
        c = self.config
        channels = 3 if c.use_intensity else 2
        return ModelSpec(method=self.name, input_kind='semidense', input_names=('semidense',),
                         input_height=c.input_height, input_width=c.input_width,
                         input_channels=channels, mean=(0.0,) * channels,
                         std=(1.0,) * channels, output_name='normalized_depth',
                         output_kind='metric_depth', min_depth=c.min_depth,
                         max_depth=c.max_depth,
                         extras={'channels': list(SEMIDENSE_CHANNELS[:channels]),
                                 'depth_normalization': DEPTH_NORMALIZATION,
                                 'scale_percentile': c.scale_percentile,
                                 'loss': self.loss_name})

    def export_module(self) -> nn.Module:
        return self.network
