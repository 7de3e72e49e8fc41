"""Decoder-only transformer (Qwen2/2.5, Qwen3, Llama 3.x) and its Hugging Face import/export."""

from coderl_jax.models.config import ConfigError, ModelConfig
from coderl_jax.models.hf_io import CheckpointError, load_hf, save_hf
from coderl_jax.models.sharding import param_shardings, shard_params
from coderl_jax.models.transformer import (
    forward,
    head_weight,
    init_kv_cache,
    init_params,
    kv_cache_bytes,
    param_shapes,
)

__all__ = [
    "CheckpointError", "ConfigError", "ModelConfig", "forward", "head_weight", "init_kv_cache", "init_params",
    "kv_cache_bytes", "load_hf", "param_shapes", "param_shardings", "save_hf", "shard_params",
]
