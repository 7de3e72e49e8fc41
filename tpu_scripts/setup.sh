#!/usr/bin/env bash
# Install the project on every worker of a slice and stage the model and the data there.
#
#   tpu_scripts/setup.sh --name coderl-7b --zone us-east5-a [--bucket my-bucket] \
#       [--model gs://my-bucket/models/Qwen2.5-Coder-7B-Instruct | Qwen/Qwen2.5-Coder-7B-Instruct | DIR] \
#       [--data gs://my-bucket/data/prime_code | DIR] [--python 3.11] [--project P] [--dry-run]
#
# On every worker, in parallel: copy this checkout (tracked and untracked, not ignored files) to
# ~/coderl_jax; install bubblewrap (apt); install uv and make ~/coderl_jax/.venv with Python >= 3.11
# (uv downloads the interpreter: the image's python3 is not used); `uv pip install -e '.[tpu]'`;
# run `python -m tracer selftest` (fails unless the sandbox isolates the network); print each
# host's process index and device counts.
# --model: gs://.../NAME is copied from the bucket to models/NAME on every worker (one copy per
# worker, from GCS). A hub name (Qwen/NAME) is downloaded once, by worker 0, into
# gs://BUCKET/models/NAME (skipped when that copy is already complete), then copied from there; a
# local directory is uploaded there once from this machine. --data: the same, to data/NAME
# (gs://BUCKET/data/NAME for a local directory). The presets read models/<model> and data/prime_code.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

MODEL=""
DATA=""
PYTHON_VERSION="${CODERL_PYTHON:-3.11}"
while [[ $# -gt 0 ]]; do
  common_option "$@"
  if [[ "$USED" != 0 ]]; then shift "$USED"; continue; fi
  case "$1" in
    --model) MODEL="${2:?}"; shift 2 ;;
    --data) DATA="${2:?}"; shift 2 ;;
    --python) PYTHON_VERSION="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
require_target
target_flags

# where the model and the data come from in GCS (resolved before anything runs, so a bad option
# costs nothing): MODEL_SRC / DATA_SRC; MODEL_HUB when worker 0 must download it first
MODEL_SRC="" MODEL_HUB="" MODEL_UPLOAD="" DATA_SRC="" DATA_UPLOAD=""
if [[ -n "$MODEL" ]]; then
  if [[ "$MODEL" == gs://* ]]; then
    MODEL_SRC="${MODEL%/}"
  elif [[ -d "$MODEL" ]]; then
    [[ -n "$BUCKET" ]] || die "--model $MODEL (a local directory) needs --bucket: it is uploaded there once"
    MODEL_UPLOAD="${MODEL%/}"
    MODEL_SRC="$(bucket_url)/models/$(basename "$MODEL_UPLOAD")"
  elif [[ "$MODEL" =~ ^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$ ]]; then
    [[ -n "$BUCKET" ]] || die "--model $MODEL (a hub name) needs --bucket: worker 0 downloads it once into the bucket and every worker copies it from there"
    MODEL_HUB="$MODEL"
    MODEL_SRC="$(bucket_url)/models/${MODEL##*/}"
  else
    die "--model $MODEL: neither gs://..., a local directory, nor a hub name (org/name)"
  fi
fi
if [[ -n "$DATA" ]]; then
  if [[ "$DATA" == gs://* ]]; then
    DATA_SRC="${DATA%/}"
  elif [[ -d "$DATA" ]]; then
    [[ -n "$BUCKET" ]] || die "--data $DATA (a local directory) needs --bucket: it is uploaded there once"
    DATA_UPLOAD="${DATA%/}"
    DATA_SRC="$(bucket_url)/data/$(basename "$DATA_UPLOAD")"
  else
    die "--data $DATA: neither gs://... nor a local directory"
  fi
fi

# 1. the checkout, to every worker
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARBALL="${TMPDIR:-/tmp}/coderl_jax_src.tar.gz"
if [[ "$DRY_RUN" == 1 ]]; then
  echo "# tar of $ROOT (git ls-files --cached --others --exclude-standard) -> $TARBALL"
else
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -czf "$TARBALL" -T -)
fi
run "$GCLOUD" compute tpus tpu-vm scp "$TARBALL" "$NAME:coderl_jax_src.tar.gz" "${TARGET_FLAGS[@]}" --worker=all

# 2. bubblewrap, uv, the venv, the project, the sandbox self-test, the devices: on every worker
apt="sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq"  # waits out unattended-upgrades
install="set -eo pipefail; mkdir -p ~/$REMOTE_DIR; tar -xzf ~/coderl_jax_src.tar.gz -C ~/$REMOTE_DIR; cd ~/$REMOTE_DIR;"
install+=" $apt update; $apt install -y bubblewrap;"
install+=" export PATH=\$HOME/.local/bin:\$PATH;"
install+=" command -v uv >/dev/null || { curl -LsSf https://astral.sh/uv/install.sh | env UV_NO_MODIFY_PATH=1 sh; }"
install+=" || python3 -m pip install -q --user uv;"
install+=" [ -x $PY ] || uv venv --python $PYTHON_VERSION $VENV;"
install+=" uv pip install --python $PY -q -e '.[tpu]';"
install+=" $PY -m tracer selftest;"
install+=" $PY -c 'import jax; print(jax.process_index(), jax.local_device_count(), jax.device_count())'"
on_workers "$install"

# stage SRC DEST: gs:// directory SRC to ~/coderl_jax/DEST on every worker (rsync: a rerun copies
# only what changed)
stage() {
  on_workers "set -eo pipefail; cd ~/$REMOTE_DIR; mkdir -p $(printf %q "$2"); gcloud storage rsync -r $(printf '%q %q' "$1" "$2")"
}

# 3. the model
if [[ -n "$MODEL_UPLOAD" ]]; then
  run "$GCLOUD" storage rsync -r "$MODEL_UPLOAD" "$MODEL_SRC"
fi
if [[ -n "$MODEL_HUB" ]]; then
  # once, on worker 0: hub -> models/NAME -> the bucket; a marker object says the copy is complete
  local_dir="models/${MODEL_HUB##*/}"
  download="from huggingface_hub import snapshot_download; snapshot_download('$MODEL_HUB', local_dir='$local_dir')"
  once="set -eo pipefail; cd ~/$REMOTE_DIR;"
  once+=" if gcloud storage ls $MODEL_SRC.staged >/dev/null 2>&1; then echo 'setup: $MODEL_SRC is complete; not downloading';"
  once+=" else $PY -c \"$download\"; gcloud storage rsync -r $local_dir $MODEL_SRC;"
  once+=" echo $MODEL_HUB | gcloud storage cp - $MODEL_SRC.staged; fi"
  on_worker0 "$once"
fi
if [[ -n "$MODEL_SRC" ]]; then
  stage "$MODEL_SRC" "models/${MODEL_SRC##*/}"
fi

# 4. the data
if [[ -n "$DATA_UPLOAD" ]]; then
  run "$GCLOUD" storage rsync -r "$DATA_UPLOAD" "$DATA_SRC"
fi
if [[ -n "$DATA_SRC" ]]; then
  stage "$DATA_SRC" "data/${DATA_SRC##*/}"
fi
if [[ "$DRY_RUN" != 1 ]]; then
  echo "setup: $NAME is ready (~/$REMOTE_DIR/$PY on every worker; the sandbox isolates the network)" >&2
fi
