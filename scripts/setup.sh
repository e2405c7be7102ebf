#!/usr/bin/env bash
# One-command setup of a development/runtime environment in .venv (repo root):
#   1. create .venv (Python 3.11: the ROS 2 wheels on PyPI are cp311),
#   2. pip install the pinned requirements.txt (ROS 2 wheels, torch, onnxruntime, ...),
#   3. build the interfaces in msg/ (hetskel_msgs) with CMake and install them into .venv, and tf2_msgs from
#      vendor/ when no tf2_msgs is importable (no wheel has it; the JointState input reads /tf with it),
#   4. pip install hetskel_ros itself, editable,
#   5. register it in the venv's ament index (share/hetskel_ros, lib/hetskel_ros): ros2 pkg/run/launch find it.
# Idempotent: a stamp holds a hash of every input, so a second run only checks it (seconds).
# Environment: PYTHON (interpreter for a new venv, default python3.11 or python3), HETSKEL_FORCE_SETUP=1 (redo all).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
STAMP="$VENV/.hetskel_setup_stamp"
MSG_BUILD="$VENV/build/hetskel_msgs"
cd "$ROOT"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Hash of everything the result depends on: a change to any of these files redoes the setup.
fingerprint() {
  {
    printf 'python=%s\n' "$("$VPY" -c 'import sys; print(sys.version)' 2>/dev/null || echo none)"
    find msg vendor -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    sha256sum requirements.txt setup.py setup.cfg package.xml scripts/setup.sh
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [[ -z "${HETSKEL_FORCE_SETUP:-}" && -x "$VPY" && -f "$STAMP" ]] || return 1
  [[ "$(cat "$STAMP")" == "$(fingerprint)" ]] || return 1
  # The stamp can outlive a broken venv (e.g. a package removed by hand): check the imports too.
  "$VPY" -c 'import hetskel_msgs.msg, tf2_msgs.msg, hetskel_ros, rclpy' 2>/dev/null || return 1
  [[ -f "$VENV/share/ament_index/resource_index/packages/hetskel_ros" && -e "$VENV/share/hetskel_ros/launch" ]]
}

if up_to_date; then
  say "environment in .venv is up to date (delete $STAMP or set HETSKEL_FORCE_SETUP=1 to redo)"
  exit 0
fi

# 1. virtual environment
if [[ ! -x "$VPY" ]]; then
  BASE_PY="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
  [[ -n "$BASE_PY" ]] || die "no python3 found: install Python 3.11 (apt-get install python3 python3-venv)"
  version="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$version" == "3.11" ]] || die "$BASE_PY is Python $version; the ROS 2 wheels need 3.11 (set PYTHON=/path/to/python3.11)"
  say "creating .venv with $BASE_PY (Python $version)"
  "$BASE_PY" -m venv "$VENV" || die "python -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
fi

# Output of the long steps goes to a log; its tail is shown if a step fails.
LOG="$VENV/setup.log"
: >"$LOG"
run_logged() {
  "$@" >>"$LOG" 2>&1 && return 0
  grep -v "^WARNING: Location .* is ignored" "$LOG" | tail -n 40 >&2
  die "'$*' failed (full log: $LOG)"
}

# 2. pinned dependencies
say "installing pinned dependencies from requirements.txt (first run: a few minutes)"
run_logged "$VPY" -m pip install --disable-pip-version-check -r requirements.txt
say "  dependencies ready (${SECONDS}s)"

# 3. interfaces: CMake build of msg/ installed into the venv, which is the ROS prefix of the wheels
for tool in cmake cc c++; do
  command -v "$tool" >/dev/null || die "$tool not found: install a C/C++ toolchain and CMake (apt-get install build-essential cmake)"
done
say "building hetskel_msgs (msg/) with CMake into .venv (build dir: ${MSG_BUILD#"$ROOT"/})"
mkdir -p "$MSG_BUILD"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
cmake_into_venv() {  # source dir, build dir: configure, build (install is the caller's)
  run_logged cmake -S "$1" -B "$2" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$VENV" \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VPY" \
    -DBUILD_TESTING=OFF
  run_logged cmake --build "$2" --parallel "$(nproc 2>/dev/null || echo 2)"
}
cmake_into_venv msg "$MSG_BUILD"
previous_manifest="$MSG_BUILD/install_manifest.previous"
if [[ -f "$MSG_BUILD/install_manifest.txt" ]]; then
  cp "$MSG_BUILD/install_manifest.txt" "$previous_manifest"
fi
run_logged cmake --install "$MSG_BUILD"
if [[ -f "$previous_manifest" ]]; then
  # Files an earlier install put into the venv that this one did not (e.g. of a deleted .msg) must not linger.
  LC_ALL=C comm -23 <(LC_ALL=C sort "$previous_manifest") <(LC_ALL=C sort "$MSG_BUILD/install_manifest.txt") |
    xargs -r -d '\n' rm -f
  rm -f "$previous_manifest"
fi
say "  hetskel_msgs installed (${SECONDS}s)"
if ! "$VPY" -c 'import tf2_msgs.msg' 2>/dev/null || [[ -f "$VENV/build/tf2_msgs/install_manifest.txt" ]]; then
  # no wheel carries tf2_msgs: build its TFMessage into the venv (never onto the colcon path: vendor/COLCON_IGNORE)
  say "building tf2_msgs/TFMessage (vendor/tf2_msgs) into .venv: no tf2_msgs is installed"
  cmake_into_venv vendor/tf2_msgs "$VENV/build/tf2_msgs"
  run_logged cmake --install "$VENV/build/tf2_msgs"
  say "  tf2_msgs installed (${SECONDS}s)"
fi

# 4. hetskel_ros itself, editable (PEP 660: console scripts land in .venv/bin despite setup.cfg's colcon dirs)
say "installing hetskel_ros (editable) into .venv"
run_logged "$VPY" -m pip install --disable-pip-version-check --no-deps --no-build-isolation --use-pep517 -e .

# 5. the ROS prefix layout, so that a ROS install on top of the venv (AMENT_PREFIX_PATH=$VENV:...) finds the package:
#    the ament index marker (ros2 pkg), share/hetskel_ros with package.xml, launch, config, models and data
#    (ros2 launch, get_package_share_directory), and lib/hetskel_ros/<executable> (ros2 run). Links into the
#    checkout, as the editable install is: edits show at once.
say "registering hetskel_ros in the venv's ament index (share/hetskel_ros, lib/hetskel_ros)"
register_ament_package() {
  local index="$VENV/share/ament_index/resource_index/packages" share="$VENV/share/hetskel_ros"
  local lib="$VENV/lib/hetskel_ros" item name
  mkdir -p "$index" "$share" "$lib"
  : >"$index/hetskel_ros"
  for item in package.xml launch config models data; do
    ln -sfn "$ROOT/$item" "$share/$item"
  done
  find "$lib" -maxdepth 1 -type l -delete  # executables of an earlier setup that may be gone now
  for name in $("$VPY" -c 'from importlib.metadata import distribution
print("\n".join(e.name for e in distribution("hetskel_ros").entry_points if e.group == "console_scripts"))'); do
    [[ -x "$VENV/bin/$name" ]] || die "console script $name is missing from $VENV/bin after the install"
    ln -sfn "$VENV/bin/$name" "$lib/$name"
  done
}
register_ament_package

"$VPY" -c 'import hetskel_msgs.msg, tf2_msgs.msg, hetskel_ros, rclpy' || die "imports fail after setup"
fingerprint >"$STAMP"
say "done in ${SECONDS}s: activate with '. .venv/bin/activate', or call .venv/bin/python directly"
