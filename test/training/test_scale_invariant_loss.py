"""ScaleInvariantLoss (Eigen et al. eq. 4) against values computed by hand."""
import math

import numpy as np
import pytest
import torch

from training.losses.scale_invariant import ScaleInvariantLoss
from training.metrics import scale_invariant_log_error


def _image(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 2, 2)


PRED = _image([0.0, 1.0, 2.0, 3.0])      # log depth; target 0 gives d = 0, 1, 2, 3
TARGET = _image([0.0, 0.0, 0.0, 0.0])
ALL = torch.ones(1, 1, 2, 2, dtype=torch.bool)


@pytest.mark.parametrize('lam, expected', [
    (0.0, 14 / 4),                        # sum d^2 / n
    (0.5, 14 / 4 - 0.5 * 36 / 16),        # = 2.375
    (1.0, 14 / 4 - 36 / 16),              # = 1.25, the variance of 0, 1, 2, 3
])
def test_loss_by_hand(lam, expected):
    assert ScaleInvariantLoss(lam)(PRED, TARGET, ALL).item() == pytest.approx(expected)


def test_gradient_by_hand():
    pred = PRED.clone().requires_grad_(True)
    ScaleInvariantLoss(0.5)(pred, TARGET, ALL).backward()
    # dL/dy_i = 2 d_i / n - 2 lambda (sum d) / n^2 = d_i / 2 - 0.375
    assert pred.grad.flatten().tolist() == pytest.approx([-0.375, 0.125, 0.625, 1.125])


def test_masked_pixels_are_ignored_even_when_nan():
    target = _image([0.0, 0.0, 0.0, float('nan')])
    valid = torch.tensor([True, True, True, False]).view(1, 1, 2, 2)
    pred = PRED.clone().requires_grad_(True)
    loss = ScaleInvariantLoss(0.5)(pred, target, valid)
    assert loss.item() == pytest.approx(5 / 3 - 0.5 * 9 / 9)     # d = 0, 1, 2
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.flatten()[3] == 0


def test_batch_mean_over_images_with_ground_truth():
    pred = torch.cat([PRED, _image([1.0] * 4), _image([5.0] * 4)])
    target = torch.zeros_like(pred)
    valid = torch.ones_like(pred, dtype=torch.bool)
    valid[2] = False                          # an image without ground truth: left out
    # image 2: d = 1 everywhere -> 1 - 0.5 * 16 / 16 = 0.5
    assert ScaleInvariantLoss(0.5)(pred, target, valid).item() == \
        pytest.approx((2.375 + 0.5) / 2)


def test_lambda_one_is_scale_invariant_and_matches_the_metric():
    gt = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(0)) * 5 + 0.5
    pred = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(1)) * 5 + 0.5
    valid = torch.ones_like(gt, dtype=torch.bool)
    loss = ScaleInvariantLoss(1.0)
    base = loss(pred.log(), gt.log(), valid).item()
    assert loss((3.0 * pred).log(), gt.log(), valid).item() == pytest.approx(base, rel=1e-5)
    assert base == pytest.approx(scale_invariant_log_error(pred.numpy(), gt.numpy()),
                                 rel=1e-5)
    # lambda = 0.5 keeps an absolute-scale term: a global factor 3 costs (1 - 0.5) ln^2 3
    half = ScaleInvariantLoss(0.5)
    assert half((3.0 * gt).log(), gt.log(), valid).item() == \
        pytest.approx(0.5 * math.log(3) ** 2, rel=1e-5)


def test_invalid_lambda_and_shapes_are_rejected():
    with pytest.raises(ValueError, match='lambda'):
        ScaleInvariantLoss(1.5)
    with pytest.raises(ValueError, match='shapes'):
        ScaleInvariantLoss()(PRED, torch.zeros(1, 1, 2, 3), ALL)


def test_no_ground_truth_gives_zero_loss():
    loss = ScaleInvariantLoss()(PRED, TARGET, torch.zeros_like(ALL))
    assert loss.item() == 0.0 and not np.isnan(loss.item())
