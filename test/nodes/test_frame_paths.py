"""depth_nodes.frames without a ROS graph: accept() / process() on hand-made messages, the
synchroniser's dropped-input reports, encode(), and run-time parameter checks."""
import types
from dataclasses import replace

import numpy as np
import pytest
from fixtures import malformed
from fixtures.models import write_affine_model
from rclpy.serialization import deserialize_message
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.colorize import colorize_depth
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.frames import (MonoDepthFramePath, SemiDenseFramePath, StereoFramePath,
                                parameter_defaults)
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=0.1, max_depth=80.0)
CAM = CameraIntrinsics(64, 48, fx=60.0, fy=62.0, cx=31.5, cy=23.5)
T0 = 1_700_000_000 * 10**9


def camera_info(camera=CAM):
    return ros_io.intrinsics_to_camera_info(camera, Header(frame_id='camera_optical_frame'))


def dropped_log():
    """A dropped-input sink recording (kind, count) per call."""
    calls = []
    return calls, lambda kind, message, count: calls.append((kind, count))


@pytest.fixture(scope='module')
def mono_model(tmp_path_factory):
    path = write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC)
    return open_model(str(path), 'onnxruntime')


def mono_path(model, **params):
    values = {**parameter_defaults(MonoDepthFramePath), 'backend': 'onnxruntime', **params}
    return MonoDepthFramePath(MonoDepthFramePath.build_estimator(model, values), values)


def test_mono_frame_is_the_estimators_depth_with_the_input_header(mono_model):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = mono_path(mono_model, publish_points=True, max_depth=20.0)
    assert path.accept('camera_info', camera_info()) is None        # kept, no frame yet
    job = path.accept('image', malformed.image_cdr(image, 'rgb8', T0 + 5))
    frame = path.estimate(job)
    expected = MonoDepthEstimator(mono_model).estimate(image, 'rgb8', CAM,
                                                       depth_range=(0.1, 20.0))
    np.testing.assert_array_equal(frame.result.depth, expected.depth)
    assert frame.depth_range == (0.1, 20.0)                 # max_depth over the spec's 80 m
    assert (frame.header.stamp.sec, frame.header.stamp.nanosec, frame.header.frame_id) == \
        (1_700_000_000, 5, 'camera_optical_frame')
    assert frame.result.camera == CAM and frame.info_template.k[0] == 60.0
    np.testing.assert_array_equal(frame.rgb, image)         # colours depth/points
    # Without publish_points (or without a camera) no colours are made.
    assert mono_path(mono_model).estimate(job).rgb is None


def test_mono_rejections_name_their_kind(mono_model):
    image = np.zeros((48, 64, 3), np.uint8)
    path = mono_path(mono_model)
    with pytest.raises(ImageFormatError) as undecodable:
        path.accept('image', malformed.image_cdr(image, 'rgb8', T0)[:40])
    assert undecodable.value.kind == 'cdr'
    path.accept('camera_info', camera_info(replace(CAM, width=32, height=24)))
    with pytest.raises(ImageFormatError, match='camera_info is 32x24 but the image is 64x48') \
            as wrong_size:
        path.estimate(path.accept('image', malformed.image_cdr(image, 'rgb8', T0)))
    assert wrong_size.value.kind == 'camera_info_size'


def test_depth_messages_make_only_what_is_wanted(mono_model):
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = mono_path(mono_model, publish_points=True, publish_colored=True)
    path.accept('camera_info', camera_info())
    frame = path.estimate(path.accept('image', malformed.image_cdr(image, 'rgb8', T0)))
    built = []
    frame.extra['extra/topic'] = lambda: built.append(1) or b'extra'
    assert [topic for topic, _ in path.encode(frame, lambda topic: False)] == \
        ['depth/image', 'depth/camera_info'] and built == []
    out = dict(path.encode(frame, lambda topic: True))
    assert list(out) == ['depth/image', 'depth/camera_info', 'depth/colored', 'depth/points',
                         'extra/topic'] and built == [1]
    depth = frame.result.depth
    np.testing.assert_array_equal(
        ros_io.image_to_array(ros_io.image_from_cdr(out['depth/image'])), depth)
    assert (out['depth/camera_info'].width, out['depth/camera_info'].k[0]) == (64, 60.0)
    np.testing.assert_array_equal(
        ros_io.image_to_array(ros_io.image_from_cdr(out['depth/colored'])),
        colorize_depth(depth, 0.1, 80.0))
    cloud = ros_io._typestore().deserialize_cdr(out['depth/points'],
                                                'sensor_msgs/msg/PointCloud2')
    xyzrgb = np.frombuffer(cloud.data, np.float32).reshape(24, 32, 4)
    assert xyzrgb[5, 7, 2] == depth[10, 14]       # stride 2: point (5, 7) is pixel (10, 14)
    # x = (u - cx) z / fx at pixel (10, 14)
    assert xyzrgb[5, 7, 0] == pytest.approx((14 - 31.5) * depth[10, 14] / 60.0, rel=1e-6)


def test_process_is_accept_then_estimate_then_encode(mono_model):
    """process(): the one call from input messages to output messages (node and bag)."""
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = mono_path(mono_model, publish_colored=True)
    path.accept('camera_info', camera_info())
    job = path.accept('image', malformed.image_cdr(image, 'rgb8', T0 + 7))
    out = path.process(job, wants=lambda topic: topic != 'depth/colored')
    assert [topic for topic, _ in out.messages] == ['depth/image', 'depth/camera_info']
    depth = ros_io.image_from_cdr(out.messages[0][1])
    np.testing.assert_array_equal(ros_io.image_to_array(depth), path.estimate(job).result.depth)
    assert (depth.header.stamp.sec, depth.header.stamp.nanosec) == (1_700_000_000, 7)
    assert out.header.stamp.nanosec == 7 and out.inference_s > 0 and out.hints == []
    # The switch decides too (publish_colored off); no camera_info yet: none published.
    assert [t for t, _ in mono_path(mono_model).process(job).messages] == ['depth/image']


# -- stereo: synchronisation and SGBM depth ------------------------------------------------
def stereo_path(**params):
    values = {**parameter_defaults(StereoFramePath), 'sgbm.num_disparities': 16, **params}
    calls, sink = dropped_log()
    return StereoFramePath(StereoFramePath.build_estimator(None, values), values, sink), calls


def test_stereo_pairs_by_stamp_and_reports_partnerless_images_once_matched():
    rng = np.random.default_rng(2)
    right = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    left = np.roll(right, 4, axis=1)                        # 4 px disparity everywhere
    path, dropped = stereo_path()
    assert path.required_inputs == ('left/image_rect', 'right/image_rect',
                                    'left/camera_info', 'right/camera_info')
    images = {'left/image_rect': left, 'right/image_rect': right}

    def send(name, stamp):
        return path.accept(name, malformed.image_cdr(images[name], 'rgb8', stamp))
    assert send('left/image_rect', T0) is None
    assert send('right/image_rect', T0 + 10**9) is None     # 1 s apart: no pair (slop 10 ms)
    assert send('left/image_rect', T0 + 2 * 10**9) is None
    job = send('right/image_rect', T0 + 2 * 10**9 + 5 * 10**6)   # 5 ms apart: a pair
    assert [m.header.stamp.sec for m in job] == [1_700_000_002] * 2
    assert dropped == [('unsynchronised', 2)]       # the two partnerless ones, in one report
    with pytest.raises(ImageFormatError, match='no left/camera_info received yet'):
        path.estimate(job)
    path.accept('left/camera_info', camera_info())
    path.accept('right/camera_info', camera_info(replace(CAM, tx=-CAM.fx * 0.5)))  # B 0.5 m
    frame = path.estimate(job)
    # Z = fx B / d = 60 * 0.5 / 4 = 7.5 m where SGBM matched.
    assert np.nanmedian(frame.result.depth) == pytest.approx(7.5, rel=0.02)
    assert frame.hints == []                                 # SGBM: no training rig
    disparity = deserialize_message(frame.extra['disparity'](), DisparityImage)
    assert (disparity.f, disparity.t) == (60.0, pytest.approx(0.5))
    assert np.nanmedian(ros_io.image_to_array(disparity.image)) == pytest.approx(4.0, rel=0.02)
    window = disparity.valid_window
    assert 0 < window.x_offset + window.width <= disparity.image.width
    assert 0 < window.y_offset + window.height <= disparity.image.height
    assert disparity.header == frame.header and disparity.image.encoding == '32FC1'
    # sync_slop changes at run time (the node's parameter callback calls check_parameter).
    path.check_parameter('sync_slop', 2.0)
    assert send('left/image_rect', T0 + 5 * 10**9) is None
    assert send('right/image_rect', T0 + 6 * 10**9) is not None    # 1 s apart: now a pair
    with pytest.raises(ValueError):
        path.check_parameter('sync_slop', -1.0)


# -- semidense: streams from the parameters, variance filter, model swaps --------------------
@pytest.fixture(scope='module')
def semidense_model(tmp_path_factory):
    """depth/s - 0.5 mask + 0.5 per pixel (s: the largest known depth): a known pixel comes
    out as its own depth, an unknown one as s / 2 (as in test_field_robustness.py)."""
    spec = ModelSpec(method='semidense', input_kind='semidense', input_names=('image',),
                     input_height=48, input_width=64, input_channels=2, mean=(0.0, 0.0),
                     std=(1.0, 1.0), output_name='depth', output_kind='metric_depth',
                     min_depth=0.01, max_depth=100.0, extras={'scale_percentile': 100.0})
    path = write_affine_model(tmp_path_factory.mktemp('semidense') / 'two.onnx', spec,
                              weights=(1.0, -0.5), bias=0.5)
    return open_model(str(path), 'onnxruntime')


def test_semidense_variance_is_synchronised_and_filters_pixels(semidense_model):
    values = {**parameter_defaults(SemiDenseFramePath), 'use_variance': True,
              'max_variance': 1.0}
    path = SemiDenseFramePath(SemiDenseFramePath.build_estimator(semidense_model, values),
                              values)
    assert path.streams == ('semidense/depth', 'semidense/variance')
    assert path.raw_inputs == {'semidense/depth', 'semidense/variance'}
    assert path.optional_inputs == ('camera_info',)
    sparse = np.full((48, 64), np.nan, np.float32)
    sparse[10, 20], sparse[30, 40] = 2.0, 4.0
    variance = np.zeros((48, 64), np.float32)
    variance[30, 40] = 5.0                                  # above max_variance: dropped
    assert path.accept('semidense/depth', malformed.image_cdr(sparse, '32FC1', T0)) is None
    job = path.accept('semidense/variance', malformed.image_cdr(variance, '32FC1', T0))
    dense = path.estimate(job).result.depth
    # Only the 2 m sample is left: s = 2, so unknown pixels (the dropped one too) are 1 m.
    assert (dense[10, 20], dense[30, 40], dense[0, 0]) == (2.0, pytest.approx(1.0),
                                                           pytest.approx(1.0))


def test_semidense_refuses_bad_poses_and_models_that_change_its_inputs(semidense_model):
    values = parameter_defaults(SemiDenseFramePath)
    path = SemiDenseFramePath(SemiDenseFramePath.build_estimator(semidense_model, values),
                              values)
    assert path.streams == ('semidense/depth',) and path.sync is None
    with pytest.raises(ValueError):
        path.check_parameter('points_to_camera', [0.0, 0.0, 0.0])   # 3 of 7 values
    with pytest.raises(ValueError, match='restart the node'):
        path.use_estimator(types.SimpleNamespace(needs_intensity=True))
    with pytest.raises(ValueError, match='input must be one of'):
        SemiDenseFramePath(path.estimator, {**values, 'input': 'lidar'})
    points = SemiDenseFramePath(path.estimator, {**values, 'input': 'points'})
    assert points.required_inputs == ('semidense/points', 'camera_info')
    assert points.raw_inputs == frozenset()                # PointCloud2 arrives as a message


def test_only_the_semidense_node_stops_onnx_runtime_threads_spinning(tmp_path):
    """Its fills run on both cores between two runs; the other nodes keep ONNX Runtime's
    default (docs/performance.md)."""
    from depth_nodes.frames import engine_options, parameter_defaults
    from depth_nodes.process_bag import load_model
    for path, spin in ((SemiDenseFramePath, False), (MonoDepthFramePath, True),
                       (StereoFramePath, True)):
        values = parameter_defaults(path)
        assert path.engine_spin_wait is spin
        assert engine_options(values, path.engine_spin_wait).spin_wait is spin
    values = {**parameter_defaults(SemiDenseFramePath), 'backend': 'onnxruntime',
              'model': str(write_affine_model(tmp_path / 'm.onnx', SPEC))}
    session = load_model(values, SemiDenseFramePath.engine_spin_wait).engine._session
    assert session.get_session_options().get_session_config_entry(
        'session.intra_op.allow_spinning') == '0'
