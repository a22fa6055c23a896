"""depth.launch.py through the real launch / launch_ros, for every method, in the root namespace
and in namespace:=robot1 with its inputs remapped: each node runs its params file (the
method's own model, or SGBM) and publishes on its namespaced topic the depth that the same
method computes offline (depth_nodes.process_bag) from the same input messages.

Issue 16: the params files' node-name root key matched only a node in the root namespace, so
in a namespace every node silently ran its defaults (eigen's model for pix2pix, SGBM for
stereo). Skipped where `launch` / `launch_ros` are missing; a failure in CI when the launch
wheels are at hand (test/launch/conftest.py).
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

# launch.actions, not launch: the checkout's launch/ folder would import as a namespace package.
pytest.importorskip('launch.actions', reason='launch is not installed (needs ROS 2 or the '
                                             'wheels of ../shared/ros2-launch)')
pytest.importorskip('launch_ros', reason='launch_ros is not installed')

from fixtures.launch_runner import launched, output_tail, share_launch_file  # noqa: E402
from fixtures.ros_harness import ros_graph  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from depth_nodes import ros_io  # noqa: E402
from depth_nodes.dds_bag import message_class, open_bag  # noqa: E402
from depth_nodes.methods import METHODS, REMAP_ARGUMENTS, Method  # noqa: E402
from depth_nodes.process_bag import process_bag  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import KINDS, sample_bag  # noqa: E402

NAMESPACE = 'robot1'
FRAMES = 2
# StereoSGBM needs an image wider than its disparity range (sgbm.num_disparities: 128).
SIZE = {'stereo': (96, 160)}
START_TIMEOUT_S = 120.0      # every node process of a launch started and its model loaded
FRAME_TIMEOUT_S = 30.0


def stamp_of(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def flatten(params: dict, prefix: str = '') -> dict:
    """{'sgbm': {'mode': 'sgbm'}} -> {'sgbm.mode': 'sgbm'}: parameter names as declared."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def bag_topics(method: Method) -> dict[str, str]:
    """Launch remap argument -> the sample bag's topic, for the method's inputs in the bag."""
    kind = KINDS[method.input_kind]
    remaps = {}
    for key, (topic, _) in kind.topics.items():
        argument = f'nir_{key}' if method.input_kind == 'nir' else key
        if REMAP_ARGUMENTS.get(argument) in method.inputs:
            remaps[argument] = topic
    return remaps


def frames_of(bag: Path, topics: set[str]) -> list[list[tuple[str, str, bytes]]]:
    """The bag's messages on ``topics`` grouped by bag time: [[(topic, type, CDR)]], each
    frame's camera_info first (the nodes take the newest camera_info when an image comes)."""
    frames: dict[int, list] = {}
    with open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic in topics]
        for conn, bag_ns, raw in reader.messages(connections=conns):
            frames.setdefault(bag_ns, []).append((conn.topic, conn.msgtype, bytes(raw)))
    return [sorted(f, key=lambda m: 'camera_info' not in m[0]) for _, f in sorted(frames.items())]


def offline_depth(bag: Path, method: Method, remaps: dict[str, str], out: Path,
                  frames: int = FRAMES) -> dict:
    """Stamp -> depth of the method run offline on the bag (its params file, no ROS graph)."""
    report = process_bag(bag, out, method.name, progress=False,
                         topics={REMAP_ARGUMENTS[a]: t for a, t in remaps.items()})
    assert report.depth_images == frames, report
    with open_bag(out) as reader:
        conns = [c for c in reader.connections if c.topic == '/depth/image']
        return {stamp_of(m): ros_io.image_to_array(m) for m in (
            ros_io.image_from_cdr(bytes(raw)) for _, _, raw in reader.messages(conns))}


def node_parameters(probe, node: str, names: list[str], timeout: float = 10.0) -> dict:
    client = probe.node.create_client(GetParameters, f'{node}/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'{node} has no parameter service'
        future = client.call_async(GetParameters.Request(names=names))
        assert probe.wait_for(future.done, timeout), f'{node}/get_parameters did not answer'
        return {n: parameter_value_to_python(v) for n, v in zip(names, future.result().values)}
    finally:
        probe.node.destroy_client(client)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    return tmp_path_factory.mktemp('sample_bags')


@pytest.mark.parametrize('name', sorted(METHODS))
def test_method_runs_its_params_file_in_the_root_namespace_and_in_robot1(name, bags, tmp_path):
    method = METHODS[name]
    height, width = SIZE.get(method.input_kind, (48, 64))
    bag = sample_bag(method.input_kind, bags, frames=FRAMES, height=height, width=width)
    remaps = bag_topics(method)
    expected = offline_depth(bag, method, remaps, tmp_path / 'offline')
    params = flatten(yaml.safe_load((REPO / 'config' / method.params_file).read_text())
                     ['/**']['ros__parameters'])
    # Root namespace: the node's own input names. robot1: the inputs remapped to the bag's
    # topics, outputs under /robot1.
    node_input = {topic: '/' + REMAP_ARGUMENTS[a] for a, topic in remaps.items()}
    variants = {'': f'/{method.executable}', NAMESPACE: f'/{NAMESPACE}/{method.executable}'}
    outputs = {ns: f'/{ns}/depth/image' if ns else '/depth/image' for ns in variants}
    launch_file = share_launch_file('depth.launch.py')
    log = tmp_path / 'launch.log'
    with launched([(launch_file, {'method': name}),
                   (launch_file, {'method': name, 'namespace': NAMESPACE, **remaps})],
                  log) as process, ros_graph() as (probe, _):
        with open_bag(bag) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
        publishers = {target: probe.publisher(message_class(types[topic]), target)
                      for topic in node_input for target in (topic, node_input[topic])}
        for output in outputs.values():
            probe.record(Image, output)

        # Each node's subscriptions: the inputs its parameters and model use (a semi-dense
        # model may take no image); frames are re-sent below until the depth comes.
        targets = {'': set(node_input.values()), NAMESPACE: set(node_input)}

        def subscribed(ns: str) -> set:
            try:
                return {t for t, _ in probe.node.get_subscriber_names_and_types_by_node(
                    method.executable, '/' + ns)}
            except Exception:          # not discovered yet
                return set()

        def started():
            assert process.poll() is None, f'launch ended:\n{output_tail(log)}'
            return all(probe.node.count_publishers(o) >= 1 for o in outputs.values()) and all(
                subscribed(ns) & targets[ns] for ns in variants)
        assert probe.wait_for(started, START_TIMEOUT_S, period=0.2), \
            f'the nodes did not start within {START_TIMEOUT_S:g} s:\n{output_tail(log)}'

        for ns, node in variants.items():
            values = node_parameters(probe, node, sorted(params))
            assert values == params, f'{node} does not run config/{method.params_file}'

        for frame in frames_of(bag, set(node_input)):
            image = next(raw for _, msgtype, raw in frame if msgtype.endswith('/Image'))
            stamp = stamp_of(ros_io.image_from_cdr(image))
            deadline = time.monotonic() + FRAME_TIMEOUT_S
            while time.monotonic() < deadline:
                for topic, _, raw in frame:       # root namespace and robot1's remapped topic
                    for target in {topic, node_input[topic]}:
                        publishers[target].publish(raw)
                if probe.wait_for(lambda: all(stamp in {stamp_of(m) for m in probe.messages(o)}
                                              for o in outputs.values()), 2.0):
                    break
            for ns, output in outputs.items():
                got = {stamp_of(m): m for m in probe.messages(output)}
                assert stamp in got, f'no depth for {stamp} on {output}:\n{output_tail(log)}'
                depth = ros_io.image_to_array(got[stamp])
                assert depth.shape == (height, width) and got[stamp].encoding == '32FC1'
                np.testing.assert_allclose(depth, expected[stamp], rtol=1e-5, atol=1e-6,
                                           err_msg=f'{output} ({method.name})')
                assert np.isfinite(depth).any(), output


def test_multi_camera_example_runs_one_node_per_camera_namespace(bags, tmp_path):
    """launch/multi_camera.launch.py: cameras 'front' and 'rear' each get their own node,
    which turns that camera's image (a different frame per camera here) into the depth the
    method computes offline from it, on <camera>/depth/image."""
    method = METHODS['eigen']
    bag = sample_bag('rgb', bags, frames=FRAMES, height=48, width=64)
    remaps = bag_topics(method)
    expected = offline_depth(bag, method, remaps, tmp_path / 'offline')
    frames = frames_of(bag, set(remaps.values()))
    cameras = {'front': frames[0], 'rear': frames[1]}
    log = tmp_path / 'launch.log'
    with launched([(share_launch_file('multi_camera.launch.py'), {'method': 'eigen'})],
                  log) as process, ros_graph() as (probe, _):
        inputs = {(camera, topic): probe.publisher(
            message_class(msgtype), f'/{camera}/{topic.rsplit("/", 1)[-1]}')
            for camera, frame in cameras.items() for topic, msgtype, _ in frame}
        for camera in cameras:
            probe.record(Image, f'/{camera}/depth/image')

        def done():
            assert process.poll() is None, f'launch ended:\n{output_tail(log)}'
            for (camera, topic), publisher in inputs.items():
                if not probe.messages(f'/{camera}/depth/image'):
                    publisher.publish(next(r for t, _, r in cameras[camera] if t == topic))
            return all(probe.messages(f'/{c}/depth/image') for c in cameras)
        assert probe.wait_for(done, START_TIMEOUT_S, period=0.5), \
            f'no depth from every camera within {START_TIMEOUT_S:g} s:\n{output_tail(log)}'
    for camera, frame in cameras.items():
        msg = probe.messages(f'/{camera}/depth/image')[0]
        image = ros_io.image_from_cdr(next(r for t, _, r in frame if t == remaps['image']))
        assert stamp_of(msg) == stamp_of(image), camera
        np.testing.assert_allclose(ros_io.image_to_array(msg), expected[stamp_of(image)],
                                   rtol=1e-5, atol=1e-6, err_msg=camera)
    assert stamp_of(image) != stamp_of(probe.messages('/front/depth/image')[0])
