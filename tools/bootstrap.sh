#!/usr/bin/env bash
# Prepare a fresh checkout on a machine without ROS installed (Debian, Python 3.11):
# create .venv, install the pinned requirements (ROS 2 Kilted wheels included) and build the
# package with colcon into install/, exactly as on a robot. Safe to run again: it only
# reinstalls when a requirements file or DEPTH_NODES_ORT changed and colcon rebuilds what changed.
#
# DEPTH_NODES_ORT=openvino installs ONNX Runtime's OpenVINO build (requirements-openvino.txt)
# in place of its CPU build: faster CPU inference (docs/performance.md); DEPTH_NODES_ORT=cpu
# (the default) goes back.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

flavour="${DEPTH_NODES_ORT:-cpu}"
case "$flavour" in
  cpu|openvino) ;;
  *) echo "[bootstrap] DEPTH_NODES_ORT must be 'cpu' or 'openvino', not '$flavour'" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
touch .venv/COLCON_IGNORE          # colcon must not mistake the venv's ROS wheels for sources
# shellcheck disable=SC1091
source .venv/bin/activate

stamp=.venv/.requirements.sha256
want="$(cat requirements.txt requirements-openvino.txt | sha256sum | cut -d' ' -f1) $flavour"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing requirements (first run: a few minutes)"
  pip=(python -m pip --quiet --disable-pip-version-check)
  "${pip[@]}" install --upgrade pip
  "${pip[@]}" install -r requirements.txt
  # Both ONNX Runtime builds install the same module: remove both, then install the one asked.
  if [ "$flavour" = openvino ]; then
    echo "[bootstrap] ONNX Runtime: the OpenVINO build"
    "${pip[@]}" uninstall --yes onnxruntime onnxruntime-openvino 2>/dev/null || true
    "${pip[@]}" install -r requirements-openvino.txt -c requirements.txt
  elif "${pip[@]}" show onnxruntime-openvino >/dev/null 2>&1; then
    echo "[bootstrap] ONNX Runtime: back to the CPU build"
    "${pip[@]}" uninstall --yes onnxruntime onnxruntime-openvino
    "${pip[@]}" install --no-deps "$(grep '^onnxruntime==' requirements.txt)"
  fi
  echo "$want" > "$stamp"
fi

# ROS 2 launch packages (launch, launch_ros, launch_testing, launch_pytest, ...) for the launch
# tests on a machine without ROS 2: wheels built unmodified from the public sources, kept
# outside the project in ../shared/ros2-launch. A ROS 2 install brings its own; with neither,
# the launch tests skip.
launch_wheels="$root/../shared/ros2-launch"
if [ -d "$launch_wheels" ] && ! python -c 'import launch_pytest, launch_ros' 2>/dev/null; then
  echo "[bootstrap] ROS 2 launch packages from $launch_wheels"
  python -m pip --quiet --disable-pip-version-check install --no-deps "$launch_wheels"/*.whl
fi

echo "[bootstrap] colcon build"
colcon build --base-paths . --event-handlers console_cohesion- summary- >/dev/null \
  || { echo "[bootstrap] colcon build failed; see log/latest_build" >&2; exit 1; }
