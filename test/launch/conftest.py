"""In CI with the ROS 2 launch wheels at hand, a skipped launch test is a failed one.

The launch tests skip where `launch` / `launch_ros` are missing (a machine
with neither ROS 2 nor the wheels). CI installs the wheels from ../shared/ros2-launch
(tools/bootstrap.sh), so there a skip can only mean a broken install or a broken test, and it
must not pass silently as it did before issue 16.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH_WHEELS = REPO.parent / 'shared' / 'ros2-launch'


def skips_fail() -> bool:
    """True in CI (CI=true/1/yes) when the launch wheels exist beside the checkout."""
    return os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes') and \
        LAUNCH_WHEELS.is_dir()


def _fail_skip(report, when: str) -> None:
    if report.skipped and not hasattr(report, 'wasxfail') and skips_fail():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = 'failed'
        report.longrepr = (f'skipped ({when}) in CI, where {LAUNCH_WHEELS} provides the ROS 2 '
                           f'launch packages: {reason}')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result(), call.when)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result(), 'collection')
