"""image_transport:=compressed (and depth_image_transport:=compressedDepth) over real DDS: the
nodes subscribe <topic>/compressed, decode it and give the raw image's depth."""
import functools
import time

import numpy as np
import pytest
from fixtures.models import write_affine_model
from fixtures.ros_harness import overrides, ros_graph
from fixtures.stereo_pairs import textured_pair
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.compressed import (decode_compressed, encode_compressed,
                                         encode_compressed_depth)
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


def header(sec):
    h = Header(frame_id='camera_optical_frame')
    h.stamp.sec, h.stamp.nanosec = sec, 500
    return h


def smooth_image():
    """Smooth ramps and a blob (jpeg keeps them within a few grey levels)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float32)
    blob = 80 * np.exp(-((x - 40) ** 2 + (y - 20) ** 2) / 120)
    return np.clip(np.stack([x * 3 + blob, y * 4 + 20, 200 - x * 2 + blob], axis=2),
                   0, 255).round().astype(np.uint8)


def compressed(image, encoding, codec, h):
    fmt, data = encode_compressed(image, encoding, codec)
    return CompressedImage(header=h, format=fmt, data=data)


def test_mono_node_compressed_transport_on_a_remapped_topic(model_path):
    # image:=/cam/color/image_raw; the node takes /cam/color/image_raw/compressed.
    factory = functools.partial(
        MonoDepthNode, cli_args=['--ros-args', '-r', 'image:=/cam/color/image_raw'],
        parameter_overrides=overrides(model=str(model_path), backend='onnxruntime',
                                      image_transport='compressed'))
    image = smooth_image()
    model = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'))
    raw_depth = model.estimate(image, 'rgb8', CAM).depth
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        pub = probe.publisher(CompressedImage, '/cam/color/image_raw/compressed')
        assert probe.wait_for_subscribers(pub)
        info_pub.publish(ros_io.intrinsics_to_camera_info(CAM, header(1)))
        time.sleep(0.2)
        jpeg = compressed(image, 'rgb8', 'jpeg', header(1))
        pub.publish(jpeg)
        assert probe.wait_for(lambda: len(probe.messages('depth/image')) == 1)
        pub.publish(CompressedImage(header=header(2), format=jpeg.format,
                                    data=bytes(jpeg.data[:60])))           # truncated
        assert probe.wait_for(lambda: node.reporter.counts['compressed_data'] == 1)
        pub.publish(compressed(image, 'rgb8', 'png', header(3)))           # still running
        assert probe.wait_for(lambda: len(probe.messages('depth/image')) == 2)
        first, second = probe.messages('depth/image')
    assert (first.header.stamp.sec, first.header.stamp.nanosec) == (1, 500)
    jpeg_depth = ros_io.image_to_array(first)
    # The model's depth of the decoded jpeg, and the raw image's within jpeg error.
    decoded, encoding = decode_compressed(jpeg.format, bytes(jpeg.data))
    np.testing.assert_array_equal(jpeg_depth, model.estimate(decoded, encoding, CAM).depth)
    relative = np.abs(jpeg_depth - raw_depth) / raw_depth
    assert np.median(relative) < 0.02 and relative.max() < 0.1
    # png is lossless: the raw image's depth exactly.
    np.testing.assert_array_equal(ros_io.image_to_array(second), raw_depth)


def test_stereo_node_compressed_pair_gives_the_raw_pairs_depth():
    from depth_nodes.nodes.stereo_depth_node import StereoDepthNode
    from depth_nodes.runtime.stereo_estimator import SgbmStereoEstimator
    left_cam = CameraIntrinsics(160, 96, fx=100.0, fy=100.0, cx=79.5, cy=47.5)
    right_cam = CameraIntrinsics(160, 96, fx=100.0, fy=100.0, cx=79.5, cy=47.5, tx=-12.0)
    left, right = textured_pair(9)                  # 9 px: Z = 100 * 0.12 / 9 = 1.33 m
    factory = functools.partial(StereoDepthNode, parameter_overrides=overrides(
        model='', image_transport='compressed', min_depth=0.5))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        infos = [probe.publisher(CameraInfo, f'{side}/camera_info')
                 for side in ('left', 'right')]
        pubs = [probe.publisher(CompressedImage, f'{side}/image_rect/compressed')
                for side in ('left', 'right')]
        assert all(probe.wait_for_subscribers(p) for p in pubs + infos)
        for pub, cam in zip(infos, (left_cam, right_cam)):
            pub.publish(ros_io.intrinsics_to_camera_info(cam, header(5)))
        time.sleep(0.2)
        for pub, image in zip(pubs, (left, right)):
            pub.publish(compressed(image, 'mono8', 'png', header(5)))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        depth = ros_io.image_to_array(probe.messages('depth/image')[0])
    expected = SgbmStereoEstimator().estimate(left, 'mono8', right, 'mono8', left_cam,
                                              right_cam, depth_range=(0.5, 100.0)).depth
    np.testing.assert_array_equal(depth, expected)
    assert np.nanmedian(depth) == pytest.approx(1.2 / 0.9, rel=0.01)


def test_semidense_node_compressed_depth_keeps_the_input_depth(tmp_path):
    from depth_nodes.nodes.semidense_depth_node import SemiDenseDepthNode
    model = write_affine_model(tmp_path / 'semidense.onnx', ModelSpec(
        method='semidense', input_kind='semidense', input_names=('image',), input_height=48,
        input_width=64, input_channels=2, mean=(0.0, 0.0), std=(1.0, 1.0),
        output_name='depth', output_kind='metric_depth', min_depth=0.01, max_depth=100.0,
        extras={'scale_percentile': 100.0}), weights=(1.0, -0.5), bias=0.5)
    rng = np.random.default_rng(1)
    sparse = np.full((48, 64), np.nan, np.float32)
    known = rng.random((48, 64)) < 0.15
    sparse[known] = rng.uniform(0.5, 9.0, known.sum())
    fmt, data = encode_compressed_depth(sparse, '32FC1')
    factory = functools.partial(SemiDenseDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime', depth_image_transport='compressedDepth'))
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        info_pub = probe.publisher(CameraInfo, 'camera_info')
        pub = probe.publisher(CompressedImage, 'semidense/depth/compressedDepth')
        assert probe.wait_for_subscribers(pub)
        info_pub.publish(ros_io.intrinsics_to_camera_info(CAM, header(9)))
        time.sleep(0.2)
        pub.publish(CompressedImage(header=header(9), format=fmt, data=data))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        dense = ros_io.image_to_array(probe.messages('depth/image')[0])
    # keep_input_depth: known pixels are the input depth, within the quantisation step
    # Z^2 / A (A = 10100 for compressed_depth_image_transport's defaults).
    error = dense[known] - sparse[known]
    assert (error >= -1e-5).all() and (error <= sparse[known] ** 2 / 10100 + 1e-5).all()
    assert np.isfinite(dense).all()


def test_frame_path_with_compressed_transport_without_a_graph(model_path):
    from depth_nodes.frames import MonoDepthFramePath, parameter_defaults
    params = {**parameter_defaults(MonoDepthFramePath), 'image_transport': 'compressed'}
    model = open_model(str(model_path), 'onnxruntime')
    path = MonoDepthFramePath(MonoDepthFramePath.build_estimator(model, params), params)
    assert path.inputs == {'image': 'sensor_msgs/msg/CompressedImage',
                           'camera_info': 'sensor_msgs/msg/CameraInfo'}
    assert path.topic_suffix('image') == '/compressed' and path.topic_suffix('camera_info') == ''
    image = smooth_image()
    fmt, data = encode_compressed(image, 'rgb8', 'png')
    job = path.accept('image', ros_io.compressed_image_to_cdr(fmt, data, header(4)))
    assert job[0].format == 'rgb8; png compressed bgr8'     # pixels not decoded yet
    (topic, depth), *_ = path.process(job).messages
    assert topic == 'depth/image'
    expected = MonoDepthEstimator(model).estimate(image, 'rgb8').depth
    np.testing.assert_array_equal(ros_io.image_to_array(ros_io.image_from_cdr(depth)),
                                  expected)
