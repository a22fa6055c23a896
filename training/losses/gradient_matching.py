"""Multi-scale gradient matching in log depth (Li & Snavely, MegaDepth, CVPR 2018, eq. 4;
Ranftl et al., MiDaS, eq. 11): the edge-aware term that replaces the semi-dense method's
VGG16 perceptual loss when no VGG16 weights are available.

With R = log d - log d* the log-depth error of the valid pixels,

    L_grad = 1/K sum_k 1/n_k ( sum |grad_x R^k| + sum |grad_y R^k| )               (eq. 4)

R^k is R subsampled by 2^k (k = 0..K-1); a difference counts only where both of its pixels
are valid, and n_k is the number of such horizontal plus vertical differences. A constant
log offset (a global scale error) costs nothing, a blurred or displaced depth edge costs its
full height at every scale: the term asks for the ground truth's edges and slopes, which a
per-pixel L1 alone rewards weakly.
"""
from __future__ import annotations

import torch
from torch import nn


class GradientMatchingLoss(nn.Module):
    def __init__(self, scales: int = 4):
        super().__init__()
        if scales < 1:
            raise ValueError(f'scales must be >= 1, got {scales}')
        self.scales = scales

    def forward(self, log_prediction: torch.Tensor, log_target: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        if log_prediction.shape != log_target.shape or valid.shape != log_target.shape:
            raise ValueError(f'shapes differ: prediction {tuple(log_prediction.shape)}, '
                             f'target {tuple(log_target.shape)}, mask {tuple(valid.shape)}')
        # torch.where keeps unknown targets out of the value and the gradient.
        residual = torch.where(valid, log_prediction - log_target,
                               torch.zeros_like(log_prediction))
        total = log_prediction.sum() * 0.0
        for k in range(self.scales):
            step = 2 ** k
            r, v = residual[..., ::step, ::step], valid[..., ::step, ::step]
            terms, count = [], 0
            for dim in (-1, -2):
                if r.shape[dim] < 2:
                    continue
                both = v.narrow(dim, 1, r.shape[dim] - 1) & v.narrow(dim, 0, r.shape[dim] - 1)
                diff = (r.narrow(dim, 1, r.shape[dim] - 1) -
                        r.narrow(dim, 0, r.shape[dim] - 1)).abs()
                terms.append(torch.where(both, diff, torch.zeros_like(diff)).sum())
                count += int(both.sum())
            if count:
                total = total + sum(terms) / count
        return total / self.scales
