"""GRPO on compositions the warm start never saw: the preset `grpo_cpu`."""

from coderl_jax.configs.grpo_cpu import config  # noqa: F401
