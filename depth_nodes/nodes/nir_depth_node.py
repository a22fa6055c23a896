"""nir_depth_node: a near-infrared image in, dense metric depth out (Shen et al.): the CTN
(``model``) turns NIR into pseudo-RGB, an RGB depth model (``depth_model``, e.g. the DPN)
turns that into depth (depth_nodes.runtime.nir_estimator).

Subscribes: nir/image (sensor_msgs/Image mono8 / mono16; or nir/image/compressed with
            image_transport:=compressed), nir/camera_info (optional)
Publishes:  nir/pseudo_rgb (rgb8, the input's header and size; publish_pseudo_rgb),
            depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
The frame path is depth_nodes.frames.NirDepthFramePath.
"""
from __future__ import annotations

from depth_nodes.frames import NirDepthFramePath
from depth_nodes.nodes.depth_node import DepthNodeBase
from depth_nodes.nodes.topics import run_node


class NirDepthNode(DepthNodeBase):

    frame_path = NirDepthFramePath

    def __init__(self, node_name: str = 'nir_depth_node',
                 default_model: str = NirDepthFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)


def main(args=None) -> int:
    return run_node(NirDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
