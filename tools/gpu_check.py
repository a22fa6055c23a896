#!/usr/bin/env python3
"""The measurements of tools/gpu_check.sh, one subcommand each; every one prints one JSON object.

    plan                      the bundled models (models/*.onnx), their method and node
    versions                  TensorRT, CUDA, GPU name, compute capability, SM count
    calibration-images DIR    32 frames of the synthetic scenes the models were trained on
    open --cache D --model M --precision P
                              open M on TensorRT as a node does (open_model): cache status, s
    parity --cache D          max |TensorRT - ONNX Runtime| per model and precision
    node-start --cache D --model M --precision P
                              start the model's node with backend:=tensorrt; its load line
    latency --cache D --model M --precision P [--frames N]
                              node end-to-end latency at 640x480, one frame in flight
    timed -- COMMAND...       run a command: exit status, seconds, the last lines of output
    timing-cache --cache D    the kernel timing cache file a node uses in engine cache D
    merge OUT FILES...        the step files -> one JSON

Run by tools/gpu_check.sh after `source tools/env.sh`; not a user-facing CLI.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ('fp32', 'fp16', 'int8')


def bundled_models() -> list[dict]:
    from depth_nodes.core.model_spec import spec_from_metadata
    from depth_nodes.methods import METHODS
    from depth_nodes.runtime.tensorrt_engine import read_onnx_interface
    models = []
    for path in sorted((REPO / 'models').glob('*.onnx')):
        interface = read_onnx_interface(path)
        spec, _ = spec_from_metadata(interface.metadata, interface.input_shapes,
                                     list(interface.output_names))
        method = next((name for name in METHODS if spec.method.startswith(name)), '')
        models.append({'model': path.name, 'path': str(path), 'spec_method': spec.method,
                       'input_kind': spec.input_kind, 'method': method,
                       'node': METHODS[method].executable if method else '',
                       'params_file': METHODS[method].params_file if method else '',
                       'inputs': {k: list(v) for k, v in interface.input_shapes.items()}})
    return models


def cmd_plan(args) -> dict:
    return {'models': bundled_models(), 'precisions': list(PRECISIONS)}


def cmd_versions(args) -> dict:
    out: dict = {}
    try:
        import tensorrt
        out['tensorrt'] = tensorrt.__version__
    except Exception as exc:  # noqa: BLE001
        out['tensorrt'] = f'not importable: {type(exc).__name__}: {exc}'
    import torch
    out['torch'] = torch.__version__
    out['cuda_runtime'] = torch.version.cuda
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, compute_capability=f'{props.major}.{props.minor}',
                   sm_count=props.multi_processor_count,
                   gpu_memory_gib=round(props.total_memory / 2**30, 1))
    try:
        smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20)
        out['driver'] = smi.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out['driver'] = 'nvidia-smi not found'
    import onnxruntime
    out['onnxruntime'] = onnxruntime.__version__
    from depth_nodes.runtime.tensorrt_engine import availability
    out['availability'] = list(availability())
    return out


def cmd_calibration_images(args) -> dict:
    import cv2

    from training.datasets import build_dataset
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    dataset = build_dataset('synthetic', 'train', None)
    count = min(32, len(dataset))
    for i in range(count):
        rgb = np.asarray(dataset[i]['rgb'])
        cv2.imwrite(str(directory / f'{i:03d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return {'directory': str(directory), 'images': count}


def open_on_tensorrt(model: str, precision: str, cache: str):
    from depth_nodes.runtime.engine import EngineOptions
    from depth_nodes.runtime.model import open_model
    return open_model(model, 'tensorrt', EngineOptions(precision=precision,
                                                       engine_cache_dir=cache))


def cmd_open(args) -> dict:
    from depth_nodes.runtime.engine import ModelLoadError
    start = time.perf_counter()
    try:
        loaded = open_on_tensorrt(args.model, args.precision, args.cache)
    except ModelLoadError as exc:
        return {'model': Path(args.model).name, 'precision': args.precision, 'error': str(exc)}
    cached = loaded.engine.cached
    return {'model': Path(args.model).name, 'precision': args.precision, 'status': cached.status,
            'build_s': cached.build_s, 'deserialise_s': round(cached.load_s, 4),
            'open_s': round(time.perf_counter() - start, 3), 'pid': os.getpid()}


def cmd_parity(args) -> dict:
    from depth_nodes.runtime.model import open_model
    rows = []
    rng = np.random.default_rng(0)
    for entry in bundled_models():
        reference = open_model(entry['path'], 'onnxruntime')
        feeds = {name: rng.normal(0, 1, shape).astype(np.float32)
                 for name, shape in reference.engine.input_shapes.items()}
        expected = reference.engine.run(feeds)
        for precision in PRECISIONS:
            row = {'model': entry['model'], 'precision': precision}
            try:
                engine = open_on_tensorrt(entry['path'], precision, args.cache).engine
                got = engine.run(feeds)
                name = reference.spec.output_name
                diff = np.abs(got[name].astype(np.float64) - expected[name])
                scale = float(np.max(np.abs(expected[name])))
                row.update(max_abs_diff=float(diff.max()), output_max_abs=scale,
                           cache_status=engine.cached.status)
            except Exception as exc:  # noqa: BLE001  a row per failure, the rest still runs
                row['error'] = f'{type(exc).__name__}: {exc}'[:500]
            rows.append(row)
    return {'parity': rows, 'input': 'normal(0, 1) tensors of each model input shape, seed 0'}


def node_command(entry: dict, precision: str, cache: str) -> list[str]:
    workspace = Path(os.environ.get('DEPTH_NODES_WORKSPACE', REPO / 'install'))
    share = workspace / 'depth_nodes' / 'share' / 'depth_nodes'
    return [str(workspace / 'depth_nodes' / 'lib' / 'depth_nodes' / entry['node']),
            '--ros-args', '--params-file', str(share / 'config' / entry['params_file']),
            '-p', f"model:={entry['path']}", '-p', 'backend:=tensorrt',
            '-p', f'precision:={precision}', '-p', f'engine_cache_dir:={cache}']


LOADED = re.compile(r'loaded (.*) in ([0-9.]+) s; backend (\w+)')


def start_node(entry: dict, precision: str, cache: str, timeout_s: float):
    """The node's process and its 'loaded ...' line (None if it exited or timed out)."""
    process = subprocess.Popen(node_command(entry, precision, cache), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line.rstrip())
            if LOADED.search(line):
                found.set()
    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found.is_set() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    return process, lines, found.is_set()


def stop(process: subprocess.Popen) -> int:
    process.terminate()
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def cmd_node_start(args) -> dict:
    entry = next(e for e in bundled_models() if e['model'] == Path(args.model).name)
    start = time.perf_counter()
    process, lines, loaded = start_node(entry, args.precision, args.cache, args.timeout)
    elapsed = time.perf_counter() - start
    rc = stop(process)
    line = next((LOADED.search(x) for x in lines if LOADED.search(x)), None)
    return {'model': entry['model'], 'node': entry['node'], 'precision': args.precision,
            'loaded': loaded, 'start_to_loaded_s': round(elapsed, 2),
            'describe': line.group(1) if line else '', 'backend': line.group(3) if line else '',
            'exit_code_after_stop': rc, 'log_tail': lines[-8:] if not loaded else []}


def cmd_latency(args) -> dict:
    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    entry = next(e for e in bundled_models() if e['model'] == Path(args.model).name)
    process, lines, loaded = start_node(entry, args.precision, args.cache, args.timeout)
    if not loaded:
        stop(process)
        return {'error': 'the node did not load its model', 'log_tail': lines[-8:]}
    rclpy.init()
    node = rclpy.create_node('gpu_check_probe')
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Image, 'image', qos)
    sent: dict[int, float] = {}
    latencies: list[float] = []
    arrived = threading.Event()

    def on_depth(raw):
        now = time.perf_counter()
        stamp = ros_io.image_from_cdr(raw).header.stamp
        if stamp.sec in sent:
            latencies.append(now - sent.pop(stamp.sec))
        arrived.set()
    node.create_subscription(Image, 'depth/image', on_depth, qos, raw=True)
    threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def send(index):
        header = Header(frame_id='camera_optical_frame')
        header.stamp.sec = index
        sent[index] = time.perf_counter()
        arrived.clear()
        publisher.publish(ros_io.image_to_cdr(image, 'rgb8', header))
        return arrived.wait(5.0)
    try:
        index, deadline = 1, time.monotonic() + 30
        warm = 0
        while warm < 10 and time.monotonic() < deadline:   # discovery, first runs
            warm += send(index)
            index += 1
        latencies.clear()
        for _ in range(args.frames):
            if not send(index):
                raise RuntimeError('no depth within 5 s')
            index += 1
            time.sleep(0.01)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        stop(process)
    ms = np.asarray(latencies) * 1e3
    return {'model': entry['model'], 'precision': args.precision, 'input': '640x480 rgb8',
            'frames': len(ms), 'p50_ms': float(np.percentile(ms, 50)),
            'p95_ms': float(np.percentile(ms, 95)), 'max_ms': float(ms.max())}


def cmd_timed(args) -> dict:
    command = args.cmd[1:] if args.cmd[:1] == ['--'] else args.cmd
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        rc, output = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()
    except subprocess.TimeoutExpired as exc:
        rc, output = 124, [f'timed out after {exc.timeout} s']
    return {'command': shlex.join(command), 'exit_code': rc,
            'seconds': round(time.perf_counter() - start, 2), 'output_tail': output[-12:]}


def cmd_timing_cache(args) -> dict:
    from depth_nodes.runtime.tensorrt_engine import (gpu_identity, timing_cache_path,
                                                     tensorrt_version)
    return {'path': str(timing_cache_path(Path(args.cache), tensorrt_version(),
                                          gpu_identity(0)))}


def cmd_merge(args) -> dict:
    merged: dict = {}
    for name in args.files:
        path = Path(name)
        try:
            merged[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            merged[path.stem] = {'error': f'unreadable step output ({exc})'}
    Path(args.output).write_text(json.dumps(merged, indent=2) + '\n')
    return {'written': args.output, 'steps': list(merged)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('plan')
    sub.add_parser('versions')
    p = sub.add_parser('calibration-images')
    p.add_argument('directory')
    for name in ('open', 'node-start', 'latency'):
        p = sub.add_parser(name)
        p.add_argument('--cache', required=True)
        p.add_argument('--model', required=True)
        p.add_argument('--precision', choices=PRECISIONS, default='fp16')
        p.add_argument('--timeout', type=float, default=120.0)
        p.add_argument('--frames', type=int, default=100)
    p = sub.add_parser('parity')
    p.add_argument('--cache', required=True)
    p = sub.add_parser('timed')
    p.add_argument('--timeout', type=float, default=300.0)
    p.add_argument('cmd', nargs=argparse.REMAINDER)
    p = sub.add_parser('timing-cache')
    p.add_argument('--cache', required=True)
    p = sub.add_parser('merge')
    p.add_argument('output')
    p.add_argument('files', nargs='*')
    args = parser.parse_args(argv)
    handler = {'plan': cmd_plan, 'versions': cmd_versions,
               'calibration-images': cmd_calibration_images, 'open': cmd_open,
               'parity': cmd_parity, 'node-start': cmd_node_start, 'latency': cmd_latency,
               'timed': cmd_timed, 'timing-cache': cmd_timing_cache,
               'merge': cmd_merge}[args.command]
    print(json.dumps(handler(args)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
