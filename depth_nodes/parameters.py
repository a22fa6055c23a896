"""Node parameters, each defined once: name, default, description, range and when a change
takes effect. The nodes declare them from these tables (depth_nodes.nodes.parameters builds
the ROS descriptors); process_bag starts from the same defaults.

No rclpy here: the tables are read by process_bag and the tests without a ROS graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from depth_nodes.core.model_spec import field_names
from depth_nodes.runtime.engine import BACKENDS, PRECISIONS
from depth_nodes.runtime.estimator import OUTPUT_RESOLUTIONS, POST_PROCESSES

# When a change applies.
NEXT_FRAME = 'next frame'
RELOAD = 'reload'            # the model and estimator are rebuilt (the old keep running on error)
START_ONLY = 'start only'    # read-only after start


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    applies: str = NEXT_FRAME
    dynamic_typing: bool = False     # any type (spec.* overrides; None until set)

    def check(self, value: Any) -> None:
        """ValueError naming the parameter when ``value`` is not one it takes."""
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, "
                             f'got {value!r}')
        for bounds in (self.float_range, self.int_range):
            if bounds and not bounds[0] <= value <= bounds[1]:
                raise ValueError(f'{self.name} must be in [{bounds[0]}, {bounds[1]}], '
                                 f'got {value!r}')


def defaults(parameters: Iterable[Parameter]) -> dict[str, Any]:
    """name -> default (lists copied: a caller may change its dict); spec.* overrides,
    unset by default, are left out."""
    return {p.name: list(p.default) if isinstance(p.default, (list, tuple)) else p.default
            for p in parameters if p.default is not None}


def by_name(parameters: Iterable[Parameter]) -> dict[str, Parameter]:
    return {p.name: p for p in parameters}


# Every depth node has these ('model' default: per frame path).
DEPTH_PARAMETERS = (
    Parameter('model', '', 'ONNX model: a path, or a file name under the package models/ '
              'directory', applies=RELOAD),
    Parameter('backend', 'auto', 'inference backend; auto = TensorRT when available with a '
              'CUDA device, else ONNX Runtime', choices=BACKENDS, applies=RELOAD),
    Parameter('precision', 'fp32', 'TensorRT engine precision', choices=PRECISIONS,
              applies=RELOAD),
    Parameter('engine_cache_dir', '', 'TensorRT engine cache directory (empty: '
              '$ROS_HOME/depth_nodes/engines)', applies=RELOAD),
    Parameter('force_engine_update', False, 'rebuild the TensorRT engine even when the cache '
              'holds a matching one'),
    Parameter('publish_colored', False, 'publish depth/colored (rgb8, turbo) for RViz'),
    Parameter('publish_points', False, 'publish depth/points (PointCloud2 XYZRGB; needs '
              'camera_info)'),
    Parameter('points_stride', 2, 'keep every n-th row and column in depth/points',
              int_range=(1, 16)),
    Parameter('min_depth', 0.0, 'nearest valid depth in metres (0: the model range)',
              float_range=(0.0, 1000.0)),
    Parameter('max_depth', 0.0, 'farthest valid depth in metres (0: the model range)',
              float_range=(0.0, 1000.0)),
    Parameter('output_resolution', 'input', 'depth image size: that of the input image, or '
              'the network output', choices=OUTPUT_RESOLUTIONS, applies=RELOAD),
    *(Parameter(f'spec.{name}', None, f'override the model spec field {name}',
                applies=RELOAD, dynamic_typing=True) for name in field_names()),
)


def post_process_parameter(description: str) -> Parameter:
    return Parameter('post_process', 'none', description, choices=POST_PROCESSES,
                     applies=RELOAD)


# image_transport's convention: the 'compressed' transport of topic T is T/compressed and
# 'compressedDepth' is T/compressedDepth, both sensor_msgs/CompressedImage; the parameter
# names are image_transport's TransportHints ('image_transport') and depth_image_proc's
# ('depth_image_transport').
IMAGE_TRANSPORTS = ('raw', 'compressed')
DEPTH_IMAGE_TRANSPORTS = ('raw', 'compressedDepth')


def image_transport_parameter(inputs: str) -> Parameter:
    return Parameter('image_transport', 'raw', f"how {inputs} arrive: 'raw' (sensor_msgs/Image "
                     "on the topic) or 'compressed' (sensor_msgs/CompressedImage, jpeg or png, "
                     'on <topic>/compressed)', choices=IMAGE_TRANSPORTS, applies=START_ONLY)


def depth_image_transport_parameter(inputs: str) -> Parameter:
    return Parameter('depth_image_transport', 'raw', f"how {inputs} arrives: 'raw' "
                     "(sensor_msgs/Image on the topic) or 'compressedDepth' "
                     '(sensor_msgs/CompressedImage, png, on <topic>/compressedDepth)',
                     choices=DEPTH_IMAGE_TRANSPORTS, applies=START_ONLY)


def sync_slop_parameter(default: float, description: str,
                        applies: str = NEXT_FRAME) -> Parameter:
    return Parameter('sync_slop', default, description, float_range=(0.0, 10.0),
                     applies=applies)


IDENTITY_POSE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]     # tx ty tz qx qy qz qw


def points_to_camera_parameter(topic: str) -> Parameter:
    """The static pose that projects a point cloud input into the camera (no tf2 lookup)."""
    return Parameter('points_to_camera', IDENTITY_POSE, f'pose of the {topic} cloud frame in '
                     'the camera optical frame: tx ty tz qx qy qz qw (identity: the points '
                     'are in the camera optical frame)')
