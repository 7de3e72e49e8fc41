"""A short smoke run on the tiny random policy: the preset `tiny_cpu`."""

from coderl_jax.configs.tiny_cpu import config  # noqa: F401
