"""Dense depth from a camera: `ros2 launch depth_nodes depth.launch.py method:=<method>`.

The method table, the node each method runs and its params file live in depth_nodes.methods;
this file only turns that plan into launch_ros actions.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from depth_nodes.methods import DEFAULT_METHOD, METHODS, REMAP_ARGUMENTS, launch_plan

ARGUMENTS = [
    ('method', DEFAULT_METHOD, 'depth method: ' + ', '.join(
        f'{m.name} ({m.summary})' for m in METHODS.values())),
    ('model', '', 'model file or name under share/depth_nodes/models (empty: the method default)'),
    ('backend', '', 'auto | onnxruntime | tensorrt | torch (empty: the params file, auto)'),
    ('namespace', '', 'namespace for the depth node(s) and their topics'),
    ('use_sim_time', 'false', 'use /clock (true when replaying a bag with --clock)'),
    ('rviz', 'false', 'also start RViz with config/depth.rviz'),
    ('dof', 'false', 'also start dof_node: synthetic shallow depth of field of the image on '
     'dof/image (RGB methods; config/dof.yaml)'),
] + [(arg, topic, f"topic remapped to the node's '{topic}' input")
     for arg, topic in REMAP_ARGUMENTS.items()]


def _is_true(text: str) -> bool:
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def _setup(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    plans = launch_plan(
        value['method'], model=value['model'], backend=value['backend'],
        use_sim_time=_is_true(value['use_sim_time']), rviz=_is_true(value['rviz']),
        dof=_is_true(value['dof']),
        remaps={arg: value[arg] for arg in REMAP_ARGUMENTS})
    nodes = [Node(package=p.package, executable=p.executable, name=p.name,
                  parameters=p.parameters, remappings=p.remappings, arguments=p.arguments,
                  additional_env=p.env, output='screen', emulate_tty=True) for p in plans]
    # The depth nodes go into the namespace; RViz stays global (its config names the topics).
    depth = [n for n, p in zip(nodes, plans) if p.package == 'depth_nodes']
    others = [n for n, p in zip(nodes, plans) if p.package != 'depth_nodes']
    scope = [PushRosNamespace(value['namespace'])] if value['namespace'] else []
    return [GroupAction(scope + depth)] + others


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_setup)])
