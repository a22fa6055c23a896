"""semidense_depth_node over real DDS: inverse depth + variance, point clouds + camera_info,
an intensity image synchronised by approximate time, bad input; values checked by hand.

The model is a 1x1 convolution with known weights (fixtures.models.write_affine_model) on
the node's input channels (depth / s, mask [, intensity]):

    out = 1 * depth/s - 0.5 * mask + 0.5 [+ w * intensity]

so a known pixel comes out as its own depth and an unknown one as 0.5 * s metres (s = the
frame scale, here the largest known depth): never 0, whatever the input said there.
"""
import functools
import time

import numpy as np
import pytest
from fixtures.models import write_affine_model
from fixtures.ros_harness import overrides, ros_graph
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes.semidense_depth_node import SemiDenseDepthNode

H, W = 48, 64
CAM = CameraIntrinsics(W, H, fx=50.0, fy=50.0, cx=31.5, cy=23.5)
NAN = np.nan


def semidense_spec(channels):
    return ModelSpec(method='semidense', input_kind='semidense', input_names=('image',),
                     input_height=H, input_width=W, input_channels=channels,
                     mean=(0.0,) * channels, std=(1.0,) * channels, output_name='depth',
                     output_kind='metric_depth', min_depth=0.01, max_depth=100.0,
                     extras={'scale_percentile': 100.0})


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp('semidense_models')
    return {
        'depth_mask': write_affine_model(directory / 'two.onnx', semidense_spec(2),
                                         weights=(1.0, -0.5), bias=0.5),
        'with_intensity': write_affine_model(directory / 'three.onnx', semidense_spec(3),
                                             weights=(1.0, -0.5, 1.0), bias=0.5),
    }


def header(sec, nanosec=0, frame='camera_optical_frame'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def node_factory(model, **params):
    return functools.partial(SemiDenseDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime', **params))


def wait_depth(probe, count=1, timeout=10.0):
    assert probe.wait_for(lambda: len(probe.messages('depth/image')) >= count, timeout), \
        f"expected {count} depth image(s), got {len(probe.messages('depth/image'))}"
    return ros_io.image_to_array(probe.messages('depth/image')[count - 1])


def test_inverse_depth_with_variance_filter_and_kept_input(models):
    idepth = np.zeros((H, W), np.float32)             # 0 = unknown (LSD-SLAM)
    idepth[10, 20], idepth[30, 40], idepth[5, 5] = 0.5, 0.25, 2.0      # 2 m, 4 m, 0.5 m
    idepth[40, 60] = np.nan
    variance = np.full((H, W), 0.01, np.float32)
    variance[5, 5] = 1.0                              # too uncertain: must be dropped
    factory = node_factory(models['depth_mask'], input_is_inverse_depth=True,
                           use_variance=True, max_variance=0.1)
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        probe.record(CameraInfo, 'depth/camera_info')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        depth_pub = probe.publisher(Image, 'semidense/depth')
        variance_pub = probe.publisher(Image, 'semidense/variance')
        assert probe.wait_for_subscribers(depth_pub) and probe.wait_for_subscribers(variance_pub)
        h = header(42, 250)
        info_pub.publish(ros_io.intrinsics_to_camera_info(CAM, h))
        time.sleep(0.2)
        depth_pub.publish(ros_io.array_to_image(idepth, '32FC1', h))
        variance_pub.publish(ros_io.array_to_image(variance, '32FC1', h))
        dense = wait_depth(probe)
        msg = probe.messages('depth/image')[0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == \
            (42, 250, 'camera_optical_frame')
        # Known pixels exactly (keep_input_depth); the 0.5 m pixel was filtered out, so the
        # frame scale is the largest remaining depth, 4 m, and unknown pixels read 0.5 * 4 m.
        assert dense[10, 20] == 2.0 and dense[30, 40] == 4.0
        assert dense[5, 5] == pytest.approx(2.0) and dense[40, 60] == pytest.approx(2.0)
        assert np.isfinite(dense).all() and (dense > 0).all()
        assert probe.wait_for(lambda: probe.messages('depth/camera_info'))
        assert list(probe.messages('depth/camera_info')[0].k) == list(CAM.k.ravel())
        assert node.sync.stats.matched == 1


def test_points_projected_with_camera_info_frame(models):
    # Points in a body frame (x forward, y left, z up) at the camera: the extrinsic maps them
    # into the optical frame. (2, 0, 0) -> optical (0, 0, 2) at the principal point;
    # (4, -1, 0.5) -> optical (1, -0.5, 4) -> u = 50 / 4 + 31.5 = 44, v = -6.25 + 23.5 = 17.
    points = np.array([[2.0, 0.0, 0.0], [4.0, -1.0, 0.5], [-3.0, 0.0, 0.0]], np.float32)
    cloud = PointCloud2(header=header(7, frame='base_link'), height=1, width=len(points),
                        fields=[PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32,
                                           count=1) for i, n in enumerate('xyz')],
                        is_bigendian=False, point_step=12, row_step=12 * len(points),
                        data=points.tobytes(), is_dense=True)
    factory = node_factory(models['depth_mask'], input='points',
                           points_to_camera=[0.0, 0.0, 0.0, 0.5, -0.5, 0.5, 0.5])
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        cloud_pub = probe.publisher(PointCloud2, 'semidense/points')
        assert probe.wait_for_subscribers(cloud_pub)
        cloud_pub.publish(cloud)                      # before camera_info: cannot project
        assert probe.wait_for(lambda: node.reporter.counts['camera_info'] == 1)
        info_pub.publish(ros_io.intrinsics_to_camera_info(CAM, header(0)))
        time.sleep(0.2)
        cloud_pub.publish(cloud)
        dense = wait_depth(probe)
        msg = probe.messages('depth/image')[0]
        assert msg.header.frame_id == 'camera_optical_frame' and msg.header.stamp.sec == 7
        assert dense[24, 32] == 2.0 and dense[17, 44] == 4.0
        assert dense[0, 0] == pytest.approx(2.0)      # unknown: 0.5 * s, s = 4 m
        assert len(probe.messages('depth/image')) == 1


def test_intensity_image_synchronised_by_approximate_time(models):
    depth = np.full((H, W), NAN, np.float32)
    depth[20, 30] = 3.0
    gray = np.full((H, W), 51, np.uint8)              # intensity channel 0.2
    factory = node_factory(models['with_intensity'], sync_slop=0.01)
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        depth_pub = probe.publisher(Image, 'semidense/depth')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(depth_pub) and probe.wait_for_subscribers(image_pub)
        # 50 ms apart: beyond the 10 ms slop, no pair, reported as unsynchronised.
        depth_pub.publish(ros_io.array_to_image(depth, '32FC1', header(3, 0)))
        image_pub.publish(ros_io.array_to_image(gray, 'mono8', header(3, 50_000_000)))
        assert probe.wait_for(lambda: node.sync.stats.last_spread_s > 0.04)
        # 5 ms apart: a pair.
        depth_pub.publish(ros_io.array_to_image(depth, '32FC1', header(4, 0)))
        image_pub.publish(ros_io.array_to_image(gray, 'mono8', header(4, 5_000_000)))
        dense = wait_depth(probe)
        assert len(probe.messages('depth/image')) == 1
        assert probe.messages('depth/image')[0].header.stamp.sec == 4
        assert dense[20, 30] == 3.0
        # unknown: (0.5 + 0.2) * 3 m
        assert dense[0, 0] == pytest.approx(2.1, rel=1e-5)
        assert probe.wait_for(lambda: node.reporter.counts['unsynchronised'] >= 1)


def test_bad_input_is_dropped_per_kind_and_the_next_good_frame_processed(models):
    good = np.full((H, W), NAN, np.float32)
    good[1, 1] = 5.0
    h = header(9)
    wrong_encoding = ros_io.array_to_image(np.zeros((H, W, 3), np.uint8), 'rgb8', h)
    truncated = ros_io.array_to_image(good, '32FC1', h)
    truncated.data = bytes(truncated.data[:100])
    nothing_known = ros_io.array_to_image(np.zeros((H, W), np.float32), '32FC1', h)
    bad = {'encoding': wrong_encoding, 'data_size': truncated, 'no_depth': nothing_known}
    with ros_graph(node_factory(models['depth_mask'])) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        depth_pub = probe.publisher(Image, 'semidense/depth')
        assert probe.wait_for_subscribers(depth_pub)
        for msg in bad.values():
            depth_pub.publish(msg)
            time.sleep(0.1)
        assert probe.wait_for(lambda: node.reporter.total == len(bad))
        assert set(node.reporter.counts) == set(bad)
        depth_pub.publish(ros_io.array_to_image(good, '32FC1', header(10)))
        dense = wait_depth(probe)
        assert len(probe.messages('depth/image')) == 1
        assert dense[1, 1] == 5.0 and dense[30, 30] == pytest.approx(2.5)
