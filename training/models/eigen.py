"""Eigen et al. (NIPS 2014): coarse + fine log-depth networks trained with the
scale-invariant loss, the coarse stack first, then the fine stack with the coarse one fixed
("when training the fine network, we do not backpropagate through the coarse one")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from depth_nodes.core.model_spec import RESIZE_MODES, ModelSpec
from training.losses.scale_invariant import ScaleInvariantLoss
from training.models.base import (DepthMethod, TrainContext, depth_targets, images_to_batch,
                                  letterbox_depth, require_keys, rgb_image_spec)
from training.networks.eigen import (CoarseNetwork, EigenArchitecture, EigenDepthNetwork,
                                     FineNetwork)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPTIMIZERS = ('sgd', 'adam')


@dataclass(frozen=True)
class EigenConfig:
    """Defaults are the paper's NYU Depth settings (section 3.4 / 4.1)."""
    input_height: int = 228
    input_width: int = 304
    width_scale: float = 1.0
    fc_units: int = 4096
    dropout: float = 0.5
    initial_depth: float = 2.5           # metres, starting output (the scenes' typical depth)
    min_depth: float = 0.1               # metres: ground truth outside is masked, and the
    max_depth: float = 10.0              # model spec's valid output range
    scale_invariant_lambda: float = 0.5  # eq. 4
    optimizer: str = 'sgd'               # the paper: SGD with momentum
    momentum: float = 0.9
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    # Learning rates per layer group, as in the paper.
    lr_coarse_conv: float = 0.001        # coarse 1-5
    lr_coarse_fc: float = 0.1            # coarse 6-7
    lr_fine_outer: float = 0.001         # fine 1 and fine 3
    lr_fine_middle: float = 0.01         # fine 2
    grad_clip_norm: float = 0.0          # 0 = off (the paper does not clip)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    # How an image of another shape fits the input (depth_nodes.core.model_spec RESIZE_MODES),
    # in training and, through the exported spec, in the node.
    resize_mode: str = 'stretch'

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode '{self.resize_mode}' not in {RESIZE_MODES}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer '{self.optimizer}' not in {OPTIMIZERS}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError('need 0 < min_depth < max_depth')

    @property
    def architecture(self) -> EigenArchitecture:
        return EigenArchitecture(self.input_height, self.input_width, self.width_scale,
                                 self.fc_units, self.dropout, self.initial_depth)


class EigenMethod(DepthMethod):
    name = 'eigen'
    config_class = EigenConfig
    stages = ('coarse', 'fine')
    sample_keys = ('rgb', 'depth')

    def __init__(self, config: EigenConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        arch = config.architecture
        self.output_size = arch.output_size
        self.coarse = CoarseNetwork(arch).to(context.device)
        self.fine = FineNetwork(arch).to(context.device)
        self.loss = ScaleInvariantLoss(config.scale_invariant_lambda)
        self._optimizers = {
            'coarse': self._optimizer([
                (_params(self.coarse.coarse1, self.coarse.coarse2, self.coarse.coarse3,
                         self.coarse.coarse4, self.coarse.coarse5), config.lr_coarse_conv),
                (_params(self.coarse.coarse6, self.coarse.coarse7), config.lr_coarse_fc)]),
            'fine': self._optimizer([
                (_params(self.fine.fine1, self.fine.fine3), config.lr_fine_outer),
                (_params(self.fine.fine2), config.lr_fine_middle)]),
        }
        self._trained: nn.Module = self.coarse
        self.begin_stage(self.stages[0])

    def _optimizer(self, groups) -> torch.optim.Optimizer:
        c = self.config
        param_groups = [{'params': params, 'lr': lr} for params, lr in groups]
        if c.optimizer == 'sgd':
            return torch.optim.SGD(param_groups, lr=groups[0][1], momentum=c.momentum,
                                   weight_decay=c.weight_decay)
        return torch.optim.Adam(param_groups, lr=groups[0][1], betas=c.adam_betas,
                                weight_decay=c.weight_decay)

    def networks(self) -> dict[str, nn.Module]:
        return {'coarse': self.coarse, 'fine': self.fine}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        training_fine = stage == 'fine'
        self.coarse.requires_grad_(not training_fine)
        self.fine.requires_grad_(training_fine)
        for param in (self.coarse if training_fine else self.fine).parameters():
            param.grad = None   # the frozen stack keeps no stale gradients (nor their memory)
        self._trained = self.context.parallel(self.fine if training_fine else self.coarse)
        self.train()

    def train(self, mode: bool = True) -> 'EigenMethod':
        # In the fine stage the coarse stack is a fixed feature extractor: no dropout.
        self.coarse.train(mode and self.stage == 'coarse')
        self.fine.train(mode and self.stage == 'fine')
        return self

    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        for sample in samples:
            require_keys(sample, self.sample_keys, self.name)
        c = self.config
        depths = [s['depth'] for s in samples]
        if c.resize_mode == 'letterbox':
            # Placed as the input image is, then area-averaged to the output (the node crops
            # the output's box in the same proportions: core/postprocess.crop_letterbox).
            depths = [letterbox_depth(d, c.input_height, c.input_width) for d in depths]
        log_depth, valid = depth_targets(depths, *self.output_size, c.min_depth, c.max_depth)
        return {'image': images_to_batch([s['rgb'] for s in samples], 'rgb8',
                                         self.model_spec()),
                'log_depth': log_depth, 'valid': valid}

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        image = batch['image']
        if self.stage == 'coarse':
            pred = self._trained(image)
        else:
            with torch.no_grad():
                coarse = self.coarse(image)
            pred = self._trained(image, coarse)
        loss = self.loss(pred, batch['log_depth'], batch['valid'])
        optimizer = self._optimizers[self.stage]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip_norm > 0:
            trained = self.fine if self.stage == 'fine' else self.coarse
            nn.utils.clip_grad_norm_(trained.parameters(), self.config.grad_clip_norm)
        optimizer.step()
        return {'scale_invariant_loss': float(loss.detach())}

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        was_training = self.coarse.training or self.fine.training
        self.eval()
        try:
            return torch.exp(self.export_module()(batch['image']))[:, 0]
        finally:
            self.train(was_training)

    def model_spec(self) -> ModelSpec:
        return rgb_image_spec(self.name, self.config, output_name='log_depth',
                              output_kind='log_depth', resize_mode=self.config.resize_mode,
                              extras={'output_stage': self.stage,
                                      'output_size': list(self.output_size)})

    def export_module(self) -> nn.Module:
        # Until the fine stack is trained, the coarse map is the model's best estimate.
        return EigenDepthNetwork(self.coarse, self.fine, use_fine=self.stage == 'fine')


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]
