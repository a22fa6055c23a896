"""Bag replay over DDS and recording (depth_nodes.dds_bag): payloads and stamps survive."""
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy

from depth_nodes.dds_bag import (BagPlayer, BagRecorder, open_bag,
                                 split_ros_arguments)

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


# -- the command line, as users and bag_replay.launch.py's player:=builtin run it ------------
def dds_bag(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', 'depth_nodes.dds_bag', *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def finish(process: subprocess.Popen, timeout: float = 60.0) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f'exit {process.returncode}:\n{out}'
    assert 'terminate called' not in out, out
    return out


def test_ros_arguments_are_split_from_the_tools_own():
    own, ros = split_ros_arguments(['record', 'o', '--topics', '/a:=pkg/msg/T', '--ros-args',
                                    '-r', '__node:=rec', '--', '--duration', '2'])
    assert own == ['record', 'o', '--topics', '/a:=pkg/msg/T', '--duration', '2']
    assert ros == ['--ros-args', '-r', '__node:=rec']
    assert split_ros_arguments(['play', 'b']) == (['play', 'b'], [])


def test_command_line_records_the_documented_topic_syntax_on_sim_time(camera_bag, tmp_path):
    """`record OUT --topics /t:=pkg/msg/Type` records /t (rclpy once took the argument for a
    remap rule and recorded nothing), `play --clock --remap` feeds it, both exit 0 (they
    aborted with 134), and the recorder on sim time stamps each message with the bag time
    /clock carried when it arrived."""
    source, topic = RGB_TOPICS['image'][0], '/replayed/image'
    recorder = dds_bag('record', tmp_path / 'copy', '--topics',
                       f'{topic}:=sensor_msgs/msg/Image', '--use-sim-time')
    try:
        out = finish(dds_bag('play', camera_bag, '--clock', '--rate', '2', '--topics', source,
                             '--remap', f'{source}:={topic}', '--wait-for', source))
        assert f'published 4 messages from {camera_bag}' in out
        time.sleep(1.0)     # the last messages reach the recorder
    finally:
        recorder.send_signal(signal.SIGINT)
    out = finish(recorder)
    assert f"recorded {{'{topic}': 4}}" in out
    assert read_raw(tmp_path / 'copy', topic) == read_raw(camera_bag, source)
    with open_bag(tmp_path / 'copy') as reader:
        times = [t for _, t, _ in reader.messages()]
    with open_bag(camera_bag) as reader:
        conns = [c for c in reader.connections if c.topic == source]
        bag_times = [t for _, t, _ in reader.messages(connections=conns)]
    # /clock is published just before each message: on sim time the receive time is the
    # message's bag time (the previous message's, 50 ms earlier, if /clock came in late),
    # never wall time (years later than these 2023 stamps).
    assert all(abs(t - b) <= 100_000_000 for t, b in zip(times, bag_times)), \
        (times, bag_times)


def test_command_line_errors_exit_1_without_aborting(tmp_path):
    out, _ = dds_bag('play', tmp_path / 'missing').communicate(timeout=60)
    assert 'error: bag not found' in out and 'terminate called' not in out
    process = dds_bag('record', tmp_path, '--topics', '/x:=sensor_msgs/msg/Image')
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1 and 'exists; choose a new output path' in out
    process = dds_bag('record', tmp_path / 'n', '--topics', '/x')
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 2 and "expects NAME:=VALUE, got '/x'" in out


def test_command_line_loop_and_rate(camera_bag, tmp_path):
    """`play --loop --rate 0.25` plays the bag again and again, four times slower than
    recorded (20 Hz frames 200 ms apart), until SIGINT, then exits 0."""
    topic = RGB_TOPICS['image'][0]
    recorder = dds_bag('record', tmp_path / 'loops', '--topics', f'{topic}:=sensor_msgs/msg/Image')
    player = dds_bag('play', camera_bag, '--loop', '--rate', '0.25', '--topics', topic,
                     '--wait-for', topic)
    passes = queue.Queue()
    threading.Thread(target=lambda: [passes.put(line) for line in player.stdout],
                     daemon=True).start()
    try:    # the player prints a line after each pass (started once the recorder listens)
        for _ in range(2):
            assert 'published 4 messages' in passes.get(timeout=60)
    finally:
        player.send_signal(signal.SIGINT)
        assert player.wait(timeout=30) == 0
        time.sleep(0.5)
        recorder.send_signal(signal.SIGINT)
        finish(recorder)
    source = read_raw(camera_bag, topic)
    copy = read_raw(tmp_path / 'loops', topic)
    assert len(copy) >= 2 * len(source), 'the bag was not played again'
    assert copy == (source * (len(copy) // len(source) + 1))[:len(copy)]
    with open_bag(tmp_path / 'loops') as reader:
        received = np.array([t for _, t, _ in reader.messages()])
    # Within one pass the frames are 50 ms / 0.25 = 200 ms apart: never faster.
    gaps = np.diff(received)[[i % len(source) != len(source) - 1
                              for i in range(len(received) - 1)]]
    assert gaps.mean() >= 150_000_000, gaps
