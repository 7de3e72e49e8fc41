"""Qwen2.5-Coder-1.5B-Instruct on one 80 GB GPU: the preset `gpu_1p5b` (coderl_jax/configs/gpu_1p5b.py)."""

from coderl_jax.configs.gpu_1p5b import config  # noqa: F401
