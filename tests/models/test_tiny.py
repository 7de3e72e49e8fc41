"""The tiny random model in the cache (`tiny_cpu`'s `tiny-random`): built atomically, so processes
that start together on a fresh machine do not race."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

BUILD = ("import sys\n"
         "from coderl_jax.models.tiny import default_model_dir\n"
         "print(default_model_dir())\n")


def test_concurrent_builders_into_an_empty_cache_all_succeed(tmp_path):
    """Four processes (started with subprocess: never fork after JAX is initialised) build the model
    at once into an empty cache; every one returns the same directory, which loads, and no
    temporary directory is left behind."""
    cache = tmp_path / "cache"
    env = {**os.environ, "CODERL_CACHE": str(cache), "JAX_PLATFORMS": "cpu", "CODERL_COMPILE_CACHE": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert {out.strip().splitlines()[-1] for out, _ in outs} == {str(cache / "tiny-random-qwen2")}
    assert sorted(p.name for p in cache.iterdir()) == ["tiny-random-qwen2"]

    from coderl_jax.models.hf_io import load_hf, load_tokenizer
    from coderl_jax.models.tiny import make_tiny_model

    cfg, params = load_hf(cache / "tiny-random-qwen2")
    assert cfg.num_layers == 2 and cfg.hidden_size == 64
    assert load_tokenizer(cache / "tiny-random-qwen2").decode([104, 105]) == "hi"
    # every builder wrote the same bytes (seed 0), so whichever won, the model is the one a single build makes
    _, again = load_hf(make_tiny_model(tmp_path / "single"))
    np.testing.assert_array_equal(np.asarray(params["embed_tokens"]), np.asarray(again["embed_tokens"]))


def test_an_incomplete_leftover_is_replaced(tmp_path, monkeypatch):
    from coderl_jax.models.tiny import default_model_dir

    monkeypatch.setenv("CODERL_CACHE", str(tmp_path))
    stale = tmp_path / "tiny-random-qwen2"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")  # no config.json: an interrupted build
    path = default_model_dir()
    assert path == stale and (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-random-qwen2"]
    assert default_model_dir() == path  # built once: the second call only looks
