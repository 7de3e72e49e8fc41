"""The user cache directory: $CODERL_CACHE, else ~/.cache/coderl_jax.

Generated suites, the tiny random model, XLA's compiled programs and bucket mirrors live under it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("CODERL_CACHE", Path.home() / ".cache" / "coderl_jax"))
