"""Least-squares GAN losses (eq. 4 for D, eq. 5 for G) against hand-computed values."""
import pytest
import torch

from training.losses.lsgan import LSGANDiscriminatorLoss, LSGANGeneratorLoss


def test_discriminator_loss_is_real_to_one_plus_fake_to_zero():
    real = torch.tensor([[0.5, 1.0], [1.5, 2.0]])     # (D(y) - 1)^2: .25, 0, .25, 1
    fake = torch.tensor([0.2, -0.4])                  # D(G(x))^2: .04, .16
    assert LSGANDiscriminatorLoss()(real, fake).item() == pytest.approx(0.375 + 0.1)


def test_generator_loss_pulls_fake_scores_to_one():
    fake = torch.tensor([0.2, -0.4], requires_grad=True)   # (-0.8)^2, (-1.4)^2
    loss = LSGANGeneratorLoss()(fake)
    assert loss.item() == pytest.approx((0.64 + 1.96) / 2)
    loss.backward()
    # d/df mean((f - 1)^2) = 2 (f - 1) / n: least squares keeps pushing confident fakes.
    assert fake.grad.tolist() == pytest.approx([-0.8, -1.4])


def test_perfect_scores_give_zero():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert LSGANDiscriminatorLoss()(ones, zeros).item() == 0.0
    assert LSGANGeneratorLoss()(ones).item() == 0.0
