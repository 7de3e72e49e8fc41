"""Qwen2.5-Coder-7B-Instruct, the paper's setting, on v6e-64: the preset in coderl_jax/configs/pods.py."""

from coderl_jax.configs.pods import pod_config

config = pod_config("qwen25_coder_7b_v6e64")
