"""The L1 reconstruction term of Isola et al. (pix2pix, CVPR 2017), eq. 3, over the pixels
that have ground truth."""
from __future__ import annotations

import torch
from torch import nn


class MaskedL1Loss(nn.Module):
    """L_L1(G) = E_x,y[ ||y - G(x)||_1 ]                                     (eq. 3)

    as the mean absolute difference over the valid pixels of the whole batch (missing or
    out-of-range ground truth is masked, never compared). The paper's objective is
    G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G) with lambda = 100 (eq. 4); the
    weighting is the method's, this module is the plain term.
    """

    def forward(self, prediction: torch.Tensor, target: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape or valid.shape != prediction.shape:
            raise ValueError(f'shapes differ: prediction {tuple(prediction.shape)}, target '
                             f'{tuple(target.shape)}, mask {tuple(valid.shape)}')
        # torch.where keeps NaN targets under the mask out of the value and the gradient.
        difference = torch.where(valid, (prediction - target).abs(),
                                 torch.zeros_like(prediction))
        count = valid.sum()
        if not bool(count > 0):
            return prediction.sum() * 0.0   # no ground truth: zero loss, graph kept
        return difference.sum() / count
