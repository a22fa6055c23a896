"""Synthetic depth of field: thin-lens circle of confusion, layered blur, NaN depth, autofocus."""
import math

import numpy as np
import pytest

from depth_nodes.core.bokeh import (BokehError, ThinLens, blur_radius_px,
                                    circle_of_confusion_mm, disc_kernel, focus_distance_at,
                                    radius_levels, render_depth_of_field)

LENS = ThinLens(focal_length_mm=50.0, f_number=1.4, sensor_width_mm=36.0)


def textured(height, width, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, channels), dtype=np.uint8)


def measured_radius(out, y, x):
    """Radius of a uniform disc with the blurred point's second moment: E[r^2] = R^2 / 2."""
    yy, xx = np.mgrid[:out.shape[0], :out.shape[1]]
    second_moment = (out * ((yy - y) ** 2 + (xx - x) ** 2)).sum() / out.sum()
    return math.sqrt(2.0 * second_moment)


def test_circle_of_confusion_is_the_thin_lens_formula():
    lens = ThinLens(focal_length_mm=50.0, f_number=2.0, sensor_width_mm=36.0)
    # c = (f / N) f |d - d_f| / (d (d_f - f)), f = 50 mm, N = 2, d_f = 2 m:
    # d = 4 m: 25 * 50 * 2000 / (4000 * 1950) = 0.320513 mm (behind: positive)
    # d = 1 m: 25 * 50 * 1000 / (1000 * 1950) = 0.641026 mm (in front: negative)
    # d = inf: f^2 / (N (d_f - f)) = 2500 / 3900 = 0.641026 mm
    c = circle_of_confusion_mm(np.array([4.0, 1.0, np.inf, 2.0]), 2.0, lens)
    np.testing.assert_allclose(c, [0.320513, -0.641026, 0.641026, 0.0], atol=1e-6)
    # Radius in pixels of a 640 px wide image of the 36 mm sensor: c / 2 * 640 / 36.
    r = blur_radius_px(np.array([4.0]), 2.0, lens, 640)
    assert r[0] == pytest.approx(0.320513 / 2 * 640 / 36, rel=1e-5)


def test_blur_radius_is_linear_in_inverse_depth_difference():
    depths = np.array([0.3, 0.5, 0.9, 1.5, 2.5, 4.0, 9.0, 30.0])
    focus = 1.2
    r = blur_radius_px(depths, focus, LENS, 640)
    ratio = r / (1.0 / focus - 1.0 / depths)
    # The constant: f^2 d_f / (N (d_f - f)) mm, halved and converted to pixels.
    f, d_f = 50.0, 1200.0
    expected = 0.5 * f * f * d_f / (1.4 * (d_f - f)) * 640 / 36 / 1e3   # per 1/m
    np.testing.assert_allclose(ratio, expected, rtol=1e-9)


DEPTHS = (0.3, 0.35, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.6, 3.5, 6.0, 20.0)   # metres


def test_rendered_blur_of_a_point_grows_as_thin_lens_optics_says():
    size, focus = 200, 2.0
    point = np.zeros((size, size), np.float32)
    point[100, 100] = 1000.0
    predicted, measured = [], []
    for depth in DEPTHS:
        depth_map = np.full((size, size), depth, np.float32)
        out = render_depth_of_field(point, depth_map, focus, LENS, max_radius=64)
        assert out.sum() == pytest.approx(1000.0, rel=1e-4)      # light is conserved
        predicted.append(abs(float(blur_radius_px(np.array(depth), focus, LENS, size))))
        measured.append(measured_radius(out, 100, 100))
    predicted, measured = np.array(predicted), np.array(measured)
    assert predicted.min() < 1.5 and predicted.max() > 10   # fine and down-sampled levels
    # Within a pixel-area / quantisation allowance of the thin-lens radius everywhere ...
    assert np.all(np.abs(measured - predicted) <= 0.3 + 0.08 * predicted), \
        list(zip(predicted.round(2), measured.round(2)))
    # ... and proportional to |1/d - 1/d_f| with the thin-lens constant (least squares).
    inverse = np.abs(1.0 / focus - 1.0 / np.array(DEPTHS))
    slope = (measured @ inverse) / (inverse @ inverse)
    assert slope == pytest.approx((predicted @ inverse) / (inverse @ inverse), rel=0.06)


def test_pixels_at_the_focus_distance_are_identical():
    image = textured(60, 80)
    depth = np.full((60, 80), 6.0, np.float32)
    depth[:, :40] = 2.0                      # left half in focus, right half behind it
    out = render_depth_of_field(image, depth, 2.0, LENS)
    np.testing.assert_array_equal(out[:, :40], image[:, :40])
    assert np.abs(out[:, 44:].astype(int) - image[:, 44:]).mean() > 20   # blurred


def test_sharp_foreground_does_not_bleed_into_the_blurred_background():
    background = textured(80, 80)
    background[:, :, 0] = 0                  # no red anywhere in the background
    image = background.copy()
    image[30:50, 30:50] = (255, 0, 0)        # a red subject, in focus
    depth = np.full((80, 80), 10.0, np.float32)
    depth[30:50, 30:50] = 1.5
    out = render_depth_of_field(image, depth, 1.5, LENS)
    subject = np.zeros((80, 80), bool)
    subject[30:50, 30:50] = True
    np.testing.assert_array_equal(out[subject], image[subject])
    assert not out[~subject][:, 0].any()     # not a trace of red around the subject
    assert np.abs(out[~subject].astype(int) - image[~subject]).mean() > 10


def test_blurred_foreground_spills_over_the_in_focus_subject():
    image = np.zeros((80, 80, 3), np.uint8)  # a black subject in focus at 2 m ...
    image[:, :20] = 255                      # ... behind a white pole at 0.5 m
    depth = np.full((80, 80), 2.0, np.float32)
    depth[:, :20] = 0.5
    out = render_depth_of_field(image, depth, 2.0, LENS)
    radius = abs(float(blur_radius_px(np.array(0.5), 2.0, LENS, 80)))   # 4.2 px
    row = out[40, :, 0].astype(int)
    assert row[20] > 60                      # the pole's blur covers the subject's edge
    assert row[20 + int(radius) - 1] > 0
    assert not row[20 + int(math.ceil(radius)) + 2:].any()   # and ends at its radius
    # What the pole hides is unknown: its own blur is renormalised, it stays white inside.
    assert (row[:20] == 255).all()


def test_unknown_depth_is_kept_sharp_or_treated_as_infinitely_far():
    image = textured(48, 64).astype(np.float32)
    depth = np.full((48, 64), 5.0, np.float32)
    depth[10:30, 10:40] = np.nan
    depth[0, :] = 0.0
    depth[1, :] = -np.inf
    sharp = render_depth_of_field(image, depth, 1.0, LENS, unknown_depth='sharp')
    assert np.isfinite(sharp).all()
    unknown = ~(np.isfinite(depth) & (depth > 0))
    np.testing.assert_array_equal(sharp[12:28, 12:38], image[12:28, 12:38])
    far = render_depth_of_field(image, depth, 1.0, LENS, unknown_depth='far')
    infinite = render_depth_of_field(image, np.where(unknown, np.inf, depth), 1.0, LENS)
    assert np.isfinite(far).all()
    np.testing.assert_allclose(far, infinite, atol=1e-3)
    assert np.abs(far[12:28, 12:38] - image[12:28, 12:38]).mean() > 10


def test_encodings_keep_their_dtype_and_layout():
    depth = np.full((30, 40), 3.0, np.float32)
    for image in (textured(30, 40, channels=1)[:, :, 0], textured(30, 40, channels=4),
                  (textured(30, 40).astype(np.uint16) * 257)):
        out = render_depth_of_field(image, depth, 3.0, LENS)
        assert out.dtype == image.dtype and out.shape == image.shape
        np.testing.assert_array_equal(out, image)          # all in focus: unchanged
        blurred = render_depth_of_field(image, depth, 0.5, LENS)
        assert blurred.dtype == image.dtype and not np.array_equal(blurred, image)


def test_depth_of_another_size_is_resized_nearest_neighbour():
    image = textured(40, 60)
    small = np.full((20, 30), 8.0, np.float32)
    small[:, :15] = 1.0
    full = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(render_depth_of_field(image, small, 1.0, LENS),
                                  render_depth_of_field(image, full, 1.0, LENS))


def test_levels_and_kernels():
    assert radius_levels(32).tolist()[:6] == [0.0, 1.0, 2.0, 3.0, 4.0, pytest.approx(5.657, 1e-3)]
    assert radius_levels(32)[-1] >= 32 and radius_levels(0).tolist() == [0.0]
    for radius in (1.0, 2.5, 4.0):
        kernel = disc_kernel(radius)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        assert kernel.shape == (2 * math.ceil(radius - 0.5) + 1,) * 2
        np.testing.assert_array_equal(kernel, kernel.T)
    assert disc_kernel(0.2).tolist() == [[1.0]]


def test_focus_distance_at_a_point_is_the_median_depth_around_it():
    depth = np.full((40, 60), 4.0, np.float32)
    depth[18:23, 28:33] = [[1.0, 1.0, np.nan, 2.0, 2.0]] * 5
    # Image of 120x80 px: its pixel (60, 40) is depth pixel (30, 20).
    assert focus_distance_at(depth, 60, 40, (120, 80), window=5) == pytest.approx(1.5)
    assert focus_distance_at(depth, 2, 2, (120, 80)) == pytest.approx(4.0)
    assert focus_distance_at(depth, 120, 10, (120, 80)) is None
    assert focus_distance_at(np.full((4, 4), np.nan, np.float32), 1, 1, (4, 4)) is None


def test_bad_lens_focus_and_inputs_are_named():
    with pytest.raises(BokehError, match='f_number'):
        ThinLens(f_number=0.0)
    with pytest.raises(BokehError, match='focus distance'):
        render_depth_of_field(textured(8, 8), np.ones((8, 8), np.float32), 0.04, LENS)
    with pytest.raises(BokehError, match='unknown_depth'):
        render_depth_of_field(textured(8, 8), np.ones((8, 8), np.float32), 2.0, LENS,
                              unknown_depth='zero')
    with pytest.raises(BokehError, match='depth must be'):
        render_depth_of_field(textured(8, 8), np.ones((8, 8, 1), np.float32), 2.0, LENS)


# -- the offline CLI (depth_nodes/bokeh.py) ---------------------------------------------------

def cli_scene(tmp_path):
    import cv2
    image = textured(48, 64)
    depth = np.full((48, 64), 7.5, np.float32)
    depth[:, :30] = 1.25
    depth[:5, :5] = np.nan
    cv2.imwrite(str(tmp_path / 'in.png'), image)
    return image, depth


def test_cli_reads_millimetre_png_and_metre_float_files_alike(tmp_path):
    import cv2

    from depth_nodes.bokeh import main
    image, depth = cli_scene(tmp_path)
    cv2.imwrite(str(tmp_path / 'depth.png'), np.nan_to_num(depth * 1000).astype(np.uint16))
    np.save(tmp_path / 'depth.npy', depth)
    cv2.imwrite(str(tmp_path / 'depth.tiff'), depth)
    expected = render_depth_of_field(image, depth, 1.25, ThinLens(35.0, 2.0, 23.5))
    for name in ('depth.png', 'depth.npy', 'depth.tiff'):
        assert main(['--image', str(tmp_path / 'in.png'), '--depth', str(tmp_path / name),
                     '--focus-distance', '1.25', '--f-number', '2', '--focal-length-mm', '35',
                     '--sensor-width-mm', '23.5', '--output', str(tmp_path / 'out.png')]) == 0
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'out.png')), expected)


def test_cli_several_focus_distances_montage_and_autofocus(tmp_path, capsys):
    import cv2

    from depth_nodes.bokeh import main
    image, depth = cli_scene(tmp_path)
    np.save(tmp_path / 'depth.npy', depth)
    args = ['--image', str(tmp_path / 'in.png'), '--depth', str(tmp_path / 'depth.npy')]
    assert main(args + ['--focus-distance', '1.25', '7.5', '--output', str(tmp_path / 'o.png'),
                        '--montage', str(tmp_path / 'm.png')]) == 0
    near = cv2.imread(str(tmp_path / 'o_1.25m.png'))
    np.testing.assert_array_equal(near, render_depth_of_field(image, depth, 1.25))
    assert cv2.imread(str(tmp_path / 'o_7.5m.png')) is not None
    assert cv2.imread(str(tmp_path / 'm.png')).shape == (48, 4 * 64 + 3 * 4, 3)
    assert main(args + ['--focus-point', '50', '20', '--output', str(tmp_path / 'af.png')]) == 0
    assert 'focus distance at [50.0, 20.0]: 7.500 m' in capsys.readouterr().out
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'af.png')),
                                  render_depth_of_field(image, depth, 7.5))


def test_cli_names_unusable_files(tmp_path, capsys):
    import cv2

    from depth_nodes.bokeh import main
    cli_scene(tmp_path)
    cv2.imwrite(str(tmp_path / 'depth8.png'), np.full((48, 64), 100, np.uint8))
    for depth, problem in (('depth8.png', '8-bit picture of depth'),
                           ('missing.npy', 'no such depth file')):
        assert main(['--image', str(tmp_path / 'in.png'), '--depth', str(tmp_path / depth),
                     '--focus-distance', '2', '--output', str(tmp_path / 'o.png')]) == 2
        err = capsys.readouterr().err
        assert str(tmp_path / depth) in err and problem in err


def test_cli_reads_openexr_metres(tmp_path):
    import os
    import subprocess
    import sys

    import cv2
    image, depth = cli_scene(tmp_path)
    env = dict(os.environ, OPENCV_IO_ENABLE_OPENEXR='1')
    np.save(tmp_path / 'depth.npy', depth)
    write = ('import cv2, numpy as np, sys; '
             'cv2.imwrite(sys.argv[2], np.load(sys.argv[1])) or sys.exit(3)')
    subprocess.run([sys.executable, '-c', write, str(tmp_path / 'depth.npy'),
                    str(tmp_path / 'depth.exr')], env=env, check=True)
    subprocess.run([sys.executable, '-m', 'depth_nodes.bokeh', '--image', str(tmp_path / 'in.png'),
                    '--depth', str(tmp_path / 'depth.exr'), '--focus-distance', '1.25',
                    '--output', str(tmp_path / 'out.png')], check=True, capture_output=True)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'out.png')),
                                  render_depth_of_field(image, depth, 1.25))
