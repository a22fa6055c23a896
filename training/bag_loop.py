"""From a recording to a running node in one command:

    python -m training.bag_loop METHOD --bag BAG [--topic ROLE:=TOPIC ...] [key=value ...]
        [--record SECONDS] [--run-dir DIR] [--launch]

1. record (with ``--record SECONDS``): ``ros2 bag record`` of the role topics into BAG;
2. train ``training/configs/METHOD_bag.yaml`` on BAG (``key=value`` overrides as for
   training.train; the run resumes if it exists), which exports ``model.onnx`` with its
   model spec;
3. evaluate the model on the held-out end of the bag against the train-mean baseline
   (methods with depth labels: eigen, pix2pix, cyclegan, semidense);
4. build a TensorRT engine of it where TensorRT is installed (depth_nodes.build_engine);
5. print (``--launch``: run) the ``ros2 launch`` command that starts the node on the
   model, with the bag's topics remapped onto the node's inputs.
"""
from __future__ import annotations

import argparse
import importlib.util
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import yaml

from training import evaluate as evaluate_cli
from training import train as train_cli

CONFIGS = Path(__file__).resolve().parent / 'configs'
# Training method -> (node method of depth.launch.py, role -> launch remap argument).
NODE_METHODS = {
    'eigen': ('eigen', {'image': 'image', 'camera_info': 'camera_info'}),
    'pix2pix': ('pix2pix', {'image': 'image', 'camera_info': 'camera_info'}),
    'cyclegan': ('cyclegan', {'image': 'image'}),
    'semidense': ('semidense', {'image': 'image', 'camera_info': 'camera_info'}),
    'monodepth': ('stereo', {'left': 'left_image', 'right': 'right_image',
                             'left_camera_info': 'left_camera_info',
                             'right_camera_info': 'right_camera_info'}),
    'nir_ctn': ('nir', {'nir': 'nir_image'}),
}
LABELLED = ('eigen', 'pix2pix', 'cyclegan', 'semidense')


def config_topics(config: Path, topic_args: Sequence[str]) -> dict[str, str]:
    """The role -> topic map of a bag config after --topic ROLE:=TOPIC arguments."""
    topics = dict(yaml.safe_load(config.read_text())['data']['topics'])
    for item in topic_args:
        role, _, topic = item.partition(':=')
        topics[role] = topic
    return topics


def record(bag: Path, topics: Sequence[str], seconds: float) -> None:
    """``ros2 bag record`` of ``topics`` into ``bag`` for ``seconds``, stopped with SIGINT
    (how rosbag2 closes a bag cleanly)."""
    command = ['ros2', 'bag', 'record', '-o', str(bag), *topics]
    print(f'recording {seconds:g} s: {shlex.join(command)}', file=sys.stderr)
    process = subprocess.Popen(command)
    try:
        time.sleep(seconds)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def launch_command(method: str, model: Path, topics: dict[str, str]) -> list[str]:
    node_method, remaps = NODE_METHODS[method]
    args = ['ros2', 'launch', 'depth_nodes', 'depth.launch.py', f'method:={node_method}',
            f'model:={model.resolve()}']
    args += [f'{remaps[role]}:={topic}' for role, topic in topics.items() if role in remaps]
    return args


def tensorrt_available() -> bool:
    return importlib.util.find_spec('tensorrt') is not None


def run_loop(method: str, bags: Sequence[Path], topic_args: Sequence[str] = (),
             overrides: Sequence[str] = (), run_dir: Path | None = None,
             record_seconds: float = 0.0, launch: bool = False) -> int:
    config = CONFIGS / f'{method}_bag.yaml'
    if method not in NODE_METHODS or not config.is_file():
        print(f'error: no bag config for method {method} ({sorted(NODE_METHODS)})',
              file=sys.stderr)
        return 2
    topics = config_topics(config, topic_args)
    if record_seconds > 0:
        if len(bags) != 1 or Path(bags[0]).exists():
            print('error: --record writes one new bag: give one --bag that does not exist',
                  file=sys.stderr)
            return 2
        record(Path(bags[0]), sorted(set(topics.values())), record_seconds)
    run_dir = Path(run_dir or Path('runs') / f'{method}_bag')
    bag_args = [a for bag in bags for a in ('--bag', str(bag))]
    topic_flags = [a for t in topic_args for a in ('--topic', t)]
    print(f'== train {method} on {[str(b) for b in bags]}', file=sys.stderr)
    rc = train_cli.main(['--config', str(config), *bag_args, *topic_flags,
                         '--run-dir', str(run_dir), *overrides])
    if rc:
        return rc
    model = run_dir / 'model.onnx'
    if method in LABELLED:
        print('== evaluate on the held-out end of the bag', file=sys.stderr)
        rc = evaluate_cli.main(['--model', str(model), '--config', str(config), *bag_args,
                                *topic_flags, '--split', 'test', '--baseline', 'train-mean',
                                '--output', str(run_dir / 'metrics.json'), '--no-progress'])
        if rc:
            return rc
    else:
        print(f'== evaluate: {method} trains without depth labels; no held-out metrics',
              file=sys.stderr)
    if tensorrt_available():
        from depth_nodes import build_engine
        print('== build the TensorRT engine', file=sys.stderr)
        rc = build_engine.main(['--onnx', str(model), '--output',
                                str(model.with_suffix('.engine'))])
        if rc:
            return rc
    else:
        print('== build_engine: TensorRT is not installed here; skipped (the node runs the '
              'ONNX model on ONNX Runtime)', file=sys.stderr)
    command = launch_command(method, model, topics)
    if method == 'nir_ctn':
        print('note: the nir node also needs its DPN depth model (config/nir.yaml)',
              file=sys.stderr)
    print(f'== launch: {shlex.join(command)}')
    if launch:
        return subprocess.call(command)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.bag_loop',
                                     description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('method', choices=sorted(NODE_METHODS))
    parser.add_argument('--bag', action='append', type=Path, required=True, metavar='PATH',
                        help='recording(s) to train on (with --record: the one to write)')
    parser.add_argument('--topic', action='append', default=[], metavar='ROLE:=TOPIC',
                        help="a role's topic (default: the bag config's)")
    parser.add_argument('--record', type=float, default=0.0, metavar='SECONDS',
                        help='first record the role topics for this long')
    parser.add_argument('--run-dir', type=Path, help='default runs/<method>_bag')
    parser.add_argument('--launch', action='store_true', help='start the node at the end')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('overrides', nargs='*', metavar='key=value',
                        help='training config overrides (anywhere on the command line)')
    args = parser.parse_intermixed_args(argv)
    overrides = [*args.overrides, *(['--no-progress'] if args.no_progress else [])]
    return run_loop(args.method, args.bag, args.topic, overrides, args.run_dir, args.record,
                    args.launch)


if __name__ == '__main__':
    sys.exit(main())
