"""nir_depth_node: a near-infrared image in, dense metric depth out (Shen et al.): the CTN
(``model``) turns NIR into pseudo-RGB, an RGB depth model (``depth_model``, e.g. the DPN)
turns that into depth (depth_nodes.runtime.nir_estimator).

Subscribes: nir/image (sensor_msgs/Image mono8 / mono16), nir/camera_info (optional)
Publishes:  nir/pseudo_rgb (rgb8, the input's header and size; publish_pseudo_rgb),
            depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
The frame path is depth_nodes.frames.NirDepthFramePath.
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image

from depth_nodes.frames import NirDepthFramePath
from depth_nodes.nodes.depth_node import (OUTPUT_QOS, DepthNodeBase, _descriptor, run_node,
                                          subscription_qos)


class NirDepthNode(DepthNodeBase):

    frame_path = NirDepthFramePath

    def __init__(self, node_name: str = 'nir_depth_node',
                 default_model: str = NirDepthFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        self.outputs.add('nir/pseudo_rgb', self.create_publisher(Image, 'nir/pseudo_rgb',
                                                                 OUTPUT_QOS))
        self.create_input_subscription(Image, 'nir/image', self.receiver('nir/image'),
                                       raw=True)
        self.create_subscription(CameraInfo, 'nir/camera_info',
                                 self.receiver('nir/camera_info'), **subscription_qos())

    def declare_frame_parameters(self, p) -> None:
        p('depth_model', _descriptor(
            'RGB depth model fed the pseudo-RGB (path or name under models/); empty: model '
            'is itself a NIR depth model and runs alone'))
        p('publish_pseudo_rgb', _descriptor(
            'publish nir/pseudo_rgb: the translated image the depth model sees (rgb8)'))
        p('baseline', _descriptor(
            'stereo baseline in metres of the rig the depth model was trained on, for a '
            'disparity model (0: the depth model spec)', float_range=(0.0, 100.0)))
        p('depth_scale', _descriptor(
            'factor applied to the metric depth (e.g. measured against a range sensor)',
            float_range=(1e-6, 1e6)))


def main(args=None) -> int:
    return run_node(NirDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
