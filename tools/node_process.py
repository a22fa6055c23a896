"""Starting and stopping a depth_nodes node in its own process, for the tools that measure or
demonstrate one (demo.py, soak.py, benchmark_semidense_node.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def node_executable(name: str) -> list[str]:
    """The command of node ``name``: the executable of the colcon workspace
    ($DEPTH_NODES_WORKSPACE, else install/; what `ros2 run` runs), else its module."""
    workspace = os.environ.get('DEPTH_NODES_WORKSPACE', str(REPO / 'install'))
    exe = Path(workspace) / 'depth_nodes' / 'lib' / 'depth_nodes' / name
    return [str(exe)] if exe.exists() else [sys.executable, '-m', f'depth_nodes.nodes.{name}']


def stop_node(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Ctrl-C (the node shuts down cleanly), then kill it if it has not exited in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
