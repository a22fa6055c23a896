"""mono_depth_node over real DDS: values, headers, camera_info, bad input, run-time parameters."""
import functools
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.models import write_affine_model
from fixtures.ros_harness import installed_executable, overrides, ros_graph
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-4, max_depth=1e3)
CAM = CameraIntrinsics(64, 48, fx=60.0, fy=62.0, cx=31.5, cy=23.5)


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC,
                              output_stride=2)


def header(sec, frame='camera_optical_frame'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, 250
    return h


def camera_info(h):
    return ros_io.intrinsics_to_camera_info(CAM, h)


def random_image(seed):
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def node_factory(model_path, **params):
    return functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime', **params))


def wait_depth(probe, count, timeout=10.0):
    assert probe.wait_for(lambda: len(probe.messages('depth/image')) >= count, timeout), \
        f"expected {count} depth images, got {len(probe.messages('depth/image'))}"


def test_depth_equals_direct_model_run_with_input_header(model_path):
    with ros_graph(node_factory(model_path, publish_points=True, points_stride=1)) as (probe, _):
        probe.record(Image, 'depth/image')
        probe.record(CameraInfo, 'depth/camera_info')
        probe.record(PointCloud2, 'depth/points')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        h = header(42)
        info_pub.publish(camera_info(h))
        time.sleep(0.2)
        image = random_image(0)
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', h))
        wait_depth(probe, 1)
        depth_msg = probe.messages('depth/image')[0]
        assert (depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec,
                depth_msg.header.frame_id) == (42, 250, 'camera_optical_frame')
        assert depth_msg.encoding == '32FC1'
        expected = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(
            image, 'rgb8', CAM).depth
        np.testing.assert_array_equal(ros_io.image_to_array(depth_msg), expected)
        assert probe.wait_for(lambda: probe.messages('depth/camera_info'))
        info = probe.messages('depth/camera_info')[0]
        assert (info.width, info.height) == (64, 48) and list(info.k) == list(CAM.k.ravel())
        assert probe.wait_for(lambda: probe.messages('depth/points'))
        cloud = probe.messages('depth/points')[0]
        assert (cloud.width, cloud.height, cloud.point_step) == (64, 48, 16)
        xyz = ros_io.pointcloud2_to_xyz(cloud).reshape(48, 64, 3)
        u, v = 50, 10
        assert xyz[v, u, 2] == pytest.approx(expected[v, u])
        assert xyz[v, u, 0] == pytest.approx((u - CAM.cx) / CAM.fx * expected[v, u], rel=1e-5)


def test_model_resolution_output_scales_camera_info(model_path):
    with ros_graph(node_factory(model_path, output_resolution='model')) as (probe, _):
        probe.record(Image, 'depth/image')
        probe.record(CameraInfo, 'depth/camera_info')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        h = header(7)
        info_pub.publish(camera_info(h))
        time.sleep(0.2)
        image_pub.publish(ros_io.array_to_image(random_image(1), 'rgb8', h))
        wait_depth(probe, 1)
        assert probe.wait_for(lambda: probe.messages('depth/camera_info'))
        depth_msg = probe.messages('depth/image')[0]
        info = probe.messages('depth/camera_info')[0]
        # The model's output is 12x16 (input 24x32, stride 2): 64x48 camera scaled by 1/4.
        assert (depth_msg.width, depth_msg.height) == (16, 12)
        assert (info.width, info.height) == (16, 12)
        assert info.k[0] == pytest.approx(15.0) and info.k[4] == pytest.approx(15.5)
        assert info.k[2] == pytest.approx((31.5 + 0.5) / 4 - 0.5)


def bad_messages(h):
    good = ros_io.array_to_image(random_image(3), 'rgb8', h)
    unknown = ros_io.array_to_image(random_image(3), 'rgb8', h)
    unknown.encoding = 'yuv422_yuy2'
    truncated = ros_io.array_to_image(random_image(3), 'rgb8', h)
    truncated.data = bytes(truncated.data[:100])
    short_step = ros_io.array_to_image(random_image(3), 'rgb8', h)
    short_step.step = 10
    empty = Image(header=h, encoding='rgb8')
    nan_image = ros_io.array_to_image(np.full((48, 64), np.nan, np.float32), '32FC1', h)
    return good, {'encoding': unknown, 'data_size': truncated, 'step': short_step,
                  'zero_size': empty, 'nan/float image': nan_image}


def test_bad_input_is_dropped_and_the_next_good_frame_processed(model_path):
    with ros_graph(node_factory(model_path)) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        good, bad = bad_messages(header(9))
        for msg in bad.values():
            image_pub.publish(msg)
            time.sleep(0.1)        # one at a time: the node keeps only the newest frame
        image_pub.publish(good)
        wait_depth(probe, 1)
        assert len(probe.messages('depth/image')) == 1   # nothing published for bad input
        counts = node.reporter.counts
        assert probe.wait_for(lambda: node.reporter.total == len(bad))
        assert {'encoding', 'data_size', 'step', 'zero_size'} <= set(counts)


def test_runtime_parameters_and_broken_model_swap(model_path, tmp_path):
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'garbage')
    with ros_graph(node_factory(model_path)) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        probe.record(Image, 'depth/colored')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        result = node.set_parameters([Parameter('model', value=str(broken))])[0]
        assert not result.successful and 'broken.onnx' in result.reason
        assert node.get_parameter('model').value == str(model_path)   # old model kept
        assert node.set_parameters([Parameter('publish_colored', value=True)])[0].successful
        assert node.set_parameters([Parameter('max_depth', value=1.0)])[0].successful
        assert not node.set_parameters([Parameter('min_depth', value=2.0)])[0].successful
        image = np.full((48, 64, 3), 255, np.uint8)   # x = 2 -> exp(6.25) m > 1 m
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', header(11)))
        wait_depth(probe, 1)
        assert np.isnan(ros_io.image_to_array(probe.messages('depth/image')[0])).all()
        assert probe.wait_for(lambda: probe.messages('depth/colored'))
        colored = ros_io.image_to_array(probe.messages('depth/colored')[0])
        assert colored.shape == (48, 64, 3) and not colored.any()   # invalid -> black


def test_model_swap_at_run_time_takes_effect(model_path, tmp_path):
    other_spec = ModelSpec(method='affine', input_height=24, input_width=32,
                           output_kind='metric_depth', min_depth=1e-4, max_depth=1e3)
    other = write_affine_model(tmp_path / 'other.onnx', other_spec, weights=(0, 0, 0), bias=7.0)
    with ros_graph(node_factory(model_path)) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        assert node.set_parameters([Parameter('model', value=str(other))])[0].successful
        image_pub.publish(ros_io.array_to_image(random_image(5), 'rgb8', header(12)))
        wait_depth(probe, 1)
        np.testing.assert_array_equal(ros_io.image_to_array(probe.messages('depth/image')[0]),
                                      np.full((48, 64), 7.0, np.float32))


def test_input_qos_is_sensor_data_and_overridable_by_parameters(model_path):
    from rclpy.qos import QoSReliabilityPolicy
    with ros_graph(node_factory(model_path),
                   node_factory(model_path, **{
                       'qos_overrides./image.subscription.reliability': 'reliable'})
                   ) as (_, (default, overridden)):
        def reliability(node):
            (sub,) = [s for s in node.inputs.streams if s.topic_name == '/image']
            return sub.qos_profile.reliability, sub.qos_profile.depth
        assert reliability(default) == (QoSReliabilityPolicy.BEST_EFFORT, 1)
        assert reliability(overridden) == (QoSReliabilityPolicy.RELIABLE, 1)


def test_diagnostics_report_rates_and_backend(model_path):
    from diagnostic_msgs.msg import DiagnosticArray
    with ros_graph(node_factory(model_path)) as (probe, _):
        probe.record(DiagnosticArray, '/diagnostics')
        probe.record(Image, 'depth/image')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub)
        for i in range(10):
            image_pub.publish(ros_io.array_to_image(random_image(i), 'rgb8', header(i)))
            time.sleep(0.05)
        wait_depth(probe, 5)

        def latest_values():
            arrays = probe.messages('/diagnostics')
            return {kv.key: kv.value for kv in arrays[-1].status[0].values} if arrays else {}
        assert probe.wait_for(lambda: float(latest_values().get('output rate (Hz)', 0)) > 0,
                              timeout=5.0)
        values = latest_values()
        assert values['backend'] == 'onnxruntime'
        assert values['model'].endswith('affine.onnx')
        assert float(values['input rate (Hz)']) > 5
        assert 0 < float(values['inference p50 (ms)']) < 1000


def test_publisher_without_delivered_data_gets_a_hint(model_path):
    with ros_graph(node_factory(model_path)) as (probe, (node,)):
        node.silent_input_s = 0.5
        image_pub = probe.publisher(Image, 'image')   # discovered, but never publishes
        assert probe.wait_for_subscribers(image_pub)
        assert probe.wait_for(lambda: node.hints.counts['/image'] >= 1, timeout=5.0)
        assert node.reporter.total == 0               # a hint, not a rejected frame


@pytest.mark.parametrize('content', [None, b'not an onnx file'])
def test_missing_or_corrupt_model_exits_non_zero_naming_the_file(tmp_path, content):
    path = tmp_path / 'model.onnx'
    if content is not None:
        path.write_bytes(content)
    start = time.monotonic()
    proc = subprocess.run(installed_executable('mono_depth_node') + [
        '--ros-args', '-p', f'model:={path}'], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert str(path) in proc.stderr + proc.stdout
    assert time.monotonic() - start < 30


def test_tests_run_against_the_colcon_built_package():
    workspace = os.environ.get('DEPTH_NODES_WORKSPACE')
    if not workspace:
        pytest.skip('not started through tools/test.sh (no colcon workspace in the environment)')
    import depth_nodes
    assert Path(depth_nodes.__file__).resolve().is_relative_to(Path(workspace).resolve())


def test_a_frame_that_fails_is_counted_and_the_next_one_is_published(model_path):
    """A failure inside the frame path (not bad input) is logged, counted per exception type,
    and does not stop the node: frames are processed in the subscription callback."""
    with ros_graph(node_factory(model_path)) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(pub)
        estimate, calls = node.frames.estimate, []

        def fail_once(job):
            calls.append(job[0].header.stamp.sec)
            if len(calls) == 1:
                raise RuntimeError('engine fault')
            return estimate(job)
        node.frames.estimate = fail_once
        image = random_image(9)
        pub.publish(ros_io.array_to_image(image, 'rgb8', header(1)))
        assert probe.wait_for(lambda: node.stats.errors.counts['RuntimeError'] == 1)
        pub.publish(ros_io.array_to_image(image, 'rgb8', header(2)))
        wait_depth(probe, 1)
        (depth,) = probe.messages('depth/image')
        assert depth.header.stamp.sec == 2 and calls == [1, 2]
        expected = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(
            image, 'rgb8').depth
        np.testing.assert_allclose(ros_io.image_to_array(depth), expected, rtol=1e-6)
        assert node.reporter.total == 0          # not counted as bad input
