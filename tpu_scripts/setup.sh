#!/usr/bin/env bash
# Install the project on every worker of a slice: copy this checkout (tracked and untracked,
# not ignored files), pip install it with the TPU extra, and optionally download a model.
#
#   tpu_scripts/setup.sh --name coderl-7b --zone us-east5-a \
#       [--model Qwen/Qwen2.5-Coder-7B-Instruct] [--data gs://bucket/prime_code] [--project P] [--dry-run]
#
# The model lands in ~/coderl_jax/models/<name> on every worker (what the qwen25_coder_* presets
# expect); --data copies a prepared data directory to ~/coderl_jax/data/<basename>.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

MODEL=""
DATA=""
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --model) MODEL="${2:?}"; shift 2 ;;
    --data) DATA="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
target_flags

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARBALL="${TMPDIR:-/tmp}/coderl_jax_src.tar.gz"
if [[ "$DRY_RUN" == 1 ]]; then
  echo "# tar of $ROOT (git ls-files --cached --others --exclude-standard) -> $TARBALL"
else
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -czf "$TARBALL" -T -)
fi
run "$GCLOUD" compute tpus tpu-vm scp "$TARBALL" "$NAME:coderl_jax_src.tar.gz" "${TARGET_FLAGS[@]}" --worker=all

install="set -e; mkdir -p ~/$REMOTE_DIR; tar -xzf ~/coderl_jax_src.tar.gz -C ~/$REMOTE_DIR; cd ~/$REMOTE_DIR;"
install+=" python3 -m pip install -q -U pip; python3 -m pip install -q -e '.[tpu]';"
install+=" python3 -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'"
on_workers "$install"

if [[ -n "$MODEL" ]]; then
  on_workers "set -e; cd ~/$REMOTE_DIR; python3 -m pip install -q -U 'huggingface_hub[cli]'; hf download $MODEL --local-dir models/${MODEL##*/}"
fi
if [[ -n "$DATA" ]]; then
  on_workers "set -e; cd ~/$REMOTE_DIR; mkdir -p data; gcloud storage cp -r $DATA data/"
fi
