"""bag_replay.launch.py: its plan without `launch` (here), the real launch on a ROS 2 install.

The plan tests check the commands, nodes and path checks of methods.bag_replay_plan. The
launch_pytest test needs launch, launch_ros, launch_pytest and the rosbag2 CLI (a ROS 2
Jazzy/Kilted install) and is skipped where they are missing, e.g. on the pip-only ROS wheels.
"""
import shutil
import sys
import tempfile
import time
from pathlib import Path

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
    node's inputs (remapped bag topics as given, the others in the namespace) and records
    every depth output with its message type."""
    processes, nodes = bag_replay_plan(
        str(bag), 'stereo', rate=2.0, loop=True, record=str(tmp_path / 'out'),
        namespace='robot1', remaps={'left_image': '/stereo/left/image_rect'},
        player='builtin', recorder='builtin', share=tmp_path, environ={})
    play, record = processes
    tool = [sys.executable, '-m', 'depth_nodes.dds_bag']
    assert play.cmd == tool + ['play', str(bag), '--clock', '--rate', '2', '--wait-for',
                               '/stereo/left/image_rect', '/robot1/left/camera_info',
                               '/robot1/right/image_rect', '/robot1/right/camera_info',
                               '--wait-timeout', '60', '--loop']
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


# -- the real launch (ROS 2 install only) ---------------------------------------------------
def _ros2_launch_available() -> str:
    """'' when launch, launch_ros, launch_pytest and `ros2 bag` exist, else what is missing."""
    try:
        import launch.actions  # noqa: F401  (not `launch`: the checkout's launch/ folder)
        import launch_pytest  # noqa: F401
        import launch_ros  # noqa: F401
    except ImportError as exc:
        return f'{exc.name} is not installed (needs a ROS 2 install)'
    if shutil.which('ros2') is None:
        return 'the ros2 CLI (rosbag2) is not installed'
    return ''


MISSING = _ros2_launch_available()

if not MISSING:
    import launch  # noqa: E402
    import launch_pytest  # noqa: E402
    from ament_index_python.packages import get_package_share_directory  # noqa: E402
    from fixtures.models import write_affine_model  # noqa: E402
    from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

    from depth_nodes import ros_io  # noqa: E402
    from depth_nodes.core.model_spec import ModelSpec  # noqa: E402
    from depth_nodes.dds_bag import open_bag  # noqa: E402

    WORK = Path(tempfile.mkdtemp())
    SPEC = ModelSpec(method='affine', input_height=24, input_width=32,
                     output_kind='log_depth', mean=(0.5,) * 3, std=(0.25,) * 3)
    MODEL = write_affine_model(WORK / 'affine.onnx', SPEC)
    CAMERA_BAG = sample_bag('rgb', WORK / 'bags', frames=20, height=48, width=64, rate_hz=10.0)
    RECORD = WORK / 'depth_bag'

    def _stamp(msg):
        return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    @launch_pytest.fixture
    def replay_launch():
        share = Path(get_package_share_directory('depth_nodes'))
        return launch.LaunchDescription([
            launch.actions.IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(share / 'launch' / 'bag_replay.launch.py')),
                launch_arguments={
                    'bag': str(CAMERA_BAG), 'method': 'eigen', 'model': str(MODEL),
                    'backend': 'onnxruntime', 'record': str(RECORD),
                    'image': RGB_TOPICS['image'][0],
                    'camera_info': RGB_TOPICS['camera_info'][0]}.items()),
            launch_pytest.actions.ReadyToTest(),
        ])

    @pytest.mark.launch(fixture=replay_launch)
    def test_replayed_bag_is_recorded_as_depth_with_the_bags_stamps():
        deadline = time.monotonic() + 90.0
        while not (RECORD / 'metadata.yaml').exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (RECORD / 'metadata.yaml').exists(), 'the replay launch recorded nothing'
        with open_bag(CAMERA_BAG) as reader:
            conns = [c for c in reader.connections if c.topic == RGB_TOPICS['image'][0]]
            stamps = {_stamp(ros_io.image_from_cdr(bytes(raw)))
                      for _, _, raw in reader.messages(connections=conns)}
        with open_bag(RECORD) as reader:
            conns = [c for c in reader.connections if c.topic == '/depth/image']
            depth = [ros_io.image_from_cdr(bytes(raw)) for _, _, raw in
                     reader.messages(connections=conns)]
        assert len(depth) >= 15
        assert {_stamp(m) for m in depth} <= stamps
else:
    @pytest.mark.skip(reason=MISSING)
    def test_replayed_bag_is_recorded_as_depth_with_the_bags_stamps():
        """Runs on a ROS 2 install (see the module docstring)."""
