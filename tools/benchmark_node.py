#!/usr/bin/env python3
"""mono_depth_node against the rclpy node a user would write, and against doing nothing.

Three subjects run at the same time, each in its own process and namespace, over real DDS
(Fast DDS with config/fastdds_large_data.xml in every process), and are measured in
alternating rounds so that a busy machine slows all of them alike:

  echo   a do-nothing rclpy node: answers each 640x480 rgb8 image with a 640x480 32FC1 one of
         the same stamp (raw CDR in and out): what moving these messages costs (the floor);
  plain  the ~30-line node below (plain_node()): msg.data -> numpy, cv2.resize, normalise,
         ONNX Runtime in the subscription callback, exp, resize back, Image(data=bytes);
  ours   the installed mono_depth_node with the same model.

Single frame: one frame in flight, publish -> depth/image received (p50 / p95).
Overload: a camera process publishes at 3x the rate ours completes single frames, for
--overload-seconds, to each subject in turn (p95 of the frames that came back; the plain node
queues them, ours keeps the newest, the echo shows what the transport itself does at that
rate). Latency is CLOCK_MONOTONIC at reception minus the
stamp the frame was published with (this machine's clock, shared by all processes).
--variant NAME=VALUE adds "ours" run with that environment variable set.

--opencv-threads instead times our frame path alone (no DDS), in alternating blocks with
OpenCV sequential (as the nodes run it) and with OpenCV's thread pool.

Usage (after tools/bootstrap.sh):  source tools/env.sh && python tools/benchmark_node.py
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = ROOT / 'config' / 'fastdds_large_data.xml'
WIDTH, HEIGHT = 640, 480


def plain_node(model_path: str) -> None:
    """The node a user writes in an afternoon (MEAN / STD: the demo model's normalisation)."""
    import cv2
    import onnxruntime as ort
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    class PlainDepthNode(Node):
        def __init__(self):
            super().__init__('plain_depth_node')
            self.session = ort.InferenceSession(model_path, providers=['CPUExecutionProvider'])
            self.input = self.session.get_inputs()[0]
            self.pub = self.create_publisher(Image, 'depth/image', 10)
            self.create_subscription(Image, 'image', self.on_image, qos_profile_sensor_data)

        def on_image(self, msg):
            rgb = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
            h, w = self.input.shape[2:]
            x = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            x = ((x / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
            log_depth = self.session.run(None, {self.input.name: x})[0][0, 0]
            depth = cv2.resize(np.exp(log_depth), (msg.width, msg.height))
            self.pub.publish(Image(header=msg.header, height=msg.height, width=msg.width,
                                   encoding='32FC1', step=4 * msg.width,
                                   data=depth.tobytes()))

    rclpy.init(args=sys.argv)
    try:
        rclpy.spin(PlainDepthNode())
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def echo_node() -> None:
    """The floor: the same messages in and out, no work."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    reply = bytearray(ros_io.image_to_cdr(np.zeros((HEIGHT, WIDTH), np.float32), '32FC1',
                                          Header()))
    rclpy.init(args=sys.argv)
    node = rclpy.create_node('echo_node')
    pub = node.create_publisher(Image, 'depth/image', 10)

    def echo(raw):
        reply[4:12] = raw[4:12]          # header stamp (sec, nanosec) after the CDR header
        pub.publish(bytes(reply))
    node.create_subscription(Image, 'image', echo, qos_profile_sensor_data, raw=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def subject_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, 'FASTDDS_DEFAULT_PROFILES_FILE': str(FASTDDS_PROFILE),
            **(extra or {})}


def ours_command(model: str, namespace: str) -> list[str]:
    workspace = os.environ.get('DEPTH_NODES_WORKSPACE')
    exe = Path(workspace or '') / 'depth_nodes' / 'lib' / 'depth_nodes' / 'mono_depth_node'
    base = [str(exe)] if workspace and exe.exists() else \
        [sys.executable, '-m', 'depth_nodes.nodes.mono_depth_node']
    return base + ['--ros-args', '-r', f'__ns:=/{namespace}', '-r', f'__node:={namespace}',
                   '-p', f'model:={model}',
                   '-p', 'backend:=onnxruntime', '--log-level', 'warn']


def own_command(role: str, namespace: str, model: str = '') -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), f'--serve-{role}', model,
            '--ros-args', '-r', f'__ns:=/{namespace}']


FRAME_CACHE: dict[str, bytearray] = {}


def camera_frame() -> bytearray:
    """One serialized 640x480 rgb8 image, built once; publish() only restamps it."""
    if 'rgb8' not in FRAME_CACHE:
        from std_msgs.msg import Header

        from depth_nodes import ros_io
        image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        FRAME_CACHE['rgb8'] = bytearray(ros_io.image_to_cdr(
            image, 'rgb8', Header(frame_id='camera_optical_frame')))
    return FRAME_CACHE['rgb8']


def publish_stamped(publisher, frame: bytearray) -> None:
    """Publish ``frame`` stamped with CLOCK_MONOTONIC now: whoever receives its depth (any
    process on this machine) knows the latency without a table of send times."""
    sec, nanosec = divmod(time.monotonic_ns(), 10**9)
    struct.pack_into('<iI', frame, 4, sec, nanosec)
    publisher.publish(bytes(frame))


def camera(namespace: str, period: float, seconds: float) -> None:
    """Overload: a camera process publishing at 1 / period Hz (the probe only receives, so
    its own publishing does not delay the replies it times)."""
    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('benchmark_camera')
    pub = node.create_publisher(Image, f'/{namespace}/image', QoSProfile(
        depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)                  # let the subscriber's side of discovery finish too
    frame, count, start = camera_frame(), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        publish_stamped(pub, frame)
        count += 1
        time.sleep(max(0.0, start + count * period - time.perf_counter()))
    print(json.dumps({'sent': count, 'hz': count / (time.perf_counter() - start)}))
    node.destroy_node()
    rclpy.shutdown()


class Probe:
    """Publishes stamped raw images to the subjects (one at a time) and records
    publish -> depth/image latency from the stamp each reply carries."""

    def __init__(self, subjects: list[str]):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import Image
        rclpy.init()
        self.node = rclpy.create_node('depth_benchmark')
        qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
        self.frame = camera_frame()
        self.pubs = {s: self.node.create_publisher(Image, f'/{s}/image', qos)
                     for s in subjects}
        self.latencies: list[float] = []
        self.arrived = threading.Event()
        for s in subjects:
            self.node.create_subscription(Image, f'/{s}/depth/image', self._on_depth, qos,
                                          raw=True)
        self.diagnostics: dict[str, dict[str, str]] = {}    # node name -> last values
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics,
                                      10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on_diagnostics(self, msg):
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def in_node(self) -> dict[str, dict[str, float]]:
        """Each of our nodes' own latencies (diagnostics, last 200 frames): receive -> publish
        inside the node, and the engine alone."""
        time.sleep(1.5)                  # the next diagnostics, once a second
        keys = ('end-to-end p50 (ms)', 'end-to-end p95 (ms)', 'inference p50 (ms)')
        return {name.split(':')[0]: {k: float(values[k]) for k in keys}
                for name, values in self.diagnostics.items() if name.startswith('ours')}

    def _on_depth(self, raw):
        now = time.monotonic_ns()
        sec, nanosec = struct.unpack_from('<iI', raw, 4)
        self.latencies.append((now - sec * 10**9 - nanosec) * 1e-9)
        self.arrived.set()

    def publish(self, subject: str) -> None:
        publish_stamped(self.pubs[subject], self.frame)

    def take(self) -> list[float]:
        latencies, self.latencies = self.latencies, []
        return latencies

    def wait_ready(self, subject: str, process: subprocess.Popen, timeout=60.0) -> None:
        """Until the subject answers (discovery is asymmetric: retry until replies come)."""
        deadline, replies = time.monotonic() + timeout, 0
        while replies < 10:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f'{subject} did not answer within {timeout:.0f} s')
            self.arrived.clear()
            self.publish(subject)
            replies += self.arrived.wait(0.2)
        time.sleep(0.3)
        self.take()

    def single_frames(self, subject: str, frames: int) -> list[float]:
        for _ in range(frames):
            self.arrived.clear()
            self.publish(subject)
            if not self.arrived.wait(5.0):
                raise RuntimeError(f'no depth from {subject} within 5 s')
            time.sleep(0.005)
        return self.take()

    def overload(self, subject: str, period: float, seconds: float) -> tuple[list[float], int,
                                                                             float]:
        """Frames from a camera process every ``period`` s; the latencies of the replies."""
        self.take()
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--serve-camera',
                              subject, str(period), str(seconds)], env=subject_env(),
                             check=True, capture_output=True, text=True).stdout
        time.sleep(1.0)                 # what the subject still had queued
        sent = json.loads(out.strip().splitlines()[-1])
        return self.take(), sent['sent'], sent['hz']


def opencv_threads(model: str, blocks: int = 6, frames: int = 100) -> dict:
    """Our frame path in this process (accept + process, no DDS), alternating blocks of
    frames with OpenCV on the calling thread only (as the nodes run it) and with OpenCV's
    default thread pool."""
    import cv2
    from depth_nodes.frames import MonoDepthFramePath, parameter_defaults
    from depth_nodes.runtime.model import open_model
    values = {**parameter_defaults(MonoDepthFramePath), 'backend': 'onnxruntime'}
    path = MonoDepthFramePath(MonoDepthFramePath.build_estimator(
        open_model(model, 'onnxruntime'), values), values)
    raw = bytes(camera_frame())
    settings = {'sequential': 1, f'pool of {cv2.getNumThreads()}': cv2.getNumThreads()}
    seconds = {name: [] for name in settings}
    for block in range(blocks):
        name = list(settings)[block % 2]
        cv2.setNumThreads(settings[name])
        for i in range(frames + 10):
            start = time.perf_counter()
            path.process(path.accept('image', raw))
            if i >= 10:                  # the first after a switch: the pool restarting
                seconds[name].append(time.perf_counter() - start)
            time.sleep(0.005)            # a camera's pause between frames
    return {name: {'p50_ms': ms(v, 50), 'p95_ms': ms(v, 95)} for name, v in seconds.items()}


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ms(samples, q) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q)) if len(samples) else float('nan')


def run(model: str, frames: int, rounds: int, overload_s: float,
        variants: dict[str, dict[str, str]]) -> dict:
    from depth_nodes.runtime.model import resolve_model_path
    model = str(resolve_model_path(model))
    commands = {'echo': (own_command('echo', 'echo'), {}),
                'plain': (own_command('plain', 'plain', model), {}),
                'ours': (ours_command(model, 'ours'), {})}
    for name, env in variants.items():
        commands[name] = (ours_command(model, name), env)
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(FASTDDS_PROFILE)
    processes = {name: subprocess.Popen(cmd, env=subject_env(env), stdout=subprocess.DEVNULL)
                 for name, (cmd, env) in commands.items()}
    single = {name: [] for name in commands}
    overloaded = {name: [] for name in commands}
    sent = {name: 0 for name in overloaded}
    rates = []
    probe = Probe(list(commands))
    try:
        for name, process in processes.items():
            probe.wait_ready(name, process)
        order = list(commands)
        for r in range(rounds):                         # alternating, rotated each round
            for name in order[r % len(order):] + order[:r % len(order)]:
                single[name] += probe.single_frames(name, frames)
        in_node = {'single': probe.in_node()}
        period = ms(single['ours'], 50) * 1e-3 / 3.0    # 3x what ours does one at a time
        for r in range(rounds):
            for name in list(overloaded)[::1 if r % 2 == 0 else -1]:
                got, count, achieved = probe.overload(name, period, overload_s / rounds)
                overloaded[name] += got
                sent[name] += count
                rates.append(achieved)
                if name.startswith('ours'):
                    in_node[f'overload {name}'] = probe.in_node()[name]
    finally:
        for process in processes.values():
            stop(process)
    floor = ms(single['echo'], 50)
    result = {'input': f'{WIDTH}x{HEIGHT} rgb8', 'model': Path(model).name,
              'frames_per_subject': {n: len(v) for n, v in single.items()},
              'overload_rate_hz': 1.0 / period, 'overload_achieved_hz': float(np.mean(rates))}
    for name in commands:
        result[f'{name}_p50_ms'] = ms(single[name], 50)
        result[f'{name}_p95_ms'] = ms(single[name], 95)
    for name in overloaded:
        result[f'{name}_overload_p95_ms'] = ms(overloaded[name], 95)
        result[f'{name}_overload_delivered'] = f'{len(overloaded[name])}/{sent[name]}'
        if name != 'echo':
            result[f'{name}_over_floor_ms'] = result[f'{name}_p50_ms'] - floor
    for phase, values in in_node.items():     # ours' own diagnostics: inside the node
        result[f'in node, {phase}'] = values
    result['ours_p50_over_plain_p50'] = result['ours_p50_ms'] / result['plain_p50_ms']
    result['ours_overload_p95_over_single_p50'] = \
        result['ours_overload_p95_ms'] / result['ours_p50_ms']
    result['ours_minus_plain_p50_ms'] = result['ours_p50_ms'] - result['plain_p50_ms']
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == '--serve-camera':
        camera(argv[1], float(argv[2]), float(argv[3]))
        return 0
    if argv and argv[0] in ('--serve-echo', '--serve-plain'):
        echo_node() if argv[0] == '--serve-echo' else plain_node(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default='eigen_synthetic',
                        help='model path or name under models/ (default: the demo model)')
    parser.add_argument('--frames', type=int, default=60, help='single frames per round')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--overload-seconds', type=float, default=6.0,
                        help='per subject, over all rounds')
    parser.add_argument('--variant', action='append', default=[], metavar='NAME=VALUE',
                        help='also run ours with this environment variable (repeatable)')
    parser.add_argument('--opencv-threads', action='store_true',
                        help='instead: our frame path alone, OpenCV sequential vs its pool')
    parser.add_argument('--json', type=Path, help='also write the numbers to this file')
    args = parser.parse_args(argv)
    variants = {}
    for text in args.variant:
        key, _, value = text.partition('=')
        variants[f'ours_{key.lower()}_{value}'] = {key: value}
    if args.opencv_threads:
        from depth_nodes.runtime.model import resolve_model_path
        for name, values in opencv_threads(str(resolve_model_path(args.model))).items():
            print(f"frame path, OpenCV {name}: p50 {values['p50_ms']:.2f} ms, "
                  f"p95 {values['p95_ms']:.2f} ms")
        return 0
    result = run(args.model, args.frames, args.rounds, args.overload_seconds, variants)
    print(f"{result['input']}, {result['model']}, single frames per subject: "
          f"{result['frames_per_subject']['ours']}; overload "
          f"{result['overload_achieved_hz']:.0f} Hz (ms)")
    print(f"{'subject':<34}{'p50':>8}{'p95':>8}{'p50-echo':>10}{'overload p95':>14}"
          f"{'delivered':>12}")
    for name in result['frames_per_subject']:
        print(f"{name:<34}{result[f'{name}_p50_ms']:>8.2f}{result[f'{name}_p95_ms']:>8.2f}"
              f"{result.get(f'{name}_over_floor_ms', 0.0):>10.2f}"
              f"{result[f'{name}_overload_p95_ms']:>14.2f}"
              f"{result[f'{name}_overload_delivered']:>12}")
    for key, value in result.items():
        if 'in node' in key or key.startswith('ours_') and not key.endswith(
                ('_ms', '_delivered')) or key == 'ours_minus_plain_p50_ms':
            print(f'{key}: {value:.3f}' if isinstance(value, float) else f'{key}: {value}')
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
