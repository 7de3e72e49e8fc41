"""Bucket URLs (`gs://BUCKET/PATH`) for outputs that are written locally and mirrored.

Evaluation appends each scored problem to a local file, which object stores cannot do; so a command
given a URL works in a local mirror of it (`mirror_dir`) and copies the tree up after each unit of
work (`upload_tree`), having first copied down what an earlier run left there (`download_tree`), so
a rerun resumes from the bucket. `gs://` goes through etils' fsspec backend (gcsfs), from the `gcs`
extra, imported only when a URL is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from coderl_jax.cache import cache_root
from coderl_jax.errors import UserError

GCS_EXTRA_HINT = "pip install 'coderl-jax[gcs]'"


class RemoteError(UserError, ValueError):
    """A URL this installation cannot use."""


def is_url(text) -> bool:
    return "://" in os.fspath(text)


def url_path(text: str, *, error: type[Exception] = RemoteError, example: str = "gs://BUCKET/PATH"):
    """An etils.epath.Path for a URL; gs:// without gcsfs, or without a bucket and path, raises
    `error` (a RemoteError by default) naming the extra or showing `example`."""
    from etils import epath

    if text.startswith("gs://"):
        try:
            import gcsfs  # noqa: F401  (etils' fsspec backend loads it by name)
        except ImportError:
            raise error(f"{text}: gs:// needs gcsfs and google-cloud-storage; install them with "
                        f"{GCS_EXTRA_HINT}") from None
        if not text[len("gs://"):].strip("/"):
            raise error(f"{text}: name a bucket and a path, e.g. {example}")
    return epath.Path(text)


def mirror_dir(url: str) -> Path:
    """The local directory that mirrors `url`: $CODERL_CACHE/mirrors/<hash of the URL>."""
    return cache_root() / "mirrors" / hashlib.sha256(url.encode()).hexdigest()[:16]


def _files(root) -> list:
    """Every file under `root`, one directory listing at a time (etils refuses a recursive glob on
    GCS; the trees mirrored here are a few files per benchmark)."""
    out, todo = [], [root]
    while todo:
        for entry in todo.pop().iterdir():
            (todo if entry.is_dir() else out).append(entry)
    return sorted(out, key=str)


def download_tree(url: str, local: Path) -> int:
    """Copy every object under `url` into `local` (same relative paths); returns how many."""
    remote = url_path(url)
    if not remote.exists():
        return 0
    count = 0
    for src in _files(remote):
        dst = local / src.relative_to(remote)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        count += 1
    return count


def upload_tree(local: Path, url: str) -> int:
    """Copy every file under `local` to `url` (one object upload each: no renames); returns how many."""
    remote = url_path(url)
    count = 0
    for src in _files(local):
        dst = remote / src.relative_to(local).as_posix()
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
        count += 1
    return count
