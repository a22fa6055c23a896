"""A bag replayed over DDS with /clock into a node running on sim time (use_sim_time:=true),
twice in a row as `ros2 bag play --loop` does: depth keeps each input's stamp and values,
diagnostics are stamped on the bag's clock, and the loop's jump back in time is reported
and survived."""
import functools
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from fixtures.models import write_affine_model
from fixtures.ros_harness import RELIABLE, overrides, ros_graph
from sensor_msgs.msg import Image

from depth_nodes import ros_io
from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.dds_bag import BagPlayer, open_bag
from depth_nodes.nodes.mono_depth_node import MonoDepthNode
from depth_nodes.runtime.estimator import MonoDepthEstimator
from depth_nodes.runtime.model import open_model

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import RGB_TOPICS, sample_bag  # noqa: E402

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-3, max_depth=1e3)
FRAMES, RATE_HZ = 16, 10.0
IMAGE, INFO = RGB_TOPICS['image'][0], RGB_TOPICS['camera_info'][0]


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    return write_affine_model(tmp_path_factory.mktemp('models') / 'affine.onnx', SPEC)


@pytest.fixture(scope='module')
def camera_bag(tmp_path_factory):
    return sample_bag('rgb', tmp_path_factory.mktemp('bags'), frames=FRAMES, height=48,
                      width=64, rate_hz=RATE_HZ)


def stamp_ns(header):
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def test_replay_with_clock_keeps_stamps_on_sim_time_through_a_loop(model_path, camera_bag):
    with open_bag(camera_bag) as reader:
        conns = [c for c in reader.connections if c.topic == IMAGE]
        inputs = {stamp_ns(m.header): ros_io.image_to_array(m) for m in
                  (ros_io.image_from_cdr(bytes(raw))
                   for _, _, raw in reader.messages(connections=conns))}
    first, last = min(inputs), max(inputs)
    factory = functools.partial(MonoDepthNode, parameter_overrides=overrides(
        model=str(model_path), backend='onnxruntime', use_sim_time=True))
    depth, diagnostics, lock = [], [], threading.Lock()
    with ros_graph(factory) as (probe, (node,)):
        def on_depth(raw):
            with lock:
                depth.append(raw)
        probe.node.create_subscription(Image, 'depth/image', on_depth, RELIABLE, raw=True)
        probe.node.create_subscription(DiagnosticArray, '/diagnostics',
                                       lambda m: diagnostics.append(stamp_ns(m.header)), 10)
        player = BagPlayer(probe.node, camera_bag, topics=[IMAGE, INFO], clock=True,
                           remap={IMAGE: 'image', INFO: 'camera_info'})
        assert player.wait_for_subscribers([IMAGE, INFO], timeout=10)
        time.sleep(0.3)
        assert player.play() == 2 * FRAMES

        def newest_stamp():
            with lock:
                return stamp_ns(ros_io.image_from_cdr(depth[-1]).header) if depth else None
        assert probe.wait_for(lambda: newest_stamp() == last, timeout=5.0)
        looped_at = len(depth)
        assert player.play() == 2 * FRAMES           # the loop: time jumps back 1.5 s
        assert probe.wait_for(lambda: len(depth) >= looped_at + FRAMES - 2, timeout=5.0)
        time.sleep(0.3)
        assert node.time_jumps.total == 1
        sim_now = node.get_clock().now().nanoseconds
    with lock:
        outputs = [ros_io.image_from_cdr(raw) for raw in depth]
    # Keep-newest input may drop a frame under load; most arrive, each with its own stamp.
    assert looped_at >= FRAMES - 2 and len(outputs) - looped_at >= FRAMES - 2
    stamps = [stamp_ns(m.header) for m in outputs]
    assert set(stamps) <= set(inputs)
    assert stamps[:looped_at] == sorted(stamps[:looped_at])
    assert stamps[looped_at:] == sorted(stamps[looped_at:])
    assert stamps[looped_at] < stamps[looped_at - 1]         # the loop went back in time
    estimator = MonoDepthEstimator(open_model(str(model_path), 'onnxruntime'))
    for msg in (outputs[0], outputs[-1]):
        np.testing.assert_array_equal(ros_io.image_to_array(msg), estimator.estimate(
            inputs[stamp_ns(msg.header)], 'rgb8', depth_range=(1e-3, 1e3)).depth)
    # The node's clock is the bag's: diagnostics published while playing carry bag time,
    # never wall time (the bag was recorded at 1.7e9 s; this machine's clock is later).
    on_bag_time = [s for s in diagnostics if first <= s <= last]
    assert on_bag_time, f'no diagnostics on bag time; stamps {diagnostics}'
    assert all(s <= last for s in diagnostics)
    assert first <= sim_now <= last
