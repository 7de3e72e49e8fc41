"""The grain pipeline over a prepared problem dataset: shard -> shuffle -> epochs -> decode -> batch.

    it = make_problem_iterator("/data/tfds", split="train", seed=0, batch_size=128)
    batch = next(it)                  # list of 128 Problems
    state = it.get_state()            # JSON-serialisable dict
    ...
    it = make_problem_iterator("/data/tfds", split="train", seed=0, batch_size=128)
    it.set_state(state)               # continues exactly where the saved one stopped

Order of operations, all on a random-access `grain.MapDataset`, so the state is just a
position and resuming costs nothing:

1. host sharding: shard i of n takes records i, i+n, i+2n, ... (`even_shards=True` first drops
   the last len % n records so that every host has the same number, as lockstep training with a
   finite number of epochs needs);
2. shuffling (seeded; each epoch is a different permutation, grain's index shuffle);
3. epochs: `num_epochs=None` repeats forever, an int stops after that many passes;
4. JSON -> `Problem`;
5. batching into lists of Problems (`drop_remainder` drops a final short batch).

`ProblemIterator` is a grain `DatasetIterator`, so `grain.checkpoint.CheckpointSave(item=it)` /
`CheckpointRestore(item=it)` checkpoint it with orbax (one JSON file per process), as does
`ocp.args.JsonSave(it.get_state())`. The state records the pipeline's settings and the
dataset's identity; restoring into a differently configured iterator raises `DataError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grain

from coderl_jax.data.builder import ProblemDataset, build_problem_dataset, find_prepared, open_split
from coderl_jax.data.records import DataError, Problem

STATE_FORMAT = 1
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "coderl_jax", "tfds")


def _decode(example: dict) -> Problem:
    return Problem.from_json(example["problem"])


class ProblemIterator(grain.DatasetIterator):
    """Iterator over Problems (or lists of Problems) with a checkpointable, JSON-serialisable state."""

    def __init__(self, inner: grain.DatasetIterator, settings: dict[str, Any], records_per_epoch: int):
        super().__init__(inner)
        self.settings = settings
        self.records_per_epoch = records_per_epoch  # records in this host's shard

    def __next__(self):
        return next(self._parent)

    def get_state(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "pipeline": dict(self.settings), "grain": self._parent.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or "grain" not in state:
            raise DataError(f"not a problem-iterator state (format {STATE_FORMAT}): {str(state)[:200]}",
                            reason="bad_state")
        saved = state.get("pipeline", {})
        diff = {k: (saved.get(k), v) for k, v in self.settings.items() if saved.get(k) != v}
        if diff:
            detail = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
            raise DataError(f"iterator state belongs to a different pipeline ({detail})", reason="bad_state")
        self._parent.set_state(state["grain"])

    def __str__(self) -> str:
        return f"ProblemIterator({self.settings})"


def resolve_dataset(data_dir_or_source: str | os.PathLike | ProblemDataset, *, data_dir: str | None = None,
                    **build_kwargs) -> str:
    """The tfds version directory to read: a `ProblemDataset`, a prepared directory (or a data_dir
    holding exactly one), or a problem file (.jsonl/.parquet), built into `data_dir` (default
    $CODERL_DATA_DIR or ~/.cache/coderl_jax/tfds) unless already built from the same bytes."""
    if isinstance(data_dir_or_source, ProblemDataset):
        return data_dir_or_source.path
    path = Path(data_dir_or_source)
    if path.is_file():
        data_dir = data_dir or os.environ.get("CODERL_DATA_DIR") or DEFAULT_CACHE
        return build_problem_dataset(path, data_dir, **build_kwargs).path
    if path.is_dir():
        return find_prepared(path)
    raise DataError("no such file or directory", path=str(path), reason="unreadable_file")


def make_problem_iterator(data_dir_or_source: str | os.PathLike | ProblemDataset, *, split: str = "train",
                          seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                          shard_index: int | None = None, shard_count: int | None = None,
                          batch_size: int | None = None, drop_remainder: bool = False,
                          even_shards: bool = False, data_dir: str | None = None,
                          read_options: grain.ReadOptions | None = None, **build_kwargs) -> ProblemIterator:
    """A checkpointable iterator over one split's Problems (lists of them with `batch_size`).

    `shard_index`/`shard_count` default to `jax.process_index()`/`jax.process_count()`.
    `build_kwargs` go to `build_problem_dataset` when `data_dir_or_source` is a problem file.
    """
    if shard_index is None or shard_count is None:
        import jax

        shard_index = jax.process_index() if shard_index is None else shard_index
        shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} is not in [0, {shard_count})")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError(f"num_epochs must be None (forever) or >= 1, got {num_epochs}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")

    version_dir = resolve_dataset(data_dir_or_source, data_dir=data_dir, **build_kwargs)
    ds = grain.MapDataset.source(open_split(version_dir, split))
    n = len(ds)
    if even_shards:
        ds = ds[: n - n % shard_count]
    if shard_count > 1:
        ds = ds[shard_index::shard_count]
    records = len(ds)
    if records == 0:
        raise DataError(f"shard {shard_index} of {shard_count} of split {split!r} is empty ({n} records)",
                        path=version_dir, reason="unreadable_file")
    if shuffle:
        ds = ds.shuffle(seed=seed)
    if num_epochs != 1:
        ds = ds.repeat(num_epochs)
    ds = ds.map(_decode)
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder, batch_fn=list)
    read_options = read_options or grain.ReadOptions(num_threads=2, prefetch_buffer_size=32)
    inner = ds.to_iter_dataset(read_options).__iter__()
    settings = {"dataset": Path(version_dir).parent.name, "split": split, "seed": seed, "shuffle": shuffle,
                "num_epochs": num_epochs, "shard_index": shard_index, "shard_count": shard_count,
                "batch_size": batch_size, "drop_remainder": drop_remainder, "even_shards": even_shards}
    return ProblemIterator(inner, settings, records)
