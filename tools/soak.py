#!/usr/bin/env python3
"""Soak test: the installed mono_depth_node in its own process, camera frames at a steady rate
for a long time (default 10 minutes at 30 Hz). Not a CI test: run it before a release.

  python tools/soak.py [--duration 600] [--rate 30] [--model eigen_synthetic] [--json out.json]

Frames come from a synthetic sample bag (tools/make_sample_bags.py), replayed in a loop with
fresh stamps over DDS, with camera_info; the soak subscribes to every output (depth, camera
info, coloured depth, points) as RViz would. It reports the node's RSS growth (median of the
last minute against the median of the first minute after warm-up), end-to-end latency
percentiles (publish -> depth received, per stamp), what the node's diagnostics counted
(dropped while busy, lost in the input queue, rejected) and whether the node crashed.
Exit code 0 when the targets hold: RSS growth < 5 %, no crash, depth kept coming.
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

from make_sample_bags import RGB_TOPICS, sample_bag  # noqa: E402
from node_process import node_executable, stop_node  # noqa: E402

RSS_GROWTH_TARGET = 0.05
WARM_UP_S = 30.0


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def node_command(model: str, prefix: str) -> list[str]:
    return node_executable('mono_depth_node') + [
        '--ros-args', '-r', f'__ns:={prefix}', '-p', f'model:={model}',
        '-p', 'backend:=onnxruntime', '-p', 'publish_colored:=true',
        '-p', 'publish_points:=true']


class Frames:
    """The sample bag's camera_info and images, re-stamped for each publish."""

    def __init__(self, bag: Path):
        from depth_nodes import ros_io
        from depth_nodes.dds_bag import open_bag
        self.store = ros_io._typestore()
        self.images, self.infos = [], []
        with open_bag(bag) as reader:
            for conn, _, raw in reader.messages():
                if conn.topic == RGB_TOPICS['image'][0]:
                    self.images.append(self.store.deserialize_cdr(bytes(raw), conn.msgtype))
                elif conn.topic == RGB_TOPICS['camera_info'][0]:
                    self.infos.append(self.store.deserialize_cdr(bytes(raw), conn.msgtype))

    def frame(self, index: int, stamp_ns: int) -> tuple[bytes, bytes]:
        image, info = self.images[index % len(self.images)], self.infos[index % len(self.infos)]
        sec, nanosec = divmod(stamp_ns, 10**9)
        out = []
        for msg, msgtype in ((info, 'sensor_msgs/msg/CameraInfo'),
                             (image, 'sensor_msgs/msg/Image')):
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            out.append(bytes(self.store.serialize_cdr(msg, msgtype)))
        return out[0], out[1]


def soak(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_nodes import ros_io
    reliable = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
    bag = sample_bag('rgb', Path(tempfile.gettempdir()) / 'depth_nodes_samples',
                     frames=30, height=args.height, width=args.width)
    frames = Frames(bag)
    prefix = '/soak'
    log_path = Path(args.log)
    log = open(log_path, 'w')
    proc = subprocess.Popen(node_command(args.model, prefix), stdout=log,
                            stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('depth_soak')
    lock = threading.Lock()
    sent: dict[int, float] = {}
    latencies: list[float] = []
    diagnostics: dict[str, str] = {}
    counts = {'depth': 0, 'camera_info': 0, 'colored': 0, 'points': 0}

    def on_depth(raw):
        now = time.perf_counter()
        header = ros_io.image_from_cdr(raw).header
        stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
        with lock:
            counts['depth'] += 1
            if stamp in sent:
                latencies.append(now - sent.pop(stamp))

    def count(key):
        def on_message(_):
            with lock:
                counts[key] += 1
        return on_message

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith('mono_depth_node'):
                with lock:
                    diagnostics.clear()
                    diagnostics.update({kv.key: kv.value for kv in status.values},
                                       level=int.from_bytes(status.level, 'little'),
                                       message=status.message)

    node.create_subscription(Image, f'{prefix}/depth/image', on_depth, reliable, raw=True)
    node.create_subscription(CameraInfo, f'{prefix}/depth/camera_info', count('camera_info'),
                             reliable, raw=True)
    node.create_subscription(Image, f'{prefix}/depth/colored', count('colored'), reliable,
                             raw=True)
    node.create_subscription(PointCloud2, f'{prefix}/depth/points', count('points'), reliable,
                             raw=True)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    image_pub = node.create_publisher(Image, f'{prefix}/image', reliable)
    info_pub = node.create_publisher(CameraInfo, f'{prefix}/camera_info', reliable)
    threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
    result = {'model': args.model, 'rate_hz': args.rate, 'duration_s': args.duration,
              'image_size': f'{args.width}x{args.height}', 'node_log': str(log_path)}
    rss_samples: list[tuple[float, int]] = []
    crashed = None
    try:
        deadline = time.monotonic() + 60
        while image_pub.get_subscription_count() == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f'mono_depth_node did not start (see {log_path})')
            time.sleep(0.1)
        time.sleep(1.0)
        print(f'[soak] {args.duration:.0f} s at {args.rate:g} Hz, {args.width}x{args.height}, '
              f'model {args.model}, node pid {proc.pid}', flush=True)
        start = time.perf_counter()
        next_rss, next_report, i = 0.0, 60.0, 0
        stamp0 = time.time_ns()
        while (elapsed := time.perf_counter() - start) < args.duration:
            if proc.poll() is not None:
                crashed = f'exit code {proc.returncode} after {elapsed:.1f} s'
                break
            stamp = stamp0 + round(i / args.rate * 1e9)
            info, image = frames.frame(i, stamp)
            info_pub.publish(info)
            with lock:
                sent[stamp] = time.perf_counter()
                if len(sent) > 10 * args.rate:      # frames never answered (dropped)
                    for old in sorted(sent)[:len(sent) - int(5 * args.rate)]:
                        del sent[old]
            image_pub.publish(image)
            i += 1
            if elapsed >= next_rss:
                rss_samples.append((elapsed, rss_bytes(proc.pid) or 0))
                next_rss += 5.0
            if elapsed >= next_report:
                with lock:
                    recent = np.percentile(latencies[-300:], 95) * 1e3 if latencies else 0
                print(f'[soak] {elapsed:5.0f} s: {i} frames sent, {counts["depth"]} depth, '
                      f'RSS {rss_samples[-1][1] / 2**20:.1f} MB, recent p95 {recent:.1f} ms',
                      flush=True)
                next_report += 60.0
            time.sleep(max(0.0, i / args.rate - (time.perf_counter() - start)))
        time.sleep(2.0)
        result['frames_sent'] = i
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_node(proc)
        log.close()

    with lock:
        lat = np.asarray(latencies) * 1e3
        result.update({f'output_{k}': v for k, v in counts.items()})
        result['diagnostics'] = dict(diagnostics)
    result['crashed'] = crashed
    if lat.size:
        result['latency_ms'] = {f'p{q}': round(float(np.percentile(lat, q)), 2)
                                for q in (50, 95, 99)} | {'max': round(float(lat.max()), 2)}
    early = [r for t, r in rss_samples if WARM_UP_S <= t < WARM_UP_S + 60 and r]
    late = [r for t, r in rss_samples if t >= args.duration - 60 and r]
    if early and late:
        first, last = float(np.median(early)), float(np.median(late))
        result['rss_mb'] = {'after_warm_up': round(first / 2**20, 1),
                            'end': round(last / 2**20, 1),
                            'max': round(max(r for _, r in rss_samples) / 2**20, 1)}
        result['rss_growth_percent'] = round(100 * (last - first) / first, 2)
    result['rss_samples_mb'] = [round(r / 2**20, 1) for _, r in rss_samples]
    result['targets_met'] = bool(
        crashed is None and counts['depth'] > 0
        and result.get('rss_growth_percent', 0.0) < 100 * RSS_GROWTH_TARGET)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, default=600.0, help='seconds (default 600)')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second')
    parser.add_argument('--model', default='eigen_synthetic',
                        help='model path or name under models/ (default: the demo model)')
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--log', default=str(Path(tempfile.gettempdir()) / 'soak_node.log'),
                        help='where the node writes its log')
    parser.add_argument('--json', type=Path, help='also write the summary here')
    args = parser.parse_args(argv)
    if args.duration < 2 * 60 + WARM_UP_S:
        print(f'[soak] note: RSS growth needs >= {2 * 60 + WARM_UP_S:.0f} s (warm-up + two '
              'one-minute windows); shorter runs report latency and crashes only',
              file=sys.stderr)
    result = soak(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0 if result['targets_met'] else 1


if __name__ == '__main__':
    sys.exit(main())
