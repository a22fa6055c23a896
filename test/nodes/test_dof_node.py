"""dof_node over real DDS: blurred image values, header, encoding, sync, autofocus, parameters."""
import functools
import time

import numpy as np
import pytest
from fixtures.ros_harness import overrides, ros_graph
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.bokeh import ThinLens, render_depth_of_field
from depth_nodes.nodes.dof_node import DofNode

LENS = ThinLens(focal_length_mm=50.0, f_number=1.8, sensor_width_mm=36.0)


def header(sec, nanosec=0, frame='camera_optical_frame'):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def scene():
    """A textured 128x96 image: left third at 1 m, middle at 2 m, right at 20 m, a NaN hole."""
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    depth = np.full((96, 128), 20.0, np.float32)
    depth[:, :40] = 1.0
    depth[:, 40:80] = 2.0
    depth[80:, 100:] = np.nan
    return image, depth


def node_factory(**params):
    return functools.partial(DofNode, parameter_overrides=overrides(**params))


def publish_pair(probe, image_pub, depth_pub, image, depth, h, encoding='bgr8',
                 depth_encoding='32FC1'):
    depth_pub.publish(ros_io.array_to_image(depth, depth_encoding, h))
    time.sleep(0.05)
    image_pub.publish(ros_io.array_to_image(image, encoding, h))


def start(probe):
    probe.record(Image, 'dof/image')
    image_pub = probe.publisher(Image, 'image')
    depth_pub = probe.publisher(Image, 'depth/image')
    assert probe.wait_for_subscribers(image_pub) and probe.wait_for_subscribers(depth_pub)
    return image_pub, depth_pub


def wait_output(probe, count, timeout=10.0):
    assert probe.wait_for(lambda: len(probe.messages('dof/image')) >= count, timeout), \
        f"expected {count} dof images, got {len(probe.messages('dof/image'))}"
    return probe.messages('dof/image')[count - 1]


def test_output_is_the_core_rendering_with_the_input_header_and_encoding():
    image, depth = scene()
    with ros_graph(node_factory(focus_distance=2.0)) as (probe, _):
        image_pub, depth_pub = start(probe)
        publish_pair(probe, image_pub, depth_pub, image, depth, header(42, 500))
        msg = wait_output(probe, 1)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == \
            (42, 500, 'camera_optical_frame')
        assert (msg.encoding, msg.width, msg.height) == ('bgr8', 128, 96)
        out = ros_io.image_to_array(msg)
        np.testing.assert_array_equal(out, render_depth_of_field(image, depth, 2.0, LENS))
        np.testing.assert_array_equal(out[:, 42:78], image[:, 42:78])   # in focus
        assert np.abs(out[:80, 88:].astype(int) - image[:80, 88:]).mean() > 20
        np.testing.assert_array_equal(out[84:, 104:], image[84:, 104:])  # no depth: sharp


def test_millimetre_depth_and_mono_images():
    image, depth = scene()
    mono = image[:, :, 1].copy()
    millimetres = np.nan_to_num(depth * 1000.0).astype(np.uint16)   # NaN -> 0 = unknown
    with ros_graph(node_factory(focus_distance=1.0)) as (probe, _):
        image_pub, depth_pub = start(probe)
        publish_pair(probe, image_pub, depth_pub, mono, millimetres, header(5), 'mono8',
                     '16UC1')
        msg = wait_output(probe, 1)
        assert msg.encoding == 'mono8'
        np.testing.assert_array_equal(ros_io.image_to_array(msg),
                                      render_depth_of_field(mono, depth, 1.0, LENS))


def test_runtime_lens_parameters_and_autofocus():
    image, depth = scene()
    with ros_graph(node_factory()) as (probe, (node,)):
        image_pub, depth_pub = start(probe)
        for bad in (Parameter('focus_distance', value=0.02),    # inside the focal length
                    Parameter('f_number', value=0.0), Parameter('focus_point', value=[3.0]),
                    Parameter('unknown_depth', value='black')):
            assert not node.set_parameters([bad])[0].successful, bad.name
        assert node.set_parameters([Parameter('f_number', value=8.0),
                                    Parameter('focal_length_mm', value=35.0)])[0].successful
        publish_pair(probe, image_pub, depth_pub, image, depth, header(1))
        lens = ThinLens(focal_length_mm=35.0, f_number=8.0, sensor_width_mm=36.0)
        np.testing.assert_array_equal(ros_io.image_to_array(wait_output(probe, 1)),
                                      render_depth_of_field(image, depth, 2.0, lens))

        # Autofocus on the near third (x = 5 px): 1 m is sharp there, the rest is not.
        assert node.set_parameters([Parameter('focus_point', value=[5, 24])])[0].successful
        publish_pair(probe, image_pub, depth_pub, image, depth, header(2))
        out = ros_io.image_to_array(wait_output(probe, 2))
        np.testing.assert_array_equal(out, render_depth_of_field(image, depth, 1.0, lens))
        assert node.autofocus_distance == pytest.approx(1.0)


def test_unmatched_stamps_publish_nothing_and_bad_input_is_counted():
    image, depth = scene()
    with ros_graph(node_factory(sync_slop=0.05)) as (probe, (node,)):
        image_pub, depth_pub = start(probe)
        depth_pub.publish(ros_io.array_to_image(depth, '32FC1', header(10)))
        time.sleep(0.05)
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', header(10, 200_000_000)))
        assert probe.wait_for(lambda: node.sync.stats.last_spread_s > 0.1, timeout=5.0)
        time.sleep(0.3)
        assert probe.messages('dof/image') == []          # 0.2 s apart: no pair
        # A depth image on the image topic is refused by name, then a good pair goes through.
        publish_pair(probe, image_pub, depth_pub, depth, depth, header(11), '32FC1')
        assert probe.wait_for(lambda: node.reporter.counts['image_encoding'] == 1)
        publish_pair(probe, image_pub, depth_pub, image, depth, header(12), 'rgb8')
        msg = wait_output(probe, 1)
        assert msg.header.stamp.sec == 12


def test_depth_of_field_after_the_pix2pix_demo_model():
    """What `depth.launch.py method:=pix2pix dof:=true` starts: mono_depth_node with the
    bundled demo model feeding dof_node, both node-relative in one namespace."""
    from depth_nodes.nodes.mono_depth_node import MonoDepthNode
    from depth_nodes.runtime.estimator import MonoDepthEstimator
    from depth_nodes.runtime.model import open_model
    image = scene()[0]
    depth_node = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model='pix2pix_synthetic.onnx', backend='onnxruntime'))
    with ros_graph(depth_node, node_factory(focus_distance=3.0)) as (probe, (mono, _)):
        probe.record(Image, 'dof/image')
        image_pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(image_pub, count=2)
        image_pub.publish(ros_io.array_to_image(image, 'rgb8', header(77)))
        msg = wait_output(probe, 1, timeout=20.0)
        assert msg.header.stamp.sec == 77 and msg.encoding == 'rgb8'
        model = open_model(str(mono.model.engine.model_path), 'onnxruntime')
        depth = MonoDepthEstimator(model).estimate(image, 'rgb8').depth
        # Within the demo's trained range (its spec: output -1..1 = max_depth..min_depth).
        assert np.isfinite(depth).all() and model.spec.min_depth <= depth.min()
        assert depth.max() <= model.spec.max_depth
        np.testing.assert_array_equal(ros_io.image_to_array(msg),
                                      render_depth_of_field(image, depth, 3.0, LENS))


def test_compressed_image_transport_on_a_remapped_topic_renders_the_decoded_image():
    # image:=/cam/color/image_raw with image_transport:=compressed: the node takes
    # /cam/color/image_raw/compressed. png is lossless, so the output is the raw path's exactly;
    # a truncated png is dropped, counted, and the next pair still renders.
    from sensor_msgs.msg import CompressedImage

    from depth_nodes.core.compressed import encode_compressed
    image, depth = scene()
    factory = functools.partial(
        DofNode, cli_args=['--ros-args', '-r', 'image:=/cam/color/image_raw'],
        parameter_overrides=overrides(focus_distance=2.0, image_transport='compressed'))
    fmt, data = encode_compressed(image, 'bgr8', 'png')
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'dof/image')
        image_pub = probe.publisher(CompressedImage, '/cam/color/image_raw/compressed')
        depth_pub = probe.publisher(Image, 'depth/image')
        assert probe.wait_for_subscribers(image_pub) and probe.wait_for_subscribers(depth_pub)
        depth_pub.publish(ros_io.array_to_image(depth, '32FC1', header(7)))
        time.sleep(0.05)
        image_pub.publish(CompressedImage(header=header(7), format=fmt, data=data[:60]))
        depth_pub.publish(ros_io.array_to_image(depth, '32FC1', header(8)))
        time.sleep(0.05)
        image_pub.publish(CompressedImage(header=header(8), format=fmt, data=data))
        msg = wait_output(probe, 1)
        assert msg.header.stamp.sec == 8 and msg.encoding == 'bgr8'
        np.testing.assert_array_equal(ros_io.image_to_array(msg),
                                      render_depth_of_field(image, depth, 2.0, LENS))
        assert node.reporter.counts['compressed_data'] == 1
