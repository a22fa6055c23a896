#!/usr/bin/env python3
"""semidense_depth_node end to end over DDS: the installed node in its own process, the shipped
model, one 640x480 frame in flight at a time.

  source tools/env.sh && python tools/benchmark_semidense_node.py [--frames 60] [--model M]

Each frame is a 10 % semi-dense map (benchmark_semidense.semidense_input: a tilted plane with
boxes, sampled on its intensity edges, five different ones in turn) published as
``semidense/depth`` (32FC1) with its ``image`` (mono8, the model's intensity channel) under one
stamp; the latency is the time from publishing the depth to receiving ``depth/image`` with
that stamp (the node's decoding, synchronisation, fills, network, publishing and both DDS
transfers). The first reply is checked (dense, the input's size, every known input depth
kept) before anything is timed. Then, in this process after the node has stopped, the same
frames through SemiDenseEstimator alone, to show what the node adds. Prints p50 / p95 / max
in ms and writes them as JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))
# A DDS domain of our own (not the tests' 1-100) unless the caller chose one.
os.environ.setdefault('ROS_DOMAIN_ID', str(101 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

from benchmark_semidense import semidense_input  # noqa: E402
from node_process import node_executable, stop_node  # noqa: E402

HEIGHT, WIDTH = 480, 640
PREFIX = '/semidense_bench'


def node_command(model: str) -> list[str]:
    return node_executable('semidense_depth_node') + [
        '--ros-args', '-r', f'__ns:={PREFIX}', '-p', f'model:={model}',
        '-p', 'backend:=onnxruntime']


def check_output(raw: bytes, depth: np.ndarray) -> None:
    """The published depth is dense, of the input's size, and keeps every known input depth:
    a benchmark of a node that publishes something else would mean nothing."""
    from depth_nodes import ros_io
    message = ros_io.image_from_cdr(raw)
    out = ros_io.image_to_array(message)
    known = np.isfinite(depth)
    if message.encoding != '32FC1' or out.shape != depth.shape or not np.isfinite(out).all() \
            or not np.allclose(out[known], depth[known], rtol=1e-6):
        raise SystemExit(f'semidense_depth_node published a wrong depth image '
                         f'({message.encoding}, {out.shape}): not timing it')


def percentiles(values_ms: list[float]) -> dict[str, float]:
    values = np.asarray(values_ms)
    return {'p50': round(float(np.percentile(values, 50)), 1),
            'p95': round(float(np.percentile(values, 95)), 1),
            'max': round(float(values.max()), 1), 'frames': int(values.size)}


def node_latencies(model: str, frames: list[tuple[np.ndarray, np.ndarray]], count: int,
                   log_path: Path, timeout_s: float = 10.0) -> list[float]:
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
    log = open(log_path, 'w')
    proc = subprocess.Popen(node_command(model), stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('semidense_bench')
    received: dict[int, float] = {}
    first: list[bytes] = []
    arrived = threading.Condition()

    def on_depth(raw):
        now = time.perf_counter()
        with arrived:
            received[ros_io.cdr_stamp_ns(raw)] = now
            if not first:
                first.append(bytes(raw))
            arrived.notify_all()

    node.create_subscription(Image, f'{PREFIX}/depth/image', on_depth, reliable, raw=True)
    depth_pub = node.create_publisher(Image, f'{PREFIX}/semidense/depth', reliable)
    image_pub = node.create_publisher(Image, f'{PREFIX}/image', reliable)
    threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while depth_pub.get_subscription_count() == 0 or image_pub.get_subscription_count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f'semidense_depth_node did not start (see {log_path})')
            time.sleep(0.1)
        time.sleep(1.0)
        for i in range(count + 3):                  # the first 3: warm-up, not counted
            stamp = time.time_ns()
            sec, nanosec = divmod(stamp, 10**9)
            header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id='camera')
            depth, intensity = frames[i % len(frames)]
            raw_image = ros_io.image_to_cdr(intensity, 'mono8', header)
            raw_depth = ros_io.image_to_cdr(depth, '32FC1', header)
            image_pub.publish(raw_image)
            sent = time.perf_counter()
            depth_pub.publish(raw_depth)
            with arrived:
                if not arrived.wait_for(lambda: stamp in received, timeout_s):
                    raise SystemExit(f'no depth/image for frame {i} within {timeout_s} s '
                                     f'(see {log_path})')
                if i >= 3:
                    latencies.append((received[stamp] - sent) * 1e3)
            if i == 0:
                check_output(first[0], depth)
            time.sleep(0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)
        log.close()
    return latencies


def estimator_times(model: str, frames: list[tuple[np.ndarray, np.ndarray]], count: int
                    ) -> list[float]:
    from depth_nodes.frames import SemiDenseFramePath
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.model import open_model
    from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator
    estimator = SemiDenseEstimator(open_model(model, 'onnxruntime', EngineOptions(
        spin_wait=SemiDenseFramePath.engine_spin_wait)))
    times = []
    for i in range(count + 3):
        depth, intensity = frames[i % len(frames)]
        start = time.perf_counter()
        estimator.estimate(depth, intensity=intensity, keep_input_depth=True)
        if i >= 3:
            times.append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default=str(REPO / 'models' / 'semidense_synthetic.onnx'))
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--json', type=Path, help='also write the numbers here')
    args = parser.parse_args(argv)
    frames = [semidense_input(HEIGHT, WIDTH, seed) for seed in range(5)]
    log_path = Path(tempfile.gettempdir()) / 'benchmark_semidense_node.log'
    result = {'model': args.model, 'size': f'{WIDTH}x{HEIGHT}',
              'node_end_to_end_ms': percentiles(node_latencies(args.model, frames,
                                                               args.frames, log_path)),
              'estimator_alone_ms': percentiles(estimator_times(args.model, frames,
                                                                args.frames))}
    for key in ('node_end_to_end_ms', 'estimator_alone_ms'):
        numbers = result[key]
        print(f'{key:>20}: p50 {numbers["p50"]:6.1f}  p95 {numbers["p95"]:6.1f}  '
              f'max {numbers["max"]:6.1f} ms  ({numbers["frames"]} frames)')
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
