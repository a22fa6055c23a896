"""Replay a recorded bag into a depth method on sim time, optionally in RViz and recorded.

  ros2 launch depth_nodes bag_replay.launch.py bag:=<path> method:=<method> \
      [rate:=1.0] [loop:=false] [rviz:=true] [record:=<new bag>] [image:=/camera/image] ...

`ros2 bag play --clock` drives /clock, the method's node(s) run with use_sim_time, and the
bag's camera topics are remapped onto the node inputs. The plan (commands, nodes, checks on
the paths) lives in depth_nodes.methods.bag_replay_plan; this file only turns it into actions.
"""
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, GroupAction,
                            OpaqueFunction, RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from depth_nodes.methods import DEFAULT_METHOD, METHODS, REMAP_ARGUMENTS, bag_replay_plan

ARGUMENTS = [
    ('bag', None, 'rosbag2 directory or .mcap/.db3/.bag file to play (required)'),
    ('method', DEFAULT_METHOD, 'depth method: ' + ', '.join(
        f'{m.name} ({m.summary})' for m in METHODS.values())),
    ('rate', '1.0', 'playback rate (ros2 bag play --rate)'),
    ('loop', 'false', 'play the bag in a loop (the nodes reset on the jump back in time)'),
    ('rviz', 'false', "also start RViz with the method's config"),
    ('dof', 'false', 'also start dof_node (synthetic depth of field; RGB methods)'),
    ('record', '', 'record the depth outputs into this new bag (empty: do not record)'),
    ('shutdown_at_end', 'true', 'stop everything when the bag has been played'),
    ('model', '', 'model file or name under share/depth_nodes/models (empty: the method default)'),
    ('backend', '', 'auto | onnxruntime | tensorrt | torch (empty: the params file, auto)'),
    ('namespace', '', 'namespace for the depth node(s) and their outputs'),
] + [(arg, topic, f"bag topic remapped to the node's '{topic}' input")
     for arg, topic in REMAP_ARGUMENTS.items()]


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    processes, plans = bag_replay_plan(
        value['bag'], value['method'], rate=float(value['rate']), loop=_is_true(value['loop']),
        record=value['record'], rviz=_is_true(value['rviz']), dof=_is_true(value['dof']),
        model=value['model'],
        backend=value['backend'], namespace=value['namespace'],
        remaps={arg: value[arg] for arg in REMAP_ARGUMENTS})
    nodes = [Node(package=p.package, executable=p.executable, name=p.name,
                  parameters=p.parameters, remappings=p.remappings, arguments=p.arguments,
                  additional_env=p.env, output='screen', emulate_tty=True) for p in plans]
    depth = [n for n, p in zip(nodes, plans) if p.package == 'depth_nodes']
    others = [n for n, p in zip(nodes, plans) if p.package != 'depth_nodes']
    scope = [PushRosNamespace(value['namespace'])] if value['namespace'] else []
    commands = {p.name: ExecuteProcess(cmd=p.cmd, name=p.name, additional_env=p.env,
                                       output='screen') for p in processes}
    actions = [GroupAction(scope + depth)] + others + list(commands.values())
    if _is_true(value['shutdown_at_end']) and not _is_true(value['loop']):
        # A moment for the last frames to reach the recorder before everything stops.
        actions.append(RegisterEventHandler(OnProcessExit(
            target_action=commands['bag_play'],
            on_exit=[TimerAction(period=2.0, actions=[
                EmitEvent(event=Shutdown(reason='bag played to the end'))])])))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, description=description) if default is None else
         DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_setup)])
