#!/usr/bin/env python3
"""Write short sample rosbag2 recordings from the synthetic generator.

  python tools/make_sample_bags.py rgb OUTPUT_DIR [--frames N] [--scene indoor|outdoor] ...

The camera moves smoothly through one procedural scene (training.datasets.synthetic); header
stamps start at --start-time and frames are --rate apart, in the optical frame
'camera_optical_frame'. Ground-truth depth rides along on its own topic for evaluation.

rgb:   /camera/image (rgb8), /camera/camera_info, /camera/depth_ground_truth (32FC1 m)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FRAME_ID = 'camera_optical_frame'
RGB_TOPICS = {
    'image': ('/camera/image', 'sensor_msgs/msg/Image'),
    'camera_info': ('/camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'ground_truth': ('/camera/depth_ground_truth', 'sensor_msgs/msg/Image'),
}


def _header(stamp_ns: int):
    from std_msgs.msg import Header
    header = Header(frame_id=FRAME_ID)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return header


def write_rgb_bag(output: Path, *, frames: int = 30, seed: int = 0, scene: str = 'indoor',
                  height: int = 240, width: int = 320, rate_hz: float = 10.0,
                  start_time_ns: int = 1_700_000_000 * 10**9, storage: str = 'sqlite3'
                  ) -> Path:
    """A camera sequence as rosbag2: image, camera_info and ground-truth depth per frame."""
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from depth_nodes import ros_io
    from training.datasets.synthetic import SyntheticSequence

    sequence = SyntheticSequence(seed, scene, frames, rate_hz=rate_hz, height=height,
                                 width=width, outputs=('rgb', 'depth'))
    store = get_typestore(Stores.ROS2_JAZZY)
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    writer = Writer(Path(output), version=9, storage_plugin=plugin)
    with writer:
        conns = {key: writer.add_connection(topic, msgtype, typestore=store)
                 for key, (topic, msgtype) in RGB_TOPICS.items()}
        for index in range(frames):
            sample = sequence[index]
            stamp = start_time_ns + round(sample['stamp'] * 1e9)
            header = _header(stamp)
            info = ros_io.intrinsics_to_camera_info(sample['camera'], header)
            writer.write(conns['camera_info'], stamp, serialize_message(info))
            writer.write(conns['image'], stamp, ros_io.image_to_cdr(sample['rgb'], 'rgb8',
                                                                    header))
            writer.write(conns['ground_truth'], stamp,
                         ros_io.image_to_cdr(sample['depth'], '32FC1', header))
    return Path(output)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=('rgb',))
    parser.add_argument('output', type=Path, help='bag directory to create')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--scene', choices=('indoor', 'outdoor'), default='indoor')
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    args = parser.parse_args(argv)
    if args.output.exists():
        parser.error(f'{args.output} exists')
    write_rgb_bag(args.output, frames=args.frames, seed=args.seed, scene=args.scene,
                  height=args.height, width=args.width, rate_hz=args.rate,
                  storage=args.storage)
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
