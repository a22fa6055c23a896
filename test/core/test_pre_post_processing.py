import math

import numpy as np
import pytest

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.postprocess import (OutputConversionError, crop_letterbox,
                                          output_to_metres, resize_output, squeeze_output)
from depth_nodes.core.preprocess import image_to_tensor, letterbox_box, resize_image


def spec(**kw):
    base = dict(input_height=2, input_width=2, min_depth=0.01, max_depth=1000.0)
    base.update(kw)
    return ModelSpec(**base)


def test_rgb8_to_normalised_tensor_exact():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 51, 0
    s = spec(mean=(0.5, 0.2, 0.0), std=(0.5, 0.1, 1.0))
    t = image_to_tensor(image, 'rgb8', s)
    assert t.shape == (1, 3, 2, 2) and t.dtype == np.float32
    np.testing.assert_allclose(t[0, :, 0, 0], [(1.0 - 0.5) / 0.5, (0.2 - 0.2) / 0.1, 0.0],
                               atol=1e-6)


def test_bgr8_input_is_reordered_for_an_rgb_model():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255  # blue in bgr8
    t = image_to_tensor(image, 'bgr8', spec())
    assert t[0, 2].min() == 1.0 and t[0, 0].max() == 0.0


def test_mono16_to_rgb_model_replicates_and_scales():
    image = np.full((2, 2), 65535, np.uint16)
    t = image_to_tensor(image, 'mono16', spec())
    np.testing.assert_allclose(t, 1.0)


def test_rgb_to_gray_model_uses_bt601_luma():
    gray_spec = spec(input_channels=1, mean=(0.0,), std=(1.0,))
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255
    assert image_to_tensor(image, 'rgb8', gray_spec)[0, 0, 0, 0] == pytest.approx(0.299)
    assert image_to_tensor(image, 'bgr8', gray_spec)[0, 0, 0, 0] == pytest.approx(0.114)


def test_shrinking_resize_matches_area_averaging_and_does_not_alias():
    import cv2
    from skimage.data import astronaut
    image = cv2.resize(astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    ours = resize_image(image, 228, 304).astype(int)
    area = cv2.resize(image, (304, 228), interpolation=cv2.INTER_AREA).astype(int)
    assert ours.shape == (228, 304, 3)
    assert np.abs(ours - area).mean() < 2.0            # grey levels, on a natural image
    # One-pixel stripes shrunk 4.2x: averaging gives flat grey, point sampling would alias.
    stripes = np.tile(np.array([0, 255], np.uint8), (960, 640))
    shrunk = resize_image(stripes, 228, 304)
    assert abs(float(shrunk.mean()) - 127.5) < 1.0 and shrunk.std() < 2.0


@pytest.mark.parametrize('image, model, box', [
    ((500, 741), (128, 128), (86, 128, 21, 0)),     # 3:2 into a square: 500 * 128 / 741 rows
    ((480, 640), (128, 128), (96, 128, 16, 0)),     # 4:3
    ((480, 640), (96, 128), (96, 128, 0, 0)),       # same aspect: no padding
    ((640, 480), (96, 128), (96, 72, 0, 28)),       # portrait into landscape: columns padded
])
def test_letterbox_box_keeps_the_aspect_ratio(image, model, box):
    assert letterbox_box(*image, *model) == box


def test_letterbox_pads_by_repeating_the_edge_rows():
    image = np.repeat(np.array([10, 20, 30, 40], np.uint8)[:, None], 8, axis=1)   # 4x8 rows
    s = spec(input_height=8, input_width=8, input_channels=1, mean=(0.0,), std=(1.0,),
             resize_mode='letterbox')
    rows = image_to_tensor(image, 'mono8', s)[0, 0, :, 0] * 255
    np.testing.assert_allclose(rows, [10, 10, 10, 20, 30, 40, 40, 40], atol=1e-4)
    # The default squeezes the same image over all 8 rows instead.
    stretched = image_to_tensor(image, 'mono8', spec(input_height=8, input_width=8,
                                                     input_channels=1, mean=(0.0,),
                                                     std=(1.0,)))[0, 0, :, 0] * 255
    assert stretched[0] == pytest.approx(10, abs=1e-4) and stretched[7] == pytest.approx(40)
    assert 10 < stretched[2] < 20


def test_crop_letterbox_returns_the_rows_that_see_the_image():
    s = spec(input_height=8, input_width=8, resize_mode='letterbox')
    raw = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.testing.assert_array_equal(crop_letterbox(raw, 4, 8, s), raw[2:6])
    half = np.arange(16, dtype=np.float32).reshape(4, 4)         # an output at half size
    np.testing.assert_array_equal(crop_letterbox(half, 4, 8, s), half[1:3])
    np.testing.assert_array_equal(crop_letterbox(raw, 8, 8, s), raw)
    np.testing.assert_array_equal(crop_letterbox(raw, 4, 8, spec(input_height=8,
                                                                 input_width=8)), raw)


def test_depth_encoding_is_refused_for_an_image_model():
    with pytest.raises(ValueError, match='depth encoding'):
        image_to_tensor(np.zeros((2, 2), np.float32), '32FC1', spec())


@pytest.mark.parametrize('kind, raw, metres', [
    ('metric_depth', 2.5, 2.5),
    ('log_depth', math.log(3.0), 3.0),
    ('inverse_depth', 0.25, 4.0),
])
def test_output_kinds_to_metres(kind, raw, metres):
    out = output_to_metres(np.full((2, 2), raw, np.float32), spec(output_kind=kind))
    np.testing.assert_allclose(out, metres, rtol=1e-6)


def test_output_affine_is_applied_before_the_kind():
    s = spec(output_kind='inverse_depth', output_scale=2.0, output_shift=0.5)
    assert output_to_metres(np.full((1, 1), 0.75, np.float32), s)[0, 0] == pytest.approx(0.5)


def test_normalized_depth_brighter_is_closer():
    s = spec(output_kind='normalized_depth', output_range=(-1.0, 1.0), near_is_bright=True,
             min_depth=1.0, max_depth=11.0)
    out = output_to_metres(np.array([[1.0, -1.0, 0.0]], np.float32), s)
    np.testing.assert_allclose(out, [[1.0, 11.0, 6.0]])
    s_far = spec(output_kind='normalized_depth', output_range=(0.0, 1.0), near_is_bright=False,
                 min_depth=1.0, max_depth=11.0)
    np.testing.assert_allclose(output_to_metres(np.array([[0.25]], np.float32), s_far), 3.5)


def test_disparity_fraction_uses_camera_focal_length():
    # fx = 700 px on a 1400 px wide image, B = 0.5 m: d = 0.05 * 1400 = 70 px -> Z = 5 m.
    s = spec(output_kind='disparity_fraction', baseline=0.5)
    out = output_to_metres(np.full((2, 2), 0.05, np.float32), s, image_width=1400, fx=700.0)
    np.testing.assert_allclose(out, 5.0, rtol=1e-6)
    # Without camera_info the spec's focal fraction (fx / W = 0.5) gives the same answer.
    s2 = spec(output_kind='disparity_fraction', baseline=0.5, focal_fraction=0.5)
    np.testing.assert_allclose(output_to_metres(np.full((1, 1), 0.05, np.float32), s2), 5.0,
                               rtol=1e-6)
    with pytest.raises(OutputConversionError):
        output_to_metres(np.ones((1, 1), np.float32), spec(output_kind='disparity_fraction'))


def test_out_of_range_and_non_finite_become_nan():
    s = spec(output_kind='metric_depth', min_depth=0.5, max_depth=10.0)
    out = output_to_metres(np.array([[0.4, 0.5, 10.0, 10.5, np.nan, np.inf]], np.float32), s)
    assert np.isnan(out[0, [0, 3, 4, 5]]).all()
    np.testing.assert_array_equal(out[0, [1, 2]], [0.5, 10.0])


def test_resize_and_squeeze_output():
    raw = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    sq = squeeze_output(raw)
    assert sq.shape == (2, 2)
    up = resize_output(sq, 4, 4)
    assert up.shape == (4, 4)
    assert up[0, 0] == 0.0 and up[3, 3] == 3.0  # corners keep their values (half-pixel centres)
