#!/usr/bin/env bash
# Verify the TensorRT path on a GPU machine, in one run of under 8 minutes:
#   1. versions: TensorRT, CUDA, driver, GPU, compute capability, SM count
#   2. the TensorRT tests (real builds where TensorRT and a GPU exist; fakes; CLI; cache)
#   3. fp32 / fp16 / int8 engines for every models/*.onnx through build_engine
#   4. max |TensorRT - ONNX Runtime| per model and precision
#   5. cache miss vs hit: a node-style open in a fresh cache, then again
#   6. the same engine built from two processes at once (one builds, the other waits and hits)
#   7. node end-to-end latency at 640x480 on TensorRT (mono_depth_node, eigen_synthetic)
#   8. every model and precision through a node start (backend:=tensorrt, its own cache)
# Everything goes to one JSON (--output, default gpu_check.json). Each step's time limit is cut
# to what is left of the budget (default 450 s) and steps past it are recorded as skipped, so
# a run ends within the budget. --dry-run prints what would run, without a GPU or TensorRT.
#
#   bash tools/gpu_check.sh [--dry-run] [--output FILE] [--budget SECONDS]
#
# Before it, in this checkout's environment: bash tools/bootstrap.sh, then a supported
# TensorRT and PyTorch's CUDA build (docs/tensorrt.md), e.g.
#   .venv/bin/pip install "tensorrt-cu12==10.16.1.11"
#   .venv/bin/pip install torch==<the pinned version> --index-url https://download.pytorch.org/whl/cu12X
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry_run=0
output="$PWD/gpu_check.json"
budget=450          # seconds for steps 1-8; each step also has its own timeout
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --output) output="$(realpath -m "$2")"; shift ;;
    --budget) budget="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

cd "$root"
if [ -z "${DEPTH_NODES_WORKSPACE:-}" ]; then
  if [ "$dry_run" = 0 ]; then bash tools/bootstrap.sh >/dev/null || exit 1; fi
  # shellcheck disable=SC1091
  source tools/env.sh
fi
work="$(mktemp -d -t gpu_check.XXXXXX)"
steps="$work/steps"
mkdir -p "$steps"
py=(python3 tools/gpu_check.py)
precisions=(fp32 fp16 int8)
mapfile -t models < <(ls models/*.onnx)

# within_budget NAME LIMIT: the step's time limit cut to what is left of the budget (so the
# whole run ends within it); records the step as skipped and fails when under 10 s are left.
within_budget() {
  local left=$(( budget - SECONDS ))
  if [ "$left" -lt 10 ]; then
    printf '{"skipped": "time budget of %s s used up"}\n' "$budget" > "$steps/$1.json"
    echo "skip $1 (budget)" >&2
    return 1
  fi
  echo $(( $2 < left ? $2 : left ))
}

# step NAME TIMEOUT -- COMMAND...: run it timed into steps/NAME.json (skipped past the budget)
step() {
  local name="$1" limit="$2"; shift 3
  if [ "$dry_run" = 1 ]; then
    printf '  %-34s (<= %ss) %s\n' "$name" "$limit" "$*"
    return
  fi
  limit="$(within_budget "$name" "$limit")" || return 0
  echo "run  $name"
  "${py[@]}" timed --timeout "$limit" -- "$@" > "$steps/$name.json"
}

# measure NAME TIMEOUT -- gpu_check.py ARGS...: its JSON is the step's output
measure() {
  local name="$1" limit="$2"; shift 3
  if [ "$dry_run" = 1 ]; then
    printf '  %-34s (<= %ss) python3 tools/gpu_check.py %s\n' "$name" "$limit" "$*"
    return
  fi
  limit="$(within_budget "$name" "$limit")" || return 0
  echo "run  $name"
  timeout "$limit" "${py[@]}" "$@" > "$steps/$name.json" 2> "$steps/$name.log" || \
    printf '{"error": "exit %s", "log_tail": %s}\n' "$?" \
      "$(tail -n 5 "$steps/$name.log" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')" \
      > "$steps/$name.json"
}

if [ "$dry_run" = 1 ]; then
  echo "gpu_check --dry-run: what a GPU run checks (models: ${#models[@]}, precisions:" \
       "${precisions[*]}); budget ${budget} s"
fi
cli_cache="$work/cli_cache"
node_cache="$work/node_cache"
images="$work/calibration_images"

measure 01_versions 60 -- versions
step 02_tensorrt_tests 180 -- pytest -q test/runtime/test_tensorrt_runtime.py \
  test/runtime/test_tensorrt_fakes.py test/runtime/test_build_engine_cli.py \
  test/runtime/test_engine_cache.py
measure 03_calibration_images 90 -- calibration-images "$images"
# One precision at a time, the models of each in parallel (the budget needs it; build
# times are recorded but are not the measurement here).
for precision in "${precisions[@]}"; do
  for model in "${models[@]}"; do
    stem="$(basename "$model" .onnx)"
    calibration=()
    [ "$precision" = int8 ] && calibration=(--calibration-dir "$images")
    step "04_build_engine.$stem.$precision" 150 -- python3 -m depth_nodes.build_engine \
      --onnx "$model" --precision "$precision" "${calibration[@]}" \
      --engine-cache-dir "$cli_cache" --timing-cache "$work/cli.$stem.timing" \
      --output "$work/$stem.$precision.engine" &
  done
  wait
done
measure 05_parity 150 -- parity --cache "$cli_cache"
measure 06_cache_miss 150 -- open --cache "$work/hit_miss" --model models/eigen_synthetic.onnx \
  --precision fp16
measure 06_cache_hit 60 -- open --cache "$work/hit_miss" --model models/eigen_synthetic.onnx \
  --precision fp16
if [ "$dry_run" = 1 ]; then
  echo "  07_two_processes                   (<= 150s) two 'open' at once on one fresh cache"
elif limit="$(within_budget 07_two_processes 150)"; then
  echo "run  07_two_processes"
  for i in 1 2; do
    timeout "$limit" "${py[@]}" open --cache "$work/concurrent" \
      --model models/eigen_synthetic.onnx --precision fp32 \
      > "$steps/07_two_processes.$i.json" 2> "$steps/07_two_processes.$i.log" &
  done
  wait
fi
measure 08_latency_640x480 150 -- latency --cache "$cli_cache" \
  --model models/eigen_synthetic.onnx --precision fp16 --frames 100
# Node starts build in their own cache; the CLI's kernel timings make those builds quicker.
if [ "$dry_run" = 0 ] && [ $(( budget - SECONDS )) -ge 10 ]; then
  mkdir -p "$node_cache"
  timing="$("${py[@]}" timing-cache --cache "$node_cache" 2>/dev/null | \
            python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])' 2>/dev/null)"
  [ -n "$timing" ] && cp "$work/cli.eigen_synthetic.timing" "$timing" 2>/dev/null
  # int8: the table the CLI calibrated, where the node looks for it (the engine cache).
  cp "$cli_cache"/*.int8.calib "$node_cache"/ 2>/dev/null || true
fi
for precision in "${precisions[@]}"; do
  for model in "${models[@]}"; do
    stem="$(basename "$model" .onnx)"
    measure "09_node_start.$stem.$precision" 150 -- node-start --cache "$node_cache" \
      --model "$model" --precision "$precision" &
  done
  wait
done

if [ "$dry_run" = 1 ]; then
  "${py[@]}" plan > "$steps/00_plan.json" || exit 1
  printf '{"dry_run": true, "budget_s": %s, "work": "%s"}\n' "$budget" "$work" \
    > "$steps/00_run.json"
  "${py[@]}" merge "$output" "$steps"/*.json > /dev/null || exit 1
  echo "dry run: plan written to $output (nothing was built or timed)"
  exit 0
fi
printf '{"dry_run": false, "seconds": %s, "budget_s": %s, "work": "%s"}\n' "$SECONDS" \
  "$budget" "$work" > "$steps/00_run.json"
"${py[@]}" merge "$output" "$steps"/*.json > /dev/null || exit 1
echo "gpu_check: ${SECONDS} s; results in $output (engines and logs in $work)"
