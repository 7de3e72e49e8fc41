"""Moved to `coderl_jax.configs.paper_settings` (docs/migration.md). This alias keeps `import coderl_jax.train.paper` working for one release."""

import sys
import warnings

import coderl_jax.configs.paper_settings as _moved

warnings.warn("coderl_jax.train.paper moved to coderl_jax.configs.paper_settings", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
