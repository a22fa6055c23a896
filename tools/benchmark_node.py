#!/usr/bin/env python3
"""Benchmark mono_depth_node at 640x480: model-only time, node latency and its overhead.

Runs the installed node in its own process (as on a robot) and measures, over real DDS:
  1. model-only inference time (the engine alone on the same input tensor, in this process);
  2. end-to-end latency, publish -> receive, one frame at a time (p50 / p95);
  3. the node's overhead = (2) - (1) at p50 (target: <= 3 ms);
  4. latency p95 when frames arrive 3x faster than inference (target: <= 2x single-frame p50).

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


def run(model: str, frames: int, overload_s: float) -> dict:
    from depth_nodes.runtime.model import resolve_model_path
    model = str(resolve_model_path(model))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    model_s = model_only_seconds(model, image, max(frames, 50))
    node = subprocess.Popen(node_command(model), stdout=subprocess.DEVNULL)
    probe = LatencyProbe()
    try:
        msg = image
        deadline = time.monotonic() + 30
        while probe.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        index = 1
        for _ in range(10):                         # warm-up, discovery of the reply path
            probe.arrived.clear()
            probe.publish(msg, index)
            index += 1
            probe.arrived.wait(5.0)
        probe.latencies.clear()
        for _ in range(frames):                     # one frame at a time
            probe.arrived.clear()
            probe.publish(msg, index)
            index += 1
            if not probe.arrived.wait(5.0):
                raise RuntimeError('no depth within 5 s: is the node running?')
            time.sleep(0.01)
        single = list(probe.latencies)
        probe.latencies.clear()
        period = np.median(model_s) / 3.0           # 3x faster than inference
        sent_before = index
        end = time.perf_counter() + overload_s
        next_t = time.perf_counter()
        while time.perf_counter() < end:
            probe.publish(msg, index)
            index += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        time.sleep(1.0)
        overload = list(probe.latencies)
        published = index - sent_before
    finally:
        probe.close()
        node.terminate()
        node.wait(10)
    single_p50 = percentile_ms(single, 50)
    return {
        'input': '640x480 rgb8', 'model': Path(model).name, 'backend': 'onnxruntime (CPU)',
        'model_only_ms_p50': percentile_ms(model_s, 50),
        'model_only_ms_p95': percentile_ms(model_s, 95),
        'end_to_end_ms_p50': single_p50, 'end_to_end_ms_p95': percentile_ms(single, 95),
        'overhead_ms_p50': single_p50 - percentile_ms(model_s, 50),
        'overload_rate_hz': 1.0 / period, 'overload_published': published,
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
    args = parser.parse_args(argv)
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
