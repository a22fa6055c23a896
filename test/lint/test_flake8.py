"""Linters run as tests (as ament_flake8 does in ROS 2 packages)."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_flake8_clean():
    if shutil.which('flake8') is None:
        pytest.skip('flake8 is not installed (tools/bootstrap.sh installs it)')
    proc = subprocess.run(['flake8', 'depth_nodes', 'training', 'test', 'launch', 'tools',
                           'setup.py'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
