"""mono_depth_node: one camera image in, dense metric depth out (RGB, gray or NIR models).

Subscribes: image (sensor_msgs/Image), camera_info (optional, sensor_msgs/CameraInfo)
Publishes:  depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
The frame path (estimator, checks, outputs) is depth_nodes.frames.MonoDepthFramePath.
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image

from depth_nodes.frames import MonoDepthFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase, _descriptor, run_node, subscription_qos
from depth_nodes.runtime.estimator import POST_PROCESSES


class MonoDepthNode(DepthNodeBase):

    frame_path = MonoDepthFramePath

    def __init__(self, node_name: str = 'mono_depth_node',
                 default_model: str = MonoDepthFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        self.create_input_subscription(Image, 'image', self.receiver('image'), raw=True)
        self.create_subscription(CameraInfo, 'camera_info', self.receiver('camera_info'),
                                 **subscription_qos())

    def declare_frame_parameters(self, p) -> None:
        p('post_process', _descriptor(
            "'pp': also run the mirrored image and combine both (Godard et al.; disparity "
            'models such as the DPN; twice the inference time)', choices=POST_PROCESSES))


def main(args=None) -> int:
    return run_node(MonoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
