#!/usr/bin/env bash
# Start `coderl train` on every worker of a slice: one process per host, each joining the job with
# jax.distributed.initialize (CODERL_DISTRIBUTED=1), each writing its own log.
#
#   tpu_scripts/launch.sh --name coderl-7b --zone us-east5-a --config configs/qwen25_coder_7b_v5p64.py \
#       [--run NAME] [--project P] [--dry-run] [-- key=value ...]
#
# Logs: ~/coderl_jax/logs/<run>/worker-<hostname>.log on each worker; the pid is in train.pid and the
# exit status, once it ends, in exit_code (watch.sh reads them). A process left from an earlier
# launch of the same run is stopped first, by its pid file. Running the same launch again resumes
# from the last checkpoint in the config's out_dir.
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
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
[[ -n "$CONFIG" ]] || die "--config is required"
RUN="${RUN:-$(basename "$CONFIG" .py)}"

overrides=""
if [[ ${#OVERRIDES[@]} -gt 0 ]]; then overrides=$(printf ' %q' "${OVERRIDES[@]}"); fi
logs="logs/$RUN"
# stop a leftover process of this run (by its pid file), then start detached
cmd="cd ~/$REMOTE_DIR && mkdir -p $logs"
cmd+=" && { if [ -f $logs/train.pid ]; then kill \$(cat $logs/train.pid) 2>/dev/null || true; sleep 5; fi; }"
cmd+=" && rm -f $logs/exit_code"
cmd+=" && (CODERL_DISTRIBUTED=1 nohup sh -c 'python3 -m coderl_jax.cli train --config $CONFIG$overrides progress=false;"
cmd+=" echo \$? > $logs/exit_code' > $logs/worker-\$(hostname).log 2>&1 < /dev/null & echo \$! > $logs/train.pid)"
on_workers "$cmd"
echo "launched $RUN on $NAME; logs: ~/$REMOTE_DIR/$logs/worker-*.log (tpu_scripts/watch.sh to follow)" >&2
