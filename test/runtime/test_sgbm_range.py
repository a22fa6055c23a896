"""StereoSGBM's disparity search range: chosen from min_depth and the rig, a warning when a
configured range cannot reach min_depth, matches at the search limit masked."""
import logging

import numpy as np
import pytest
from fixtures.stereo_pairs import textured_pair

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.stereo import SgbmParameters, num_disparities_for, sgbm_disparity
from depth_nodes.runtime.stereo_estimator import SgbmStereoEstimator

H, W = 96, 320
# fx B = 400 px * 0.1 m = 40 px m: a disparity of 80 px is 0.5 m.
LEFT = CameraIntrinsics(W, H, fx=400.0, fy=400.0, cx=159.5, cy=47.5)
RIGHT = CameraIntrinsics(W, H, fx=400.0, fy=400.0, cx=159.5, cy=47.5, tx=-40.0)


@pytest.fixture
def warnings():
    """Warnings of the stereo estimator's logger (launch_testing's logger class does not
    propagate to caplog's root handler)."""
    class Keep(logging.Handler):
        def emit(self, record):
            kept.append(record.getMessage())
    kept, handler = [], Keep(logging.WARNING)
    logger = logging.getLogger('depth_nodes.runtime.stereo_estimator')
    logger.addHandler(handler)
    yield kept
    logger.removeHandler(handler)


@pytest.mark.parametrize('min_depth, offset, width, expected', [
    (0.5, 0.0, 0, 128),       # fx B / Z = 60 / 0.5 = 120 px; max_disparity > 120 -> 122 -> 128
    (0.6, 0.0, 0, 112),       # 100 px -> 102 -> 112
    (0.5, 4.0, 0, 128),       # 116 px -> 118 -> 128
    (0.1, 0.0, 0, 256),       # 600 px: capped
    (0.1, 0.0, 200, 192),     # ... and below the width
    (30.0, 0.0, 0, 16),       # 2 px: at least one block of 16
])
def test_num_disparities_from_min_depth_and_the_rig(min_depth, offset, width, expected):
    assert num_disparities_for(min_depth, 500.0, 0.12, offset, 0, width) == expected


def test_sgbm_reaches_disparities_above_64_px_with_the_automatic_range(warnings):
    left, right = textured_pair(80, H, W)       # a plane at 80 px: 0.5 m
    estimator = SgbmStereoEstimator()           # num_disparities 0: automatic
    result = estimator.estimate(left, 'mono8', right, 'mono8', LEFT, RIGHT,
                                depth_range=(0.4, 100.0))
    assert warnings == []
    # min_depth 0.4 m: 40 / 0.4 = 100 px -> 102 -> 112 disparities.
    assert estimator.search.num_disparities == 112 and result.max_disparity == 111.0
    x, y, w, h = result.valid_window
    inside = result.depth[y:y + h, x:x + w]
    assert np.isfinite(inside).mean() > 0.95
    assert np.nanmedian(inside) == pytest.approx(0.5, rel=1e-3)
    assert np.mean(np.abs(inside - 0.5) < 0.005) > 0.95


def test_a_range_short_of_min_depth_is_logged_once(warnings):
    left, right = textured_pair(80, H, W)
    estimator = SgbmStereoEstimator(SgbmParameters(num_disparities=64))
    for _ in range(2):
        result = estimator.estimate(left, 'mono8', right, 'mono8', LEFT, RIGHT,
                                    depth_range=(0.4, 100.0))
    assert len(warnings) == 1
    # The largest disparity kept is just below 63 px: 40 / 63 = 0.635 m.
    assert 'reaches 0.635 m, not min_depth 0.4 m' in warnings[0]
    assert 'sgbm.num_disparities' in warnings[0]
    # No pixel of the 0.5 m plane is published as 0.5 m: it lies beyond the search.
    assert not (np.abs(result.depth - 0.5) < 0.05).any()


def test_matches_at_the_search_limit_are_masked():
    # True disparity 64, search 0..63: SGBM's best match for many pixels is the limit, 63.
    left, right = textured_pair(64, H, W)
    params = SgbmParameters(num_disparities=64)
    fixed_point = params.create_matcher(1).compute(left, right)
    assert (fixed_point == 63 * 16).sum() > 1000
    disparity = sgbm_disparity(left, right, params)
    assert np.nanmax(disparity) < 63.0
    assert np.isnan(disparity[fixed_point == 63 * 16]).all()


def test_automatic_range_is_resolved_before_use():
    with pytest.raises(ValueError, match='resolved'):
        SgbmParameters().max_disparity
    assert SgbmParameters().resolved(0.5, 500.0, 0.12).num_disparities == 128
    assert SgbmParameters(num_disparities=32).resolved(0.5, 500.0, 0.12).num_disparities == 32


def test_a_search_range_as_wide_as_the_image_is_a_counted_rejection_not_an_opencv_error():
    # 40 px wide, 128 disparities asked: OpenCV would raise cv2.error ('input images are too
    # small'); the estimator refuses the pair as bad input (dropped and counted by the nodes
    # and process_bag). The automatic range stays below the width and runs.
    import numpy as np
    import pytest

    from depth_nodes.core.camera import CameraIntrinsics
    from depth_nodes.core.encodings import ImageFormatError
    from depth_nodes.core.stereo import SgbmParameters
    from depth_nodes.runtime.stereo_estimator import SgbmStereoEstimator
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    cam = CameraIntrinsics(40, 48, fx=30.0, fy=30.0, cx=19.5, cy=23.5)
    fixed = SgbmStereoEstimator(SgbmParameters(num_disparities=128))
    with pytest.raises(ImageFormatError, match='40 px wide .* 0..127') as err:
        fixed.estimate(image, 'rgb8', image, 'rgb8', cam, cam, baseline=0.1)
    assert err.value.kind == 'image_too_small'
    automatic = SgbmStereoEstimator(SgbmParameters(num_disparities=0))
    result = automatic.estimate(image, 'rgb8', image, 'rgb8', cam, cam, baseline=0.1)
    assert result.depth.shape == (48, 40)
    assert automatic.search.max_disparity < 40
