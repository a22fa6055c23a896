"""nir_depth_node: a near-infrared image in, dense metric depth out (Shen et al.): the CTN
(``model``) turns NIR into pseudo-RGB, an RGB depth model (``depth_model``, e.g. the DPN)
turns that into depth (depth_nodes.runtime.nir_estimator).

Subscribes: nir/image (sensor_msgs/Image mono8 / mono16), nir/camera_info (optional)
Publishes:  nir/pseudo_rgb (rgb8, the input's header and size; publish_pseudo_rgb),
            depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraModelError
from depth_nodes.core.encodings import ImageFormatError, lookup_encoding, to_rgb8
from depth_nodes.core.preprocess import resize_image
from depth_nodes.nodes.depth_node import (OUTPUT_QOS, DepthNodeBase, _descriptor,
                                          engine_options, run_node, subscription_qos)
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.model import open_model
from depth_nodes.runtime.nir_estimator import NirDepthEstimator


class NirDepthNode(DepthNodeBase):

    model_parameters = ('depth_model',)

    def __init__(self, node_name: str = 'nir_depth_node',
                 default_model: str = 'ctn_synthetic', **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        p = self.declare_parameter
        p('publish_pseudo_rgb', False, _descriptor(
            'publish nir/pseudo_rgb: the translated image the depth model sees (rgb8)'))
        p('baseline', 0.0, _descriptor(
            'stereo baseline in metres of the rig the depth model was trained on, for a '
            'disparity model (0: the depth model spec)', float_range=(0.0, 100.0)))
        p('depth_scale', 1.0, _descriptor(
            'factor applied to the metric depth (e.g. measured against a range sensor)',
            float_range=(1e-6, 1e6)))
        self._camera_info: CameraInfo | None = None
        self.pseudo_rgb = self.create_publisher(Image, 'nir/pseudo_rgb', OUTPUT_QOS)
        self.create_input_subscription(Image, 'nir/image', self.submit, raw=True)
        self.create_subscription(CameraInfo, 'nir/camera_info', self._on_camera_info,
                                 **subscription_qos())

    def declare_model_parameters(self) -> None:
        self.declare_parameter('depth_model', 'dpn_synthetic', _descriptor(
            'RGB depth model fed the pseudo-RGB (path or name under models/); empty: model '
            'is itself a NIR depth model and runs alone'))

    def build_estimator(self, model, values):
        depth = None
        if values['depth_model']:
            depth = open_model(values['depth_model'], values['backend'],
                               engine_options(values))
            self.get_logger().info(f'depth model {depth.describe()}')
        try:
            return NirDepthEstimator(model, depth, values['output_resolution'])
        except ValueError as exc:   # a wrong pair of models: exit 1 at start, refused later
            raise ModelLoadError(values['depth_model'] or values['model'], str(exc)) from None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def process(self, raw: bytes):
        msg = ros_io.image_from_cdr(raw)
        if lookup_encoding(msg.encoding).kind != 'mono':
            raise ImageFormatError(f"nir/image has encoding '{msg.encoding}'; expected a "
                                   'single-channel NIR image (mono8 or mono16)', 'encoding')
        image = ros_io.image_to_array(msg)
        info, camera = self._camera_info, None
        if info is not None:
            try:
                camera = ros_io.camera_info_to_intrinsics(info)
            except CameraModelError as exc:
                raise ImageFormatError(f'camera_info unusable: {exc}', 'camera_info') from None
            if (camera.width, camera.height) != (msg.width, msg.height):
                raise ImageFormatError(
                    f'camera_info is {camera.width}x{camera.height} but the image is '
                    f'{msg.width}x{msg.height}', 'camera_info_size')
        result = self.estimator.estimate(
            image, msg.encoding, camera, baseline=self.get_parameter('baseline').value or None,
            depth_range=self.depth_range(), depth_scale=self.get_parameter('depth_scale').value)
        header = ros_io.header_from(msg)
        # The pseudo-RGB colours the points (one stage: the NIR image itself).
        rgb = result.extras.get('pseudo_rgb')
        if rgb is not None and self.get_parameter('publish_pseudo_rgb').value:
            self.pseudo_rgb.publish(ros_io.image_to_cdr(
                resize_image(rgb, msg.height, msg.width), 'rgb8', header))
        if rgb is None and self.get_parameter('publish_points').value and camera is not None:
            rgb = to_rgb8(image, msg.encoding)
        self.publish_result(header, result, info_template=info, rgb=rgb)


def main(args=None) -> int:
    return run_node(NirDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
