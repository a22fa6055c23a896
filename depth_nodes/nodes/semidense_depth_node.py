"""semidense_depth_node: semi-dense (LSD-SLAM) or sparse (SLAM map points, LiDAR) depth in,
dense metric depth out (Makarov et al.'s interpolation network).

Subscribes (parameter ``input``):
  depth:  semidense/depth (sensor_msgs/Image 32FC1 metres, or inverse depth with
          input_is_inverse_depth; 0 / NaN / Inf = unknown; 16UC1 millimetres also accepted),
          semidense/variance (32FC1, with use_variance; filtered by max_variance),
          camera_info (optional: depth/camera_info and points)
  points: semidense/points (sensor_msgs/PointCloud2 with x, y, z) + camera_info (required),
          projected into the camera (points_to_camera: the cloud frame's pose in the camera
          optical frame; identity = the points are already in it)
  image:  the intensity image, synchronised by approximate time, when the model takes it
Publishes: depth/image (32FC1 m, dense), depth/camera_info, depth/colored, depth/points,
           /diagnostics
The frame path (synchronisation, checks, estimator) is depth_nodes.frames.SemiDenseFramePath.
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depth_nodes.frames import SEMIDENSE_INPUTS, SemiDenseFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase, _descriptor, run_node, subscription_qos


class SemiDenseDepthNode(DepthNodeBase):

    frame_path = SemiDenseFramePath

    def __init__(self, node_name: str = 'semidense_depth_node',
                 default_model: str = SemiDenseFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        self.create_subscription(CameraInfo, 'camera_info', self.receiver('camera_info'),
                                 **subscription_qos())
        # The streams the parameters and the model ask for: the semi-dense depth or points,
        # then semidense/variance and image where used.
        for topic in self.frames.streams:
            self.create_input_subscription(
                PointCloud2 if topic == 'semidense/points' else Image, topic,
                self.receiver(topic), raw=topic in self.frames.raw_inputs)

    def declare_frame_parameters(self, p) -> None:
        p('input', _descriptor('semi-dense input: a depth image or a point cloud',
                               choices=SEMIDENSE_INPUTS, read_only=True))
        p('input_is_inverse_depth', _descriptor(
            'semidense/depth holds inverse depth (1/m, LSD-SLAM) instead of metres'))
        p('use_variance', _descriptor(
            'also subscribe semidense/variance (synchronised) for the max_variance filter',
            read_only=True))
        p('max_variance', _descriptor('drop pixels whose variance exceeds this (0: keep all)',
                                      float_range=(0.0, 1e6)))
        p('keep_input_depth', _descriptor(
            'publish known input depths unchanged, the network fills the rest'))
        p('points_to_camera', _descriptor(
            'pose of the point cloud frame in the camera optical frame: tx ty tz qx qy qz qw'))
        p('sync_slop', _descriptor('largest stamp difference (s) of synchronised inputs',
                                   float_range=(0.0, 10.0), read_only=True))


def main(args=None) -> int:
    return run_node(SemiDenseDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
