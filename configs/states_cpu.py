"""CodeRL+ on easier alignment records (short values only): the preset `states_cpu`."""

from coderl_jax.configs.states_cpu import config  # noqa: F401
