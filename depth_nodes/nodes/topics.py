"""How the nodes subscribe and publish: input QoS, lost-input counting, output publishers,
and the standard main() with its process settings."""
from __future__ import annotations

import os
from typing import Any, Callable

import cv2
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.qos_overriding_options import QoSOverridingOptions

from depth_nodes import ros_io
from depth_nodes.runtime.engine import ModelLoadError

# Publishers are reliable so RViz and `ros2 bag record` receive with their default QoS.
OUTPUT_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE)


def input_qos() -> QoSProfile:
    """Sensor-data QoS (best effort, volatile) keeping only the newest sample.

    A frame waiting in the DDS reader queue while the node processes one would only add
    latency, so the middleware keeps one: the newest. A new object per subscription: rclpy
    applies QoS overrides by mutating the profile it is given.
    """
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                      reliability=qos_profile_sensor_data.reliability,
                      durability=qos_profile_sensor_data.durability)


def subscription_qos(raw: bool = False):
    """Input QoS, overridable per topic via qos_overrides.<topic>.subscription.<policy>.

    ``raw``: deliver serialized bytes (decoded in ros_io), for images.
    """
    return dict(qos_profile=input_qos(), raw=raw,
                qos_overriding_options=QoSOverridingOptions.with_default_policies())


class PublisherSequenceGaps:
    """Input messages the node never saw: gaps in each publisher's sequence numbers.

    The keep-last-1 input queue replaces a frame the node had no time to take (it was busy
    with the one before): under load, these are the frames dropped.
    """

    def __init__(self):
        self._last: dict[bytes | None, int] = {}
        self.lost = 0

    def add(self, info) -> None:
        seq = info.get('publication_sequence_number')
        if not seq or seq >= 2**63:           # 0 / UINT64_MAX: the RMW does not provide it
            return
        gid = info.get('publisher_gid')
        key = bytes(gid['data']) if isinstance(gid, dict) else None
        last = self._last.get(key)
        if last is not None and seq > last + 1:
            self.lost += seq - last - 1
        if last is None or seq > last:
            self._last[key] = seq


class Inputs:
    """A node's input subscriptions. Streams (frames) are watched for messages lost before
    the node (PublisherSequenceGaps) and listed for the 'publishers but no data' hint."""

    def __init__(self, node: Node):
        self._node = node
        self.streams = []                     # the stream subscriptions
        self.gaps: list[PublisherSequenceGaps] = []

    def stream(self, msgtype: str, topic: str, callback: Callable[[Any], None],
               raw: bool = True):
        gaps = PublisherSequenceGaps()
        self.gaps.append(gaps)

        def receive(msg, info):
            gaps.add(info)
            callback(msg)
        sub = self._node.create_subscription(ros_io.message_class(msgtype), topic, receive,
                                             **subscription_qos(raw))
        self.streams.append(sub)
        return sub

    def latest(self, msgtype: str, topic: str, callback: Callable[[Any], None]):
        """A message of which only the newest matters (camera_info)."""
        return self._node.create_subscription(ros_io.message_class(msgtype), topic, callback,
                                              **subscription_qos())

    @property
    def lost(self) -> int:
        return sum(g.lost for g in self.gaps)


class Outputs:
    """Publishers by node-relative topic; publish() sends a FrameOutput's messages."""

    def __init__(self, node: Node, topics: dict[str, str]):
        self.publishers = {topic: node.create_publisher(ros_io.message_class(msgtype), topic,
                                                        OUTPUT_QOS)
                           for topic, msgtype in topics.items()}

    def wants(self, topic: str) -> bool:
        """Whether an optional output has a subscriber (else it is not computed)."""
        return self.publishers[topic].get_subscription_count() > 0

    def publish(self, messages) -> None:
        for topic, message in messages:
            self.publishers[topic].publish(message)


def sequential_opencv() -> None:
    """Run OpenCV on the calling thread only, unless OPENCV_FOR_THREADS_NUM says otherwise.

    A node's OpenCV calls per frame (resizing camera-size images, colour lookups) are short;
    split over OpenCV's thread pool, each waits for the slowest pool thread to be scheduled,
    which on a CPU shared with other processes and ONNX Runtime's own threads costs more
    than it saves (measured side by side: docs/performance.md).
    """
    if 'OPENCV_FOR_THREADS_NUM' not in os.environ:
        cv2.setNumThreads(1)


def run_node(factory: Callable[[], Node], args=None) -> int:
    """The standard main: spin until shutdown; a model that cannot load exits with code 1."""
    sequential_opencv()
    try:
        with rclpy.init(args=args):
            try:
                node = factory()
            except ModelLoadError as exc:
                rclpy.logging.get_logger('depth_nodes').fatal(str(exc))
                return 1
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
