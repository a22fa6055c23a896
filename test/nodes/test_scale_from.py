"""mono_depth_node scale_from: metric depth from sparse depth of the same frame. Known truths
in, the same metres out: a depth model right up to a scale, a relative inverse-depth model
that is a known affine of the truth, LiDAR-like points from another frame; the held scale;
and the node over DDS."""
import functools
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from fixtures import malformed
from fixtures.models import write_affine_model
from fixtures.ros_harness import overrides, ros_graph
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.semidense import rotation_from_quaternion
from depth_nodes.frames import MonoDepthFramePath, parameter_defaults
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

# log_depth = w . x + b of the normalised image: depth up to scale, like the eigen demo.
DEPTH_SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                       mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-3,
                       max_depth=1e3)
# raw = (0.5 + 1.0 + 1.5) x + 0.25 for a grey pixel x = p / 255: relative inverse depth.
RELATIVE_SPEC = ModelSpec(method='relative', input_height=24, input_width=32,
                          output_kind='relative_inverse_depth', min_depth=0.5, max_depth=20.0)
CAM = CameraIntrinsics(64, 48, fx=60.0, fy=62.0, cx=31.5, cy=23.5)
TRUE_SCALE = 2.5        # truth = TRUE_SCALE x the depth model's prediction
T0 = 1_700_000_000


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('models')
    return {'depth': write_affine_model(folder / 'affine_log_depth.onnx', DEPTH_SPEC),
            'relative': write_affine_model(folder / 'relative.onnx', RELATIVE_SPEC)}


def header(sec, nanosec=0, frame='camera_optical_frame'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def frame_path(model_file, **params):
    values = {**parameter_defaults(MonoDepthFramePath), 'model': str(model_file),
              'backend': 'onnxruntime', **params}
    model = open_model(str(model_file), 'onnxruntime')
    calls = []
    path = MonoDepthFramePath(MonoDepthFramePath.build_estimator(model, values), values,
                              lambda kind, message, count: calls.append(kind))
    return path, calls


def sparse_of(truth, seed, density=0.1, outliers=0.2):
    """``truth`` at a random ``density`` of the pixels (NaN elsewhere), ``outliers`` of them
    a factor 0.5 or 2 off (moving objects, mismatches); and the number of good points."""
    rng = np.random.default_rng(seed)
    sparse = np.full(truth.shape, np.nan, np.float32)
    known = np.flatnonzero(rng.random(truth.shape) < density)
    sparse.flat[known] = truth.flat[known]
    wrong = rng.choice(known, int(outliers * known.size), replace=False)
    sparse.flat[wrong] *= rng.choice([0.5, 2.0], wrong.size).astype(np.float32)
    return sparse, known.size - wrong.size


def depth_truth(model_file, image):
    """The truth a depth model gets right up to TRUE_SCALE (same resampling as the node)."""
    estimator = MonoDepthEstimator(open_model(str(model_file), 'onnxruntime'))
    return TRUE_SCALE * estimator.predict(image, 'rgb8').depth


def random_image(seed, shape=(48, 64)):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_relative_inverse_depth_model_gives_the_true_metres_after_the_fit(models):
    # Grey pixels p encode the truth: 1 / z = 0.9 p / 255 + 0.1 (z from 1 to 10 m). The model
    # outputs 3 p / 255 + 0.25, an affine of 1 / z that the fit must undo exactly. The image
    # is the model's size, so no resampling blurs the relation.
    p = np.random.default_rng(4).integers(0, 256, (24, 32)).astype(np.uint8)
    truth = (1.0 / (0.9 * p.astype(np.float64) / 255 + 0.1)).astype(np.float32)
    sparse, good = sparse_of(truth, seed=5)
    path, dropped = frame_path(models['relative'], scale_from='semidense')
    assert path.inputs == {'image': ros_io.IMAGE_TYPE, 'camera_info': ros_io.CAMERA_INFO_TYPE,
                           'semidense/depth': ros_io.IMAGE_TYPE}
    assert path.accept('semidense/depth', ros_io.array_to_image(
        sparse, '32FC1', header(T0, 7))) is None
    job = path.accept('image', malformed.image_cdr(np.dstack([p] * 3), 'rgb8', T0 * 10**9 + 7))
    frame = path.estimate(job)
    np.testing.assert_allclose(frame.result.depth, truth, rtol=1e-4)
    fit = frame.result.extras['scale_fit']
    assert fit.kind == 'inverse_depth_affine' and fit.inliers == good
    # 1 / z = s raw + t: raw = 3 p / 255 + 0.25 and 1 / z = 0.9 p / 255 + 0.1 give s = 0.3,
    # t = 0.1 - 0.3 * 0.25 = 0.025.
    assert (fit.scale, fit.shift) == (pytest.approx(0.3, rel=1e-4), pytest.approx(0.025, 1e-4))
    diagnostics = path.diagnostics()
    assert diagnostics['scale from'] == 'semidense/depth (inverse_depth_affine)'
    assert diagnostics['scale fit inliers'] == f'{good} of {np.isfinite(sparse).sum()}'
    assert dropped == []


def test_relative_model_without_scale_from_is_a_load_error_naming_the_file(models):
    with pytest.raises(ModelLoadError, match=r"cannot load model '.*relative\.onnx'.*"
                       r'relative_inverse_depth.*set scale_from') as error:
        frame_path(models['relative'])
    assert error.value.path.endswith('relative.onnx')


def test_depth_model_scaled_from_16bit_semidense_then_held_then_dropped(models):
    image = random_image(1)
    truth = depth_truth(models['depth'], image)
    path, dropped = frame_path(models['depth'], scale_from='semidense', scale_hold_s=1.0)
    # 16UC1 millimetres (as a depth camera or SGBM publishes): the truth rounded to 1 mm, so
    # the fitted scale is TRUE_SCALE to within the rounding.
    sparse, _ = sparse_of(truth, seed=2)
    millimetres = np.where(np.isfinite(sparse), np.rint(sparse * 1000), 0).astype(np.uint16)
    path.accept('semidense/depth', ros_io.array_to_image(millimetres, '16UC1', header(T0)))
    first = path.estimate(path.accept('image', malformed.image_cdr(image, 'rgb8', T0 * 10**9)))
    np.testing.assert_allclose(first.result.depth, truth, rtol=2e-4)
    assert first.result.extras['scale_fit'].kind == 'depth_scale'
    # 0.5 s later, nothing within sync_slop: the held scale.
    later = random_image(2)
    job = path.accept('image', malformed.image_cdr(later, 'rgb8', T0 * 10**9 + 500_000_000))
    np.testing.assert_allclose(path.estimate(job).result.depth,
                               depth_truth(models['depth'], later), rtol=2e-4)
    # A sparse image of the wrong encoding is reported and not used; 1.5 s after the fit
    # the hold is over and the frame is dropped.
    path.accept('semidense/depth',
                ros_io.array_to_image(image, 'rgb8', header(T0 + 1, 500_000_000)))
    stamp_ns = (T0 + 1) * 10**9 + 500_000_000
    job = path.accept('image', malformed.image_cdr(later, 'rgb8', stamp_ns))
    with pytest.raises(ImageFormatError, match='no metric scale.*scale_hold_s = 1 s') as error:
        path.estimate(job)
    assert error.value.kind == 'no_scale'
    assert dropped == ['scale_input_encoding']
    counts = {'frames scaled by their own fit': '1', 'frames scaled by a held fit': '1',
              'frames dropped (no scale)': '1'}
    assert {k: path.diagnostics()[k] for k in counts} == counts


def cloud_message(points, h):
    """sensor_msgs/PointCloud2 of (N, 3) float32 x, y, z."""
    data = np.ascontiguousarray(points, np.float32)
    return PointCloud2(header=h, height=1, width=len(data), is_bigendian=False,
                       point_step=12, row_step=12 * len(data), is_dense=True,
                       fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32,
                                          count=1) for i, n in enumerate('xyz')],
                       data=data.tobytes())


def test_points_from_another_frame_project_to_the_true_metres(models):
    image = random_image(3)
    truth = depth_truth(models['depth'], image)
    sparse, good = sparse_of(truth, seed=6, density=0.05)
    v, u = np.nonzero(np.isfinite(sparse))
    z = sparse[v, u].astype(np.float64)
    in_camera = np.stack([(u - CAM.cx) / CAM.fx * z, (v - CAM.cy) / CAM.fy * z, z], axis=1)
    # The cloud's frame (a LiDAR's): p_camera = R p_lidar + t, R a quarter turn about z.
    pose = [0.1, -0.05, 0.2, 0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)]
    rotation = rotation_from_quaternion(*pose[3:])
    in_lidar = (in_camera - pose[:3]) @ rotation        # R^T (p - t), row vectors
    path, dropped = frame_path(models['depth'], scale_from='points', points_to_camera=pose)
    assert path.required_inputs == ('image', 'camera_info')
    path.accept('camera_info', ros_io.intrinsics_to_camera_info(CAM, header(T0)))
    path.accept('points', cloud_message(in_lidar, header(T0, 2_000_000, 'lidar')))
    # The cloud is 2 ms from the image: within the default sync_slop of 10 ms.
    frame = path.estimate(path.accept('image', malformed.image_cdr(image, 'rgb8', T0 * 10**9)))
    np.testing.assert_allclose(frame.result.depth, truth, rtol=1e-5)
    assert frame.result.extras['scale_fit'].inliers == good
    assert frame.result.extras['scale_fit'].scale == pytest.approx(TRUE_SCALE, rel=1e-5)
    assert dropped == []


def test_node_over_dds_publishes_the_true_metres_with_the_fit_in_diagnostics(models):
    image = random_image(7)
    truth = depth_truth(models['depth'], image)
    sparse, good = sparse_of(truth, seed=8)
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(models['depth']), backend='onnxruntime', scale_from='semidense'))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        probe.record(DiagnosticArray, '/diagnostics')
        sparse_pub = probe.publisher(Image, 'semidense/depth')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        assert probe.wait_for_subscribers(sparse_pub)
        h = header(42, 250)
        sparse_pub.publish(ros_io.array_to_image(sparse, '32FC1', h))
        time.sleep(0.2)
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', h))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        depth_msg = probe.messages('depth/image')[0]
        assert (depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec) == (42, 250)
        np.testing.assert_allclose(ros_io.image_to_array(depth_msg), truth, rtol=1e-5)

        def fit_values():
            for array in probe.messages('/diagnostics'):
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if 'scale' in values:
                        return values
            return None
        assert probe.wait_for(lambda: fit_values() is not None, timeout=5.0)
        values = fit_values()
        assert float(values['scale']) == pytest.approx(TRUE_SCALE, rel=1e-5)
        assert values['scale fit inliers'] == f'{good} of {np.isfinite(sparse).sum()}'
        assert float(values['scale fit residual (median relative)']) < 1e-4


def test_sparse_depth_after_its_image_scales_the_next_frames(models):
    # A SLAM map of a frame comes after the frame: that frame has no scale yet (dropped),
    # the late fit to its kept prediction scales the next frames within scale_hold_s.
    first, second = random_image(9), random_image(10)
    path, _ = frame_path(models['depth'], scale_from='semidense')
    job = path.accept('image', malformed.image_cdr(first, 'rgb8', T0 * 10**9))
    with pytest.raises(ImageFormatError, match='no semidense/depth within sync_slop'):
        path.estimate(job)
    sparse, _ = sparse_of(depth_truth(models['depth'], first), seed=11)
    path.accept('semidense/depth', ros_io.array_to_image(sparse, '32FC1', header(T0)))
    job = path.accept('image', malformed.image_cdr(second, 'rgb8', T0 * 10**9 + 10**8))
    frame = path.estimate(job)
    np.testing.assert_allclose(frame.result.depth, depth_truth(models['depth'], second),
                               rtol=1e-5)
    assert path.diagnostics()['fits of sparse depth later than its image'] == '1'
    assert path.diagnostics()['frames scaled by a held fit'] == '1'


def test_node_over_dds_scales_from_a_point_cloud(models):
    image = random_image(12)
    truth = depth_truth(models['depth'], image)
    sparse, _ = sparse_of(truth, seed=13, density=0.05, outliers=0.0)
    v, u = np.nonzero(np.isfinite(sparse))
    z = sparse[v, u].astype(np.float64)
    points = np.stack([(u - CAM.cx) / CAM.fx * z, (v - CAM.cy) / CAM.fy * z, z], axis=1)
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(models['depth']), backend='onnxruntime', scale_from='points'))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        points_pub = probe.publisher(PointCloud2, 'points')
        image_pub = probe.publisher(Image, 'image')
        assert all(probe.wait_for_subscribers(p) for p in (info_pub, points_pub, image_pub))
        h = header(43)
        info_pub.publish(ros_io.intrinsics_to_camera_info(CAM, h))
        points_pub.publish(cloud_message(points, h))
        time.sleep(0.2)
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', h))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        np.testing.assert_allclose(ros_io.image_to_array(probe.messages('depth/image')[0]),
                                   truth, rtol=1e-5)
