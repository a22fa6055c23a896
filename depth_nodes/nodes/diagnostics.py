"""What a frame-processing node counts and reports: throttled warnings per kind of bad input,
rates and latencies, input time going backwards, and its /diagnostics status once a second."""
from __future__ import annotations

import logging
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from depth_nodes.core.encodings import ImageFormatError
from depth_nodes.core.pipeline import LatencyWindow, RateMeter, ThrottledReporter

WARN_PERIOD_S = 5.0
HINT_PERIOD_S = 30.0


class FrameStats:
    """Counters and throttled logs of a node's frames (shared by the depth and dof nodes).

    reporter: rejected input per kind (warned per 5 s, counted in diagnostics); errors: frames
    that failed; hints: advice (per 30 s); time_jumps: input stamps going backwards."""

    def __init__(self, node: Node):
        log = node.get_logger()
        self.reporter = ThrottledReporter(log.warning, WARN_PERIOD_S)
        self.errors = ThrottledReporter(log.error, WARN_PERIOD_S)
        self.hints = ThrottledReporter(log.warning, HINT_PERIOD_S)
        self.time_jumps = ThrottledReporter(log.warning, WARN_PERIOD_S)
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.inference_latency = LatencyWindow()
        self.pipeline_latency = LatencyWindow()
        self._last_stamp_ns: int | None = None

    def stamp_went_back(self, stamp) -> bool:
        """Record an input stamp (builtin_interfaces/Time); True, reported per 5 s and
        counted, when it is older than the last one (bag loop, driver restart, sim reset)."""
        ns = stamp.sec * 10**9 + stamp.nanosec
        last, self._last_stamp_ns = self._last_stamp_ns, ns
        if last is None or ns >= last:
            return False
        self.time_jumps.report('time_backwards', f'input time went back by '
                               f'{(last - ns) * 1e-9:.3f} s (bag loop or driver restart?): '
                               'state reset')
        return True

    def run_frame(self, work: Callable[[], None]) -> None:
        """Run one frame's work where it arrived (the subscription callback): bad input
        (ImageFormatError) is reported and dropped, any other failure is logged and counted,
        and the node keeps running."""
        try:
            work()
        except ImageFormatError as exc:
            self.reporter.report(exc.kind, f'dropped input: {exc}')
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
            self.errors.report(type(exc).__name__, f'failed to process a frame: '
                                                   f'{type(exc).__name__}: {exc}')

    def values(self) -> dict[str, str]:
        """The keys every node reports, plus one per kind of rejected input."""
        e2e50, e2e95 = self.pipeline_latency.percentiles(50, 95)
        values = {'output rate (Hz)': f'{self.output_rate.rate():.2f}',
                  'end-to-end p50 (ms)': f'{e2e50 * 1e3:.2f}',
                  'end-to-end p95 (ms)': f'{e2e95 * 1e3:.2f}',
                  'frames rejected (bad input)': str(self.reporter.total),
                  'time jumps back (state reset)': str(self.time_jumps.total)}
        values.update({f'rejected: {kind}': str(n)
                       for kind, n in sorted(dict(self.reporter.counts).items())})
        return values


class DiagnosticsPublisher:
    """/diagnostics once a second on the steady clock (it keeps coming while a replayed bag's
    /clock pauses or jumps); ``status()`` gives (level, message, hardware_id, values)."""

    def __init__(self, node: Node, name: str,
                 status: Callable[[], tuple[int, str, str, dict[str, str]]]):
        self._node, self._name, self._status = node, name, status
        self._publisher = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        node.create_timer(1.0, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def publish(self) -> None:
        level, message, hardware_id, values = self._status()
        status = DiagnosticStatus(name=f'{self._node.get_name()}: {self._name}', level=level,
                                  message=message, hardware_id=hardware_id)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)


class RclpyLogHandler(logging.Handler):
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
