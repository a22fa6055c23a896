"""Stereo self-supervision on a real pair: the Middlebury 2014 Motorcycle pair (scikit-image,
741x500) written as a rectified stereo bag whose frames are random crops and mirror flips.

    python -m training.stereo_adaptation OUTPUT_BAG [--frames 300] [--seed 0]

Each frame is one window of both views (same rows and columns, so the pair stays rectified)
of 75-100 % of the image width at the full image's aspect ratio, resized to 256 px wide;
every other frame is mirrored, which swaps the views (mirror(right) becomes the left view).
camera_infos carry the crop's intrinsics: fx scaled, cx/cy shifted, the right camera's
P[0, 3] = -fx B and its cx offset by the pair's doffs. Training the DPN on this bag
(training/configs/monodepth_motorcycle_adapt.yaml) is ADAPTATION ON THE TEST SCENE ITSELF:
the evaluation pair is the training material, so the numbers say how well self-supervision
fits one real scene, not how a model generalises.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from training.datasets.middlebury import MOTORCYCLE

TOPICS = {'left': '/stereo/left/image_rect', 'right': '/stereo/right/image_rect',
          'left_camera_info': '/stereo/left/camera_info',
          'right_camera_info': '/stereo/right/camera_info'}
FRAME_WIDTH = 256
RATE_HZ = 10.0


def crop_frames(left: np.ndarray, right: np.ndarray, frames: int, seed: int = 0):
    """(left, right, left camera, right camera) per frame: random windows, odd frames
    mirrored (views swapped), each resized to FRAME_WIDTH px wide."""
    rng = np.random.default_rng(seed)
    height, width = left.shape[:2]
    m = MOTORCYCLE
    baseline = m['baseline_mm'] / 1000.0
    for frame in range(frames):
        w = int(round(width * rng.uniform(0.75, 1.0)))
        h = min(height, int(round(w * height / width)))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        views = [v[y0:y0 + h, x0:x0 + w] for v in (left, right)]
        cx_l, cx_r, cy = m['cx'] - x0, m['cx'] + m['doffs'] - x0, m['cy'] - y0
        if frame % 2:
            # Mirrored, the right view becomes the left: x -> w - 1 - x for both.
            views = [np.ascontiguousarray(v[:, ::-1]) for v in views[::-1]]
            cx_l, cx_r = w - 1 - cx_r, w - 1 - cx_l
        out_h = int(round(h * FRAME_WIDTH / w))
        views = [cv2.resize(v, (FRAME_WIDTH, out_h), interpolation=cv2.INTER_AREA)
                 for v in views]
        left_cam = CameraIntrinsics(w, h, m['f'], m['f'], cx_l, cy).scaled(FRAME_WIDTH, out_h)
        right_cam = CameraIntrinsics(w, h, m['f'], m['f'], cx_r, cy,
                                     tx=-m['f'] * baseline).scaled(FRAME_WIDTH, out_h)
        yield views[0], views[1], left_cam, right_cam


def write_bag(output: Path, frames: int = 300, seed: int = 0) -> Path:
    """The crop bag (rosbag2 sqlite3, sensor_msgs Image rgb8 + CameraInfo), written with
    rosbags' ROS 2 type store, no ROS installation needed."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore
    from skimage.data import stereo_motorcycle

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    left, right, _ = stereo_motorcycle()
    start = 1_700_000_000 * 10**9
    with Writer(Path(output), version=8) as writer:
        conns = {role: writer.add_connection(topic, 'sensor_msgs/msg/CameraInfo'
                                             if role.endswith('info') else
                                             'sensor_msgs/msg/Image', typestore=store)
                 for role, topic in TOPICS.items()}
        for frame, (lv, rv, lc, rc) in enumerate(crop_frames(left, right, frames, seed)):
            stamp = start + int(frame * 1e9 / RATE_HZ)
            sec, nanosec = divmod(stamp, 10**9)
            time = types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)
            header = types['std_msgs/msg/Header'](stamp=time, frame_id='left_optical_frame')
            messages = {'left': _image(types, header, lv), 'right': _image(types, header, rv),
                        'left_camera_info': _info(types, header, lc),
                        'right_camera_info': _info(types, header, rc)}
            for role, msg in messages.items():
                writer.write(conns[role], stamp, store.serialize_cdr(msg, msg.__msgtype__))
    return Path(output)


def _image(types, header, rgb: np.ndarray):
    return types['sensor_msgs/msg/Image'](
        header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
        is_bigendian=0, step=rgb.shape[1] * 3, data=np.ascontiguousarray(rgb).reshape(-1))


def _info(types, header, camera: CameraIntrinsics):
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                    width=0, do_rectify=False)
    return types['sensor_msgs/msg/CameraInfo'](
        header=header, height=camera.height, width=camera.width, distortion_model='plumb_bob',
        d=np.zeros(5), k=camera.k.reshape(-1), r=np.eye(3).reshape(-1),
        p=camera.p.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m training.stereo_adaptation',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('output', type=Path, help='bag directory to create')
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.output.exists():
        parser.error(f'{args.output} exists')
    write_bag(args.output, args.frames, args.seed)
    print(f'wrote {args.output} ({args.frames} frames)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
