#!/usr/bin/env python3
"""Benchmark mono_depth_node at 640x480: model-only time, node latency and its overhead.

Runs the installed node in its own process (as on a robot) and measures, over real DDS:
  1. model-only inference time (the engine alone on the same input tensor, in this process);
  2. end-to-end latency, publish -> receive, one frame at a time (p50 / p95);
  3. the node's overhead = (2) - (1) at p50 (target: <= 3 ms);
  4. latency p95 when frames arrive 3x faster than inference (target: <= 2x single-frame p50);
  5. the transport floor: the same round trip through a do-nothing echo node (rclpy, raw
     CDR in and out, same message sizes), so (3) can be split into the node's own work
     and what rclpy + Fast DDS cost to move 0.9 MB in and 1.2 MB out.

Every process here (this probe, the echo, the node) keeps its megabyte buffers in the heap
(depth_nodes/runtime/allocator.py, as the nodes do at start); DEPTH_NODES_MALLOPT=0 in the
environment measures all three with glibc's default malloc instead.

Usage (after tools/bootstrap.sh):  source tools/env.sh && python tools/benchmark_node.py
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def percentile_ms(samples, q):
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def model_only_seconds(model: str, image: np.ndarray, runs: int) -> list[float]:
    from depth_nodes.core.preprocess import image_to_tensor
    from depth_nodes.runtime.estimator import MonoDepthEstimator
    from depth_nodes.runtime.model import open_model
    estimator = MonoDepthEstimator(open_model(model, 'onnxruntime'))
    tensor = image_to_tensor(image, 'rgb8', estimator.spec)
    for _ in range(5):
        estimator.infer(tensor)
    return [estimator.infer(tensor)[1] for _ in range(runs)]


def serve_echo() -> int:
    """The floor: answer every image with a 640x480 32FC1 image of the same stamp, no work."""
    import signal

    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    from depth_nodes.nodes.depth_node import input_qos
    from depth_nodes.runtime.allocator import keep_large_buffers
    keep_large_buffers()                 # as run_node does for every depth node
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    rclpy.init()
    node = rclpy.create_node('depth_benchmark_echo')
    pub = node.create_publisher(Image, 'depth/image', QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
    reply = bytearray(ros_io.image_to_cdr(np.zeros((480, 640), np.float32), '32FC1',
                                          Header()))

    def echo(raw):
        reply[4:12] = raw[4:12]          # header stamp (sec, nanosec) after the CDR header
        pub.publish(bytes(reply))
    node.create_subscription(Image, 'image', echo, input_qos(), raw=True)
    try:
        rclpy.spin(node)
    except Exception:  # shutdown by signal
        pass
    return 0


def echo_command() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), '--serve-echo']


def node_command(model: str) -> list[str]:
    workspace = os.environ.get('DEPTH_NODES_WORKSPACE')
    exe = Path(workspace or '') / 'depth_nodes' / 'lib' / 'depth_nodes' / 'mono_depth_node'
    base = [str(exe)] if workspace and exe.exists() else \
        [sys.executable, '-m', 'depth_nodes.nodes.mono_depth_node']
    return base + ['--ros-args', '-p', f'model:={model}', '-p', 'backend:=onnxruntime',
                   '-p', 'publish_colored:=false', '-p', 'publish_points:=false',
                   '--log-level', 'warn']


class LatencyProbe:
    """Publishes stamped images and records publish -> receive latency per stamp.

    It publishes and receives serialized messages, as a C++ camera driver and consumer would,
    so the numbers measure the node, not Python message conversion in this harness.
    """

    def __init__(self):
        import rclpy
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import Image

        from depth_nodes.runtime.allocator import keep_large_buffers
        _, self.malloc_note = keep_large_buffers()
        rclpy.init()
        self.node = rclpy.create_node('depth_benchmark')
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, 'image', qos)
        self.sent: dict[int, float] = {}
        self.latencies: list[float] = []
        self.arrived = threading.Event()
        self.node.create_subscription(Image, 'depth/image', self._on_depth, qos, raw=True)
        self._thread = threading.Thread(target=rclpy.spin, args=(self.node,), daemon=True)
        self._thread.start()

    def _on_depth(self, raw):
        from depth_nodes import ros_io
        now = time.perf_counter()
        stamp = ros_io.image_from_cdr(raw).header.stamp
        key = stamp.sec * 10**9 + stamp.nanosec
        sent = self.sent.pop(key, None)
        if sent is not None:
            self.latencies.append(now - sent)
        self.arrived.set()

    def publish(self, image: np.ndarray, index: int) -> None:
        from std_msgs.msg import Header

        from depth_nodes import ros_io
        header = Header(frame_id='camera_optical_frame')
        header.stamp.sec = index
        self.sent[index * 10**9] = time.perf_counter()
        self.pub.publish(ros_io.image_to_cdr(image, 'rgb8', header))

    def close(self):
        import rclpy
        self.node.destroy_node()
        rclpy.shutdown()


def single_frame_latencies(probe: 'LatencyProbe', image, frames: int, first_index: int
                           ) -> tuple[list[float], int]:
    """Publish one frame at a time and wait for its depth; returns latencies, next index."""
    index = first_index
    # Warm-up: discovery is asymmetric (our publisher can see the node's subscription before
    # the node's reader has matched us), so retry quickly until replies come, then 10 more.
    deadline, replies = time.monotonic() + 30.0, 0
    while replies < 10 and time.monotonic() < deadline:
        probe.arrived.clear()
        probe.publish(image, index)
        index += 1
        replies += probe.arrived.wait(0.2)
    probe.latencies.clear()
    for _ in range(frames):
        probe.arrived.clear()
        probe.publish(image, index)
        index += 1
        if not probe.arrived.wait(5.0):
            raise RuntimeError('no depth within 5 s: is the node running?')
        time.sleep(0.01)
    latencies = list(probe.latencies)
    probe.latencies.clear()
    return latencies, index


def wait_for_subscriber(probe: 'LatencyProbe', process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while probe.pub.get_subscription_count() == 0:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError('the node under test did not subscribe within 30 s')
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def transport_floor(probe: 'LatencyProbe', image, frames: int) -> list[float]:
    echo = subprocess.Popen(echo_command(), stdout=subprocess.DEVNULL)
    try:
        wait_for_subscriber(probe, echo)
        latencies, _ = single_frame_latencies(probe, image, frames, 10**6)
    finally:
        stop(echo)
    deadline = time.monotonic() + 10                # let the echo's subscription go away
    while probe.pub.get_subscription_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    return latencies


def run(model: str, frames: int, overload_s: float) -> dict:
    from depth_nodes.runtime.model import resolve_model_path
    model = str(resolve_model_path(model))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    model_s = model_only_seconds(model, image, max(frames, 50))
    probe = LatencyProbe()
    floor = transport_floor(probe, image, frames)
    node = subprocess.Popen(node_command(model), stdout=subprocess.DEVNULL)
    try:
        wait_for_subscriber(probe, node)
        single, index = single_frame_latencies(probe, image, frames, 1)
        period = np.median(model_s) / 3.0           # 3x faster than inference
        sent_before = index
        started = time.perf_counter()
        end = started + overload_s
        next_t = time.perf_counter()
        while time.perf_counter() < end:
            probe.publish(image, index)
            index += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        achieved_hz = (index - sent_before) / (time.perf_counter() - started)
        time.sleep(1.0)
        overload = list(probe.latencies)
        published = index - sent_before
    finally:
        probe.close()
        stop(node)
    single_p50 = percentile_ms(single, 50)
    floor_p50 = percentile_ms(floor, 50)
    return {
        'input': '640x480 rgb8', 'model': Path(model).name, 'backend': 'onnxruntime (CPU)',
        'malloc': probe.malloc_note,
        'model_only_ms_p50': percentile_ms(model_s, 50),
        'model_only_ms_p95': percentile_ms(model_s, 95),
        'end_to_end_ms_p50': single_p50, 'end_to_end_ms_p95': percentile_ms(single, 95),
        'overhead_ms_p50': single_p50 - percentile_ms(model_s, 50),
        'transport_floor_ms_p50': floor_p50, 'transport_floor_ms_p95': percentile_ms(floor, 95),
        'node_own_work_ms_p50': single_p50 - percentile_ms(model_s, 50) - floor_p50,
        'overload_rate_hz': 1.0 / period, 'overload_achieved_hz': achieved_hz,
        'overload_published': published,
        'overload_delivered': len(overload),
        'overload_end_to_end_ms_p95': percentile_ms(overload, 95) if overload else float('nan'),
        'overload_p95_over_single_p50': (percentile_ms(overload, 95) / single_p50)
        if overload else float('nan'),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='eigen_synthetic',
                        help='model path or name under models/ (default: the demo model)')
    parser.add_argument('--frames', type=int, default=100, help='single-frame samples')
    parser.add_argument('--overload-seconds', type=float, default=10.0)
    parser.add_argument('--json', type=Path, help='also write the numbers to this file')
    parser.add_argument('--serve-echo', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_echo:
        return serve_echo()
    result = run(args.model, args.frames, args.overload_seconds)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f'{key:<{width}}  {value:.2f}' if isinstance(value, float) else
              f'{key:<{width}}  {value}')
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
