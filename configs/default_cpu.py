"""The embedded default (CodeRL+ on the task suite from the committed warm start): the preset `default_cpu`."""

from coderl_jax.configs.default_cpu import config  # noqa: F401
