"""Mesh construction and sharding rules; the 8-device cases run in a subprocess.

The multi-device checks live in multidevice_cases.py and need
XLA_FLAGS=--xla_force_host_platform_device_count=8 before JAX starts, so one test here runs them
with pytest in a fresh process. The rest uses abstract meshes (no devices needed).
"""

from __future__ import annotations

from pathlib import Path

import jax
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from coderl_jax.models import sharding
from coderl_jax.models.config import ModelConfig
from coderl_jax.parallel import AXES, SAMPLE_RULES, TRAIN_RULES, MeshError, batch_sharding, make_mesh
from coderl_jax.parallel.mesh import resolve_axis_sizes
from coderl_jax.parallel.simulated import run_pytest_on_simulated_devices

CFG = ModelConfig(family="qwen2", vocab_size=512, hidden_size=64, intermediate_size=96, num_layers=1,
                  num_heads=6, num_kv_heads=2, head_dim=16, attention_bias=True)


def specs(cfg, shape, rules):
    return jax.tree.map(lambda s: s.spec, sharding.param_shardings(cfg, AbstractMesh(shape, AXES), rules))


def test_resolve_axis_sizes():
    assert resolve_axis_sizes({"data": 2, "fsdp": -1, "tensor": 2}, 8) == {"data": 2, "fsdp": 2, "tensor": 2}
    with pytest.raises(MeshError, match="at most one"):
        resolve_axis_sizes({"data": -1, "fsdp": -1, "tensor": 1}, 8)
    with pytest.raises(MeshError, match="needs 4 devices, the job has 8"):
        resolve_axis_sizes({"data": 2, "fsdp": 2, "tensor": 1}, 8)
    with pytest.raises(MeshError, match="not divisible"):
        resolve_axis_sizes({"data": 3, "fsdp": -1, "tensor": 1}, 8)
    with pytest.raises(MeshError, match="positive"):
        resolve_axis_sizes({"data": 0, "fsdp": -1, "tensor": 1}, 8)


def test_make_mesh_on_this_host():
    mesh = make_mesh(fsdp=-1)
    assert mesh.axis_names == AXES and mesh.size == jax.device_count()
    with pytest.raises(MeshError):
        make_mesh(data=jax.device_count() + 1, fsdp=1)


def test_training_rules_split_fsdp_and_tensor():
    s = specs(CFG, (1, 2, 2), TRAIN_RULES)
    attn, mlp = s["layers"][0]["self_attn"], s["layers"][0]["mlp"]
    assert s["embed_tokens"] == P("tensor", "fsdp") and s["lm_head"] == P("fsdp", "tensor")
    assert attn["q_proj"] == P("fsdp", "tensor") and attn["o_proj"] == P("tensor", "fsdp")
    assert attn["k_proj"] == P("fsdp", "tensor") and attn["k_bias"] == P("tensor")
    assert mlp["down_proj"] == P("tensor", "fsdp")
    assert s["norm"]["weight"] == P(None)


def test_sampling_rules_have_no_fsdp():
    s = specs(CFG, (1, 2, 2), SAMPLE_RULES)
    assert s["layers"][0]["self_attn"]["q_proj"] == P(None, "tensor")
    assert s["embed_tokens"] == P("tensor", None)
    assert "fsdp" not in str(jax.tree.leaves(s, is_leaf=lambda x: isinstance(x, P)))


def test_indivisible_dimensions_are_replicated():
    # tensor=4: 6 heads, 2 kv heads and intermediate 96 (divisible) -> only mlp and vocab split;
    # fsdp=3 does not divide hidden 64 -> replicated
    s = specs(CFG, (1, 1, 4), TRAIN_RULES)
    attn = s["layers"][0]["self_attn"]
    assert attn["q_proj"] == P(None, None) and attn["k_proj"] == P(None, None)
    assert s["layers"][0]["mlp"]["gate_proj"] == P(None, "tensor")
    assert specs(CFG, (1, 3, 1), TRAIN_RULES)["layers"][0]["mlp"]["up_proj"] == P(None, None)


def test_batch_sharding():
    mesh = AbstractMesh((2, 2, 2), AXES)
    assert batch_sharding(mesh, (8, 16)).spec == P(("data", "fsdp"), None)
    assert batch_sharding(mesh, (2, 16)).spec == P(None, None)  # 2 rows over 4 groups: replicated


def test_multidevice_cases_in_subprocess():
    here = Path(__file__).parent
    rc, out = run_pytest_on_simulated_devices(here / "multidevice_cases.py", pythonpath=[here.parent / "models"])
    assert rc == 0, out
