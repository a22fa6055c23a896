"""The unsupervised stereo loss of the Depth Prediction Network (Shen et al., eq. 1-5, after
Godard et al., CVPR 2017): no ground truth, only the other view of a rectified pair.

Per output scale s the network gives a left and a right disparity map (fractions of the
width); each view is rebuilt from the other by bilinear warping (training/geometry.py) and

    C_s = a_ap (C_ap^l + C_ap^r) + a_ds (C_ds^l + C_ds^r) + a_lr (C_lr^l + C_lr^r)   (eq. 1)
    C   = sum_s C_s                                                                   (eq. 5)

Appearance (eq. 2), smoothness (eq. 3) and left-right consistency (eq. 4) are the modules
below; every mean runs over the pixels (and channels) of the scale it is computed at.

Optionally (``occlusion_mask``, not in the paper) the appearance term skips the pixels the
other view cannot see, by the disparity's own visibility rule (occlusion_masks): a pixel of
the left view whose landing point in the right view is covered by a nearer pixel further
right has no match there, and without the mask the cheapest disparity for it is the
occluder's, which widens every foreground object by its disparity step (a halo).
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

    def forward(self, image: torch.Tensor, reconstruction: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (B, 1, H, W), 1 where the pixel counts: the mean runs over those."""
        structural = torch.clamp((1 - ssim(image, reconstruction)) / 2, 0, 1)
        photometric = (image - reconstruction).abs()
        # eq. 2: alpha (1 - SSIM) / 2 + (1 - alpha) |I - I~|, averaged over the N pixels
        cost = self.alpha * structural + (1 - self.alpha) * photometric
        if mask is None:
            return cost.mean()
        return (cost * mask).sum() / (mask.sum() * cost.shape[1]).clamp(min=1.0)


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


@torch.no_grad()
def occlusion_masks(left_disparity: torch.Tensor, right_disparity: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible in the right view, visible in the left view), (B, 1, H, W) float 0/1, from
    disparities as fractions of the width. Left pixel x lands at t(x) = x - dl(x) W in the
    right view; it is occluded when a pixel further right lands at or left of it:

        occluded_l(x) = t(x) >= min_{x' > x} t(x')
        occluded_r(x) = s(x) <= max_{x' < x} s(x'),   s(x) = x + dr(x) W

    (a z-buffer along each row: of two pixels landing in one place the nearer, larger
    disparity wins). Not differentiated: the mask only chooses where eq. 2 is averaged.
    """
    width = left_disparity.shape[-1]
    x = torch.arange(width, dtype=left_disparity.dtype, device=left_disparity.device)
    landing = x - left_disparity * width
    # min over x' >= x, then shifted one column left: min over x' > x (+inf at the end)
    suffix_min = torch.cummin(landing.flip(-1), dim=-1).values.flip(-1)
    end = torch.full_like(suffix_min[..., :1], float('inf'))
    right_of = torch.cat([suffix_min[..., 1:], end], dim=-1)
    landing_r = x + right_disparity * width
    prefix_max = torch.cummax(landing_r, dim=-1).values
    left_of = torch.cat([torch.full_like(prefix_max[..., :1], float('-inf')),
                         prefix_max[..., :-1]], dim=-1)
    return (landing < right_of).to(left_disparity.dtype), \
        (landing_r > left_of).to(right_disparity.dtype)


class StereoReconstructionLoss(nn.Module):
    """The total loss C = sum_s C_s over the disparity scales (eq. 1 and 5).

    ``disparities``: one (B, 2, h_s, w_s) tensor per scale, channel 0 the left and channel 1
    the right disparity as fractions of the width; ``left`` / ``right``: (B, 3, H, W) images
    in [0, 1], shrunk (area) to each scale. As Godard et al. do, the smoothness weight of
    scale s is divided by 2^s (s = 0 at the finest scale, listed first), so coarse maps,
    whose pixels span more of the scene, are not held smoother than fine ones.
    """

    def __init__(self, ssim_alpha: float = 0.85, appearance_weight: float = 1.0,
                 smoothness_weight: float = 0.1, lr_consistency_weight: float = 1.0,
                 occlusion_mask: bool = False):
        super().__init__()
        self.occlusion_mask = occlusion_mask
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
            mask = torch.cat(occlusion_masks(disp_l, disp_r)) if self.occlusion_mask else None
            appearance = 2 * self.appearance(views, reconstructions, mask)
            smoothness = 2 * self.smoothness(torch.cat([disp_l, disp_r]), views) / 2 ** scale
            lr_consistency = self.lr_consistency(disp_l, disp_r)
            # eq. 1: C_s = a_ap (C_ap^l + C_ap^r) + a_ds (C_ds^l + C_ds^r) + a_lr (C_lr^l + C_lr^r)
            total = total + self.appearance_weight * appearance + \
                self.smoothness_weight * smoothness + self.lr_consistency_weight * lr_consistency
            terms['appearance'] = terms['appearance'] + appearance.detach()
            terms['smoothness'] = terms['smoothness'] + smoothness.detach()
            terms['lr_consistency'] = terms['lr_consistency'] + lr_consistency.detach()
        return total, terms
