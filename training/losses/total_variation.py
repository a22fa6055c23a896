"""Total variation regulariser (anisotropic, L1), the smoothness term of Makarov et al.'s
depth interpolation loss (perceptual loss + alpha * TV)."""
from __future__ import annotations

import torch
from torch import nn


class TotalVariationLoss(nn.Module):
    """TV(y) = 1/N_v sum_{i,j} |y_{i+1,j} - y_{i,j}| + 1/N_h sum_{i,j} |y_{i,j+1} - y_{i,j}|

    over a (B, C, H, W) map: the mean absolute difference of vertical neighbours plus that
    of horizontal neighbours (N_v = B C (H-1) W and N_h = B C H (W-1) pairs), so its size
    does not depend on the resolution. L1 differences keep depth edges sharp where an L2
    penalty would blur them.
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 4 or y.shape[-2] < 2 or y.shape[-1] < 2:
            raise ValueError(f'expected a (B, C, H, W) map with H, W >= 2, got '
                             f'{tuple(y.shape)}')
        vertical = (y[:, :, 1:, :] - y[:, :, :-1, :]).abs().mean()
        horizontal = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean()
        return vertical + horizontal
