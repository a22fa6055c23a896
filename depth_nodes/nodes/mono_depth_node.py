"""mono_depth_node: one camera image in, dense metric depth out (RGB, gray or NIR models).

Subscribes: image (sensor_msgs/Image), camera_info (optional, sensor_msgs/CameraInfo)
Publishes:  depth/image (32FC1 m), depth/camera_info, depth/colored, depth/points, /diagnostics
"""
from __future__ import annotations

from sensor_msgs.msg import CameraInfo, Image

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraModelError
from depth_nodes.core.encodings import ImageFormatError, to_rgb8
from depth_nodes.nodes.depth_node import DepthNodeBase, _descriptor, run_node, subscription_qos
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.estimator import POST_PROCESSES, MonoDepthEstimator


class MonoDepthNode(DepthNodeBase):

    model_parameters = ('post_process',)

    def __init__(self, node_name: str = 'mono_depth_node',
                 default_model: str = 'eigen_synthetic', **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        self._camera_info: CameraInfo | None = None
        self.create_input_subscription(Image, 'image', self.submit, raw=True)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                 **subscription_qos())

    def declare_model_parameters(self) -> None:
        self.declare_parameter('post_process', 'none', _descriptor(
            "'pp': also run the mirrored image and combine both (Godard et al.; disparity "
            'models such as the DPN; twice the inference time)', choices=POST_PROCESSES))

    def build_estimator(self, model, values):
        self._post_process = values['post_process']
        try:
            return super().build_estimator(model, values)
        except ValueError as exc:    # e.g. pp on a model that outputs no disparity
            raise ModelLoadError(values['model'], str(exc)) from None

    def make_estimator(self, model, output_resolution):
        return MonoDepthEstimator(model, output_resolution, self._post_process)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def process(self, raw: bytes):
        msg = ros_io.image_from_cdr(raw)
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
        result = self.estimator.estimate(image, msg.encoding, camera,
                                         depth_range=self.depth_range())
        want_rgb = self.get_parameter('publish_points').value and camera is not None
        self.publish_result(ros_io.header_from(msg), result, info_template=info,
                            rgb=to_rgb8(image, msg.encoding) if want_rgb else None)


def main(args=None) -> int:
    return run_node(MonoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
