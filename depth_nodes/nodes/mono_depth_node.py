"""mono_depth_node: one camera image in, dense metric depth out (RGB, gray or NIR models).

Subscribes: image (sensor_msgs/Image; image_transport:=compressed: image/compressed,
            sensor_msgs/CompressedImage), camera_info (optional, sensor_msgs/CameraInfo)
Publishes:  depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
The frame path (estimator, checks, outputs) is depth_nodes.frames.MonoDepthFramePath.
"""
from __future__ import annotations

from depth_nodes.frames import MonoDepthFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase
from depth_nodes.nodes.topics import run_node


class MonoDepthNode(DepthNodeBase):

    frame_path = MonoDepthFramePath

    def __init__(self, node_name: str = 'mono_depth_node',
                 default_model: str = MonoDepthFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)


def main(args=None) -> int:
    return run_node(MonoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
