"""Moved to `coderl_jax.rl.rewards` (docs/migration.md). This alias keeps `import coderl_jax.train.rewards` working for one release."""

import sys
import warnings

import coderl_jax.rl.rewards as _moved

warnings.warn("coderl_jax.train.rewards moved to coderl_jax.rl.rewards", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
