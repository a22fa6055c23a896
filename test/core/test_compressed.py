"""CompressedImage payloads (image_transport 'compressed' and 'compressedDepth') -> arrays."""
import cv2
import numpy as np
import pytest

from depth_nodes.core.compressed import (DEPTH_HEADER, CompressedFormat, decode_compressed,
                                         encode_compressed, encode_compressed_depth,
                                         parse_format)
from depth_nodes.core.encodings import ImageFormatError


def smooth_rgb(height=48, width=64):
    """A smooth colour ramp: jpeg reproduces it within a few grey levels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x * 255 / (width - 1), y * 255 / (height - 1),
                     np.full_like(x, 60)], axis=2).round().astype(np.uint8)


@pytest.mark.parametrize('text, expected', [
    ('bgr8; jpeg compressed bgr8', CompressedFormat('bgr8', 'jpeg', False, True)),
    ('rgb8; png compressed bgr8', CompressedFormat('rgb8', 'png', False, True)),
    ('mono8; jpeg compressed mono8', CompressedFormat('mono8', 'jpeg', False, False)),
    ('mono16; png compressed ', CompressedFormat('mono16', 'png', False, False)),
    ('rgb8; jpeg compressed rgb8', CompressedFormat('rgb8', 'jpeg', False, False)),
    ('jpeg', CompressedFormat('', 'jpeg', False, True)),
    ('16UC1; compressedDepth png', CompressedFormat('16UC1', 'png', True, False)),
    ('32FC1; compressedDepth', CompressedFormat('32FC1', 'png', True, False)),
    ('32FC1; compressedDepth rvl', CompressedFormat('32FC1', 'rvl', True, False)),
])
def test_format_strings_as_image_transport_writes_them(text, expected):
    assert parse_format(text) == expected


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_jpeg_colour_round_trip_keeps_channel_order_within_jpeg_error(encoding):
    image = smooth_rgb()
    fmt, data = encode_compressed(image, encoding, 'jpeg', quality=95)
    assert fmt == f'{encoding}; jpeg compressed bgr8'
    decoded, decoded_encoding = decode_compressed(fmt, data)
    assert decoded_encoding == encoding and decoded.shape == (48, 64, 3)
    error = np.abs(decoded.astype(int) - image.astype(int))
    assert error.mean() < 2.0 and error.max() <= 12
    # Channel order: channel 0 ramps along x (0 -> 255), channel 2 is the constant 60.
    assert decoded[:, -1, 0].mean() == pytest.approx(255, abs=4)
    assert decoded[:, :, 2].mean() == pytest.approx(60, abs=3)


def test_png_is_lossless_for_rgb8_mono8_and_mono16():
    rgb = smooth_rgb()
    fmt, data = encode_compressed(rgb, 'rgb8', 'png')
    assert fmt == 'rgb8; png compressed bgr8'
    decoded, encoding = decode_compressed(fmt, data)
    assert encoding == 'rgb8' and np.array_equal(decoded, rgb)
    mono = rgb[:, :, 0]
    decoded, encoding = decode_compressed(*encode_compressed(mono, 'mono8', 'png'))
    assert encoding == 'mono8' and np.array_equal(decoded, mono)
    mono16 = (np.arange(48 * 64, dtype=np.uint16) * 21).reshape(48, 64)
    fmt, data = encode_compressed(mono16, 'mono16', 'png')
    assert fmt == 'mono16; png compressed '
    decoded, encoding = decode_compressed(fmt, data)
    assert encoding == 'mono16' and decoded.dtype == np.uint16
    assert np.array_equal(decoded, mono16)


def test_mono8_jpeg_and_a_bare_legacy_format():
    mono = smooth_rgb()[:, :, 0]
    fmt, data = encode_compressed(mono, 'mono8', 'jpeg')
    assert fmt == 'mono8; jpeg compressed mono8'
    decoded, encoding = decode_compressed(fmt, data)
    assert encoding == 'mono8' and decoded.shape == (48, 64)
    assert np.abs(decoded.astype(int) - mono).mean() < 2.0
    # Older publishers wrote only 'jpeg': 3 channels are bgr8.
    bgr = smooth_rgb()
    ok, raw = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded, encoding = decode_compressed('jpeg', raw.tobytes())
    assert encoding == 'bgr8' and np.abs(decoded.astype(int) - bgr).mean() < 2.0


def test_compressed_depth_16uc1_is_lossless_millimetres_below_depth_max():
    mm = np.array([[0, 500, 1234], [9999, 10000, 10001]], dtype=np.uint16)
    fmt, data = encode_compressed_depth(mm, '16UC1', depth_max=10.0)
    assert fmt == '16UC1; compressedDepth png'
    decoded, encoding = decode_compressed(fmt, data)
    assert encoding == '16UC1' and decoded.dtype == np.uint16
    assert decoded.tolist() == [[0, 500, 1234], [9999, 10000, 0]]   # > depth_max -> 0


def test_compressed_depth_32fc1_header_by_hand():
    # q = 100, Z_max = 10 m: A = 100 * 101 = 10100, B = 1 - 10100 / 10 = -1009.
    # v = 9091 -> Z = 10100 / (9091 + 1009) = 1 m; v = 4041 -> 2 m; v = 0 -> unknown.
    stored = np.array([[9091, 4041, 0]], dtype=np.uint16)
    ok, png = cv2.imencode('.png', stored)
    data = DEPTH_HEADER.pack(0, 10100.0, -1009.0) + png.tobytes()
    depth, encoding = decode_compressed('32FC1; compressedDepth png', data)
    assert encoding == '32FC1' and depth.dtype == np.float32
    assert depth[0, :2].tolist() == [1.0, 2.0] and np.isnan(depth[0, 2])
    fmt, ours = encode_compressed_depth(np.array([[1.0, 2.0, np.nan]], np.float32), '32FC1')
    assert DEPTH_HEADER.unpack(ours[:12]) == (0, 10100.0, -1009.0)
    assert cv2.imdecode(np.frombuffer(ours[12:], np.uint8),
                        cv2.IMREAD_UNCHANGED).tolist() == [[9091, 4041, 0]]


def test_compressed_depth_32fc1_round_trip_within_the_quantisation_step():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 9.9, size=(60, 80)).astype(np.float32)
    depth[0, :5] = [np.nan, 0.0, -1.0, 10.0, 25.0]          # unknown or beyond depth_max
    decoded, encoding = decode_compressed(*encode_compressed_depth(depth, '32FC1'))
    assert encoding == '32FC1'
    assert np.isnan(decoded[0, :5]).all()
    valid = np.isfinite(depth) & (depth > 0) & (depth < 10.0)
    valid[0, :5] = False
    # v = floor(A / Z + B) moves Z up by at most one step, dZ = Z^2 / A (A = 10100).
    error = decoded[valid] - depth[valid]
    step = depth[valid] ** 2 / 10100.0
    assert (error >= -1e-5).all() and (error <= step * 1.001 + 1e-5).all()
    assert np.abs(error).max() < 0.01        # 1 cm below 10 m


@pytest.mark.parametrize('text, data, kind', [
    ('bgr8; jpeg compressed bgr8', b'not a jpeg at all', 'compressed_data'),
    ('bgr8; jpeg compressed bgr8', b'', 'compressed_data'),
    ('bgr8; webp2 compressed bgr8', b'\x00' * 10, 'compressed_format'),
    ('32FC1; compressedDepth rvl', b'\x00' * 40, 'compressed_format'),
    ('32FC1; compressedDepth png', b'\x00' * 12, 'compressed_data'),
    ('8UC3; compressedDepth png', b'\x00' * 40, 'compressed_format'),
])
def test_bad_payloads_raise_image_format_error_with_a_kind(text, data, kind):
    with pytest.raises(ImageFormatError) as caught:
        decode_compressed(text, data)
    assert caught.value.kind == kind


def test_an_eight_bit_png_labelled_compressed_depth_is_refused():
    ok, png = cv2.imencode('.png', np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageFormatError, match='16-bit') as caught:
        decode_compressed('16UC1; compressedDepth png', b'\x00' * 12 + png.tobytes())
    assert caught.value.kind == 'compressed_data'


def test_a_forged_size_is_refused_before_decoding():
    from depth_nodes.core.compressed import declared_size
    ok, jpeg = cv2.imencode('.jpg', smooth_rgb())
    ok, png = cv2.imencode('.png', smooth_rgb())
    assert declared_size(jpeg.tobytes()) == (64, 48) == declared_size(png.tobytes())
    forged = bytearray(jpeg.tobytes())
    sof = forged.index(b'\xff\xc0')
    forged[sof + 5:sof + 9] = (40000).to_bytes(2, 'big') * 2       # 40000 x 40000
    with pytest.raises(ImageFormatError, match='40000x40000 exceeds') as caught:
        decode_compressed('bgr8; jpeg compressed bgr8', bytes(forged))
    assert caught.value.kind == 'too_large'
