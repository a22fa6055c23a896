"""Suite-wide set-up: an isolated, loopback-only DDS domain for every test run.

Node tests talk over real DDS. A domain id of our own keeps parallel runs (and any robot on
the same machine) out of each other's topics, and LOCALHOST discovery keeps all traffic on
loopback. Set before anything imports rclpy.
"""
import logging
import os
import sys
from pathlib import Path

if 'DEPTH_NODES_TEST_KEEP_DOMAIN' not in os.environ:
    os.environ['ROS_DOMAIN_ID'] = str(1 + os.getpid() % 100)
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
# One OpenMP thread for torch: the suite runs on 2 cores next to DDS and ONNX Runtime threads,
# where two OpenMP threads made small torch tests up to 40x slower (oversubscription).
os.environ.setdefault('OMP_NUM_THREADS', '1')

TEST_DIR = Path(__file__).resolve().parent
REPO_ROOT = TEST_DIR.parent
# test/fixtures is importable as `fixtures`; training/ from the checkout (not installed).
for path in (str(TEST_DIR), str(REPO_ROOT)):
    if path not in sys.path:
        sys.path.append(path)

# Importing `launch` (launch_testing's pytest plugin does, before this file; a launch test may
# be the first otherwise) sets LaunchLogger as the class of every logger created afterwards,
# and LaunchLogger sets propagate=False: this package's module loggers would then never reach
# the root handlers that pytest's caplog reads. Import it now, once, and give loggers made from
# here on the standard class back (launch's own loggers already exist and keep theirs).
try:
    import launch.logging  # noqa: F401
except ImportError:          # no ROS 2 launch installed: nothing changed the logger class
    pass
logging.setLoggerClass(logging.Logger)
