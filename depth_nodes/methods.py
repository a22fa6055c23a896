"""The depth methods users choose with ``method:=...`` and how each one is launched.

ROS-free and launch-free: the launch files turn :func:`launch_plan` into launch_ros actions,
and tests check the plan here, where `launch` is not installed.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = 'depth_nodes'


@dataclass(frozen=True)
class Method:
    name: str
    executable: str
    input_kind: str            # rgb | nir | stereo | semidense
    params_file: str           # config/<file>, one per method
    summary: str
    # Input topics of the node, each remappable by a launch argument of the same name.
    inputs: tuple[str, ...] = ('image', 'camera_info')
    rviz: str = 'depth.rviz'   # config/<file> that rviz:=true opens


STEREO_INPUTS = ('left/image_rect', 'left/camera_info', 'right/image_rect',
                 'right/camera_info')

METHODS: dict[str, Method] = {m.name: m for m in (
    Method('eigen', 'mono_depth_node', 'rgb', 'eigen.yaml',
           'Eigen et al. multi-scale coarse + fine network (RGB)'),
    Method('pix2pix', 'mono_depth_node', 'rgb', 'pix2pix.yaml',
           'Pix2Pix U-Net generator + PatchGAN, conditional GAN depth (RGB)'),
    Method('cyclegan', 'mono_depth_node', 'rgb', 'cyclegan.yaml',
           'Suarez et al. contrastive CycleGAN, gray (luma of RGB) -> depth, trained unpaired'),
    Method('nir', 'nir_depth_node', 'nir', 'nir.yaml',
           'Shen et al.: NIR -> CTN pseudo-RGB -> stereo-trained DPN depth (near-infrared)',
           inputs=('nir/image', 'nir/camera_info'), rviz='nir.rviz'),
    Method('semidense', 'semidense_depth_node', 'semidense', 'semidense.yaml',
           'Makarov et al. semi-dense (LSD-SLAM) / sparse depth interpolation network',
           inputs=('semidense/depth', 'semidense/variance', 'semidense/points', 'image',
                   'camera_info'), rviz='depth_semidense.rviz'),
    Method('monodepth', 'mono_depth_node', 'rgb', 'monodepth.yaml',
           'Shen et al. DPN trained on stereo pairs without ground truth, run on one image'),
    Method('stereo', 'stereo_depth_node', 'stereo', 'stereo.yaml',
           'Shen et al. DPN on the left image, depth = fx B / d with the rig baseline',
           inputs=STEREO_INPUTS, rviz='depth_stereo.rviz'),
    Method('sgbm', 'stereo_depth_node', 'stereo', 'sgbm.yaml',
           'OpenCV StereoSGBM on the rectified pair: classical reference, no model',
           inputs=STEREO_INPUTS, rviz='depth_stereo.rviz'),
)}

DEFAULT_METHOD = 'eigen'

# Node-relative output topics of every depth node (frames.DepthFramePath.outputs()) and types.
OUTPUT_TOPICS = {'depth/image': 'sensor_msgs/msg/Image',
                 'depth/camera_info': 'sensor_msgs/msg/CameraInfo',
                 'depth/colored': 'sensor_msgs/msg/Image',
                 'depth/points': 'sensor_msgs/msg/PointCloud2'}

# Launch arguments that remap a node input: argument name -> topic name inside the node.
REMAP_ARGUMENTS = {
    'image': 'image', 'camera_info': 'camera_info',
    'nir_image': 'nir/image', 'nir_camera_info': 'nir/camera_info',
    'semidense_depth': 'semidense/depth', 'semidense_variance': 'semidense/variance',
    'semidense_points': 'semidense/points',
    'left_image': 'left/image_rect', 'left_camera_info': 'left/camera_info',
    'right_image': 'right/image_rect', 'right_camera_info': 'right/camera_info',
}


@dataclass(frozen=True)
class NodePlan:
    """What a launch file starts: one node with its parameters and remappings."""
    package: str
    executable: str
    name: str
    parameters: list = field(default_factory=list)      # YAML paths and dicts
    remappings: list = field(default_factory=list)      # (from, to)
    arguments: list = field(default_factory=list)
    env: dict = field(default_factory=dict)             # extra environment variables


def share_directory() -> Path:
    """share/depth_nodes of the installed package (falls back to the source checkout)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # not installed: running from the source tree
        return Path(__file__).resolve().parents[1]


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}'; choose one of: "
                         f"{', '.join(sorted(METHODS))}") from None


def node_environment(share: Path, environ=None) -> dict[str, str]:
    """Environment for the depth nodes: the large-data Fast DDS profile unless one is set.

    Our outputs are 1+ MB images; without a larger shared-memory segment best-effort
    subscribers (e.g. RViz set to best effort) silently receive nothing (config/README).
    """
    import os
    environ = os.environ if environ is None else environ
    if environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return {}
    return {'FASTDDS_DEFAULT_PROFILES_FILE': str(share / 'config' / 'fastdds_large_data.xml')}


def launch_plan(method: str, *, model: str = '', backend: str = '', use_sim_time: bool = False,
                remaps: dict[str, str] | None = None, rviz: bool = False, dof: bool = False,
                image_transport: str = '', share: Path | None = None,
                environ=None) -> list[NodePlan]:
    """Nodes to start for ``method``: the method's node with its config, plus options.

    ``model`` / ``backend`` / ``image_transport`` left empty keep the values of the method's
    params file;
    ``remaps`` maps node input names (see REMAP_ARGUMENTS) to the user's topics. ``dof``
    adds dof_node (RGB methods only), reading the method's image and its depth/image.
    """
    m = get_method(method)
    share = share or share_directory()
    env = node_environment(share, environ)
    overrides: dict = {'use_sim_time': use_sim_time}
    if model:
        overrides['model'] = model
    if backend:
        overrides['backend'] = backend
    if image_transport:
        overrides['image_transport'] = image_transport
    remappings = [(REMAP_ARGUMENTS[k], v) for k, v in (remaps or {}).items()
                  if v and k in REMAP_ARGUMENTS and REMAP_ARGUMENTS[k] in m.inputs
                  and v != REMAP_ARGUMENTS[k]]
    plans = [NodePlan(PACKAGE, m.executable, m.executable,
                      [str(share / 'config' / m.params_file), overrides], remappings, env=env)]
    if dof:
        if m.input_kind != 'rgb':
            raise ValueError(f"dof:=true needs an RGB method; '{m.name}' takes "
                             f'{m.input_kind} input')
        # Same namespace as the depth node: its depth/image is the dof node's depth/image.
        plans.append(NodePlan(PACKAGE, 'dof_node', 'dof_node',
                              [str(share / 'config' / 'dof.yaml'),
                               {'use_sim_time': use_sim_time}],
                              [r for r in remappings if r[0] == 'image'], env=env))
    if rviz:
        plans.append(NodePlan('rviz2', 'rviz2', 'rviz2', [{'use_sim_time': use_sim_time}],
                              arguments=['-d', str(share / 'config' / m.rviz)]))
    return plans


@dataclass(frozen=True)
class ProcessPlan:
    """A command a launch file runs as a process (ExecuteProcess), e.g. `ros2 bag play`."""
    name: str
    cmd: list
    env: dict = field(default_factory=dict)


def check_bag_path(bag: str) -> Path:
    """A bag launch argument -> an existing rosbag2 directory or bag file (clear error)."""
    if not bag:
        raise ValueError('bag:=<path> is required (a rosbag2 directory or a .mcap/.db3/.bag '
                         'file)')
    path = Path(bag).expanduser()
    if path.is_dir():
        if not (path / 'metadata.yaml').is_file() and not any(
                path.glob('*.mcap')) and not any(path.glob('*.db3')):
            raise ValueError(f'{path} is not a rosbag2 directory (no metadata.yaml, .mcap or '
                             '.db3 inside)')
    elif not path.is_file():
        raise ValueError(f'bag not found: {path}')
    elif path.suffix not in ('.mcap', '.db3', '.bag'):
        raise ValueError(f'{path} is not a bag file (.mcap, .db3 or .bag expected)')
    return path.resolve()


BAG_TOOLS = ('auto', 'ros2', 'builtin')
# Last name of the node inputs that image_transport applies to.
IMAGE_INPUT_NAMES = ('image', 'image_rect')


def ros2_bag_available() -> bool:
    """True where `ros2 bag` exists: the ros2 CLI with its rosbag2 verb (ros2bag)."""
    import importlib.util
    import shutil
    return shutil.which('ros2') is not None and importlib.util.find_spec('ros2bag') is not None


def choose_bag_tool(tool: str, ros2_bag: bool | None = None) -> str:
    """'auto' | 'ros2' | 'builtin' -> 'ros2' or 'builtin' ('auto': `ros2 bag` where it
    exists, else depth_nodes.dds_bag); ``ros2_bag`` None asks ros2_bag_available()."""
    if tool not in BAG_TOOLS:
        raise ValueError(f"player/recorder must be one of {', '.join(BAG_TOOLS)}, got '{tool}'")
    if tool != 'auto':
        return tool
    return 'ros2' if (ros2_bag_available() if ros2_bag is None else ros2_bag) else 'builtin'


def resolve_topic(name: str, namespace: str = '') -> str:
    """A node-relative topic name as a node in ``namespace`` resolves it."""
    if name.startswith('/'):
        return name
    prefix = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return f'{prefix}/{name}'


def bag_replay_plan(bag: str, method: str, *, rate: float = 1.0, loop: bool = False,
                    record: str = '', rviz: bool = False, dof: bool = False, model: str = '',
                    backend: str = '', namespace: str = '', image_transport: str = '',
                    remaps: dict[str, str] | None = None, player: str = 'auto',
                    recorder: str = 'auto', ros2_bag: bool | None = None,
                    share: Path | None = None, environ=None
                    ) -> tuple[list[ProcessPlan], list[NodePlan]]:
    """A recorded bag into ``method`` on sim time: a bag player publishing /clock, the
    method's nodes with use_sim_time (and RViz), optionally a recorder of the depth outputs.

    ``player`` / ``recorder``: 'ros2' runs `ros2 bag play/record`; 'builtin' runs
    depth_nodes.dds_bag (rosbags + rclpy, for installs without the rosbag2 CLI), whose player
    also waits (up to a minute) for the method's node and the recorder to subscribe before it
    starts, so that a short bag is replayed whole; 'auto'
    is 'ros2' where `ros2 bag` exists (``ros2_bag``: None asks the machine). ``remaps`` maps
    node inputs to the bag's camera topics, as in launch_plan(). Paths are checked here: the
    bag must exist, the record output must not (and its folder must).
    """
    if not rate > 0:
        raise ValueError(f'rate must be > 0, got {rate}')
    path = check_bag_path(bag)
    player, recorder = choose_bag_tool(player, ros2_bag), choose_bag_tool(recorder, ros2_bag)
    share = share or share_directory()
    nodes = launch_plan(method, model=model, backend=backend, use_sim_time=True, remaps=remaps,
                        rviz=rviz, dof=dof, image_transport=image_transport, share=share,
                        environ=environ)
    env = node_environment(share, environ)     # the player publishes camera-size images too
    builtin = [sys.executable, '-m', 'depth_nodes.dds_bag']
    if player == 'ros2':
        play = ['ros2', 'bag', 'play', str(path), '--clock', '--rate', f'{rate:g}']
    else:
        inputs = {**{topic: topic for topic in get_method(method).inputs},
                  **{REMAP_ARGUMENTS[k]: v for k, v in (remaps or {}).items()
                     if v and k in REMAP_ARGUMENTS}}
        waits = [resolve_topic(inputs[topic], namespace) for topic in get_method(method).inputs]
        if image_transport == 'compressed':     # the node subscribes <image topic>/compressed
            waits = [f'{t}/compressed' if t.rsplit('/', 1)[-1] in IMAGE_INPUT_NAMES else t
                     for t in waits]
        # The node's inputs that are in the bag, and the recorder's depth/image.
        waits += [resolve_topic('depth/image', namespace)] if record else []
        play = builtin + ['play', str(path), '--clock', '--rate', f'{rate:g}',
                          '--wait-for', *waits, '--wait-timeout', '60']
    processes = [ProcessPlan('bag_play', play + (['--loop'] if loop else []), env)]
    if record:
        out = Path(record).expanduser()
        if out.exists():
            raise ValueError(f'record:={record} exists; the recorder needs a new path')
        if not out.parent.resolve().is_dir():
            raise ValueError(f'record:={record}: folder {out.parent} does not exist')
        topics = {resolve_topic(topic, namespace): msgtype
                  for topic, msgtype in OUTPUT_TOPICS.items()}
        if dof:
            topics[resolve_topic('dof/image', namespace)] = 'sensor_msgs/msg/Image'
        if recorder == 'ros2':
            cmd = ['ros2', 'bag', 'record', '--use-sim-time', '-o', str(out.resolve()),
                   *topics]
        else:
            cmd = builtin + ['record', str(out.resolve()), '--use-sim-time', '--topics',
                             *(f'{t}:={m}' for t, m in topics.items())]
        processes.append(ProcessPlan('bag_record', cmd, env))
    return processes, nodes
