"""semidense_depth_node: semi-dense (LSD-SLAM) or sparse (SLAM map points, LiDAR) depth in,
dense metric depth out (Makarov et al.'s interpolation network).

Subscribes (parameter ``input``):
  depth:  semidense/depth (sensor_msgs/Image 32FC1 metres, or inverse depth with
          input_is_inverse_depth; 0 / NaN / Inf = unknown; 16UC1 millimetres also accepted;
          semidense/depth/compressedDepth with depth_image_transport:=compressedDepth),
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

from depth_nodes.frames import SemiDenseFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase
from depth_nodes.nodes.topics import run_node


class SemiDenseDepthNode(DepthNodeBase):

    frame_path = SemiDenseFramePath

    def __init__(self, node_name: str = 'semidense_depth_node',
                 default_model: str = SemiDenseFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)


def main(args=None) -> int:
    return run_node(SemiDenseDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
