"""`coderl plan`: ahead-of-time compilation for a TPU topology on this CPU machine, and the shipped
paper-scale configs. The compile test needs libtpu (pip install 'coderl-jax[tpu]', or
TPU_LIBRARY_PATH pointing at a libtpu.so); it is skipped without it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coderl_jax.models.config import ModelConfig
from coderl_jax.train.config_util import load_config_file
from coderl_jax.plan import ACCELERATOR_TYPES, PlanError, find_libtpu, model_config_path, parse_topology

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(REPO.glob("configs/qwen25_coder_*.py"))

TINY_MODEL = {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 512,
              "eos_token_id": 1, "tie_word_embeddings": True, "max_position_embeddings": 1024}
SMALL_CONFIG = """
from coderl_jax.rl.train_step import LossConfig
from coderl_jax.train.config import DataConfig, EvalConfig, MeshConfig, RolloutConfig, TrainConfig
config = TrainConfig(eval=EvalConfig(every=1, max_problems=8),model={model!r}, topology="v5p:2x2x1", param_dtype="float32", dtype="bfloat16",
    updates_per_step=2, micro_batches=2, data=DataConfig(train_path="unused.jsonl", max_prompt_tokens=16),
    packed_lengths=(16, 32), rollout=RolloutConfig(prompts_per_step=8, group_size=4, max_new_tokens=8,
                          cache_dtype="bfloat16", prompts_per_generate=4, prompt_buckets=(8, 16), decode_slots=8),
    loss=LossConfig(kl_coef=0.001, remat=True), mesh=MeshConfig(data=1, fsdp=-1, tensor=1))
"""


def test_parse_topology():
    name, chip, chips = parse_topology("v5p:4x4x4")
    assert (name, chip.name, chip.hbm_gib, chips) == ("v5p:4x4x4", "TPU v5p", 95, 64)
    name, chip, chips = parse_topology("v5p-64")
    assert (name, chips, chip.hbm_gib) == ("v5p:2x4x4", 32, 95)
    name, chip, chips = parse_topology("v6e-64")
    assert (name, chips, chip.hbm_gib) == ("v6e:8x8", 64, 32)
    assert parse_topology("v5e:4x4")[1].hbm_gib == 16
    for accel, topo in ACCELERATOR_TYPES.items():  # v4/v5p count TensorCores (2 per chip), v5e/v6e chips
        per_chip = 2 if accel.startswith(("v4", "v5p")) else 1
        assert parse_topology(topo)[2] * per_chip == int(accel.rsplit("-", 1)[1]), accel
    with pytest.raises(PlanError, match="expected e.g."):
        parse_topology("tpu:8")


def test_paper_model_configs_are_shipped():
    c7 = ModelConfig.from_file(model_config_path("models/Qwen2.5-Coder-7B-Instruct"))
    assert (c7.hidden_size, c7.num_layers, c7.num_heads, c7.num_kv_heads, c7.intermediate_size) == (3584, 28, 28, 4,
                                                                                                      18944)
    assert c7.attention_bias and not c7.tie_word_embeddings and c7.rope_theta == 1e6
    assert round(c7.num_params() / 1e9, 2) == 7.62
    c15 = ModelConfig.from_file(model_config_path("Qwen2.5-Coder-1.5B-Instruct"))
    assert (c15.hidden_size, c15.num_heads, c15.num_kv_heads, c15.intermediate_size, c15.vocab_size) == (
        1536, 12, 2, 8960, 151936)
    assert c15.tie_word_embeddings and round(c15.num_params() / 1e9, 2) == 1.54
    with pytest.raises(PlanError, match="no config.json"):
        model_config_path("models/nonexistent-model")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_configs_have_the_papers_hyperparameters(path):
    cfg = load_config_file(path)
    r, o, loss = cfg.rollout, cfg.optim, cfg.loss
    assert (r.prompts_per_step, r.group_size, r.temperature, r.top_p) == (128, 8, 1.0, 1.0)
    assert (cfg.data.max_prompt_tokens, r.max_new_tokens) == (1024, 8192)
    assert (o.learning_rate, o.schedule, o.weight_decay, o.grad_clip) == (1e-6, "constant", 0.01, 1.0)
    assert (loss.kl_coef, loss.kl_kind, loss.clip_low, loss.clip_high, loss.clip_c, loss.agg) == (
        0.001, "k3", 0.2, 0.2, 3.0, "token-mean")
    assert cfg.updates_per_step == 2 and cfg.alignment.mode == "coderl" and cfg.alignment.alpha == 0.6
    a = cfg.alignment  # the official code's alignment rules (docs/paper.md)
    assert (a.k, a.targets, a.harvest_calls, a.prompt, a.check_determinism, a.max_value_chars, a.record_input) == (
        3, "official", False, "official", False, 0, "first")
    assert (a.reward, a.buffer_size, a.buffer_strategy, a.harvest_timeout_s) == ("official", 20_000, "recent", 5.0)
    _, _, chips = parse_topology(cfg.topology)
    m = cfg.mesh
    assert m.data * m.fsdp * m.tensor == chips, "the mesh covers the topology"
    groups = m.data * m.fsdp
    micro_rows = r.prompts_per_step * r.group_size // cfg.updates_per_step // cfg.micro_batches
    assert micro_rows % groups == 0 and r.prompts_per_generate % groups == 0
    assert model_config_path(cfg.model).exists()


needs_libtpu = pytest.mark.skipif(find_libtpu() is None, reason="libtpu not installed (pip install 'coderl-jax[tpu]')")


@needs_libtpu
def test_plan_compiles_a_small_config_for_a_small_topology(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(TINY_MODEL))
    config = tmp_path / "small.py"
    config.write_text(SMALL_CONFIG.format(model=str(tmp_path / "model")))
    env = {**os.environ, "TPU_LIBRARY_PATH": find_libtpu()}
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_PLATFORMS", None)
    proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "plan", "--config", str(config), "--json",
                           str(tmp_path / "plan.json")], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    out = proc.stdout
    assert "on v5p:2x2x1 (4 chips" in out and "fits: YES" in out and "FLOPs per step" in out
    rep = json.loads((tmp_path / "plan.json").read_text())
    assert rep["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and rep["fits"]
    cfg = ModelConfig.from_hf(TINY_MODEL)
    # float32 parameters split 4 ways over fsdp (the norms, 64 wide, split too): about a quarter each
    assert rep["resident"]["params"] == pytest.approx(cfg.num_params() * 4 / 4, rel=0.05)
    assert rep["resident"]["optimizer"] == pytest.approx(2 * rep["resident"]["params"], rel=0.01)  # Adam mu, nu
    # KL on: the reference policy in the compute dtype (bfloat16): half the float32 parameters
    assert rep["resident"]["reference_params"] == pytest.approx(rep["resident"]["params"] / 2, rel=0.01)
    for name in ("rollout", "scoring", "update"):
        prog = rep["programs"][name]
        assert prog["temporaries"] > 0 and prog["flops_per_call"] > 0
        assert prog["peak"] == sum(rep["resident"].values()) + prog["added"]
    # the update's FLOPs are of the order of 6 x params x tokens per chip (plus attention, remat)
    tokens = rep["mini_batch_rows"] * rep["sequence_length"]
    ideal = 6 * cfg.num_params() * tokens / rep["chips"]
    assert 0.5 * ideal < rep["programs"]["update"]["flops_per_call"] < 4 * ideal
    assert rep["programs"]["rollout"]["kv_cache"] > 0 and rep["step_s"] > 0
    # the reshard writes the sampler's copy: on v5p-8's 4 chips with no tensor axis, a full copy per chip
    assert rep["programs"]["reshard"]["outputs"] >= rep["programs"]["rollout"]["sampler_params"] > 0
    assert math.isclose(rep["hbm_gib"], 95)
    # the declared shapes: update and scoring at the longest packed length, the rollout through 8
    # refilled rows for the longest prompt bucket, every program the run compiles counted
    assert rep["sequence_length"] == 32 and rep["packed_lengths"] == {"declared": True, "lengths": [16, 32]}
    assert rep["programs"]["rollout"]["decode"] == "generate_refill" and rep["rollout_prompt_buckets"] == [8, 16]
    # scoring: two lengths, for the trainer's float32 weights and for the bfloat16 reference
    assert rep["programs_to_compile"] == {"rollout": 2, "reshard": 1, "scoring": 4, "update": 2, "eval": 2}
    assert rep["programs"]["eval"]["temporaries"] > 0 and "evaluation's generation" in out
    assert "programs a run compiles" in out and "declared packed length [16, 32]" in out


@needs_libtpu
def test_plan_puts_splash_attention_in_the_update_and_scoring(tmp_path):
    # head_dim 128 and packed lengths that are whole 128-token tiles: the update and scoring attend
    # with the Pallas splash kernel, and hold fewer temporaries than with the XLA kernel
    model = {**TINY_MODEL, "hidden_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(model))
    config = tmp_path / "small.py"
    config.write_text(SMALL_CONFIG.format(model=str(tmp_path / "model"))
                      .replace("packed_lengths=(16, 32)", "packed_lengths=(128, 256)")
                      .replace("max_prompt_tokens=16", "max_prompt_tokens=64").replace("max_new_tokens=8", "max_new_tokens=64")
                      .replace("prompt_buckets=(8, 16)", "prompt_buckets=(64,)")
                      .replace("EvalConfig(every=1, max_problems=8)", "EvalConfig(every=0)"))
    env = {**os.environ, "TPU_LIBRARY_PATH": find_libtpu()}
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_PLATFORMS", None)
    reps = {}
    for kernel in ("auto", "xla"):
        proc = subprocess.run([sys.executable, "-m", "coderl_jax.cli", "plan", "--config", str(config), "--json",
                               str(tmp_path / f"{kernel}.json"), f"attention={kernel}"], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
        assert "persistent compilation cache" not in proc.stderr  # the plan reads no cache it cannot load
        reps[kernel] = json.loads((tmp_path / f"{kernel}.json").read_text())
    splash, xla = reps["auto"], reps["xla"]
    assert splash["attention"] == "splash" and xla["attention"] == "xla"
    for name in ("update", "scoring"):
        assert splash["programs"][name]["pallas_kernels"] > 0 and xla["programs"][name]["pallas_kernels"] == 0
        assert splash["programs"][name]["temporaries"] < xla["programs"][name]["temporaries"], name
    assert splash["programs"]["rollout"]["pallas_kernels"] == 0  # the decode keeps its cached attention
