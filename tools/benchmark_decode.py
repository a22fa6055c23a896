#!/usr/bin/env python3
"""What a compressed input costs the node: decoding a serialized sensor_msgs/Image (raw) vs a
jpeg sensor_msgs/CompressedImage of the same frame, side by side, at two frame sizes; and the
part of the jpeg's cost paid in the subscription callback (the message, not its pixels).

  python tools/benchmark_decode.py [--quality 90]
"""
from __future__ import annotations

import argparse
import sys
import timeit

import cv2
import numpy as np


def frame(width: int, height: int) -> np.ndarray:
    """Smooth ramps with a little noise, roughly as compressible as a camera image."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], 2).astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 8, image.shape, dtype=np.uint8)
    return cv2.GaussianBlur(image, (0, 0), 2) + noise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quality', type=int, default=90, help='jpeg quality')
    args = parser.parse_args(argv)
    from std_msgs.msg import Header

    from depth_nodes import ros_io
    from depth_nodes.core.compressed import encode_compressed
    for width, height, runs in ((640, 480, 20), (4000, 3000, 3)):
        image = frame(width, height)
        raw = ros_io.image_to_cdr(image, 'rgb8', Header())
        fmt, data = encode_compressed(image, 'rgb8', 'jpeg', args.quality)
        jpeg = ros_io.compressed_image_to_cdr(fmt, data, Header())
        cases = {
            'raw': lambda: ros_io.image_to_array(ros_io.image_from_cdr(raw)),
            'jpeg': lambda: ros_io.image_to_array(ros_io.decompress_image(
                ros_io.compressed_image_from_cdr(jpeg))),
            'jpeg message only (callback)': lambda: ros_io.compressed_image_from_cdr(jpeg)}
        sizes = {'raw': len(raw), 'jpeg': len(jpeg), 'jpeg message only (callback)': len(jpeg)}
        for name, decode in cases.items():
            seconds = min(timeit.repeat(decode, number=runs, repeat=3)) / runs
            print(f'{width}x{height} {name}: {sizes[name] / 1e6:.2f} MB per message, '
                  f'decode {seconds * 1e3:.2f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())
