"""package.xml is what rosdep and colcon read on a robot: it must parse and be complete."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[2]
# Top-level modules imported by the installed package -> the rosdep key that provides them.
ROSDEP_KEY = {
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'stereo_msgs': 'stereo_msgs',
    'std_msgs': 'std_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'builtin_interfaces': 'builtin_interfaces', 'rcl_interfaces': 'rcl_interfaces',
    'rosgraph_msgs': 'rosgraph_msgs', 'ament_index_python': 'ament_index_python',
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'onnxruntime': 'python3-onnxruntime-pip', 'rosbags': 'python3-rosbags-pip',
    'tqdm': 'python3-tqdm', 'scipy': 'python3-scipy', 'numba': 'python3-numba',
    'launch': 'launch', 'launch_ros': 'launch_ros',   # launch_actions, for the launch files
}
# Imported only on optional paths, each guarded and documented (torch backend, TensorRT,
# training data for INT8 calibration, the ONNX compatibility checker used by tools).
OPTIONAL = {'torch', 'tensorrt', 'training', 'onnx', 'skimage'}


def manifest():
    return parse_package(str(REPO / 'package.xml'))


def imported_top_level_modules():
    modules = set()
    for path in (REPO / 'depth_nodes').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split('.')[0])
    return modules - set(sys.stdlib_module_names) - {'depth_nodes'}


def test_manifest_is_an_ament_python_format_3_package():
    package = manifest()
    assert package.name == 'depth_nodes' and package.package_format == 3
    assert [e.content for e in package.exports if e.tagname == 'build_type'] == ['ament_python']
    assert package.maintainers and package.maintainers[0].email


def test_every_import_of_the_installed_package_is_declared():
    declared = {d.name for d in manifest().exec_depends}
    modules = imported_top_level_modules()
    unknown = modules - set(ROSDEP_KEY) - OPTIONAL
    assert not unknown, f'add these imports to ROSDEP_KEY/package.xml: {sorted(unknown)}'
    missing = {ROSDEP_KEY[m] for m in modules & set(ROSDEP_KEY)} - declared
    assert not missing, f'package.xml lacks <exec_depend> for {sorted(missing)}'


def test_console_scripts_name_existing_node_modules():
    tree = ast.parse((REPO / 'setup.py').read_text())
    nodes = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], 'id', '') == 'NODES')
    for name in ast.literal_eval(nodes):
        assert (REPO / 'depth_nodes' / 'nodes' / f'{name}.py').is_file(), name


def test_colcon_identifies_the_package():
    if shutil.which('colcon') is None:
        pytest.skip('colcon is not installed (tools/bootstrap.sh installs it)')
    out = subprocess.run(['colcon', 'list', '--base-paths', str(REPO)], capture_output=True,
                         text=True, check=True).stdout
    assert 'depth_nodes' in out and '(ros.ament_python)' in out
