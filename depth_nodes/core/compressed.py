"""sensor_msgs/CompressedImage payloads <-> numpy arrays, as image_transport's plugins write
them (ROS-free: functions take the message's ``format`` string and ``data`` bytes).

``format`` is "<raw encoding>; <codec> compressed <stored encoding>" for the ``compressed``
transport (compressed_image_transport), e.g. "bgr8; jpeg compressed bgr8",
"rgb8; png compressed bgr8", "mono8; jpeg compressed mono8", "mono8; png compressed ".
Colour is stored in BGR order when the tail says "compressed bgr..." (what the publisher
writes), else in RGB order (the subscriber's convention, kept for old recordings). A bare
"jpeg" or "png" comes from older publishers: 1 channel is mono8, 3 are bgr8.

``compressedDepth`` (compressed_depth_image_transport) is "<16UC1|32FC1>; compressedDepth png"
("32FC1; compressedDepth" from older publishers): the data start with a 12-byte ConfigHeader,
int32 compressionFormat (INV_DEPTH = 0) and float32 depthParam[2] = (A, B), little-endian,
followed by a 16-bit PNG. 16UC1 stores the millimetres as they are (depthParam unused).
32FC1 stores inverse depth quantised to uint16: v = A / Z + B, truncated, 0 = unknown, with
A = q (q + 1) and B = 1 - A / Z_max for the publisher's depth_quantization q (default 100)
and depth_max Z_max (default 10 m); decoding inverts it, Z = A / (v - B). The quantisation
step in depth is Z^2 / A (1 cm at 10 m for the defaults). The ``rvl`` codec is not decoded.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from depth_nodes.core.encodings import MAX_PIXELS, ImageFormatError, lookup_encoding

# compressed_depth_image_transport's ConfigHeader: enum compressionFormat + float[2].
DEPTH_HEADER = struct.Struct('<iff')
INV_DEPTH = 0
DEPTH_CODECS = ('png',)              # 'rvl' exists in the plugin, not decoded here
IMAGE_CODECS = ('jpeg', 'png')
# compressed_depth_image_transport's defaults (its depth_max / depth_quantization parameters)
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0


@dataclass(frozen=True)
class CompressedFormat:
    """A CompressedImage ``format`` string, parsed."""
    encoding: str          # the raw image's encoding; '' when the format does not say
    codec: str             # 'jpeg', 'png', 'rvl', ...
    depth: bool            # compressedDepth: ConfigHeader + 16-bit image
    stored_bgr: bool       # colour data in BGR order (else RGB)


def parse_format(text: str) -> CompressedFormat:
    """Parse a CompressedImage format string (ImageFormatError 'compressed_format' when it
    names no known codec)."""
    head, sep, tail = text.partition(';')
    encoding = head.strip() if sep else ''
    words = (tail if sep else text).split()
    if 'compressedDepth' in words:
        after = words[words.index('compressedDepth') + 1:]
        return CompressedFormat(encoding, after[0] if after else 'png', True, False)
    codec = next((w for w in words if w in ('jpeg', 'jpg', 'png', 'tiff', 'rvl')), '')
    if not codec:
        raise ImageFormatError(f"CompressedImage format '{text}' names no codec "
                               f"(expected e.g. 'bgr8; jpeg compressed bgr8')",
                               'compressed_format')
    return CompressedFormat(encoding, 'jpeg' if codec == 'jpg' else codec, False,
                            'compressed bgr' in tail or not sep)


def decode_compressed(text: str, data) -> tuple[np.ndarray, str]:
    """A CompressedImage's (format, data) -> (array, encoding) as the raw image would be:
    (H, W) or (H, W, C) in ``encoding`` (bgr8, rgb8, mono8, 16UC1, 32FC1 metres, ...).

    ImageFormatError kinds: 'compressed_format' (unknown or unsupported format or encoding),
    'compressed_data' (bytes that do not decode), 'too_large'.
    """
    fmt = parse_format(text)
    buffer = np.frombuffer(data, dtype=np.uint8)
    if fmt.depth:
        return _decode_depth(fmt, buffer, text)
    if fmt.codec not in IMAGE_CODECS:
        raise ImageFormatError(f"CompressedImage codec '{fmt.codec}' ({text!r}) is not "
                               f"supported (supported: {', '.join(IMAGE_CODECS)})",
                               'compressed_format')
    image = _imdecode(buffer, text)
    encoding = fmt.encoding or {1: 'mono8', 3: 'bgr8', 4: 'bgra8'}.get(_channels(image), '')
    try:
        enc = lookup_encoding(encoding)
    except ImageFormatError as exc:
        raise ImageFormatError(f'CompressedImage {text!r} of {_channels(image)} channel(s): '
                               f'{exc}', 'compressed_format') from None
    if enc.dtype.itemsize == 2 and image.dtype == np.uint8:
        image = image.astype(np.uint16) * np.uint16(256)    # jpeg keeps 8 of the 16 bits
    if image.dtype != enc.dtype:
        raise ImageFormatError(f'CompressedImage {text!r} holds {image.dtype} pixels, not '
                               f'{enc.dtype} as {encoding} needs', 'compressed_data')
    return _to_channels(image, encoding, enc.channels, fmt.stored_bgr), encoding


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a png (IHDR) or jpeg (SOF segment) header declares, read before
    decoding so that a forged size cannot make OpenCV allocate gigabytes; None if not found."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 24:
        return struct.unpack('>II', data[16:24])
    i = 2 if data[:2] == b'\xff\xd8' else len(data)
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:                       # fill byte
            i += 1
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:   # no length
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):   # SOFn
            height, width = struct.unpack('>HH', data[i + 5:i + 9])
            return width, height
        else:
            i += 2 + struct.unpack('>H', data[i + 2:i + 4])[0]
    return None


def _imdecode(buffer: np.ndarray, text: str) -> np.ndarray:
    size = declared_size(buffer[:65536].tobytes())
    if size and size[0] * size[1] > MAX_PIXELS:
        raise ImageFormatError(f'image of {size[0]}x{size[1]} exceeds the {MAX_PIXELS}-pixel '
                               'limit', 'too_large')
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise ImageFormatError(f'CompressedImage ({text!r}) data of {buffer.size} bytes do not '
                               'decode', 'compressed_data')
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageFormatError(f'image of {image.shape[1]}x{image.shape[0]} exceeds the '
                               f'{MAX_PIXELS}-pixel limit', 'too_large')
    return image


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def _to_channels(image: np.ndarray, encoding: str, channels: int, stored_bgr: bool
                 ) -> np.ndarray:
    """A decoded image (grey, or colour in stored order) in ``encoding``'s channel order."""
    have = _channels(image)
    if channels == 1:
        if have == 1:
            return image.reshape(image.shape[:2])
        code = cv2.COLOR_BGR2GRAY if stored_bgr else cv2.COLOR_RGB2GRAY
        return cv2.cvtColor(image[:, :, :3], code)
    if have == 1:
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        stored_bgr = True
    want_bgr = encoding.startswith('bgr')
    image = image[:, :, :3] if channels == 3 else image
    if stored_bgr != want_bgr:
        image = image[:, :, [2, 1, 0, 3][:image.shape[2]]]
    if channels == 4 and image.shape[2] == 3:
        alpha = np.full(image.shape[:2] + (1,), np.iinfo(image.dtype).max, image.dtype)
        image = np.concatenate([image, alpha], axis=2)
    return np.ascontiguousarray(image)


def _decode_depth(fmt: CompressedFormat, buffer: np.ndarray, text: str
                  ) -> tuple[np.ndarray, str]:
    if fmt.encoding not in ('16UC1', '32FC1'):
        raise ImageFormatError(f'compressedDepth ({text!r}) must be 16UC1 or 32FC1',
                               'compressed_format')
    if fmt.codec not in DEPTH_CODECS:
        raise ImageFormatError(f"compressedDepth codec '{fmt.codec}' ({text!r}) is not "
                               f"supported (supported: {', '.join(DEPTH_CODECS)})",
                               'compressed_format')
    if buffer.size <= DEPTH_HEADER.size:
        raise ImageFormatError(f'compressedDepth data of {buffer.size} bytes hold no image '
                               f'after the {DEPTH_HEADER.size}-byte header', 'compressed_data')
    _, quant_a, quant_b = DEPTH_HEADER.unpack(buffer[:DEPTH_HEADER.size].tobytes())
    stored = _imdecode(buffer[DEPTH_HEADER.size:], text)
    if stored.dtype != np.uint16 or stored.ndim != 2:
        raise ImageFormatError(f'compressedDepth ({text!r}) holds a {stored.dtype} image of '
                               f'{_channels(stored)} channel(s), not 16-bit single-channel',
                               'compressed_data')
    if fmt.encoding == '16UC1':
        return stored, '16UC1'
    if not (np.isfinite(quant_a) and np.isfinite(quant_b) and quant_a > 0):
        raise ImageFormatError(f'compressedDepth header has depthParam ({quant_a:g}, '
                               f'{quant_b:g}); need a finite A > 0', 'compressed_data')
    values = stored.astype(np.float32)
    with np.errstate(divide='ignore'):
        depth = np.float32(quant_a) / (values - np.float32(quant_b))
    depth[stored == 0] = np.nan
    return depth, '32FC1'


# -- encoders (the sample-bag tool and the round-trip tests) -----------------------------------
def encode_compressed(image: np.ndarray, encoding: str, codec: str = 'jpeg',
                      quality: int = 95) -> tuple[str, bytes]:
    """(format, data) of ``image`` as compressed_image_transport publishes it: colour as
    bgr8, grey as mono8 (jpeg) or in its own depth (png)."""
    enc = lookup_encoding(encoding)
    if codec not in IMAGE_CODECS or enc.kind == 'depth':
        raise ImageFormatError(f'cannot write {encoding} as {codec}', 'compressed_format')
    if enc.channels == 1:
        stored = image if codec == 'png' else _to_8bit(image)
        target = 'mono8' if codec == 'jpeg' else ''
    else:
        stored = _to_8bit(image)[:, :, :3]
        if not encoding.startswith('bgr'):
            stored = stored[:, :, ::-1]
        target = 'bgr8'
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == 'jpeg' else \
        [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode('.jpg' if codec == 'jpeg' else '.png',
                            np.ascontiguousarray(stored), params)
    if not ok:
        raise ImageFormatError(f'OpenCV could not write {encoding} as {codec}',
                               'compressed_format')
    return f'{encoding}; {codec} compressed {target}', data.tobytes()


def _to_8bit(image: np.ndarray) -> np.ndarray:
    return (image >> 8).astype(np.uint8) if image.dtype == np.uint16 else image


def encode_compressed_depth(depth: np.ndarray, encoding: str,
                            depth_max: float = DEFAULT_DEPTH_MAX,
                            depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION
                            ) -> tuple[str, bytes]:
    """(format, data) of a 16UC1 (mm) or 32FC1 (m) depth image as
    compressed_depth_image_transport's png codec writes it. Depth at or beyond ``depth_max``
    and unknown depth become 0; 32FC1 closer than A / (65535 - B) saturates at that depth."""
    if encoding == '16UC1':
        stored = np.where(depth > np.uint16(min(depth_max * 1000.0, 65535)), 0,
                          depth).astype(np.uint16)
        quant_a = quant_b = 0.0
    elif encoding == '32FC1':
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        depth = np.asarray(depth, dtype=np.float32)
        valid = np.isfinite(depth) & (depth > 0) & (depth < depth_max)
        with np.errstate(divide='ignore', invalid='ignore'):
            inverse = np.where(valid, quant_a / depth + quant_b, 0.0)
        stored = np.clip(inverse, 0, 65535).astype(np.uint16)     # truncated, as in C++
    else:
        raise ImageFormatError(f'compressedDepth takes 16UC1 or 32FC1, not {encoding}',
                               'compressed_format')
    ok, data = cv2.imencode('.png', stored, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ImageFormatError('OpenCV could not write the depth png', 'compressed_format')
    header = DEPTH_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b))
    return f'{encoding}; compressedDepth png', header + data.tobytes()
