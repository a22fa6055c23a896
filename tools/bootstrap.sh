#!/usr/bin/env bash
# Prepare a fresh checkout on a machine without ROS installed (Debian, Python 3.11):
# create .venv, install the pinned requirements (ROS 2 Kilted wheels included) and build the
# package with colcon into install/, exactly as on a robot. Safe to run again: it only
# reinstalls when requirements.txt changed and colcon rebuilds what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
touch .venv/COLCON_IGNORE          # colcon must not mistake the venv's ROS wheels for sources
# shellcheck disable=SC1091
source .venv/bin/activate

stamp=.venv/.requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing requirements (first run: a few minutes)"
  python -m pip install --quiet --disable-pip-version-check --upgrade pip
  python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi

echo "[bootstrap] colcon build"
colcon build --base-paths . --event-handlers console_cohesion- summary- >/dev/null \
  || { echo "[bootstrap] colcon build failed; see log/latest_build" >&2; exit 1; }
