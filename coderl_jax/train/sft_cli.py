"""Moved to `coderl_jax.sft.cli` (docs/migration.md). This alias keeps `import coderl_jax.train.sft_cli` working for one release."""

import sys
import warnings

import coderl_jax.sft.cli as _moved

warnings.warn("coderl_jax.train.sft_cli moved to coderl_jax.sft.cli", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
