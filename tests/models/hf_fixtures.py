"""Tiny random Hugging Face models of each family, created with transformers (torch CPU).

Session-scoped: each model is built once, saved with save_pretrained, and its reference logits on
a left-padded batch are computed once with transformers in float32.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}
# name -> (config class name, architecture, extra config fields, save_pretrained max_shard_size)
MODELS = {
    "qwen2_tied": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=True), None),
    "qwen2_untied": ("Qwen2Config", "Qwen2ForCausalLM", dict(tie_word_embeddings=False), None),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(head_dim=32, tie_word_embeddings=False), None),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(rope_scaling=LLAMA3_SCALING, rope_theta=500000.0, tie_word_embeddings=False), None),
    "llama_sharded": ("LlamaConfig", "LlamaForCausalLM",
                      dict(rope_scaling=LLAMA3_SCALING, rope_theta=500000.0, tie_word_embeddings=False), "100KB"),
}


@dataclasses.dataclass
class HFModel:
    name: str
    path: object  # pathlib.Path of the save_pretrained directory
    torch_model: object
    ref_logits_btv: np.ndarray  # transformers float32 logits on `batch()`


def batch(vocab: int = 512, b: int = 3, t: int = 24, pads=(0, 5, 11), seed: int = 0):
    """Left-padded tokens_bt, mask_bt and positions_bt (0 at the first real token)."""
    rng = np.random.RandomState(seed)
    tokens = rng.randint(3, vocab, (b, t)).astype(np.int32)
    mask = np.arange(t)[None, :] >= np.asarray(pads)[:, None]
    tokens = np.where(mask, tokens, 0)
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    return tokens, mask, positions


def torch_logits(model, tokens, mask, positions) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long),
                    position_ids=torch.tensor(positions, dtype=torch.long))
    return out.logits.float().numpy()


def build(name: str, path) -> HFModel:
    import torch
    import transformers

    config_cls, arch, extra, shard = MODELS[name]
    config = getattr(transformers, config_cls)(**COMMON, **extra)
    config.architectures = [arch]
    torch.manual_seed(sum(map(ord, name)))
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for pname, p in model.named_parameters():
            p.normal_(0, 0.1)
            if pname.endswith("norm.weight"):
                p.add_(1.0)
    model.save_pretrained(path, **({"max_shard_size": shard} if shard else {}))
    return HFModel(name, path, model, torch_logits(model, *batch()))


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    """name -> HFModel, built lazily (a test that needs one family builds only that one)."""
    cache: dict[str, HFModel] = {}

    def get(name: str) -> HFModel:
        if name not in cache:
            cache[name] = build(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


def random_params(cfg, seed: int = 0) -> dict:
    """A params dict of numpy arrays without JAX compilation (fast): normal(0, 0.1) weights, RMSNorm
    weights (leaves named "weight") around 1."""
    import jax

    from coderl_jax.models.sharding import path_names
    from coderl_jax.models.transformer import param_shapes

    rng = np.random.default_rng(seed)

    def one(path, leaf):
        offset = 1.0 if path_names(path)[-1] == "weight" else 0.0
        return (offset + rng.normal(0, 0.1, leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(one, param_shapes(cfg))


def max_diff_valid(a_btv, b_btv, mask_bt) -> float:
    """Largest |a - b| over the valid (non-padding) positions."""
    return float(np.abs(np.asarray(a_btv, np.float32) - np.asarray(b_btv, np.float32))[np.asarray(mask_bt)].max())
