"""The depth methods users choose with ``method:=...`` and how each one is launched.

ROS-free and launch-free: the launch files turn :func:`launch_plan` into launch_ros actions,
and tests check the plan here, where `launch` is not installed.
"""
from __future__ import annotations

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


METHODS: dict[str, Method] = {m.name: m for m in (
    Method('eigen', 'mono_depth_node', 'rgb', 'eigen.yaml',
           'Eigen et al. multi-scale coarse + fine network (RGB)'),
)}

DEFAULT_METHOD = 'eigen'

# Launch arguments that remap a node input: argument name -> topic name inside the node.
REMAP_ARGUMENTS = {
    'image': 'image', 'camera_info': 'camera_info',
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
                remaps: dict[str, str] | None = None, rviz: bool = False,
                share: Path | None = None, environ=None) -> list[NodePlan]:
    """Nodes to start for ``method``: the method's node with its config, plus options.

    ``model`` / ``backend`` left empty keep the values of the method's params file;
    ``remaps`` maps node input names (see REMAP_ARGUMENTS) to the user's topics.
    """
    m = get_method(method)
    share = share or share_directory()
    env = node_environment(share, environ)
    overrides: dict = {'use_sim_time': use_sim_time}
    if model:
        overrides['model'] = model
    if backend:
        overrides['backend'] = backend
    remappings = [(REMAP_ARGUMENTS[k], v) for k, v in (remaps or {}).items()
                  if v and k in REMAP_ARGUMENTS and REMAP_ARGUMENTS[k] in m.inputs
                  and v != REMAP_ARGUMENTS[k]]
    plans = [NodePlan(PACKAGE, m.executable, m.executable,
                      [str(share / 'config' / m.params_file), overrides], remappings, env=env)]
    if rviz:
        plans.append(NodePlan('rviz2', 'rviz2', 'rviz2', [{'use_sim_time': use_sim_time}],
                              arguments=['-d', str(share / 'config' / 'depth.rviz')]))
    return plans
