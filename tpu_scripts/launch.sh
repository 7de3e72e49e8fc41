#!/usr/bin/env bash
# Start `coderl train` on every worker of a slice: one process per host, each joining the job with
# jax.distributed.initialize (CODERL_DISTRIBUTED=1), each writing its own log.
#
#   tpu_scripts/launch.sh --name coderl-7b --zone us-east5-a --config configs/qwen25_coder_7b_v5p64.py \
#       [--bucket my-bucket] [--run NAME] [--project P] [--dry-run] [-- key=value ...]
#
# --bucket adds the override checkpoint_dir=gs://BUCKET/runs/<run>/checkpoints (before the -- ones,
# which win): every host writes its shards there, and running the same launch again, on this slice
# or on a new one, resumes from the newest complete checkpoint in it. Without --bucket the
# checkpoints go to the config's checkpoint_dir (default <out_dir>/checkpoints on worker 0's disk).
# Logs: ~/coderl_jax/logs/<run>/worker-<N>.log on worker N (appended to by every launch); the pid
# of the run's process group is in train.pid and the exit status, once it ends, in exit_code
# (watch.sh reads them). A process left from an earlier launch of the same run is stopped first
# (SIGTERM to its process group: the trainer checkpoints and exits; SIGKILL after 120 s).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

CONFIG=""
RUN=""
OVERRIDES=()
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --config) CONFIG="${2:?}"; shift 2 ;;
    --run) RUN="${2:?}"; shift 2 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
[[ -n "$CONFIG" ]] || die "--config is required"
RUN="${RUN:-$(basename "$CONFIG" .py)}"

ALL=()
if [[ -n "$BUCKET" ]]; then ALL+=("checkpoint_dir=$(run_url "$RUN")/checkpoints"); fi
ALL+=("${OVERRIDES[@]+"${OVERRIDES[@]}"}")
overrides=""
if [[ ${#ALL[@]} -gt 0 ]]; then overrides=$(printf ' %q' "${ALL[@]}"); fi
logs="logs/$RUN"
log="$logs/worker-\$w.log"
train="$PY -m coderl_jax.cli train --config $CONFIG$overrides progress=false"
# stop a leftover process group of this run, then start detached in a session of its own (setsid:
# its pid is the group's id, so a stop reaches the trainer, not only the shell around it)
cmd="cd ~/$REMOTE_DIR && mkdir -p $logs && w=$WORKER_ID"
cmd+=" && { if [ -f $logs/train.pid ]; then p=\$(cat $logs/train.pid); kill -TERM -- -\$p 2>/dev/null"
cmd+=" && for _ in \$(seq 120); do kill -0 -- -\$p 2>/dev/null || break; sleep 1; done;"
cmd+=" kill -KILL -- -\$p 2>/dev/null; rm -f $logs/train.pid; fi; true; }"
cmd+=" && rm -f $logs/exit_code && echo \"=== launch \$(date -u +%FT%TZ) on \$(hostname) ===\" >> $log"
cmd+=" && (CODERL_DISTRIBUTED=1 nohup setsid sh -c 'echo \$\$ > $logs/train.pid; $train;"
cmd+=" echo \$? > $logs/exit_code' >> $log 2>&1 < /dev/null &)"
on_workers "$cmd"
copied=""
if [[ -n "$BUCKET" ]]; then copied=", copied to $(run_url "$RUN")/logs/ by watch.sh"; fi
echo "launched $RUN on $NAME; logs: ~/$REMOTE_DIR/$logs/worker-N.log on worker N$copied" >&2
