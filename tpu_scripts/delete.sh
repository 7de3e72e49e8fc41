#!/usr/bin/env bash
# Delete a slice (and its queued resource, when it came from one).
#
#   tpu_scripts/delete.sh --name coderl-7b --zone us-east5-a [--queued] [--project P] [--dry-run]
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

QUEUED=0
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --queued) QUEUED=1; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
target_flags
if [[ "$QUEUED" == 1 ]]; then
  run "$GCLOUD" compute tpus queued-resources delete "$NAME" "${TARGET_FLAGS[@]}" --force --quiet
else
  run "$GCLOUD" compute tpus tpu-vm delete "$NAME" "${TARGET_FLAGS[@]}" --quiet
fi
