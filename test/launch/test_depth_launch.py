"""launch_pytest test of depth.launch.py on a real ROS 2 install (Jazzy/Kilted).

Skipped where launch, launch_ros or launch_pytest are not installed (e.g. the pip-only ROS
wheels of the development machines); CI on a ROS 2 install runs it.
"""
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# launch.actions, not launch: the checkout's launch/ folder would import as a namespace package.
pytest.importorskip('launch.actions', reason='launch is not installed (needs a ROS 2 install)')
launch_ros = pytest.importorskip('launch_ros', reason='launch_ros is not installed')
launch_pytest = pytest.importorskip('launch_pytest', reason='launch_pytest is not installed')

import launch  # noqa: E402
import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from fixtures.models import write_affine_model  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from depth_nodes import ros_io  # noqa: E402
from depth_nodes.core.model_spec import ModelSpec  # noqa: E402
from depth_nodes.runtime.estimator import MonoDepthEstimator  # noqa: E402
from depth_nodes.runtime.model import open_model  # noqa: E402

SPEC = ModelSpec(method='affine', input_height=24, input_width=32, output_kind='log_depth',
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), min_depth=1e-4, max_depth=1e3)
MODEL = write_affine_model(Path(tempfile.mkdtemp()) / 'affine.onnx', SPEC)


@launch_pytest.fixture
def depth_launch():
    share = Path(get_package_share_directory('depth_nodes'))
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(share / 'launch' / 'depth.launch.py')),
            launch_arguments={'method': 'eigen', 'model': str(MODEL), 'backend': 'onnxruntime',
                              'namespace': 'launch_test', 'image': '/test_camera/image'}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=depth_launch)
def test_launched_node_publishes_the_models_depth():
    with rclpy.init():
        node = rclpy.create_node('launch_probe')
        received = []
        node.create_subscription(Image, '/launch_test/depth/image', received.append, 10)
        pub = node.create_publisher(Image, '/test_camera/image', 10)
        threading.Thread(target=rclpy.spin, args=(node,), daemon=True).start()
        image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline:
            pub.publish(ros_io.array_to_image(image, 'rgb8', Header(frame_id='cam')))
            time.sleep(0.2)
        assert received, 'no depth from the launched node within 30 s'
        expected = MonoDepthEstimator(open_model(str(MODEL), 'onnxruntime')).estimate(
            image, 'rgb8').depth
        np.testing.assert_allclose(ros_io.image_to_array(received[0]), expected, rtol=1e-6)
        assert received[0].header.frame_id == 'cam'
