"""The mirror post-processing (MonoDepthEstimator(post_process=...) and mono_depth_node's
post_process parameter): "pp" of disparity models and "flip" of any model, on a model whose
output is not mirror-symmetric: out[x] = 0.1 * image[x + 1] + 0.05, so the mirrored run
gives 0.1 * image[x - 1] + 0.05 and every column of the combination can be written down by
hand."""
import dataclasses
import functools
import time

import numpy as np
import onnx
import pytest
from fixtures.ros_harness import overrides, ros_graph
from onnx import TensorProto, helper, numpy_helper
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.model_spec import METADATA_KEY, ModelSpec
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

H, W = 8, 64
SPEC = ModelSpec(method='shifted_disparity', input_kind='gray', input_names=('image',),
                 input_height=H, input_width=W, input_channels=1, mean=(0.0,), std=(1.0,),
                 output_name='disparity', output_kind='disparity_fraction', baseline=0.5,
                 focal_fraction=0.8, min_depth=0.01, max_depth=1000.0)


def write_shifted_disparity_model(path, spec=SPEC):
    """Conv 1x3 with weights (0, 0, 0.1), zero padding, bias 0.05: out[x] = 0.1 in[x+1] + .05"""
    weight = np.array([0.0, 0.0, 0.1], np.float32).reshape(1, 1, 1, 3)
    graph = helper.make_graph(
        [helper.make_node('Conv', ['image', 'W', 'B'], [spec.output_name], name='shift',
                          pads=[0, 1, 0, 1])],
        'shifted_disparity',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 1, H, W])],
        [helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, [1, 1, H, W])],
        initializer=[numpy_helper.from_array(weight, 'W'),
                     numpy_helper.from_array(np.array([0.05], np.float32), 'B')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_shifted_disparity_model(tmp_path_factory.mktemp('pp') / 'shift.onnx')


def image():
    return np.random.default_rng(4).integers(0, 256, (H, W), dtype=np.uint8)


def hand_runs(img):
    """The direct run and the mirrored run (mirrored back), by hand."""
    x = img.astype(np.float64) / 255.0
    direct = np.full((H, W), 0.05)
    direct[:, :-1] += 0.1 * x[:, 1:]                   # 0.1 img[x + 1] + 0.05
    mirrored = np.full((H, W), 0.05)
    mirrored[:, 1:] += 0.1 * x[:, :-1]                 # 0.1 img[x - 1] + 0.05
    return direct, mirrored


def hand_pp_disparity(img):
    direct, mirrored = hand_runs(img)
    expected = (direct + mirrored) / 2                 # the middle: mean of both runs
    # Columns x with t = x / 63 <= 0.05 (x <= 3) come from the mirrored run, >= 0.95
    # (x >= 60) from the direct one; ramps in between: t = 4/63 -> weight 1 - 0.2698...
    expected[:, :4], expected[:, 60:] = mirrored[:, :4], direct[:, 60:]
    for x in (4, 5, 6):
        w = 1 - (x / 63 - 0.05) / 0.05
        expected[:, x] = w * mirrored[:, x] + (1 - w) * expected[:, x]
        expected[:, W - 1 - x] = w * direct[:, W - 1 - x] + (1 - w) * expected[:, W - 1 - x]
    return expected


def test_pp_depth_from_two_runs_combined_by_column(model_path):
    estimator = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'),
                                   post_process='pp')
    img = image()
    result = estimator.estimate(img, 'mono8')
    # depth = (fx / W) B / disparity with the spec's focal_fraction 0.8 and baseline 0.5
    np.testing.assert_allclose(result.depth, 0.4 / hand_pp_disparity(img), rtol=1e-5)
    plain = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime')).estimate(img, 'mono8')
    np.testing.assert_allclose(plain.depth[:, 10], 0.4 / (0.1 * img[:, 11] / 255.0 + 0.05),
                               rtol=1e-5)
    assert not np.allclose(plain.depth, result.depth)


def test_pp_runs_the_engine_twice(model_path):
    model = open_model(str(model_path), 'onnxruntime')
    calls = []
    run = model.engine.run
    model.engine.run = lambda feeds: calls.append(feeds['image'].copy()) or run(feeds)
    MonoDepthEstimator(model, post_process='pp').estimate(image(), 'mono8')
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[1], calls[0][..., ::-1])


METRIC_SPEC = ModelSpec(input_kind='gray', input_names=('image',), input_height=H,
                        input_width=W, input_channels=1, mean=(0.0,), std=(1.0,),
                        output_name='depth', output_kind='metric_depth', min_depth=0.01,
                        max_depth=1000.0)


@pytest.fixture(scope='module')
def metric_model_path(tmp_path_factory):
    return write_shifted_disparity_model(tmp_path_factory.mktemp('flip') / 'metric.onnx',
                                         METRIC_SPEC)


def test_pp_is_refused_for_models_without_disparity_output(metric_model_path):
    with pytest.raises(ValueError, match='disparity model'):
        MonoDepthEstimator(open_model(str(metric_model_path), 'onnxruntime'), post_process='pp')
    with pytest.raises(ValueError, match="'mirror' not in"):
        MonoDepthEstimator(open_model(str(metric_model_path), 'onnxruntime'),
                           post_process='mirror')


def test_flip_is_the_plain_mean_of_both_runs_in_every_column(metric_model_path):
    estimator = MonoDepthEstimator(open_model(str(metric_model_path), 'onnxruntime'),
                                   post_process='flip')
    img = image()
    direct, mirrored = hand_runs(img)
    # No edge ramps (those are pp's, for stereo occlusions): the border columns too are means.
    np.testing.assert_allclose(estimator.estimate(img, 'mono8').depth,
                               (direct + mirrored) / 2, rtol=1e-5)
    # In the output's own space: log depth is averaged as log depth (a geometric mean).
    log_spec = dataclasses.replace(METRIC_SPEC, output_kind='log_depth')
    log_model = write_shifted_disparity_model(metric_model_path.parent / 'log.onnx', log_spec)
    flipped = MonoDepthEstimator(open_model(str(log_model), 'onnxruntime'),
                                 post_process='flip').estimate(img, 'mono8')
    np.testing.assert_allclose(flipped.depth, np.sqrt(np.exp(direct) * np.exp(mirrored)),
                               rtol=1e-5)


def test_flip_makes_the_depth_of_a_mirrored_image_the_mirrored_depth(metric_model_path):
    img = image()
    model = open_model(str(metric_model_path), 'onnxruntime')
    plain = MonoDepthEstimator(model)
    assert not np.allclose(plain.estimate(img[:, ::-1].copy(), 'mono8').depth,
                           plain.estimate(img, 'mono8').depth[:, ::-1])
    flip = MonoDepthEstimator(model, post_process='flip')
    np.testing.assert_allclose(flip.estimate(img[:, ::-1].copy(), 'mono8').depth,
                               flip.estimate(img, 'mono8').depth[:, ::-1], rtol=1e-6)


def test_mono_depth_node_post_process_parameter(model_path):
    from rclpy.parameter import Parameter

    from depth_nodes.nodes.mono_depth_node import MonoDepthNode
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime', post_process='pp'))
    img = image()
    header = Header(frame_id='cam')
    header.stamp.sec = 5
    with ros_graph(factory) as (probe, (node,)):
        probe.record(Image, 'depth/image')
        pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(pub)
        pub.publish(ros_io.array_to_image(img, 'mono8', header))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        depth = ros_io.image_to_array(probe.messages('depth/image')[0])
        np.testing.assert_allclose(depth, 0.4 / hand_pp_disparity(img), rtol=1e-5)
        # Switched off at run time: the next frame is the direct run.
        assert node.set_parameters([Parameter('post_process', value='none')])[0].successful
        assert not node.set_parameters([Parameter('post_process', value='x')])[0].successful
        time.sleep(0.1)
        pub.publish(ros_io.array_to_image(img, 'mono8', header))
        assert probe.wait_for(lambda: len(probe.messages('depth/image')) >= 2)
        depth = ros_io.image_to_array(probe.messages('depth/image')[1])
        np.testing.assert_allclose(depth[:, 10], 0.4 / (0.1 * img[:, 11] / 255.0 + 0.05),
                                   rtol=1e-5)


def test_mono_depth_node_flip(metric_model_path):
    from depth_nodes.nodes.mono_depth_node import MonoDepthNode
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(metric_model_path), backend='onnxruntime', post_process='flip'))
    img = image()
    direct, mirrored = hand_runs(img)
    with ros_graph(factory) as (probe, _):
        probe.record(Image, 'depth/image')
        pub = probe.publisher(Image, 'image')
        assert probe.wait_for_subscribers(pub)
        pub.publish(ros_io.array_to_image(img, 'mono8', Header(frame_id='cam')))
        assert probe.wait_for(lambda: probe.messages('depth/image'))
        np.testing.assert_allclose(ros_io.image_to_array(probe.messages('depth/image')[0]),
                                   (direct + mirrored) / 2, rtol=1e-5)
