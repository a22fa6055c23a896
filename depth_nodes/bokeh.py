"""Synthetic shallow depth of field for an image + depth file pair, offline.

    python -m depth_nodes.bokeh --image in.png --depth depth.png --focus-distance 2.0 \
        --f-number 1.8 --focal-length-mm 50 --sensor-width-mm 36 --output out.png

Depth files and their units:
  .png / 16-bit .tif(f)   millimetres, 0 = unknown (REP 118 16UC1; NYU, DIML, Kinect)
  .npy / 32-bit .tif(f) / .exr   metres, NaN / 0 / -inf = unknown, +inf = beyond range
A depth map of another size than the image is resized (nearest neighbour). Several
``--focus-distance`` values write one image each (``out_1.5m.png``, ...); ``--montage``
writes input | depth | result(s) side by side; ``--repeat N`` prints the rendering time.
Exit status: 0 done, 2 bad arguments or unreadable input (the message names the file).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# OpenCV reads OpenEXR only when this is set before it is imported.
os.environ.setdefault('OPENCV_IO_ENABLE_OPENEXR', '1')

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from depth_nodes.core.bokeh import (UNKNOWN_DEPTH_POLICIES, BokehError, ThinLens,  # noqa: E402
                                    focus_distance_at, render_depth_of_field)
from depth_nodes.core.colorize import colorize_depth  # noqa: E402


class InputFileError(ValueError):
    """An input file that cannot be used; the message names it."""


def read_image(path: Path) -> np.ndarray:
    """8/16-bit image as stored (colour in OpenCV's BGR order, which the blur keeps)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputFileError(f'{path}: not a readable image')
    if image.dtype not in (np.uint8, np.uint16) or image.ndim == 3 and image.shape[2] not in (
            3, 4):
        raise InputFileError(f'{path}: expected an 8/16-bit gray, BGR or BGRA image, got '
                             f'{image.dtype} {image.shape}')
    return image


def read_depth(path: Path) -> np.ndarray:
    """Depth file -> (H, W) float32 metres (see the module docstring for units)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputFileError(f'{path}: no such depth file')
    if suffix == '.npy':
        try:
            depth = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputFileError(f'{path}: not a numpy array file ({exc})') from None
        if not np.issubdtype(depth.dtype, np.floating):
            raise InputFileError(f'{path}: .npy depth must be float metres, got {depth.dtype}')
    else:
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if depth is None:
            raise InputFileError(f'{path}: not a readable depth image'
                                 + (' (OpenCV without OpenEXR?)' if suffix == '.exr' else ''))
        if depth.dtype == np.uint16:
            metres = depth.astype(np.float32) * np.float32(1e-3)
            metres[depth == 0] = np.nan
            depth = metres
        elif not np.issubdtype(depth.dtype, np.floating):
            raise InputFileError(f'{path}: depth must be 16-bit millimetres or 32-bit float '
                                 f'metres, got {depth.dtype} (an 8-bit picture of depth?)')
    if depth.ndim == 3 and depth.shape[2] >= 1:
        depth = depth[:, :, 0]        # EXR and TIFF readers may add channels
    if depth.ndim != 2:
        raise InputFileError(f'{path}: depth must be a single-channel image, got {depth.shape}')
    return depth.astype(np.float32)


def montage(image: np.ndarray, depth: np.ndarray, results: list[np.ndarray]) -> np.ndarray:
    """input | turbo-coloured depth | result(s), 8-bit BGR, with 4 px white gaps."""
    def bgr8(picture):
        if picture.dtype == np.uint16:
            picture = (picture >> 8).astype(np.uint8)
        if picture.ndim == 2:
            return cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
        return picture[:, :, :3]
    height, width = image.shape[:2]
    known = depth[np.isfinite(depth) & (depth > 0)]
    lo, hi = (np.percentile(known, [1, 99]) if known.size else (0.1, 1.0))
    hi = max(hi, lo + 1e-3)
    # Clipped into the colour range; only unknown depth stays black.
    shown = np.clip(cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST), lo, hi)
    coloured = cv2.cvtColor(colorize_depth(shown, float(lo), float(hi)), cv2.COLOR_RGB2BGR)
    gap = np.full((height, 4, 3), 255, np.uint8)
    tiles = [bgr8(image), coloured] + [bgr8(r) for r in results]
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m depth_nodes.bokeh', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--image', type=Path, required=True)
    parser.add_argument('--depth', type=Path, required=True,
                        help='depth file: .png/.tif 16-bit mm, .npy/.tif/.exr float metres')
    focus = parser.add_mutually_exclusive_group(required=True)
    focus.add_argument('--focus-distance', type=float, nargs='+', metavar='METRES')
    focus.add_argument('--focus-point', type=float, nargs=2, metavar=('X', 'Y'),
                       help='autofocus on the depth at this image pixel')
    parser.add_argument('--f-number', type=float, default=1.8)
    parser.add_argument('--focal-length-mm', type=float, default=50.0)
    parser.add_argument('--sensor-width-mm', type=float, default=36.0)
    parser.add_argument('--max-blur-radius', type=float, default=32.0, metavar='PX')
    parser.add_argument('--unknown-depth', choices=UNKNOWN_DEPTH_POLICIES, default='sharp')
    parser.add_argument('--output', type=Path, help='result image (one per focus distance)')
    parser.add_argument('--montage', type=Path, help='input | depth | result(s) image')
    parser.add_argument('--repeat', type=int, default=1, help='render N times, print timing')
    args = parser.parse_args(argv)
    if args.output is None and args.montage is None:
        parser.error('give --output and/or --montage')
    return args


def output_paths(output: Path, distances: list[float]) -> list[Path]:
    if len(distances) == 1:
        return [output]
    return [output.with_name(f'{output.stem}_{d:g}m{output.suffix}') for d in distances]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        lens = ThinLens(args.focal_length_mm, args.f_number, args.sensor_width_mm)
        image, depth = read_image(args.image), read_depth(args.depth)
        distances = args.focus_distance
        if args.focus_point is not None:
            found = focus_distance_at(depth, *args.focus_point, (image.shape[1], image.shape[0]))
            if found is None:
                raise InputFileError(f'{args.depth}: no depth at focus point {args.focus_point}')
            distances = [found]
            print(f'focus distance at {args.focus_point}: {found:.3f} m')
        results = []
        for distance in distances:
            timings, cpu = [], []
            for _ in range(max(1, args.repeat)):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = render_depth_of_field(image, depth, distance, lens,
                                               max_radius=args.max_blur_radius,
                                               unknown_depth=args.unknown_depth)
                timings.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            if args.repeat > 1:
                # CPU time (all threads) is what a frame costs; wall time also counts
                # waiting for a CPU on a busy machine.
                print(f'{image.shape[1]}x{image.shape[0]} focus {distance:g} m: wall median '
                      f'{np.median(timings) * 1e3:.1f} ms (best {min(timings) * 1e3:.1f}), '
                      f'CPU median {np.median(cpu) * 1e3:.1f} ms over {len(timings)} runs')
            results.append(result)
    except (InputFileError, BokehError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    writes = []
    if args.output is not None:
        writes += zip(output_paths(args.output, distances), results)
    if args.montage is not None:
        writes.append((args.montage, montage(image, depth, results)))
    for path, picture in writes:
        path.parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_PNG_COMPRESSION, 9] if path.suffix.lower() == '.png' else []
        if not cv2.imwrite(str(path), picture, params):
            print(f'error: could not write {path}', file=sys.stderr)
            return 2
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
