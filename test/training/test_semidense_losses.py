"""Total variation and the VGG16 perceptual loss against hand-computed values."""
import pytest
import torch

from training.losses.perceptual import PerceptualLoss
from training.losses.total_variation import TotalVariationLoss
from training.networks.vgg16 import IMAGENET_STD, VGG16Features

torch.set_num_threads(1)


def test_total_variation_by_hand():
    y = torch.tensor([[1.0, 2.0, 4.0],
                      [1.0, 5.0, 4.0]]).view(1, 1, 2, 3)
    # vertical |differences|: 0, 3, 0 -> mean 1; horizontal: 1, 2, 4, 1 -> mean 2
    assert TotalVariationLoss()(y).item() == pytest.approx(3.0)
    assert TotalVariationLoss()(torch.full((2, 1, 4, 5), 7.0)).item() == 0.0
    # Resolution-independent: a ramp of slope 0.1 per pixel costs 0.1 at any size.
    for width in (8, 64):
        ramp = (0.1 * torch.arange(width, dtype=torch.float32)).expand(1, 1, 4, width)
        assert TotalVariationLoss()(ramp).item() == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TotalVariationLoss()(torch.zeros(1, 1, 1, 5))


def identity_conv1_1():
    """VGG16 up to conv1_1 whose first three filters copy the R, G, B inputs."""
    features = VGG16Features('conv1_1')
    conv = features.features[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(3):
            conv.weight[c, c, 1, 1] = 1.0
    return features


def test_perceptual_loss_by_hand():
    # phi = conv1_1 copying the ImageNet-normalised grey input into 3 of its 64 channels, so
    # phi_c(y) - phi_c(y*) = (y - y*) / std_c for c < 3 and 0 for the other 61 channels:
    #   L = 1/(C H W) sum ||.||^2 = delta^2 * sum_c 1/std_c^2 / 64 for a constant delta.
    loss = PerceptualLoss(identity_conv1_1())
    target = torch.rand(2, 1, 6, 8)
    delta = 0.2
    expected = delta ** 2 * sum(1.0 / s ** 2 for s in IMAGENET_STD) / 64
    assert loss(target + delta, target).item() == pytest.approx(expected, rel=1e-5)
    assert loss(target, target).item() == 0.0
    # Unknown ground truth adds nothing: only a quarter of the pixels is valid.
    valid = torch.zeros_like(target, dtype=torch.bool)
    valid[:, :, :3, :4] = True
    assert loss(target + delta, target, valid).item() == pytest.approx(expected / 4,
                                                                       rel=1e-5)


def test_perceptual_gradient_reaches_the_prediction_only():
    loss = PerceptualLoss(identity_conv1_1())
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    target = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in loss.features.parameters())


def test_gradient_matching_by_hand():
    from training.losses.gradient_matching import GradientMatchingLoss
    target = torch.zeros(1, 1, 2, 3)
    # R = prediction - target: row 0 = 0, 1, 3; row 1 = 0, 0, 0
    pred = torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]]).view(1, 1, 2, 3)
    valid = torch.ones(1, 1, 2, 3, dtype=torch.bool)
    # one scale: x differences 1, 2, 0, 0; y differences 0, 1, 3 -> 7 / 7 pairs
    assert GradientMatchingLoss(scales=1)(pred, target, valid).item() == pytest.approx(1.0)
    # scale 2 (every second pixel): one row (0, 3) -> x difference 3, no y pair -> 3 / 1
    assert GradientMatchingLoss(scales=2)(pred, target, valid).item() == pytest.approx(2.0)
    # A pair counts only where both of its pixels have ground truth.
    valid[0, 0, 0, 2] = False
    # x: 1, 0, 0 (3 pairs); y: 0, 1 (2 pairs) -> 2 / 5
    assert GradientMatchingLoss(scales=1)(pred, target, valid).item() == pytest.approx(0.4)
    # A constant log offset (a global scale error) costs nothing.
    assert GradientMatchingLoss()(target + 0.7, target, valid.fill_(True)).item() == 0.0
    with pytest.raises(ValueError, match='scales'):
        GradientMatchingLoss(scales=0)
