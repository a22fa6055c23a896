#!/usr/bin/env bash
# The main job: bootstrap (venv + colcon build), then run the demo model on a synthetic camera
# bag through the real mono_depth_node over DDS. Output: demo_output/demo.png, metrics.json,
# camera_bag/ and depth_bag/ (rosbag2). Extra arguments go to tools/demo.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/bootstrap.sh"
source "$root/tools/env.sh"
# A DDS domain of its own, so the demo never talks to another ROS graph on this machine.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}"
exec python "$root/tools/demo.py" "$@"
