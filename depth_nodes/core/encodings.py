"""Raw image buffers <-> numpy arrays, following sensor_msgs/Image semantics.

ROS-free: functions take the fields of an Image message (height, width, encoding, step,
is_bigendian, data) so the node, the bag tools and the tests share one implementation.
Decoding returns a zero-copy view of ``data`` whenever the layout allows it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ImageFormatError(ValueError):
    """Input that cannot be interpreted; the message says what is wrong.

    ``kind`` names the class of problem (e.g. 'encoding', 'step') so a node can throttle
    its warnings per kind and count them in diagnostics.
    """

    def __init__(self, message: str, kind: str = 'format'):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Encoding:
    dtype: np.dtype
    channels: int
    kind: str  # 'color', 'mono' or 'depth'


ENCODINGS: dict[str, Encoding] = {
    'rgb8': Encoding(np.dtype(np.uint8), 3, 'color'),
    'bgr8': Encoding(np.dtype(np.uint8), 3, 'color'),
    'rgba8': Encoding(np.dtype(np.uint8), 4, 'color'),
    'bgra8': Encoding(np.dtype(np.uint8), 4, 'color'),
    'mono8': Encoding(np.dtype(np.uint8), 1, 'mono'),
    '8UC1': Encoding(np.dtype(np.uint8), 1, 'mono'),
    'mono16': Encoding(np.dtype(np.uint16), 1, 'mono'),
    # REP 118: 16UC1 depth is millimetres, 32FC1 depth is metres.
    '16UC1': Encoding(np.dtype(np.uint16), 1, 'depth'),
    '32FC1': Encoding(np.dtype(np.float32), 1, 'depth'),
}

# Largest image accepted: guards the node against a driver that reports garbage sizes.
MAX_PIXELS = 8192 * 8192


def lookup_encoding(encoding: str) -> Encoding:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ImageFormatError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})",
            'encoding') from None


def decode_image(height: int, width: int, encoding: str, step: int, is_bigendian: bool,
                 data) -> np.ndarray:
    """View a raw image buffer as an array of shape (H, W) or (H, W, C).

    Honours row padding (``step`` > width * bytes per pixel) and big-endian multi-byte data.
    Raises ImageFormatError naming the problem for anything inconsistent.
    """
    enc = lookup_encoding(encoding)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'zero-size image ({width}x{height})', 'zero_size')
    if height * width > MAX_PIXELS:
        raise ImageFormatError(f'image of {width}x{height} exceeds the {MAX_PIXELS}-pixel limit',
                               'too_large')
    pixel_bytes = enc.dtype.itemsize * enc.channels
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageFormatError(
            f'step {step} is smaller than width * bytes per pixel = {row_bytes} ({encoding})',
            'step')
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size != height * step:
        raise ImageFormatError(
            f'data has {buf.size} bytes but height * step = {height * step}', 'data_size')
    if step % enc.dtype.itemsize:
        raise ImageFormatError(f'step {step} is not a multiple of the {encoding} element size',
                               'step')
    dtype = enc.dtype.newbyteorder('>' if is_bigendian else '<')
    rows = buf.reshape(height, step)[:, :row_bytes]
    if step == row_bytes:
        array = buf.view(dtype)
    else:
        array = np.ascontiguousarray(rows).view(dtype)
    shape = (height, width) if enc.channels == 1 else (height, width, enc.channels)
    array = array.reshape(shape)
    if dtype.byteorder == '>' and enc.dtype.itemsize > 1:
        array = array.astype(enc.dtype)  # to native byte order
    return array


def encode_image(array: np.ndarray, encoding: str) -> tuple[int, bytes]:
    """Pack an array into (step, data) for an Image message of the given encoding."""
    enc = lookup_encoding(encoding)
    expected_ndim = 2 if enc.channels == 1 else 3
    if array.ndim != expected_ndim or (enc.channels > 1 and array.shape[2] != enc.channels):
        raise ImageFormatError(f'array of shape {array.shape} does not fit encoding {encoding}',
                               'shape')
    array = np.ascontiguousarray(array, dtype=enc.dtype)
    return array.shape[1] * enc.dtype.itemsize * enc.channels, array.tobytes()


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """A depth image in its REP 118 encoding to float32 metres, unknown pixels as NaN.

    16UC1 is millimetres with 0 = unknown; 32FC1 is metres with 0, NaN and +-Inf = unknown.
    """
    if encoding == '16UC1':
        metres = depth.astype(np.float32) * np.float32(1e-3)
        metres[depth == 0] = np.nan
        return metres
    if encoding == '32FC1':
        metres = depth.astype(np.float32, copy=True)
        metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
        return metres
    raise ImageFormatError(f"depth must be 16UC1 or 32FC1, got '{encoding}'", 'encoding')


def to_rgb8(image: np.ndarray, encoding: str) -> np.ndarray:
    """Any colour or mono encoding as an (H, W, 3) uint8 RGB image (for colouring points)."""
    enc = lookup_encoding(encoding)
    if enc.kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding, not an image', 'encoding')
    if enc.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if enc.channels == 1:
        return np.repeat(image[:, :, None], 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(image[:, :, 2::-1])
    return np.ascontiguousarray(image[:, :, :3])
