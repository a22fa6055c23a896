"""stereo_depth_node: a rectified stereo pair in, the left view's metric depth and disparity
out: OpenCV StereoSGBM (``model`` empty, method:=sgbm) or a disparity network such as Shen et
al.'s DPN on the left image (``model`` set, method:=stereo).

Subscribes: left/image_rect, right/image_rect (sensor_msgs/Image, approximate-time
            synchronised within sync_slop; <topic>/compressed with
            image_transport:=compressed), left/camera_info, right/camera_info (the newest
            of each; the right P[0, 3] = -fx B gives the baseline unless ``baseline`` is set)
Publishes:  depth/image (32FC1 m, the left image's header), depth/camera_info, disparity
            (stereo_msgs/DisparityImage: pixels, Z = f T / d), depth/colored, depth/points,
            /diagnostics
The frame path (synchronisation, checks, estimator) is depth_nodes.frames.StereoFramePath.
"""
from __future__ import annotations

from depth_nodes.frames import StereoFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase
from depth_nodes.nodes.topics import run_node


class StereoDepthNode(DepthNodeBase):

    frame_path = StereoFramePath

    def __init__(self, node_name: str = 'stereo_depth_node',
                 default_model: str = StereoFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)


def main(args=None) -> int:
    return run_node(StereoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
