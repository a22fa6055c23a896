#!/usr/bin/env bash
# The test command: bootstrap (venv + colcon build), then run the whole suite against the
# built workspace. Extra arguments go to pytest (e.g. tools/test.sh -k encodings).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/bootstrap.sh"
source "$root/tools/env.sh"
cd "$root"
# The pytest executable, not `python -m pytest`, which would put the checkout first on sys.path.
exec pytest test "$@"
