"""Moved to `coderl_jax.sft.trainer` (docs/migration.md). This alias keeps `import coderl_jax.train.sft` working for one release."""

import sys
import warnings

import coderl_jax.sft.trainer as _moved

warnings.warn("coderl_jax.train.sft moved to coderl_jax.sft.trainer", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
