"""The pix2pix losses against hand-computed numbers (cGAN sigmoid cross-entropy, masked L1)."""
import math

import pytest
import torch

from training.losses.gan import BinaryCrossEntropyGANLoss
from training.losses.masked_l1 import MaskedL1Loss


def test_gan_loss_is_sigmoid_cross_entropy_against_ones_or_zeros():
    loss = BinaryCrossEntropyGANLoss()
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])     # D = sigmoid: 1/2 and 3/4
    # real: -(log 1/2 + log 3/4) / 2;  fake: -(log(1 - 1/2) + log(1 - 3/4)) / 2
    assert loss(logits, True).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert loss(logits, False).item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    # Confident wrong answers cost |logit| without overflowing.
    assert loss(torch.tensor([100.0]), False).item() == pytest.approx(100.0)
    assert loss(torch.tensor([-100.0]), True).item() == pytest.approx(100.0)


def test_discriminator_objective_halved_as_in_the_paper():
    loss = BinaryCrossEntropyGANLoss()
    d_real, d_fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    halved = 0.5 * (loss(d_real, True) + loss(d_fake, False))
    # [-(log s(2) + log s(0)) / 2 - (log(1 - s(-1)) + log(1 - s(1))) / 2] / 2
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = 0.5 * (-(math.log(s(2)) + math.log(s(0))) / 2
                      - (math.log(1 - s(-1)) + math.log(1 - s(1))) / 2)
    assert halved.item() == pytest.approx(expected)


def test_masked_l1_counts_valid_pixels_only_and_ignores_nan_targets():
    loss = MaskedL1Loss()
    pred = torch.tensor([[[[0.5, -1.0], [0.25, 1.0]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 0.0], [float('nan'), 0.5]]]])
    valid = torch.tensor([[[[True, True], [False, True]]]])
    value = loss(pred, target, valid)
    assert value.item() == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    value.backward()
    # d/dpred |pred - target| / 3 = sign / 3; the masked NaN pixel gets exactly 0.
    assert pred.grad.flatten().tolist() == pytest.approx([1 / 3, -1 / 3, 0.0, 1 / 3])


def test_pix2pix_generator_objective_with_lambda_100():
    gan, l1 = BinaryCrossEntropyGANLoss(), MaskedL1Loss()
    d_fake = torch.tensor([0.0])                              # D undecided: log 2
    pred, target = torch.full((1, 1, 2, 2), 0.1), torch.zeros(1, 1, 2, 2)
    total = gan(d_fake, True) + 100.0 * l1(pred, target, torch.ones(1, 1, 2, 2, dtype=bool))
    assert total.item() == pytest.approx(math.log(2) + 100 * 0.1)   # eq. 4


def test_masked_l1_without_ground_truth_is_zero_and_shapes_are_checked():
    loss = MaskedL1Loss()
    pred = torch.ones(1, 1, 2, 2, requires_grad=True)
    value = loss(pred, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.bool))
    assert value.item() == 0.0 and value.requires_grad
    with pytest.raises(ValueError, match='shapes differ'):
        loss(pred, torch.zeros(1, 1, 2, 3), torch.ones(1, 1, 2, 3, dtype=torch.bool))
