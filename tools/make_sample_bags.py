#!/usr/bin/env python3
"""Write short sample rosbag2 recordings from the synthetic generator.

  python tools/make_sample_bags.py rgb OUTPUT_DIR [--frames N] [--scene indoor|outdoor] ...
      [--compressed jpeg|png] [--storage sqlite3|mcap] [--camera-info-last]

The camera moves smoothly through one procedural scene (training.datasets.synthetic); header
stamps start at --start-time (seconds) and frames are --rate apart, in the optical frame
'camera_optical_frame'. Ground-truth depth rides along on its own topic for evaluation.

--compressed also writes every image topic as image_transport does: <topic>/compressed
(sensor_msgs/CompressedImage, jpeg or png) for images, <topic>/compressedDepth (png) for depth.
--camera-info-last stores each camera_info after its image (same stamp), as many recorders do.

rgb:   /camera/image (rgb8), /camera/camera_info, /camera/depth_ground_truth (32FC1 m)
nir:   /nir/image (mono8 near-infrared), /nir/camera_info, /nir/depth_ground_truth (32FC1 m)
semidense: /camera/image (rgb8), /camera/camera_info, /semidense/depth (32FC1 m: the true
       depth where a semi-dense SLAM would reconstruct it, NaN elsewhere),
       /camera/depth_ground_truth
stereo: /stereo/left/image_rect, /stereo/right/image_rect (rgb8, a rectified pair),
       /stereo/left/camera_info, /stereo/right/camera_info (P[0, 3] = -fx B),
       /stereo/left/depth_ground_truth; frame 'camera_optical_frame' is the left camera

Tests and the demo call sample_bag(kind, directory), which writes a kind once and reuses it.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FRAME_ID = 'camera_optical_frame'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
COMPRESSED_DEPTH_MAX = 100.0     # m: compressedDepth's depth_max for the synthetic scenes
RGB_TOPICS = {
    'image': ('/camera/image', 'sensor_msgs/msg/Image'),
    'camera_info': ('/camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'ground_truth': ('/camera/depth_ground_truth', 'sensor_msgs/msg/Image'),
}
SEMIDENSE_TOPICS = {
    **RGB_TOPICS,
    'semidense_depth': ('/semidense/depth', 'sensor_msgs/msg/Image'),
}
STEREO_TOPICS = {
    'left_image': ('/stereo/left/image_rect', 'sensor_msgs/msg/Image'),
    'left_camera_info': ('/stereo/left/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'right_image': ('/stereo/right/image_rect', 'sensor_msgs/msg/Image'),
    'right_camera_info': ('/stereo/right/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'ground_truth': ('/stereo/left/depth_ground_truth', 'sensor_msgs/msg/Image'),
}
NIR_TOPICS = {
    'image': ('/nir/image', 'sensor_msgs/msg/Image'),
    'camera_info': ('/nir/camera_info', 'sensor_msgs/msg/CameraInfo'),
    'ground_truth': ('/nir/depth_ground_truth', 'sensor_msgs/msg/Image'),
}


def _header(stamp_ns: int):
    from std_msgs.msg import Header
    header = Header(frame_id=FRAME_ID)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return header


def write_sequence_bag(output: Path, topics: dict, outputs: tuple[str, ...], frame_messages,
                       *, frames: int, seed: int, scene: str, height: int, width: int,
                       rate_hz: float, start_time_ns: int, storage: str, compressed: str = '',
                       camera_info_last: bool = False) -> Path:
    """A synthetic camera sequence as rosbag2; frame_messages(sample, header) yields
    (topic key, serialized message) per frame, written at the frame's stamp. ``compressed``
    ('jpeg' or 'png') adds each image topic's image_transport compressed topic;
    ``camera_info_last`` writes a frame's camera_infos after its other messages."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from training.datasets.synthetic import SyntheticSequence

    sequence = SyntheticSequence(seed, scene, frames, rate_hz=rate_hz, height=height,
                                 width=width, outputs=outputs)
    store = get_typestore(Stores.ROS2_JAZZY)
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    writer = Writer(Path(output), version=9, storage_plugin=plugin)
    with writer:
        conns = {key: writer.add_connection(topic, msgtype, typestore=store)
                 for key, (topic, msgtype) in topics.items()}
        for index in range(frames):
            sample = sequence[index]
            stamp = start_time_ns + round(sample['stamp'] * 1e9)
            messages = list(frame_messages(sample, _header(stamp)))
            if camera_info_last:
                messages.sort(key=lambda m: topics[m[0]][1] == CAMERA_INFO_TYPE)  # stable
            for key, raw in messages:
                writer.write(conns[key], stamp, raw)
                if compressed and topics[key][1] == IMAGE_TYPE:
                    topic, payload = compressed_message(topics[key][0], raw, compressed)
                    if topic not in conns:
                        conns[topic] = writer.add_connection(topic, COMPRESSED_TYPE,
                                                             typestore=store)
                    writer.write(conns[topic], stamp, payload)
    return Path(output)


def compressed_message(topic: str, raw: bytes, codec: str) -> tuple[str, bytes]:
    """A serialized Image as image_transport republishes it: (<topic>/compressed, jpeg or
    png CompressedImage) for images, (<topic>/compressedDepth, png) for depth."""
    from depth_nodes import ros_io
    from depth_nodes.core.compressed import encode_compressed, encode_compressed_depth
    from depth_nodes.core.encodings import lookup_encoding
    msg = ros_io.image_from_cdr(raw)
    image = ros_io.image_to_array(msg)
    if lookup_encoding(msg.encoding).kind == 'depth':
        topic += '/compressedDepth'
        fmt, data = encode_compressed_depth(image, msg.encoding, COMPRESSED_DEPTH_MAX)
    else:
        topic += '/compressed'
        fmt, data = encode_compressed(image, msg.encoding, codec)
    return topic, ros_io.compressed_image_to_cdr(fmt, data, ros_io.header_from(msg))


def _camera_frame(image_key: str, encoding: str):
    """Per frame: camera_info, the image sample[image_key] and the ground-truth depth."""
    def messages(sample, header):
        from rclpy.serialization import serialize_message

        from depth_nodes import ros_io
        info = ros_io.intrinsics_to_camera_info(sample['camera'], header)
        yield 'camera_info', serialize_message(info)
        yield 'image', ros_io.image_to_cdr(sample[image_key], encoding, header)
        yield 'ground_truth', ros_io.image_to_cdr(sample['depth'], '32FC1', header)
    return messages


def _semidense_frame(sample, header):
    import numpy as np

    from depth_nodes import ros_io
    yield from _camera_frame('rgb', 'rgb8')(sample, header)
    semidense = np.where(sample['semidense_mask'], sample['depth'], np.float32(np.nan))
    yield 'semidense_depth', ros_io.image_to_cdr(semidense.astype(np.float32), '32FC1', header)


def _stereo_frame(sample, header):
    from dataclasses import replace

    from rclpy.serialization import serialize_message

    from depth_nodes import ros_io
    left = sample['camera']
    # The right camera of a rectified pair: same intrinsics, P[0, 3] = -fx B.
    right = replace(left, tx=-left.fx * sample['baseline'])
    yield 'left_camera_info', serialize_message(ros_io.intrinsics_to_camera_info(left, header))
    yield 'right_camera_info', serialize_message(ros_io.intrinsics_to_camera_info(right,
                                                                                  header))
    yield 'left_image', ros_io.image_to_cdr(sample['rgb'], 'rgb8', header)
    yield 'right_image', ros_io.image_to_cdr(sample['right'], 'rgb8', header)
    yield 'ground_truth', ros_io.image_to_cdr(sample['depth'], '32FC1', header)


@dataclass(frozen=True)
class BagKind:
    """What a sample bag of one kind holds: its topics, the synthetic outputs it reads and
    the messages it writes per frame (frame_messages of write_sequence_bag)."""
    topics: dict
    outputs: tuple[str, ...]
    frame_messages: Callable
    scene: str                     # default synthetic scene


KINDS = {
    'rgb': BagKind(RGB_TOPICS, ('rgb', 'depth'), _camera_frame('rgb', 'rgb8'), 'indoor'),
    'nir': BagKind(NIR_TOPICS, ('nir', 'depth'), _camera_frame('nir', 'mono8'), 'outdoor'),
    'semidense': BagKind(SEMIDENSE_TOPICS, ('rgb', 'depth', 'semidense_mask'),
                         _semidense_frame, 'indoor'),
    'stereo': BagKind(STEREO_TOPICS, ('rgb', 'depth', 'right'), _stereo_frame, 'outdoor'),
}


def write_sample_bag(kind: str, output: Path, *, frames: int = 30, seed: int = 0,
                     scene: str | None = None, height: int = 240, width: int = 320,
                     rate_hz: float = 10.0, start_time_ns: int = 1_700_000_000 * 10**9,
                     storage: str = 'sqlite3', compressed: str = '',
                     camera_info_last: bool = False) -> Path:
    """A synthetic sequence of ``kind`` (KINDS) as rosbag2 at ``output``; ``scene`` None is
    the kind's default. The write_<kind>_bag functions take the same keyword options."""
    k = KINDS[kind]
    return write_sequence_bag(output, k.topics, k.outputs, k.frame_messages, frames=frames,
                              seed=seed, scene=k.scene if scene is None else scene,
                              height=height, width=width, rate_hz=rate_hz,
                              start_time_ns=start_time_ns, storage=storage,
                              compressed=compressed, camera_info_last=camera_info_last)


def write_rgb_bag(output: Path, **options) -> Path:
    """A camera sequence as rosbag2: image, camera_info and ground-truth depth per frame."""
    return write_sample_bag('rgb', output, **options)


def write_nir_bag(output: Path, **options) -> Path:
    """A near-infrared camera sequence: mono8 NIR image, camera_info and ground truth."""
    return write_sample_bag('nir', output, **options)


def write_semidense_bag(output: Path, **options) -> Path:
    """A camera sequence with semi-dense depth (the gradient mask of core.semidense over the
    true depth, as the training data simulates LSD-SLAM), image and camera_info."""
    return write_sample_bag('semidense', output, **options)


def write_stereo_bag(output: Path, **options) -> Path:
    """A rectified stereo sequence (the scene's default baseline: 0.54 m outdoors, 0.12 m
    indoors) with both camera_infos and the left view's ground-truth depth."""
    return write_sample_bag('stereo', output, **options)


def sample_bag(kind: str, directory: Path, **options) -> Path:
    """The sample bag of ``kind`` with ``options`` under ``directory``, written on first use.

    Written as a hidden staging directory's OUTPUT_NAME and moved when complete, so a bag
    found there is whole and its files carry its own name.
    """
    import hashlib
    import os
    import shutil
    if kind not in KINDS:
        raise ValueError(f"unknown sample bag kind '{kind}'; choose one of {sorted(KINDS)}")
    key = hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:10]
    path = Path(directory) / f'{kind}_{key}'
    if (path / 'metadata.yaml').exists():
        return path
    Path(directory).mkdir(parents=True, exist_ok=True)
    staging = Path(directory) / f'.{path.name}.partial-{os.getpid()}'
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    write_sample_bag(kind, staging / path.name, **options)
    try:
        os.rename(staging / path.name, path)
    except OSError:          # another process finished the same bag first
        pass
    shutil.rmtree(staging, ignore_errors=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('kind', choices=sorted(KINDS))
    parser.add_argument('output', type=Path, help='bag directory to create')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--scene', choices=('indoor', 'outdoor'),
                        help="synthetic scene (default: the kind's: indoor for rgb)")
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    parser.add_argument('--start-time', type=float, default=1_700_000_000.0,
                        help='header stamp of the first frame, seconds (default 1.7e9)')
    parser.add_argument('--compressed', choices=('jpeg', 'png'),
                        help='also write <topic>/compressed (and depth /compressedDepth)')
    parser.add_argument('--camera-info-last', action='store_true',
                        help="store each camera_info after its frame's image")
    args = parser.parse_args(argv)
    if args.output.exists():
        parser.error(f'{args.output} exists')
    options = dict(frames=args.frames, seed=args.seed, height=args.height, width=args.width,
                   rate_hz=args.rate, storage=args.storage,
                   start_time_ns=round(args.start_time * 1e9),
                   compressed=args.compressed or '', camera_info_last=args.camera_info_last)
    if args.scene:
        options['scene'] = args.scene
    write_sample_bag(args.kind, args.output, **options)
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
