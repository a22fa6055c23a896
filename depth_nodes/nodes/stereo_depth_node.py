"""stereo_depth_node: a rectified stereo pair in, the left view's metric depth and disparity
out: OpenCV StereoSGBM (``model`` empty, method:=sgbm) or a disparity network such as Shen et
al.'s DPN on the left image (``model`` set, method:=stereo).

Subscribes: left/image_rect, right/image_rect (sensor_msgs/Image, approximate-time
            synchronised within sync_slop), left/camera_info, right/camera_info (the newest
            of each; the right P[0, 3] = -fx B gives the baseline unless ``baseline`` is set)
Publishes:  depth/image (32FC1 m, the left image's header), depth/camera_info, disparity
            (stereo_msgs/DisparityImage: pixels, Z = f T / d), depth/colored, depth/points,
            /diagnostics
"""
from __future__ import annotations

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from stereo_msgs.msg import DisparityImage

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraModelError
from depth_nodes.core.encodings import ImageFormatError, to_rgb8
from depth_nodes.core.stereo import SgbmParameters
from depth_nodes.core.sync import ApproximateTimeSync
from depth_nodes.nodes.depth_node import (OUTPUT_QOS, DepthNodeBase, _descriptor, run_node,
                                          subscription_qos)
from depth_nodes.runtime.engine import ModelLoadError
from depth_nodes.runtime.estimator import POST_PROCESSES
from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator, SgbmStereoEstimator

SGBM_DEFAULTS = SgbmParameters()
SGBM_PARAMETERS = tuple(f'sgbm.{name}' for name in SGBM_DEFAULTS.__dataclass_fields__)
IMAGES = ('left/image_rect', 'right/image_rect')
RIG_RATIO_TOLERANCE = 0.1


class Rejected:
    """An image that failed to decode before synchronisation; process() reports it."""

    def __init__(self, error: ImageFormatError):
        self.error = error


class StereoDepthNode(DepthNodeBase):

    model_optional = True
    model_parameters = ('post_process', *SGBM_PARAMETERS)

    def __init__(self, node_name: str = 'stereo_depth_node', default_model: str = '',
                 **node_kwargs):
        super().__init__(node_name, default_model=default_model, **node_kwargs)
        p = self.declare_parameter
        slop = p('sync_slop', 0.01, _descriptor(
            'largest stamp difference (s) of a left/right pair', float_range=(0.0, 10.0))).value
        p('baseline', 0.0, _descriptor('stereo baseline in metres (0: from the right '
                                       'camera_info, P[0,3] = -fx B)', float_range=(0.0, 100.0)))
        self.sync = ApproximateTimeSync(len(IMAGES), slop)
        self._camera_info: list[CameraInfo | None] = [None, None]
        self.disparity = self.create_publisher(DisparityImage, 'disparity', OUTPUT_QOS)
        for index, topic in enumerate(IMAGES):
            self.create_input_subscription(Image, topic, lambda raw, i=index:
                                           self._on_image(i, raw), raw=True)
        for index, topic in enumerate(('left/camera_info', 'right/camera_info')):
            self.create_subscription(CameraInfo, topic, lambda msg, i=index:
                                     self._camera_info.__setitem__(i, msg), **subscription_qos())
        self.add_on_set_parameters_callback(self._on_stereo_parameters)

    def declare_model_parameters(self) -> None:
        p = self.declare_parameter
        p('post_process', 'none', _descriptor(
            "model only: 'pp' also runs the mirrored left image (Godard et al.)",
            choices=POST_PROCESSES))
        for name in SGBM_PARAMETERS:
            p(name, getattr(SGBM_DEFAULTS, name[5:]), _descriptor(
                f'StereoSGBM {name[5:]} (without a model; see depth_nodes.core.stereo)'))

    def build_estimator(self, model, values):
        try:
            if model is None:
                params = SgbmParameters(**{name[5:]: values[name] for name in SGBM_PARAMETERS})
                return SgbmStereoEstimator(params)
            return LearnedStereoEstimator(model, values['output_resolution'],
                                          values['post_process'])
        except ValueError as exc:   # exit 1 at start; refused with the reason at run time
            raise ModelLoadError(values['model'] or 'StereoSGBM', str(exc)) from None

    def _on_stereo_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == 'sync_slop':
                try:
                    self.sync.slop_s = param.value
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- inputs ------------------------------------------------------------------------------
    def _on_image(self, index: int, raw: bytes) -> None:
        try:
            msg = ros_io.image_from_cdr(raw)
        except ImageFormatError as exc:
            self.submit(Rejected(exc))
            return
        stamp = msg.header.stamp
        unmatched = self.sync.stats.unmatched
        pair = self.sync.add(index, stamp.sec * 10**9 + stamp.nanosec, msg)
        dropped = self.sync.stats.unmatched - unmatched
        if dropped:
            self.reporter.report('unsynchronised', f'dropped {dropped} image(s) without a '
                                 f'partner within sync_slop = {self.sync.slop_s:g} s (newest '
                                 f'left/right spread {self.sync.stats.last_spread_s:.3f} s)')
        if pair is not None:
            self.submit(pair)

    def _cameras(self, width: int, height: int):
        cameras = []
        for side, info in zip(('left', 'right'), self._camera_info):
            if info is None:
                raise ImageFormatError(f'no {side}/camera_info received yet', 'camera_info')
            try:
                camera = ros_io.camera_info_to_intrinsics(info)
            except CameraModelError as exc:
                raise ImageFormatError(f'{side}/camera_info unusable: {exc}',
                                       'camera_info') from None
            if (camera.width, camera.height) != (width, height):
                raise ImageFormatError(f'{side}/camera_info is {camera.width}x{camera.height} '
                                       f'but the images are {width}x{height}',
                                       'camera_info_size')
            cameras.append(camera)
        return cameras

    def process(self, pair):
        if isinstance(pair, Rejected):
            raise pair.error
        left_msg, right_msg = pair
        left, right = ros_io.image_to_array(left_msg), ros_io.image_to_array(right_msg)
        if left.shape[:2] != right.shape[:2]:
            raise ImageFormatError(f'left image is {left_msg.width}x{left_msg.height} but the '
                                   f'right image is {right_msg.width}x{right_msg.height}',
                                   'stereo_size')
        left_info = self._camera_info[0]
        left_camera, right_camera = self._cameras(left_msg.width, left_msg.height)
        try:
            result = self.estimator.estimate(
                left, left_msg.encoding, right, right_msg.encoding, left_camera,
                right_camera, self.get_parameter('baseline').value or None,
                depth_range=self.depth_range())
        except CameraModelError as exc:          # no baseline in P and none given
            raise ImageFormatError(f'{exc}; or set the baseline parameter',
                                   'baseline') from None
        ratio = result.extras.get('rig_ratio')
        if ratio is not None and abs(ratio - 1.0) > RIG_RATIO_TOLERANCE:
            self.hints.report('rig', f'this rig has {ratio:.2f} x the (fx / width) x baseline '
                              'of the rig the model was trained on: its depth is scaled by '
                              'that factor unless the model was trained on this rig')
        header = ros_io.header_from(left_msg)
        want_rgb = self.get_parameter('publish_points').value
        self.publish_result(header, result.depth_result(), info_template=left_info,
                            rgb=to_rgb8(left, left_msg.encoding) if want_rgb else None)
        if self.disparity.get_subscription_count():
            self.disparity.publish(disparity_message(result, header))


def disparity_message(result, header) -> DisparityImage:
    """stereo_msgs/DisparityImage of a StereoResult: 32FC1 pixels, unknown below
    min_disparity (as the message defines), f and T such that Z = f T / d."""
    disparity = np.where(np.isfinite(result.disparity), result.disparity,
                         np.float32(result.min_disparity - 1.0)).astype(np.float32)
    x, y, width, height = result.valid_window
    msg = DisparityImage(header=header, f=float(result.camera.fx), t=float(result.baseline),
                         min_disparity=float(result.min_disparity),
                         max_disparity=float(result.max_disparity),
                         delta_d=float(result.disparity_step))
    msg.image = ros_io.array_to_image(disparity, '32FC1', header)
    msg.valid_window = RegionOfInterest(x_offset=x, y_offset=y, width=width, height=height)
    return msg


def main(args=None) -> int:
    return run_node(StereoDepthNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
