"""CodeRL+ on easier alignment records, where state prediction can learn: the preset `states_cpu`."""

from coderl_jax.configs.states_cpu import config  # noqa: F401
