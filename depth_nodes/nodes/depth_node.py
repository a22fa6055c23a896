"""The depth node: one frame path (depth_nodes.frames) run on ROS topics.

A node file names its frame path; this class declares the path's parameters
(depth_nodes.parameters), loads the model, subscribes the path's inputs and publishes its
outputs. Per frame, in the subscription callback: frames.accept() (decode, synchronise) ->
frames.process() (estimate, encode) -> publish.

One frame in flight, the newest next: a frame is processed in the callback that received it,
and while it is, the keep-last-1 input queue (nodes/topics.py input_qos) keeps only the newest
of the frames arriving, counted as dropped (gaps in the publisher's sequence numbers). A hand-
off to a worker thread would add a thread wake-up and a GIL switch to every frame (measured
side by side: docs/performance.md).

Why not lifecycle (managed) nodes: these nodes have no hardware to arm or release; the model
loads once, in the constructor, and a failure exits non-zero within seconds, which
`ros2 launch` and systemd supervise without a lifecycle manager. Swapping models at run time
is done through the `model` parameter (the old model keeps running if the new one fails).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node

from depth_nodes import ros_io
from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.model_spec import ModelSpecError
from depth_nodes.frames import DepthFramePath, engine_options
from depth_nodes.nodes.diagnostics import DiagnosticsPublisher, FrameStats, RclpyLogHandler
from depth_nodes.nodes.parameters import NodeParameters
from depth_nodes.nodes.topics import Inputs, Outputs
from depth_nodes.parameters import RELOAD
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.model import LoadedModel, open_model

# Best-effort frames above this were lost at times under config/fastdds_large_data.xml
# (2592x1944 rgb8, 15 MB, all arrived; 4000x3000, 36 MB, not all), reliable ones up to
# RELIABLE_FRAME_BYTES all arrived (6000x4000 rgb8); docs/recordings.md.
LARGE_FRAME_BYTES = 16_000_000
RELIABLE_FRAME_BYTES = 72_000_000


class DepthNodeBase(Node):
    """Base of the depth nodes; a subclass sets ``frame_path``."""

    silent_input_s = 5.0   # publishers but no data for this long -> a hint in the log
    frame_path: type[DepthFramePath] = DepthFramePath

    def __init__(self, node_name: str, *, default_model: str | None = None, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        python_log = logging.getLogger('depth_nodes')
        python_log.setLevel(logging.INFO)
        self._log_handler = RclpyLogHandler(self.get_logger())
        python_log.addHandler(self._log_handler)
        table = self.frame_path.all_parameters()
        if default_model is not None:
            table = tuple(replace(p, default=default_model) if p.name == 'model' else p
                          for p in table)
        self.params = NodeParameters(self, table)
        self._reloads = {p.name for p in table if p.applies == RELOAD}
        self.stats = FrameStats(self)
        self.reporter, self.hints, self.time_jumps = \
            self.stats.reporter, self.stats.hints, self.stats.time_jumps
        self.last_model_error = ''
        self._last_input = time.monotonic()
        self._model_lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.frames: DepthFramePath | None = None
        self._load_model(dict(self.params))  # raises ModelLoadError -> exit code 1
        ros_io.prepare_cdr()   # the first frame must not pay for building message types
        self.outputs = Outputs(self, self.frame_path.outputs())
        self.inputs = Inputs(self)
        # Kept inputs (camera_info) are subscribed first: the executor takes ready callbacks
        # in subscription order, so a camera_info that arrives with its image is kept before
        # the image is processed (a frame runs in its callback).
        for name, msgtype in sorted(self.frames.inputs.items(),
                                    key=lambda item: item[0] in self.frames.streams):
            if name in self.frames.streams:
                # image_transport: <resolved topic>/compressed, so remapping the input applies
                suffix = self.frames.topic_suffix(name)
                topic = self.resolve_topic_name(name) + suffix if suffix else name
                self.inputs.stream(msgtype, topic, self.receiver(name),
                                   raw=name in self.frames.raw_inputs)
            else:
                self.inputs.latest(msgtype, name, self.receiver(name))
        self._diagnostics = DiagnosticsPublisher(self, 'depth pipeline', self._status)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def estimator(self):
        return self.frames.estimator

    @property
    def sync(self):
        """The frame path's input synchroniser (None for a single input)."""
        return self.frames.sync

    def depth_range(self) -> tuple[float, float]:
        """[min, max] valid depth in metres: the parameters, or the model's range where 0."""
        return self.frames.depth_range()

    # -- parameters and models ---------------------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        reason = self.params.check(params)
        for p in params:
            try:
                self.frames.check_parameter(p.name, p.value)
            except ValueError as exc:
                reason = reason or str(exc)
        values = self.params.with_changes(params)
        lo, hi = values['min_depth'], values['max_depth']
        if reason is None and {p.name for p in params} & {'min_depth', 'max_depth'} and \
                lo and hi and lo >= hi:
            reason = 'min_depth must be below max_depth'
        if reason is None and any(p.name in self._reloads for p in params):
            try:
                self._load_model(values)
            except (ModelLoadError, ModelSpecError, ValueError) as exc:
                self.last_model_error = str(exc)
                self.get_logger().error(f'{exc}; keeping {self.describe_model()}')
                reason = str(exc)
        return SetParametersResult(successful=reason is None, reason=reason or '')

    def _load_model(self, values: dict[str, Any]) -> None:
        start = time.perf_counter()
        model = None
        if values['model'] or not self.frame_path.model_optional:
            spec = {k[len('spec.'):]: v for k, v in values.items()
                    if k.startswith('spec.') and v is not None}
            model = open_model(values['model'], values['backend'],
                               engine_options(values, self.frame_path.engine_spin_wait), spec)
        estimator = self.frame_path.build_estimator(model, values)
        with self._model_lock:
            if self.frames is None:   # the first model: its frame path (inputs may depend on it)
                self.frames = self.frame_path(estimator, self.params, self._report_dropped)
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

    def describe_model(self) -> str:
        """The loaded model, or the estimator's own description when there is none."""
        if self.model is not None:
            return self.model.describe()
        return getattr(self.estimator, 'description', type(self.estimator).__name__)

    # -- frames ------------------------------------------------------------------------------
    def receiver(self, name: str) -> Callable[[Any], None]:
        """The subscription callback of frame path input ``name``: accept() it and process
        a complete job."""
        def receive(message) -> None:
            received = time.perf_counter()
            try:
                job = self.frames.accept(name, message)
            except ImageFormatError as exc:
                self.reporter.report(exc.kind, f'dropped input: {exc}')
                return
            if job is not None:
                self.submit(job, received)
        return receive

    def _report_dropped(self, kind: str, message: str, count: int) -> None:
        """The frame path's dropped-input sink: one throttled warning and one count per
        report, like a rejected frame (process_bag counts the messages instead)."""
        self.reporter.report(kind, message)

    def submit(self, job, received: float) -> None:
        """Process a complete job (``received``: perf_counter() at its arrival)."""
        self._last_input = time.monotonic()
        self.stats.input_rate.tick()
        self.stats.run_frame(lambda: self._run_frame(job, received))

    def _run_frame(self, job, received: float) -> None:
        out = self.frames.process(job, self.outputs.wants)
        for kind, text in out.hints:
            self.hints.report(kind, text)
        # Stamps going back are reported and counted; the frame itself is good.
        self.stats.stamp_went_back(out.header.stamp)
        self.stats.inference_latency.add(out.inference_s)
        self.outputs.publish(out.messages)
        self.stats.output_rate.tick()
        self.stats.pipeline_latency.add(time.perf_counter() - received)

    # -- diagnostics -------------------------------------------------------------------------
    def _check_silent_inputs(self) -> None:
        """Warn when an input topic has publishers but no message arrived for a while.

        The usual cause is best-effort delivery of camera-size images over Fast DDS with its
        default 512 KB shared-memory segment (see config/fastdds_large_data.xml).
        """
        if time.monotonic() - self._last_input < self.silent_input_s:
            return
        for sub in self.inputs.streams:
            publishers = self.count_publishers(sub.topic_name)
            if publishers:
                self.hints.report(
                    sub.topic_name,
                    f'{sub.topic_name} has {publishers} publisher(s) but nothing arrived for '
                    f'{self.silent_input_s:.0f} s. If it is sending,'
                    ' best-effort images over Fast DDS need FASTDDS_DEFAULT_PROFILES_FILE='
                    '<share>/depth_nodes/config/fastdds_large_data.xml for the publisher too, or'
                    f' set qos_overrides.{sub.topic_name}.subscription.reliability:=reliable'
                    + self._frame_size_note())

    def _frame_size_note(self) -> str:
        """The frame size a received camera_info announces, when above what the shipped
        Fast DDS profile was measured to deliver best-effort (docs/recordings.md)."""
        info = next((i for i in self.frames.latest.values() if i is not None), None)
        if info is None or info.width * info.height * 3 <= LARGE_FRAME_BYTES:
            return ''
        megabytes = info.width * info.height * 3 / 1e6
        return (f'. camera_info says {info.width}x{info.height}: {megabytes:.0f} MB per rgb8 '
                f'frame; best-effort frames above {LARGE_FRAME_BYTES / 1e6:.0f} MB are lost '
                f'at times: make the input reliable (up to {RELIABLE_FRAME_BYTES / 1e6:.0f} MB '
                'with the shipped profile; beyond, <segment_size> 134217728 in the '
                "publisher's profile) or use image_transport:=compressed")

    def _status(self):
        self._check_silent_inputs()
        inf50, inf95 = self.stats.inference_latency.percentiles(50, 95)
        in_rate = self.stats.input_rate.rate()
        engine = self.model.engine if self.model is not None else None
        if self.last_model_error:
            level, message = DiagnosticStatus.WARN, self.last_model_error
        elif in_rate == 0.0:
            level, message = DiagnosticStatus.WARN, 'no input'
        else:
            level, message = DiagnosticStatus.OK, 'running'
        values = {
            'input rate (Hz)': f'{in_rate:.2f}',
            'inference p50 (ms)': f'{inf50 * 1e3:.2f}',
            'inference p95 (ms)': f'{inf95 * 1e3:.2f}',
            # Both are the inputs the queue replaced while a frame was processed.
            'frames dropped (busy)': str(self.inputs.lost),
            'inputs lost before the node (queue full)': str(self.inputs.lost),
            'backend': engine.backend if engine else 'none',
            'model': str(engine.model_path) if engine else self.describe_model(),
            **self.stats.values(),
            **self.frames.diagnostics(),
        }
        return level, message, engine.describe() if engine else 'cpu', values

    def destroy_node(self):
        logging.getLogger('depth_nodes').removeHandler(self._log_handler)
        return super().destroy_node()
