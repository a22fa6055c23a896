"""Bag replay over DDS and recording (depth_nodes.dds_bag): payloads and stamps survive."""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy

from depth_nodes.dds_bag import BagPlayer, BagRecorder, open_bag

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import RGB_TOPICS, write_rgb_bag  # noqa: E402


@pytest.fixture(scope='module')
def camera_bag(tmp_path_factory):
    return write_rgb_bag(tmp_path_factory.mktemp('bags') / 'camera', frames=4, height=48,
                         width=64, rate_hz=20.0)


def read_raw(bag, topic):
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [bytes(raw) for _, _, raw in reader.messages(connections=conns)]


def test_sample_bag_holds_consistent_frames(camera_bag):
    from depth_nodes import ros_io
    images = [ros_io.image_from_cdr(r) for r in read_raw(camera_bag, RGB_TOPICS['image'][0])]
    truth = [ros_io.image_from_cdr(r) for r in read_raw(camera_bag,
                                                        RGB_TOPICS['ground_truth'][0])]
    assert len(images) == len(truth) == 4
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
    assert np.diff(stamps).tolist() == [50_000_000] * 3            # 20 Hz
    depth = ros_io.image_to_array(truth[0])
    assert depth.dtype == np.float32 and 0.5 <= np.nanmin(depth) and np.nanmax(depth) <= 10.0


def test_play_and_record_round_trip_keeps_bytes_and_stamps(camera_bag, tmp_path):
    topic = RGB_TOPICS['image'][0]
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bag_round_trip', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        recorder = BagRecorder(node, tmp_path / 'copy', {topic: 'sensor_msgs/msg/Image'})
        player = BagPlayer(node, camera_bag, topics=[topic], rate=2.0)
        assert player.wait_for_subscribers([topic], timeout=10)
        time.sleep(0.3)
        assert player.play() == 4
        deadline = time.monotonic() + 10
        while recorder.counts[topic] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        recorder.close()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert read_raw(tmp_path / 'copy', topic) == read_raw(camera_bag, topic)
    assert (tmp_path / 'copy' / 'metadata.yaml').exists()


def test_recorder_refuses_to_overwrite(tmp_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('bag_refuse', context=context)
    try:
        with pytest.raises(FileExistsError):
            BagRecorder(node, tmp_path, {'/x': 'sensor_msgs/msg/Image'})
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
