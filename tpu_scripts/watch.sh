#!/usr/bin/env bash
# Keep a run alive: poll the slice; after a preemption (or a crashed trainer) recreate the slice,
# set it up again and relaunch, which resumes from the last checkpoint.
#
#   tpu_scripts/watch.sh --name coderl-7b --zone us-east5-a --accelerator-type v5p-64 \
#       --config configs/qwen25_coder_7b_v5p64.py [--queued] [--spot] [--version V] [--run NAME] \
#       [--model Qwen/Qwen2.5-Coder-7B-Instruct] [--sync gs://bucket/coderl/run] [--interval 300] \
#       [--max-restarts 20] [--once] [--project P] [--dry-run] [-- key=value ...]
#
# Checkpoints live in the config's out_dir on worker 0's disk, which a preemption loses: --sync
# copies <out_dir> to a gs:// path after every poll and back onto the new slice before relaunching.
# The loop ends when the trainer's exit status is 0 (done), or after --max-restarts restarts.
# --dry-run prints the commands of one poll and of one restart; --once polls (and restarts) once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
HERE="$(dirname "$0")"

ACCELERATOR=""
CONFIG=""
RUN=""
MODEL=""
SYNC=""
INTERVAL=300
MAX_RESTARTS=20
ONCE=0
CREATE_FLAGS=()
OVERRIDES=()
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --accelerator-type) ACCELERATOR="${2:?}"; shift 2 ;;
    --config) CONFIG="${2:?}"; shift 2 ;;
    --run) RUN="${2:?}"; shift 2 ;;
    --model) MODEL="${2:?}"; shift 2 ;;
    --sync) SYNC="${2:?}"; shift 2 ;;
    --interval) INTERVAL="${2:?}"; shift 2 ;;
    --max-restarts) MAX_RESTARTS="${2:?}"; shift 2 ;;
    --once) ONCE=1; shift ;;
    --queued|--spot) CREATE_FLAGS+=("$1"); shift ;;
    --version) CREATE_FLAGS+=(--version "${2:?}"); shift 2 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
[[ -n "$ACCELERATOR" ]] || die "--accelerator-type is required (to recreate the slice)"
[[ -n "$CONFIG" ]] || die "--config is required"
RUN="${RUN:-$(basename "$CONFIG" .py)}"
target_flags

COMMON=(--name "$NAME" --zone "$ZONE")
if [[ -n "$PROJECT" ]]; then COMMON+=(--project "$PROJECT"); fi
if [[ "$DRY_RUN" == 1 ]]; then COMMON+=(--dry-run); fi
QUEUED=0
for f in "${CREATE_FLAGS[@]+"${CREATE_FLAGS[@]}"}"; do [[ "$f" == --queued ]] && QUEUED=1; done
# the run's out_dir, as the trainer resolves it (config file + overrides), on worker 0
overrides=""
if [[ ${#OVERRIDES[@]} -gt 0 ]]; then overrides=$(printf ' %q' "${OVERRIDES[@]}"); fi
OUT_DIR_CMD="cd ~/$REMOTE_DIR && python3 -m coderl_jax.cli train --config $CONFIG$overrides --print-config"

slice_state() {
  local describe
  if [[ "$QUEUED" == 1 ]]; then
    describe=("$GCLOUD" compute tpus queued-resources describe "$NAME" "${TARGET_FLAGS[@]}" --format="value(state.state)")
  else
    describe=("$GCLOUD" compute tpus tpu-vm describe "$NAME" "${TARGET_FLAGS[@]}" --format="value(state)")
  fi
  if [[ "$DRY_RUN" == 1 ]]; then run "${describe[@]}"; echo READY; return; fi
  "${describe[@]}" 2>/dev/null || echo MISSING
}

trainer_status() {  # running | <exit code> | unknown
  local cmd="cat ~/$REMOTE_DIR/logs/$RUN/exit_code 2>/dev/null || echo running"
  if [[ "$DRY_RUN" == 1 ]]; then on_worker0 "$cmd"; echo running; return; fi
  on_worker0 "$cmd" 2>/dev/null | tail -n 1 || echo unknown
}

sync_up() {
  [[ -n "$SYNC" ]] || return 0
  on_worker0 "set -e; out=\$($OUT_DIR_CMD | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"out_dir\"])'); cd ~/$REMOTE_DIR; gcloud storage rsync -r \$out $SYNC"
}

sync_down() {
  [[ -n "$SYNC" ]] || return 0
  on_workers "set -e; out=\$($OUT_DIR_CMD | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"out_dir\"])'); cd ~/$REMOTE_DIR; mkdir -p \$out; gcloud storage rsync -r $SYNC \$out"
}

restart() {
  echo "watch: restarting $NAME ($1)" >&2
  local del=("${COMMON[@]}")
  if [[ "$QUEUED" == 1 ]]; then del+=(--queued); fi
  if [[ "$1" != crashed ]]; then
    "$HERE/delete.sh" "${del[@]}" || true
    "$HERE/create.sh" "${COMMON[@]}" --accelerator-type "$ACCELERATOR" "${CREATE_FLAGS[@]+"${CREATE_FLAGS[@]}"}"
    local setup=("${COMMON[@]}")
    if [[ -n "$MODEL" ]]; then setup+=(--model "$MODEL"); fi
    "$HERE/setup.sh" "${setup[@]}"
    sync_down
  fi
  "$HERE/launch.sh" "${COMMON[@]}" --config "$CONFIG" --run "$RUN" -- "${OVERRIDES[@]+"${OVERRIDES[@]}"}"
}

restarts=0
while true; do
  state=$(slice_state | tail -n 1)
  [[ "$DRY_RUN" == 1 ]] && slice_state | sed '$d'
  case "$state" in
    READY|ACTIVE)
      status=$(trainer_status | tail -n 1)
      [[ "$DRY_RUN" == 1 ]] && trainer_status | sed '$d'
      if [[ "$status" == 0 ]]; then sync_up; echo "watch: $RUN finished" >&2; exit 0; fi
      sync_up
      if [[ "$status" =~ ^[0-9]+$ ]]; then
        echo "watch: trainer exited with status $status" >&2
        restarts=$((restarts + 1)); restart crashed
      fi ;;
    CREATING|PROVISIONING|WAITING_FOR_RESOURCES|ACCEPTED|STARTING|RESTARTING|REPAIRING) ;;
    *)  # PREEMPTED, TERMINATED, SUSPENDED, FAILED, MISSING, ...
      restarts=$((restarts + 1)); restart "$state" ;;
  esac
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "# a restart after a preemption runs:"
    restart PREEMPTED
    exit 0
  fi
  [[ "$ONCE" == 1 ]] && exit 0
  [[ "$restarts" -le "$MAX_RESTARTS" ]] || die "gave up after $MAX_RESTARTS restarts"
  sleep "$INTERVAL"
done
