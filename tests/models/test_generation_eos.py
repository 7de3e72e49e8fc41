"""Every end-of-sequence id of a checkpoint is honoured: config.json's and generation_config.json's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coderl_jax.models.config import ConfigError, ModelConfig

MODELS = Path(__file__).resolve().parents[2] / "coderl_jax" / "configs" / "models"

BASE = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 64, "hidden_size": 16,
        "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "eos_token_id": 5}


def _model_dir(tmp_path, generation=None) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(BASE))
    if generation is not None:
        (tmp_path / "generation_config.json").write_text(json.dumps(generation))
    return tmp_path


@pytest.mark.parametrize("name", ["Qwen2.5-Coder-1.5B-Instruct", "Qwen2.5-Coder-7B-Instruct"])
def test_shipped_qwen_configs_stop_on_im_end_and_endoftext(name):
    assert ModelConfig.from_file(MODELS / name).eos_token_ids == (151645, 151643)


def test_generation_config_adds_its_ids_after_config_json(tmp_path):
    assert ModelConfig.from_file(_model_dir(tmp_path, {"eos_token_id": [7, 5]})).eos_token_ids == (5, 7)
    (tmp_path / "same").mkdir()
    assert ModelConfig.from_file(_model_dir(tmp_path / "same", {"eos_token_id": 5})).eos_token_ids == (5,)


def test_without_generation_config_only_config_json(tmp_path):
    assert ModelConfig.from_file(_model_dir(tmp_path)).eos_token_ids == (5,)


def test_a_bad_generation_config_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="generation_config.json"):
        ModelConfig.from_file(_model_dir(tmp_path, {"eos_token_id": "end"}))
