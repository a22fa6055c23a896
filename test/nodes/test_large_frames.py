"""Frames too large for the shipped Fast DDS profile: the silent-input hint names the size."""
import functools

from fixtures.models import write_affine_model
from fixtures.ros_harness import overrides, ros_graph
from sensor_msgs.msg import CameraInfo

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.nodes.mono_depth_node import MonoDepthNode


def test_the_silent_input_hint_names_a_frame_size_above_the_measured_limit(tmp_path):
    model = write_affine_model(tmp_path / 'affine.onnx', ModelSpec(
        method='affine', input_height=24, input_width=32, output_kind='log_depth'))
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model), backend='onnxruntime'))
    with ros_graph(factory) as (probe, (node,)):
        assert node._frame_size_note() == ''                  # no camera_info yet
        node.frames.latest['camera_info'] = CameraInfo(width=2592, height=1944)
        assert node._frame_size_note() == ''                  # 15 MB: measured to arrive
        node.frames.latest['camera_info'] = CameraInfo(width=4000, height=3000)
        note = node._frame_size_note()
    # 4000 x 3000 x 3 bytes = 36 MB
    assert 'camera_info says 4000x3000: 36 MB per rgb8 frame; best-effort frames above ' \
        '16 MB are lost at times: make the input reliable (up to 72 MB' in note
    assert '<segment_size> 134217728' in note and 'image_transport:=compressed' in note
