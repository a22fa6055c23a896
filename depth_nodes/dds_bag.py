"""Play bags over DDS and record topics into rosbag2, with rosbags + rclpy (no rosbag2 CLI).

On a robot, `ros2 bag play/record` do this; these are for machines with only the ROS Python
wheels (like the development machines), for bag_replay.launch.py's player:=builtin and
record:= there, and for the demo:

  python -m depth_nodes.dds_bag play BAG [--rate R] [--clock] [--loop] [--topics T ...]
      [--remap FROM:=TO ...] [--wait-for T ... [--wait-timeout S]]
  python -m depth_nodes.dds_bag record OUT --topics TOPIC:=pkg/msg/Type ... [--duration S]
      [--use-sim-time] [--storage sqlite3|mcap]

Messages travel as serialized CDR (ROS 1 bags are converted), so nothing is re-encoded and
header stamps stay exactly as recorded. ``--clock`` publishes /clock from the bag time, for
nodes running with use_sim_time. Both stop cleanly on Ctrl-C / SIGTERM (a recording is
finalised); ROS arguments go after ``--ros-args``, as for any ROS 2 program.
"""
from __future__ import annotations

import argparse
import importlib
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
DISCOVERY_SETTLE_S = 0.5     # after --wait-for found its subscribers, before playing


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

    def wait_for_subscribers(self, topics: Iterable[str], timeout: float,
                             stop: threading.Event | None = None) -> bool:
        """Wait until each of ``topics`` has a subscriber: a bag topic (its publisher is
        created now, remapped) or any other topic of the graph (e.g. a recorder's)."""
        topics = list(topics)
        with open_bag(self.bag) as reader:
            for conn in reader.connections:
                if conn.topic in topics:
                    self._publisher(conn)

        def subscribed(topic: str) -> bool:
            if topic in self.publishers:
                return self.publishers[topic].get_subscription_count() > 0
            return self.node.count_subscribers(topic) > 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if all(subscribed(t) for t in topics):
                # Discovery is not symmetric: the reader may not know this publisher yet and
                # would take the first messages late (on sim time, at a later /clock). Give it
                # a moment, as `ros2 bag play --delay` does.
                time.sleep(DISCOVERY_SETTLE_S)
                return True
            time.sleep(0.05)
        return False

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every matched reliable reader has acknowledged what was published. A
        player that exits right after its last message would otherwise take unacknowledged
        samples with it (e.g. to a reader that matched the publisher but had not yet
        discovered it back)."""
        from rclpy.duration import Duration
        deadline = time.monotonic() + timeout
        return all(pub.wait_for_all_acked(Duration(seconds=max(deadline - time.monotonic(), 0.0)))
                   for pub in list(self.publishers.values()))

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
                    if stop is None:
                        time.sleep(delay)
                    elif stop.wait(delay):
                        break
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


def split_ros_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` -> (this tool's arguments, the ROS arguments: ``--ros-args ... [--]``).

    rclpy.init() gets only the latter: given the whole command line it would take
    ``/depth/image:=sensor_msgs/msg/Image`` (the --topics syntax) for a remap rule.
    """
    if '--ros-args' not in argv:
        return list(argv), []
    start = argv.index('--ros-args')
    rest = argv[start:]
    end = rest.index('--') if '--' in rest else len(rest)
    return list(argv[:start]) + rest[end + 1:], rest[:end]


def parse_pairs(pairs: Iterable[str], what: str) -> dict[str, str]:
    """['a:=b', ...] -> {'a': 'b', ...}; a clear ValueError naming ``what`` otherwise."""
    result = {}
    for pair in pairs or ():
        key, sep, value = pair.partition(':=')
        if not (sep and key and value):
            raise ValueError(f"{what} expects NAME:=VALUE, got '{pair}'")
        result[key] = value
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m depth_nodes.dds_bag',
                                     description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    play = sub.add_parser('play', help='publish a bag over DDS')
    play.add_argument('bag', type=Path)
    play.add_argument('--rate', type=float, default=1.0)
    play.add_argument('--clock', action='store_true', help='publish /clock from bag time')
    play.add_argument('--topics', nargs='*', help='only these topics')
    play.add_argument('--loop', action='store_true')
    play.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO',
                      help='publish bag topic FROM on TO (as ros2 bag play --remap)')
    play.add_argument('--wait-for', nargs='+', default=[], metavar='TOPIC',
                      help='topics (bag topics before --remap, or any other) that must have '
                           'a subscriber before playing starts')
    play.add_argument('--wait-timeout', type=float, default=30.0,
                      help='seconds to wait for those subscribers (then play anyway)')
    rec = sub.add_parser('record', help='record topics into a new rosbag2')
    rec.add_argument('output', type=Path)
    rec.add_argument('--topics', nargs='+', required=True, metavar='TOPIC:=TYPE',
                     help='topic:=pkg/msg/Type, e.g. /depth/image:=sensor_msgs/msg/Image')
    rec.add_argument('--duration', type=float, default=0.0, help='seconds (0: until Ctrl-C)')
    rec.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    rec.add_argument('--use-sim-time', action='store_true',
                     help='bag times from /clock (as ros2 bag record --use-sim-time)')
    return parser


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT (Ctrl-C, launch's shutdown) and SIGTERM end the run through ``stop``."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def main(argv=None) -> int:
    own, ros_args = split_ros_arguments(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(own)
    try:
        remap = parse_pairs(getattr(args, 'remap', []), '--remap')
        topics = parse_pairs(getattr(args, 'topics', []), '--topics') \
            if args.command == 'record' else {}
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        _stop_on_signals(stop)
    # A context of our own with no signal handlers of rclpy's: the run ends through `stop`,
    # and everything is shut down in order below. A spin thread still inside the executor
    # when the interpreter exits aborts it (exit 134, 'terminate called without an active
    # exception').
    context = rclpy.Context()
    rclpy.init(args=['dds_bag', *ros_args], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    overrides = [Parameter('use_sim_time', value=True)] if getattr(
        args, 'use_sim_time', False) else []
    node = rclpy.create_node('dds_bag', context=context, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name='dds-bag-spin')
    spinner.start()
    try:
        if args.command == 'play':
            return _play(node, args, remap, stop)
        return _record(node, args, topics, stop)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    finally:
        executor.shutdown()
        spinner.join()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _play(node: Node, args, remap: dict[str, str], stop: threading.Event) -> int:
    player = BagPlayer(node, args.bag, args.topics, args.rate, args.clock, remap)
    if args.wait_for and not player.wait_for_subscribers(args.wait_for, args.wait_timeout,
                                                         stop):
        print(f'warning: no subscriber on some of {args.wait_for} after '
              f'{args.wait_timeout:g} s; playing anyway', file=sys.stderr)
    while not stop.is_set():
        count = player.play(stop)
        print(f'published {count} messages from {args.bag}', flush=True)
        if not args.loop:
            break
    if not player.flush():
        print('warning: some subscribers did not acknowledge every message', file=sys.stderr)
    return 0


def _record(node: Node, args, topics: dict[str, str], stop: threading.Event) -> int:
    recorder = BagRecorder(node, args.output, topics, args.storage)
    try:
        end = time.monotonic() + args.duration if args.duration else float('inf')
        while not stop.wait(0.1) and time.monotonic() < end:
            pass
    finally:
        recorder.close()
    print(f'recorded {recorder.counts} into {args.output}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
