"""`coderl generate` end to end on a tiny local model with the byte tokenizer."""

from __future__ import annotations

import json

import pytest

from coderl_jax import cli
from coderl_jax.models.tiny import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("cli") / "tiny")


def test_generate_json(model_dir, capsys):
    rc = cli.main(["generate", "--model", str(model_dir), "--prompt", "print(", "--n", "2",
                   "--max-new-tokens", "6", "--temperature", "1", "--top-k", "20", "--seed", "3", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert len(out["completions"]) == 2
    for c in out["completions"]:
        assert set(c) == {"text", "token_ids", "logprobs", "finish_reason"}
        assert isinstance(c["text"], str) and len(c["token_ids"]) == len(c["logprobs"]) <= 6
        assert c["finish_reason"] in ("eos", "stop", "length")


def test_generate_greedy_is_deterministic_and_long_prompt_fails(model_dir, capsys):
    args = ["generate", "--model", str(model_dir), "--prompt", "abc", "--max-new-tokens", "5",
            "--temperature", "0", "--json"]
    assert cli.main(args + ["--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert cli.main(args + ["--seed", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == first
    rc = cli.main(["generate", "--model", str(model_dir), "--prompt", "x" * 40, "--max-cache-len", "32",
                   "--max-new-tokens", "4"])
    assert rc == 2
    assert "exceeds the context" in capsys.readouterr().err
