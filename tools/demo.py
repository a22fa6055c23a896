#!/usr/bin/env python3
"""The main job, end to end on this machine: camera bag -> mono_depth_node -> depth bag.

1. writes a short synthetic indoor camera sequence as a rosbag2 (image, camera_info and
   ground-truth depth; with --transport compressed also the jpeg image_transport topic, which
   the node then subscribes with image_transport:=compressed),
2. starts the colcon-installed mono_depth_node with the demo model (ONNX Runtime, CPU),
3. replays the bag over DDS and records the published depth into a second rosbag2,
4. writes demo_output/demo.png (input | depth | ground truth) and metrics.json.

Run through tools/demo.sh, which prepares the environment first.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tools'))

from make_sample_bags import RGB_TOPICS, write_rgb_bag  # noqa: E402
from node_process import node_executable, stop_node  # noqa: E402

DEPTH_TOPICS = {'/depth/image': 'sensor_msgs/msg/Image',
                '/depth/camera_info': 'sensor_msgs/msg/CameraInfo'}


def node_command(model: str, transport: str = 'raw') -> list[str]:
    return node_executable('mono_depth_node') + [
        '--ros-args', '-p', f'model:={model}', '-p', 'backend:=onnxruntime',
        '-p', f'image_transport:={transport}',
        '-r', f"image:={RGB_TOPICS['image'][0]}",
        '-r', f"camera_info:={RGB_TOPICS['camera_info'][0]}"]


def stamped_images(bag: Path, topic: str) -> dict[int, np.ndarray]:
    """header stamp (ns) -> image array, for one Image topic of a bag."""
    from depth_nodes import ros_io
    from depth_nodes.dds_bag import open_bag
    images = {}
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        for _, _, raw in reader.messages(connections=conns):
            msg = ros_io.image_from_cdr(raw)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            images[stamp] = np.array(ros_io.image_to_array(msg))
    return images


def replay_through_node(camera_bag: Path, depth_bag: Path, model: str, log: Path,
                        expected: int, transport: str = 'raw') -> tuple[int, dict[str, str]]:
    """Run the node, play the camera bag to it over DDS and record its depth output.

    Returns the number of depth images recorded and the node's last diagnostics values.
    """
    import rclpy

    from depth_nodes.dds_bag import BagPlayer, BagRecorder
    with open(log, 'w') as log_file:
        node_proc = subprocess.Popen(node_command(model, transport), stdout=log_file,
                                     stderr=subprocess.STDOUT)
    from diagnostic_msgs.msg import DiagnosticArray
    rclpy.init()
    node = rclpy.create_node('depth_demo')
    diagnostics: dict[str, str] = {}

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith('mono_depth_node'):
                diagnostics.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
    try:
        recorder = BagRecorder(node, depth_bag, DEPTH_TOPICS)
        image_topic = RGB_TOPICS['image'][0] + ('' if transport == 'raw' else '/compressed')
        player = BagPlayer(node, camera_bag,
                           topics=[image_topic, RGB_TOPICS['camera_info'][0]])
        deadline = time.monotonic() + 60
        while node.count_publishers('/depth/image') == 0 and time.monotonic() < deadline:
            if node_proc.poll() is not None:
                raise RuntimeError(f'mono_depth_node exited ({node_proc.returncode}); '
                                   f'see {log}')
            time.sleep(0.1)
        if not player.wait_for_subscribers([image_topic], timeout=30):
            raise RuntimeError(f'mono_depth_node did not subscribe to the camera; see {log}')
        time.sleep(0.5)                 # let the recorder's subscriptions match the node
        print(f'[demo] replaying {camera_bag.name} over DDS to mono_depth_node ...')
        player.play()
        deadline = time.monotonic() + 15
        while recorder.counts['/depth/image'] < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)                 # one more diagnostics period after the last frame
        recorder.close()
        return recorder.counts['/depth/image'], dict(diagnostics)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        stop_node(node_proc)


def evaluate(camera_bag: Path, depth_bag: Path, depth_range: tuple[float, float]):
    from training.metrics import DepthEvalProtocol, MetricAverager, depth_metrics
    truth = stamped_images(camera_bag, RGB_TOPICS['ground_truth'][0])
    inputs = stamped_images(camera_bag, RGB_TOPICS['image'][0])
    predicted = stamped_images(depth_bag, '/depth/image')
    protocol = DepthEvalProtocol(min_depth=depth_range[0], max_depth=depth_range[1])
    average = MetricAverager()
    for stamp, depth in predicted.items():
        average.add(depth_metrics(depth, truth[stamp], protocol))
    # The mean-depth baseline: one constant depth for every pixel (what "no model" scores).
    flat = np.concatenate([d[np.isfinite(d)] for d in truth.values()])
    baseline = MetricAverager()
    for stamp in predicted:
        baseline.add(depth_metrics(np.full_like(truth[stamp], flat.mean()), truth[stamp],
                                   protocol))
    return inputs, predicted, truth, average.means(), baseline.means()


def side_by_side(inputs, predicted, truth, path: Path, rows: int = 3) -> None:
    """input | predicted depth | ground truth, coloured over the scene's own depth range."""
    from depth_nodes.core.colorize import colorize_depth
    known = np.concatenate([d[np.isfinite(d)] for d in truth.values()])
    depth_range = tuple(float(v) for v in np.percentile(known, (1, 99)))
    stamps = sorted(predicted)
    picks = [stamps[i] for i in np.linspace(0, len(stamps) - 1, rows).round().astype(int)]
    tiles = []
    for stamp in picks:
        row = [inputs[stamp]] + [colorize_depth(np.clip(d[stamp], *depth_range), *depth_range)
                                 for d in (predicted, truth)]
        tiles.append(np.hstack(row))
    grid = np.vstack(tiles)
    width = inputs[picks[0]].shape[1]
    labels = ('input (rgb8)', 'depth/image (model)', 'ground truth')
    for i, label in enumerate(labels):
        cv2.putText(grid, label, (i * width + 8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (255, 255, 255), 2, cv2.LINE_AA)
    grid = np.vstack([grid, colour_scale(grid.shape[1], depth_range)])
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def colour_scale(width: int, depth_range: tuple[float, float], height: int = 28) -> np.ndarray:
    """A labelled turbo bar: near (red) to far (blue) in metres."""
    from depth_nodes.core.colorize import colorize_depth
    near, far = depth_range
    ramp = 1.0 / np.linspace(1.0 / near, 1.0 / far, width, dtype=np.float32)  # as coloured
    bar = colorize_depth(np.repeat(ramp[None], height, axis=0), near, far)
    for text, x in ((f'{near:.1f} m', 6), (f'{far:.1f} m', width - 70)):
        cv2.putText(bar, text, (x, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 2,
                    cv2.LINE_AA)
    return bar


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='eigen_synthetic',
                        help='model path or name under models/ (default: the demo model)')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--seed', type=int, default=3, help='scene of the sequence')
    parser.add_argument('--output', type=Path, default=REPO / 'demo_output')
    parser.add_argument('--transport', choices=('raw', 'compressed'), default='raw',
                        help="how the node receives the camera: 'compressed' plays the "
                             'jpeg image_transport topic')
    args = parser.parse_args(argv)

    from depth_nodes.runtime.model import open_model
    model = open_model(args.model, 'onnxruntime')
    depth_range = (model.spec.min_depth, model.spec.max_depth)
    out = args.output
    for stale in ('camera_bag', 'depth_bag'):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    camera_bag, depth_bag = out / 'camera_bag', out / 'depth_bag'

    print(f'[demo] writing {args.frames} synthetic indoor frames to {camera_bag}')
    write_rgb_bag(camera_bag, frames=args.frames, seed=args.seed, scene='indoor',
                  compressed='' if args.transport == 'raw' else 'jpeg')
    received, diagnostics = replay_through_node(
        camera_bag, depth_bag, str(model.engine.model_path), out / 'node.log', args.frames,
        args.transport)
    print(f'[demo] recorded {received}/{args.frames} depth images into {depth_bag}')
    skipped = {k: diagnostics.get(k, '?') for k in (
        'frames dropped (busy)', 'inputs lost before the node (queue full)',
        'frames rejected (bad input)')}
    if received < args.frames:
        print(f'[demo] the node keeps only the newest frame, skipping rather than lagging '
              f'when the CPU is busy: {skipped}')
    print(f"[demo] node latency: inference p50 {diagnostics.get('inference p50 (ms)', '?')} ms,"
          f" end-to-end p50 {diagnostics.get('end-to-end p50 (ms)', '?')} ms")
    if received == 0:
        print(f'[demo] no depth received; node log: {out / "node.log"}', file=sys.stderr)
        return 1
    inputs, predicted, truth, metrics, baseline = evaluate(camera_bag, depth_bag, depth_range)
    side_by_side(inputs, predicted, truth, out / 'demo.png')
    report = {'model': model.describe(), 'frames_published': args.frames,
              'depth_images_received': received, 'node_diagnostics': diagnostics,
              'metrics': metrics,
              'mean_depth_baseline': baseline}
    (out / 'metrics.json').write_text(json.dumps(report, indent=2))
    print(f"[demo] {'metric':<10} {'model':>8} {'mean-depth baseline':>20}")
    for key in ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'delta1', 'delta2', 'delta3'):
        if key in metrics:
            print(f'[demo] {key:<10} {metrics[key]:>8.3f} {baseline[key]:>20.3f}')
    print(f"[demo] picture: {out / 'demo.png'}   metrics: {out / 'metrics.json'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
