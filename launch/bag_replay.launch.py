"""Replay a recorded bag into a depth method on sim time, optionally in RViz and recorded.

  ros2 launch depth_nodes bag_replay.launch.py bag:=<path> method:=<method> \
      [rate:=1.0] [loop:=false] [player:=auto] [rviz:=true] [record:=<new bag>] \
      [image:=/camera/image] ...

The player (`ros2 bag play --clock`, or depth_nodes.dds_bag where the rosbag2 CLI is missing)
drives /clock, the method's node(s) run with use_sim_time, and the bag's camera topics are
remapped onto the node inputs. The plan (commands, nodes, checks on
the paths) lives in depth_nodes.methods.bag_replay_plan; this file only turns it into actions
(depth_nodes.launch_actions).
"""
from depth_nodes.launch_actions import (BACKEND_ARGUMENT, METHOD_ARGUMENT, MODEL_ARGUMENT,
                                        argument_values, is_true, launch_description,
                                        node_actions, process_actions, remap_arguments,
                                        shutdown_after_exit)
from depth_nodes.methods import REMAP_ARGUMENTS, bag_replay_plan

ARGUMENTS = [
    ('bag', None, 'rosbag2 directory or .mcap/.db3/.bag file to play (required)'),
    METHOD_ARGUMENT,
    ('rate', '1.0', 'playback rate (1.0: as recorded)'),
    ('loop', 'false', 'play the bag in a loop (the nodes reset on the jump back in time)'),
    ('player', 'auto', 'bag player: ros2 (ros2 bag play), builtin (python -m '
     'depth_nodes.dds_bag play: rosbags + rclpy, no rosbag2 CLI needed) or auto (ros2 where '
     '`ros2 bag` exists, else builtin)'),
    ('rviz', 'false', "also start RViz with the method's config"),
    ('dof', 'false', 'also start dof_node (synthetic depth of field; RGB methods)'),
    ('record', '', 'record the depth outputs into this new bag (empty: do not record)'),
    ('recorder', 'auto', 'recorder for record:=: ros2 (ros2 bag record), builtin (python -m '
     'depth_nodes.dds_bag record) or auto (ros2 where `ros2 bag` exists, else builtin)'),
    ('shutdown_at_end', 'true', 'stop everything when the bag has been played'),
    MODEL_ARGUMENT,
    BACKEND_ARGUMENT,
    ('namespace', '', 'namespace for the depth node(s) and their outputs'),
    ('image_transport', '', "how the image inputs arrive: raw, or compressed (subscribes "
     "<topic>/compressed); empty: the params file's (raw)"),
] + remap_arguments('bag topic')


def _setup(context):
    value = argument_values(context, ARGUMENTS)
    processes, plans = bag_replay_plan(
        value['bag'], value['method'], rate=float(value['rate']), loop=is_true(value['loop']),
        record=value['record'], rviz=is_true(value['rviz']), dof=is_true(value['dof']),
        model=value['model'],
        backend=value['backend'], namespace=value['namespace'],
        image_transport=value['image_transport'],
        remaps={arg: value[arg] for arg in REMAP_ARGUMENTS}, player=value['player'],
        recorder=value['recorder'])
    commands = process_actions(processes)
    actions = node_actions(plans, value['namespace']) + list(commands.values())
    if is_true(value['shutdown_at_end']) and not is_true(value['loop']):
        # A moment for the last frames to reach the recorder before everything stops.
        actions.append(shutdown_after_exit(commands['bag_play'], 'bag played to the end',
                                           delay_s=2.0))
    return actions


def generate_launch_description():
    return launch_description(ARGUMENTS, _setup)
