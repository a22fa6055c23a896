"""Warping, SSIM and the DPN's unsupervised stereo loss (eq. 1-5) against hand values."""
import math

import numpy as np
import pytest
import torch

from training.geometry import (box_mean3, gradient_x, reconstruct_left, reconstruct_right,
                               ssim, warp_horizontal)
from training.losses.stereo_reconstruction import (AppearanceMatchingLoss,
                                                   DisparitySmoothnessLoss,
                                                   LeftRightConsistencyLoss,
                                                   StereoReconstructionLoss,
                                                   occlusion_masks)

W = 16


def stereo_pair(shift_px: int, seed: int = 0):
    """A textured left image and the right view of a fronto-parallel scene at disparity
    ``shift_px``: right[x] = left[x + d] (x_right = x_left - d)."""
    wide = torch.rand(1, 3, 6, W + shift_px, generator=torch.Generator().manual_seed(seed))
    return wide[..., :W], wide[..., shift_px:W + shift_px]


def constant_disparity(pixels: float, batch=1, height=6):
    return torch.full((batch, 1, height, W), pixels / W)


def test_known_constant_disparity_reproduces_the_shifted_images():
    left, right = stereo_pair(3)
    d = constant_disparity(3)
    # I~l(x) = Ir(x - 3) = Il(x) wherever x - 3 is inside the image.
    torch.testing.assert_close(reconstruct_left(right, d)[..., 3:], left[..., 3:],
                               atol=1e-5, rtol=0)
    # I~r(x) = Il(x + 3) = Ir(x) wherever x + 3 is inside the image.
    torch.testing.assert_close(reconstruct_right(left, d)[..., :W - 3], right[..., :W - 3],
                               atol=1e-5, rtol=0)
    # Outside, the edge column repeats (border padding): x = 0..2 read right column 0.
    torch.testing.assert_close(reconstruct_left(right, d)[..., :3],
                               right[..., :1].expand(-1, -1, -1, 3), atol=1e-5, rtol=0)


def test_half_pixel_shift_is_the_mean_of_neighbours_and_differentiable():
    image = torch.arange(W, dtype=torch.float32).view(1, 1, 1, W).repeat(1, 1, 2, 1)
    shift = torch.full((1, 1, 2, W), 0.5 / W, requires_grad=True)
    out = warp_horizontal(image, shift)
    torch.testing.assert_close(out[0, 0, 0, :W - 1], torch.arange(W - 1) + 0.5)
    out.sum().backward()
    # d out / d shift = W * (image[x + 1] - image[x]) = W per pixel on the ramp.
    assert shift.grad[0, 0, 0, 0].item() == pytest.approx(W)


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match='differ'):
        warp_horizontal(torch.zeros(1, 3, 4, 8), torch.zeros(1, 1, 4, 9))


def test_box_mean_matches_a_hand_sum():
    t = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    # Window rows 0-2, columns 0-2: (0+1+2+4+5+6+8+9+10) / 9 = 5
    assert box_mean3(t)[0, 0, 0, 0].item() == pytest.approx(5.0)
    assert box_mean3(t).shape == (1, 1, 2, 2)


def test_ssim_of_identical_images_is_one_and_of_constants_the_luminance_term():
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ssim(image, image), torch.ones_like(image))
    # No variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) = 0.2401 / 0.4001 for a = .2, b = .6
    value = ssim(torch.full((1, 1, 5, 5), 0.2), torch.full((1, 1, 5, 5), 0.6))
    torch.testing.assert_close(value, torch.full_like(value, 0.6000999750), atol=1e-6, rtol=0)


def test_appearance_loss_hand_value():
    # alpha (1 - SSIM) / 2 + (1 - alpha) |a - b| = 0.85 * 0.39990 / 2 + 0.15 * 0.4
    loss = AppearanceMatchingLoss(0.85)(torch.full((2, 3, 5, 5), 0.2),
                                        torch.full((2, 3, 5, 5), 0.6))
    assert loss.item() == pytest.approx(0.2299575106, abs=1e-6)
    assert AppearanceMatchingLoss()(torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4)).item() == 0


def test_smoothness_is_weighted_down_at_image_edges():
    disparity = (0.01 * torch.arange(4, dtype=torch.float32)).view(1, 1, 1, 4).repeat(1, 1, 3, 1)
    flat = torch.zeros(1, 3, 3, 4)
    # |dx d| = 0.01 everywhere, no y gradient, weight e^0 = 1
    assert DisparitySmoothnessLoss()(disparity, flat).item() == pytest.approx(0.01)
    edge = flat.clone()
    edge[..., 2:] = 1.0           # one image edge between columns 1 and 2: weight e^-1 there
    expected = 0.01 * (2 + math.exp(-1)) / 3
    assert DisparitySmoothnessLoss()(disparity, edge).item() == pytest.approx(expected)
    assert gradient_x(disparity).shape == (1, 1, 3, 3)


def test_lr_consistency_zero_for_consistent_and_hand_value_for_inconsistent_pairs():
    lr = LeftRightConsistencyLoss()
    # A ground plane: disparity varies with the row only, identical in both views.
    ground = torch.linspace(0.02, 0.2, 6).view(1, 1, 6, 1).expand(2, 1, 6, W).contiguous()
    assert lr(ground, ground.clone()).item() == pytest.approx(0.0, abs=1e-7)
    # dl = 0.1, dr = 0.05 everywhere: |0.1 - 0.05| in each view -> 0.05 + 0.05
    assert lr(torch.full((1, 1, 4, W), 0.1), torch.full((1, 1, 4, W), 0.05)).item() == \
        pytest.approx(0.1)


def test_total_loss_sums_views_and_scales():
    loss = StereoReconstructionLoss(0.85, 1.0, 0.1, 1.0)
    left, right = torch.full((1, 3, 16, 32), 0.2), torch.full((1, 3, 16, 32), 0.6)
    scales = [torch.zeros(1, 2, 16 >> s, 32 >> s) for s in range(4)]
    total, terms = loss(scales, left, right)
    # Constant images at every scale: C_ap^l + C_ap^r = 2 * 0.22996 per scale, 4 scales.
    assert total.item() == pytest.approx(8 * 0.2299575106, rel=2e-5)   # float32 sums
    assert terms['smoothness'].item() == 0 and terms['lr_consistency'].item() == 0
    # A correct constant disparity on a shifted texture: appearance only at the borders.
    left, right = stereo_pair(3)
    good = torch.cat([constant_disparity(3), constant_disparity(3)], 1)
    bad = torch.cat([constant_disparity(0), constant_disparity(0)], 1)
    assert loss([good], left, right)[0] < 0.5 * loss([bad], left, right)[0]


def test_smoothness_weight_halves_per_scale():
    loss = StereoReconstructionLoss(smoothness_weight=1.0)
    image = torch.zeros(1, 3, 8, 8)
    ramps = [(0.01 * torch.arange(8 >> s, dtype=torch.float32)).view(1, 1, 1, -1)
             .expand(1, 2, 8 >> s, 8 >> s).contiguous() for s in range(3)]
    _, terms = loss(ramps, image, image)
    # Per scale: (left + right) 0.01 / 2^s -> 0.02 (1 + 1/2 + 1/4)
    assert terms['smoothness'].item() == pytest.approx(0.02 * 1.75, rel=1e-5)


def test_occlusion_masks_by_hand():
    # Background 1 px, a foreground 4 px at left columns 5-7 (right columns 1-3): the
    # background left of it in the left view (columns 2-4) lands where the foreground lands,
    # and the background right of it in the right view (columns 4-6) is hidden from the left.
    width = 10
    left = torch.full((1, 1, 1, width), 1.0 / width)
    left[..., 5:8] = 4.0 / width
    right = torch.full((1, 1, 1, width), 1.0 / width)
    right[..., 1:4] = 4.0 / width
    visible_left, visible_right = occlusion_masks(left, right)
    assert visible_left.flatten().tolist() == [1, 1, 0, 0, 0, 1, 1, 1, 1, 1]
    assert visible_right.flatten().tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 1]
    # A plane (constant or slowly varying disparity) is visible everywhere.
    ramp = (0.02 + 0.001 * torch.arange(width, dtype=torch.float32)).view(1, 1, 1, -1)
    assert all(mask.all() for mask in occlusion_masks(ramp, ramp))


def test_masked_appearance_averages_only_the_visible_pixels():
    loss = AppearanceMatchingLoss(alpha=0.0)                  # |I - I~| alone
    image = torch.zeros(1, 1, 2, 4)
    reconstruction = torch.tensor([0.2, 0.2, 0.2, 1.0]).expand(1, 1, 2, 4)
    assert loss(image, reconstruction).item() == pytest.approx(0.4)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(1, 1, 2, 4)
    assert loss(image, reconstruction, mask).item() == pytest.approx(0.2)
    # With nothing occluded the masked total is the paper's.
    left, right = stereo_pair(3)
    good = torch.cat([constant_disparity(3), constant_disparity(3)], 1)
    plain = StereoReconstructionLoss()([good], left, right)[0]
    masked = StereoReconstructionLoss(occlusion_mask=True)([good], left, right)[0]
    assert masked.item() == pytest.approx(plain.item(), rel=1e-6)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match='left/right'):
        StereoReconstructionLoss()([torch.zeros(1, 1, 4, 4)], torch.zeros(1, 3, 4, 4),
                                   torch.zeros(1, 3, 4, 4))
    assert np.isfinite(StereoReconstructionLoss()([torch.zeros(1, 2, 4, 4)],
                                                  torch.rand(1, 3, 4, 4),
                                                  torch.rand(1, 3, 4, 4))[0].item())
