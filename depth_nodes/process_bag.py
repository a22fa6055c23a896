"""Offline depth for a recorded bag, without a ROS graph.

  depth-nodes process-bag INPUT OUTPUT [--method eigen] [--image /camera/image] ...
  python -m depth_nodes.process_bag INPUT OUTPUT ...

Reads a rosbag2 (sqlite3 or mcap) or a ROS 1 bag with rosbags, feeds the method's input
topics in bag order through the frame path of the method's node (the same estimator and
message conversions, with the settings of the method's params file) and writes a new rosbag2
holding every input message plus depth/image and depth/camera_info (and on request
depth/colored and depth/points). Outputs carry their input's header and are written at the
input's bag time, so the processed bag lines up with the original one.

The bag is written into a hidden directory beside OUTPUT and renamed to OUTPUT only once
complete: an interrupted or failed run never leaves a bag at OUTPUT that looks finished.

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

import numpy as np
import yaml

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraModelError
from depth_nodes.core.colorize import colorize_depth
from depth_nodes.core.encodings import ImageFormatError, to_rgb8
from depth_nodes.core.pointcloud import depth_to_xyzrgb
from depth_nodes.methods import (METHODS, OUTPUT_TOPICS, REMAP_ARGUMENTS, Method, get_method,
                                 share_directory)
from depth_nodes.runtime.engine import EngineOptions, ModelLoadError
from depth_nodes.runtime.estimator import DepthResult, MonoDepthEstimator
from depth_nodes.runtime.model import LoadedModel, open_model

IMAGE = 'sensor_msgs/msg/Image'
# Node-relative output topics (DepthOutputs in depth_nodes/nodes/depth_node.py) and types.
OUTPUTS = OUTPUT_TOPICS


class ProcessBagError(RuntimeError):
    """Anything that stops a run before or while writing; the message says what and where."""


@dataclass
class DepthFrame:
    """One result of a frame path: what the node would publish, with the input's header."""
    header: Any                     # std_msgs/Header of the input
    result: DepthResult
    info_template: Any = None       # the input's CameraInfo (distortion, R copied through)
    rgb: np.ndarray | None = None   # colours of depth/points
    extra: list = field(default_factory=list)   # (node-relative topic, CDR) beyond depth/*


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


def load_model(params: dict[str, Any]) -> LoadedModel:
    """open_model() with the node's model parameters (raises ModelLoadError naming the file)."""
    options = EngineOptions(precision=params.get('precision', 'fp32'),
                            engine_cache_dir=params.get('engine_cache_dir', ''),
                            force_engine_update=bool(params.get('force_engine_update', False)))
    spec = {k[len('spec.'):]: v for k, v in params.items()
            if k.startswith('spec.') and v is not None}
    return open_model(str(params.get('model', '')), params.get('backend', 'auto'), options, spec)


def depth_range(params: dict[str, Any], spec) -> tuple[float, float]:
    """[min, max] valid depth: the parameters, or the model's range where 0 (as the nodes)."""
    return (float(params.get('min_depth') or spec.min_depth),
            float(params.get('max_depth') or spec.max_depth))


# -- frame paths, one per node -----------------------------------------------------------------
def camera_from_info(info, width: int, height: int, required: bool = False):
    """The intrinsics of a CameraInfo checked against the image size, as the nodes check
    them: ImageFormatError 'camera_info' (uncalibrated / missing when required) or
    'camera_info_size'. ``width`` 0: no size check."""
    if info is None:
        if required:
            raise ImageFormatError('no camera_info received yet: projecting points needs '
                                   'the camera model', 'camera_info')
        return None
    try:
        camera = ros_io.camera_info_to_intrinsics(info)
    except CameraModelError as exc:
        raise ImageFormatError(f'camera_info unusable: {exc}', 'camera_info') from None
    if width and (camera.width, camera.height) != (width, height):
        raise ImageFormatError(f'camera_info is {camera.width}x{camera.height} but the image '
                               f'is {width}x{height}', 'camera_info_size')
    return camera


class MonoDepthFramePath:
    """mono_depth_node's frame path: newest camera_info + each image -> one depth frame."""

    raw_inputs = frozenset({'image'})       # the node subscribes these as serialized CDR
    required_inputs = ('image',)
    optional_inputs = ('camera_info',)
    extra_outputs: dict[str, str] = {}      # node-relative topic -> type, beyond depth/*

    def __init__(self, model: LoadedModel, params: dict[str, Any]):
        try:
            self.estimator = MonoDepthEstimator(model, params.get('output_resolution', 'input'),
                                                params.get('post_process', 'none'))
        except ValueError as exc:    # e.g. pp on a model that outputs no disparity
            raise ModelLoadError(params.get('model'), str(exc)) from None
        self.depth_range = depth_range(params, self.estimator.spec)
        self.want_rgb = bool(params.get('publish_points', False))
        self._camera_info = None

    def feed(self, name: str, message) -> list[DepthFrame]:
        if name == 'camera_info':
            self._camera_info = message
            return []
        msg = ros_io.image_from_cdr(message)
        image = ros_io.image_to_array(msg)
        info = self._camera_info
        camera = camera_from_info(info, msg.width, msg.height)
        result = self.estimator.estimate(image, msg.encoding, camera,
                                         depth_range=self.depth_range)
        rgb = to_rgb8(image, msg.encoding) if self.want_rgb and camera is not None else None
        return [DepthFrame(ros_io.header_from(msg), result, info, rgb)]


class NirDepthFramePath:
    """nir_depth_node's frame path: NIR image -> CTN pseudo-RGB -> depth model (Shen et al.),
    with nir/pseudo_rgb when publish_pseudo_rgb."""

    raw_inputs = frozenset({'nir/image'})
    required_inputs = ('nir/image',)
    optional_inputs = ('nir/camera_info',)
    extra_outputs = {'nir/pseudo_rgb': IMAGE}

    def __init__(self, model: LoadedModel, params: dict[str, Any]):
        from depth_nodes.runtime.nir_estimator import NirDepthEstimator
        depth_model = None
        if params.get('depth_model'):
            depth_model = load_model({**{k: v for k, v in params.items()
                                         if not k.startswith('spec.')},
                                      'model': params['depth_model']})
        try:
            self.estimator = NirDepthEstimator(model, depth_model,
                                               params.get('output_resolution', 'input'))
        except ValueError as exc:
            raise ModelLoadError(params.get('depth_model') or params.get('model'),
                                 str(exc)) from None
        self.depth_range = depth_range(params, self.estimator.spec)
        self.baseline = float(params.get('baseline') or 0.0) or None
        self.depth_scale = float(params.get('depth_scale', 1.0))
        self.pseudo_rgb = bool(params.get('publish_pseudo_rgb', False))
        self.want_rgb = bool(params.get('publish_points', False))
        self._camera_info = None

    def feed(self, name: str, message) -> list[DepthFrame]:
        from depth_nodes.core.encodings import lookup_encoding
        from depth_nodes.core.preprocess import resize_image
        if name == 'nir/camera_info':
            self._camera_info = message
            return []
        msg = ros_io.image_from_cdr(message)
        if lookup_encoding(msg.encoding).kind != 'mono':
            raise ImageFormatError(f"nir/image has encoding '{msg.encoding}'; expected a "
                                   'single-channel NIR image (mono8 or mono16)', 'encoding')
        image = ros_io.image_to_array(msg)
        info = self._camera_info
        camera = camera_from_info(info, msg.width, msg.height)
        result = self.estimator.estimate(image, msg.encoding, camera, baseline=self.baseline,
                                         depth_range=self.depth_range,
                                         depth_scale=self.depth_scale)
        header = ros_io.header_from(msg)
        frame = DepthFrame(header, result, info, result.extras.get('pseudo_rgb'))
        if frame.rgb is not None and self.pseudo_rgb:
            frame.extra.append(('nir/pseudo_rgb', ros_io.image_to_cdr(
                resize_image(frame.rgb, msg.height, msg.width), 'rgb8', header)))
        if frame.rgb is None and self.want_rgb and camera is not None:
            frame.rgb = to_rgb8(image, msg.encoding)
        return [frame]


class SemiDenseFramePath:
    """semidense_depth_node's frame path: semi-dense depth (or a point cloud) [+ variance]
    [+ intensity image] synchronised by approximate time as the node does, + newest
    camera_info, -> dense depth (Makarov et al.)."""

    raw_inputs = frozenset({'semidense/depth', 'semidense/variance', 'image'})
    extra_outputs: dict[str, str] = {}

    def __init__(self, model: LoadedModel, params: dict[str, Any]):
        from depth_nodes.core.semidense import transform_points
        from depth_nodes.core.sync import ApproximateTimeSync
        from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator
        self.estimator = SemiDenseEstimator(model, params.get('output_resolution', 'input'))
        self.depth_range = depth_range(params, self.estimator.spec)
        self.params = params
        self.input = params.get('input', 'depth')
        if self.input not in ('depth', 'points'):
            raise ProcessBagError(f"parameter input must be 'depth' or 'points', got "
                                  f"'{self.input}'")
        self.extrinsic = tuple(params.get('points_to_camera',
                                          (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)))
        transform_points(np.zeros((1, 3)), self.extrinsic)     # a bad value fails at start
        streams = ['semidense/points' if self.input == 'points' else 'semidense/depth']
        if self.input == 'depth' and params.get('use_variance', False):
            streams.append('semidense/variance')
        if self.estimator.needs_intensity:
            streams.append('image')
        self.streams = tuple(streams)
        self.required_inputs = self.streams + (('camera_info',) if self.input == 'points'
                                               else ())
        self.optional_inputs = () if self.input == 'points' else ('camera_info',)
        self.sync = ApproximateTimeSync(len(streams), float(params.get('sync_slop', 0.02))) \
            if len(streams) > 1 else None
        self._camera_info = None

    def feed(self, name: str, message) -> list[DepthFrame]:
        if name == 'camera_info':
            self._camera_info = message
            return []
        if name not in self.streams:
            return []
        msg = ros_io.image_from_cdr(message) if name in self.raw_inputs else message
        if self.sync is None:
            group = (msg,)
        else:
            stamp = msg.header.stamp
            group = self.sync.add(self.streams.index(name),
                                  stamp.sec * 10**9 + stamp.nanosec, msg)
            if group is None:
                return []
        return [self._dense(dict(zip(self.streams, group)))]

    def _dense(self, group: dict) -> DepthFrame:
        from std_msgs.msg import Header

        from depth_nodes.core.encodings import depth_to_metres
        from depth_nodes.core.semidense import (depth_from_semidense_image,
                                                intensity_from_image, points_to_sparse_depth,
                                                transform_points)
        info = self._camera_info
        if self.input == 'points':
            cloud = group['semidense/points']
            camera = camera_from_info(info, 0, 0, required=True)
            points = transform_points(ros_io.pointcloud2_to_xyz(cloud), self.extrinsic)
            depth = points_to_sparse_depth(points, camera)
            header = Header(stamp=cloud.header.stamp, frame_id=info.header.frame_id)
        else:
            msg = group['semidense/depth']
            values = ros_io.image_to_array(msg)
            inverse = bool(self.params.get('input_is_inverse_depth', False))
            if msg.encoding == '16UC1' and not inverse:
                values = depth_to_metres(values, '16UC1')
            elif msg.encoding != '32FC1':
                raise ImageFormatError(f"semidense/depth must be 32FC1 (or 16UC1 mm), got "
                                       f"'{msg.encoding}'", 'encoding')
            variance = None
            if 'semidense/variance' in group:
                var_msg = group['semidense/variance']
                if var_msg.encoding != '32FC1':
                    raise ImageFormatError(f"semidense/variance must be 32FC1, got "
                                           f"'{var_msg.encoding}'", 'encoding')
                variance = ros_io.image_to_array(var_msg)
            depth = depth_from_semidense_image(
                values, inverse_depth=inverse, variance=variance,
                max_variance=float(self.params.get('max_variance', 0.0)))
            camera = camera_from_info(info, depth.shape[1], depth.shape[0])
            header = ros_io.header_from(msg)
        intensity = rgb = None
        if 'image' in group:
            image_msg = group['image']
            image = ros_io.image_to_array(image_msg)
            if image.shape[:2] != depth.shape:
                raise ImageFormatError(f'image is {image.shape[1]}x{image.shape[0]} but the '
                                       f'semi-dense depth is {depth.shape[1]}x{depth.shape[0]}',
                                       'image_size')
            intensity = intensity_from_image(image, image_msg.encoding)
            if self.params.get('publish_points'):
                rgb = to_rgb8(image, image_msg.encoding)
        result = self.estimator.estimate(
            depth, camera, intensity, depth_range=self.depth_range,
            keep_input_depth=bool(self.params.get('keep_input_depth', True)))
        return DepthFrame(header, result, info, rgb)


class StereoFramePath:
    """stereo_depth_node's frame path: left/right images synchronised by approximate time as
    the node does, the newest camera_info of each side -> the left view's depth and the
    disparity (StereoSGBM without a model, else a disparity network on the left image)."""

    raw_inputs = frozenset({'left/image_rect', 'right/image_rect'})
    required_inputs = ('left/image_rect', 'right/image_rect', 'left/camera_info',
                       'right/camera_info')
    extra_outputs = {'disparity': 'stereo_msgs/msg/DisparityImage'}
    model_optional = True

    def __init__(self, model: LoadedModel | None, params: dict[str, Any]):
        from depth_nodes.core.stereo import SgbmParameters
        from depth_nodes.core.sync import ApproximateTimeSync
        from depth_nodes.runtime.stereo_estimator import (LearnedStereoEstimator,
                                                          SgbmStereoEstimator)
        try:
            if model is None:
                fields = SgbmParameters.__dataclass_fields__
                self.estimator = SgbmStereoEstimator(SgbmParameters(**{
                    name: params[f'sgbm.{name}'] for name in fields
                    if f'sgbm.{name}' in params}))
            else:
                self.estimator = LearnedStereoEstimator(
                    model, params.get('output_resolution', 'input'),
                    params.get('post_process', 'none'))
        except ValueError as exc:
            raise ModelLoadError(params.get('model') or 'StereoSGBM', str(exc)) from None
        self.depth_range = depth_range(params, self.estimator.spec)
        self.baseline = float(params.get('baseline') or 0.0) or None
        self.want_rgb = bool(params.get('publish_points', False))
        self.sync = ApproximateTimeSync(2, float(params.get('sync_slop', 0.01)))
        self._camera_info = {'left/camera_info': None, 'right/camera_info': None}

    def feed(self, name: str, message) -> list[DepthFrame]:
        if name in self._camera_info:
            self._camera_info[name] = message
            return []
        msg = ros_io.image_from_cdr(message)
        stamp = msg.header.stamp
        pair = self.sync.add(0 if name == 'left/image_rect' else 1,
                             stamp.sec * 10**9 + stamp.nanosec, msg)
        return [] if pair is None else [self._depth(*pair)]

    def _depth(self, left_msg, right_msg) -> DepthFrame:
        from depth_nodes.frames import disparity_message
        from rclpy.serialization import serialize_message
        left, right = ros_io.image_to_array(left_msg), ros_io.image_to_array(right_msg)
        if left.shape[:2] != right.shape[:2]:
            raise ImageFormatError(f'left image is {left_msg.width}x{left_msg.height} but the '
                                   f'right image is {right_msg.width}x{right_msg.height}',
                                   'stereo_size')
        cameras = []
        for side in ('left', 'right'):
            info = self._camera_info[f'{side}/camera_info']
            if info is None:
                raise ImageFormatError(f'no {side}/camera_info received yet', 'camera_info')
            try:
                cameras.append(camera_from_info(info, left_msg.width, left_msg.height))
            except ImageFormatError as exc:
                raise ImageFormatError(f'{side}/{exc}', exc.kind) from None
        try:
            result = self.estimator.estimate(left, left_msg.encoding, right,
                                             right_msg.encoding, *cameras, self.baseline,
                                             depth_range=self.depth_range)
        except CameraModelError as exc:          # no baseline in P and none given
            raise ImageFormatError(f'{exc}; or set the baseline parameter',
                                   'baseline') from None
        header = ros_io.header_from(left_msg)
        frame = DepthFrame(header, result.depth_result(), self._camera_info['left/camera_info'],
                           to_rgb8(left, left_msg.encoding) if self.want_rgb else None)
        frame.extra.append(('disparity',
                            bytes(serialize_message(disparity_message(result, header)))))
        return frame


# Node executable -> its frame path. A new node adds its class here: constructor
# (LoadedModel, flattened params); raw_inputs / required_inputs / optional_inputs (node
# input names, as in Method.inputs; class or instance attributes); extra_outputs
# (node-relative topic -> type, written from DepthFrame.extra); feed(input name, CDR bytes
# or rclpy message) -> [DepthFrame], raising ImageFormatError(message, kind) for bad input
# exactly as the node's process() does; an optional ``sync`` (ApproximateTimeSync) whose
# unmatched messages are counted as 'unsynchronised'.
FRAME_PATHS: dict[str, Callable[..., Any]] = {
    'mono_depth_node': MonoDepthFramePath,
    'nir_depth_node': NirDepthFramePath,
    'semidense_depth_node': SemiDenseFramePath,
    'stereo_depth_node': StereoFramePath,
}


# -- outputs -------------------------------------------------------------------------------
class DepthMessages:
    """DepthFrame -> serialized output messages, as DepthOutputs publishes them."""

    def __init__(self, *, colored: bool, points: bool, stride: int,
                 depth_range: tuple[float, float]):
        self.colored, self.points, self.stride = colored, points, stride
        self.depth_range = depth_range
        self._rays_key = self._rays = None

    def __call__(self, frame: DepthFrame) -> list[tuple[str, bytes]]:
        from rclpy.serialization import serialize_message
        result, header = frame.result, frame.header
        out = [('depth/image', ros_io.image_to_cdr(result.depth, '32FC1', header))]
        if result.camera is not None:
            info = ros_io.intrinsics_to_camera_info(result.camera, header, frame.info_template)
            out.append(('depth/camera_info', bytes(serialize_message(info))))
        if self.colored:
            out.append(('depth/colored', ros_io.image_to_cdr(
                colorize_depth(result.depth, *self.depth_range), 'rgb8', header)))
        if self.points and result.camera is not None:
            rgb = frame.rgb
            if rgb is not None and rgb.shape[:2] != result.depth.shape:
                import cv2
                rgb = cv2.resize(rgb, result.depth.shape[::-1], interpolation=cv2.INTER_AREA)
            if self._rays_key != result.camera:
                from depth_nodes.core.camera import pixel_rays
                self._rays_key, self._rays = result.camera, pixel_rays(result.camera)
            cloud = depth_to_xyzrgb(result.depth, result.camera, rgb, self.stride, self._rays)
            out.append(('depth/points', ros_io.xyzrgb_to_pointcloud2_cdr(cloud, header)))
        return out


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
                points: bool = False, namespace: str = '', storage: str = 'sqlite3',
                progress: bool = True, warn: Callable[[str], None] | None = None
                ) -> ProcessReport:
    """Run ``method`` over ``input_bag`` into a new rosbag2 at ``output_bag``.

    ``topics`` maps node input names (Method.inputs, e.g. 'image') to the bag's topics
    (default: the name in the root namespace, '/image'); ``parameters`` override the params
    file. Raises ProcessBagError / ModelLoadError; never leaves a partial bag at output_bag.
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
    if storage not in ('sqlite3', 'mcap'):
        raise ProcessBagError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
    params_file = Path(params_file) if params_file else share_directory() / 'config' / \
        m.params_file
    params = node_parameters(params_file, m.executable)
    params.update(parameters or {})
    params.update(publish_colored=colored, publish_points=points)   # the node's switches
    warn = warn or (lambda text: tqdm.write(text, file=sys.stderr))

    # Before touching the output: a bad model costs nothing. A frame path that runs without
    # a network (model_optional, e.g. stereo SGBM) gets None for an empty 'model'.
    path_class = FRAME_PATHS[m.executable]
    model = None if not params.get('model') and getattr(path_class, 'model_optional', False) \
        else load_model(params)
    frame_path = path_class(model, params)
    inputs = list(dict.fromkeys((*m.inputs, *frame_path.required_inputs,
                                 *getattr(frame_path, 'optional_inputs', ()))))
    unknown = set(topics or {}) - set(inputs)
    if unknown:
        raise ProcessBagError(f"method '{method}' has no input(s) {sorted(unknown)} "
                              f'(inputs: {", ".join(inputs)})')
    wanted = {name: resolve_topic((topics or {}).get(name) or '/' + name) for name in inputs}
    output_types = {**OUTPUTS, **frame_path.extra_outputs}
    outputs = {name: resolve_topic(name, namespace) for name in output_types}
    to_messages = DepthMessages(colored=colored, points=points,
                                stride=int(params.get('points_stride', 2)),
                                depth_range=frame_path.depth_range)
    report = ProcessReport(output_bag)
    partial = output_bag.parent / f'.{output_bag.name}.partial-{os.getpid()}'
    shutil.rmtree(partial, ignore_errors=True)
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    try:
        reader = AnyReader([input_bag], default_typestore=_jazzy_store())
        reader.open()
    except Exception as exc:
        raise ProcessBagError(f'cannot read bag {input_bag}: {exc}') from None
    try:
        by_topic = {c.topic: c for c in reader.connections}
        _check_topics(m, frame_path, wanted, outputs, by_topic, input_bag, warn)
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
            deserializers = {name: _message_class(by_topic[topic].msgtype)
                             for name, topic in wanted.items()
                             if topic in by_topic and name not in frame_path.raw_inputs}
            reported = set()
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
                    message = data
                    if name in deserializers:
                        from rclpy.serialization import deserialize_message
                        message = deserialize_message(data, deserializers[name])
                    try:
                        frames = frame_path.feed(name, message)
                    except ImageFormatError as exc:
                        report.rejected[exc.kind] += 1
                        if exc.kind not in reported:   # the first of each kind, then counted
                            reported.add(exc.kind)
                            warn(f'dropped input on {conn.topic} at {bag_ns} ns: {exc}')
                        continue
                    for frame in frames:
                        for out_name, payload in to_messages(frame) + frame.extra:
                            write_output(out_name, bag_ns, payload)
                        report.depth_images += 1
                    bar.set_postfix(depth=report.depth_images, refresh=False)
        except BaseException:
            _abort(writer)
            raise
        writer.close()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        reader.close()
    sync = getattr(frame_path, 'sync', None)
    if sync is not None and sync.stats.unmatched:
        report.rejected['unsynchronised'] += sync.stats.unmatched
    if report.depth_images == 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise ProcessBagError(
            f'no depth image produced from {report.messages_in} messages of {input_bag} '
            f'(rejected: {dict(report.rejected) or "none"}; inputs: {wanted})')
    os.rename(partial, output_bag)
    report.seconds = time.perf_counter() - start
    return report


def _check_topics(method, frame_path, wanted, outputs, by_topic, bag, warn) -> None:
    listing = ', '.join(f'{t} [{c.msgtype}]' for t, c in sorted(by_topic.items())) or 'none'
    for name in frame_path.required_inputs:
        if wanted[name] not in by_topic:
            option = next((a for a, t in REMAP_ARGUMENTS.items() if t == name), name)
            raise ProcessBagError(f"{bag} has no topic {wanted[name]} for the '{name}' input "
                                  f'of {method.executable} (set --{option}); its topics: '
                                  f'{listing}')
    for name in getattr(frame_path, 'optional_inputs', ()):
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
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
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
