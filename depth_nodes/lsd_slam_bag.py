"""Convert LSD-SLAM recordings into rosbag2 input for semidense_depth_node.

    python -m depth_nodes.lsd_slam_bag --input lsd.bag --output lsd_semidense \
        [--topic /lsd_slam/keyframes] [--frame-id camera_optical_frame] [--storage mcap]

LSD-SLAM (ROS 1) publishes each keyframe as ``lsd_slam_viewer/keyframeMsg``: its id, time,
camToWorld (Sophus Sim(3), 7 floats), the camera (fx fy cx cy, width, height) and, in
``pointcloud``, width x height ``InputPointDense`` records of 12 bytes, row-major:

    float32 idepth    float32 idepth_var    uint8 color[4]      (idepth <= 0: unknown)

Each keyframe with a point cloud becomes, with the header stamp of its ``time`` (seconds)
and the given frame id, on the output bag's topics:

    /semidense/depth     sensor_msgs/Image 32FC1, inverse depth in 1/m (NaN = unknown): run
                         the node with input_is_inverse_depth:=true
    /semidense/variance  sensor_msgs/Image 32FC1, idepth_var (NaN = unknown): use_variance
    /image               sensor_msgs/Image mono8, the keyframe's grey image (color)
    /camera_info         sensor_msgs/CameraInfo from fx fy cx cy (no distortion: LSD-SLAM
                         works on undistorted images)

Messages without a point cloud (LSD-SLAM sends pose-only updates) are skipped and counted.
Only rosbags is needed (no ROS installation); the message definition is registered here.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from depth_nodes.core.camera import CameraIntrinsics, CameraModelError

KEYFRAME_TYPE = 'lsd_slam_viewer/msg/keyframeMsg'
KEYFRAME_DEFINITION = """\
int32 id
float64 time
bool isKeyframe
float32[7] camToWorld
float32 fx
float32 fy
float32 cx
float32 cy
uint32 height
uint32 width
uint8[] pointcloud
"""
# InputPointDense of lsd_slam_viewer, packed (12 bytes), little-endian as LSD-SLAM wrote it.
INPUT_POINT_DENSE = np.dtype([('idepth', '<f4'), ('idepth_var', '<f4'), ('color', 'u1', 4)])
DEFAULT_TOPIC = '/lsd_slam/keyframes'
OUTPUT_TOPICS = {
    'depth': ('/semidense/depth', 'sensor_msgs/msg/Image'),
    'variance': ('/semidense/variance', 'sensor_msgs/msg/Image'),
    'image': ('/image', 'sensor_msgs/msg/Image'),
    'camera_info': ('/camera_info', 'sensor_msgs/msg/CameraInfo'),
}


class KeyframeError(ValueError):
    """A keyframe message that cannot be converted; the message says which and why."""


@dataclass
class Keyframe:
    id: int
    time: float                     # seconds
    is_keyframe: bool
    cam_to_world: np.ndarray        # (7,) Sophus Sim(3) parameters, as sent
    camera: CameraIntrinsics
    inverse_depth: np.ndarray       # (H, W) float32 1/m, NaN = unknown
    variance: np.ndarray            # (H, W) float32, NaN = unknown
    gray: np.ndarray                # (H, W) uint8


def keyframe_typestore(store=None):
    """A rosbags typestore (default ROS 1 Noetic) with keyframeMsg registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = store or get_typestore(Stores.ROS1_NOETIC)
    if KEYFRAME_TYPE not in store.types:
        store.register(get_types_from_msg(KEYFRAME_DEFINITION, KEYFRAME_TYPE))
    return store


def decode_keyframe(msg) -> Keyframe | None:
    """A deserialised keyframeMsg -> Keyframe; None when it carries no point cloud."""
    cloud = np.asarray(msg.pointcloud, dtype=np.uint8)
    if cloud.size == 0:
        return None
    width, height = int(msg.width), int(msg.height)
    expected = width * height * INPUT_POINT_DENSE.itemsize
    if cloud.size != expected:
        raise KeyframeError(f'keyframe {msg.id}: pointcloud has {cloud.size} bytes, '
                            f'{width}x{height} InputPointDense need {expected}')
    try:
        camera = CameraIntrinsics(width, height, float(msg.fx), float(msg.fy), float(msg.cx),
                                  float(msg.cy))
    except CameraModelError as exc:
        raise KeyframeError(f'keyframe {msg.id}: {exc}') from None
    points = np.frombuffer(cloud.tobytes(), dtype=INPUT_POINT_DENSE).reshape(height, width)
    idepth = points['idepth'].astype(np.float32)
    with np.errstate(invalid='ignore'):
        known = np.isfinite(idepth) & (idepth > 0)
    nan = np.float32(np.nan)
    gray = np.rint(points['color'][:, :, :3].mean(axis=2)).astype(np.uint8)
    return Keyframe(int(msg.id), float(msg.time), bool(msg.isKeyframe),
                    np.asarray(msg.camToWorld, dtype=np.float32), camera,
                    np.where(known, idepth, nan),
                    np.where(known, points['idepth_var'].astype(np.float32), nan), gray)


def read_keyframes(path: Path, topic: str = DEFAULT_TOPIC
                   ) -> Iterator[tuple[int, Keyframe | None]]:
    """(bag timestamp in ns, Keyframe or None when it has no point cloud) of a ROS 1 bag."""
    from rosbags.rosbag1 import Reader
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LSD-SLAM bag '{path}' does not exist")
    store = keyframe_typestore()
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            available = ', '.join(sorted(f'{c.topic} [{c.msgtype}]'
                                         for c in reader.connections)) or 'none'
            raise KeyframeError(f"'{path}' has no topic {topic} (topics: {available})")
        wrong = [c.msgtype for c in connections if c.msgtype != KEYFRAME_TYPE]
        if wrong:
            raise KeyframeError(f"'{path}': {topic} carries {wrong[0]}, not {KEYFRAME_TYPE}")
        for index, (connection, timestamp, raw) in enumerate(
                reader.messages(connections=connections)):
            try:
                msg = store.deserialize_ros1(raw, KEYFRAME_TYPE)
            except Exception as exc:   # truncated or another layout
                raise KeyframeError(f"'{path}': message {index} on {topic} is not a "
                                    f'{KEYFRAME_TYPE} ({exc})') from None
            yield timestamp, decode_keyframe(msg)


def _stamp(store, seconds: float):
    sec = int(np.floor(seconds))
    nanosec = min(int(round((seconds - sec) * 1e9)), 999_999_999)
    return store.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def keyframe_messages(keyframe: Keyframe, frame_id: str, store) -> dict[str, object]:
    """The four ROS 2 messages (rosbags objects) of one keyframe, keyed like OUTPUT_TOPICS."""
    header_t = store.types['std_msgs/msg/Header']
    header = header_t(stamp=_stamp(store, keyframe.time), frame_id=frame_id)
    image_t = store.types['sensor_msgs/msg/Image']
    cam = keyframe.camera

    def image(array: np.ndarray, encoding: str):
        array = np.ascontiguousarray(array)
        return image_t(header=header, height=cam.height, width=cam.width, encoding=encoding,
                       is_bigendian=0, step=cam.width * array.itemsize,
                       data=array.reshape(-1).view(np.uint8))

    roi = store.types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                          width=0, do_rectify=False)
    info = store.types['sensor_msgs/msg/CameraInfo'](
        header=header, height=cam.height, width=cam.width, distortion_model='plumb_bob',
        d=np.zeros(5), k=cam.k.reshape(-1), r=np.eye(3).reshape(-1), p=cam.p.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)
    return {'depth': image(keyframe.inverse_depth, '32FC1'),
            'variance': image(keyframe.variance, '32FC1'),
            'image': image(keyframe.gray, 'mono8'), 'camera_info': info}


def convert(input_path: Path, output_path: Path, *, topic: str = DEFAULT_TOPIC,
            frame_id: str = 'camera_optical_frame', storage: str = 'sqlite3'
            ) -> dict[str, int]:
    """Write the rosbag2 ``output_path``; returns counts of converted and skipped messages."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    output_path = Path(output_path)
    if output_path.exists():
        raise FileExistsError(f"output '{output_path}' exists; choose a new bag directory")
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
    store = get_typestore(Stores.ROS2_JAZZY)
    counts = {'keyframes': 0, 'without_pointcloud': 0}
    keyframes = read_keyframes(Path(input_path), topic)
    first = next(keyframes, None)      # errors about the input before creating the output
    if first is None:
        raise KeyframeError(f"'{input_path}': no messages on {topic}")
    try:
        with Writer(output_path, version=9, storage_plugin=plugin) as writer:
            connections = {key: writer.add_connection(name, msgtype, typestore=store)
                           for key, (name, msgtype) in OUTPUT_TOPICS.items()}
            for timestamp, keyframe in _chain(first, keyframes):
                if keyframe is None:
                    counts['without_pointcloud'] += 1
                    continue
                for key, message in keyframe_messages(keyframe, frame_id, store).items():
                    writer.write(connections[key], timestamp,
                                 store.serialize_cdr(message, OUTPUT_TOPICS[key][1]))
                counts['keyframes'] += 1
    except BaseException:
        shutil.rmtree(output_path, ignore_errors=True)   # no half-written bag left behind
        raise
    return counts


def _chain(first, rest):
    yield first
    yield from rest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m depth_nodes.lsd_slam_bag',
                                     description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, type=Path, help='ROS 1 bag of LSD-SLAM')
    parser.add_argument('--output', required=True, type=Path, help='rosbag2 directory to write')
    parser.add_argument('--topic', default=DEFAULT_TOPIC, help='keyframe topic (%(default)s)')
    parser.add_argument('--frame-id', default='camera_optical_frame',
                        help='header frame_id of the output (%(default)s)')
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    args = parser.parse_args(argv)
    try:
        counts = convert(args.input, args.output, topic=args.topic, frame_id=args.frame_id,
                         storage=args.storage)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {counts['keyframes']} keyframes "
          f"({counts['without_pointcloud']} messages without a point cloud skipped)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
