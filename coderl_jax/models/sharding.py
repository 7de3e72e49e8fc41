"""Sharding of the parameters: the logical axes of each parameter of the decoder.

The rule tables (logical name -> mesh axes) live in `coderl_jax.parallel.rules`; this module says
which logical name each parameter dimension has, and turns a table into one NamedSharding per
parameter. Heads are split in whole heads ("heads"/"kv_heads" count heads, not n*d columns).
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding

from coderl_jax.models.config import ModelConfig
from coderl_jax.models.transformer import param_shapes
from coderl_jax.parallel.rules import (SAMPLE_RULES, TRAIN_RULES, Rules, activation_sharding,
                                       logical_to_spec)

# logical axes of each parameter, by its name in the params dict (norm weights: by parent name)
PARAM_AXES = {
    "embed_tokens": ("vocab", "embed"),  # [v, h]
    "lm_head": ("embed", "vocab"),  # [h, v]
    "q_proj": ("embed", "heads"),  # [h, n*d]
    "k_proj": ("embed", "kv_heads"),  # [h, k*d]
    "v_proj": ("embed", "kv_heads"),
    "o_proj": ("heads", "embed"),  # [n*d, h]
    "q_bias": ("heads",),
    "k_bias": ("kv_heads",),
    "v_bias": ("kv_heads",),
    "gate_proj": ("embed", "mlp"),  # [h, f]
    "up_proj": ("embed", "mlp"),
    "down_proj": ("mlp", "embed"),  # [f, h]
    "q_norm": ("head_dim",),  # [d]
    "k_norm": ("head_dim",),
    "input_layernorm": ("norm",),  # [h]
    "post_attention_layernorm": ("norm",),
    "norm": ("norm",),
}
# the decode cache layout of transformer.init_kv_cache: keys slots-minor, values head_dim-minor
KV_CACHE_AXES = (("batch", "kv_heads", "head_dim", "length"),  # k_bkds
                 ("batch", "kv_heads", "length", "head_dim"))  # v_bksd


def rules_for(cfg: ModelConfig, mode: str = "train") -> Rules:
    """The rule table for a model family and phase ("train" or "sample").

    The three families share one layout today; this is the seam for a family that needs its own.
    """
    if mode not in ("train", "sample"):
        raise ValueError(f"mode must be 'train' or 'sample', got {mode!r}")
    return TRAIN_RULES if mode == "train" else SAMPLE_RULES


def path_names(path) -> list[str]:
    """A jax.tree_util key path as strings: ["layers", "0", "self_attn", "q_proj"]."""
    return [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]


def leaf_logical_axes(path) -> tuple[str, ...]:
    """Logical axes of the parameter at a key path of the params dict."""
    names = path_names(path)
    name = names[-2] if names[-1] == "weight" else names[-1]
    if name not in PARAM_AXES:
        raise KeyError(f"no logical axes for parameter {'/'.join(names)}")
    return PARAM_AXES[name]


def head_units(cfg: ModelConfig) -> dict[str, int]:
    return {"heads": cfg.num_heads, "kv_heads": cfg.num_kv_heads}


def param_shardings(cfg: ModelConfig, mesh: Mesh | None, rules: Rules | None = None) -> dict:
    """A NamedSharding per parameter, in the structure of the params dict (default: TRAIN_RULES).

    Without a mesh: everything on the first device (a SingleDeviceSharding per parameter).
    """
    if mesh is None:
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        return jax.tree.map(lambda _: one, param_shapes(cfg))
    rules = TRAIN_RULES if rules is None else rules

    def one(path, leaf):
        spec = logical_to_spec(leaf_logical_axes(path), leaf.shape, mesh, rules, units=head_units(cfg),
                               what="/".join(path_names(path)))
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(one, param_shapes(cfg))


def shard_params(params: dict, cfg: ModelConfig, mesh: Mesh, rules: Rules | None = None) -> dict:
    """Move (or reshard) an existing params dict onto the mesh."""
    return jax.device_put(params, param_shardings(cfg, mesh, rules))


def kv_cache_sharding(cfg: ModelConfig, mesh: Mesh, batch: int, num_slots: int,
                      rules: Rules | None = None) -> tuple[NamedSharding, NamedSharding]:
    """Shardings of one layer's (k_bkds, v_bksd) cache pair: batch over the data axes, kv heads
    over tensor (whole heads only)."""
    rules = SAMPLE_RULES if rules is None else rules
    k, d = cfg.num_kv_heads, cfg.head_dim
    shapes = ((batch, k, d, num_slots), (batch, k, num_slots, d))
    return tuple(activation_sharding(mesh, axes, shape, rules, units=head_units(cfg))
                 for axes, shape in zip(KV_CACHE_AXES, shapes))
