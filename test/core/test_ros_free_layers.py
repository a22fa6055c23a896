"""core/ and runtime/ must stay ROS-free: importable and testable without rclpy or messages."""
import ast
from pathlib import Path

import depth_nodes

PACKAGE_DIR = Path(depth_nodes.__file__).resolve().parent
FORBIDDEN = ('rclpy', 'sensor_msgs', 'stereo_msgs', 'std_msgs', 'diagnostic_msgs',
             'builtin_interfaces', 'rcl_interfaces', 'geometry_msgs', 'launch', 'launch_ros',
             'cv_bridge', 'message_filters', 'depth_nodes.ros_io', 'depth_nodes.nodes')


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_and_runtime_import_no_ros_package():
    files = sorted((PACKAGE_DIR / 'core').glob('*.py')) + sorted(
        (PACKAGE_DIR / 'runtime').glob('*.py'))
    assert len(files) >= 8
    offenders = [(f.name, m) for f in files for m in imported_modules(f)
                 if any(m == bad or m.startswith(bad + '.') for bad in FORBIDDEN)]
    assert offenders == []


def test_forbidden_list_catches_a_ros_import(tmp_path):
    probe = tmp_path / 'probe.py'
    probe.write_text('from sensor_msgs.msg import Image\nimport rclpy.node\n')
    assert {'sensor_msgs.msg', 'rclpy.node'} <= set(imported_modules(probe))


def test_the_installed_package_never_imports_training():
    """training/ is a source-checkout package, not installed with depth_nodes: calibration
    feeds and the like are passed in from training, never imported from depth_nodes."""
    files = sorted(PACKAGE_DIR.rglob('*.py'))
    assert len(files) >= 30
    offenders = [(str(f.relative_to(PACKAGE_DIR)), m) for f in files for m in imported_modules(f)
                 if m == 'training' or m.startswith('training.')]
    assert offenders == []


def test_training_import_check_catches_a_lazy_import(tmp_path):
    probe = tmp_path / 'probe.py'
    probe.write_text('def f():\n    from training.datasets import build_dataset\n')
    assert list(imported_modules(probe)) == ['training.datasets']
