"""The one place that converts ROS messages <-> numpy arrays and camera intrinsics.

Images and point clouds (megabytes per message) travel as serialized CDR: the nodes subscribe
with ``raw=True`` and publish bytes, decoded and encoded here with rosbags' CDR serde, which
views pixel data in place instead of converting element buffers to and from Python objects
as rclpy's message classes do (tools/benchmark_node.py measures the node end to end).
Small messages (CameraInfo) stay message objects.
"""
from __future__ import annotations

import functools
import importlib
import struct

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.compressed import decode_compressed
from depth_nodes.core.encodings import (ImageFormatError, decode_image, encode_image,
                                        lookup_encoding)
from depth_nodes.core.pointcloud import XYZRGB_FIELDS, XYZRGB_POINT_STEP

_POINTFIELD_DTYPES = {
    PointField.INT8: np.int8, PointField.UINT8: np.uint8, PointField.INT16: np.int16,
    PointField.UINT16: np.uint16, PointField.INT32: np.int32, PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32, PointField.FLOAT64: np.float64,
}


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W[, C]) array in the message's encoding (a view when possible)."""
    return decode_image(msg.height, msg.width, msg.encoding, msg.step, bool(msg.is_bigendian),
                        msg.data)


def array_to_image(array: np.ndarray, encoding: str, header) -> Image:
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step, msg.data = encode_image(array, encoding)
    return msg


def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """CameraInfo -> intrinsics (P preferred over K: image_rect topics are rectified).

    Raises CameraModelError for an uncalibrated camera (zero focal length).
    """
    return CameraIntrinsics.from_k(msg.k, msg.width, msg.height, msg.p)


def intrinsics_to_camera_info(camera: CameraIntrinsics, header,
                              template: CameraInfo | None = None) -> CameraInfo:
    """CameraInfo for an image with these intrinsics, e.g. a depth image at another size.

    Distortion and rectification are copied from ``template`` (the input's camera_info):
    resizing does not change them in normalised coordinates.
    """
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = camera.width, camera.height
    msg.k = camera.k.reshape(-1).tolist()
    msg.p = camera.p.reshape(-1).tolist()
    if template is not None:
        msg.distortion_model = template.distortion_model
        msg.d = list(template.d)
        msg.r = list(template.r)
    else:
        msg.distortion_model = 'plumb_bob'
        msg.d = [0.0] * 5
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return msg


def pointcloud2_to_xyz(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> (N, 3) float32 x, y, z; raises ImageFormatError if fields are missing."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in ('x', 'y', 'z') if n not in fields]
    if missing:
        raise ImageFormatError(f'point cloud has no {"/".join(missing)} field(s) '
                               f'(fields: {sorted(fields) or "none"})', 'point_fields')
    count = msg.width * msg.height
    if msg.point_step <= 0 or len(msg.data) < msg.row_step * msg.height or \
            msg.row_step < msg.point_step * msg.width:
        raise ImageFormatError(f'point cloud data of {len(msg.data)} bytes does not fit '
                               f'{msg.width}x{msg.height} points of {msg.point_step} bytes',
                               'data_size')
    rows = np.frombuffer(msg.data, dtype=np.uint8)[:msg.row_step * msg.height]
    rows = rows.reshape(msg.height, msg.row_step)[:, :msg.point_step * msg.width]
    points = np.ascontiguousarray(rows).reshape(count, msg.point_step)
    out = np.empty((count, 3), dtype=np.float32)
    order = '>' if msg.is_bigendian else '<'
    for i, name in enumerate(('x', 'y', 'z')):
        f = fields[name]
        dtype = np.dtype(_POINTFIELD_DTYPES.get(f.datatype, np.float32)).newbyteorder(order)
        size = dtype.itemsize
        out[:, i] = points[:, f.offset:f.offset + size].copy().view(dtype)[:, 0]
    return out


# -- serialized (CDR) messages ---------------------------------------------------------------
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTCLOUD2_TYPE = 'sensor_msgs/msg/PointCloud2'
DISPARITY_TYPE = 'stereo_msgs/msg/DisparityImage'


def message_class(msgtype: str):
    """The rclpy message class of 'package/msg/Name'."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def prepare_cdr() -> None:
    """Build the CDR type store now: nodes call it at start, not on the first frame."""
    _typestore()


@functools.cache
def _typestore():
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_JAZZY)   # sensor_msgs/std_msgs are unchanged in Kilted


def image_from_cdr(raw: bytes):
    """Serialized sensor_msgs/Image -> a message-like object whose ``data`` views ``raw``.

    It has the fields of sensor_msgs/Image (header.stamp.sec, header.frame_id, height, ...),
    so image_to_array() and header_from() accept it.
    """
    try:
        return _typestore().deserialize_cdr(raw, IMAGE_TYPE)
    except Exception as exc:  # truncated or foreign bytes
        raise ImageFormatError(f'undecodable Image message ({exc})', 'cdr') from None


def header_from(message) -> Header:
    """std_msgs/Header of a message object or of a decoded CDR message."""
    header = message.header
    if isinstance(header, Header):
        return header
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                  frame_id=header.frame_id)


def _cdr_header(header: Header):
    store = _typestore()
    time_t = store.types['builtin_interfaces/msg/Time']
    return store.types['std_msgs/msg/Header'](
        stamp=time_t(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
        frame_id=header.frame_id)


def image_to_cdr(array: np.ndarray, encoding: str, header: Header) -> bytes:
    """(H, W[, C]) array -> serialized sensor_msgs/Image, ready for Publisher.publish()."""
    step, _ = encode_image(array[:1], encoding)  # validates shape/encoding on one row
    data = np.ascontiguousarray(array, dtype=lookup_encoding(encoding).dtype)
    store = _typestore()
    msg = store.types[IMAGE_TYPE](
        header=_cdr_header(header), height=int(array.shape[0]), width=int(array.shape[1]),
        encoding=encoding, is_bigendian=0, step=step, data=data.reshape(-1).view(np.uint8))
    return bytes(store.serialize_cdr(msg, IMAGE_TYPE))


def disparity_to_cdr(disparity: np.ndarray, header: Header, *, f: float, t: float,
                     min_disparity: float, max_disparity: float, delta_d: float,
                     valid_window: tuple[int, int, int, int]) -> bytes:
    """(H, W) float32 disparity -> serialized stereo_msgs/DisparityImage (its image 32FC1,
    ``valid_window`` x, y, width, height), ready for Publisher.publish() (serialized here,
    not converted element by element as a message object would be)."""
    store = _typestore()
    msg_header = _cdr_header(header)
    data = np.ascontiguousarray(disparity, dtype=np.float32)
    image = store.types[IMAGE_TYPE](
        header=msg_header, height=int(data.shape[0]), width=int(data.shape[1]),
        encoding='32FC1', is_bigendian=0, step=4 * int(data.shape[1]),
        data=data.reshape(-1).view(np.uint8))
    x, y, width, height = (int(v) for v in valid_window)
    roi = store.types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=x, y_offset=y, height=height, width=width, do_rectify=False)
    msg = store.types[DISPARITY_TYPE](
        header=msg_header, image=image, f=float(f), t=float(t), valid_window=roi,
        min_disparity=float(min_disparity), max_disparity=float(max_disparity),
        delta_d=float(delta_d))
    return bytes(store.serialize_cdr(msg, DISPARITY_TYPE))


def xyzrgb_to_pointcloud2_cdr(cloud: np.ndarray, header: Header) -> bytes:
    """(H, W, 4) float32 x, y, z, rgb -> serialized organised PointCloud2."""
    store = _typestore()
    field_t = store.types['sensor_msgs/msg/PointField']
    data = np.ascontiguousarray(cloud, dtype=np.float32)
    msg = store.types[POINTCLOUD2_TYPE](
        header=_cdr_header(header), height=int(cloud.shape[0]), width=int(cloud.shape[1]),
        fields=[field_t(name=n, offset=o, datatype=d, count=c)
                for n, o, d, c in XYZRGB_FIELDS],
        is_bigendian=False, point_step=XYZRGB_POINT_STEP,
        row_step=XYZRGB_POINT_STEP * int(cloud.shape[1]), data=data.reshape(-1).view(np.uint8),
        is_dense=bool(np.isfinite(data[:, :, :3]).all()))
    return bytes(store.serialize_cdr(msg, POINTCLOUD2_TYPE))


# -- image_transport 'compressed' / 'compressedDepth' (sensor_msgs/CompressedImage) ----------
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'


def compressed_image_from_cdr(raw: bytes):
    """Serialized sensor_msgs/CompressedImage -> a message-like object (header, format, data
    viewing ``raw``); ImageFormatError 'cdr' when the bytes are not one."""
    try:
        return _typestore().deserialize_cdr(raw, COMPRESSED_IMAGE_TYPE)
    except Exception as exc:  # truncated or foreign bytes
        raise ImageFormatError(f'undecodable CompressedImage message ({exc})', 'cdr') from None


def compressed_image_to_cdr(fmt: str, data: bytes, header: Header) -> bytes:
    """A CompressedImage payload (core.compressed.encode_*) -> serialized message."""
    store = _typestore()
    msg = store.types[COMPRESSED_IMAGE_TYPE](
        header=_cdr_header(header), format=fmt, data=np.frombuffer(data, np.uint8))
    return bytes(store.serialize_cdr(msg, COMPRESSED_IMAGE_TYPE))


def decompress_image(msg):
    """A CompressedImage (image_transport 'compressed' or 'compressedDepth'; a message object
    or compressed_image_from_cdr()'s) -> the image as image_from_cdr() gives it (fields of
    sensor_msgs/Image, the same header), decoded by core.compressed; ImageFormatError for a
    payload that does not decode."""
    array, encoding = decode_compressed(msg.format, msg.data)
    step, _ = encode_image(array[:1], encoding)    # checks shape against the encoding
    return _typestore().types[IMAGE_TYPE](
        header=msg.header, height=int(array.shape[0]), width=int(array.shape[1]),
        encoding=encoding, is_bigendian=0, step=step,
        data=np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def cdr_stamp_ns(raw: bytes) -> int:
    """header.stamp in nanoseconds of a serialized message that starts with a std_msgs/Header
    (Image, CompressedImage, CameraInfo, PointCloud2): after the 4-byte CDR encapsulation
    header come int32 sec and uint32 nanosec, in the byte order the encapsulation names."""
    if len(raw) < 12:
        raise ImageFormatError(f'a message of {len(raw)} bytes has no header', 'cdr')
    order = '<' if raw[1] & 1 else '>'
    sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
    return sec * 10**9 + nanosec
