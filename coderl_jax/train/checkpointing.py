"""Training checkpoints with orbax: everything a killed run needs to continue exactly.

Layout under `<out_dir>/checkpoints/` (or `checkpoint_dir`: a local directory, a shared file system
or a gs:// path; on a multi-host job every process writes its own shards of the arrays and process 0
the rest, so the directory must be one that every host sees: `storage.check_shared` refuses one
that is not before anything is written):

    model_config.json        the policy's config (Hugging Face form), written once
    tokenizer files          the policy's tokenizer (tokenizer.json, ...), written once
    <step>/params/           parameters (orbax StandardSave; sharded arrays saved per shard)
    <step>/opt_state/        optimizer state
    <step>/meta/             JSON: step, rng key data, data-iterator state (one per process on a
                             multi-host job), alignment buffer, extra

`coderl export --model <out_dir>/checkpoints/<step>` turns one into a Hugging Face directory.
Saves are asynchronous (the loop continues while the arrays are written), keep the last K and
happen every N steps; a save is atomic, so a run killed mid-save resumes from the previous complete
step: on local disk orbax writes to a temporary directory and renames it, on gs:// (which has no
rename) it writes in place and marks the step complete with a `commit_success.txt` written last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from coderl_jax.remote import is_url
from coderl_jax.train import storage


def as_checkpoint_path(directory):
    """An epath.Path: cloud URLs (gs://...) as they are, local paths made absolute."""
    return storage.checkpoint_path(directory)


class Checkpointer:
    def __init__(self, directory: str | Path, *, keep: int = 3, every: int = 1, async_save: bool = True):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = storage.checkpoint_path(directory)
        if jax.process_index() == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
        storage.check_shared(self.directory)  # a multi-host job: every host sees this directory
        # on an object store, commit a step by a marker file written last instead of renaming a
        # temporary directory (orbax's own default for gs://, stated here because it matters:
        # GCS has no rename, and its stand-in copies every object)
        atomicity = (ocp.options.AtomicityOptions(mode=ocp.options.AtomicityMode.COMMIT_FILE)
                     if is_url(self.directory) else None)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=every,
                                               enable_async_checkpointing=async_save, create=True,
                                               atomicity_options=atomicity)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("params", "opt_state", "meta"))

    def write_model_config(self, hf_config: dict) -> None:
        if jax.process_index() == 0:
            storage.write_text(self.directory / "model_config.json", json.dumps(hf_config, indent=2) + "\n")

    def write_tokenizer(self, tokenizer) -> None:
        """The tokenizer's files beside the steps, so that a checkpoint alone is a model that
        `coderl eval --model`, `coderl export` and `coderl ablate` can load (they look for tokenizer
        files in a step directory and its parents)."""
        if jax.process_index() != 0:
            return
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            for f in sorted(Path(tmp).iterdir()):
                if f.is_file():
                    (self.directory / f.name).write_bytes(f.read_bytes())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, *, params, opt_state, rng: jax.Array, data_state: Any = None,
             alignment_state: Any = None, extra: dict | None = None, force: bool = False) -> bool:
        """Start saving `step` (returns False when the interval says not now)."""
        ocp = self._ocp
        meta = {
            "step": int(step),
            "rng": np.asarray(jax.random.key_data(rng)).tolist(),
            "data_state": data_state,
            "alignment": alignment_state,
            "extra": extra or {},
        }
        return self.manager.save(step, args=ocp.args.Composite(
            params=ocp.args.StandardSave(params),
            opt_state=ocp.args.StandardSave(opt_state),
            meta=ocp.args.JsonSave(meta),
        ), force=force)

    def restore(self, step: int | None = None, *, params_like, opt_state_like) -> dict:
        """Restore onto the shardings of `params_like` / `opt_state_like` (arrays or ShapeDtypeStructs)."""
        ocp = self._ocp
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")

        def abstract(tree):
            return jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), tree)

        out = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract(params_like)),
            opt_state=ocp.args.StandardRestore(abstract(opt_state_like)),
            meta=ocp.args.JsonRestore(),
        ))
        meta = out["meta"]
        rng = jax.random.wrap_key_data(np.asarray(meta["rng"], dtype=np.uint32))
        return {"step": meta["step"], "params": out["params"], "opt_state": out["opt_state"], "rng": rng,
                "data_state": meta.get("data_state"),
                "alignment": meta.get("alignment"), "extra": meta.get("extra", {})}

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
