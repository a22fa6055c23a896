"""Scale-invariant log-depth loss of Eigen, Puhrsch and Fergus (NIPS 2014), eq. 4."""
from __future__ import annotations

import torch
from torch import nn


class ScaleInvariantLoss(nn.Module):
    """L(y, y*) = 1/n sum_i d_i^2 - lambda/n^2 (sum_i d_i)^2,  d_i = log y_i - log y*_i.

    lambda = 0 is the element-wise L2 loss in log space and lambda = 1 the scale-invariant
    error exactly (eq. 3); the paper trains with their average, lambda = 0.5, which keeps
    absolute scale while crediting correct relative structure. n counts the valid pixels of
    each image (missing ground truth is masked out, as in the paper); the loss is averaged
    over the images of the batch that have at least one valid pixel.
    """

    def __init__(self, scale_weight: float = 0.5):
        super().__init__()
        if not 0.0 <= scale_weight <= 1.0:
            raise ValueError(f'lambda must be in [0, 1], got {scale_weight}')
        self.scale_weight = scale_weight

    def forward(self, pred_log_depth: torch.Tensor, target_log_depth: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) predicted and target log depth and a bool mask -> scalar loss."""
        if pred_log_depth.shape != target_log_depth.shape or valid.shape != pred_log_depth.shape:
            raise ValueError(f'shapes differ: prediction {tuple(pred_log_depth.shape)}, target '
                             f'{tuple(target_log_depth.shape)}, mask {tuple(valid.shape)}')
        weight = valid.to(pred_log_depth.dtype).flatten(1)
        # Masked pixels get d_i = 0 (torch.where keeps NaN targets out of the gradient).
        d = torch.where(valid, pred_log_depth - target_log_depth,
                        torch.zeros_like(pred_log_depth)).flatten(1)
        n = weight.sum(dim=1)
        has_pixels = n > 0
        n = n.clamp(min=1.0)
        # eq. 4, per image: sum(d^2) / n - lambda * (sum d)^2 / n^2
        per_image = (d ** 2).sum(dim=1) / n - self.scale_weight * d.sum(dim=1) ** 2 / n ** 2
        if not bool(has_pixels.any()):
            return pred_log_depth.sum() * 0.0  # no ground truth: zero loss, graph kept
        return per_image[has_pixels].mean()
