"""Several cameras, one depth node each, in a namespace per camera: depth.launch.py included
once per camera with namespace:=<camera>.

  ros2 launch depth_nodes multi_camera.launch.py [cameras:='front rear'] [method:=eigen]

The node of camera `front` reads front/image and front/camera_info (front/left/image_rect ...
for the stereo methods: every input name is relative) and publishes front/depth/image,
front/depth/camera_info, front/depth/colored and front/depth/points. Each camera's node runs
the method's params file: its `/**` key applies in any namespace. Cameras whose drivers
publish elsewhere: copy this file and pass depth.launch.py's remap arguments
(image:=/front/color/image_raw, ...) in the include, or remap in the camera's launch.
"""
from depth_nodes.launch_actions import (BACKEND_ARGUMENT, METHOD_ARGUMENT, MODEL_ARGUMENT,
                                        argument_values, include_launch_file,
                                        launch_description)

ARGUMENTS = [
    ('cameras', 'front rear', 'camera namespaces, space-separated: one depth node per camera, '
     'reading <camera>/image and <camera>/camera_info'),
    METHOD_ARGUMENT,
    MODEL_ARGUMENT,
    BACKEND_ARGUMENT,
    ('use_sim_time', 'false', 'use /clock (true when replaying a bag with --clock)'),
]


def _setup(context):
    value = argument_values(context, ARGUMENTS)
    cameras = value.pop('cameras').split()
    if not cameras:
        raise ValueError('cameras:= names no camera')
    return [include_launch_file('depth.launch.py', {**value, 'namespace': camera})
            for camera in cameras]


def generate_launch_description():
    return launch_description(ARGUMENTS, _setup)
