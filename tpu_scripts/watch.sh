#!/usr/bin/env bash
# Keep a run alive: poll the slice; after a preemption recreate the slice, set it up again (the
# project, bubblewrap, the model, the data) and relaunch, which resumes from the newest complete
# checkpoint in the bucket; relaunch a trainer that exited with an error.
#
#   tpu_scripts/watch.sh --name coderl-7b --zone us-east5-a --accelerator-type v5p-64 \
#       --config configs/qwen25_coder_7b_v5p64.py --bucket my-bucket [--run NAME] \
#       [--model gs://my-bucket/models/Qwen2.5-Coder-7B-Instruct] [--data gs://my-bucket/data/prime_code] \
#       [--queued] [--spot] [--version V] [--sync gs://...] [--interval 300] [--max-restarts 20] \
#       [--delete-when-done] [--once] [--project P] [--dry-run] [-- key=value ...]
#
# With --bucket (gs://BUCKET/runs/<run>/...): checkpoints go to checkpoints/ (launch.sh --bucket);
# <out_dir> (metrics.jsonl, TensorBoard, evaluations; on worker 0's disk) is copied to out/ after
# every poll and back onto a new slice before the relaunch (--sync URL: elsewhere; without
# --bucket, --sync is the only copy of a local checkpoint_dir); every worker's log is copied to
# logs/worker-<N>.log after every poll and when the run ends, and back before a relaunch (launch.sh
# appends to it). --model / --data are passed to setup.sh (a gs:// path, or a hub name that only
# the first setup downloads). The loop ends when the trainer's exit status is 0 (with
# --delete-when-done the slice is then deleted), or after --max-restarts restarts; a restart that
# fails part-way (no capacity for the new slice, a failed setup) is retried at the next poll.
# --dry-run prints the commands of one poll and of one restart; --once polls (and restarts) once.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"
HERE="$(dirname "$0")"

ACCELERATOR=""
CONFIG=""
RUN=""
MODEL=""
DATA=""
SYNC=""
INTERVAL=300
MAX_RESTARTS=20
ONCE=0
DELETE_WHEN_DONE=0
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
    --data) DATA="${2:?}"; shift 2 ;;
    --sync) SYNC="${2:?}"; shift 2 ;;
    --interval) INTERVAL="${2:?}"; shift 2 ;;
    --max-restarts) MAX_RESTARTS="${2:?}"; shift 2 ;;
    --once) ONCE=1; shift ;;
    --delete-when-done) DELETE_WHEN_DONE=1; shift ;;
    --queued|--spot) CREATE_FLAGS+=("$1"); shift ;;
    --version) CREATE_FLAGS+=(--version "${2:?}"); shift 2 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
[[ -n "$ACCELERATOR" ]] || die "--accelerator-type is required (to recreate the slice)"
[[ -n "$CONFIG" ]] || die "--config is required"
RUN="${RUN:-$(basename "$CONFIG" .py)}"
target_flags

LOGS_URL=""
if [[ -n "$BUCKET" ]]; then
  LOGS_URL="$(run_url "$RUN")/logs"
  SYNC="${SYNC:-$(run_url "$RUN")/out}"
fi
COMMON=(--name "$NAME" --zone "$ZONE")
if [[ -n "$PROJECT" ]]; then COMMON+=(--project "$PROJECT"); fi
if [[ "$DRY_RUN" == 1 ]]; then COMMON+=(--dry-run); fi
WITH_BUCKET=("${COMMON[@]}")
if [[ -n "$BUCKET" ]]; then WITH_BUCKET+=(--bucket "$BUCKET"); fi
QUEUED=0
for f in "${CREATE_FLAGS[@]+"${CREATE_FLAGS[@]}"}"; do [[ "$f" == --queued ]] && QUEUED=1; done
DELETE=("${COMMON[@]}")
if [[ "$QUEUED" == 1 ]]; then DELETE+=(--queued); fi
# the run's out_dir, as the trainer resolves it (config file + overrides), on worker 0
overrides=""
if [[ ${#OVERRIDES[@]} -gt 0 ]]; then overrides=$(printf ' %q' "${OVERRIDES[@]}"); fi
OUT_DIR="\$($PY -m coderl_jax.cli train --config $CONFIG$overrides --print-config | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"out_dir\"])')"

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

# the trainer on worker 0: running | <exit status> | died (gone without one) | missing (never
# launched on this slice) | unknown (worker 0 did not answer)
trainer_status() {
  local d="\$HOME/$REMOTE_DIR/logs/$RUN"
  local cmd="if [ -f $d/exit_code ]; then cat $d/exit_code; elif [ ! -f $d/train.pid ]; then echo missing;"
  cmd+=" elif kill -0 -- -\$(cat $d/train.pid) 2>/dev/null; then echo running; else echo died; fi"
  if [[ "$DRY_RUN" == 1 ]]; then on_worker0 "$cmd"; echo running; return; fi
  on_worker0 "$cmd" 2>/dev/null | tail -n 1 || echo unknown
}

sync_up() {
  [[ -n "$SYNC" ]] || return 0
  on_worker0 "set -eo pipefail; cd ~/$REMOTE_DIR; out=$OUT_DIR; if [ -d \$out ]; then gcloud storage rsync -r \$out $SYNC; fi"
}

sync_down() {
  [[ -n "$SYNC" ]] || return 0
  on_workers "set -eo pipefail; cd ~/$REMOTE_DIR; out=$OUT_DIR; mkdir -p \$out; gcloud storage rsync -r $SYNC \$out 2>/dev/null || true"
}

logs_up() {  # each worker's log to the bucket (never fails the watch)
  [[ -n "$LOGS_URL" ]] || return 0
  on_workers "cd ~/$REMOTE_DIR/logs/$RUN 2>/dev/null || exit 0; w=$WORKER_ID; if [ -f worker-\$w.log ]; then gcloud storage cp worker-\$w.log $LOGS_URL/worker-\$w.log; fi" || true
}

logs_down() {  # ... and back onto a new slice, for launch.sh to append to
  [[ -n "$LOGS_URL" ]] || return 0
  on_workers "mkdir -p ~/$REMOTE_DIR/logs/$RUN; cd ~/$REMOTE_DIR/logs/$RUN; w=$WORKER_ID; gcloud storage cp $LOGS_URL/worker-\$w.log worker-\$w.log 2>/dev/null || true" || true
}

failed() { echo "watch: restart failed at $1; retrying at the next poll" >&2; }

# restart REASON: crashed -> relaunch; missing -> setup and launch on this slice; else (PREEMPTED,
# TERMINATED, MISSING, ...) -> delete, create, setup, copy back, launch
restart() {
  echo "watch: restarting $NAME ($1)" >&2
  local setup=("${WITH_BUCKET[@]}")
  if [[ -n "$MODEL" ]]; then setup+=(--model "$MODEL"); fi
  if [[ -n "$DATA" ]]; then setup+=(--data "$DATA"); fi
  if [[ "$1" != crashed && "$1" != missing ]]; then
    "$HERE/delete.sh" "${DELETE[@]}" || true
    "$HERE/create.sh" "${COMMON[@]}" --accelerator-type "$ACCELERATOR" "${CREATE_FLAGS[@]+"${CREATE_FLAGS[@]}"}" \
      || { failed create; return 0; }
  fi
  if [[ "$1" != crashed ]]; then
    "$HERE/setup.sh" "${setup[@]}" || { failed setup; return 0; }
    sync_down
    logs_down
  fi
  "$HERE/launch.sh" "${WITH_BUCKET[@]}" --config "$CONFIG" --run "$RUN" -- "${OVERRIDES[@]+"${OVERRIDES[@]}"}" \
    || { failed launch; return 0; }
}

restarts=0
while true; do
  state=$(slice_state | tail -n 1)
  [[ "$DRY_RUN" == 1 ]] && slice_state | sed '$d'
  case "$state" in
    READY|ACTIVE)
      status=$(trainer_status | tail -n 1)
      [[ "$DRY_RUN" == 1 ]] && trainer_status | sed '$d'
      sync_up || echo "watch: could not copy out_dir to $SYNC" >&2
      logs_up
      case "$status" in
        0) echo "watch: $RUN finished" >&2
           if [[ "$DELETE_WHEN_DONE" == 1 ]]; then "$HERE/delete.sh" "${DELETE[@]}"; fi
           exit 0 ;;
        running|unknown) ;;
        missing) restarts=$((restarts + 1)); restart missing ;;
        *) echo "watch: trainer exited with status $status" >&2
           restarts=$((restarts + 1)); restart crashed ;;
      esac ;;
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
