"""What each depth node does with one frame, shared by the running node and process_bag.

A frame path turns input messages into output messages, one way:

  accept(input, message)  where a message arrives (the subscription callback, or the bag
                          reader): keeps the newest camera_info, decodes a serialized image's
                          CDR (ros_io; its pixels stay a view of the bytes), synchronises
                          multi-input nodes by approximate time (inputs left without a partner
                          go to the ``dropped`` sink as 'unsynchronised'). Returns a job (a
                          complete group of input messages, in ``streams`` order) or None.
  process(job, wants)     pixels -> checks -> estimator (estimate(): a DepthFrame) -> output
                          messages (encode(): ros_io), as a FrameOutput. Bad input raises
                          ImageFormatError(message, kind).

The node publishes FrameOutput.messages, the bag processor writes them. Parameters come as a
Mapping: the node passes its current parameter values (run-time changes apply at the next
frame), process_bag the params file over parameter_defaults(). Each parameter is defined once,
in depth_nodes.parameters (common ones) or in its frame path's ``parameters``.

No rclpy here (message types only), so frame paths are tested without spinning anything.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import cv2
import numpy as np
from std_msgs.msg import Header

from depth_nodes import ros_io
from depth_nodes.core.camera import CameraIntrinsics, CameraModelError, pixel_rays
from depth_nodes.core.colorize import colorize_depth
from depth_nodes.core.encodings import (ImageFormatError, depth_to_metres, lookup_encoding,
                                        to_rgb8)
from depth_nodes.core.pointcloud import depth_to_xyzrgb
from depth_nodes.core.preprocess import resize_image
from depth_nodes.core.scale_fit import ScaleFitOptions, SparseDepthScaler
from depth_nodes.core.semidense import (depth_from_semidense_image, intensity_from_image,
                                        points_to_sparse_depth, resample_sparse_depth,
                                        transform_points)
from depth_nodes.core.stereo import SgbmParameters
from depth_nodes.core.sync import ApproximateTimeSync
from depth_nodes.methods import OUTPUT_TOPICS
from depth_nodes.parameters import (DEPTH_PARAMETERS, RELOAD, START_ONLY, Parameter,
                                    defaults, depth_image_transport_parameter,
                                    image_transport_parameter, points_to_camera_parameter,
                                    post_process_parameter, sync_slop_parameter)
from depth_nodes.runtime.engine import EngineOptions, ModelLoadError
from depth_nodes.runtime.estimator import DepthResult, MonoDepthEstimator
from depth_nodes.runtime.model import LoadedModel, open_model
from depth_nodes.runtime.nir_estimator import NirDepthEstimator
from depth_nodes.runtime.semidense_estimator import SemiDenseEstimator
from depth_nodes.runtime.stereo_estimator import LearnedStereoEstimator, SgbmStereoEstimator

log = logging.getLogger(__name__)

# depth/* outputs made only when switched on (parameter) and wanted (subscribed).
OPTIONAL_OUTPUTS = {'depth/colored': 'publish_colored', 'depth/points': 'publish_points'}


def parameter_defaults(frame_path: type[DepthFramePath]) -> dict[str, Any]:
    """Every parameter a frame path's node declares (spec.* aside), with its default."""
    return defaults(frame_path.all_parameters())


def engine_options(values: Mapping[str, Any], spin_wait: bool = True) -> EngineOptions:
    """Engine options from a node's parameter values (shared by all of a node's models) and
    its frame path's ``engine_spin_wait``."""
    return EngineOptions(precision=values['precision'],
                         engine_cache_dir=values['engine_cache_dir'],
                         force_engine_update=bool(values['force_engine_update']),
                         spin_wait=spin_wait)


def camera_of(info, width: int = 0, height: int = 0, *, topic: str = 'camera_info',
              size_of: str = 'the image is') -> CameraIntrinsics:
    """The intrinsics of a CameraInfo, checked against the input's size (``width`` 0: not
    checked): ImageFormatError 'camera_info' (uncalibrated) or 'camera_info_size'."""
    try:
        camera = ros_io.camera_info_to_intrinsics(info)
    except CameraModelError as exc:
        raise ImageFormatError(f'{topic} unusable: {exc}', 'camera_info') from None
    if width and (camera.width, camera.height) != (width, height):
        raise ImageFormatError(f'{topic} is {camera.width}x{camera.height} but {size_of} '
                               f'{width}x{height}', 'camera_info_size')
    return camera


# -- frames and their messages ---------------------------------------------------------------
@dataclass
class DepthFrame:
    """One estimate of a frame path, with the input's header, before encoding."""
    header: Any                        # std_msgs/Header of the input (REP 118: the output's)
    result: DepthResult
    depth_range: tuple[float, float]   # [min, max] metres the result was limited to
    info_template: Any = None          # the input's CameraInfo (distortion, R copied through)
    rgb: np.ndarray | None = None      # colours of depth/points
    # Outputs beyond depth/* (node-relative topic -> builds its message when it is wanted).
    extra: dict[str, Callable[[], Any]] = field(default_factory=dict)
    hints: list[tuple[str, str]] = field(default_factory=list)   # (kind, advice) for the log


@dataclass
class FrameOutput:
    """What one job gives: (node-relative topic, message) pairs, in publishing order; a
    message is serialized CDR bytes or a message object (CameraInfo)."""
    header: Any
    messages: list[tuple[str, Any]]
    inference_s: float
    hints: list[tuple[str, str]] = field(default_factory=list)


def everything(topic: str) -> bool:
    return True


# -- frame paths -------------------------------------------------------------------------------
# kind, message, number of input messages dropped: how accept() reports inputs it drops.
DroppedInputs = Callable[[str, str, int], Any]


def _ignore(kind: str, message: str, count: int) -> None:
    pass


class DepthFramePath:
    """A depth node's input messages -> its output messages. Subclasses set the class
    attributes below and implement build_estimator() and estimate()."""

    default_model = ''
    model_optional = False           # runs without a network when 'model' is empty
    # ONNX Runtime's threads spin-wait between runs (EngineOptions.spin_wait)
    engine_spin_wait = True
    parameters: tuple[Parameter, ...] = ()   # the node's own, beyond DEPTH_PARAMETERS
    streams: tuple[str, ...] = ()    # inputs of a frame, synchronised when more than one
    latest_inputs: tuple[str, ...] = ()               # inputs of which the newest is kept
    required_latest: tuple[str, ...] = ()             # ... without which no frame can be made
    message_inputs: dict[str, str] = {}    # inputs that are not Images (streams) or
    #                                        CameraInfo (latest_inputs): their type
    # Image streams -> the parameter naming their image_transport ('raw', 'compressed',
    # 'compressedDepth'); those not raw arrive as sensor_msgs/CompressedImage.
    transports: dict[str, str] = {}
    extra_outputs: dict[str, str] = {}                # node-relative topic -> message type

    def __init__(self, estimator, params: Mapping[str, Any],
                 dropped: DroppedInputs = _ignore, sync_slop_s: float = 0.0):
        self.estimator = estimator
        self.params = params
        self.dropped = dropped
        self.latest: dict[str, Any] = dict.fromkeys(self.latest_inputs)
        self.transport = {name: params[param] for name, param in self.transports.items()
                          if name in self.streams}
        self.sync = ApproximateTimeSync(len(self.streams), sync_slop_s) \
            if len(self.streams) > 1 else None
        self._rays_key = self._rays = None     # pixel rays of the last camera (depth/points)

    # -- parameters
    @classmethod
    def all_parameters(cls) -> tuple[Parameter, ...]:
        """Every parameter of the node: DEPTH_PARAMETERS ('model' defaulting to the frame
        path's model) and the frame path's own."""
        return tuple(replace(p, default=cls.default_model) if p.name == 'model' else p
                     for p in DEPTH_PARAMETERS) + cls.parameters

    # -- what the node subscribes and publishes, and the bag processor reads and writes
    @property
    def inputs(self) -> dict[str, str]:
        """Input name (node-relative topic) -> message type: the streams, then the newest-
        kept inputs (CameraInfo unless message_inputs says otherwise). An image stream with a
        transport other than raw arrives as CompressedImage on topic_suffix(name) below its
        name."""
        return {**{name: self.message_inputs.get(name, ros_io.IMAGE_TYPE)
                   if self.transport.get(name, 'raw') == 'raw'
                   else ros_io.COMPRESSED_IMAGE_TYPE for name in self.streams},
                **{name: self.message_inputs.get(name, ros_io.CAMERA_INFO_TYPE)
                   for name in self.latest_inputs}}

    def topic_suffix(self, name: str) -> str:
        """What image_transport appends to an input's (resolved) topic: '' for raw, else
        '/compressed' or '/compressedDepth'."""
        transport = self.transport.get(name, 'raw')
        return '' if transport == 'raw' else f'/{transport}'

    def use_transport(self, name: str, transport: str) -> None:
        """Receive image stream ``name`` by ``transport`` (process_bag: by its topic's type)."""
        self.transport[name] = transport

    @property
    def raw_inputs(self) -> frozenset[str]:
        """Streams that arrive as serialized CDR (decoded in accept()); the other inputs
        arrive as message objects."""
        return frozenset(self.streams) - set(self.message_inputs)

    @classmethod
    def outputs(cls) -> dict[str, str]:
        """Node-relative output topic -> message type."""
        return {**OUTPUT_TOPICS, **cls.extra_outputs}

    @property
    def required_inputs(self) -> tuple[str, ...]:
        return self.streams + self.required_latest

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in self.latest_inputs if n not in self.required_latest)

    # -- construction and run-time changes
    @classmethod
    def build_estimator(cls, model: LoadedModel | None, values: Mapping[str, Any]):
        """The estimator for ``model`` and the parameter values being applied; ModelLoadError
        (naming the model) when they do not go together."""
        raise NotImplementedError

    def use_estimator(self, estimator) -> None:
        """Swap in the estimator of a newly loaded model (ValueError: not on these inputs)."""
        self.estimator = estimator

    def check_parameter(self, name: str, value: Any) -> None:
        """A run-time parameter change: ValueError refuses it; state is updated here."""
        if name == 'points_to_camera':
            transform_points(np.zeros((1, 3)), tuple(value))    # ValueError names the fault

    @classmethod
    def parameter(cls, name: str) -> Parameter:
        """The frame path's definition of parameter ``name``."""
        return next(p for p in cls.all_parameters() if p.name == name)

    def diagnostics(self) -> dict[str, str]:
        """Frame-path values for the node's /diagnostics status (key -> text)."""
        return {}

    def depth_range(self) -> tuple[float, float]:
        """[min, max] valid depth in metres: the parameters, or the model's range where 0."""
        spec = self.estimator.spec
        return (float(self.params['min_depth'] or spec.min_depth),
                float(self.params['max_depth'] or spec.max_depth))

    # -- frames
    def accept(self, name: str, message) -> tuple | None:
        """Take one input message; the complete group of stream messages when this one
        completes it, else None. Serialized images are decoded here (header and a view of
        the pixels); ImageFormatError 'cdr' when they cannot be."""
        if name in self.latest:
            self.latest[name] = message
            return None
        if name not in self.streams:
            return None
        message = self.decode(name, message)
        if self.sync is None:
            return (message,)
        stamp = message.header.stamp
        unmatched = self.sync.stats.unmatched
        group = self.sync.add(self.streams.index(name), stamp.sec * 10**9 + stamp.nanosec,
                              message)
        dropped = self.sync.stats.unmatched - unmatched
        if dropped:
            self.dropped('unsynchronised', f'dropped {dropped} input(s) without a partner '
                         f'within sync_slop = {self.sync.slop_s:g} s on '
                         f'{", ".join(self.streams)} (newest spread '
                         f'{self.sync.stats.last_spread_s:.3f} s)', dropped)
        return group

    def decode(self, name: str, message):
        """A stream message as accept() keeps it: a serialized image -> ros_io's decoded
        message (header, encoding, pixels viewing the bytes); a CompressedImage -> its
        message (header, format, data), its pixels decoded by process(); other types as
        they came."""
        if name in self.message_inputs:
            return message
        if self.transport.get(name, 'raw') != 'raw':
            return ros_io.compressed_image_from_cdr(message)
        return ros_io.image_from_cdr(message)

    def decompressed(self, job: tuple) -> tuple:
        """A job with its CompressedImages decoded, as estimate() reads images. Here, not in
        accept(): decoding a jpeg costs far more than reading a header, and only the jobs
        that are processed (a complete, synchronised group) are decoded."""
        return tuple(ros_io.decompress_image(message)
                     if self.transport.get(name, 'raw') != 'raw' else message
                     for name, message in zip(self.streams, job))

    def process(self, job: tuple, wants: Callable[[str], bool] = everything) -> FrameOutput:
        """The output messages of one job from accept(). ``wants(topic)``: whether anyone
        takes an optional output (depth/colored, depth/points, extra outputs); those not
        wanted, or switched off by their parameter, are not computed."""
        frame = self.estimate(self.decompressed(job))
        return FrameOutput(frame.header, self.encode(frame, wants), frame.result.inference_s,
                           frame.hints)

    def estimate(self, job: tuple) -> DepthFrame:
        """Decode, check and estimate one job; ImageFormatError for bad input."""
        raise NotImplementedError

    def encode(self, frame: DepthFrame, wants: Callable[[str], bool] = everything
               ) -> list[tuple[str, Any]]:
        """A DepthFrame -> its messages: depth/image and depth/camera_info always (the input's
        header, REP 118), depth/colored, depth/points and extra outputs when wanted."""
        result, header = frame.result, frame.header
        messages = [('depth/image', ros_io.image_to_cdr(result.depth, '32FC1', header))]
        if result.camera is not None:
            messages.append(('depth/camera_info', ros_io.intrinsics_to_camera_info(
                result.camera, header, frame.info_template)))
        if self.params['publish_colored'] and wants('depth/colored'):
            messages.append(('depth/colored', ros_io.image_to_cdr(
                colorize_depth(result.depth, *frame.depth_range), 'rgb8', header)))
        if result.camera is not None and self.params['publish_points'] and \
                wants('depth/points'):
            messages.append(('depth/points', ros_io.xyzrgb_to_pointcloud2_cdr(
                self._points(frame), header)))
        messages += [(topic, build()) for topic, build in frame.extra.items() if wants(topic)]
        return messages

    def _points(self, frame: DepthFrame) -> np.ndarray:
        result, rgb = frame.result, frame.rgb
        if rgb is not None and rgb.shape[:2] != result.depth.shape:
            rgb = cv2.resize(rgb, result.depth.shape[::-1], interpolation=cv2.INTER_AREA)
        if self._rays_key != result.camera:
            self._rays_key, self._rays = result.camera, pixel_rays(result.camera)
        return depth_to_xyzrgb(result.depth, result.camera, rgb,
                               int(self.params['points_stride']), self._rays)


SCALE_SOURCES = ('none', 'semidense', 'points')
# The sparse metric depth input of each scale_from source (node-relative topic).
SCALE_INPUTS = {'semidense': 'semidense/depth', 'points': 'points'}
SPARSE_BUFFER = 8      # newest sparse depth messages kept for matching image stamps
LATE_FRAMES = 4        # newest unscaled predictions kept for sparse depth that comes later


def _stamp_ns(message) -> int:
    return message.header.stamp.sec * 10**9 + message.header.stamp.nanosec


class MonoDepthFramePath(DepthFramePath):
    """mono_depth_node: one image (RGB, gray or NIR) + the newest camera_info -> depth.

    With scale_from (semidense, points) the metric scale comes from sparse metric depth of
    the same camera, fitted per frame (depth_nodes.core.scale_fit): the newest sparse
    messages are kept, and the one stamped closest to the image within sync_slop is fitted
    (depth models: a robust scale; relative_inverse_depth models: scale and shift in inverse
    depth). A frame without one uses the last fit for scale_hold_s of input time; after that
    it is dropped with a throttled warning (kind 'no_scale'), since a depth of unknown scale
    on the metric depth topic would mislead whoever reads it. Sparse depth that arrives after
    its image (a SLAM map of that frame) is fitted to the kept prediction of that image and
    scales the frames after it.
    """

    default_model = 'eigen_synthetic'
    parameters = (
        post_process_parameter(
            'also run the mirrored image and combine both (twice the inference time): '
            "'flip' = the mean of the two outputs, any model; 'pp' = Godard et al.'s "
            'combination, disparity models such as the DPN'),
        Parameter('scale_from', 'none', 'metric scale fitted per frame to sparse metric depth: '
                  'semidense = semidense/depth (32FC1 m or 16UC1 mm, pixels of this camera), '
                  'points = points (PointCloud2, projected with camera_info); none = the '
                  "model's own scale", choices=SCALE_SOURCES, applies=START_ONLY),
        Parameter('scale_hold_s', 1.0, 'scale_from: seconds of input time the last fit scales '
                  'frames without sparse depth; later frames are dropped (warning)',
                  float_range=(0.0, 3600.0)),
        Parameter('scale_inlier_error', 0.1, 'scale_from: relative depth error up to which a '
                  'sparse point is an inlier of the fit', float_range=(0.001, 1.0)),
        Parameter('scale_min_points', 20, 'scale_from: fewest valid sparse points for a fit',
                  int_range=(2, 1_000_000)),
        sync_slop_parameter(0.01, 'scale_from: largest stamp difference (s) between an image '
                            'and the sparse depth fitted to it'),
        points_to_camera_parameter('points'),
        image_transport_parameter('images'),
    )
    streams = ('image',)
    latest_inputs = ('camera_info',)
    transports = {'image': 'image_transport'}
    message_inputs = {'semidense/depth': ros_io.IMAGE_TYPE, 'points': ros_io.POINTCLOUD2_TYPE}

    def __init__(self, estimator, params, dropped=_ignore):
        self.scale_from = params['scale_from']
        self.parameter('scale_from').check(self.scale_from)
        self.check_parameter('points_to_camera', params['points_to_camera'])  # fails at start
        self.sparse_input = SCALE_INPUTS.get(self.scale_from)
        if self.sparse_input:
            self.latest_inputs = ('camera_info', self.sparse_input)
        if self.scale_from == 'points':
            self.required_latest = ('camera_info',)
        super().__init__(estimator, params, dropped)
        self._sparse: deque = deque(maxlen=SPARSE_BUFFER)
        # (stamp ns, image size, predict()'s DepthResult) of frames without their own fit.
        self._unscaled: deque = deque(maxlen=LATE_FRAMES)
        self.late_fits = 0       # sparse depth fitted to a frame already processed
        self.scaler = self._new_scaler(estimator)

    def _new_scaler(self, estimator) -> SparseDepthScaler | None:
        return SparseDepthScaler(estimator.scale_fit_kind) if self.sparse_input else None

    @classmethod
    def build_estimator(cls, model, values):
        try:
            return MonoDepthEstimator(model, values['output_resolution'],
                                      values['post_process'],
                                      scale_fitted=values['scale_from'] != 'none')
        except ValueError as exc:    # pp on a model without disparity; scale-free model
            raise ModelLoadError(values['model'], str(exc)) from None

    def use_estimator(self, estimator) -> None:
        self.estimator = estimator
        self.scaler = self._new_scaler(estimator)    # a fit is of one model's prediction
        self._unscaled.clear()

    def accept(self, name, message):
        if name == self.sparse_input:
            self._sparse.append(message)
            self._fit_late(message)
            return None
        return super().accept(name, message)

    def estimate(self, job):
        (msg,) = job
        image = ros_io.image_to_array(msg)
        info = self.latest['camera_info']
        camera = None if info is None else camera_of(info, msg.width, msg.height)
        depth_range = self.depth_range()
        if self.scaler is None:
            result = self.estimator.estimate(image, msg.encoding, camera,
                                             depth_range=depth_range)
        else:
            result = self._metric(self.estimator.predict(image, msg.encoding, camera), msg,
                                  depth_range)
        rgb = to_rgb8(image, msg.encoding) \
            if camera is not None and self.params['publish_points'] else None
        return DepthFrame(ros_io.header_from(msg), result, depth_range, info, rgb)

    # -- scale_from
    def _metric(self, result: DepthResult, msg, depth_range) -> DepthResult:
        """predict()'s result scaled to metres by this frame's fit or the held one;
        ImageFormatError 'no_scale' when there is neither."""
        stamp, size = _stamp_ns(msg), (msg.width, msg.height)
        message = self._nearest(self._sparse, stamp)
        sparse = None if message is None else self._sparse_depth(message, size, result)
        fitted = self.scaler.fitted
        fit = self.scaler.scale(result.depth, sparse, stamp * 1e-9, self._fit_options())
        if self.scaler.fitted == fitted:       # no fit of its own: sparse depth may follow
            self._unscaled.append((stamp, size, DepthResult(result.depth, result.camera, 0.0)))
        if fit is None:
            why = f'the fit failed ({self.scaler.last_error})' if sparse is not None else \
                f"no {self.sparse_input} within sync_slop = {self.params['sync_slop']:g} s " \
                'of the image'
            raise ImageFormatError(f'no metric scale: {why}, and no fit in the last '
                                   f"scale_hold_s = {self.params['scale_hold_s']:g} s",
                                   'no_scale')
        depth = fit.apply(result.depth)
        with np.errstate(invalid='ignore'):
            depth[~((depth >= depth_range[0]) & (depth <= depth_range[1]))] = np.nan
        result.depth = depth
        result.extras['scale_fit'] = fit
        return result

    def _fit_options(self) -> ScaleFitOptions:
        return ScaleFitOptions(hold_s=float(self.params['scale_hold_s']),
                               inlier_error=float(self.params['scale_inlier_error']),
                               min_points=int(self.params['scale_min_points']))

    def _nearest(self, messages, stamp: int):
        """The message of ``messages`` stamped closest to ``stamp`` (ns) within sync_slop."""
        slop_ns = self.params['sync_slop'] * 1e9
        near = [m for m in list(messages) if abs(_stamp_ns(m) - stamp) <= slop_ns]
        return min(near, key=lambda m: abs(_stamp_ns(m) - stamp)) if near else None

    def _fit_late(self, message) -> None:
        """Sparse depth of a frame already processed without its own fit: fitted to that
        frame's prediction, the fit scales the next frames (for scale_hold_s)."""
        slop_ns, stamp = self.params['sync_slop'] * 1e9, _stamp_ns(message)
        frames = [f for f in list(self._unscaled) if abs(f[0] - stamp) <= slop_ns]
        if not frames:
            return
        frame = min(frames, key=lambda f: abs(f[0] - stamp))
        kept = [f for f in self._unscaled if f is not frame]
        self._unscaled.clear()
        self._unscaled.extend(kept)
        frame_stamp, size, prediction = frame
        sparse = self._sparse_depth(message, size, prediction)
        if sparse is not None and self.scaler.learn(prediction.depth, sparse,
                                                    frame_stamp * 1e-9, self._fit_options()):
            self.late_fits += 1

    def _sparse_depth(self, message, image_size: tuple[int, int], result: DepthResult
                      ) -> np.ndarray | None:
        """A sparse depth message -> metres (NaN unknown) at the prediction's size; None
        when it is unusable (reported to the dropped-input sink)."""
        try:
            if self.scale_from == 'points':
                if result.camera is None:
                    raise ImageFormatError('no camera_info received yet: projecting points '
                                           'needs the camera model', 'camera_info')
                points = transform_points(ros_io.pointcloud2_to_xyz(message),
                                          tuple(self.params['points_to_camera']))
                return points_to_sparse_depth(points, result.camera)
            if (message.width, message.height) != image_size:
                raise ImageFormatError(f'it is {message.width}x{message.height} but the image '
                                       f'is {image_size[0]}x{image_size[1]} (it must be in '
                                       "this camera's pixels)", 'size')
            metres = depth_to_metres(ros_io.image_to_array(message), message.encoding)
            return resample_sparse_depth(metres, *result.depth.shape)
        except ImageFormatError as exc:
            self.dropped(f'scale_input_{exc.kind}', f'{self.sparse_input} not used for the '
                         f'scale: {exc}', 1)
            return None

    def diagnostics(self) -> dict[str, str]:
        if self.scaler is None:
            return {}
        scaler, fit = self.scaler, self.scaler.last_fit
        values = {'scale from': f'{self.sparse_input} ({scaler.kind})',
                  'frames scaled by their own fit': str(scaler.fitted),
                  'frames scaled by a held fit': str(scaler.held),
                  'fits of sparse depth later than its image': str(self.late_fits),
                  'frames dropped (no scale)': str(scaler.unscaled)}
        if fit is not None:
            values.update({'scale': f'{fit.scale:.6g}', 'scale shift': f'{fit.shift:.6g}',
                           'scale fit residual (median relative)': f'{fit.residual:.4f}',
                           'scale fit inliers': f'{fit.inliers} of {fit.points}'})
        if scaler.last_error:
            values['scale fit error'] = scaler.last_error
        return values


class NirDepthFramePath(DepthFramePath):
    """nir_depth_node: NIR image -> CTN pseudo-RGB (``model``) -> RGB depth model
    (``depth_model``) (Shen et al.), with nir/pseudo_rgb when publish_pseudo_rgb."""

    default_model = 'ctn_synthetic'
    parameters = (
        Parameter('depth_model', 'dpn_synthetic', 'RGB depth model fed the pseudo-RGB (path or '
                  'name under models/); empty: model is itself a NIR depth model and runs '
                  'alone', applies=RELOAD),
        Parameter('publish_pseudo_rgb', False, 'publish nir/pseudo_rgb: the translated image '
                  'the depth model sees (rgb8)'),
        Parameter('baseline', 0.0, 'stereo baseline in metres of the rig the depth model was '
                  'trained on, for a disparity model (0: the depth model spec)',
                  float_range=(0.0, 100.0)),
        Parameter('depth_scale', 1.0, 'factor applied to the metric depth (e.g. measured '
                  'against a range sensor)', float_range=(1e-6, 1e6)),
        image_transport_parameter('NIR images'),
    )
    streams = ('nir/image',)
    latest_inputs = ('nir/camera_info',)
    transports = {'nir/image': 'image_transport'}
    extra_outputs = {'nir/pseudo_rgb': ros_io.IMAGE_TYPE}

    @classmethod
    def build_estimator(cls, model, values):
        depth = None
        if values['depth_model']:
            depth = open_model(values['depth_model'], values['backend'],
                               engine_options(values, cls.engine_spin_wait))
            log.info(f'depth model {depth.describe()}')
        try:
            return NirDepthEstimator(model, depth, values['output_resolution'])
        except ValueError as exc:   # a wrong pair of models
            raise ModelLoadError(values['depth_model'] or values['model'], str(exc)) from None

    def estimate(self, job):
        (msg,) = job
        if lookup_encoding(msg.encoding).kind != 'mono':
            raise ImageFormatError(f"nir/image has encoding '{msg.encoding}'; expected a "
                                   'single-channel NIR image (mono8 or mono16)', 'encoding')
        image = ros_io.image_to_array(msg)
        info = self.latest['nir/camera_info']
        camera = None if info is None else camera_of(info, msg.width, msg.height)
        depth_range = self.depth_range()
        result = self.estimator.estimate(
            image, msg.encoding, camera, baseline=self.params['baseline'] or None,
            depth_range=depth_range, depth_scale=self.params['depth_scale'])
        header = ros_io.header_from(msg)
        # The pseudo-RGB colours the points (one stage: the NIR image itself).
        frame = DepthFrame(header, result, depth_range, info, result.extras.get('pseudo_rgb'))
        if frame.rgb is not None and self.params['publish_pseudo_rgb']:
            pseudo_rgb = frame.rgb
            frame.extra['nir/pseudo_rgb'] = lambda: ros_io.image_to_cdr(
                resize_image(pseudo_rgb, msg.height, msg.width), 'rgb8', header)
        if frame.rgb is None and camera is not None and self.params['publish_points']:
            frame.rgb = to_rgb8(image, msg.encoding)
        return frame


SEMIDENSE_INPUTS = ('depth', 'points')


class SemiDenseFramePath(DepthFramePath):
    """semidense_depth_node: semi-dense depth (or a point cloud) [+ variance] [+ intensity
    image], synchronised by approximate time, + the newest camera_info -> dense depth
    (Makarov et al.). The streams depend on the parameters and on the model (intensity)."""

    default_model = 'semidense_synthetic'
    # Its fills use both cores between two runs: spinning threads would take them
    # (docs/performance.md).
    engine_spin_wait = False
    parameters = (
        Parameter('input', 'depth', 'semi-dense input: a depth image or a point cloud',
                  choices=SEMIDENSE_INPUTS, applies=START_ONLY),
        Parameter('input_is_inverse_depth', False, 'semidense/depth holds inverse depth (1/m, '
                  'LSD-SLAM) instead of metres'),
        Parameter('use_variance', False, 'also subscribe semidense/variance (synchronised) for '
                  'the max_variance filter', applies=START_ONLY),
        Parameter('max_variance', 0.0, 'drop pixels whose variance exceeds this (0: keep all)',
                  float_range=(0.0, 1e6)),
        Parameter('keep_input_depth', True, 'publish known input depths unchanged, the network '
                  'fills the rest'),
        Parameter('native_resolution', True, 'inputs larger than the model run at their own '
                  'resolution, the network over them in overlapping tiles of its size (time '
                  'grows with the pixel count); false: moved onto the model grid and back',
                  applies=RELOAD),
        points_to_camera_parameter('semidense/points'),
        sync_slop_parameter(0.02, 'largest stamp difference (s) of synchronised inputs',
                            applies=START_ONLY),
        image_transport_parameter('intensity images'),
        depth_image_transport_parameter('semidense/depth'),
    )
    latest_inputs = ('camera_info',)
    message_inputs = {'semidense/points': ros_io.POINTCLOUD2_TYPE}
    transports = {'semidense/depth': 'depth_image_transport', 'image': 'image_transport'}

    def __init__(self, estimator, params, dropped=_ignore):
        self.input = params['input']
        self.parameter('input').check(self.input)
        self.check_parameter('points_to_camera', params['points_to_camera'])  # fails at start
        streams = ['semidense/points' if self.input == 'points' else 'semidense/depth']
        if self.input == 'depth' and params['use_variance']:
            streams.append('semidense/variance')
        if estimator.needs_intensity:
            streams.append('image')
        self.streams = tuple(streams)
        self.required_latest = ('camera_info',) if self.input == 'points' else ()
        super().__init__(estimator, params, dropped, params['sync_slop'])

    @classmethod
    def build_estimator(cls, model, values):
        try:
            return SemiDenseEstimator(model, values['output_resolution'],
                                      values['native_resolution'])
        except ValueError as exc:
            raise ModelLoadError(values['model'], str(exc)) from None

    def use_estimator(self, estimator) -> None:
        if estimator.needs_intensity != ('image' in self.streams):
            raise ValueError('the new model ' + ('needs' if estimator.needs_intensity else
                             'does not take') + ' the intensity image, unlike the running '
                             'one; restart the node to change its inputs')
        self.estimator = estimator

    def estimate(self, job):
        group = dict(zip(self.streams, job))
        info = self.latest['camera_info']
        if self.input == 'points':
            cloud = group['semidense/points']
            if info is None:
                raise ImageFormatError('no camera_info received yet: projecting points needs '
                                       'the camera model', 'camera_info')
            camera = camera_of(info)
            points = transform_points(ros_io.pointcloud2_to_xyz(cloud),
                                      tuple(self.params['points_to_camera']))
            depth = points_to_sparse_depth(points, camera)
            # The depth image lies in the camera's frame, at the cloud's time.
            header = Header(stamp=cloud.header.stamp, frame_id=info.header.frame_id)
        else:
            msg = group['semidense/depth']
            depth = self._depth_from_image(msg, group.get('semidense/variance'))
            camera = None if info is None else camera_of(
                info, depth.shape[1], depth.shape[0], size_of='the semi-dense depth is')
            header = ros_io.header_from(msg)
        intensity = rgb = None
        if 'image' in group:
            image_msg = group['image']
            image = ros_io.image_to_array(image_msg)
            if image.shape[:2] != depth.shape:
                raise ImageFormatError(f'image is {image.shape[1]}x{image.shape[0]} but the '
                                       f'semi-dense depth is {depth.shape[1]}x{depth.shape[0]}',
                                       'image_size')
            intensity = intensity_from_image(image, image_msg.encoding)
            if self.params['publish_points']:
                rgb = to_rgb8(image, image_msg.encoding)
        depth_range = self.depth_range()
        result = self.estimator.estimate(depth, camera, intensity, depth_range=depth_range,
                                         keep_input_depth=self.params['keep_input_depth'])
        return DepthFrame(header, result, depth_range, info, rgb)

    def _depth_from_image(self, msg, variance_msg) -> np.ndarray:
        values = ros_io.image_to_array(msg)
        inverse = self.params['input_is_inverse_depth']
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
        return depth_from_semidense_image(values, inverse_depth=inverse, variance=variance,
                                          max_variance=self.params['max_variance'])


SGBM_DEFAULTS = SgbmParameters()
SGBM_PARAMETERS = tuple(f'sgbm.{name}' for name in SGBM_DEFAULTS.__dataclass_fields__)
RIG_RATIO_TOLERANCE = 0.1


class StereoFramePath(DepthFramePath):
    """stereo_depth_node: a rectified left/right pair, synchronised by approximate time, + the
    newest camera_info of each side -> the left view's depth and disparity (StereoSGBM
    without a model, else a disparity network on the left image)."""

    model_optional = True
    parameters = (
        post_process_parameter("model only: 'pp' also runs the mirrored left image (Godard "
                               "et al.), 'flip' the same with a plain mean"),
        *(Parameter(name, getattr(SGBM_DEFAULTS, name[5:]), f'StereoSGBM {name[5:]} (without '
                    'a model; see depth_nodes.core.stereo)', applies=RELOAD)
          for name in SGBM_PARAMETERS),
        sync_slop_parameter(0.01, 'largest stamp difference (s) of a left/right pair'),
        Parameter('baseline', 0.0, 'stereo baseline in metres (0: from the right camera_info, '
                  'P[0,3] = -fx B)', float_range=(0.0, 100.0)),
        image_transport_parameter('both images'),
    )
    streams = ('left/image_rect', 'right/image_rect')
    transports = {'left/image_rect': 'image_transport', 'right/image_rect': 'image_transport'}
    latest_inputs = ('left/camera_info', 'right/camera_info')
    required_latest = latest_inputs
    extra_outputs = {'disparity': 'stereo_msgs/msg/DisparityImage'}

    def __init__(self, estimator, params, dropped=_ignore):
        super().__init__(estimator, params, dropped, params['sync_slop'])

    @classmethod
    def build_estimator(cls, model, values):
        try:
            if model is None:
                return SgbmStereoEstimator(SgbmParameters(
                    **{name[5:]: values[name] for name in SGBM_PARAMETERS}))
            return LearnedStereoEstimator(model, values['output_resolution'],
                                          values['post_process'])
        except ValueError as exc:
            raise ModelLoadError(values['model'] or 'StereoSGBM', str(exc)) from None

    def check_parameter(self, name, value) -> None:
        if name == 'sync_slop':
            self.sync.slop_s = value

    def estimate(self, job):
        left_msg, right_msg = job
        left, right = ros_io.image_to_array(left_msg), ros_io.image_to_array(right_msg)
        if left.shape[:2] != right.shape[:2]:
            raise ImageFormatError(f'left image is {left_msg.width}x{left_msg.height} but the '
                                   f'right image is {right_msg.width}x{right_msg.height}',
                                   'stereo_size')
        cameras = []
        for side in ('left', 'right'):
            info = self.latest[f'{side}/camera_info']
            if info is None:
                raise ImageFormatError(f'no {side}/camera_info received yet', 'camera_info')
            cameras.append(camera_of(info, left_msg.width, left_msg.height,
                                     topic=f'{side}/camera_info', size_of='the images are'))
        depth_range = self.depth_range()
        try:
            result = self.estimator.estimate(left, left_msg.encoding, right, right_msg.encoding,
                                             *cameras, self.params['baseline'] or None,
                                             depth_range=depth_range)
        except CameraModelError as exc:          # no baseline in P and none given
            raise ImageFormatError(f'{exc}; or set the baseline parameter',
                                   'baseline') from None
        header = ros_io.header_from(left_msg)
        frame = DepthFrame(header, result.depth_result(), depth_range,
                           self.latest['left/camera_info'],
                           to_rgb8(left, left_msg.encoding)
                           if self.params['publish_points'] else None)
        frame.extra['disparity'] = lambda: disparity_message(result, header)
        if result.extras.get('training_baseline') is False:
            frame.hints.append(('rig', 'the model spec has no training-rig baseline: depth = '
                                'fx B / d with this rig\'s baseline, right only if the model '
                                'was trained on this rig'))
        ratio = result.extras.get('focal_ratio')
        if ratio is not None and abs(ratio - 1.0) > RIG_RATIO_TOLERANCE:
            frame.hints.append(('rig', f'this camera has {ratio:.2f} x the fx / width of the '
                                'one the model was trained on: its depth is scaled by that '
                                'factor (things look nearer in a narrower view), an assumption; '
                                'fine-tune the model on this rig\'s pairs to be sure'))
        return frame


def disparity_message(result, header) -> bytes:
    """Serialized stereo_msgs/DisparityImage of a StereoResult: 32FC1 pixels, unknown below
    min_disparity (as the message defines), f and T such that Z = f T / d."""
    disparity = np.where(np.isfinite(result.disparity), result.disparity,
                         np.float32(result.min_disparity - 1.0)).astype(np.float32)
    return ros_io.disparity_to_cdr(
        disparity, header, f=float(result.camera.fx), t=float(result.baseline),
        min_disparity=float(result.min_disparity), max_disparity=float(result.max_disparity),
        delta_d=float(result.disparity_step), valid_window=result.valid_window)
