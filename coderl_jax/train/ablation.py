"""Moved to `coderl_jax.experiments.ablation` and `coderl_jax.experiments.cli` (docs/migration.md). This alias keeps
`import coderl_jax.train.ablation` working for one release."""

import warnings

from coderl_jax.experiments.ablation import *  # noqa: F401,F403
from coderl_jax.experiments.cli import *  # noqa: F401,F403
from coderl_jax.experiments.cli import add_arguments, main  # noqa: F401

warnings.warn("coderl_jax.train.ablation moved to coderl_jax.experiments.ablation", DeprecationWarning, stacklevel=2)
