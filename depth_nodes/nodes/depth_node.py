"""What every depth node shares: model loading, parameters, the worker, outputs, diagnostics.

Node files stay thin: they name their frame path (depth_nodes.frames: estimator, input
synchronisation and the frame itself, shared with process_bag) and declare their
subscriptions and extra publishers; everything else lives here.

Why not lifecycle (managed) nodes: these nodes have no hardware to arm or release; the model
loads once, in the constructor, and a failure exits non-zero within seconds, which
`ros2 launch` and systemd supervise without a lifecycle manager. Swapping models at run time
is done through the `model` parameter (the old model keeps running if the new one fails).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.node import Node
from rclpy.qos import (QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_nodes import ros_io
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpecError, field_names
from depth_nodes.core.pipeline import (LatencyWindow, LatestFrameWorker, RateMeter,
                                       ThrottledReporter)
from depth_nodes.frames import (DepthFrame, DepthFramePath, DepthMessages, engine_options,
                                parameter_defaults)
from depth_nodes.runtime.allocator import keep_large_buffers
from depth_nodes.runtime.engine import BACKENDS, PRECISIONS, ModelLoadError
from depth_nodes.runtime.estimator import OUTPUT_RESOLUTIONS
from depth_nodes.runtime.model import LoadedModel, open_model

# Publishers are reliable so RViz and `ros2 bag record` receive with their default QoS.
OUTPUT_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)
# Parameters whose change needs the model (re)loaded; the others apply at the next frame.
RELOAD_PARAMETERS = ('model', 'backend', 'precision', 'engine_cache_dir', 'output_resolution')
WARN_PERIOD_S = 5.0


class _RclpyLogHandler(logging.Handler):
    """Forwards Python logging of depth_nodes.* (engine cache, TensorRT) to the node's log."""

    def __init__(self, logger):
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f'[{record.name}] {record.getMessage()}'
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


def _descriptor(description: str, *, choices=None, float_range=None, int_range=None,
                dynamic=False, read_only=False) -> ParameterDescriptor:
    if choices:
        description += f" (one of: {', '.join(choices)})"
    d = ParameterDescriptor(description=description, read_only=read_only,
                            dynamic_typing=dynamic)
    if float_range:
        d.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                     to_value=float(float_range[1]), step=0.0)]
    if int_range:
        d.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    return d


class LiveParameters(Mapping):
    """A node's parameters as a Mapping read at each access: a frame path given it sees
    run-time changes at its next frame."""

    def __init__(self, node: Node):
        self._node = node

    def __getitem__(self, name: str) -> Any:
        try:
            return self._node.get_parameter(name).value
        except ParameterNotDeclaredException:
            raise KeyError(name) from None

    def __iter__(self):
        return iter(self._node.get_parameters_by_prefix(''))

    def __len__(self) -> int:
        return len(self._node.get_parameters_by_prefix(''))


class PublisherSequenceGaps:
    """Input messages the node never saw: gaps in each publisher's sequence numbers.

    The keep-last-1 input queue replaces a frame the executor had no time to take, so under
    load some frames are lost before the node's worker could count them as dropped.
    """

    def __init__(self):
        self._last: dict[bytes | None, int] = {}
        self.lost = 0

    def add(self, info) -> None:
        seq = info.get('publication_sequence_number')
        if not seq or seq >= 2**63:           # 0 / UINT64_MAX: the RMW does not provide it
            return
        gid = info.get('publisher_gid')
        key = bytes(gid['data']) if isinstance(gid, dict) else None
        last = self._last.get(key)
        if last is not None and seq > last + 1:
            self.lost += seq - last - 1
        if last is None or seq > last:
            self._last[key] = seq


class DepthOutputs:
    """Publishers of depth/image, depth/camera_info, depth/colored and depth/points, plus a
    node's extra outputs (add()); what they publish comes from frames.DepthMessages."""

    def __init__(self, node: Node):
        self.publishers = {
            'depth/image': node.create_publisher(Image, 'depth/image', OUTPUT_QOS),
            'depth/camera_info': node.create_publisher(CameraInfo, 'depth/camera_info',
                                                       OUTPUT_QOS),
            'depth/colored': node.create_publisher(Image, 'depth/colored', OUTPUT_QOS),
            'depth/points': node.create_publisher(PointCloud2, 'depth/points', OUTPUT_QOS)}
        self._messages = DepthMessages()

    def add(self, topic: str, publisher) -> None:
        """An extra output of a frame path (DepthFrame.extra), e.g. disparity."""
        self.publishers[topic] = publisher

    def publish(self, frame: DepthFrame, *, colored: bool, points: bool, stride: int) -> None:
        """Publish a frame with the input's header (REP 118: same stamp and frame_id).
        depth/colored, depth/points and extra outputs are computed only for subscribers."""
        switches = {'depth/colored': colored, 'depth/points': points}

        def wants(topic: str) -> bool:
            return switches.get(topic, True) and \
                self.publishers[topic].get_subscription_count() > 0
        for topic, message in self._messages(frame, wants, stride):
            self.publishers[topic].publish(message)


class DepthNodeBase(Node):
    """Base of the depth nodes. Subclasses name their frame_path, declare its parameters in
    declare_frame_parameters() and subscribe its inputs with receiver(): the frame path's
    accept() runs in the subscription callback, its process() on the worker."""

    silent_input_s = 5.0   # publishers but no data for this long -> a hint in the log
    frame_path: type[DepthFramePath] = DepthFramePath

    def __init__(self, node_name: str, *, default_model: str | None = None, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        python_log = logging.getLogger('depth_nodes')
        python_log.setLevel(logging.INFO)
        self._log_handler = _RclpyLogHandler(self.get_logger())
        python_log.addHandler(self._log_handler)
        self.parameter_defaults = parameter_defaults(self.frame_path)
        if default_model is not None:
            self.parameter_defaults['model'] = default_model
        self._declare_common_parameters()
        self.declare_frame_parameters(self.declare_with_default)
        self.reporter = ThrottledReporter(self.get_logger().warning, WARN_PERIOD_S)
        self._errors = ThrottledReporter(self.get_logger().error, WARN_PERIOD_S)
        self.hints = ThrottledReporter(self.get_logger().warning, 30.0)
        self.time_jumps = ThrottledReporter(self.get_logger().warning, WARN_PERIOD_S)
        self._last_stamp_ns: int | None = None
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.inference_latency = LatencyWindow()
        self.pipeline_latency = LatencyWindow()
        self.last_model_error = ''
        self.input_subscriptions = []
        self.input_gaps: list[PublisherSequenceGaps] = []
        self._last_input = time.monotonic()
        self._model_lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.frames: DepthFramePath | None = None
        self._load_model(self._parameter_values())  # raises ModelLoadError -> exit code 1
        ros_io.prepare_cdr()   # the first frame must not pay for building message types
        self.outputs = DepthOutputs(self)
        self.worker: LatestFrameWorker = LatestFrameWorker(self._run_frame, self._on_worker_error)
        self._diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Steady clock: diagnostics keep coming while a replayed bag's /clock pauses or jumps.
        self.create_timer(1.0, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def estimator(self):
        return self.frames.estimator

    @property
    def sync(self):
        """The frame path's input synchroniser (None for a single input)."""
        return self.frames.sync

    # -- parameters -------------------------------------------------------------------
    def declare_with_default(self, name: str, descriptor: ParameterDescriptor):
        """Declare a parameter with its frame path's default (parameter_defaults(), which
        process_bag uses as well)."""
        default = self.parameter_defaults[name]
        return self.declare_parameter(name, list(default) if isinstance(default, list)
                                      else default, descriptor)

    def _declare_common_parameters(self) -> None:
        p = self.declare_with_default
        p('model', _descriptor(
            'ONNX model: a path, or a file name under the package models/ directory'))
        p('backend', _descriptor('inference backend; auto = TensorRT when available with a '
                                 'CUDA device, else ONNX Runtime', choices=BACKENDS))
        p('precision', _descriptor('TensorRT engine precision', choices=PRECISIONS))
        p('engine_cache_dir', _descriptor(
            'TensorRT engine cache directory (empty: $ROS_HOME/depth_nodes/engines)'))
        p('force_engine_update', _descriptor(
            'rebuild the TensorRT engine even when the cache holds a matching one'))
        p('publish_colored', _descriptor('publish depth/colored (rgb8, turbo) for RViz'))
        p('publish_points', _descriptor(
            'publish depth/points (PointCloud2 XYZRGB; needs camera_info)'))
        p('points_stride', _descriptor('keep every n-th row and column in depth/points',
                                       int_range=(1, 16)))
        p('min_depth', _descriptor('nearest valid depth in metres (0: the model range)',
                                   float_range=(0.0, 1000.0)))
        p('max_depth', _descriptor('farthest valid depth in metres (0: the model range)',
                                   float_range=(0.0, 1000.0)))
        p('output_resolution', _descriptor(
            'depth image size: that of the input image, or the network output',
            choices=OUTPUT_RESOLUTIONS))
        for name in field_names():
            self.declare_parameter(f'spec.{name}', None, _descriptor(
                f'override the model spec field {name}', dynamic=True))

    def declare_frame_parameters(self, p: Callable) -> None:
        """Declare the frame path's own parameters (its ``defaults``) with ``p(name,
        descriptor)``; called before the first model loads."""

    def _parameter_values(self, changed=()) -> dict[str, Any]:
        values = {name: self.get_parameter(name).value for name in
                  ('model', 'backend', 'precision', 'engine_cache_dir', 'force_engine_update',
                   'output_resolution', *self.frame_path.estimator_parameters)}
        spec_params = [self.get_parameter(f'spec.{name}') for name in field_names()]
        values['spec'] = {p.name[len('spec.'):]: p.value for p in spec_params
                          if p.type_ != ParameterType.PARAMETER_NOT_SET}
        for param in changed:
            if param.name.startswith('spec.'):
                values['spec'][param.name[5:]] = param.value
            else:
                values[param.name] = param.value
        values['spec'] = {k: v for k, v in values['spec'].items() if v is not None}
        return values

    def depth_range(self) -> tuple[float, float]:
        """[min, max] valid depth in metres: the parameters, or the model's range where 0."""
        return self.frames.depth_range()

    def _on_set_parameters(self, params) -> SetParametersResult:
        names = {p.name for p in params}
        for p in params:
            if p.name == 'backend' and p.value not in BACKENDS:
                return SetParametersResult(successful=False, reason=f'backend not in {BACKENDS}')
            if p.name == 'precision' and p.value not in PRECISIONS:
                return SetParametersResult(successful=False,
                                           reason=f'precision not in {PRECISIONS}')
            try:
                self.frames.check_parameter(p.name, p.value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        if names & {'min_depth', 'max_depth'}:
            lo = next((p.value for p in params if p.name == 'min_depth'),
                      self.get_parameter('min_depth').value)
            hi = next((p.value for p in params if p.name == 'max_depth'),
                      self.get_parameter('max_depth').value)
            if lo and hi and lo >= hi:
                return SetParametersResult(successful=False,
                                           reason='min_depth must be below max_depth')
        if names & {*RELOAD_PARAMETERS, *self.frame_path.estimator_parameters} or \
                any(n.startswith('spec.') for n in names):
            try:
                self._load_model(self._parameter_values(params))
            except (ModelLoadError, ModelSpecError, ValueError) as exc:
                self.last_model_error = str(exc)
                self.get_logger().error(f'{exc}; keeping {self.describe_model()}')
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- model ---------------------------------------------------------------------------
    def _load_model(self, values: dict[str, Any]) -> None:
        start = time.perf_counter()
        model = None
        if values['model'] or not self.frame_path.model_optional:
            model = open_model(values['model'], values['backend'], engine_options(values),
                               values['spec'])
        estimator = self.build_estimator(model, values)
        with self._model_lock:
            if self.frames is None:   # the first model: its frame path (inputs may depend on it)
                self.frames = self.frame_path(estimator, LiveParameters(self),
                                              self._report_dropped)
            else:
                self.frames.use_estimator(estimator)     # ValueError: keep the running one
            self.model = model
        self.last_model_error = ''
        if model is None:
            self.get_logger().info(f'running without a model: {self.describe_model()}')
            return
        note = '' if model.spec_embedded else ' (no depth_nodes spec in the model: ' \
            'defaults plus spec.* parameters)'
        self.get_logger().info(f'loaded {model.describe()} in '
                               f'{time.perf_counter() - start:.2f} s; backend '
                               f'{model.engine.backend}: {model.backend_reason}{note}')

    def build_estimator(self, model: LoadedModel | None, values: dict[str, Any]):
        """The estimator for ``model`` given all parameter values being applied (with the
        frame path's estimator_parameters), made by make_estimator()."""
        self._estimator_values = values
        return self.make_estimator(model, values['output_resolution'])

    def make_estimator(self, model: LoadedModel | None, output_resolution: str):
        """The frame path's estimator for a newly loaded model: the hook where a subclass
        sees each model first (test_node_load.py slows its engine down here)."""
        return self.frame_path.build_estimator(
            model, {**self._estimator_values, 'output_resolution': output_resolution})

    def describe_model(self) -> str:
        """The loaded model, or the estimator's own description when there is none."""
        if self.model is not None:
            return self.model.describe()
        return getattr(self.estimator, 'description', type(self.estimator).__name__)

    # -- frames ----------------------------------------------------------------------------
    def create_input_subscription(self, msg_type, topic: str, callback, raw: bool = False):
        """Subscribe an input with input_qos(); watched for 'publishers but no data' and for
        messages lost before the node (PublisherSequenceGaps, in diagnostics)."""
        gaps = PublisherSequenceGaps()
        self.input_gaps.append(gaps)

        def receive(msg, info):
            gaps.add(info)
            callback(msg)
        sub = self.create_subscription(msg_type, topic, receive, **subscription_qos(raw))
        self.input_subscriptions.append(sub)
        return sub

    def receiver(self, name: str) -> Callable[[Any], None]:
        """The subscription callback of frame path input ``name``: accept() it and hand a
        complete job to the worker."""
        def receive(message) -> None:
            try:
                job = self.frames.accept(name, message)
            except ImageFormatError as exc:
                self.reporter.report(exc.kind, f'dropped input: {exc}')
                return
            if job is not None:
                self.submit(job)
        return receive

    def _report_dropped(self, kind: str, message: str, count: int) -> None:
        """The frame path's dropped-input sink: one throttled warning and one count per
        report, like a rejected frame (process_bag counts the messages instead)."""
        self.reporter.report(kind, message)

    def submit(self, item) -> None:
        """Called from subscription callbacks: keep only the newest input."""
        self._last_input = time.monotonic()
        self.input_rate.tick()
        self.worker.submit((time.perf_counter(), item))

    def process(self, job) -> None:
        """Turn one job into published outputs (runs on the worker thread)."""
        frame = self.frames.process(job)
        for kind, text in frame.hints:
            self.hints.report(kind, text)
        self._check_stamp_order(frame.header)
        self.inference_latency.add(frame.result.inference_s)
        self.outputs.publish(frame, colored=self.get_parameter('publish_colored').value,
                             points=self.get_parameter('publish_points').value,
                             stride=self.get_parameter('points_stride').value)

    def _run_frame(self, stamped) -> None:
        received, item = stamped
        try:
            self.process(item)
        except ImageFormatError as exc:
            self.reporter.report(exc.kind, f'dropped input: {exc}')
            return
        self.output_rate.tick()
        self.pipeline_latency.add(time.perf_counter() - received)

    def _check_stamp_order(self, header) -> None:
        """Input stamps going backwards (a bag replayed in a loop, a restarted driver, a sim
        clock reset): reported per 5 s, counted in diagnostics, then on_time_jump() resets
        what the node keeps between frames. The frame itself is good and is published."""
        stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
        last, self._last_stamp_ns = self._last_stamp_ns, stamp
        if last is not None and stamp < last:
            self.time_jumps.report('time_backwards', f'input time went back by '
                                   f'{(last - stamp) * 1e-9:.3f} s (bag loop or driver '
                                   'restart?): state reset')
            self.on_time_jump()

    def on_time_jump(self) -> None:
        """Reset state kept across frames (synchronisers reset themselves); default none."""

    def _on_worker_error(self, exc: BaseException) -> None:
        self._errors.report(type(exc).__name__, f'failed to process a frame: '
                                                f'{type(exc).__name__}: {exc}')

    # -- diagnostics -----------------------------------------------------------------------
    def _check_silent_inputs(self) -> None:
        """Warn when an input topic has publishers but no message arrived for a while.

        The usual cause is best-effort delivery of camera-size images over Fast DDS with its
        default 512 KB shared-memory segment (see config/fastdds_large_data.xml).
        """
        if time.monotonic() - self._last_input < self.silent_input_s:
            return
        for sub in self.input_subscriptions:
            publishers = self.count_publishers(sub.topic_name)
            if publishers:
                self.hints.report(
                    sub.topic_name,
                    f'{sub.topic_name} has {publishers} publisher(s) but nothing arrived for '
                    f'{self.silent_input_s:.0f} s. If it is sending,'
                    ' best-effort images over Fast DDS need FASTDDS_DEFAULT_PROFILES_FILE='
                    '<share>/depth_nodes/config/fastdds_large_data.xml for the publisher too, or'
                    f' set qos_overrides.{sub.topic_name}.subscription.reliability:=reliable')

    def _publish_diagnostics(self) -> None:
        self._check_silent_inputs()
        inf50, inf95 = self.inference_latency.percentiles(50, 95)
        e2e50, e2e95 = self.pipeline_latency.percentiles(50, 95)
        in_rate, out_rate = self.input_rate.rate(), self.output_rate.rate()
        engine = self.model.engine if self.model is not None else None
        status = DiagnosticStatus(name=f'{self.get_name()}: depth pipeline',
                                  hardware_id=engine.describe() if engine else 'cpu')
        if self.last_model_error:
            status.level, status.message = DiagnosticStatus.WARN, self.last_model_error
        elif in_rate == 0.0:
            status.level, status.message = DiagnosticStatus.WARN, 'no input'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'running'
        values = {
            'input rate (Hz)': f'{in_rate:.2f}', 'output rate (Hz)': f'{out_rate:.2f}',
            'inference p50 (ms)': f'{inf50 * 1e3:.2f}',
            'inference p95 (ms)': f'{inf95 * 1e3:.2f}',
            'end-to-end p50 (ms)': f'{e2e50 * 1e3:.2f}',
            'end-to-end p95 (ms)': f'{e2e95 * 1e3:.2f}',
            'frames dropped (busy)': str(self.worker.dropped),
            'inputs lost before the node (queue full)': str(sum(g.lost for g in
                                                                self.input_gaps)),
            'frames rejected (bad input)': str(self.reporter.total),
            'time jumps back (state reset)': str(self.time_jumps.total),
            'backend': engine.backend if engine else 'none',
            'model': str(engine.model_path) if engine else self.describe_model(),
        }
        values.update({f'rejected: {kind}': str(n)
                       for kind, n in sorted(dict(self.reporter.counts).items())})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(array)

    def destroy_node(self):
        logging.getLogger('depth_nodes').removeHandler(self._log_handler)
        self.worker.stop()
        return super().destroy_node()


def input_qos() -> QoSProfile:
    """Sensor-data QoS (best effort, volatile) keeping only the newest sample.

    A frame waiting in the DDS reader queue while the model runs would only add latency, so
    the middleware keeps one, as the node's worker does. A new object per subscription:
    rclpy applies QoS overrides by mutating the profile it is given.
    """
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                      reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def subscription_qos(raw: bool = False):
    """Input QoS, overridable per topic via qos_overrides.<topic>.subscription.<policy>.

    ``raw``: deliver serialized bytes (decode with ros_io.image_from_cdr), for images.
    """
    return dict(qos_profile=input_qos(), raw=raw,
                qos_overriding_options=QoSOverridingOptions.with_default_policies())


def run_node(factory: Callable[[], Node], args=None) -> int:
    """The standard main: spin until shutdown; a model that cannot load exits with code 1.
    Per-frame megabyte buffers are kept in the heap first (runtime/allocator.py)."""
    _, malloc_note = keep_large_buffers()
    try:
        with rclpy.init(args=args):
            try:
                node = factory()
            except ModelLoadError as exc:
                rclpy.logging.get_logger('depth_nodes').fatal(str(exc))
                return 1
            node.get_logger().debug(malloc_note)
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
