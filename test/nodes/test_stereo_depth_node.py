"""stereo_depth_node over real DDS: SGBM depth and DisparityImage equal to the ROS-free
estimator, a disparity model's depth = fx B / d from the rig's P or the baseline parameter,
unsynchronised and mismatched pairs dropped with a warning, run-time parameter checks."""
import functools
import time

import numpy as np
import pytest
from fixtures.models import write_affine_model
from fixtures.ros_harness import overrides, ros_graph
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.stereo import SgbmParameters
from depth_nodes.nodes.stereo_depth_node import StereoDepthNode
from depth_nodes.runtime.stereo_estimator import SgbmStereoEstimator

H, W = 96, 160
FX, BASELINE = 100.0, 0.12
LEFT = CameraIntrinsics(W, H, fx=FX, fy=FX, cx=79.5, cy=47.5)
RIGHT = CameraIntrinsics(W, H, fx=FX, fy=FX, cx=79.5, cy=47.5, tx=-FX * BASELINE)
TRUE_DISPARITY = 8        # px: a plane at fx B / 8 = 1.5 m
# A model whose disparity is 0.05 of the width everywhere (1x1 conv, zero weights, bias).
CONSTANT_SPEC = ModelSpec(method='constant_disparity', input_height=24, input_width=32,
                          output_name='disparity', output_kind='disparity_fraction',
                          baseline=0.5, focal_fraction=0.9, min_depth=0.01, max_depth=1000.0)


def textured_pair(seed=0):
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (H // 4, (W + TRUE_DISPARITY) // 4 + 1), np.uint8)
    wide = np.kron(texture, np.ones((4, 4), np.uint8))[:H, :W + TRUE_DISPARITY]
    left = np.ascontiguousarray(np.repeat(wide[:, :W, None], 3, axis=2))
    right = np.ascontiguousarray(np.repeat(wide[:, TRUE_DISPARITY:, None], 3, axis=2))
    return left, right


def header(sec, nanosec=0, frame='left_optical_frame'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def node_factory(**params):
    params.setdefault('backend', 'onnxruntime')
    return functools.partial(StereoDepthNode, parameter_overrides=overrides(**params))


class StereoRig:
    """Probe publishers for the node's four inputs."""

    def __init__(self, probe):
        self.probe = probe
        self.left = probe.publisher(Image, 'left/image_rect')
        self.right = probe.publisher(Image, 'right/image_rect')
        self.left_info = probe.publisher(CameraInfo, 'left/camera_info')
        self.right_info = probe.publisher(CameraInfo, 'right/camera_info')
        assert probe.wait_for_subscribers(self.left) and probe.wait_for_subscribers(self.right)
        assert probe.wait_for_subscribers(self.right_info)

    def infos(self, left=LEFT, right=RIGHT):
        self.left_info.publish(ros_io.intrinsics_to_camera_info(left, header(0)))
        self.right_info.publish(ros_io.intrinsics_to_camera_info(right, header(0)))
        time.sleep(0.2)

    def pair(self, left, right, left_header, right_header=None, encoding='rgb8'):
        self.left.publish(ros_io.array_to_image(left, encoding, left_header))
        self.right.publish(ros_io.array_to_image(right, encoding, right_header or left_header))
        time.sleep(0.1)


def wait_count(probe, topic, count, timeout=10.0):
    assert probe.wait_for(lambda: len(probe.messages(topic)) >= count, timeout), \
        f'expected {count} messages on {topic}, got {len(probe.messages(topic))}'


def test_sgbm_depth_and_disparity_image_equal_the_estimator():
    with ros_graph(node_factory(**{'sgbm.num_disparities': 32})) as (probe, _):
        probe.record(Image, 'depth/image')
        probe.record(CameraInfo, 'depth/camera_info')
        probe.record(DisparityImage, 'disparity')
        rig = StereoRig(probe)
        assert probe.wait_for(lambda: probe.node.count_subscribers('disparity') >= 1)
        rig.infos()
        left, right = textured_pair()
        rig.pair(left, right, header(12, 500))
        wait_count(probe, 'depth/image', 1)
        wait_count(probe, 'disparity', 1)
        depth_msg = probe.messages('depth/image')[0]
        assert (depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec,
                depth_msg.header.frame_id) == (12, 500, 'left_optical_frame')
        expected = SgbmStereoEstimator(SgbmParameters(num_disparities=32)).estimate(
            left, 'rgb8', right, 'rgb8', LEFT, RIGHT)
        depth = ros_io.image_to_array(depth_msg)
        np.testing.assert_array_equal(depth, expected.depth)
        x, y, w, h = expected.valid_window
        assert np.nanmedian(depth[y:y + h, x:x + w]) == pytest.approx(FX * BASELINE / 8,
                                                                      rel=0.01)
        disparity = probe.messages('disparity')[0]
        assert (disparity.f, disparity.t) == (FX, pytest.approx(BASELINE))
        assert (disparity.min_disparity, disparity.max_disparity, disparity.delta_d) == \
            (0.0, 31.0, 1.0 / 16)
        roi = disparity.valid_window
        assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (x, y, w, h)
        values = ros_io.image_to_array(disparity.image)
        known = np.isfinite(expected.disparity)
        np.testing.assert_array_equal(values[known], expected.disparity[known])
        assert (values[~known] == -1.0).all()        # unknown: below min_disparity
        # Z = f T / d holds for the published disparity.
        np.testing.assert_allclose(FX * BASELINE / values[known], depth[known], rtol=1e-5)
        assert probe.wait_for(lambda: probe.messages('depth/camera_info'))
        assert list(probe.messages('depth/camera_info')[0].k) == list(LEFT.k.ravel())


def test_disparity_model_depth_from_training_baseline_disparity_of_this_rig(tmp_path):
    model = write_affine_model(tmp_path / 'constant.onnx', CONSTANT_SPEC, weights=(0, 0, 0),
                               bias=0.05)
    with ros_graph(node_factory(model=str(model))) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        probe.record(DisparityImage, 'disparity')
        rig = StereoRig(probe)
        assert probe.wait_for(lambda: probe.node.count_subscribers('disparity') >= 1)
        rig.infos()
        left, right = textured_pair(1)
        rig.pair(left, right, header(3))
        wait_count(probe, 'depth/image', 1)
        # 0.05 * 160 = 8 px of the training rig: Z = fx B_t / 8 = 100 * 0.5 / 8 (spec's B_t)
        depth = ros_io.image_to_array(probe.messages('depth/image')[0])
        np.testing.assert_allclose(depth, FX * 0.5 / 8.0, rtol=1e-5)
        wait_count(probe, 'disparity', 1)
        # The published disparity is this rig's: fx B / Z = 8 x 0.12 / 0.5 px.
        disparity = probe.messages('disparity')[0]
        np.testing.assert_allclose(ros_io.image_to_array(disparity.image), 8.0 * 0.24,
                                   rtol=1e-5)
        assert (disparity.f, disparity.t, disparity.max_disparity) == \
            (FX, pytest.approx(BASELINE), pytest.approx(160.0 * 0.24))
        assert node.set_parameters([Parameter('baseline', value=0.3)])[0].successful
        rig.pair(left, right, header(4))
        wait_count(probe, 'depth/image', 2)
        wait_count(probe, 'disparity', 2)
        # Another baseline: the same depth, the disparity of a 0.3 m rig.
        np.testing.assert_allclose(ros_io.image_to_array(probe.messages('depth/image')[1]),
                                   FX * 0.5 / 8.0, rtol=1e-5)
        np.testing.assert_allclose(
            ros_io.image_to_array(probe.messages('disparity')[1].image), 8.0 * 0.3 / 0.5,
            rtol=1e-5)
        # This camera's fx / W (0.625) is not the training rig's 0.9: a hint in the log.
        assert node.hints.counts['rig'] >= 1


def test_unsynchronised_and_mismatched_pairs_are_dropped_with_a_warning():
    with ros_graph(node_factory(sync_slop=0.01)) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        rig = StereoRig(probe)
        rig.infos()
        left, right = textured_pair(2)
        rig.pair(left, right, header(20), header(21))           # 1 s apart: no pair
        rig.pair(left, np.ascontiguousarray(right[::2, ::2]), header(22))   # half size
        assert probe.wait_for(lambda: node.reporter.counts['stereo_size'] == 1)
        rig.pair(left, right, header(23, 4_000_000), header(23))   # 4 ms apart: a pair
        wait_count(probe, 'depth/image', 1)
        time.sleep(0.3)
        published = probe.messages('depth/image')
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in published] == \
            [(23, 4_000_000)]
        assert node.reporter.counts['unsynchronised'] >= 1
        assert node.sync.stats.unmatched >= 2


def test_missing_baseline_and_bad_camera_info_are_rejected_by_kind():
    with ros_graph(node_factory()) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        rig = StereoRig(probe)
        left, right = textured_pair(3)
        rig.infos(right=LEFT)                    # right P[0, 3] = 0: no baseline
        rig.pair(left, right, header(30))
        assert probe.wait_for(lambda: node.reporter.counts['baseline'] == 1)
        rig.infos(right=RIGHT.scaled(W * 2, H * 2))
        rig.pair(left, right, header(31))
        assert probe.wait_for(lambda: node.reporter.counts['camera_info_size'] == 1)
        assert probe.messages('depth/image') == []
        rig.infos()
        rig.pair(left, right, header(32))
        wait_count(probe, 'depth/image', 1)


def test_sgbm_parameters_are_checked_at_run_time(tmp_path):
    with ros_graph(node_factory()) as (probe, (node,)):
        result = node.set_parameters([Parameter('sgbm.num_disparities', value=40)])[0]
        assert not result.successful and 'multiple of 16' in result.reason
        assert node.estimator.params.num_disparities == 0     # the default (automatic) kept
        assert node.set_parameters([Parameter('sgbm.block_size', value=7)])[0].successful
        assert node.estimator.params.block_size == 7
        # A model that outputs metric depth cannot give disparity: refused, SGBM kept.
        metric = write_affine_model(tmp_path / 'metric.onnx', ModelSpec(
            input_height=24, input_width=32, output_kind='metric_depth'))
        result = node.set_parameters([Parameter('model', value=str(metric))])[0]
        assert not result.successful and 'disparity model' in result.reason
        assert isinstance(node.estimator, SgbmStereoEstimator)
