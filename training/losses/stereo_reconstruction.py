"""The unsupervised stereo loss of the Depth Prediction Network (Shen et al., eq. 1-5, after
Godard et al., CVPR 2017): no ground truth, only the other view of a rectified pair.

Per output scale s the network gives a left and a right disparity map (fractions of the
width); each view is rebuilt from the other by bilinear warping (training/geometry.py) and

    C_s = a_ap (C_ap^l + C_ap^r) + a_ds (C_ds^l + C_ds^r) + a_lr (C_lr^l + C_lr^r)   (eq. 1)
    C   = sum_s C_s                                                                   (eq. 5)

Appearance (eq. 2), smoothness (eq. 3) and left-right consistency (eq. 4) are the modules
below; every mean runs over the pixels (and channels) of the scale it is computed at.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from training.geometry import gradient_x, gradient_y, resize_images, ssim, warp_horizontal


class AppearanceMatchingLoss(nn.Module):
    """C_ap = 1/N sum_ij  alpha (1 - SSIM(I_ij, I~_ij)) / 2 + (1 - alpha) |I_ij - I~_ij|.

    A weighted mix of the structural (3x3 SSIM) and the photometric (L1) difference between an
    image and its reconstruction from the other view; alpha = 0.85 in the paper.
    """

    def __init__(self, alpha: float = 0.85):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        self.alpha = alpha

    def forward(self, image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        structural = torch.clamp((1 - ssim(image, reconstruction)) / 2, 0, 1)
        photometric = (image - reconstruction).abs()
        # eq. 2: alpha (1 - SSIM) / 2 + (1 - alpha) |I - I~|, averaged over the N pixels
        return (self.alpha * structural + (1 - self.alpha) * photometric).mean()


class DisparitySmoothnessLoss(nn.Module):
    """C_ds = 1/N sum_ij |dx d_ij| exp(-|dx I_ij|) + |dy d_ij| exp(-|dy I_ij|).

    Disparity gradients are penalised less where the image has an edge (depth edges usually
    are image edges). |dx I| is the mean absolute gradient over the colour channels; the x
    term is averaged over its H (W - 1) differences and the y term over its (H - 1) W.
    """

    def forward(self, disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        weight_x = torch.exp(-gradient_x(image).abs().mean(dim=1, keepdim=True))
        weight_y = torch.exp(-gradient_y(image).abs().mean(dim=1, keepdim=True))
        # eq. 3: |dx d| e^-|dx I| + |dy d| e^-|dy I|
        return (gradient_x(disparity).abs() * weight_x).mean() + \
            (gradient_y(disparity).abs() * weight_y).mean()


class LeftRightConsistencyLoss(nn.Module):
    """C_lr^l + C_lr^r with C_lr^l = 1/N sum_ij |dl_ij - dr_(i, j - dl_ij)|.

    The left disparity should equal the right disparity seen from the left view (the right
    map sampled where each left pixel lands, x_r = x_l - dl), and vice versa
    (C_lr^r = 1/N sum |dr_ij - dl_(i, j + dr_ij)|). Zero for a consistent pair.
    """

    def forward(self, left_disparity: torch.Tensor, right_disparity: torch.Tensor
                ) -> torch.Tensor:
        # dr seen from the left view and dl seen from the right, in one warp.
        seen = warp_horizontal(torch.cat([right_disparity, left_disparity]),
                               torch.cat([-left_disparity, right_disparity]))
        # eq. 4 for both views: |dl - dr(x - dl)| + |dr - dl(x + dr)|; equal-sized halves, so
        # the sum of the two means is twice the mean over both.
        return 2 * (torch.cat([left_disparity, right_disparity]) - seen).abs().mean()


class StereoReconstructionLoss(nn.Module):
    """The total loss C = sum_s C_s over the disparity scales (eq. 1 and 5).

    ``disparities``: one (B, 2, h_s, w_s) tensor per scale, channel 0 the left and channel 1
    the right disparity as fractions of the width; ``left`` / ``right``: (B, 3, H, W) images
    in [0, 1], shrunk (area) to each scale. As Godard et al. do, the smoothness weight of
    scale s is divided by 2^s (s = 0 at the finest scale, listed first), so coarse maps,
    whose pixels span more of the scene, are not held smoother than fine ones.
    """

    def __init__(self, ssim_alpha: float = 0.85, appearance_weight: float = 1.0,
                 smoothness_weight: float = 0.1, lr_consistency_weight: float = 1.0):
        super().__init__()
        self.appearance = AppearanceMatchingLoss(ssim_alpha)
        self.smoothness = DisparitySmoothnessLoss()
        self.lr_consistency = LeftRightConsistencyLoss()
        self.appearance_weight = appearance_weight
        self.smoothness_weight = smoothness_weight
        self.lr_consistency_weight = lr_consistency_weight

    def forward(self, disparities: Sequence[torch.Tensor], left: torch.Tensor,
                right: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-> (total loss, the summed appearance / smoothness / lr terms, unweighted)."""
        if left.shape != right.shape:
            raise ValueError(f'left {tuple(left.shape)} and right {tuple(right.shape)} differ')
        terms = {'appearance': left.new_zeros(()), 'smoothness': left.new_zeros(()),
                 'lr_consistency': left.new_zeros(())}
        total = left.new_zeros(())
        for scale, disparity in enumerate(disparities):
            if disparity.dim() != 4 or disparity.shape[1] != 2:
                raise ValueError(f'scale {scale}: expected (B, 2, h, w) left/right '
                                 f'disparities, got {tuple(disparity.shape)}')
            height, width = disparity.shape[-2:]
            left_s = resize_images(left, height, width)
            right_s = resize_images(right, height, width)
            disp_l, disp_r = disparity[:, :1], disparity[:, 1:]
            # Both views in one batch (one warp, one SSIM): the mean over the 2B images is
            # half the sum of the left and right terms, each a mean over its B images.
            views = torch.cat([left_s, right_s])
            reconstructions = warp_horizontal(torch.cat([right_s, left_s]),
                                              torch.cat([-disp_l, disp_r]))  # I~l, I~r
            appearance = 2 * self.appearance(views, reconstructions)
            smoothness = 2 * self.smoothness(torch.cat([disp_l, disp_r]), views) / 2 ** scale
            lr_consistency = self.lr_consistency(disp_l, disp_r)
            # eq. 1: C_s = a_ap (C_ap^l + C_ap^r) + a_ds (C_ds^l + C_ds^r) + a_lr (C_lr^l + C_lr^r)
            total = total + self.appearance_weight * appearance + \
                self.smoothness_weight * smoothness + self.lr_consistency_weight * lr_consistency
            terms['appearance'] = terms['appearance'] + appearance.detach()
            terms['smoothness'] = terms['smoothness'] + smoothness.detach()
            terms['lr_consistency'] = terms['lr_consistency'] + lr_consistency.detach()
        return total, terms
