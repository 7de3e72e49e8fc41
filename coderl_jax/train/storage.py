"""Where a run's checkpoints live: a local directory, a shared file system, or a `gs://` bucket.

- `checkpoint_path(text)`: the directory as an `etils.epath.Path` (local paths made absolute). A
  `gs://` path goes through etils' fsspec backend, i.e. gcsfs, and orbax writes the arrays through
  tensorstore's own GCS driver; both come with the `gcs` extra (`pip install 'coderl-jax[gcs]'`),
  imported only when a `gs://` path is used.
- `write_text(path, text)`: a small file written whole: on local disk through a temporary file and a
  rename (atomic), on `gs://` as one object upload (atomic by itself; GCS has no rename, and gcsfs's
  copy-and-delete stand-in costs round trips and retries).
- `check_shared(directory)`: on a multi-process job, every process must see the same checkpoint
  directory (process 0 writes a nonce there, the others read it back); a directory on each host's
  own disk is refused with `NotSharedError` before anything is written into it.

A directory is "remote" when its text has a URL scheme (`gs://`, `s3://`, ...).
"""

from __future__ import annotations

import logging
import secrets
import socket
from pathlib import Path

from coderl_jax.errors import UserError
from coderl_jax.remote import GCS_EXTRA_HINT, url_path
from coderl_jax.remote import is_url

log = logging.getLogger("coderl_jax.train")

NONCE_PREFIX = ".coderl-shared-check-"


class StorageError(UserError, ValueError):
    """A checkpoint location this installation or this job cannot use."""


class NotSharedError(StorageError):
    """The processes of a multi-host job do not see one checkpoint directory."""


def checkpoint_path(directory):
    """An epath.Path: a URL as it is (gs:// needs gcsfs: a StorageError naming the extra without
    it), a local path made absolute."""
    from etils import epath

    text = str(directory)
    if not is_url(text):
        return epath.Path(Path(text).expanduser().absolute())
    return url_path(text, error=StorageError, example="gs://BUCKET/runs/NAME/checkpoints")


def resolve_checkpoint_dir(checkpoint_dir: str, *, bucket: str, out_dir: str) -> str:
    """The run's checkpoint directory: `checkpoint_dir` with `{bucket}` replaced by `bucket` (the pod
    presets say gs://{bucket}/runs/<name>/checkpoints), or <out_dir>/checkpoints when empty."""
    if is_url(out_dir):
        raise StorageError(f"out_dir={out_dir}: must be a local directory (metrics, TensorBoard, evaluation "
                           f"files); put the checkpoints in a bucket with checkpoint_dir=gs://BUCKET/PATH")
    if not checkpoint_dir:
        return str(Path(out_dir) / "checkpoints")
    if "{bucket}" in checkpoint_dir:
        name = bucket.strip().removeprefix("gs://").strip("/")
        if not name:
            raise StorageError(f"checkpoint_dir={checkpoint_dir} names a bucket: set bucket=NAME (a GCS bucket "
                               f"every host can write) or checkpoint_dir=gs://BUCKET/PATH (or a shared directory)")
        checkpoint_dir = checkpoint_dir.replace("{bucket}", name)
    return checkpoint_dir


def write_text(path, text: str) -> None:
    """`text` as the whole content of `path`: a temporary file renamed into place on local disk,
    one upload on a remote store."""
    if is_url(path):
        path.write_text(text)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def check_shared(directory, *, option: str = "checkpoint_dir") -> None:
    """On a multi-process job, check that every process sees `directory` (an epath.Path that process
    0 has created): process 0 writes a file with a fresh nonce, every other process reads it back,
    and all processes learn whether everyone did. Where not (each host's own local disk, a path
    that differs between hosts) every process raises NotSharedError, so the job stops at start-up
    instead of writing checkpoints that no host can restore. A no-op with one process."""
    import jax

    from coderl_jax.parallel.hosts import gather_objects

    if jax.process_count() == 1:
        return
    me = jax.process_index()
    nonce = secrets.token_hex(16) if me == 0 else None
    wrote = None
    if me == 0:
        marker = directory / f"{NONCE_PREFIX}{nonce}"
        try:
            marker.write_text(nonce)
        except Exception as e:  # the others must still reach the gather below
            wrote = f"{type(e).__name__}: {e}"
    # the gather is the barrier: process 0 has written (or failed to) before anyone reads
    nonce, wrote = gather_objects((nonce, wrote))[0]
    if wrote is not None:
        raise StorageError(f"{option}={directory}: process 0 cannot write there: {wrote}")
    if me == 0:
        seen = None
    else:
        try:
            text = (directory / f"{NONCE_PREFIX}{nonce}").read_text()
            seen = None if text == nonce else "it holds other content"
        except FileNotFoundError:
            seen = "the file is not there"
        except Exception as e:
            seen = f"{type(e).__name__}: {e}"
    answers = gather_objects((socket.gethostname(), str(directory), seen))
    if me == 0:
        try:
            (directory / f"{NONCE_PREFIX}{nonce}").unlink()
        except Exception as e:  # a leftover marker is harmless: the next check uses a new name
            log.warning("could not remove %s%s from %s: %s", NONCE_PREFIX, nonce, directory, e)
    failed = [(i, host, where, why) for i, (host, where, why) in enumerate(answers) if why is not None]
    if not failed:
        log.info("%s=%s: seen by all %d processes", option, directory, len(answers))
        return
    host0, where0, _ = answers[0]
    who = "; ".join(f"process {i} on {host} looked in {where}: {why}" for i, host, where, why in failed[:4])
    more = f" (and {len(failed) - 4} more)" if len(failed) > 4 else ""
    raise NotSharedError(
        f"{option} is not shared by the job's {len(answers)} processes: process 0 on {host0} wrote a check "
        f"file in {where0} that every process must read back, and {who}{more}. Each host would "
        f"checkpoint to its own disk and no host could restore the others' shards. Set {option} to a "
        f"location every host sees: {option}=gs://BUCKET/runs/NAME/checkpoints ({GCS_EXTRA_HINT}) or a "
        f"shared file system (NFS)")
