#!/usr/bin/env bash
# shellcheck disable=SC2034  # this file is sourced: the scripts that source it read its variables
# Shared by the tpu_scripts: option parsing and a `run` that prints instead of running on --dry-run.
# Sourced, not executed. Every script takes --name, --zone, --project and --dry-run.

set -euo pipefail

NAME="${CODERL_TPU_NAME:-}"
ZONE="${CODERL_TPU_ZONE:-}"
PROJECT="${CODERL_TPU_PROJECT:-}"
DRY_RUN=0
GCLOUD="${GCLOUD:-gcloud}"
REMOTE_DIR="${CODERL_REMOTE_DIR:-coderl_jax}"  # the checkout on every worker, relative to $HOME

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# run CMD...: run it, or print it shell-quoted on --dry-run
run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    "$@"
  fi
}

# common_option ARGS...: consume one common option if it is one; sets USED to the words used (0: none)
common_option() {
  USED=0
  case "$1" in
    --name) NAME="${2:?--name needs a value}"; USED=2 ;;
    --zone) ZONE="${2:?--zone needs a value}"; USED=2 ;;
    --project) PROJECT="${2:?--project needs a value}"; USED=2 ;;
    --dry-run) DRY_RUN=1; USED=1 ;;
  esac
}

require_target() {
  [[ -n "$NAME" ]] || die "--name is required (or set CODERL_TPU_NAME)"
  [[ -n "$ZONE" ]] || die "--zone is required (or set CODERL_TPU_ZONE)"
}

# gcloud flags every command shares
target_flags() {
  TARGET_FLAGS=(--zone="$ZONE")
  if [[ -n "$PROJECT" ]]; then TARGET_FLAGS+=(--project="$PROJECT"); fi
}

# on_workers COMMAND: run a shell command on every worker of the slice, in parallel
on_workers() {
  target_flags
  run "$GCLOUD" compute tpus tpu-vm ssh "$NAME" "${TARGET_FLAGS[@]}" --worker=all --command="$1"
}

# on_worker0 COMMAND
on_worker0() {
  target_flags
  run "$GCLOUD" compute tpus tpu-vm ssh "$NAME" "${TARGET_FLAGS[@]}" --worker=0 --command="$1"
}
