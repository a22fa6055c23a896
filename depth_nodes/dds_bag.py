"""Play bags over DDS and record topics into rosbag2, with rosbags + rclpy (no rosbag2 CLI).

On a robot, `ros2 bag play/record` do this; these are for machines with only the ROS Python
wheels (like the development machines) and for the demo:

  python -m depth_nodes.dds_bag play BAG [--rate R] [--clock] [--topics T ...] [--loop]
  python -m depth_nodes.dds_bag record OUT --topics T ... [--duration S]

Messages travel as serialized CDR (ROS 1 bags are converted), so nothing is re-encoded and
header stamps stay exactly as recorded. ``--clock`` publishes /clock from the bag time, for
nodes running with use_sim_time.
"""
from __future__ import annotations

import argparse
import importlib
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def open_bag(path: Path):
    """A rosbags AnyReader over a rosbag2 (sqlite3 or mcap) directory or a ROS 1 .bag."""
    from rosbags.highlevel import AnyReader
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'bag not found: {path}')
    return AnyReader([path])


class BagPlayer:
    """Publishes a bag's messages on their topics at the recorded pace (times ``rate``)."""

    def __init__(self, node: Node, bag: Path, topics: Iterable[str] | None = None,
                 rate: float = 1.0, clock: bool = False, remap: dict[str, str] | None = None):
        if rate <= 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.node, self.bag, self.rate, self.remap = node, Path(bag), rate, remap or {}
        self.topics = set(topics) if topics else None
        self.clock = node.create_publisher(message_class('rosgraph_msgs/msg/Clock'), '/clock',
                                           10) if clock else None
        self.publishers = {}
        self.published = 0

    def wait_for_subscribers(self, topics: Iterable[str], timeout: float) -> bool:
        """Create the publishers of ``topics`` now and wait until each has a subscriber."""
        with open_bag(self.bag) as reader:
            for conn in reader.connections:
                if conn.topic in topics:
                    self._publisher(conn)
        deadline = time.monotonic() + timeout
        wanted = [self.publishers[t] for t in topics if t in self.publishers]
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in wanted):
                return True
            time.sleep(0.05)
        return False

    def _publisher(self, conn):
        if conn.topic not in self.publishers:
            topic = self.remap.get(conn.topic, conn.topic)
            self.publishers[conn.topic] = self.node.create_publisher(
                message_class(conn.msgtype), topic, RELIABLE)
        return self.publishers[conn.topic]

    def play(self, stop: threading.Event | None = None) -> int:
        """Play once; returns the number of messages published."""
        from rosbags.typesys import Stores, get_typestore
        ros1_store = None
        count = 0
        with open_bag(self.bag) as reader:
            conns = [c for c in reader.connections
                     if self.topics is None or c.topic in self.topics]
            start_wall, start_bag = 0.0, None
            for conn, bag_ns, raw in reader.messages(connections=conns):
                if stop is not None and stop.is_set():
                    break
                if start_bag is None:   # pace from the first message, not from opening
                    start_wall, start_bag = time.monotonic(), bag_ns
                delay = (bag_ns - start_bag) * 1e-9 / self.rate - (time.monotonic() - start_wall)
                if delay > 0:
                    time.sleep(delay)
                if self.clock is not None:
                    self.clock.publish(_clock_msg(bag_ns))
                if reader.is2:
                    data = bytes(raw)
                else:  # ROS 1 serialization -> CDR
                    ros1_store = ros1_store or get_typestore(Stores.ROS2_JAZZY)
                    data = bytes(ros1_store.ros1_to_cdr(raw, conn.msgtype))
                self._publisher(conn).publish(data)
                count += 1
        self.published += count
        return count


def _clock_msg(nanoseconds: int):
    clock = message_class('rosgraph_msgs/msg/Clock')()
    clock.clock.sec, clock.clock.nanosec = divmod(int(nanoseconds), 10**9)
    return clock


class BagRecorder:
    """Records topics (as serialized CDR) into a new rosbag2; close() finalises the bag.

    Timestamps are the receive time on the node's clock, as `ros2 bag record` does. One
    writer thread owns the bag (SQLite connections are bound to their thread); callbacks only
    enqueue, so recording never stalls the executor.
    """

    def __init__(self, node: Node, output: Path, topics: dict[str, str],
                 storage: str = 'sqlite3'):
        self.node, self.output = node, Path(output)
        if self.output.exists():
            raise FileExistsError(f'{self.output} exists; choose a new output path')
        if storage not in ('sqlite3', 'mcap'):
            raise ValueError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
        self.counts = {topic: 0 for topic in topics}
        self._queue: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_loop, args=(topics, storage),
                                        name='bag-writer', daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        for topic, msgtype in topics.items():
            node.create_subscription(message_class(msgtype), topic,
                                     lambda raw, t=topic: self._enqueue(t, raw), RELIABLE,
                                     raw=True)

    def _enqueue(self, topic: str, raw: bytes) -> None:
        self._queue.put((topic, self.node.get_clock().now().nanoseconds, raw))

    def _write_loop(self, topics: dict[str, str], storage: str) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
        try:
            plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[storage]
            writer = Writer(self.output, version=9, storage_plugin=plugin)
            writer.open()
            store = get_typestore(Stores.ROS2_JAZZY)
            conns = {t: writer.add_connection(t, m, typestore=store) for t, m in topics.items()}
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (item := self._queue.get()) is not None:
                topic, stamp, raw = item
                writer.write(conns[topic], stamp, raw)
                self.counts[topic] += 1
        finally:
            writer.close()

    def close(self) -> None:
        """Write what is queued, then finalise the bag (metadata.yaml)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m depth_nodes.dds_bag',
                                     description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    play = sub.add_parser('play', help='publish a bag over DDS')
    play.add_argument('bag', type=Path)
    play.add_argument('--rate', type=float, default=1.0)
    play.add_argument('--clock', action='store_true', help='publish /clock from bag time')
    play.add_argument('--topics', nargs='*', help='only these topics')
    play.add_argument('--loop', action='store_true')
    rec = sub.add_parser('record', help='record topics into a new rosbag2')
    rec.add_argument('output', type=Path)
    rec.add_argument('--topics', nargs='+', required=True,
                     help='topic:=pkg/msg/Type, e.g. /depth/image:=sensor_msgs/msg/Image')
    rec.add_argument('--duration', type=float, default=0.0, help='seconds (0: until Ctrl-C)')
    rec.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node('dds_bag')
    spinner = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spinner.start()
    try:
        if args.command == 'play':
            player = BagPlayer(node, args.bag, args.topics, args.rate, args.clock)
            while True:
                count = player.play()
                print(f'published {count} messages from {args.bag}')
                if not args.loop:
                    break
        else:
            topics = dict(t.split(':=', 1) for t in args.topics)
            recorder = BagRecorder(node, args.output, topics, args.storage)
            try:
                end = time.monotonic() + args.duration if args.duration else float('inf')
                while time.monotonic() < end:
                    time.sleep(0.1)
            except KeyboardInterrupt:
                pass
            finally:
                recorder.close()
            print(f'recorded {recorder.counts} into {args.output}')
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
