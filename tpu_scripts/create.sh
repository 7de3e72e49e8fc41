#!/usr/bin/env bash
# Create a Cloud TPU VM slice, directly or through a queued resource (waits until it is ACTIVE).
#
#   tpu_scripts/create.sh --name coderl-7b --zone us-east5-a --accelerator-type v5p-64 \
#       [--version v2-alpha-tpuv5] [--spot] [--queued] [--project P] [--dry-run]
#
# --queued asks for capacity through `gcloud compute tpus queued-resources` (the way to get a large
# slice, and the only way to get spot capacity for some types) and polls until it is ACTIVE.
# Runtime versions: v2-alpha-tpuv5 (v5p), v2-alpha-tpuv6e (v6e), v2-alpha-tpuv5-lite (v5e).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

ACCELERATOR=""
VERSION=""
SPOT=0
QUEUED=0
POLL_S="${CODERL_POLL_S:-30}"
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --accelerator-type) ACCELERATOR="${2:?}"; shift 2 ;;
    --version) VERSION="${2:?}"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --queued) QUEUED=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
[[ -n "$ACCELERATOR" ]] || die "--accelerator-type is required (e.g. v5p-64, v6e-64)"
if [[ -z "$VERSION" ]]; then
  case "$ACCELERATOR" in
    v5p-*) VERSION=v2-alpha-tpuv5 ;;
    v6e-*) VERSION=v2-alpha-tpuv6e ;;
    v5litepod-*) VERSION=v2-alpha-tpuv5-lite ;;
    v4-*) VERSION=tpu-ubuntu2204-base ;;
    *) die "no default runtime version for $ACCELERATOR; pass --version" ;;
  esac
fi
target_flags
if [[ "$QUEUED" == 1 ]]; then
  cmd=("$GCLOUD" compute tpus queued-resources create "$NAME" --node-id="$NAME" "${TARGET_FLAGS[@]}"
       --accelerator-type="$ACCELERATOR" --runtime-version="$VERSION")
  if [[ "$SPOT" == 1 ]]; then cmd+=(--spot); fi
  run "${cmd[@]}"
  describe=("$GCLOUD" compute tpus queued-resources describe "$NAME" "${TARGET_FLAGS[@]}" --format="value(state.state)")
  if [[ "$DRY_RUN" == 1 ]]; then run "${describe[@]}"; exit 0; fi
  while true; do
    state=$("${describe[@]}")
    echo "queued resource $NAME: $state" >&2
    case "$state" in
      ACTIVE) break ;;
      FAILED|SUSPENDED) die "queued resource $NAME is $state" ;;
    esac
    sleep "$POLL_S"
  done
else
  cmd=("$GCLOUD" compute tpus tpu-vm create "$NAME" "${TARGET_FLAGS[@]}" --accelerator-type="$ACCELERATOR"
       --version="$VERSION")
  if [[ "$SPOT" == 1 ]]; then cmd+=(--spot); fi
  run "${cmd[@]}"
fi
