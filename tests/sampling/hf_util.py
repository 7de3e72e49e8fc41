"""Tiny random transformers models for the sampler tests, loaded into ours with `load_hf`.

Reuses tests/models/hf_fixtures.py (the parity models: Qwen2 tied with bias, Qwen3 with q/k norm
and head_dim != hidden/heads, Llama with llama3 rope scaling; weights normal(0, 0.1)).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from hf_fixtures import build  # noqa: E402

FAMILIES = ("qwen2_tied", "qwen3", "llama")


def load(name: str, path):
    """(transformers model, our cfg, our params) for a parity model written to `path`."""
    from coderl_jax.models.hf_io import load_hf

    hf = build(name, path)
    cfg, params = load_hf(path)
    return hf.torch_model, cfg, params
