"""Dense depth from a camera: `ros2 launch depth_nodes depth.launch.py method:=<method>`.

The method table, the node each method runs and its params file live in depth_nodes.methods;
this file only turns that plan into launch_ros actions (depth_nodes.launch_actions).
"""
from depth_nodes.launch_actions import (BACKEND_ARGUMENT, METHOD_ARGUMENT, MODEL_ARGUMENT,
                                        argument_values, is_true, launch_description,
                                        node_actions, remap_arguments)
from depth_nodes.methods import REMAP_ARGUMENTS, launch_plan

ARGUMENTS = [
    METHOD_ARGUMENT,
    MODEL_ARGUMENT,
    BACKEND_ARGUMENT,
    ('namespace', '', 'namespace for the depth node(s) and their topics'),
    ('use_sim_time', 'false', 'use /clock (true when replaying a bag with --clock)'),
    ('rviz', 'false', 'also start RViz with config/depth.rviz'),
    ('dof', 'false', 'also start dof_node: synthetic shallow depth of field of the image on '
     'dof/image (RGB methods; config/dof.yaml)'),
    ('image_transport', '', "how the image inputs arrive: raw, or compressed (subscribes "
     "<topic>/compressed); empty: the params file's (raw)"),
] + remap_arguments('topic')


def _setup(context):
    value = argument_values(context, ARGUMENTS)
    plans = launch_plan(
        value['method'], model=value['model'], backend=value['backend'],
        use_sim_time=is_true(value['use_sim_time']), rviz=is_true(value['rviz']),
        dof=is_true(value['dof']), image_transport=value['image_transport'],
        remaps={arg: value[arg] for arg in REMAP_ARGUMENTS})
    return node_actions(plans, value['namespace'])


def generate_launch_description():
    return launch_description(ARGUMENTS, _setup)
