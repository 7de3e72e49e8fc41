"""Qwen2.5-Coder-1.5B-Instruct, the paper's setting, on v5p-64: the preset in coderl_jax/configs/pods.py."""

from coderl_jax.configs.pods import pod_config

config = pod_config("qwen25_coder_1p5b_v5p64")
