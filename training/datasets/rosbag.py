"""Recordings of your own robot as training data: rosbag2 (sqlite3, MCAP) and ROS 1 bags.

Config (training/configs/<method>_bag.yaml)::

    data:
      source: rosbag
      bags: [recording_1, recording_2.bag]       # rosbag2 directories or ROS 1 .bag files
      topics: {image: /camera/color/image_raw, depth: /camera/aligned_depth/image_raw}
      holdout: 0.1            # the last 10 % of each bag in time: the val / test split
      sync_tolerance: 0.02    # s: largest header-stamp difference of a paired set

Roles per method (ROLES): ``image`` + ``depth`` for eigen, pix2pix and semidense (semidense
sparsifies the dense depth on the fly with its LSD-SLAM-like masks), optionally with
``camera_info`` / ``depth_camera_info`` to register a depth image of another size; or, for
semidense, ``semidense`` (the semi-dense depth a SLAM published, 32FC1 m or 16UC1 mm, what
semidense_depth_node subscribes; same field of view as ``depth``) + ``depth`` (the dense
target) [+ ``image`` for the intensity channel], paired by stamp: no mask is drawn then;
``left`` + ``right`` + ``left_camera_info`` + ``right_camera_info`` for monodepth (rectified
pair, baseline from the right P as the stereo node takes it; no labels); ``image`` + ``depth``
unpaired for cyclegan and ``nir`` + ``image`` unpaired for nir_ctn (the topics may come from
different bags).

Streaming: opening a dataset reads each bag once to index the stamps of its topics (only the
header bytes of each message are parsed); a sample is read from the bag when it is asked for,
so memory holds the index, not the images (``data.cache: true`` keeps decoded samples).
Paired roles are matched by header stamp: each message of the first role with the nearest
message of every other role within ``sync_tolerance``. The held-out split is the last part of
each bag in time, not random frames, because neighbouring frames are near copies.

Images are decoded with depth_nodes.core.encodings, as the nodes decode them; depth becomes
float32 metres with invalid pixels NaN (REP 118: 16UC1 mm with 0 unknown, 32FC1 m).
"""
from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from depth_nodes.core.camera import CameraIntrinsics
from depth_nodes.core.compressed import decode_compressed
from depth_nodes.core.encodings import (ImageFormatError, decode_image, depth_to_metres,
                                        lookup_encoding, to_rgb8)
from training.datasets.base import register_dataset

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
IMAGE_TYPES = (IMAGE, COMPRESSED)


class BagDataError(ValueError):
    """A bag, topic or message that cannot serve as training data; the message names it."""


@dataclass(frozen=True)
class BagRoles:
    """The topics a method trains from: ``required`` roles, ``optional`` ones, and whether
    the roles are ``paired`` by stamp (one sample = one message of each) or unpaired streams.
    ``kinds``: what each role must carry: 'image' (colour or mono), 'depth', 'camera_info'."""
    required: tuple[str, ...]
    kinds: Mapping[str, str]
    optional: tuple[str, ...] = ()
    paired: bool = True
    keys: Mapping[str, str] = field(default_factory=dict)   # role -> sample key
    one_of: tuple[str, ...] = ()      # optional roles of which at least one is needed

    @property
    def roles(self) -> tuple[str, ...]:
        return self.required + self.optional

    def needs(self) -> str:
        """The roles a topic set needs, in words."""
        return ', '.join(self.required + ((' or '.join(self.one_of),) if self.one_of else ()))


_RGBD = BagRoles(('image', 'depth'), {'image': 'image', 'depth': 'depth',
                                      'camera_info': 'camera_info',
                                      'depth_camera_info': 'camera_info'},
                 optional=('camera_info', 'depth_camera_info'),
                 keys={'image': 'rgb', 'depth': 'depth'})
ROLES: dict[str, BagRoles] = {
    'eigen': _RGBD,
    'pix2pix': _RGBD,
    # image + depth (masks drawn on the fly), or semidense + depth [+ image]
    'semidense': BagRoles(('depth',), {**_RGBD.kinds, 'semidense': 'depth'},
                          optional=('image', 'semidense') + _RGBD.optional,
                          keys={**_RGBD.keys, 'semidense': 'semidense_depth'},
                          one_of=('image', 'semidense')),
    'monodepth': BagRoles(('left', 'right', 'left_camera_info', 'right_camera_info'),
                          {'left': 'image', 'right': 'image', 'left_camera_info': 'camera_info',
                           'right_camera_info': 'camera_info'},
                          keys={'left': 'rgb', 'right': 'right'}),
    'cyclegan': BagRoles(('image', 'depth'), {'image': 'image', 'depth': 'depth'},
                         paired=False, keys={'image': 'rgb', 'depth': 'depth'}),
    'nir_ctn': BagRoles(('nir', 'image'), {'nir': 'image', 'image': 'image'}, paired=False,
                        keys={'nir': 'nir', 'image': 'rgb'}),
}


# --- reading bags ---------------------------------------------------------------------------
def open_reader(path: Path):
    """An opened rosbags AnyReader (rosbag2 sqlite3 / MCAP directory or ROS 1 .bag)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore
    if not path.exists():
        raise BagDataError(f"bag '{path}' does not exist")
    # Bags written without message definitions (older rosbag2) decode with Humble's types.
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    try:
        reader.open()
    except Exception as exc:     # rosbags raises per-format errors for unreadable bags
        raise BagDataError(f"bag '{path}' cannot be read: {exc}") from None
    return reader


def header_stamp_ns(raw: bytes, ros2: bool) -> int:
    """Header stamp of a message whose first field is std_msgs/Header (Image,
    CompressedImage, CameraInfo), from its serialized bytes without deserializing the rest.

    ROS 2 CDR: 4-byte encapsulation (byte 1: 1 = little endian), then int32 sec, uint32
    nanosec. ROS 1: uint32 seq, then uint32 secs, uint32 nsecs, little endian.
    """
    if ros2:
        order = '<' if raw[1] == 1 else '>'
        sec, nanosec = struct.unpack_from(f'{order}iI', raw, 4)
    else:
        sec, nanosec = struct.unpack_from('<II', raw, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass(frozen=True)
class TopicIndex:
    """One topic of one bag: message type, and (header stamp, log time) of each message
    sorted by stamp (log time: the bag's own timestamp, used to find the message again)."""
    bag: Path
    topic: str
    msgtype: str
    stamps: tuple[int, ...]
    log_times: tuple[int, ...]


@lru_cache(maxsize=64)
def _scan(bag: str, mtime: float, topics: tuple[str, ...]) -> dict[str, TopicIndex]:
    reader = open_reader(Path(bag))
    try:
        connections = [c for c in reader.connections if c.topic in topics]
        for conn in connections:
            if conn.msgtype not in IMAGE_TYPES + (CAMERA_INFO,):
                raise BagDataError(f"topic {conn.topic} in '{bag}' is {conn.msgtype}; "
                                   f'training reads {", ".join(IMAGE_TYPES + (CAMERA_INFO,))}')
        found: dict[str, list[tuple[int, int]]] = {c.topic: [] for c in connections}
        types = {c.topic: c.msgtype for c in connections}
        ros2 = reader.is2
        for conn, log_time, raw in reader.messages(connections=connections):
            found[conn.topic].append((header_stamp_ns(raw, ros2), log_time))
    finally:
        reader.close()
    out = {}
    for topic, entries in found.items():
        entries.sort()
        out[topic] = TopicIndex(Path(bag), topic, types[topic],
                                tuple(e[0] for e in entries), tuple(e[1] for e in entries))
    return out


def scan_bag(bag: Path, topics: Sequence[str]) -> dict[str, TopicIndex]:
    """Index ``topics`` of ``bag`` (topics the bag lacks are absent from the result);
    cached per bag file state, so the train and val splits read a bag once."""
    bag = Path(bag)
    if not bag.exists():
        raise BagDataError(f"bag '{bag}' does not exist")
    mtime = max((p.stat().st_mtime for p in bag.iterdir()), default=0.0) if bag.is_dir() \
        else bag.stat().st_mtime
    return _scan(str(bag.resolve()), mtime, tuple(sorted(set(topics))))


class BagMessages:
    """Reads single messages back by (bag, topic, log time), one open reader per bag and
    process (DataLoader workers open their own: a reader does not survive a fork)."""

    def __init__(self):
        self._readers: dict[Path, Any] = {}
        self._pid = os.getpid()

    def read(self, index: TopicIndex, position: int):
        if self._pid != os.getpid():
            self._readers, self._pid = {}, os.getpid()
        reader = self._readers.get(index.bag)
        if reader is None:
            reader = self._readers[index.bag] = open_reader(index.bag)
        connections = [c for c in reader.connections if c.topic == index.topic]
        log_time, stamp = index.log_times[position], index.stamps[position]
        for conn, _, raw in reader.messages(connections=connections, start=log_time,
                                            stop=log_time + 1):
            if header_stamp_ns(raw, reader.is2) == stamp:
                return reader.deserialize(raw, conn.msgtype)
        raise BagDataError(f'{index.topic} message at {log_time} ns not found again in '
                           f"'{index.bag}'")

    def __getstate__(self):          # readers stay in their process
        return {'_readers': {}, '_pid': -1}


# --- decoding --------------------------------------------------------------------------------
def decode_image_message(msg, msgtype: str) -> tuple[np.ndarray, str]:
    """An Image or CompressedImage message -> (array, encoding)."""
    if msgtype == COMPRESSED:
        return decode_compressed(msg.format, np.asarray(msg.data, dtype=np.uint8))
    return decode_image(msg.height, msg.width, msg.encoding, msg.step,
                        bool(msg.is_bigendian), msg.data), msg.encoding


def camera_from_info(msg) -> CameraIntrinsics:
    """Intrinsics of a CameraInfo (ROS 2 lower-case or ROS 1 upper-case K / P fields)."""
    k = getattr(msg, 'k', None)
    p = getattr(msg, 'p', None)
    if k is None:
        k, p = msg.K, msg.P
    return CameraIntrinsics.from_k(k, msg.width, msg.height, p)


def register_depth(depth: np.ndarray, image_shape: tuple[int, int],
                   depth_camera: CameraIntrinsics | None = None,
                   image_camera: CameraIntrinsics | None = None) -> np.ndarray:
    """A depth image registered to the colour camera (aligned depth: same optical centre and
    axes) resampled at the colour image's pixels: u_d = (u - cx) / fx * fx_d + cx_d (and v).
    Nearest neighbour, because interpolating across an object's edge invents depths; without
    both intrinsics the two images are taken to span the same field of view."""
    height, width = image_shape
    if depth.shape == (height, width) and (depth_camera is None or image_camera is None or
                                           depth_camera == image_camera):
        return depth
    if depth_camera is None or image_camera is None:
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    u = (np.arange(width) - image_camera.cx) / image_camera.fx * depth_camera.fx \
        + depth_camera.cx
    v = (np.arange(height) - image_camera.cy) / image_camera.fy * depth_camera.fy \
        + depth_camera.cy
    map_x = np.broadcast_to(u[None, :].astype(np.float32), (height, width))
    map_y = np.broadcast_to(v[:, None].astype(np.float32), (height, width))
    return cv2.remap(depth, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
                     cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)


def image_for_key(image: np.ndarray, encoding: str, key: str) -> np.ndarray:
    """A decoded camera image as the sample key wants it: (H, W, 3) uint8 RGB for
    rgb / right, (H, W) uint8 for nir."""
    kind = lookup_encoding(encoding).kind
    if kind == 'depth':
        raise ImageFormatError(f'{encoding} is a depth encoding; role {key} needs an image',
                               'encoding')
    rgb = to_rgb8(image, encoding)
    if key == 'nir':
        return rgb[:, :, 0].copy() if kind == 'mono' else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return rgb


# --- splits and pairing ---------------------------------------------------------------------
def holdout_range(stamps: Sequence[int], split: str, holdout: float) -> tuple[int, int]:
    """[first, end) positions of ``split`` in one bag's stamp-sorted messages: train before
    the cut at (1 - holdout) of the bag's time span, val / test from the cut on."""
    if not stamps:
        return 0, 0
    cut_time = stamps[0] + (1.0 - holdout) * (stamps[-1] - stamps[0])
    cut = bisect.bisect_left(stamps, cut_time) if holdout > 0 else len(stamps)
    return (0, cut) if split == 'train' else (cut, len(stamps))


def nearest(stamps: Sequence[int], stamp: int) -> int:
    """Position of the stamp nearest to ``stamp`` in sorted ``stamps`` (non-empty)."""
    i = bisect.bisect_left(stamps, stamp)
    if i == 0:
        return 0
    if i == len(stamps):
        return len(stamps) - 1
    return i if stamps[i] - stamp < stamp - stamps[i - 1] else i - 1


def pair_by_stamp(primary: TopicIndex, others: Mapping[str, TopicIndex], first: int, end: int,
                  tolerance_ns: int) -> list[dict[str, int]]:
    """For each primary message in [first, end), the position of the nearest message of
    every other role, kept when all lie within the tolerance of the primary's stamp."""
    sets = []
    for position in range(first, end):
        stamp = primary.stamps[position]
        match = {}
        for role, index in others.items():
            j = nearest(index.stamps, stamp)
            if abs(index.stamps[j] - stamp) > tolerance_ns:
                break
            match[role] = j
        else:
            sets.append(match | {'': position})
    return sets


@register_dataset('rosbag')
class RosbagDataset:
    """Samples of ``method``'s roles (ROLES) from ``bags``; see the module docstring.

    ``topics`` maps each role to a topic. Paired methods: one sample per matched set, in bag
    then stamp order. Unpaired methods: item i holds message i of the longest role's stream
    and message i mod n of each other role (the method draws its own unpaired partners).
    """

    def __init__(self, split: str = 'train', root: str | None = None, *,
                 bags: Sequence[str], topics: Mapping[str, str], method: str,
                 holdout: float = 0.1, sync_tolerance: float = 0.02):
        if method not in ROLES:
            raise BagDataError(f'method {method} has no bag roles; methods: {sorted(ROLES)}')
        if not bags:
            raise BagDataError('data.bags is empty: give one or more bags (--bag PATH)')
        roles = ROLES[method]
        unknown = set(topics) - set(roles.roles)
        missing = [r for r in roles.required if not topics.get(r)]
        if roles.one_of and not any(topics.get(r) for r in roles.one_of):
            missing.append(' or '.join(roles.one_of))
        if unknown or missing:
            raise BagDataError(f'{method} trains from roles {roles.needs()} (optional '
                               f'{list(roles.optional)}); data.topics lacks {missing} and has '
                               f'unknown {sorted(unknown)} (--topic ROLE:=TOPIC)')
        self.roles, self.split, self.method = roles, split, method
        self.topics = {r: t for r, t in topics.items() if t}
        base = Path(root) if root else Path('.')
        self.bags = [Path(b) if Path(b).is_absolute() or not root else base / b for b in bags]
        indexes = [scan_bag(b, list(self.topics.values())) for b in self.bags]
        found = {t for index in indexes for t in index}
        absent = {r: t for r, t in self.topics.items() if t not in found}
        if absent:
            raise BagDataError(f'no bag of {[str(b) for b in self.bags]} has topic(s) '
                               f'{absent}; python -m training.inspect_bag BAG lists them')
        self._messages = BagMessages()
        tolerance_ns = int(round(sync_tolerance * 1e9))
        self.items: list[dict[str, tuple[TopicIndex, int]]] = []
        if roles.paired:
            self._pair(indexes, split, holdout, tolerance_ns)
        else:
            self._stream(indexes, split, holdout)

    def _pair(self, indexes, split, holdout, tolerance_ns) -> None:
        # One message of the primary role per sample: the image (or semi-dense depth) when
        # the method takes one, else the first required role.
        primary_role = next((r for r in self.roles.one_of if r in self.topics),
                            self.roles.required[0])
        for index in indexes:
            if not all(t in index for t in self.topics.values()):
                continue           # paired roles must come from one bag
            primary = index[self.topics[primary_role]]
            others = {r: index[t] for r, t in self.topics.items() if r != primary_role}
            first, end = holdout_range(primary.stamps, split, holdout)
            for match in pair_by_stamp(primary, others, first, end, tolerance_ns):
                item = {primary_role: (primary, match[''])}
                item.update({r: (others[r], j) for r, j in match.items() if r})
                self.items.append(item)

    def _stream(self, indexes, split, holdout) -> None:
        streams: dict[str, list[tuple[TopicIndex, int]]] = {}
        for role, topic in self.topics.items():
            stream = streams[role] = []
            for index in indexes:
                if topic in index:
                    first, end = holdout_range(index[topic].stamps, split, holdout)
                    stream.extend((index[topic], p) for p in range(first, end))
            if not stream:
                return
        longest = max(len(s) for s in streams.values())
        self.items = [{r: s[i % len(s)] for r, s in streams.items()} for i in range(longest)]

    def __len__(self) -> int:
        return len(self.items)

    def _decode(self, role: str, index: TopicIndex, position: int):
        message = self._messages.read(index, position)
        if self.roles.kinds[role] == 'camera_info':
            return camera_from_info(message)
        image, encoding = decode_image_message(message, index.msgtype)
        if self.roles.kinds[role] == 'depth':
            if lookup_encoding(encoding).kind != 'depth':
                raise ImageFormatError(f'{index.topic} is {encoding}; role {role} needs '
                                       'depth (16UC1 mm or 32FC1 m)', 'encoding')
            return depth_to_metres(image, encoding)
        return image_for_key(image, encoding, self.roles.keys[role])

    def __getitem__(self, item: int) -> dict[str, Any]:
        if not 0 <= item < len(self.items):
            raise IndexError(item)
        refs = self.items[item]
        values = {role: self._decode(role, *ref) for role, ref in refs.items()}
        sample = {self.roles.keys[r]: v for r, v in values.items() if r in self.roles.keys}
        index, position = next(iter(refs.values()))
        sample['name'] = f'{index.bag.name}{index.topic}@{index.stamps[position]}'
        if self.method == 'monodepth':
            left, right = values['left_camera_info'], values['right_camera_info']
            sample['camera'] = left
            sample['baseline'] = right.baseline         # P[0, 3] = -fx B, as the node reads
            # No labels: an all-unknown disparity, which a stereo flip moves with the views.
            sample['disparity'] = np.full(sample['rgb'].shape[:2], np.nan, np.float32)
        elif self.roles.paired:
            camera = values.get('camera_info')
            if 'rgb' in sample:
                sample['depth'] = register_depth(sample['depth'], sample['rgb'].shape[:2],
                                                 values.get('depth_camera_info'), camera)
            if camera is not None:
                sample['camera'] = camera
        return sample
