"""training.metrics against values computed by hand."""
import math

import numpy as np
import pytest

from training.metrics import (DepthEvalProtocol, MetricAverager, crop_mask, depth_metrics,
                              disparity_metrics, mape, psnr, scale_invariant_log_error, ssim)

NAN = float('nan')
# Four valid pixels and one without ground truth (whose prediction must be ignored).
GT = np.array([[1.0, 2.0, 4.0, 10.0, NAN]])
PRED = np.array([[1.2, 3.0, 2.0, 8.0, 7.0]])


def test_depth_metrics_by_hand():
    m = depth_metrics(PRED, GT)
    assert m['abs_rel'] == pytest.approx((0.2 / 1 + 1 / 2 + 2 / 4 + 2 / 10) / 4)    # 0.35
    assert m['sq_rel'] == pytest.approx((0.04 / 1 + 1 / 2 + 4 / 4 + 4 / 10) / 4)    # 0.485
    assert m['rmse'] == pytest.approx(math.sqrt((0.04 + 1 + 4 + 4) / 4))
    d = [math.log(1.2), math.log(1.5), math.log(0.5), math.log(0.8)]
    assert m['rmse_log'] == pytest.approx(math.sqrt(sum(x * x for x in d) / 4))
    variance = sum(x * x for x in d) / 4 - (sum(d) / 4) ** 2
    assert m['rmse_log_si'] == pytest.approx(math.sqrt(variance))
    # max(p/g, g/p) = 1.2, 1.5, 2.0, 1.25: only 1.2 < 1.25 (strict); 2.0 > 1.25^3 = 1.953
    assert (m['delta1'], m['delta2'], m['delta3']) == pytest.approx((0.25, 0.75, 0.75))
    assert m['coverage'] == 1.0


def test_missing_predictions_lower_coverage_and_are_not_scored():
    pred = PRED.copy()
    pred[0, 1] = NAN     # the pixel with error 1 m
    m = depth_metrics(pred, GT)
    assert m['coverage'] == pytest.approx(0.75)
    assert m['abs_rel'] == pytest.approx((0.2 + 0.5 + 0.2) / 3)


def test_median_scaling_removes_a_global_scale():
    gt = np.array([[1.0, 2.0, 3.0, 5.0]])
    m = depth_metrics(2.0 * gt, gt, DepthEvalProtocol(median_scaling=True))
    assert m['median_scale'] == pytest.approx(0.5)
    assert m['abs_rel'] == pytest.approx(0.0, abs=1e-12)
    assert m['delta1'] == 1.0
    unscaled = depth_metrics(2.0 * gt, gt)
    assert unscaled['abs_rel'] == pytest.approx(1.0)


def test_80m_cap_masks_ground_truth_and_clamps_predictions():
    gt = np.array([[50.0, 100.0]])      # 100 m is beyond the cap: not evaluated
    pred = np.array([[200.0, 1.0]])     # 200 m is clamped to 80 m
    m = depth_metrics(pred, gt, DepthEvalProtocol(max_depth=80.0))
    assert m['abs_rel'] == pytest.approx(30.0 / 50.0)
    assert m['rmse'] == pytest.approx(30.0)


def test_eigen_and_garg_crops():
    nyu = crop_mask(480, 640, 'eigen_nyu')
    assert nyu.sum() == (471 - 45) * (601 - 41)
    assert nyu[45, 41] and not nyu[44, 41] and not nyu[45, 40] and not nyu[471, 300]
    kitti = crop_mask(375, 1242, 'garg')
    # rows int(0.40810811 * 375) = 153 .. int(0.99189189 * 375) = 371,
    # columns int(0.03594771 * 1242) = 44 .. int(0.96405229 * 1242) = 1197
    assert kitti.sum() == (371 - 153) * (1197 - 44)
    assert kitti[153, 44] and not kitti[152, 44]
    with pytest.raises(ValueError, match='crop'):
        crop_mask(10, 10, 'nonsense')


def test_crop_restricts_evaluated_pixels():
    gt = np.full((480, 640), 2.0)
    pred = np.full((480, 640), 2.0)
    pred[0, 0] = 4.0   # outside the Eigen crop: ignored
    assert depth_metrics(pred, gt, DepthEvalProtocol(crop='eigen_nyu'))['abs_rel'] == 0.0
    assert depth_metrics(pred, gt)['abs_rel'] == pytest.approx(1.0 / (480 * 640))


def test_no_valid_ground_truth_is_an_error():
    with pytest.raises(ValueError, match='ground-truth'):
        depth_metrics(np.ones((2, 2)), np.full((2, 2), NAN))
    with pytest.raises(ValueError, match='shape'):
        depth_metrics(np.ones((2, 2)), np.ones((2, 3)))


def test_scale_invariant_log_error_by_hand():
    # d = ln 2, ln 4 = 2 ln 2:  D = (1 + 4) ln^2 2 / 2 - (3 ln 2)^2 / 4 = 0.25 ln^2 2
    assert scale_invariant_log_error(np.array([2.0, 4.0]), np.array([1.0, 1.0])) == \
        pytest.approx(0.25 * math.log(2) ** 2)
    gt = np.array([1.0, 2.0, 4.0, NAN])
    assert scale_invariant_log_error(3.0 * gt, gt) == pytest.approx(0.0, abs=1e-12)


def test_mape_percent():
    assert mape(PRED, GT) == pytest.approx(35.0)


def test_disparity_epe_and_bad_n():
    gt = np.array([10.0, 20.0, 30.0, NAN, 0.0])
    pred = np.array([10.5, 22.5, 26.0, 5.0, 1.0])
    m = disparity_metrics(pred, gt)          # errors 0.5, 2.5, 4.0 on the 3 valid pixels
    assert m['epe'] == pytest.approx(7.0 / 3.0)
    assert m['bad_1'] == pytest.approx(200 / 3)
    assert m['bad_2'] == pytest.approx(200 / 3)
    assert m['bad_3'] == pytest.approx(100 / 3)
    pred[0] = NAN                             # a missing prediction is bad at every N
    m = disparity_metrics(pred, gt)
    assert m['epe'] == pytest.approx(6.5 / 2.0)
    assert m['coverage'] == pytest.approx(2 / 3)
    assert m['bad_3'] == pytest.approx(200 / 3)


def test_psnr_of_a_constant_error():
    reference = np.zeros((8, 8), dtype=np.uint8)
    image = np.full((8, 8), 10, dtype=np.uint8)     # MSE = 100
    assert psnr(image, reference, data_range=255) == \
        pytest.approx(10 * math.log10(255 ** 2 / 100))   # 28.13 dB


def test_ssim_of_constant_images_and_identity():
    # Constant images have no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 L)^2
    a, b, c1 = 0.2, 0.4, 0.01 ** 2
    value = ssim(np.full((16, 16), a), np.full((16, 16), b), data_range=1.0)
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))
    image = np.random.default_rng(0).random((16, 16, 3))
    assert ssim(image, image, data_range=1.0) == pytest.approx(1.0)


def test_metric_averager_means_per_image():
    averager = MetricAverager()
    averager.add({'abs_rel': 0.1, 'median_scale': 2.0})
    averager.add({'abs_rel': 0.3})
    assert averager.images == 2
    assert averager.means() == pytest.approx({'abs_rel': 0.2, 'median_scale': 2.0})
