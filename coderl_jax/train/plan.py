"""Moved to `coderl_jax.plan.planner` and `coderl_jax.plan.cli` (docs/migration.md). This alias keeps
`import coderl_jax.train.plan` working for one release."""

import warnings

from coderl_jax.plan.planner import *  # noqa: F401,F403
from coderl_jax.plan.cli import *  # noqa: F401,F403
from coderl_jax.plan.cli import add_arguments, main  # noqa: F401

warnings.warn("coderl_jax.train.plan moved to coderl_jax.plan.planner", DeprecationWarning, stacklevel=2)
