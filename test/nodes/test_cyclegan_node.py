"""method:=cyclegan over real DDS: mono_depth_node with the params file's gray demo model
publishes G1's depth in metres for colour and mono cameras; min/max_depth clip, not rescale."""
import functools
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures.ros_harness import overrides, ros_graph
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.methods import get_method
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def model_path():
    method = get_method('cyclegan')
    params = yaml.safe_load((REPO / 'config' / method.params_file).read_text())
    path = REPO / 'models' / params['/**']['ros__parameters']['model']
    assert path.is_file(), f'the params file names {path.name}, which models/ lacks'
    return path


def test_params_file_names_a_gray_normalized_depth_model(model_path):
    spec = open_model(str(model_path), 'onnxruntime').spec
    assert (spec.method, spec.input_kind, spec.input_channels) == ('cyclegan', 'gray', 1)
    assert (spec.output_kind, spec.output_range) == ('normalized_depth', (-1.0, 1.0))


def frame(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_node_depth_equals_the_estimator_for_color_and_mono_images(model_path):
    node = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime', publish_points=False,
        publish_colored=False, max_depth=4.0))
    estimator = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'))
    rgb = frame(0, (60, 80, 3))
    images = [(rgb, 'rgb8'), (np.ascontiguousarray(rgb[..., ::-1]), 'bgr8'),
              (frame(2, (60, 80)), 'mono8')]
    with ros_graph(node) as (probe, _):
        probe.record(Image, 'depth/image')
        publisher = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(publisher)
        for index, (image, encoding) in enumerate(images):
            header = Header(frame_id='camera_optical_frame')
            header.stamp.sec = index + 1
            publisher.publish(ros_io.array_to_image(image, encoding, header))
            assert probe.wait_for(lambda: len(probe.messages('depth/image')) > index), encoding
    for (image, encoding), msg in zip(images, probe.messages('depth/image')):
        depth = ros_io.image_to_array(msg)
        full = estimator.estimate(image, encoding).depth            # the model's 0.5-10 m
        expected = np.where(full <= 4.0, full, np.nan)             # max_depth clips
        np.testing.assert_array_equal(depth, expected.astype(np.float32))
    color, reordered = (ros_io.image_to_array(m) for m in probe.messages('depth/image')[:2])
    np.testing.assert_array_equal(color, reordered)   # same luma whatever the channel order
