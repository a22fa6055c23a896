"""bag_replay.launch.py: its plan without `launch`, and the real launch replaying sample
bags through the builtin player and recorder (depth_nodes.dds_bag).

The plan tests check the commands, nodes and path checks of methods.bag_replay_plan. The
replay tests need launch and launch_ros (ROS 2, or the wheels of ../shared/ros2-launch) but no
rosbag2 CLI; they skip without them, and a skip fails in CI (test/launch/conftest.py).
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_nodes.methods import (OUTPUT_TOPICS, bag_replay_plan, choose_bag_tool,
                                 get_method, ros2_bag_available)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools'))
from make_sample_bags import RGB_TOPICS, sample_bag  # noqa: E402


@pytest.fixture
def bag(tmp_path):
    path = tmp_path / 'run1'
    path.mkdir()
    (path / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    return path


def test_plays_with_clock_and_runs_the_method_on_sim_time(bag, tmp_path):
    processes, nodes = bag_replay_plan(
        str(bag), 'eigen', rate=0.5, loop=True, rviz=True, model='/m.onnx',
        remaps={'image': RGB_TOPICS['image'][0], 'camera_info': ''}, player='ros2',
        share=tmp_path, environ={})
    (play,) = processes
    assert play.cmd == ['ros2', 'bag', 'play', str(bag), '--clock', '--rate', '0.5', '--loop']
    assert play.env == {'FASTDDS_DEFAULT_PROFILES_FILE':
                        str(tmp_path / 'config' / 'fastdds_large_data.xml')}
    node, rviz = nodes
    assert node.executable == get_method('eigen').executable
    assert node.parameters[1] == {'use_sim_time': True, 'model': '/m.onnx'}
    assert node.remappings == [('image', '/camera/image')]
    assert rviz.parameters == [{'use_sim_time': True}]
    assert rviz.arguments == ['-d', str(tmp_path / 'config' / get_method('eigen').rviz)]


def test_record_takes_every_depth_output_in_the_namespace(bag, tmp_path):
    processes, _ = bag_replay_plan(str(bag), 'eigen', record=str(tmp_path / 'out'),
                                   namespace='front', ros2_bag=True, share=tmp_path,
                                   environ={})
    play, record = processes
    assert play.cmd[-2:] == ['--rate', '1']
    assert record.cmd == ['ros2', 'bag', 'record', '--use-sim-time', '-o',
                          str(tmp_path / 'out'), '/front/depth/image',
                          '/front/depth/camera_info', '/front/depth/colored',
                          '/front/depth/points']
    assert len(record.cmd) - 6 == len(OUTPUT_TOPICS)


def test_dof_adds_the_node_and_its_output_to_the_recording(bag, tmp_path):
    processes, nodes = bag_replay_plan(str(bag), 'eigen', dof=True, record=str(tmp_path / 'o'),
                                       remaps={'image': '/camera/image'}, recorder='ros2',
                                       share=tmp_path, environ={})
    assert [n.executable for n in nodes] == ['mono_depth_node', 'dof_node']
    assert nodes[1].parameters[1] == {'use_sim_time': True}
    assert nodes[1].remappings == [('image', '/camera/image')]
    assert processes[1].cmd[-1] == '/dof/image'


@pytest.mark.parametrize('name', ['file.mcap', 'file.db3', 'old.bag'])
def test_bag_files_are_accepted(tmp_path, name):
    (tmp_path / name).write_bytes(b'x')
    processes, _ = bag_replay_plan(str(tmp_path / name), 'eigen', player='ros2',
                                   share=tmp_path, environ={})
    assert processes[0].cmd[3] == str(tmp_path / name)


def test_paths_and_rate_are_checked_with_clear_errors(bag, tmp_path):
    (tmp_path / 'notes.txt').write_text('x')
    (tmp_path / 'empty').mkdir()
    cases = {
        '': 'bag:=<path> is required',
        str(tmp_path / 'missing'): 'bag not found',
        str(tmp_path / 'notes.txt'): 'is not a bag file',
        str(tmp_path / 'empty'): 'is not a rosbag2 directory',
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message):
            bag_replay_plan(path, 'eigen', share=tmp_path, environ={})
    with pytest.raises(ValueError, match='exists'):
        bag_replay_plan(str(bag), 'eigen', record=str(bag), share=tmp_path, environ={})
    with pytest.raises(ValueError, match='does not exist'):
        bag_replay_plan(str(bag), 'eigen', record=str(tmp_path / 'no' / 'out'),
                        share=tmp_path, environ={})
    with pytest.raises(ValueError, match='rate must be > 0'):
        bag_replay_plan(str(bag), 'eigen', rate=0.0, share=tmp_path, environ={})
    with pytest.raises(ValueError, match="unknown method 'midas'"):
        bag_replay_plan(str(bag), 'midas', share=tmp_path, environ={})
    with pytest.raises(ValueError, match="player/recorder must be one of auto, ros2, builtin"):
        bag_replay_plan(str(bag), 'eigen', player='rosbag', share=tmp_path, environ={})


def test_builtin_player_waits_for_the_remapped_inputs_in_the_namespace(bag, tmp_path):
    """player:=builtin: depth_nodes.dds_bag publishes /clock at the rate asked, waits for the
    node's inputs (remapped bag topics as given, the others in the namespace) and for the
    recorder, which records every depth output with its message type."""
    processes, nodes = bag_replay_plan(
        str(bag), 'stereo', rate=2.0, loop=True, record=str(tmp_path / 'out'),
        namespace='robot1', remaps={'left_image': '/stereo/left/image_rect'},
        player='builtin', recorder='builtin', share=tmp_path, environ={})
    play, record = processes
    tool = [sys.executable, '-m', 'depth_nodes.dds_bag']
    assert play.cmd == tool + ['play', str(bag), '--clock', '--rate', '2', '--wait-for',
                               '/stereo/left/image_rect', '/robot1/left/camera_info',
                               '/robot1/right/image_rect', '/robot1/right/camera_info',
                               '/robot1/depth/image', '--wait-timeout', '60', '--loop']
    assert record.cmd == tool + ['record', str(tmp_path / 'out'), '--use-sim-time',
                                 '--topics'] + [f'/robot1/{t}:={m}'
                                                for t, m in OUTPUT_TOPICS.items()]
    assert nodes[0].remappings == [('left/image_rect', '/stereo/left/image_rect')]


def test_auto_is_ros2_bag_where_it_exists_else_builtin(bag, tmp_path):
    for ros2_bag, first in ((True, 'ros2'), (False, sys.executable)):
        processes, _ = bag_replay_plan(str(bag), 'eigen', record=str(tmp_path / 'o'),
                                       ros2_bag=ros2_bag, share=tmp_path, environ={})
        assert [p.cmd[0] for p in processes] == [first, first]
    assert choose_bag_tool('auto') == ('ros2' if ros2_bag_available() else 'builtin')


# -- the real launch: replay with the builtin player and recorder ---------------------------
def _launch_available() -> str:
    """'' when launch and launch_ros import, else what is missing."""
    try:
        import launch.actions  # noqa: F401  (not `launch`: the checkout's launch/ folder)
        import launch_ros  # noqa: F401
    except ImportError as exc:
        return f'{exc.name} is not installed (needs ROS 2 or the wheels of ../shared/ros2-launch)'
    return ''


REPLAY_FRAMES = 10


@pytest.mark.skipif(bool(_launch_available()), reason=_launch_available())
@pytest.mark.parametrize('method', ['eigen', 'stereo'])
def test_replayed_bag_is_recorded_as_the_methods_depth_with_the_bags_stamps(method, tmp_path):
    """bag_replay.launch.py with player:=builtin recorder:=builtin (no rosbag2 CLI): every
    recorded depth image carries the stamp of an input frame and holds the depth the method
    computes offline from that frame, and the recorder on sim time wrote it at that frame's
    bag time (/clock from the player)."""
    from fixtures.launch_runner import launched, output_tail, share_launch_file
    from test_depth_launch import bag_topics, offline_depth, stamp_of

    from depth_nodes import ros_io
    from depth_nodes.dds_bag import open_bag
    from depth_nodes.methods import METHODS

    kind = get_method(method).input_kind
    size = {'height': 96, 'width': 160} if kind == 'stereo' else {'height': 48, 'width': 64}
    bag = sample_bag(kind, tmp_path / 'bags', frames=REPLAY_FRAMES, rate_hz=10.0, **size)
    remaps = bag_topics(METHODS[method])
    record = tmp_path / 'depth_bag'
    log = tmp_path / 'launch.log'
    arguments = {'bag': str(bag), 'method': method, 'player': 'builtin',
                 'recorder': 'builtin', 'record': str(record), 'rate': '0.5', **remaps}
    with launched([(share_launch_file('bag_replay.launch.py'), arguments)], log) as process:
        try:
            process.wait(timeout=180)        # shutdown_at_end: the launch ends by itself
        except subprocess.TimeoutExpired:
            pytest.fail(f'the replay did not end within 180 s:\n{output_tail(log)}')
    assert process.returncode == 0, output_tail(log)
    assert (record / 'metadata.yaml').exists(), f'nothing recorded:\n{output_tail(log)}'
    expected = offline_depth(bag, METHODS[method], remaps, tmp_path / 'offline',
                             frames=REPLAY_FRAMES)
    with open_bag(record) as reader:
        conns = [c for c in reader.connections if c.topic == '/depth/image']
        recorded = [(t, ros_io.image_from_cdr(bytes(raw)))
                    for _, t, raw in reader.messages(connections=conns)]
    # The player waits for the node and plays at half speed (200 ms a frame), yet the node's
    # keep-newest worker skips frames whenever an inference takes longer on a busy machine
    # (under a parallel test load: all but the last at twice the speed).
    assert len(recorded) >= 3, f'{len(recorded)} depth images:\n' + output_tail(log)
    for bag_time, msg in recorded:
        stamp = stamp_of(msg)
        assert stamp in expected, f'depth stamped {stamp}, not an input stamp'
        np.testing.assert_allclose(ros_io.image_to_array(msg), expected[stamp], rtol=1e-5,
                                   atol=1e-6)
        # Sim time (not wall time, years later): the frame's bag time (the sample bags write
        # each frame at its stamp), or the previous frame's (100 ms earlier) when the depth
        # reached the recorder before that frame's /clock, or a later one when the node took
        # longer than a frame.
        assert stamp - 100_000_000 <= bag_time <= stamp + 1_000_000_000, (bag_time, stamp)
