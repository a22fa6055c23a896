import numpy as np
import pytest

from depth_nodes.core.encodings import (ImageFormatError, decode_image, depth_to_metres,
                                        encode_image, to_rgb8)


def test_rgb8_is_a_zero_copy_view_with_exact_pixels():
    data = bytes(range(2 * 3 * 3))
    image = decode_image(2, 3, 'rgb8', 9, False, data)
    assert image.shape == (2, 3, 3)
    assert image[1, 2].tolist() == [15, 16, 17]
    assert not image.flags.owndata


def test_step_padding_is_skipped():
    # 2 rows of 3 mono8 pixels, each row padded to 5 bytes with 0xEE.
    data = bytes([1, 2, 3, 0xEE, 0xEE, 4, 5, 6, 0xEE, 0xEE])
    image = decode_image(2, 3, 'mono8', 5, False, data)
    assert image.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_16uc1_big_endian_and_padding():
    values = np.array([[1500, 2], [65535, 0]], dtype='>u2')
    rows = [values[r].tobytes() + b'\x00\x00' for r in range(2)]  # step = 6
    image = decode_image(2, 2, '16UC1', 6, True, b''.join(rows))
    assert image.dtype == np.uint16 and image.dtype.byteorder in ('=', '<', '|')
    assert image.tolist() == [[1500, 2], [65535, 0]]


def test_16uc1_millimetres_to_metres_with_zero_unknown():
    metres = depth_to_metres(np.array([[1500, 0]], dtype=np.uint16), '16UC1')
    assert metres[0, 0] == pytest.approx(1.5)
    assert np.isnan(metres[0, 1])


def test_32fc1_non_positive_and_non_finite_are_unknown():
    depth = np.array([[2.5, 0.0, -1.0, np.inf, np.nan]], dtype=np.float32)
    metres = depth_to_metres(depth, '32FC1')
    assert metres[0, 0] == 2.5
    assert np.isnan(metres[0, 1:]).all()


@pytest.mark.parametrize('kwargs, kind', [
    (dict(height=2, width=2, encoding='yuv422', step=4, data=bytes(8)), 'encoding'),
    (dict(height=0, width=2, encoding='mono8', step=2, data=b''), 'zero_size'),
    (dict(height=2, width=4, encoding='rgb8', step=8, data=bytes(16)), 'step'),
    (dict(height=2, width=2, encoding='mono8', step=2, data=bytes(3)), 'data_size'),
    (dict(height=2, width=2, encoding='mono16', step=5, data=bytes(10)), 'step'),
    (dict(height=100000, width=100000, encoding='mono8', step=100000, data=b''), 'too_large'),
])
def test_malformed_buffers_are_rejected_with_their_kind(kwargs, kind):
    with pytest.raises(ImageFormatError) as err:
        decode_image(is_bigendian=False, **kwargs)
    assert err.value.kind == kind


def test_encode_decode_round_trip_float():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    step, data = encode_image(depth, '32FC1')
    assert step == 16
    np.testing.assert_array_equal(decode_image(3, 4, '32FC1', step, False, data), depth)


def test_to_rgb8_swaps_bgr_and_drops_alpha_and_scales_mono16():
    bgra = np.array([[[10, 20, 30, 255]]], dtype=np.uint8)
    assert to_rgb8(bgra, 'bgra8').tolist() == [[[30, 20, 10]]]
    mono16 = np.array([[0x1234]], dtype=np.uint16)
    assert to_rgb8(mono16, 'mono16').tolist() == [[[0x12, 0x12, 0x12]]]
