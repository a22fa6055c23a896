"""Stereo image geometry for self-supervised training, as plain tested functions.

Conventions (training/datasets/base.py): a rectified pair in which a scene point seen at
left column x_l appears at right column x_r = x_l - d, d >= 0 pixels. Networks predict
disparity as a fraction of the image width, d / W, so one output fits every resolution.

- :func:`warp_horizontal` samples an image at x + s(x) W, bilinearly and differentiably
  (torch grid_sample), which gives both view reconstructions:
  left from right, I~l(x) = Ir(x - dl(x)); right from left, I~r(x) = Il(x + dr(x)).
- :func:`ssim` is the structural similarity of Wang et al. (2004) over 3x3 windows (a box
  filter, as Godard et al. use for their appearance term), per pixel.
- :func:`gradient_x` / :func:`gradient_y` are forward differences for the smoothness term.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# SSIM stabilisers for a dynamic range of 1: C1 = (0.01 L)^2, C2 = (0.03 L)^2 (Wang et al.).
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def warp_horizontal(image: torch.Tensor, shift_fraction: torch.Tensor,
                    padding_mode: str = 'border') -> torch.Tensor:
    """out[b, :, y, x] = image[b, :, y, x + shift[b, 0, y, x] * W], bilinear.

    ``image`` (B, C, H, W); ``shift_fraction`` (B, 1, H, W), a horizontal offset as a
    fraction of the width W. With align_corners=False the centre of pixel column x sits at
    normalised u = (2x + 1) / W - 1, so an offset of s W pixels is exactly 2 s in u.
    Samples beyond the image repeat its edge column (``padding_mode='border'``), so pixels
    that leave the frame are not compared with black.
    """
    if image.dim() != 4 or shift_fraction.dim() != 4 or shift_fraction.shape[1] != 1:
        raise ValueError(f'expected image (B, C, H, W) and shift (B, 1, H, W), got '
                         f'{tuple(image.shape)} and {tuple(shift_fraction.shape)}')
    if image.shape[0] != shift_fraction.shape[0] or \
            image.shape[2:] != shift_fraction.shape[2:]:
        raise ValueError(f'image {tuple(image.shape)} and shift {tuple(shift_fraction.shape)} '
                         'differ in batch or size')
    batch, _, height, width = image.shape
    kwargs = dict(device=image.device, dtype=image.dtype)
    u = (2 * torch.arange(width, **kwargs) + 1) / width - 1
    v = (2 * torch.arange(height, **kwargs) + 1) / height - 1
    grid_u = u.view(1, 1, width) + 2 * shift_fraction[:, 0]
    grid_v = v.view(1, height, 1).expand(batch, height, width)
    grid = torch.stack((grid_u, grid_v), dim=-1)
    return F.grid_sample(image, grid, mode='bilinear', padding_mode=padding_mode,
                         align_corners=False)


def reconstruct_left(right: torch.Tensor, left_disparity: torch.Tensor) -> torch.Tensor:
    """I~l(x) = Ir(x - dl(x)): the left view rebuilt from the right image."""
    return warp_horizontal(right, -left_disparity)


def reconstruct_right(left: torch.Tensor, right_disparity: torch.Tensor) -> torch.Tensor:
    """I~r(x) = Il(x + dr(x)): the right view rebuilt from the left image."""
    return warp_horizontal(left, right_disparity)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of two (B, C, H, W) images in [0, 1] over 3x3 box windows.

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 +
    sigma_y^2 + C2)); the window statistics are 3x3 means of reflection-padded images, so
    the result keeps the input size and lines up with the per-pixel L1 term.
    """
    if x.shape != y.shape:
        raise ValueError(f'ssim of differently shaped images {tuple(x.shape)}, {tuple(y.shape)}')
    x = F.pad(x, (1, 1, 1, 1), mode='reflect')
    y = F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x, mu_y = box_mean3(x), box_mean3(y)
    sigma_x = box_mean3(x * x) - mu_x ** 2
    sigma_y = box_mean3(y * y) - mu_y ** 2
    sigma_xy = box_mean3(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def box_mean3(t: torch.Tensor) -> torch.Tensor:
    """Mean over each valid 3x3 window, (..., H, W) -> (..., H - 2, W - 2).

    Separable sums of shifted slices: the same numbers as avg_pool2d(t, 3, stride=1), and
    much faster on a CPU (forward and backward), where SSIM dominates the loss.
    """
    rows = t[..., :, :-2] + t[..., :, 1:-1] + t[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9


def gradient_x(t: torch.Tensor) -> torch.Tensor:
    """Forward difference along x: t[..., x] - t[..., x + 1], shape (..., H, W - 1)."""
    return t[..., :, :-1] - t[..., :, 1:]


def gradient_y(t: torch.Tensor) -> torch.Tensor:
    """Forward difference along y: t[..., y, :] - t[..., y + 1, :], shape (..., H - 1, W)."""
    return t[..., :-1, :] - t[..., 1:, :]


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, height, width): area averaging when shrinking (the images each
    disparity scale is compared with), bilinear otherwise."""
    if images.shape[-2:] == (height, width):
        return images
    if height <= images.shape[-2] and width <= images.shape[-1]:
        return F.interpolate(images, size=(height, width), mode='area')
    return F.interpolate(images, size=(height, width), mode='bilinear', align_corners=False)
