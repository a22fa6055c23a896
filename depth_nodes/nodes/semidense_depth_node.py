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
"""
from __future__ import annotations

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraModelError
from depth_nodes.core.encodings import ImageFormatError, depth_to_metres, to_rgb8
from depth_nodes.core.semidense import (depth_from_semidense_image, intensity_from_image,
                                        points_to_sparse_depth, transform_points)
from depth_nodes.core.sync import ApproximateTimeSync
from depth_nodes.nodes.depth_node import (DepthNodeBase, _descriptor, run_node,
                                          subscription_qos)
from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator

INPUTS = ('depth', 'points')
IDENTITY = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


class Rejected:
    """An input that failed before synchronisation; process() reports it like any other."""

    def __init__(self, error: ImageFormatError):
        self.error = error


class SemiDenseDepthNode(DepthNodeBase):

    def __init__(self, node_name: str = 'semidense_depth_node',
                 default_model: str = 'semidense_synthetic', **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        p = self.declare_parameter
        self.input = p('input', 'depth', _descriptor(
            'semi-dense input: a depth image or a point cloud', choices=INPUTS,
            read_only=True)).value
        if self.input not in INPUTS:
            raise ValueError(f"parameter input must be one of {INPUTS}, got '{self.input}'")
        p('input_is_inverse_depth', False, _descriptor(
            'semidense/depth holds inverse depth (1/m, LSD-SLAM) instead of metres'))
        use_variance = p('use_variance', False, _descriptor(
            'also subscribe semidense/variance (synchronised) for the max_variance filter',
            read_only=True)).value
        p('max_variance', 0.0, _descriptor(
            'drop pixels whose variance exceeds this (0: keep all)', float_range=(0.0, 1e6)))
        p('keep_input_depth', True, _descriptor(
            'publish known input depths unchanged, the network fills the rest'))
        extrinsic = p('points_to_camera', IDENTITY, _descriptor(
            'pose of the point cloud frame in the camera optical frame: tx ty tz qx qy qz qw'
        )).value
        transform_points(np.zeros((1, 3)), tuple(extrinsic))   # a bad value fails at start
        slop = p('sync_slop', 0.02, _descriptor(
            'largest stamp difference (s) of synchronised inputs', float_range=(0.0, 10.0),
            read_only=True)).value
        self._needs_intensity = self.estimator.needs_intensity
        self._camera_info: CameraInfo | None = None
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                 **subscription_qos())
        streams = [('semidense/points', PointCloud2, False) if self.input == 'points'
                   else ('semidense/depth', Image, True)]
        if self.input == 'depth' and use_variance:
            streams.append(('semidense/variance', Image, True))
        if self._needs_intensity:
            streams.append(('image', Image, True))
        self.stream_names = tuple(topic for topic, _, _ in streams)
        self._variance_index = self.stream_names.index('semidense/variance') \
            if 'semidense/variance' in self.stream_names else None
        self._image_index = self.stream_names.index('image') if self._needs_intensity else None
        self.sync = ApproximateTimeSync(len(streams), slop) if len(streams) > 1 else None
        for index, (topic, msg_type, raw) in enumerate(streams):
            self.create_input_subscription(
                msg_type, topic, lambda msg, i=index, r=raw: self._on_input(i, msg, r), raw=raw)
        self.add_on_set_parameters_callback(self._check_parameters)

    def make_estimator(self, model, output_resolution):
        estimator = SemiDenseEstimator(model, output_resolution)
        needed = getattr(self, '_needs_intensity', None)
        if needed is not None and estimator.needs_intensity != needed:
            raise ValueError('the new model ' + ('needs' if estimator.needs_intensity else
                             'does not take') + ' the intensity image, unlike the running '
                             'one; restart the node to change its inputs')
        return estimator

    def _check_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'points_to_camera':
                try:
                    transform_points(np.zeros((1, 3)), tuple(param.value))
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- inputs ------------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_input(self, index: int, msg, raw: bool) -> None:
        if raw:
            try:
                msg = ros_io.image_from_cdr(msg)
            except ImageFormatError as exc:
                self.submit(Rejected(exc))
                return
        if self.sync is None:
            self.submit((msg,))
            return
        stamp = msg.header.stamp
        unmatched = self.sync.stats.unmatched
        group = self.sync.add(index, stamp.sec * 10**9 + stamp.nanosec, msg)
        dropped = self.sync.stats.unmatched - unmatched
        if dropped:
            self.reporter.report('unsynchronised', f'dropped {dropped} input(s) without a '
                                 f'partner within sync_slop on {", ".join(self.stream_names)}'
                                 f' (newest spread {self.sync.stats.last_spread_s:.3f} s)')
        if group is not None:
            self.submit(group)

    def _camera(self, width: int, height: int, required: bool):
        info = self._camera_info
        if info is None:
            if required:
                raise ImageFormatError('no camera_info received yet: projecting points needs '
                                       'the camera model', 'camera_info')
            return None, None
        try:
            camera = ros_io.camera_info_to_intrinsics(info)
        except CameraModelError as exc:
            raise ImageFormatError(f'camera_info unusable: {exc}', 'camera_info') from None
        if width and (camera.width, camera.height) != (width, height):
            raise ImageFormatError(f'camera_info is {camera.width}x{camera.height} but the '
                                   f'semi-dense depth is {width}x{height}', 'camera_info_size')
        return info, camera

    def _depth_from_image(self, msg, variance_msg):
        values = ros_io.image_to_array(msg)
        inverse = self.get_parameter('input_is_inverse_depth').value
        if msg.encoding == '16UC1' and not inverse:
            values = depth_to_metres(values, '16UC1')
        elif msg.encoding != '32FC1':
            raise ImageFormatError(f"semidense/depth must be 32FC1 (or 16UC1 mm), got "
                                   f"'{msg.encoding}'", 'encoding')
        variance = None
        if variance_msg is not None:
            if variance_msg.encoding != '32FC1':
                raise ImageFormatError(f"semidense/variance must be 32FC1, got "
                                       f"'{variance_msg.encoding}'", 'encoding')
            variance = ros_io.image_to_array(variance_msg)
        return depth_from_semidense_image(
            values, inverse_depth=inverse, variance=variance,
            max_variance=self.get_parameter('max_variance').value)

    def process(self, group):
        if isinstance(group, Rejected):
            raise group.error
        primary = group[0]
        image_msg = group[self._image_index] if self._image_index is not None else None
        if self.input == 'points':
            info, camera = self._camera(0, 0, required=True)
            points = transform_points(ros_io.pointcloud2_to_xyz(primary),
                                      tuple(self.get_parameter('points_to_camera').value))
            depth = points_to_sparse_depth(points, camera)
            # The depth image lies in the camera's frame, at the cloud's time.
            header = Header(stamp=primary.header.stamp, frame_id=info.header.frame_id)
        else:
            variance_msg = group[self._variance_index] if self._variance_index else None
            depth = self._depth_from_image(primary, variance_msg)
            info, camera = self._camera(depth.shape[1], depth.shape[0], required=False)
            header = ros_io.header_from(primary)
        intensity = rgb = None
        if image_msg is not None:
            image = ros_io.image_to_array(image_msg)
            if image.shape[:2] != depth.shape:
                raise ImageFormatError(f'image is {image.shape[1]}x{image.shape[0]} but the '
                                       f'semi-dense depth is {depth.shape[1]}x{depth.shape[0]}',
                                       'image_size')
            intensity = intensity_from_image(image, image_msg.encoding)
            if self.get_parameter('publish_points').value:
                rgb = to_rgb8(image, image_msg.encoding)
        result = self.estimator.estimate(
            depth, camera, intensity, depth_range=self.depth_range(),
            keep_input_depth=self.get_parameter('keep_input_depth').value)
        self.publish_result(header, result, info_template=info, rgb=rgb)


def main(args=None) -> int:
    return run_node(SemiDenseDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
