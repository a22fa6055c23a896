"""stereo_depth_node: a rectified stereo pair in, the left view's metric depth and disparity
out: OpenCV StereoSGBM (``model`` empty, method:=sgbm) or a disparity network such as Shen et
al.'s DPN on the left image (``model`` set, method:=stereo).

Subscribes: left/image_rect, right/image_rect (sensor_msgs/Image, approximate-time
            synchronised within sync_slop), left/camera_info, right/camera_info (the newest
            of each; the right P[0, 3] = -fx B gives the baseline unless ``baseline`` is set)
Publishes:  depth/image (32FC1 m, the left image's header), depth/camera_info, disparity
            (stereo_msgs/DisparityImage: pixels, Z = f T / d), depth/colored, depth/points,
            /diagnostics
The frame path (synchronisation, checks, estimator) is depth_nodes.frames.StereoFramePath.
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image
from stereo_msgs.msg import DisparityImage

from depth_nodes.frames import SGBM_PARAMETERS, StereoFramePath
from depth_nodes.nodes.depth_node import (OUTPUT_QOS, DepthNodeBase, _descriptor, run_node,
                                          subscription_qos)
from depth_nodes.runtime.estimator import POST_PROCESSES


class StereoDepthNode(DepthNodeBase):

    frame_path = StereoFramePath

    def __init__(self, node_name: str = 'stereo_depth_node',
                 default_model: str = StereoFramePath.default_model, **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        self.outputs.add('disparity', self.create_publisher(DisparityImage, 'disparity',
                                                            OUTPUT_QOS))
        for topic in ('left/image_rect', 'right/image_rect'):
            self.create_input_subscription(Image, topic, self.receiver(topic), raw=True)
        for topic in ('left/camera_info', 'right/camera_info'):
            self.create_subscription(CameraInfo, topic, self.receiver(topic),
                                     **subscription_qos())

    def declare_frame_parameters(self, p) -> None:
        p('post_process', _descriptor(
            "model only: 'pp' also runs the mirrored left image (Godard et al.)",
            choices=POST_PROCESSES))
        for name in SGBM_PARAMETERS:
            p(name, _descriptor(
                f'StereoSGBM {name[5:]} (without a model; see depth_nodes.core.stereo)'))
        p('sync_slop', _descriptor('largest stamp difference (s) of a left/right pair',
                                   float_range=(0.0, 10.0)))
        p('baseline', _descriptor('stereo baseline in metres (0: from the right camera_info, '
                                  'P[0,3] = -fx B)', float_range=(0.0, 100.0)))


def main(args=None) -> int:
    return run_node(StereoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
