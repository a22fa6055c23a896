"""Metric scale from sparse depth: known scale / affine in, the same numbers out, with 20 %
of the sparse points wrong."""
import numpy as np
import pytest

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import (OutputConversionError, output_to_metres,
                                          output_to_prediction)
from depth_nodes.core.scale_fit import (ScaleFitError, ScaleFitOptions, ScaleHold,
                                        SparseDepthScaler, fit_depth_scale,
                                        fit_inverse_depth_affine)


def _scene(shape=(96, 128), seed=3):
    rng = np.random.default_rng(seed)
    rows = np.linspace(1.0, 0.0, shape[0])[:, None]
    depth = 1.5 + 8.0 * rows + rng.uniform(0.0, 1.0, shape)       # 1.5 .. 10.5 m
    return depth.astype(np.float32), rng


def _sparse(depth, rng, density=0.1, outliers=0.2):
    sparse = np.zeros_like(depth)
    known = rng.random(depth.shape) < density
    sparse[known] = depth[known]
    index = np.flatnonzero(known)
    wrong = rng.choice(index, int(outliers * index.size), replace=False)
    # Outliers: a factor of 0.3 to 3 off (moving objects, stereo mismatches).
    sparse.flat[wrong] *= rng.choice([0.3, 0.5, 2.0, 3.0], wrong.size)
    return sparse, known.sum(), wrong.size


def test_depth_scale_recovers_the_scale_exactly_despite_20_percent_outliers():
    depth, rng = _scene()
    prediction = depth / 2.7                    # a model right up to a scale of 2.7
    sparse, n, n_wrong = _sparse(depth, rng)
    fit = fit_depth_scale(prediction, sparse)
    assert fit.scale == pytest.approx(2.7, rel=1e-6)
    assert fit.points == n
    assert fit.inliers == n - n_wrong
    assert fit.residual == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(fit.apply(prediction), depth, rtol=1e-5)


def test_inverse_depth_affine_recovers_scale_and_shift_despite_20_percent_outliers():
    depth, rng = _scene()
    # A relative inverse-depth model: raw = (1/z - t) / s for s = 0.04, t = 0.02.
    prediction = (1.0 / depth - 0.02) / 0.04
    sparse, n, n_wrong = _sparse(depth, rng)
    fit = fit_inverse_depth_affine(prediction, sparse)
    assert fit.scale == pytest.approx(0.04, rel=1e-5)
    assert fit.shift == pytest.approx(0.02, rel=1e-4)
    assert fit.inliers == n - n_wrong
    np.testing.assert_allclose(fit.apply(prediction), depth, rtol=1e-4)


def test_inverse_depth_fit_is_deterministic_per_frame():
    depth, rng = _scene()
    prediction = 3.0 / depth + 1.0
    sparse, _, _ = _sparse(depth, rng)
    assert fit_inverse_depth_affine(prediction, sparse) == \
        fit_inverse_depth_affine(prediction, sparse)


def test_noisy_sparse_depth_gives_the_least_squares_scale():
    depth, rng = _scene()
    sparse = np.where(rng.random(depth.shape) < 0.2,
                      depth * np.exp(rng.normal(0.0, 0.02, depth.shape)), 0.0)
    fit = fit_depth_scale(depth * 0.5, sparse)
    assert fit.scale == pytest.approx(2.0, rel=0.01)
    assert 0.005 < fit.residual < 0.03


def test_too_few_points_and_mismatched_sizes_are_errors():
    depth, _ = _scene()
    sparse = np.zeros_like(depth)
    sparse[0, :10] = depth[0, :10]
    with pytest.raises(ScaleFitError, match='10 valid sparse points, need 20'):
        fit_depth_scale(depth, sparse)
    with pytest.raises(ScaleFitError, match='differ in size'):
        fit_inverse_depth_affine(depth, depth[:10])
    with pytest.raises(ScaleFitError, match='constant'):
        fit_inverse_depth_affine(np.ones_like(depth), depth)


def test_scale_hold_keeps_the_last_fit_for_hold_seconds_then_drops_it():
    depth, rng = _scene()
    fit = fit_depth_scale(depth, _sparse(depth, rng)[0])
    hold = ScaleHold(hold_s=2.0)
    assert hold.current(10.0) is None
    hold.update(fit, 10.0)
    assert hold.current(11.5) is fit
    assert hold.current(12.0) is fit
    assert hold.current(12.01) is None
    assert hold.age(13.0) == pytest.approx(3.0)
    assert hold.current(9.0) is None          # time went back: reset
    assert hold.current(10.5) is None


def test_scaler_fits_holds_and_counts_and_a_failed_fit_falls_back_to_the_held_one():
    depth, rng = _scene()
    prediction = depth / 2.7
    sparse, _, _ = _sparse(depth, rng)
    scaler = SparseDepthScaler('depth_scale')
    options = ScaleFitOptions(hold_s=1.0, inlier_error=0.1, min_points=20)
    assert scaler.scale(prediction, None, 10.0, options) is None        # nothing yet
    assert scaler.scale(prediction, sparse, 10.0, options).scale == pytest.approx(2.7)
    too_few = np.where(np.arange(sparse.size).reshape(sparse.shape) < 40, sparse, 0)
    held = scaler.scale(prediction, too_few, 10.5, options)           # < 20 points: held
    assert held.scale == pytest.approx(2.7) and 'need 20' in scaler.last_error
    assert scaler.scale(prediction, None, 11.5, options) is None        # 1.5 s > hold_s
    assert scaler.scale(prediction, sparse, 5.0, options) is not None   # its own fit
    assert (scaler.fitted, scaler.held, scaler.unscaled) == (2, 1, 2)


def test_relative_inverse_depth_is_metres_only_through_a_fit():
    spec = ModelSpec(output_kind='relative_inverse_depth', output_scale=2.0, output_shift=1.0)
    raw = np.array([[0.5, np.inf]], np.float32)
    with pytest.raises(OutputConversionError, match='scale_from'):
        output_to_metres(raw, spec)
    np.testing.assert_array_equal(output_to_prediction(raw, spec), [[2.0, np.nan]])
    # Depth kinds: metres without the range limit (it applies after the scale).
    log_spec = ModelSpec(output_kind='log_depth', max_depth=1.0)
    np.testing.assert_allclose(output_to_prediction(np.log(np.float32([[4.0]])), log_spec),
                               [[4.0]], rtol=1e-6)
