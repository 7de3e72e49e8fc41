#!/usr/bin/env bash
# shellcheck disable=SC2034  # this file is sourced: the scripts that source it read its variables
# Shared by the tpu_scripts: option parsing and a `run` that prints instead of running on --dry-run.
# Sourced, not executed. Every script takes --name, --zone, --project, --bucket and --dry-run.

set -euo pipefail

NAME="${CODERL_TPU_NAME:-}"
ZONE="${CODERL_TPU_ZONE:-}"
PROJECT="${CODERL_TPU_PROJECT:-}"
BUCKET="${CODERL_BUCKET:-}"  # a GCS bucket: my-bucket or gs://my-bucket
DRY_RUN=0
GCLOUD="${GCLOUD:-gcloud}"
REMOTE_DIR="${CODERL_REMOTE_DIR:-coderl_jax}"  # the checkout on every worker, relative to $HOME
# the project's virtual environment on every worker (setup.sh makes it), relative to the checkout
VENV=".venv"
PY="$VENV/bin/python"
# on a worker: its index in the slice (0..N-1, from the TPU VM metadata), else its hostname
WORKER_ID="\$(curl -sf -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number 2>/dev/null || hostname)"

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
    --bucket) BUCKET="${2:?--bucket needs a value}"; USED=2 ;;
    --dry-run) DRY_RUN=1; USED=1 ;;
  esac
}

require_target() {
  [[ -n "$NAME" ]] || die "--name is required (or set CODERL_TPU_NAME)"
  [[ -n "$ZONE" ]] || die "--zone is required (or set CODERL_TPU_ZONE)"
}

# bucket_url: gs://BUCKET (no trailing slash), from --bucket BUCKET or --bucket gs://BUCKET
bucket_url() {
  local b="${BUCKET#gs://}"
  b="${b%/}"
  [[ -n "$b" && "$b" != */* ]] || die "--bucket takes a bucket name (my-bucket or gs://my-bucket), got '$BUCKET'"
  echo "gs://$b"
}

# run_url RUN: where a run keeps its checkpoints, logs and out_dir copy in the bucket
run_url() { echo "$(bucket_url)/runs/$1"; }

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
