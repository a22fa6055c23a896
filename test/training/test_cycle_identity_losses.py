"""Cycle consistency (eq. 1) and identity (eq. 2) losses and channel matching, by hand."""
import pytest
import torch

from training.losses.cycle import CycleConsistencyLoss
from training.losses.identity import IdentityLoss, match_channels


def test_cycle_loss_is_the_sum_of_both_mean_l1_reconstruction_errors():
    x, x_rec = torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[0.5, 0.5]]]])     # mean 0.5
    y, y_rec = torch.tensor([[[[1.0, 2.0, 3.0]]]]), torch.ones(1, 1, 1, 3)         # mean 1.0
    assert CycleConsistencyLoss()(x, x_rec, y, y_rec).item() == pytest.approx(1.5)
    assert CycleConsistencyLoss()(x, x, y, y).item() == 0.0
    with pytest.raises(ValueError, match='differs'):
        CycleConsistencyLoss()(x, y, y, y_rec)


def test_identity_matches_channels_between_rgb_and_single_channel_domains():
    # G1: RGB -> NIR (3 -> 1). Paper form: ||x - G1(x)||, the 1-channel output repeated to 3.
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    g1_x = torch.full((1, 1, 1, 1), 2.0)              # |1-2|, |2-2|, |3-2| -> mean 2/3
    # ||y - G2(y)||: the 3-channel output averaged to 1 channel: mean(0, .5, 1) = .5 = y.
    y = torch.full((1, 1, 1, 1), 0.5)
    g2_y = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert IdentityLoss()(x, g1_x, y, g2_y).item() == pytest.approx(2 / 3)
    assert IdentityLoss()(x, g1_x).item() == pytest.approx(2 / 3)      # one-sided: G1 only


def test_match_channels():
    gray = torch.arange(4.0).view(1, 1, 2, 2)
    assert torch.equal(match_channels(gray, 3), gray.expand(1, 3, 2, 2))
    rgb = torch.stack([gray[0, 0], 2 * gray[0, 0], 3 * gray[0, 0]])[None]
    assert torch.equal(match_channels(rgb, 1), 2 * gray)
    assert match_channels(rgb, 3) is rgb
    with pytest.raises(ValueError, match='cannot match 3 channels to 2'):
        match_channels(rgb, 2)
