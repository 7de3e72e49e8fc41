"""The parameters of a training checkpoint: the format `coderl export` reads.

A params checkpoint is a step directory of `coderl_jax.train.checkpointing` (or one written by
`save_params`):

    CKPT/                 e.g. <out_dir>/checkpoints/<step>
      params/             the params dict saved by orbax (StandardSave / StandardCheckpointer)
      model_config.json   the model's config in Hugging Face form (ModelConfig.to_hf()); looked up
                          in CKPT, then in its parent (training writes it once per run there);
                          config.json is accepted too
      tokenizer files     optional (tokenizer.json, tokenizer_config.json, ...), copied on export

A checkpoints root (numbered step directories) stands for its latest step.
`load_params` reads the params back, directly onto a mesh when one is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp

from coderl_jax.models.config import ModelConfig
from coderl_jax.models.hf_io import CONFIG_FILE, CheckpointError, check_params, read_config
from coderl_jax.models.sharding import param_shardings
from coderl_jax.models.transformer import param_shapes
from coderl_jax.parallel.rules import Rules

MODEL_CONFIG_FILE = "model_config.json"
PARAMS_DIR = "params"


def resolve_step_dir(path: str | Path) -> Path | None:
    """The step directory holding params/: `path` itself or, for a checkpoints root, its latest step."""
    path = Path(path).absolute()
    if (path / PARAMS_DIR).is_dir():
        return path
    steps = [p for p in path.iterdir() if p.name.isdigit() and (p / PARAMS_DIR).is_dir()] if path.is_dir() else []
    return max(steps, key=lambda p: int(p.name)) if steps else None


def find_model_config(step_dir: Path) -> Path:
    for directory in (step_dir, step_dir.parent):
        for name in (MODEL_CONFIG_FILE, CONFIG_FILE):
            if (directory / name).exists():
                return directory / name
    return step_dir / MODEL_CONFIG_FILE  # from_file reports it missing


def save_params(ckpt_dir: str | Path, cfg: ModelConfig, params: dict) -> Path:
    """Write `params` and the config as a params checkpoint (collective in a multi-host job)."""
    import orbax.checkpoint as ocp

    ckpt_dir = Path(ckpt_dir).absolute()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(ckpt_dir / PARAMS_DIR, params)
        checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        (ckpt_dir / MODEL_CONFIG_FILE).write_text(json.dumps(cfg.to_hf(), indent=2) + "\n")
    return ckpt_dir


def load_params(ckpt_dir: str | Path, *, mesh: jax.sharding.Mesh | None = None, rules: Rules | None = None,
                param_dtype=None, dtype=None) -> tuple[ModelConfig, dict]:
    """Read a params checkpoint as (config, params), placed on `mesh` with `rules` when given."""
    import orbax.checkpoint as ocp

    ckpt_dir = resolve_step_dir(ckpt_dir) or Path(ckpt_dir).absolute()
    config_file = find_model_config(ckpt_dir)
    cfg = read_config(config_file, param_dtype=param_dtype, dtype=dtype)
    shardings = param_shardings(cfg, mesh, rules)
    target = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, jnp.dtype(cfg.param_dtype), sharding=sh),
                          param_shapes(cfg), shardings)
    if not (ckpt_dir / PARAMS_DIR).is_dir():
        raise CheckpointError(f"{ckpt_dir / PARAMS_DIR}: not found (expected an orbax params checkpoint)")
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            metadata = checkpointer.metadata(ckpt_dir / PARAMS_DIR).item_metadata.tree
        except Exception as e:  # missing or corrupt orbax metadata
            raise CheckpointError(f"{ckpt_dir / PARAMS_DIR}: not a readable orbax checkpoint ({e})") from None
        check_params(cfg, metadata, source=f"{ckpt_dir / PARAMS_DIR} (config {config_file})")
        params = checkpointer.restore(ckpt_dir / PARAMS_DIR, target)
    return cfg, params
