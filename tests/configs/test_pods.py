"""The paper-scale table (coderl_jax/configs/pods.py) builds what the six per-pod config files built
before it replaced them; the paper's shared setting is checked in tests/plan/test_plan.py."""

from __future__ import annotations

import pytest

from coderl_jax.configs.pods import PODS, pod_config
from coderl_jax.train.config_util import load_config

# recorded from configs/qwen25_coder_*.py as they were before the table (the last field was
# prompts_per_generate then: each call's prompts x 8 samples are now the rows decoding at once):
# model, topology, mesh (data, fsdp, tensor), micro_batches, prompts per call before
BEFORE = {
    "qwen25_coder_1p5b_v5p8": ("models/Qwen2.5-Coder-1.5B-Instruct", "v5p:2x2x1", (1, 4, 1), 64, 32),
    "qwen25_coder_1p5b_v5p64": ("models/Qwen2.5-Coder-1.5B-Instruct", "v5p:2x4x4", (1, 32, 1), 16, 128),
    "qwen25_coder_1p5b_v6e64": ("models/Qwen2.5-Coder-1.5B-Instruct", "v6e:8x8", (1, 32, 2), 16, 64),
    "qwen25_coder_7b_v5p8": ("models/Qwen2.5-Coder-7B-Instruct", "v5p:2x2x1", (1, 4, 1), 128, 8),
    "qwen25_coder_7b_v5p64": ("models/Qwen2.5-Coder-7B-Instruct", "v5p:2x4x4", (1, 32, 1), 16, 32),
    "qwen25_coder_7b_v6e64": ("models/Qwen2.5-Coder-7B-Instruct", "v6e:8x8", (1, 16, 4), 32, 32),
}


def test_the_table_has_the_six_configs():
    assert sorted(PODS) == sorted(BEFORE)


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_pod_config_builds_what_its_file_built(name):
    cfg = load_config(name)
    assert cfg == pod_config(name)
    model, topology, mesh, micro_batches, prompts_per_call = BEFORE[name]
    assert (cfg.model, cfg.topology, cfg.out_dir) == (model, topology, f"runs/{name}")
    assert (cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor) == mesh
    assert cfg.micro_batches == micro_batches
    # one sampler call of all 128 prompts, through as many rows as a call decoded before
    assert (cfg.rollout.prompts_per_generate, cfg.rollout.decode_slots) == (0, prompts_per_call * 8)
    # the declared shapes: one rollout program, three packed lengths
    assert cfg.rollout.prompt_buckets == (1024,) and cfg.packed_lengths == (2048, 4096, 9216)
    # the paper's setting, unchanged by the row
    assert (cfg.steps, cfg.updates_per_step, cfg.checkpoint_every, cfg.keep_checkpoints) == (656, 2, 10, 3)
    assert (cfg.data.train_path, cfg.data.eval_path, cfg.data.suite) == (
        "data/prime_code/train.parquet", "data/prime_code/validation.jsonl", None)
    assert (cfg.param_dtype, cfg.dtype, cfg.rollout.cache_dtype, cfg.loss.remat) == (
        "float32", "bfloat16", "bfloat16", True)
    assert (cfg.eval.every, cfg.eval.max_problems, cfg.eval.temperature) == (10, 512, 0.0)


def test_unknown_pod_names_the_table():
    with pytest.raises(KeyError, match="qwen25_coder_7b_v5p64"):
        pod_config("qwen25_coder_7b_v5p16")
