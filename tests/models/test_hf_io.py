"""Hugging Face import/export: exact round trips, file layout, the export CLI, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from hf_fixtures import random_params
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from coderl_jax.cli import main as coderl
from coderl_jax.models import checkpoint, hf_io
from coderl_jax.models.config import ConfigError, ModelConfig

CFG = ModelConfig(family="qwen3", vocab_size=128, hidden_size=32, intermediate_size=64, num_layers=2,
                  num_heads=4, num_kv_heads=2, head_dim=16, qk_norm=True, attention_bias=True,
                  bos_token_id=1, eos_token_ids=(2, 3), pad_token_id=0)


def assert_same_params(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def params():
    return random_params(CFG)


@pytest.fixture
def model_dir(tmp_path, params):
    """A torch-free HF directory written by save_hf (tokenizer files copied from a fake source)."""
    src = tmp_path / "tok"
    src.mkdir()
    (src / "tokenizer.json").write_text('{"fake": true}')
    (src / "tokenizer_config.json").write_text("{}")
    return hf_io.save_hf(CFG, params, tmp_path / "model", tokenizer_dir=src)


# ------------------------------------------------------------------------------------------------
# Round trips and layout


def test_round_trip_is_exact(model_dir, params, tmp_path):
    cfg, loaded = hf_io.load_hf(model_dir)
    assert cfg == CFG
    assert_same_params(loaded, params)
    again = hf_io.save_hf(cfg, loaded, tmp_path / "again")
    assert_same_params(hf_io.load_hf(again)[1], params)


def test_layout_tokenizer_and_generation_config(model_dir):
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"]
    gen = json.loads((model_dir / "generation_config.json").read_text())
    assert gen == {"bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": 0}
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    with safe_open(str(model_dir / "model.safetensors"), "numpy") as f:
        assert f.metadata() == {"format": "pt"}
        # HF layout: linear weights [out, in]
        assert f.get_slice("model.layers.0.self_attn.q_proj.weight").get_shape() == [64, 32]
        assert f.get_slice("model.layers.1.self_attn.k_proj.bias").get_shape() == [32]


def test_sharded_files_and_bfloat16(params, tmp_path):
    out = hf_io.save_hf(CFG, params, tmp_path / "m", max_shard_bytes=10_000, dtype="bfloat16")
    index = json.loads((out / hf_io.INDEX_FILE).read_text())
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(files) > 2 and sorted(set(index["weight_map"].values())) == files
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    cfg, loaded = hf_io.load_hf(out, param_dtype="bfloat16")
    want = jax.tree.map(lambda x: x.astype("bfloat16"), params)
    assert_same_params(loaded, want)
    # float32 load of bfloat16 files converts on the fly
    assert jax.tree.leaves(hf_io.load_hf(out)[1])[0].dtype == np.float32


def test_existing_output_needs_overwrite(params, model_dir):
    with pytest.raises(FileExistsError, match="not empty"):
        hf_io.save_hf(CFG, params, model_dir)
    hf_io.save_hf(CFG, params, model_dir, overwrite=True)
    assert (model_dir / "model.safetensors").exists() and not (model_dir / "tokenizer.json").exists()


def test_save_rejects_params_that_do_not_match_config(params, tmp_path):
    bad = jax.tree.map(lambda x: x, params)
    del bad["layers"][1]["mlp"]["up_proj"]
    with pytest.raises(hf_io.CheckpointError, match="layers/1/mlp/up_proj"):
        hf_io.save_hf(CFG, bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# Export CLI


def test_export_cli_from_hf_dir(model_dir, tmp_path, capsys):
    assert coderl(["export", "--model", str(model_dir), "--out", str(tmp_path / "bf"), "--dtype", "bfloat16"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "bf" / "tokenizer.json").exists()
    with safe_open(str(tmp_path / "bf" / "model.safetensors"), "numpy") as f:
        assert f.get_slice("model.embed_tokens.weight").get_dtype() == "BF16"


def test_export_cli_from_params_checkpoint(params, tmp_path):
    ckpt = checkpoint.save_params(tmp_path / "step_10", CFG, params)
    (ckpt / "tokenizer.json").write_text("{}")
    out = tmp_path / "hf"
    assert coderl(["export", "--model", str(ckpt), "--out", str(out), "--max-shard-size", "20KB"]) == 0
    assert (out / hf_io.INDEX_FILE).exists() and (out / "tokenizer.json").exists()
    cfg, loaded = hf_io.load_hf(out)
    assert cfg == CFG
    assert_same_params(loaded, params)


def test_export_cli_from_training_checkpoints(params, tmp_path):
    """The layout train/checkpointing.py writes: model_config.json at the root, <step>/params."""
    from coderl_jax.train.checkpointing import Checkpointer

    root = tmp_path / "checkpoints"
    ckpt = Checkpointer(root, async_save=False)
    ckpt.write_model_config(CFG.to_hf())
    (root / "tokenizer.json").write_text('{"fake": true}')  # where the loop writes the tokenizer
    older = jax.tree.map(lambda x: x + 1, params)
    ckpt.save(1, params=older, opt_state={"count": np.zeros(())}, rng=jax.random.key(0))
    ckpt.save(2, params=params, opt_state={"count": np.ones(())}, rng=jax.random.key(0))
    ckpt.close()
    assert coderl(["export", "--model", str(root), "--out", str(tmp_path / "latest")]) == 0
    assert_same_params(hf_io.load_hf(tmp_path / "latest")[1], params)
    assert coderl(["export", "--model", str(root / "1"), "--out", str(tmp_path / "first")]) == 0
    assert_same_params(hf_io.load_hf(tmp_path / "first")[1], jax.tree.map(np.asarray, older))
    # the exported directory carries the run's tokenizer, found beside the step directories
    for out in ("latest", "first"):
        assert (tmp_path / out / "tokenizer.json").read_text() == '{"fake": true}'


def test_export_cli_reports_bad_source(tmp_path, capsys):
    assert coderl(["export", "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "config.json" in err


def test_no_torch_at_run_time(model_dir, tmp_path, params):
    ckpt = checkpoint.save_params(tmp_path / "ckpt", CFG, params)
    script = textwrap.dedent(f"""
        import sys
        from coderl_jax.cli import main
        from coderl_jax.models import hf_io
        cfg, params = hf_io.load_hf({str(model_dir)!r})
        hf_io.save_hf(cfg, params, {str(tmp_path / "o1")!r})
        assert main(["export", "--model", {str(ckpt)!r}, "--out", {str(tmp_path / "o2")!r}]) == 0
        assert "torch" not in sys.modules, "torch imported"
        print("ok")
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# Bad input: each error names the file and the field or tensor, and nothing is returned


def _edit_config(model_dir, **changes):
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg.update(changes)
    (model_dir / "config.json").write_text(json.dumps(cfg))


def _edit_tensors(model_dir, edit):
    path = model_dir / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_missing_config(model_dir):
    (model_dir / "config.json").unlink()
    with pytest.raises(ConfigError, match=f"{model_dir / 'config.json'}: file not found"):
        hf_io.load_hf(model_dir)


def test_corrupt_config_json(model_dir):
    (model_dir / "config.json").write_text('{"hidden_size": 32,')
    with pytest.raises(ConfigError, match=f"{model_dir / 'config.json'}: not valid JSON"):
        hf_io.load_hf(model_dir)


def test_unsupported_architecture(model_dir):
    _edit_config(model_dir, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(ConfigError, match=r"config.json: unsupported architecture.*GPT2LMHeadModel"):
        hf_io.load_hf(model_dir)


def test_missing_field(model_dir):
    _edit_config(model_dir, num_hidden_layers=None)
    with pytest.raises(ConfigError, match=r"config.json: missing required field 'num_hidden_layers'"):
        hf_io.load_hf(model_dir)


def test_missing_tensor(model_dir):
    _edit_tensors(model_dir, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(hf_io.CheckpointError, match=r"model.safetensors: missing tensor 'model.layers.1.mlp.up_proj.weight'"):
        hf_io.load_hf(model_dir)


def test_missing_lm_head_of_untied_model(model_dir):
    _edit_tensors(model_dir, lambda t: t.pop("lm_head.weight"))
    with pytest.raises(hf_io.CheckpointError, match="'lm_head.weight'.*tie_word_embeddings=false"):
        hf_io.load_hf(model_dir)


def test_shape_mismatch(model_dir):
    _edit_config(model_dir, intermediate_size=96)
    with pytest.raises(hf_io.CheckpointError,
                       match=r"model.safetensors: tensor 'model.layers.0.mlp.(gate|up|down)_proj.weight' has shape "
                             r"\[\d+, \d+\], .*config.json implies"):
        hf_io.load_hf(model_dir)


def test_unexpected_tensor_and_harmless_buffers(model_dir):
    _edit_tensors(model_dir, lambda t: t.update({"model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(8, np.float32)}))
    hf_io.load_hf(model_dir)  # old exporters' rotary buffers are ignored
    _edit_tensors(model_dir, lambda t: t.update({"model.layers.0.mlp.extra.weight": np.ones(8, np.float32)}))
    with pytest.raises(hf_io.CheckpointError, match="model.safetensors: unexpected tensor 'model.layers.0.mlp.extra.weight'"):
        hf_io.load_hf(model_dir)


def test_tied_model_with_lm_head(tmp_path):
    cfg = CFG.replace(tie_word_embeddings=True)
    out = hf_io.save_hf(cfg, random_params(cfg, 1), tmp_path / "tied")
    _edit_tensors(out, lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"].copy()}))
    hf_io.load_hf(out)  # a copy of the embeddings is accepted
    _edit_tensors(out, lambda t: t.update({"lm_head.weight": t["model.embed_tokens.weight"] + 1}))
    with pytest.raises(hf_io.CheckpointError, match="'lm_head.weight' differs from 'model.embed_tokens.weight'"):
        hf_io.load_hf(out)


@pytest.mark.parametrize("cut", ["data", "header"])
def test_truncated_safetensors(model_dir, cut):
    path = model_dir / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100] if cut == "data" else data[:20])
    with pytest.raises(hf_io.CheckpointError, match=f"{path}: not a readable safetensors file"):
        hf_io.load_hf(model_dir)


def test_no_weights(model_dir):
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(hf_io.CheckpointError, match=f"{model_dir}: no model.safetensors"):
        hf_io.load_hf(model_dir)


def test_sharded_index_problems(params, tmp_path):
    out = hf_io.save_hf(CFG, params, tmp_path / "m", max_shard_bytes=10_000)
    index = out / hf_io.INDEX_FILE
    data = json.loads(index.read_text())
    first = sorted(out.glob("*.safetensors"))[0]
    first.rename(out / "moved.safetensors")
    with pytest.raises(hf_io.CheckpointError, match=f"{index}: lists '{first.name}', which does not exist"):
        hf_io.load_hf(out)
    index.write_text("{not json")
    with pytest.raises(hf_io.CheckpointError, match=f"{index}: not a valid safetensors index"):
        hf_io.load_hf(out)
    (out / "moved.safetensors").rename(first)
    data["weight_map"]["model.norm.weight"] = first.name  # listed in a file that lacks it
    index.write_text(json.dumps(data))
    with pytest.raises(hf_io.CheckpointError, match=f"{first}: tensor 'model.norm.weight', listed in"):
        hf_io.load_hf(out)


def test_params_checkpoint_with_wrong_config(params, tmp_path):
    ckpt = checkpoint.save_params(tmp_path / "ckpt", CFG, params)
    _edit_config_file = ckpt / checkpoint.MODEL_CONFIG_FILE
    hf = json.loads(_edit_config_file.read_text())
    hf["intermediate_size"] = 96
    _edit_config_file.write_text(json.dumps(hf))
    with pytest.raises(hf_io.CheckpointError, match=r"params \(config .*model_config.json\): "
                                                     r"layers/0/mlp/down_proj has shape \[64, 32\], the config implies \[96, 32\]"):
        checkpoint.load_params(ckpt)
