"""Offline depth for a recorded bag, without a ROS graph.

  depth-nodes process-bag INPUT OUTPUT [--method eigen] [--image /camera/image] ...
  python -m depth_nodes.process_bag INPUT OUTPUT ...

Reads a rosbag2 (sqlite3 or mcap) or a ROS 1 bag with rosbags, feeds the method's input
topics in bag order through the frame path of the method's node (depth_nodes.frames: the very
objects the node runs, with the settings of the method's params file) and writes a new rosbag2
holding every input message plus depth/image and depth/camera_info (and on request
depth/colored and depth/points). Outputs carry their input's header and are written at the
input's bag time, so the processed bag lines up with the original one. The output's storage
is the input's (MCAP in, MCAP out; sqlite3 for a ROS 1 bag) unless --storage says otherwise.

Image inputs may be sensor_msgs/Image or sensor_msgs/CompressedImage (image_transport's
'compressed' jpeg/png and 'compressedDepth' topics, e.g. --image /camera/image_raw/compressed,
or -p image_transport:=compressed, which reads <topic>/compressed), decoded as each topic's type
says; a topic of any other type is an error before anything is written.
Recorders often store a camera_info just after the image of the same stamp: an image waits
(up to INFO_LOOKAHEAD_S of bag time) for the camera_info of its stamp, within sync_slop (or
INFO_SLOP_S), and is paired with it; the node, live, would use the newest one before it.

The bag is written into a hidden directory beside OUTPUT, under OUTPUT's name, and moved to
OUTPUT only once complete: an interrupted or failed run never leaves a bag at OUTPUT that
looks finished, and the finished bag's files carry OUTPUT's name.

Exit codes: 0 done (rejected frames are counted in the summary), 1 error (bag, topics, model,
output path, or not one depth image produced), 2 usage, 130 interrupted.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from depth_nodes import ros_io
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.frames import (DepthFramePath, MonoDepthFramePath, NirDepthFramePath,
                                SemiDenseFramePath, StereoFramePath, engine_options,
                                parameter_defaults)
from depth_nodes.methods import (METHODS, OUTPUT_TOPICS, REMAP_ARGUMENTS, Method, get_method,
                                 share_directory)
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.model import LoadedModel, open_model

# Node-relative output topics of every depth node and their types.
OUTPUTS = OUTPUT_TOPICS
CAMERA_INFO_TYPE = ros_io.CAMERA_INFO_TYPE
IMAGE_TYPES = (ros_io.IMAGE_TYPE, ros_io.COMPRESSED_IMAGE_TYPE)
STORAGES = ('sqlite3', 'mcap')
# An image waits this long (bag time) for the camera_info of its stamp stored after it; the
# stamps match within the frame path's sync_slop, else within INFO_SLOP_S.
INFO_LOOKAHEAD_S = 0.5
INFO_SLOP_S = 0.01


class ProcessBagError(RuntimeError):
    """Anything that stops a run before or while writing; the message says what and where."""


@dataclass
class ProcessReport:
    output: Path
    messages_in: int = 0
    messages_copied: int = 0
    depth_images: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)
    skipped_topics: list = field(default_factory=list)
    seconds: float = 0.0


# -- node settings -----------------------------------------------------------------------------
def flatten_parameters(params: dict, prefix: str = '') -> dict[str, Any]:
    """Nested ros__parameters ({'spec': {'mean': ...}}) -> dotted names ('spec.mean')."""
    flat = {}
    for key, value in params.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten_parameters(value, name + '.'))
        else:
            flat[name] = value
    return flat


def node_parameters(params_file: Path, executable: str) -> dict[str, Any]:
    """The ``<executable>: ros__parameters:`` section of a params YAML, flattened."""
    try:
        document = yaml.safe_load(Path(params_file).read_text()) or {}
    except OSError as exc:
        raise ProcessBagError(f'cannot read params file {params_file}: {exc}') from None
    except yaml.YAMLError as exc:
        raise ProcessBagError(f'params file {params_file} is not valid YAML: {exc}') from None
    section = document.get(executable, document.get('/**', {})) if isinstance(document, dict) \
        else None
    if not isinstance(section, dict) or not isinstance(section.get('ros__parameters', {}), dict):
        raise ProcessBagError(f'params file {params_file} has no '
                              f"'{executable}: ros__parameters:' section")
    return flatten_parameters(section.get('ros__parameters', {}))


def parse_parameter(text: str) -> tuple[str, Any]:
    """'name:=value' (value parsed as YAML, as `ros2 run ... -p` does)."""
    name, sep, value = text.partition(':=')
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:=VALUE, got '{text}'")
    return name, yaml.safe_load(value) if value else ''


def load_model(params: dict[str, Any], spin_wait: bool = True) -> LoadedModel:
    """open_model() with the node's model parameters (raises ModelLoadError naming the file)."""
    spec = {k[len('spec.'):]: v for k, v in params.items()
            if k.startswith('spec.') and v is not None}
    return open_model(str(params['model']), params['backend'],
                      engine_options(params, spin_wait), spec)


# Node executable -> its frame path (depth_nodes.frames), the object the node itself runs.
FRAME_PATHS: dict[str, type[DepthFramePath]] = {
    'mono_depth_node': MonoDepthFramePath,
    'nir_depth_node': NirDepthFramePath,
    'semidense_depth_node': SemiDenseFramePath,
    'stereo_depth_node': StereoFramePath,
}


def resolve_topic(name: str, namespace: str = '') -> str:
    """A node-relative topic name as the node would resolve it in ``namespace``."""
    if name.startswith('/'):
        return name
    namespace = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return f'{namespace}/{name}'


@functools.cache
def _jazzy_store():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)


def _message_class(msgtype: str):
    import importlib
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


# -- the run -------------------------------------------------------------------------------
def process_bag(input_bag: Path, output_bag: Path, method: str | Method = 'eigen', *,
                topics: dict[str, str] | None = None, params_file: Path | None = None,
                parameters: dict[str, Any] | None = None, colored: bool = False,
                points: bool = False, namespace: str = '', storage: str | None = None,
                progress: bool = True, warn: Callable[[str], None] | None = None
                ) -> ProcessReport:
    """Run ``method`` over ``input_bag`` into a new rosbag2 at ``output_bag``.

    ``topics`` maps node input names (Method.inputs, e.g. 'image') to the bag's topics
    (default: the name in the root namespace, '/image'); ``parameters`` override the params
    file; ``storage`` None follows the input bag's. Raises ProcessBagError / ModelLoadError;
    never leaves a partial bag at output_bag.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from tqdm import tqdm

    start = time.perf_counter()
    m = method if isinstance(method, Method) else get_method(method)
    method = m.name
    if m.executable not in FRAME_PATHS:
        raise ProcessBagError(f"method '{method}' runs {m.executable}, which has no offline "
                              f"frame path yet (have: {', '.join(sorted(FRAME_PATHS))})")
    input_bag, output_bag = Path(input_bag), Path(output_bag)
    if not input_bag.exists():
        raise ProcessBagError(f'input bag not found: {input_bag}')
    if output_bag.exists():
        raise ProcessBagError(f'{output_bag} exists; choose a new output path')
    if not output_bag.parent.is_dir():
        raise ProcessBagError(f'output directory {output_bag.parent} does not exist')
    storage = storage or input_storage(input_bag)
    if storage not in STORAGES:
        raise ProcessBagError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
    params_file = Path(params_file) if params_file else share_directory() / 'config' / \
        m.params_file
    path_class = FRAME_PATHS[m.executable]
    params = parameter_defaults(path_class)          # what the node declares, then as it is run
    params.update(node_parameters(params_file, m.executable))
    params.update(parameters or {})
    params.update(publish_colored=colored, publish_points=points)   # the node's switches
    warn = warn or (lambda text: tqdm.write(text, file=sys.stderr))
    report = ProcessReport(output_bag)
    dropped = _DroppedInputs(report, warn)

    # Before touching the output: a bad model costs nothing. A frame path that runs without
    # a network (model_optional, e.g. stereo SGBM) gets None for an empty 'model'.
    model = None if not params['model'] and path_class.model_optional else \
        load_model(params, path_class.engine_spin_wait)
    try:
        frame_path = path_class(path_class.build_estimator(model, params), params, dropped)
    except ValueError as exc:         # a parameter the node would refuse at start
        raise ProcessBagError(f'{m.executable} parameters ({params_file}): {exc}') from None
    inputs = list(dict.fromkeys((*m.inputs, *frame_path.required_inputs,
                                 *frame_path.optional_inputs)))
    unknown = set(topics or {}) - set(inputs)
    if unknown:
        raise ProcessBagError(f"method '{method}' has no input(s) {sorted(unknown)} "
                              f'(inputs: {", ".join(inputs)})')
    wanted = {name: resolve_topic((topics or {}).get(name) or '/' + name) for name in inputs}
    for name in frame_path.streams:            # image_transport:=compressed: T/compressed
        suffix = frame_path.topic_suffix(name)
        if suffix and not wanted[name].endswith(suffix):
            wanted[name] += suffix
    output_types = frame_path.outputs()
    outputs = {name: resolve_topic(name, namespace) for name in output_types}
    # The bag is written as staging/OUTPUT_NAME, so its files are named after the output.
    staging = output_bag.parent / f'.{output_bag.name}.partial-{os.getpid()}'
    shutil.rmtree(staging, ignore_errors=True)
    partial = staging / output_bag.name
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    try:
        reader = AnyReader([input_bag], default_typestore=_jazzy_store())
        reader.open()
    except Exception as exc:
        raise ProcessBagError(f'cannot read bag {input_bag}: {exc}') from None
    try:
        by_topic = {c.topic: c for c in reader.connections}
        _check_topics(m, frame_path, wanted, outputs, by_topic, input_bag, warn)
        for name in frame_path.transports:     # each image topic decoded as its type says
            if name in frame_path.streams and wanted[name] in by_topic:
                frame_path.use_transport(name, 'raw' if by_topic[wanted[name]].msgtype ==
                                         ros_io.IMAGE_TYPE else 'compressed')
        staging.mkdir()
        writer = Writer(partial, version=9, storage_plugin=plugin)
        writer.open()
        try:
            copies = _copy_connections(writer, reader, report, warn)
            out_conns = {}

            def write_output(name, bag_ns, payload):
                if name not in out_conns:     # connections of the outputs that occur
                    out_conns[name] = writer.add_connection(
                        outputs[name], output_types[name], typestore=_jazzy_store())
                writer.write(out_conns[name], bag_ns, payload)
            input_of = {topic: name for name, topic in wanted.items()}
            # Images go to the frame path serialized, as the node subscribes them.
            deserializers = {name: _message_class(by_topic[topic].msgtype)
                             for name, topic in wanted.items() if topic in by_topic and (
                                 name in frame_path.latest_inputs or
                                 name in frame_path.message_inputs)}
            slop = params.get('sync_slop', INFO_SLOP_S)
            pairing = CameraInfoPairing(
                [n for n in frame_path.latest_inputs if wanted[n] in by_topic],
                round(slop * 1e9), round(INFO_LOOKAHEAD_S * 1e9))

            def feed(held: HeldInput) -> None:
                dropped.at = held.at
                try:
                    for info_name, info in held.infos.items():
                        frame_path.accept(info_name, info)
                    message = held.message
                    if held.name in deserializers:
                        from rclpy.serialization import deserialize_message
                        message = deserialize_message(message, deserializers[held.name])
                    job = frame_path.accept(held.name, message)
                    out = None if job is None else frame_path.process(job)
                except ImageFormatError as exc:
                    dropped.count(exc.kind, 1, f'dropped input {held.at}: {exc}')
                    return
                if out is not None:
                    for kind, text in out.hints:
                        dropped.once(kind, text)
                    for out_name, payload in out.messages:
                        write_output(out_name, held.bag_ns, _serialized(payload))
                    report.depth_images += 1
            total = sum(c.msgcount for c in reader.connections)
            with tqdm(total=total, unit='msg', disable=not progress, file=sys.stderr,
                      desc=f'{input_bag.name} -> {output_bag.name}') as bar:
                for conn, bag_ns, raw in reader.messages():
                    report.messages_in += 1
                    bar.update()
                    data = bytes(raw) if reader.is2 else \
                        _ros1_to_cdr(raw, conn.msgtype)
                    if conn.id in copies:
                        writer.write(copies[conn.id], bag_ns, data)
                        report.messages_copied += 1
                    name = input_of.get(conn.topic)
                    if name is None:
                        continue
                    at = f'on {conn.topic} at {bag_ns} ns'
                    try:
                        stamp_ns = ros_io.cdr_stamp_ns(data)
                        if name in frame_path.latest_inputs:
                            info = deserialize_info(data, deserializers[name])
                            pairing.add_info(name, stamp_ns, info)
                        elif name in frame_path.streams:
                            pairing.add(HeldInput(name, data, bag_ns, stamp_ns, at))
                    except ImageFormatError as exc:
                        dropped.count(exc.kind, 1, f'dropped input {at}: {exc}')
                    for held in pairing.ready(bag_ns):
                        feed(held)
                    bar.set_postfix(depth=report.depth_images, refresh=False)
                for held in pairing.ready(None):
                    feed(held)
        except BaseException:
            _abort(writer)
            raise
        writer.close()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        reader.close()
    if report.depth_images == 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise ProcessBagError(
            f'no depth image produced from {report.messages_in} messages of {input_bag} '
            f'(rejected: {dict(report.rejected) or "none"}; inputs: {wanted})')
    os.rename(partial, output_bag)
    staging.rmdir()
    report.seconds = time.perf_counter() - start
    return report


def input_storage(bag: Path) -> str:
    """The storage of a rosbag2 directory ('sqlite3' or 'mcap', from its metadata.yaml or
    its files); 'sqlite3' for a ROS 1 bag."""
    bag = Path(bag)
    if bag.suffix == '.mcap':
        return 'mcap'
    try:
        info = yaml.safe_load((bag / 'metadata.yaml').read_text())
        identifier = info['rosbag2_bagfile_information']['storage_identifier']
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        identifier = 'mcap' if bag.is_dir() and any(bag.glob('*.mcap')) else 'sqlite3'
    return identifier if identifier in STORAGES else 'sqlite3'


def deserialize_info(data: bytes, message_class):
    from rclpy.serialization import deserialize_message
    try:
        return deserialize_message(data, message_class)
    except Exception as exc:
        raise ImageFormatError(f'undecodable {message_class.__name__} message ({exc})',
                               'cdr') from None


@dataclass
class HeldInput:
    """A stream input message (serialized) waiting for its camera_info."""
    name: str                  # node input
    message: bytes
    bag_ns: int
    stamp_ns: int
    at: str                    # 'on TOPIC at T ns', for warnings
    infos: dict = field(default_factory=dict)    # camera_info input -> message paired


class CameraInfoPairing:
    """Pairs each stream input with the camera_info of its header stamp, which a recorder may
    have stored after it. Inputs leave in bag order; one leaves once every camera_info input
    has a message stamped at or after its stamp (within ``slop_ns``), or once the bag has
    moved ``lookahead_ns`` past it, or at the end. It gets, per camera_info input, the
    message nearest its stamp within ``slop_ns``, else the newest stored before it (what the
    node, live, would have used)."""

    def __init__(self, info_inputs, slop_ns: int, lookahead_ns: int, keep: int = 64):
        self.slop_ns, self.lookahead_ns = slop_ns, lookahead_ns
        self.infos = {name: collections.deque(maxlen=keep) for name in info_inputs}
        self.pending: collections.deque[tuple[int, HeldInput]] = collections.deque()
        self._order = 0          # bag order of every input, to tell what came before what

    def add_info(self, name: str, stamp_ns: int, info) -> None:
        self._order += 1
        self.infos[name].append((stamp_ns, self._order, info))

    def add(self, held: HeldInput) -> None:
        self._order += 1
        self.pending.append((self._order, held))

    def ready(self, bag_ns: int | None):
        """Inputs that may go now, with their camera_infos; ``bag_ns`` None: the bag ended."""
        while self.pending:
            order, held = self.pending[0]
            if bag_ns is not None and bag_ns - held.bag_ns < self.lookahead_ns and not all(
                    infos and infos[-1][0] >= held.stamp_ns - self.slop_ns
                    for infos in self.infos.values()):
                return
            self.pending.popleft()
            for name, infos in self.infos.items():
                near = [(abs(s - held.stamp_ns), o, i) for s, o, i in infos
                        if abs(s - held.stamp_ns) <= self.slop_ns]
                before = [(o, i) for _, o, i in infos if o < order]
                if near:
                    held.infos[name] = min(near, key=lambda x: (x[0], -x[1]))[2]
                elif before:
                    held.infos[name] = before[-1][1]
            yield held


class _DroppedInputs:
    """Dropped inputs counted per kind in the report, with a warning at the first of each
    kind; called by the frame path for inputs it drops (unsynchronised)."""

    def __init__(self, report: ProcessReport, warn: Callable[[str], None]):
        self.report, self.warn = report, warn
        self.at = ''          # where in the bag the current input is: 'on TOPIC at T ns'
        self._warned: set[str] = set()

    def __call__(self, kind: str, message: str, count: int) -> None:
        self.count(kind, count, f'{message}, {self.at}')

    def count(self, kind: str, count: int, warning: str) -> None:
        self.report.rejected[kind] += count
        self.once(kind, warning)

    def once(self, kind: str, warning: str) -> None:
        """Warn about ``kind`` the first time only (the summary counts the rest)."""
        if kind not in self._warned:
            self._warned.add(kind)
            self.warn(warning)


def _serialized(message) -> bytes:
    """CDR bytes of an output message (images and clouds already are)."""
    if isinstance(message, bytes):
        return message
    from rclpy.serialization import serialize_message
    return bytes(serialize_message(message))


def input_types(frame_path) -> dict[str, tuple[str, ...]]:
    """The message types each input of a frame path takes (as a bag topic)."""
    types = {name: (frame_path.message_inputs.get(name, CAMERA_INFO_TYPE),)
             for name in frame_path.latest_inputs}
    for name in frame_path.streams:
        types[name] = (frame_path.message_inputs[name],) if name in frame_path.message_inputs \
            else IMAGE_TYPES
    return types


def _check_topics(method, frame_path, wanted, outputs, by_topic, bag, warn) -> None:
    listing = ', '.join(f'{t} [{c.msgtype}]' for t, c in sorted(by_topic.items())) or 'none'
    for name, types in input_types(frame_path).items():
        conn = by_topic.get(wanted[name])
        if conn is not None and conn.msgtype not in types:
            raise ProcessBagError(f"{bag}: topic {wanted[name]} is {conn.msgtype}, but the "
                                  f"'{name}' input of {method.executable} takes "
                                  f"{' or '.join(types)}")
    for name in frame_path.required_inputs:
        if wanted[name] not in by_topic:
            option = next((a for a, t in REMAP_ARGUMENTS.items() if t == name), name)
            raise ProcessBagError(f"{bag} has no topic {wanted[name]} for the '{name}' input "
                                  f'of {method.executable} (set --{option}); its topics: '
                                  f'{listing}')
    for name in frame_path.optional_inputs:
        if wanted[name] not in by_topic:
            warn(f"{bag} has no {wanted[name]} (optional input '{name}'): processing "
                 'without it')
    for topic in outputs.values():
        if topic in by_topic:
            raise ProcessBagError(f'{bag} already has {topic}; write the depth into another '
                                  'namespace with --namespace')


def _copy_connections(writer, reader, report: ProcessReport, warn) -> dict[int, Any]:
    """Output connections for every input connection (type definitions travel along)."""
    from rosbags.interfaces import MessageDefinitionFormat
    copies = {}
    for conn in reader.connections:
        if any(c.topic == conn.topic for c in copies.values()):
            continue            # one topic recorded from several publishers: written once
        qos = getattr(conn.ext, 'offered_qos_profiles', ()) if reader.is2 else ()
        try:
            if reader.is2 and conn.msgdef.format != MessageDefinitionFormat.NONE \
                    and conn.digest:
                copies[conn.id] = writer.add_connection(
                    conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                    offered_qos_profiles=qos)
            else:
                store = reader.typestore if reader.is2 else _jazzy_store()
                copies[conn.id] = writer.add_connection(conn.topic, conn.msgtype,
                                                        typestore=store,
                                                        offered_qos_profiles=qos)
        except Exception as exc:   # e.g. a ROS 1 type with no ROS 2 counterpart
            report.skipped_topics.append(conn.topic)
            warn(f'not copying {conn.topic} [{conn.msgtype}]: {exc}')
    by_topic = {c.topic: c for c in copies.values()}
    for conn in reader.connections:      # further connections of a topic share its copy
        if conn.id not in copies and conn.topic in by_topic:
            copies[conn.id] = by_topic[conn.topic]
    return copies


def _ros1_to_cdr(raw, msgtype: str) -> bytes:
    return bytes(_jazzy_store().ros1_to_cdr(raw, msgtype))


def _abort(writer) -> None:
    try:
        writer.close()
    except Exception:
        pass


# -- command line ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='depth-nodes process-bag', description=__doc__.split('\n\n')[0],
        epilog='Input topics default to the node input names in the root namespace; '
               'example: depth-nodes process-bag run1 run1_depth --method eigen '
               '--image /camera/image --camera_info /camera/camera_info')
    parser.add_argument('input', type=Path, help='rosbag2 directory (sqlite3/mcap) or ROS 1 '
                                                 '.bag')
    parser.add_argument('output', type=Path, help='rosbag2 directory to create')
    parser.add_argument('--method', default='eigen', choices=sorted(METHODS),
                        help='depth method (default: eigen)')
    parser.add_argument('--model', help="model path or name (default: the method's params "
                                        'file)')
    parser.add_argument('--backend', help='auto | onnxruntime | tensorrt | torch')
    parser.add_argument('--params-file', type=Path,
                        help="node params YAML (default: the method's config/<method>.yaml)")
    parser.add_argument('-p', '--param', action='append', type=parse_parameter, default=[],
                        metavar='NAME:=VALUE', help='override one node parameter, e.g. '
                                                    'min_depth:=0.5 (repeatable)')
    for argument, topic in REMAP_ARGUMENTS.items():
        parser.add_argument(f'--{argument}', metavar='TOPIC',
                            help=f"bag topic of the node's '{topic}' input (default: /{topic})")
    parser.add_argument('--topic', action='append', default=[], metavar='INPUT:=TOPIC',
                        help="bag topic of any node input, e.g. semidense/depth:=/slam/depth "
                             '(repeatable)')
    parser.add_argument('--namespace', default='',
                        help='namespace of the output topics (default: /depth/...)')
    parser.add_argument('--colored', action='store_true', help='also write depth/colored')
    parser.add_argument('--points', action='store_true', help='also write depth/points')
    parser.add_argument('--storage', choices=STORAGES,
                        help="output storage (default: the input bag's; sqlite3 for ROS 1)")
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    parameters = dict(args.param)
    if args.model:
        parameters['model'] = args.model
    if args.backend:
        parameters['backend'] = args.backend
    topics = {REMAP_ARGUMENTS[a]: getattr(args, a) for a in REMAP_ARGUMENTS
              if getattr(args, a)}
    for text in args.topic:
        name, sep, topic = text.partition(':=')
        if not (sep and name and topic):
            print(f"error: --topic expects INPUT:=TOPIC, got '{text}'", file=sys.stderr)
            return 2
        topics[name] = topic
    try:
        report = process_bag(args.input, args.output, args.method, topics=topics,
                             params_file=args.params_file, parameters=parameters,
                             colored=args.colored, points=args.points,
                             namespace=args.namespace, storage=args.storage,
                             progress=not args.no_progress)
    except (ProcessBagError, ModelLoadError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted: no output written', file=sys.stderr)
        return 130
    rejected = ', '.join(f'{k}: {v}' for k, v in sorted(report.rejected.items())) or 'none'
    print(f'wrote {report.output}: {report.depth_images} depth images, '
          f'{report.messages_copied}/{report.messages_in} input messages copied, '
          f'rejected inputs: {rejected}, {report.seconds:.1f} s')
    if report.skipped_topics:
        print(f'not copied (no ROS 2 type): {", ".join(report.skipped_topics)}',
              file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
