# Source after tools/bootstrap.sh: the venv plus the colcon workspace overlay.
# shellcheck disable=SC1091
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/.venv/bin/activate"
# colcon's setup scripts read unset variables; relax nounset while sourcing them.
case $- in *u*) set +u; source "$root/install/setup.bash"; set -u ;; *) source "$root/install/setup.bash" ;; esac
# Appended, not prepended: depth_nodes must come from install/ (what colcon built), while
# training/ (not part of the ROS package) comes from the checkout.
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root"
export DEPTH_NODES_WORKSPACE="$root/install"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Camera-size messages to best-effort readers need a larger shared-memory segment (see the file).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$root/config/fastdds_large_data.xml}"
# This machine has no robot network: keep DDS discovery on loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
