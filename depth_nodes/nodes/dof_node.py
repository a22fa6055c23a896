"""dof_node: synthetic shallow depth of field from a camera image and its metric depth.

Subscribes: image (sensor_msgs/Image; with image_transport:=compressed, image/compressed as
            sensor_msgs/CompressedImage), depth/image (32FC1 metres or 16UC1 mm, REP 118),
            approximate-time synchronised on their header stamps
Publishes:  dof/image (the input image's encoding and header), /diagnostics
The rendering (depth_nodes.core.bokeh) runs in the subscription callback that completes a
pair, one pair in flight (keep-last-1 inputs, as in the depth nodes).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import ParameterType, SetParametersResult
from rclpy.node import Node

from depth_nodes import ros_io
from depth_nodes.core.bokeh import (UNKNOWN_DEPTH_POLICIES, BokehError, ThinLens,
                                    focus_distance_at, render_depth_of_field)
from depth_nodes.core.encodings import ImageFormatError, depth_to_metres, lookup_encoding
from depth_nodes.core.sync import ApproximateTimeSync
from depth_nodes.nodes.diagnostics import DiagnosticsPublisher, FrameStats
from depth_nodes.nodes.parameters import NodeParameters
from depth_nodes.nodes.topics import Inputs, Outputs, run_node
from depth_nodes.parameters import (START_ONLY, Parameter, image_transport_parameter,
                                    sync_slop_parameter)

LENS_PARAMETERS = ('focal_length_mm', 'f_number', 'sensor_width_mm')
DOF_PARAMETERS = (
    Parameter('focus_distance', 2.0, 'focus distance in metres (unless focus_point)',
              float_range=(0.01, 1e4)),
    Parameter('focus_point', [-1.0, -1.0], 'autofocus on the depth at image pixel [x, y]; '
              'negative: use focus_distance', dynamic_typing=True),
    Parameter('f_number', 1.8, 'simulated aperture, f-number N', float_range=(0.5, 64.0)),
    Parameter('focal_length_mm', 50.0, 'simulated focal length in mm',
              float_range=(1.0, 2000.0)),
    Parameter('sensor_width_mm', 36.0, 'simulated sensor width in mm (36: full frame)',
              float_range=(1.0, 100.0)),
    Parameter('max_blur_radius', 32.0, 'largest blur radius in pixels',
              float_range=(0.0, 256.0)),
    Parameter('unknown_depth', 'sharp', 'pixels without depth: kept sharp, or blurred as '
              'infinitely far', choices=UNKNOWN_DEPTH_POLICIES),
    sync_slop_parameter(0.05, 'largest stamp difference (s) of a matched image and depth '
                        'pair'),
    Parameter('sync_queue_size', 10, 'messages per input kept for matching',
              int_range=(1, 1000), applies=START_ONLY),
    image_transport_parameter('camera images'),
)


@dataclass(frozen=True)
class DofSettings:
    lens: ThinLens
    focus_distance: float
    focus_point: tuple[float, float] | None
    max_radius: float
    unknown_depth: str


class DofNode(Node):

    def __init__(self, node_name: str = 'dof_node', **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.params = NodeParameters(self, DOF_PARAMETERS)
        self.settings = self._settings({})
        self.sync = ApproximateTimeSync(2, self.params['sync_slop'],
                                        self.params['sync_queue_size'])
        self.stats = FrameStats(self)
        self.reporter, self.hints, self.time_jumps = \
            self.stats.reporter, self.stats.hints, self.stats.time_jumps
        self.autofocus_distance: float | None = None
        self.outputs = Outputs(self, {'dof/image': ros_io.IMAGE_TYPE})
        self.inputs = Inputs(self)
        # image_transport: <resolved topic>/compressed, so remapping 'image' still applies.
        self.compressed = self.params['image_transport'] == 'compressed'
        image = (self.resolve_topic_name('image') + '/compressed', ros_io.COMPRESSED_IMAGE_TYPE) \
            if self.compressed else ('image', ros_io.IMAGE_TYPE)
        for index, (topic, msgtype) in enumerate((image, ('depth/image', ros_io.IMAGE_TYPE))):
            self.inputs.stream(msgtype, topic, self._receiver(index))
        self._diagnostics = DiagnosticsPublisher(self, 'depth of field', self._status)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- parameters -------------------------------------------------------------------
    def _settings(self, changed: dict) -> DofSettings:
        """Settings from the current parameters with ``changed`` applied; BokehError or
        ValueError name the bad value."""
        value = {name: changed.get(name, self.params[name]) for name in (
            'focus_distance', 'focus_point', 'max_blur_radius', 'unknown_depth',
            *LENS_PARAMETERS)}
        lens = ThinLens(**{k: float(value[k]) for k in LENS_PARAMETERS})
        lens.check_focus(float(value['focus_distance']))
        point = [float(v) for v in value['focus_point']]
        if len(point) != 2:
            raise ValueError(f'focus_point must be [x, y], got {value["focus_point"]}')
        self.params.table['unknown_depth'].check(value['unknown_depth'])
        return DofSettings(lens, float(value['focus_distance']),
                           tuple(point) if min(point) >= 0 else None,
                           float(value['max_blur_radius']), value['unknown_depth'])

    def _on_set_parameters(self, params) -> SetParametersResult:
        changed = {p.name: p.value for p in params}
        arrays = (ParameterType.PARAMETER_DOUBLE_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY)
        if any(p.name == 'focus_point' and p.type_ not in arrays for p in params):
            return SetParametersResult(successful=False, reason='focus_point must be [x, y]')
        try:
            settings = self._settings(changed)
        except (BokehError, ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.settings = settings
        if settings.focus_point is None:
            self.autofocus_distance = None
        if 'sync_slop' in changed:
            self.sync.slop_s = float(changed['sync_slop'])
        return SetParametersResult(successful=True)

    # -- frames ---------------------------------------------------------------------------
    def _receiver(self, index: int):
        def receive(raw: bytes) -> None:
            received = time.perf_counter()
            try:
                # A CompressedImage's pixels are decoded in _render, for matched pairs only.
                msg = ros_io.compressed_image_from_cdr(raw) if index == 0 and self.compressed \
                    else ros_io.image_from_cdr(raw)
            except ImageFormatError as exc:
                self.reporter.report(exc.kind, f'dropped input: {exc}')
                return
            self.stats.input_rate.tick()
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            resets = self.sync.stats.resets
            pair = self.sync.add(index, stamp, msg)
            if self.sync.stats.resets != resets:
                self.time_jumps.report('time_backwards', 'input time went back (bag loop, '
                                       'driver restart?): synchroniser reset')
            if pair is not None:
                self.stats.run_frame(lambda: self._render(received, *pair))
        return receive

    def _render(self, received: float, image_msg, depth_msg) -> None:
        if self.compressed:
            image_msg = ros_io.decompress_image(image_msg)
        out = self.render(image_msg, depth_msg, self.settings)
        self.outputs.publish([('dof/image', ros_io.image_to_cdr(
            out, image_msg.encoding, ros_io.header_from(image_msg)))])
        self.stats.output_rate.tick()
        self.stats.pipeline_latency.add(time.perf_counter() - received)

    def render(self, image_msg, depth_msg, settings: DofSettings):
        """The blurred image of one matched pair (ImageFormatError for unusable input)."""
        if lookup_encoding(image_msg.encoding).kind == 'depth':
            raise ImageFormatError(f"image has the depth encoding '{image_msg.encoding}'; "
                                   'dof_node blurs camera images', 'image_encoding')
        image = ros_io.image_to_array(image_msg)
        depth = ros_io.image_to_array(depth_msg)
        # 32FC1 as is: +inf (beyond range) is infinitely far, NaN / -inf / 0 unknown.
        if depth_msg.encoding != '32FC1':
            depth = depth_to_metres(depth, depth_msg.encoding)
        if depth_msg.header.frame_id != image_msg.header.frame_id:
            self.hints.report('frame_id', f"depth frame '{depth_msg.header.frame_id}' is "
                              f"not the image's '{image_msg.header.frame_id}'; assuming "
                              'registered images')
        focus = settings.focus_distance
        if settings.focus_point is not None:
            x, y = settings.focus_point
            found = focus_distance_at(depth, x, y, (image.shape[1], image.shape[0]))
            if found is None or found * 1e3 <= settings.lens.focal_length_mm:
                self.hints.report('focus_point', f'no depth at focus_point ({x:.0f}, '
                                  f'{y:.0f}); keeping the last focus distance')
            else:
                self.autofocus_distance = found
            focus = self.autofocus_distance or focus
        return render_depth_of_field(image, depth, focus, settings.lens,
                                     max_radius=settings.max_radius,
                                     unknown_depth=settings.unknown_depth)

    def _status(self):
        rate = self.stats.output_rate.rate()
        stats = self.sync.stats
        focus = self.autofocus_distance or self.settings.focus_distance
        values = {**self.stats.values(), 'pairs matched': str(stats.matched),
                  'inputs unmatched': str(stats.unmatched),
                  'frames dropped (busy)': str(self.inputs.lost),
                  'inputs lost before the node (queue full)': str(self.inputs.lost),
                  'focus distance (m)': f'{focus:.3f}'}
        if rate:
            return DiagnosticStatus.OK, 'running', '', values
        return DiagnosticStatus.WARN, 'no matched image + depth', '', values


def main(args=None) -> int:
    return run_node(DofNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
