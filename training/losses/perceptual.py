"""Perceptual (feature reconstruction) loss on depth maps, after Johnson et al. (ECCV 2016),
as Makarov et al. use it for depth interpolation with VGG16 features."""
from __future__ import annotations

import torch
from torch import nn

from training.networks.vgg16 import IMAGENET_MEAN, IMAGENET_STD, VGG16Features


class PerceptualLoss(nn.Module):
    """L_feat(y, y*) = 1 / (C_j H_j W_j) * || phi_j(y) - phi_j(y*) ||_2^2

    phi_j = VGG16 features up to layer j (C_j x H_j x W_j), averaged over the batch. A depth
    map (normalised to about [0, 1]) enters VGG as a grey image: the same value in R, G and
    B, then ImageNet mean / std, as the features were trained on.

    Where the target is unknown (``valid`` False), the target takes the prediction's value
    (without gradient), so holes in the ground truth add no error of their own; features
    near a hole still see the known pixels around it.
    """

    def __init__(self, features: VGG16Features):
        super().__init__()
        self.features = features
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def to_vgg_input(self, depth: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 3, H, W) grey RGB, ImageNet-normalised."""
        return (depth.expand(-1, 3, -1, -1) - self.mean) / self.std

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape != target.shape or pred.shape[1] != 1:
            raise ValueError(f'expected two (B, 1, H, W) depth maps, got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}')
        if valid is not None:
            target = torch.where(valid, target, pred.detach())
        phi_pred = self.features(self.to_vgg_input(pred))
        with torch.no_grad():
            phi_target = self.features(self.to_vgg_input(target))
        # mean over C_j x H_j x W_j and the batch: 1/(C H W) ||phi(y) - phi(y*)||^2 per image
        return torch.mean((phi_pred - phi_target) ** 2)
