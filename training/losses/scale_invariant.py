"""Scale-invariant log-depth loss of Eigen, Puhrsch and Fergus (NIPS 2014), eq. 4, with the
optional gradient-matching term of Eigen and Fergus (ICCV 2015), eq. 1."""
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

    gradient_weight > 0 adds Eigen and Fergus's (ICCV 2015) first-order matching term,

        L += gradient_weight * 1/n sum_i [(grad_x d)_i^2 + (grad_y d)_i^2]         (eq. 1)

    (weight 1 in that paper): it compares the local depth changes, i.e. edges and slopes, of
    prediction and truth, which the per-pixel terms weigh only through their squares.
    Differences count where both neighbouring pixels are valid.
    """

    def __init__(self, scale_weight: float = 0.5, gradient_weight: float = 0.0):
        super().__init__()
        if not 0.0 <= scale_weight <= 1.0:
            raise ValueError(f'lambda must be in [0, 1], got {scale_weight}')
        if gradient_weight < 0.0:
            raise ValueError(f'gradient weight must be >= 0, got {gradient_weight}')
        self.scale_weight = scale_weight
        self.gradient_weight = gradient_weight

    def forward(self, pred_log_depth: torch.Tensor, target_log_depth: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) predicted and target log depth and a bool mask -> scalar loss."""
        if pred_log_depth.shape != target_log_depth.shape or valid.shape != pred_log_depth.shape:
            raise ValueError(f'shapes differ: prediction {tuple(pred_log_depth.shape)}, target '
                             f'{tuple(target_log_depth.shape)}, mask {tuple(valid.shape)}')
        weight = valid.to(pred_log_depth.dtype).flatten(1)
        # Masked pixels get d_i = 0 (torch.where keeps NaN targets out of the gradient).
        d_map = torch.where(valid, pred_log_depth - target_log_depth,
                            torch.zeros_like(pred_log_depth))
        d = d_map.flatten(1)
        n = weight.sum(dim=1)
        has_pixels = n > 0
        n = n.clamp(min=1.0)
        # eq. 4, per image: sum(d^2) / n - lambda * (sum d)^2 / n^2
        per_image = (d ** 2).sum(dim=1) / n - self.scale_weight * d.sum(dim=1) ** 2 / n ** 2
        if self.gradient_weight > 0.0:
            # ICCV 2015 eq. 1: 1/n sum (grad_x d)^2 + (grad_y d)^2 over valid pixel pairs.
            gx = (d_map[..., :, 1:] - d_map[..., :, :-1]) * (valid[..., :, 1:]
                                                             & valid[..., :, :-1])
            gy = (d_map[..., 1:, :] - d_map[..., :-1, :]) * (valid[..., 1:, :]
                                                             & valid[..., :-1, :])
            per_image = per_image + self.gradient_weight * (
                (gx ** 2).flatten(1).sum(dim=1) + (gy ** 2).flatten(1).sum(dim=1)) / n
        if not bool(has_pixels.any()):
            return pred_log_depth.sum() * 0.0  # no ground truth: zero loss, graph kept
        return per_image[has_pixels].mean()
