"""launch / launch_ros actions from the plans of depth_nodes.methods: what
launch/depth.launch.py and launch/bag_replay.launch.py have in common.

A launch file here is a table of its launch arguments plus a ``setup(context)`` that reads
their values, asks depth_nodes.methods for a plan and turns it into actions with these
functions. `launch` and `launch_ros` exist only on a ROS 2 install, so they are imported
inside the functions: this module imports anywhere (tests check the argument tables here).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from depth_nodes.methods import (DEFAULT_METHOD, METHODS, PACKAGE, REMAP_ARGUMENTS, NodePlan,
                                 ProcessPlan, share_directory)

# A launch argument: (name, default value or None for a required argument, description).
LaunchArgument = tuple[str, 'str | None', str]

# The arguments that choose and configure the method, the same in every launch file.
METHOD_ARGUMENT: LaunchArgument = ('method', DEFAULT_METHOD, 'depth method: ' + ', '.join(
    f'{m.name} ({m.summary})' for m in METHODS.values()))
MODEL_ARGUMENT: LaunchArgument = (
    'model', '', 'model file or name under share/depth_nodes/models (empty: the method default)')
BACKEND_ARGUMENT: LaunchArgument = (
    'backend', '', 'auto | onnxruntime | tensorrt | torch (empty: the params file, auto)')


def remap_arguments(source: str) -> list[LaunchArgument]:
    """One argument per remappable node input (REMAP_ARGUMENTS), described as ``source``
    (e.g. 'topic', 'bag topic') remapped onto that input; empty by default."""
    return [(arg, topic, f"{source} remapped to the node's '{topic}' input")
            for arg, topic in REMAP_ARGUMENTS.items()]


def is_true(text: str) -> bool:
    """A boolean launch argument: 1, true, yes or on (any case) is true."""
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def launch_description(arguments: Sequence[LaunchArgument],
                       setup: Callable[[Any], list]) -> Any:
    """Declares ``arguments`` (a None default makes one required), then runs
    ``setup(context)``, which returns the actions, once their values are known."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    return LaunchDescription(
        [DeclareLaunchArgument(name, description=description) if default is None else
         DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in arguments]
        + [OpaqueFunction(function=setup)])


def argument_values(context: Any, arguments: Sequence[LaunchArgument]) -> dict[str, str]:
    """Every argument's value in ``context`` (as given, or its default), as text."""
    from launch.substitutions import LaunchConfiguration
    return {name: LaunchConfiguration(name).perform(context) for name, _, _ in arguments}


def node_actions(plans: Sequence[NodePlan], namespace: str) -> list:
    """launch_ros Nodes of ``plans``: this package's nodes in ``namespace`` (one scoped
    group), the others (RViz) global, as their configs name the topics."""
    from launch.actions import GroupAction
    from launch_ros.actions import Node, PushRosNamespace
    nodes = [Node(package=p.package, executable=p.executable, name=p.name,
                  parameters=p.parameters, remappings=p.remappings, arguments=p.arguments,
                  additional_env=p.env, output='screen', emulate_tty=True) for p in plans]
    ours = [n for n, p in zip(nodes, plans) if p.package == PACKAGE]
    others = [n for n, p in zip(nodes, plans) if p.package != PACKAGE]
    scope = [PushRosNamespace(namespace)] if namespace else []
    return [GroupAction(scope + ours)] + others


def include_launch_file(name: str, arguments: dict[str, str]) -> Any:
    """This package's launch file ``name`` with ``arguments``, in a scope of its own (a
    GroupAction): the arguments of one include do not leak into the next."""
    from launch.actions import GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    path = share_directory() / 'launch' / name
    return GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                                 launch_arguments=arguments.items())])


def process_actions(plans: Sequence[ProcessPlan]) -> dict[str, Any]:
    """ExecuteProcess actions of ``plans`` by plan name (e.g. 'bag_play')."""
    from launch.actions import ExecuteProcess
    return {p.name: ExecuteProcess(cmd=p.cmd, name=p.name, additional_env=p.env,
                                   output='screen') for p in plans}


def shutdown_after_exit(process: Any, reason: str, delay_s: float) -> Any:
    """Stops the whole launch ``delay_s`` seconds after ``process`` exits."""
    from launch.actions import EmitEvent, RegisterEventHandler, TimerAction
    from launch.event_handlers import OnProcessExit
    from launch.events import Shutdown
    stop = EmitEvent(event=Shutdown(reason=reason))
    return RegisterEventHandler(OnProcessExit(
        target_action=process, on_exit=[TimerAction(period=delay_s, actions=[stop])]))
